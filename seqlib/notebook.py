"""The first code cell of every chapter: seed, threads, device, and a report.

``start("ch01")`` makes a notebook behave the same on a laptop, on Colab and in
CI: it seeds every generator from ``SEQLIB_SEED``, caps CPU threads
(``SEQLIB_THREADS``; CI runs one notebook per core), picks the device, sets a
readable figure style and prints the profile with the run time to expect.
``first_cell("ch01")`` is that cell's source, Colab install included.
"""

from __future__ import annotations

import functools
import html
import inspect
import os
import textwrap
import warnings

import matplotlib
import torch

from seqlib import profiles
from seqlib.train import base_seed, pick_device, seed_everything, seed_for


def start(chapter: str) -> torch.device:
    """Prepare a chapter notebook and print what will run.

    Args:
        chapter: the chapter key used in :mod:`seqlib.profiles`, e.g.
            ``"ch01"``.

    Returns:
        The device the chapter trains on (cuda, mps or cpu).
    """
    threads = os.environ.get("SEQLIB_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    seed_everything(seed_for(0))
    device = pick_device()
    profile = profiles.current_profile()
    minutes = getattr(profiles.sizes(chapter), "expected_minutes", None)
    matplotlib.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 100,
            "axes.grid": False,
            "image.cmap": "gray",
            "figure.autolayout": True,
        }
    )
    watch_legibility()
    where = "GPU" if device.type == "cuda" else device.type.upper()
    if device.type == "cuda":
        where += f" ({_gpu_description(device)})"
    hint = " (set SEQLIB_PROFILE=full for the real-data run)"
    print(f"profile: {profile}" + (hint if profile == "smoke" else ""))
    print(f"device:  {where}")
    print(
        f"seed:    SEQLIB_SEED={base_seed()} "
        "(every random choice of the chapter derives from it)"
    )
    if minutes is not None:
        print(
            f"expected run time: about {minutes:g} min on "
            + (
                "a GPU (an estimate; measured runs: the results page)"
                if profile == "full"
                else "2 CPU cores"
            )
        )
    target = profiles.TARGETS.get(chapter)
    if profile == "full" and target is not None:
        print(
            f"target:  {target.metric} >= {target.value:.1%}, training in "
            f"about {target.minutes:g} min ({target.basis})"
        )
    if profiles.dry_run():
        print(
            "dry run: real model sizes, a handful of steps; claims that need "
            "training are not evaluated"
        )
    return device


def _gpu_description(device: torch.device) -> str:
    """The GPU's name and memory: ``"NVIDIA H100 80GB HBM3, 79.1 GiB"``."""
    index = device.index or 0
    name = torch.cuda.get_device_name(index)
    memory = torch.cuda.get_device_properties(index).total_memory / 2**30
    return f"{name}, {memory:.1f} GiB"


# --- the first cell of a chapter ---------------------------------------------
#: Where Colab installs seqlib from. ``repository: url:`` in ``_config.yml``
#: (launch and repository buttons) names the same; a test checks they agree.
REPOSITORY = "https://github.com/attention-course/attention-book"

#: The extras of ``seqlib`` each chapter needs beyond the core dependencies
#: (chapters that import keras); other chapters install none.
CHAPTER_EXTRAS: dict[str, tuple[str, ...]] = {
    "ch10": ("keras",),
    "ch11": ("keras",),
}

_FIRST_CELL = """\
# Setup: on Colab, installs seqlib (keeping Colab's own torch); locally the
# README's commands already did.
import importlib.util
import os
import subprocess
import sys
from importlib.metadata import version

if importlib.util.find_spec("seqlib") is None:
    url = "{repository}"
    repo = os.environ.get("SEQLIB_REPO", url)  # or your fork's URL
    # pin the installed torch (Colab's CUDA build), so that pip keeps it
    has_torch = importlib.util.find_spec("torch") is not None
    keep = [f"torch=={{version('torch')}}"] if has_torch else []
    pip = [sys.executable, "-m", "pip", "install", "-q", *keep]
    subprocess.run([*pip, f"{requirement} @ git+{{repo}}"], check=True)

from seqlib.notebook import start

device = start("{chapter}")
"""


def first_cell(chapter: str) -> str:
    """The source of a chapter's first code cell, the one that calls
    :func:`start`.

    On Colab (where ``seqlib`` is not importable) the cell pip-installs
    ``seqlib`` with the chapter's extras (:data:`CHAPTER_EXTRAS`) from
    ``git+`` :data:`REPOSITORY`, or from the URL in the environment variable
    ``SEQLIB_REPO`` (a fork, or a local clone in the tests). The installed
    torch is pinned to its own version, so the install never replaces
    Colab's CUDA build (pyproject's ``torch>=2.2`` is already satisfied, and
    a dependency asking for another torch makes pip fail instead of
    swapping it). Then it calls ``start(chapter)``. pip reads its usual
    ``PIP_*`` environment variables, e.g. ``PIP_NO_INDEX``.
    ``scripts/first_cells.py`` writes this cell into every chapter.

    Args:
        chapter: the chapter key, ``"ch"`` and two digits, e.g. ``"ch07"``.

    Returns:
        The cell's Python source, lines of at most 79 columns, ending in a
        newline.

    Raises:
        ValueError: ``chapter`` is not ``"ch"`` followed by two digits.
    """
    if not (
        isinstance(chapter, str)
        and len(chapter) == 4
        and chapter.startswith("ch")
        and chapter[2:].isdigit()
    ):
        raise ValueError(
            "first_cell() expects a chapter key like 'ch07' ('ch' and two "
            f"digits); got {chapter!r}"
        )
    extras = CHAPTER_EXTRAS.get(chapter, ())
    requirement = f"seqlib[{','.join(extras)}]" if extras else "seqlib"
    return _FIRST_CELL.format(
        repository=REPOSITORY, requirement=requirement, chapter=chapter
    )


# Listings of at most this many lines are shown open; longer ones are collapsed
# behind a one-line summary that the caller must write.
OPEN_LINES = 12


class Listing:
    """The source of a seqlib function or class, ready for display.

    Jupyter, Colab and the book each pick the richest form they can render:

    * ``text/plain`` is the source itself. nbval compares it, so a listing
      stored in a notebook cannot drift from ``seqlib``.
    * ``text/html`` is highlighted with inline styles (Jupyter, Colab), inside
      ``<details>`` when the listing is long.
    * ``text/markdown`` is MyST for the book: a Python code block, in a
      dropdown when long, whose title links to the API reference.
    """

    def __init__(
        self, obj, summary: str | None = None, *, collapse: bool | None = None
    ):
        try:
            source = inspect.getsource(obj)
        except (TypeError, OSError) as err:
            raise TypeError(
                "show() needs a function, method or class defined in Python "
                "source; "
                f"got {type(obj).__name__} {obj!r}"
            ) from err
        self.source = textwrap.dedent(source).rstrip("\n")
        self.name = _qualified_name(obj)
        self.role = (
            "py:class"
            if inspect.isclass(obj)
            else ("py:meth" if _is_method(obj) else "py:func")
        )
        self.lines = self.source.count("\n") + 1
        self.collapsed = (
            self.lines > OPEN_LINES if collapse is None else collapse
        )
        if self.collapsed and not summary:
            raise ValueError(
                f"show({self.name}): a listing of {self.lines} lines is "
                "collapsed, so it needs a summary saying what the reader will "
                f"find in it, e.g. show({self.name.rsplit('.', 1)[-1]}, "
                "'the clipped n-gram counts')"
            )
        self.summary = summary

    def _title_parts(self) -> tuple[str, str]:
        size = f"{self.lines} lines"
        lead = f"{self.summary}: " if self.summary else ""
        return lead, size

    def _repr_markdown_(self) -> str:
        lead, size = self._title_parts()
        link = f"{{{self.role}}}`{self.name}`"
        fence = "```"
        while fence in self.source:
            fence += "`"
        block = f"{fence}python\n{self.source}\n{fence}"
        if self.collapsed:
            colon = ":::"
            title = f"{lead}{link} ({size})"
            return f"{colon}{{dropdown}} {title}\n\n{block}\n{colon}\n"
        return f"{lead}{link}\n\n{block}\n"

    def _repr_html_(self) -> str:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer

        code = highlight(
            self.source,
            PythonLexer(),
            HtmlFormatter(noclasses=True, nobackground=True),
        )
        lead, size = self._title_parts()
        name = f"<code>{html.escape(self.name)}</code>"
        title = f"{html.escape(lead)}{name} ({size})"
        if self.collapsed:
            return f"<details><summary>{title}</summary>\n{code}</details>"
        return f"<div>{title}</div>\n{code}"

    def __repr__(self) -> str:
        return self.source

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        return {
            "text/plain": self.source,
            "text/markdown": self._repr_markdown_(),
            "text/html": self._repr_html_(),
        }


def _is_method(obj) -> bool:
    qualname = getattr(obj, "__qualname__", "")
    return (
        not inspect.isclass(obj)
        and "." in qualname
        and "<locals>" not in qualname
    )


def _qualified_name(obj) -> str:
    module = getattr(obj, "__module__", None) or ""
    qualname = getattr(obj, "__qualname__", None) or getattr(
        obj, "__name__", repr(obj)
    )
    return f"{module}.{qualname}" if module else qualname


def show(
    obj, summary: str | None = None, *, collapse: bool | None = None
) -> None:
    """Display the source of a seqlib function, method or class.

    In a notebook the listing is highlighted; one longer than
    ``OPEN_LINES`` lines is collapsed behind ``summary``, which must then
    say what the reader will find in it. Outside IPython the source is
    printed.

    Args:
        obj: the function, method or class to show.
        summary: one line on what the listing holds (required when collapsed).
        collapse: force the listing open (``False``) or collapsed (``True``).

    Raises:
        TypeError: ``obj`` has no Python source (a builtin, an instance).
        ValueError: a collapsed listing without a summary.
    """
    listing = Listing(obj, summary, collapse=collapse)
    try:
        from IPython import get_ipython
        from IPython.display import display
    except (
        ImportError
    ):  # pragma: no cover - IPython is a dependency of the notebooks
        print(listing.source)
        return
    if get_ipython() is None:
        print(listing.source)
    else:
        display(listing)


# --- figures a reader can read -----------------------------------------------
# The book shows a figure at most as wide as its article column (about 688 px
# at a 1200 px window, book/_static/custom.css) and shrinks wider ones to fit.
# A figure passes when, at that size, its text is at least MIN_TEXT_PX high and
# each panel at least MIN_PANEL_PX wide.
BOOK_COLUMN_PX = 688
MIN_TEXT_PX = 9.0
MIN_PANEL_PX = 70.0


class LegibilityWarning(UserWarning):
    """A figure whose text or panels would be too small in the book."""


def _texts(fig):
    """The visible, non-empty texts of ``fig`` that a reader has to read."""
    found = list(fig.texts)
    if getattr(fig, "_suptitle", None) is not None:
        found.append(fig._suptitle)
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        found += [ax.title, ax._left_title, ax._right_title, *ax.texts]
        if ax.axison:
            for axis in (ax.xaxis, ax.yaxis):
                if axis.get_visible():
                    found += [axis.label, *axis.get_ticklabels()]
        legend = ax.get_legend()
        if legend is not None and legend.get_visible():
            found += list(legend.get_texts())
            found.append(legend.get_title())
    return [
        t
        for t in found
        if t is not None and t.get_visible() and t.get_text().strip()
    ]


def legibility_problems(
    fig,
    column_px: float = BOOK_COLUMN_PX,
    min_text_px: float = MIN_TEXT_PX,
    min_panel_px: float = MIN_PANEL_PX,
) -> list[str]:
    """What would be too small to read when the book shows ``fig``.

    The figure is drawn (without rendering) so that tick labels exist, then
    every title, label, tick label, legend entry and text is measured at the
    size the book shows it: ``column_px`` wide at most.

    Args:
        fig: a matplotlib figure.
        column_px: the widest the book shows a figure, in CSS pixels.
        min_text_px: the smallest readable text height, in CSS pixels.
        min_panel_px: the narrowest readable panel (axes), in CSS pixels.

    Returns:
        One sentence per problem; empty when the figure is legible.
    """
    width_in = float(fig.get_size_inches()[0])
    dpi = float(fig.dpi)
    scale = min(1.0, column_px / (width_in * dpi))
    fig.draw_without_rendering()
    problems = []
    small = [
        (t.get_fontsize() * dpi / 72 * scale, t.get_text())
        for t in _texts(fig)
    ]
    small = sorted(item for item in small if item[0] < min_text_px)
    if small:
        px, text = small[0]
        problems.append(
            f"{len(small)} texts smaller than {min_text_px:g} px in the book "
            f"(smallest {px:.1f} px: {text[:30]!r}); the {width_in:g} in "
            f"figure is shown at {scale:.0%}: make it narrower or its fonts "
            f"larger"
        )
    panels = [
        ax.get_position().width * width_in * dpi * scale
        for ax in fig.axes
        if ax.get_visible() and ax.get_label() != "<colorbar>"
    ]
    narrow = [w for w in panels if w < min_panel_px]
    if narrow:
        problems.append(
            f"{len(narrow)} panels narrower than {min_panel_px:g} px in the "
            f"book (narrowest {min(narrow):.0f} px): fewer panels per row"
        )
    return problems


def watch_legibility() -> None:
    """Warn (:class:`LegibilityWarning`) when a figure is saved or shown
    illegible.

    Patches ``FigureCanvasBase.print_figure``, which every backend, Jupyter's
    inline display included, calls to make an image. The warning goes to the
    cell's stderr, where nbval sees it.
    """
    from matplotlib.backend_bases import FigureCanvasBase

    original = FigureCanvasBase.print_figure
    if getattr(original, "_watches_legibility", False):
        return

    @functools.wraps(original)
    def print_figure(self, *args, **kwargs):
        problems = legibility_problems(self.figure)
        if problems:
            warnings.warn("; ".join(problems), LegibilityWarning, stacklevel=2)
        return original(self, *args, **kwargs)

    print_figure._watches_legibility = True
    FigureCanvasBase.print_figure = print_figure
    warnings.simplefilter("always", LegibilityWarning)
