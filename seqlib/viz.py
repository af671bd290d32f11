"""Figures every chapter reuses: image grids, reconstruction rows, heatmaps.

Each function draws on matplotlib axes it creates (or is given) and returns the
figure, so a notebook cell ends with ``plt.show()`` and a test can inspect it.
Images follow the torch layout (B, C, H, W) with values in [0, 1].
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from seqlib.shapes import expect_shape


def _to_hwc(img: torch.Tensor) -> np.ndarray:
    """(C, H, W) tensor → (H, W) or (H, W, C) array clipped to [0, 1]."""
    arr = img.detach().cpu().float().clamp(0, 1).numpy()
    return arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)


def image_grid(
    images: torch.Tensor,
    *,
    ncols: int = 8,
    titles: Sequence[str] | None = None,
    suptitle: str | None = None,
    cell: float = 1.2,
) -> Figure:
    """Draw a batch of images in a grid.

    Args:
        images: (B, C, H, W) with C in {1, 3}, values in [0, 1].
        ncols: images per row.
        titles: optional one title per image.
        suptitle: figure title.
        cell: inches per image.
    """
    expect_shape(images, ("B", None, "H", "W"), "images")
    if images.shape[1] not in (1, 3):
        raise ValueError(
            "images: expected 1 or 3 channels (B, C, H, W), got "
            f"{tuple(images.shape)}"
        )
    if titles is not None and len(titles) != len(images):
        raise ValueError(
            f"titles: expected {len(images)} titles, got {len(titles)}"
        )
    n = len(images)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(cell * ncols, cell * nrows + (0.4 if suptitle else 0)),
        squeeze=False,
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(_to_hwc(images[i]), cmap="gray", vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def reconstruction_rows(
    rows: Sequence[torch.Tensor],
    labels: Sequence[str],
    *,
    title: str | None = None,
    cell: float = 1.0,
) -> Figure:
    """Compare images row by row: originals, then one row per model.

    Args:
        rows: tensors of the same shape (B, C, H, W), e.g.
            ``[x, x_noisy, pca(x), ae(x)]``.
        labels: one label per row, written at the left.
        title: figure title.
    """
    if len(rows) != len(labels):
        raise ValueError(
            f"labels: expected {len(rows)} labels (one per row), got "
            f"{len(labels)}"
        )
    sizes = expect_shape(rows[0], ("B", None, "H", "W"), "rows[0]")
    for i, r in enumerate(rows[1:], start=1):
        expect_shape(r, tuple(rows[0].shape), f"rows[{i}]", sizes)
    n = rows[0].shape[0]
    fig, axes = plt.subplots(
        len(rows),
        n,
        figsize=(cell * n + 1.2, cell * len(rows) + 0.3),
        squeeze=False,
    )
    for r, (row, label) in enumerate(zip(rows, labels)):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(_to_hwc(row[c]), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(
            label, rotation=0, ha="right", va="center", fontsize=9
        )
    if title:
        fig.suptitle(title)
    return fig


def heatmap(
    values: torch.Tensor | np.ndarray,
    *,
    ax: Axes | None = None,
    x_labels: Sequence[str] | None = None,
    y_labels: Sequence[str] | None = None,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    cmap: str = "viridis",
    colorbar_label: str = "",
    annotate: bool = False,
    vmin: float | None = None,
    vmax: float | None = None,
) -> Figure:
    """Draw a 2-D array as a heatmap with a colorbar.

    Args:
        values: (R, C) array, e.g. attention weights (T, S) or a similarity
            matrix.
        ax: axes to draw on; a new figure is made when omitted.
        x_labels, y_labels: tick labels for columns and rows.
        annotate: write each value in its cell (small matrices only).
    """
    arr = (
        values.detach().cpu().float().numpy()
        if isinstance(values, torch.Tensor)
        else np.asarray(values)
    )
    if arr.ndim != 2:
        raise ValueError(
            f"values: expected a 2-D array (R, C), got shape {arr.shape}"
        )
    for labels, size, what in (
        (x_labels, arr.shape[1], "x_labels"),
        (y_labels, arr.shape[0], "y_labels"),
    ):
        if labels is not None and len(labels) != size:
            raise ValueError(
                f"{what}: expected {size} labels, got {len(labels)}"
            )
    if ax is None:
        _, ax = plt.subplots(
            figsize=(
                max(3.0, 0.35 * arr.shape[1] + 1.5),
                max(2.5, 0.35 * arr.shape[0] + 1),
            )
        )
    im = ax.imshow(arr, cmap=cmap, aspect="auto", vmin=vmin, vmax=vmax)
    ax.figure.colorbar(im, ax=ax, label=colorbar_label)
    if x_labels is not None:
        ax.set_xticks(range(len(x_labels)), x_labels, rotation=90, fontsize=8)
    if y_labels is not None:
        ax.set_yticks(range(len(y_labels)), y_labels, fontsize=8)
    if annotate:
        for (i, j), v in np.ndenumerate(arr):
            ax.text(
                j,
                i,
                f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if v < (arr.max() + arr.min()) / 2 else "black",
            )
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return ax.figure
