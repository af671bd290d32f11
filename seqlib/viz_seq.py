"""Figures for sequence models: alignment heatmaps and BLEU against source
length.

The alignment plot is Bahdanau et al. (2015, Fig. 3): one row per output word,
one column per source word, brightness = attention weight ``alpha_tj``; a
translation that reorders words shows up as an off-diagonal path. The BLEU
plot is their Fig. 2 (and Cho et al. 2014's): one curve per model, BLEU of each
source-length bucket.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch


def plot_alignment(
    ax: plt.Axes,
    weights: torch.Tensor | np.ndarray,
    src_tokens: Sequence[str],
    tgt_tokens: Sequence[str],
    *,
    title: str | None = None,
    colorbar: bool = True,
) -> plt.Axes:
    """Heatmap of attention weights ``(T, S)``: output words down, source words
    across.

    Args:
        ax: where to draw.
        weights: ``(T, S)`` weights, one row per output token.
        src_tokens: the ``S`` source labels (include ``<eos>`` if it has a
            column).
        tgt_tokens: the ``T`` output labels.
        title: axes title.
        colorbar: add a colour bar labelled with the weight.
    """
    w = (
        weights.detach().cpu().numpy()
        if isinstance(weights, torch.Tensor)
        else np.asarray(weights)
    )
    if w.shape != (len(tgt_tokens), len(src_tokens)):
        raise ValueError(
            f"weights: expected shape (T, S)=({len(tgt_tokens)}, "
            f"{len(src_tokens)}) from the labels, got {w.shape}"
        )
    image = ax.imshow(
        w,
        cmap="gray",
        vmin=0.0,
        vmax=1.0,
        aspect="auto",
        interpolation="nearest",
    )
    ax.set_xticks(range(len(src_tokens)), labels=src_tokens, rotation=90)
    ax.set_yticks(range(len(tgt_tokens)), labels=tgt_tokens)
    ax.set_xlabel("source word j (encoder state h_j)")
    ax.set_ylabel("output word t")
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(
            image,
            ax=ax,
            fraction=0.046,
            pad=0.02,
            label="attention weight α_tj",
        )
    return ax


def plot_bleu_by_length(
    ax: plt.Axes,
    tables: Mapping[str, Sequence[Mapping]],
    *,
    title: str = "BLEU against source length",
) -> plt.Axes:
    """One line per model of the rows of :func:`seqlib.metrics.bleu_by_length`.

    Args:
        ax: where to draw.
        tables: model name -> its bucket rows (``lo``, ``hi``, ``bleu``,
            ``n``).
        title: axes title.
    """
    markers = "osD^v<>"
    for i, (name, rows) in enumerate(tables.items()):
        mids = [(r["lo"] + r["hi"] - 1) / 2 for r in rows]
        ax.plot(
            mids,
            [r["bleu"] for r in rows],
            marker=markers[i % len(markers)],
            label=name,
        )
    first = next(iter(tables.values()))
    ax.set_xticks(
        [(r["lo"] + r["hi"] - 1) / 2 for r in first],
        labels=[r["bucket"] for r in first],
    )
    ax.set_xlabel("source sentence length (tokens, bucket)")
    ax.set_ylabel("corpus BLEU of the bucket (0–100)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax
