"""Retinal fundus engines: the pix2pix trainer of DGSSA's structure augmentation (:mod:`.pix2pix`)."""

from medmodal.engine.fundus.pix2pix import (Pix2PixPair, Pix2PixSettings, fundus_pairs, pairs_from_arrays,
                                            train_pix2pix)

__all__ = ["Pix2PixPair", "Pix2PixSettings", "fundus_pairs", "pairs_from_arrays", "train_pix2pix"]
