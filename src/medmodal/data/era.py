"""ERANet's edge replacement augmentation (ERA; Li et al., arXiv 2502.07331; release
``SiYueLi-MRIandAI/ERANet-SemiSupervised-MeniscusSegmentation``, ``code/dataloaders/oai_meniscus.py``).

On a labelled slice, the target structure (the menisci there; any classes here) is shortened at its ends: for each
8-connected component of the structure's mask, the pixels left of ``x0 + f_left * width`` and right of
``x1 - f_right * width`` (``x0``, ``x1`` the component's horizontal extent) are removed from the label (set to
background) and overwritten in the image with random intensities. The network so learns that the structure ends
where the image says, not where its usual length says.

**Differences from the release**, with reasons:

1. Fractions: the release draws two independent fractions in ``[0, max_cut]`` for one component and one shared
   fraction for both ends of each of two components; here every component draws its two ends independently
   (one rule for any number of components; the release has none for three or more).
2. The release writes the shortened mask back to one meniscus channel only, losing the other meniscus when both are
   present (a bug); here every class keeps its own pixels except the removed ones.
3. Fill: random integers 100-200 on the release's raw intensity scale before its percentile normalisation; here
   uniform values in ``fill`` (default ``(100/255, 200/255)``) of the normalised ``[0, 1]`` image, the same share of
   an 8-bit range.
4. The release's stage-1 script reads the original crop instead of the augmented one, so ERA never reaches its
   loss; medmodal feeds the augmented view to the labelled loss (the issue's fix).

Only elongated structures make sense here; on other data the augmentation is a labelled proxy (e.g. the
crescent-shaped right ventricle of ACDC) and results must say so.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from scipy import ndimage

__all__ = ["edge_replacement", "edge_replacement_batch"]

_EIGHT = np.ones((3, 3), dtype=bool)


def edge_replacement(image: np.ndarray, label: np.ndarray, classes: Sequence[int], rng: np.random.Generator,
                     max_cut: float = 0.3, fill: tuple[float, float] = (100 / 255, 200 / 255)
                     ) -> tuple[np.ndarray, np.ndarray]:
    """One slice, augmented copies: ``(image [C, H, W], label [H, W])``.

    Args:
        image: ``[C, H, W]`` float in ``[0, 1]``. label: ``[H, W]`` integer class map.
        classes: label values forming the structure (ERANet: both menisci).
        rng: the random generator (seeded by the caller).
        max_cut: largest share of a component's width cut off each end (ERANet: 0.3).
        fill: range of the random intensities written where the structure was removed.

    Raises:
        ValueError: ``max_cut`` outside ``[0, 0.5)``, shapes that do not match.
    """
    if not 0.0 <= max_cut < 0.5:
        raise ValueError(f"max_cut must be in [0, 0.5), got {max_cut}")
    if image.ndim != 3 or image.shape[1:] != label.shape:
        raise ValueError(f"image [C, H, W] and label [H, W] must match, got {image.shape} and {label.shape}")
    image, label = image.copy(), label.copy()
    structure = np.isin(label, list(classes))
    components, count = ndimage.label(structure, structure=_EIGHT)
    if count == 0:
        return image, label
    removed = np.zeros_like(structure)
    cols = np.arange(label.shape[1])[None, :]
    for k in range(1, count + 1):
        part = components == k
        xs = np.nonzero(part.any(0))[0]
        x0, x1 = int(xs[0]), int(xs[-1])
        width = x1 - x0 + 1
        left, right = rng.uniform(0.0, max_cut, size=2)
        keep = (cols >= x0 + left * width) & (cols <= x1 - right * width)
        removed |= part & ~keep
    if removed.any():
        label[removed] = 0
        image[:, removed] = rng.uniform(fill[0], fill[1], size=(image.shape[0], int(removed.sum()))).astype(image.dtype)
    return image, label


def edge_replacement_batch(images: torch.Tensor, labels: torch.Tensor, classes: Sequence[int],
                           rng: np.random.Generator, max_cut: float = 0.3,
                           fill: tuple[float, float] = (100 / 255, 200 / 255)) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`edge_replacement` on every slice of ``images [B, C, H, W]`` / ``labels [B, H, W]`` (new tensors on the
    same device and dtypes)."""
    out_i, out_l = [], []
    for img, lab in zip(images.detach().cpu().numpy(), labels.detach().cpu().numpy()):
        a, b = edge_replacement(img, lab, classes, rng, max_cut, fill)
        out_i.append(a)
        out_l.append(b)
    return (torch.from_numpy(np.stack(out_i)).to(images), torch.from_numpy(np.stack(out_l)).to(labels))
