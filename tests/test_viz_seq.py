"""Tests for seqlib.viz_seq: the figures get labels, and bad shapes are refused."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from seqlib.viz_seq import plot_alignment, plot_bleu_by_length  # noqa: E402


def test_alignment_labels_and_colorbar():
    fig, ax = plt.subplots()
    w = torch.softmax(torch.randn(3, 4), -1)
    plot_alignment(
        ax, w, ["a", "b", "c", "<eos>"], ["x", "y", "<eos>"], title="t"
    )
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "a",
        "b",
        "c",
        "<eos>",
    ]
    assert ax.get_title() == "t" and ax.get_xlabel() and ax.get_ylabel()
    assert len(fig.axes) == 2  # the colour bar
    with pytest.raises(ValueError, match=r"\(T, S\)=\(2, 4\)"):
        plot_alignment(ax, w, ["a", "b", "c", "<eos>"], ["x", "<eos>"])
    plt.close(fig)


def test_bleu_by_length_one_line_per_model():
    rows = [
        {"bucket": "0-9", "lo": 0, "hi": 10, "n": 5, "bleu": 50.0},
        {"bucket": "10-19", "lo": 10, "hi": 20, "n": 5, "bleu": 20.0},
    ]
    fig, ax = plt.subplots()
    plot_bleu_by_length(ax, {"plain": rows, "attention": rows})
    assert (
        len(ax.get_lines()) == 2
        and "BLEU" in ax.get_ylabel()
        and "length" in ax.get_xlabel()
    )
    plt.close(fig)
