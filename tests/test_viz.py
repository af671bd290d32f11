import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from seqlib import viz  # noqa: E402


def teardown_function():
    plt.close("all")


def test_image_grid_layout_and_titles():
    fig = viz.image_grid(
        torch.rand(10, 1, 8, 8),
        ncols=4,
        titles=[str(i) for i in range(10)],
        suptitle="t",
    )
    axes = fig.get_axes()
    assert (
        len(axes) == 12
        and axes[9].get_title() == "9"
        and len(axes[11].images) == 0
    )
    assert viz.image_grid(torch.rand(2, 3, 8, 8)).get_axes()[0].images[
        0
    ].get_array().shape == (8, 8, 3)


def test_image_grid_rejects_bad_input():
    with pytest.raises(ValueError, match="expected 1 or 3 channels"):
        viz.image_grid(torch.rand(2, 2, 8, 8))
    with pytest.raises(ValueError, match="titles: expected 2 titles, got 1"):
        viz.image_grid(torch.rand(2, 1, 8, 8), titles=["a"])


def test_reconstruction_rows_label_each_row():
    fig = viz.reconstruction_rows(
        [torch.rand(3, 1, 4, 4)] * 2, ["original", "model"]
    )
    axes = np.array(fig.get_axes()).reshape(2, 3)
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["original", "model"]
    with pytest.raises(ValueError, match=r"rows\[1\]: expected shape"):
        viz.reconstruction_rows(
            [torch.rand(3, 1, 4, 4), torch.rand(2, 1, 4, 4)], ["a", "b"]
        )
    with pytest.raises(ValueError, match="expected 2 labels"):
        viz.reconstruction_rows([torch.rand(3, 1, 4, 4)] * 2, ["a"])


def test_heatmap_has_colorbar_labels_and_values():
    weights = torch.softmax(torch.randn(3, 4), dim=-1)
    fig = viz.heatmap(
        weights,
        x_labels=list("abcd"),
        y_labels=list("xyz"),
        title="w",
        colorbar_label="weight",
        annotate=True,
    )
    ax, cbar = fig.get_axes()
    assert cbar.get_ylabel() == "weight" and ax.get_title() == "w"
    assert [t.get_text() for t in ax.get_xticklabels()] == list(
        "abcd"
    ) and len(ax.texts) == 12
    np.testing.assert_allclose(ax.images[0].get_array(), weights.numpy())
    with pytest.raises(ValueError, match="expected a 2-D array"):
        viz.heatmap(np.zeros(3))
    with pytest.raises(ValueError, match="x_labels: expected 4 labels, got 2"):
        viz.heatmap(weights, x_labels=["a", "b"])
