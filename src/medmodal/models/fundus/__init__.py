"""Retinal fundus networks: the pix2pix pair that renders pseudo-fundus images from vessel trees
(DGSSA's structure augmentation, :mod:`.pix2pix`). Plain modules, not registered (no contract fits)."""

from medmodal.models.fundus.pix2pix import (PatchDiscriminator, PatchDiscriminatorConfig, Pix2PixGenerator,
                                            Pix2PixGeneratorConfig)

__all__ = ["Pix2PixGenerator", "Pix2PixGeneratorConfig", "PatchDiscriminator", "PatchDiscriminatorConfig"]
