"""Write every chapter's first code cell from seqlib.notebook.first_cell().

Usage: python scripts/first_cells.py [--check] [notebooks/NN_topic.py ...]

The first code cell of notebooks/NN_*.py (jupytext percent format) installs
seqlib on Colab and calls ``start("chNN")``; its text lives in one place,
:func:`seqlib.notebook.first_cell`. Without ``--check`` this script rewrites
the cell in each chapter whose cell differs (then re-pair and re-execute the
notebook: ``python scripts/execute.py notebooks/NN_topic.py``). With
``--check`` it only lists the chapters whose cell differs and exits 1 if any.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from seqlib.notebook import first_cell  # noqa: E402

CHAPTER_FILE = re.compile(r"^(\d\d)_.+\.py$")


def chapter_paths(root: Path = ROOT) -> list[Path]:
    """The chapters' jupytext sources, ``notebooks/NN_*.py``, in order."""
    return sorted(
        p
        for p in (root / "notebooks").glob("*.py")
        if CHAPTER_FILE.match(p.name)
    )


def chapter_of(path: Path) -> str:
    """The chapter key of ``notebooks/NN_topic.py``: ``"chNN"``."""
    match = CHAPTER_FILE.match(path.name)
    if match is None:
        raise ValueError(
            f"expected a chapter file named NN_topic.py; got {path.name!r}"
        )
    return f"ch{match.group(1)}"


def _is_code_marker(line: str) -> bool:
    if not (line == "# %%" or line.startswith("# %% ")):
        return False
    return not re.search(r"\[(markdown|md|raw)\]", line)


def first_code_cell(text: str) -> tuple[int, int]:
    """Where the first code cell's source lies in a percent-format notebook.

    Args:
        text: the notebook's ``.py`` text.

    Returns:
        ``(start, end)`` line indices: lines ``start:end`` of
        ``text.splitlines()`` are the cell's source, from the line after its
        ``# %%`` marker to the last non-blank line before the next cell.

    Raises:
        ValueError: the text has no code cell.
    """
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if _is_code_marker(line):
            start = end = i + 1
            while end < len(lines) and not lines[end].startswith("# %%"):
                end += 1
            while end > start and not lines[end - 1].strip():
                end -= 1
            return start, end
    raise ValueError("expected a code cell (a '# %%' line); found none")


def current_cell(path: Path) -> str:
    """The first code cell's source in ``path``, ending in a newline."""
    lines = path.read_text().splitlines()
    start, end = first_code_cell("\n".join(lines))
    return "".join(line + "\n" for line in lines[start:end])


def differing(paths: list[Path] | None = None) -> list[str]:
    """The chapters whose first code cell is not ``first_cell(chapter)``.

    Args:
        paths: the chapter files to check; default every chapter.

    Returns:
        Their chapter keys (``"chNN"``), in order.
    """
    paths = chapter_paths() if paths is None else paths
    return [
        chapter_of(p)
        for p in paths
        if current_cell(p) != first_cell(chapter_of(p))
    ]


def rewrite(path: Path) -> bool:
    """Replace the first code cell of ``path`` by ``first_cell()``.

    Returns:
        Whether the file changed.
    """
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    start, end = first_code_cell(text)
    new = first_cell(chapter_of(path)).splitlines(keepends=True)
    if lines[start:end] == new:
        return False
    path.write_text("".join(lines[:start] + new + lines[end:]))
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="only list the chapters whose first cell differs; exit 1 if any",
    )
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args(argv)
    paths = args.paths or chapter_paths()
    if args.check:
        bad = differing(paths)
        if bad:
            print(
                "first code cell differs from seqlib.notebook.first_cell() "
                f"in {len(bad)} chapters: {', '.join(bad)} (run "
                "python scripts/first_cells.py, then re-execute them)"
            )
            return 1
        print(f"first code cell up to date in {len(paths)} chapters")
        return 0
    changed = [p for p in paths if rewrite(p)]
    for p in changed:
        print(f"rewrote the first cell of {p}")
    if changed:
        print(
            "re-pair and re-execute them: python scripts/execute.py "
            + " ".join(str(p) for p in changed)
        )
    else:
        print(f"first code cell up to date in {len(paths)} chapters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
