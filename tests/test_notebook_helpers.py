"""seqlib.notebook: shown listings and the figure legibility check."""

import io
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from seqlib import metrics, notebook, seq2seq  # noqa: E402


def test_listing_plain_text_is_the_source():
    import inspect

    listing = notebook.Listing(metrics.brevity_penalty)
    assert (
        listing.source == inspect.getsource(metrics.brevity_penalty).rstrip()
    )
    bundle = listing._repr_mimebundle_()
    assert bundle["text/plain"] == listing.source
    assert set(bundle) == {"text/plain", "text/markdown", "text/html"}


def test_short_listing_is_open_and_links_to_the_reference():
    listing = notebook.Listing(metrics.brevity_penalty)
    assert not listing.collapsed
    md = listing._repr_markdown_()
    assert md.startswith("{py:func}`seqlib.metrics.brevity_penalty`")
    assert "```python\ndef brevity_penalty(" in md
    assert "<details>" not in listing._repr_html_()


def test_long_listing_needs_a_summary_and_is_collapsed():
    with pytest.raises(ValueError, match="needs a summary"):
        notebook.Listing(metrics.bleu_by_hand)
    listing = notebook.Listing(metrics.bleu_by_hand, "BLEU by hand")
    assert listing.collapsed
    md = listing._repr_markdown_()
    assert md.startswith(":::{dropdown} BLEU by hand: {py:func}")
    assert md.rstrip().endswith(":::")
    html = listing._repr_html_()
    assert html.startswith("<details><summary>BLEU by hand: ")
    assert "<span" in html  # highlighted


def test_roles_for_methods_and_classes():
    assert notebook.Listing(seq2seq.Decoder.step).role == "py:meth"
    assert notebook.Listing(seq2seq.PlainDecoder, "x").role == "py:class"
    assert notebook.Listing(metrics.brevity_penalty).role == "py:func"


def test_show_rejects_what_has_no_source():
    with pytest.raises(TypeError, match="needs a function, method or class"):
        notebook.show(len)
    with pytest.raises(TypeError, match="got int"):
        notebook.show(3)


def test_show_prints_outside_ipython(capsys):
    notebook.show(metrics.brevity_penalty)
    assert capsys.readouterr().out.startswith("def brevity_penalty(")


def _grid(cols, width):
    fig, axes = plt.subplots(1, cols, figsize=(width, 2))
    for ax in axes.flat:
        ax.imshow([[0, 1], [1, 0]])
        ax.set_title("word")
        ax.axis("off")
    return fig


def test_legible_figure_has_no_problems():
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot([0, 1], label="a")
    ax.set_title("title")
    ax.legend()
    assert notebook.legibility_problems(fig) == []
    plt.close(fig)


def test_wide_grid_is_flagged_for_text_and_panels():
    fig = _grid(14, 14)
    problems = notebook.legibility_problems(fig)
    assert any("texts smaller than 9 px" in p for p in problems), problems
    assert any("panels narrower than 70 px" in p for p in problems), problems
    plt.close(fig)
    fig = _grid(6, 7)
    assert notebook.legibility_problems(fig) == []
    plt.close(fig)


def test_tick_labels_count_only_when_the_axis_is_shown():
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot([0, 1])
    ax.tick_params(labelsize=5)
    assert "texts smaller" in notebook.legibility_problems(fig)[0]
    ax.axis("off")
    assert notebook.legibility_problems(fig) == []
    plt.close(fig)


def test_watch_legibility_warns_when_an_image_is_made():
    notebook.watch_legibility()
    notebook.watch_legibility()  # idempotent
    fig = _grid(14, 14)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.savefig(io.BytesIO(), format="png")
    assert [w.category for w in caught] == [notebook.LegibilityWarning]
    plt.close(fig)


def _run_start(monkeypatch, capsys, device: str) -> tuple[object, str]:
    """start("ch02") on ``device``, its global changes undone afterwards."""
    from matplotlib.backend_bases import FigureCanvasBase

    monkeypatch.setattr(
        FigureCanvasBase, "print_figure", FigureCanvasBase.print_figure
    )
    monkeypatch.setenv("SEQLIB_DEVICE", device)
    monkeypatch.setenv("SEQLIB_PROFILE", "smoke")
    monkeypatch.setenv("SEQLIB_SEED", "0")
    monkeypatch.delenv("SEQLIB_THREADS", raising=False)
    with matplotlib.rc_context():
        result = notebook.start("ch02")
    return result, capsys.readouterr().out


def test_start_prints_the_cpu_device_line_unchanged(monkeypatch, capsys):
    device, out = _run_start(monkeypatch, capsys, "cpu")
    assert device.type == "cpu"
    # stored notebook outputs compare this report: the CPU line is fixed
    assert out.splitlines()[:3] == [
        "profile: smoke (set SEQLIB_PROFILE=full for the real-data run)",
        "device:  CPU",
        "seed:    SEQLIB_SEED=0 (every random choice of the chapter "
        "derives from it)",
    ]


def test_start_names_the_gpu_and_its_memory(monkeypatch, capsys):
    import torch

    class Properties:
        total_memory = 84_929_216_512  # bytes: 79.1 GiB

    asked = []
    monkeypatch.setattr(
        torch.cuda,
        "get_device_name",
        lambda index=None: asked.append(index) or "NVIDIA H100 80GB HBM3",
    )
    monkeypatch.setattr(
        torch.cuda, "get_device_properties", lambda index: Properties()
    )
    device, out = _run_start(monkeypatch, capsys, "cuda")
    assert device.type == "cuda"
    assert "device:  GPU (NVIDIA H100 80GB HBM3, 79.1 GiB)" in out.splitlines()
    assert asked == [0]
    _run_start(monkeypatch, capsys, "cuda:1")
    assert asked == [0, 1]
