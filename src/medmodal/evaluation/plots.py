"""Figures of results.

:func:`subset_heatmap` draws the mean metric of every subset (rows) and region (columns) as an
annotated heatmap, with the average over subsets as the last row; :func:`confusion_png` a
classifier's confusion matrix. Figures are rendered with
matplotlib's Agg canvas directly (no pyplot, no display needed) and written atomically.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from medmodal.evaluation.tables import AVERAGE, display_subset, subset_table
from medmodal.io import atomic_path


def _matrix(rows: Sequence[dict], modalities: Sequence[str], regions: Sequence[str],
            metric: str, scale: float) -> tuple[np.ndarray, list[str]]:
    """``[S + 1, R]`` scaled means (last row: average) and the row labels."""
    table = subset_table(rows, modalities, regions, metric)
    values = np.array([[entry[r] * scale for r in regions] for entry in table], dtype=float)
    labels = [AVERAGE if e["mask"] is None else display_subset(e["mask"], modalities) for e in table]
    return values, labels


def subset_heatmap(rows: Sequence[dict], modalities: Sequence[str], regions: Sequence[str], path: str | Path,
                   metric: str = "Dice", title: str | None = None, scale: float | None = None,
                   digits: int = 1) -> Path:
    """Write a PNG heatmap of ``<metric>_<region>`` means: subsets x regions, values annotated.

    Args:
        rows: per-(case, subset) rows, see :mod:`medmodal.evaluation.tables`.
        modalities: sequence names in canonical order; regions: region names (columns).
        path: output ``.png`` file (written atomically).
        metric: ``"Dice"`` (shown in percent, brighter = better) or ``"HD95"`` (mm, darker = better).
        title: figure title. scale: value multiplier (default 100 for Dice, else 1).

    Returns:
        ``path``.
    """
    if scale is None:
        scale = 100.0 if metric == "Dice" else 1.0
    values, labels = _matrix(rows, modalities, regions, metric, scale)
    higher_is_better = metric == "Dice"
    cmap = "viridis" if higher_is_better else "viridis_r"
    vmax = scale if higher_is_better else max(np.nanmax(values, initial=0.0), 1e-6)  # Dice <= 1

    fig = Figure(figsize=(1.6 + 1.1 * len(regions), 1.2 + 0.34 * len(labels)), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0.0, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(regions)), labels=list(regions))
    ax.set_yticks(range(len(labels)), labels=labels)
    ax.xaxis.tick_top()
    ax.axhline(len(labels) - 1.5, color="white", linewidth=2)  # separates the average row
    _annotate(ax, values, image, digits)
    unit = " (%)" if higher_is_better and scale == 100 else (" (mm)" if metric == "HD95" else "")
    fig.colorbar(image, ax=ax, label=f"{metric}{unit}")
    if title:
        ax.set_title(title, fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)


def _annotate(ax, values: np.ndarray, image, digits: int) -> None:
    """Write each value in its cell, dark text on bright cells and light text on dark ones."""
    for (i, j), value in np.ndenumerate(values):
        if math.isnan(value):
            ax.text(j, i, "-", ha="center", va="center", fontsize=8)
            continue
        red, green, blue, _ = image.cmap(image.norm(value))
        colour = "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"
        ax.text(j, i, f"{value:.{digits}f}", ha="center", va="center", fontsize=8, color=colour)


def confusion_png(matrix: np.ndarray, classes: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Confusion matrix (rows true, columns predicted) as a PNG with counts; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    k = len(classes)
    fig, ax = plt.subplots(figsize=(1.1 * k + 2.5, 1.0 * k + 2))
    shown = matrix / np.maximum(1, matrix.sum(1, keepdims=True))
    ax.imshow(shown, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center",
                    color="white" if shown[i, j] > 0.5 else "black", fontsize=9)
    ax.set_xticks(range(k), classes, rotation=45, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)
