"""The "What each chapter's exercises cover" table, generated from the
notebooks.

Each row comes from an exercise directive: its title and label, the depth and
the expected time written as ``(depth: implement; about 15 minutes)``.

Usage::

    python -m seqlib.exercises.table                             # print the
    table python -m seqlib.exercises.table --update book/instructors.md  #
    rewrite it in place

``--update`` replaces the lines between ``<!-- exercise-table -->`` and
``<!-- /exercise-table -->``; a test checks that ``book/instructors.md`` is
current.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

from seqlib.exercises.convention import ConventionError, parse, read_notebook

START, END = "<!-- exercise-table -->", "<!-- /exercise-table -->"
HEADER = [
    "| Chapter | Exercise | Depth | Expected time |",
    "|---|---|---|---|",
]
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def chapter_notebooks(directory: Path = NOTEBOOKS) -> list[Path]:
    """The chapter notebooks in ``directory``: each ``.ipynb``, or its jupytext
    ``.py`` pair when the ``.ipynb`` is not there yet. Executed copies that
    ``scripts/full_run.py`` writes beside them (``NN_x.full.ipynb``,
    ``NN_x.dry-run.ipynb``) are not chapters."""
    stems = {
        p.stem
        for pattern in ("[0-9]*.ipynb", "[0-9]*.py")
        for p in directory.glob(pattern)
        if "." not in p.stem
    }
    paths = [directory / f"{stem}.ipynb" for stem in sorted(stems)]
    return [p if p.exists() else p.with_suffix(".py") for p in paths]


def _chapter(path: Path, nb: nbformat.NotebookNode) -> str:
    number = re.match(r"(\d+)", path.stem)
    title = next(
        (
            m.group(1).strip()
            for cell in nb.cells
            if cell.cell_type == "markdown"
            for m in [re.search(r"^#\s+(.+)$", cell.source, re.M)]
            if m
        ),
        path.stem,
    )
    return f"{int(number.group(1))}. {title}" if number else title


def table_rows(paths: list[Path]) -> list[str]:
    """Markdown rows, one per exercise of the given notebooks, in chapter
    order.

    Raises:
        ConventionError: a notebook breaks the exercise convention.
    """
    rows = []
    for path in paths:
        nb = read_notebook(path)
        chapter = _chapter(path, nb)
        for exercise in parse(nb, str(path)).exercises:
            title = exercise.title.replace("|", "\\|")
            rows.append(
                f"| {chapter} | {title} (`{exercise.label}`) | "
                f"{exercise.depth} | about {exercise.minutes} min |"
            )
    return rows


def markdown_table(paths: list[Path] | None = None) -> str:
    """The whole table, header included (a placeholder row when there are no
    exercises)."""
    rows = table_rows(chapter_notebooks() if paths is None else paths)
    return "\n".join(HEADER + (rows or ["| (none yet) | | | |"]))


def replace_table(text: str, table: str) -> str:
    """``text`` with the region between the table markers replaced by
    ``table``.

    Raises:
        ValueError: the markers are missing.
    """
    if START not in text or END not in text:
        raise ValueError(f"the page needs the marker lines {START} and {END}")
    head, rest = text.split(START, 1)
    return f"{head}{START}\n{table}\n{END}{rest.split(END, 1)[1]}"


def main(argv: list[str] | None = None) -> int:
    """Print the table, or with ``--update PAGE`` rewrite it in the page."""
    parser = argparse.ArgumentParser(
        prog="python -m seqlib.exercises.table",
        description=__doc__.split("\n")[0],
    )
    parser.add_argument(
        "notebooks",
        nargs="*",
        type=Path,
        help="default: notebooks/[0-9]*.ipynb (or .py)",
    )
    parser.add_argument(
        "--update", type=Path, help="rewrite the table in this Markdown page"
    )
    args = parser.parse_args(argv)
    try:
        table = markdown_table(args.notebooks or None)
        if args.update:
            args.update.write_text(
                replace_table(args.update.read_text(), table)
            )
            print(f"updated the exercise table in {args.update}")
        else:
            print(table)
    except (ConventionError, ValueError, OSError) as err:
        print(f"table: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
