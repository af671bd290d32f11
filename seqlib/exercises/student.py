"""The student edition of a chapter notebook: solutions out, stubs and checks
in.

Every cell tagged ``solution`` is removed, except a code cell holding
``# BEGIN SOLUTION`` ... ``# END SOLUTION``: it stays, with the marked lines
replaced by ``raise NotImplementedError(<hint>)``. Outputs, execution counts
and solution-related metadata are cleared, so no text of a solution survives
anywhere in the file. The convention is in ``book/instructors.md``.

Usage::

    seqlib-student                            # every notebooks/*.ipynb ->
    student/ seqlib-student notebooks/01_autoencoders_pca.ipynb -o handout/
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from pathlib import Path

import nbformat

from seqlib.exercises.table import chapter_notebooks

from seqlib.exercises.convention import (
    CHECK_TAG,
    HINT_MARK,
    SOLUTION_TAG,
    ConventionError,
    marker_regions,
    parse,
    read_notebook,
    tags,
)

DEFAULT_HINT = "write this function"
_NOTEBOOK_KEYS = ("kernelspec", "language_info")
_CHECK_KEYS = ("exercise", "points", "forbid")


def stub_source(source: str, where: str = "cell") -> str:
    """Replace each ``# BEGIN/END SOLUTION`` region of ``source`` by a stub.

    The stub is ``raise NotImplementedError("<hint>")`` at the indentation of
    the ``# BEGIN SOLUTION`` line; the hint is the text of a ``# HINT:`` line
    right after it, or ``"write this function"``.

    Args:
        source: a code cell's source.
        where: how error messages refer to the cell.

    Returns:
        The stubbed source.

    Raises:
        ConventionError: unbalanced or nested markers.
    """
    lines = source.splitlines()
    cell = nbformat.v4.new_code_cell(source)
    for begin, end in reversed(marker_regions(cell, where)):
        indent = re.match(r"\s*", lines[begin]).group(0)
        hint = DEFAULT_HINT
        if begin + 1 < end and lines[begin + 1].strip().startswith(HINT_MARK):
            hint = (
                lines[begin + 1].strip()[len(HINT_MARK) :].strip()
                or DEFAULT_HINT
            )
        lines[begin : end + 1] = _raise_lines(indent, hint)
    return "\n".join(lines)


def _raise_lines(indent: str, hint: str, width: int = 79) -> list[str]:
    """``raise NotImplementedError(hint)`` in lines of at most ``width``
    characters where the hint allows (a long hint becomes an implicit
    concatenation of string pieces; the message is unchanged)."""
    one = f"{indent}raise NotImplementedError({_quote(hint)})"
    inner = indent + "    "
    pieces = textwrap.wrap(
        hint,
        max(20, width - len(inner) - 2),
        drop_whitespace=False,
        break_long_words=False,
        break_on_hyphens=False,
    )
    if len(one) <= width or "".join(pieces) != hint:
        return [one]
    return [
        f"{indent}raise NotImplementedError(",
        *(f"{inner}{_quote(piece)}" for piece in pieces),
        f"{indent})",
    ]


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _scrub_metadata(cell: nbformat.NotebookNode) -> dict:
    """Cell metadata of the student edition: non-solution tags, a check's
    exercise/points, and myst-nb's display options (a figure's alt text)."""
    kept = {}
    if "mystnb" in cell.metadata:  # how the book shows outputs (alt text)
        kept["mystnb"] = cell.metadata["mystnb"]
    cell_tags = [t for t in tags(cell) if t != SOLUTION_TAG]
    if cell_tags:
        kept["tags"] = cell_tags
    if CHECK_TAG in cell_tags:
        kept.update(
            {k: cell.metadata[k] for k in _CHECK_KEYS if k in cell.metadata}
        )
    return kept


def student_cell(
    cell: nbformat.NotebookNode,
    where: str = "cell",
    *,
    keep_outputs: bool = False,
) -> nbformat.NotebookNode | None:
    """The student version of one cell, or ``None`` when it is a solution.

    Args:
        cell: a cell of the reference notebook.
        where: how error messages refer to the cell.
        keep_outputs: keep the outputs of non-solution code cells (the
            solutions-free book keeps them; the student edition does not).

    Returns:
        A new cell, or ``None`` when the cell is removed.
    """
    is_stub = bool(marker_regions(cell, where))
    if SOLUTION_TAG in tags(cell) and not is_stub:
        return None
    new = nbformat.from_dict(json.loads(json.dumps(cell)))
    new.metadata = nbformat.from_dict(_scrub_metadata(cell))
    if new.cell_type == "code":
        new.source = (
            stub_source(cell.source, where) if is_stub else cell.source
        )
        if is_stub or not keep_outputs:
            new.outputs, new.execution_count = [], None
    return new


def make_student_notebook(
    nb: nbformat.NotebookNode, name: str = "notebook"
) -> nbformat.NotebookNode:
    """Make the student edition of a reference notebook.

    Args:
        nb: the reference notebook (solutions included); it is not modified.
        name: how error messages refer to it (usually its path).

    Returns:
        A new notebook without solutions, with stubs, checks and no outputs.

    Raises:
        ConventionError: the notebook breaks the exercise convention.
    """
    parse(nb, name)
    student = nbformat.v4.new_notebook()
    student.metadata = nbformat.from_dict(
        {
            k: json.loads(json.dumps(nb.metadata[k]))
            for k in _NOTEBOOK_KEYS
            if k in nb.metadata
        }
    )
    for index, cell in enumerate(nb.cells):
        new = student_cell(cell, f"{name}: cell {index}")
        if new is not None:
            student.cells.append(new)
    return student


def _default_notebooks() -> list[Path]:
    here = Path("notebooks")
    if not here.is_dir():
        here = Path(__file__).resolve().parents[2] / "notebooks"
    return [p for p in chapter_notebooks(here) if p.suffix == ".ipynb"]


def _read(path: Path) -> nbformat.NotebookNode:
    try:
        return read_notebook(path)
    except FileNotFoundError:
        raise ConventionError(f"{path}: no such file") from None
    except Exception as err:  # nbformat raises several types for bad files
        raise ConventionError(
            f"{path}: not a readable notebook ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''})"
        ) from None


def write_student_edition(path: Path, out_dir: Path) -> Path:
    """Write the student edition of the notebook at ``path`` into ``out_dir``.

    Args:
        path: a reference ``.ipynb`` (or its jupytext ``.py`` pair).
        out_dir: the output directory, created if needed.

    Returns:
        The path written: ``out_dir/<stem>.ipynb``.

    Raises:
        ConventionError: unreadable notebook or convention violation.
    """
    student = make_student_notebook(_read(path), str(path))
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{path.stem}.ipynb"
    nbformat.write(student, target)
    return target


def main(argv: list[str] | None = None) -> int:
    """Command line entry point ``seqlib-student``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="seqlib-student",
        description="Write student editions (solutions removed, stubs kept).",
    )
    parser.add_argument(
        "notebooks",
        nargs="*",
        type=Path,
        help="reference notebooks (default: notebooks/*.ipynb)",
    )
    parser.add_argument(
        "-o",
        "--output-dir",
        type=Path,
        default=Path("student"),
        help="where to write the student editions (default: student/)",
    )
    args = parser.parse_args(argv)
    paths = args.notebooks or _default_notebooks()
    if not paths:
        print(
            "seqlib-student: error: no notebooks given and none found in "
            "notebooks/",
            file=sys.stderr,
        )
        return 1
    failed = 0
    for path in paths:
        try:
            target = write_student_edition(path, args.output_dir)
        except ConventionError as err:
            print(f"seqlib-student: error: {err}", file=sys.stderr)
            failed += 1
            continue
        print(f"wrote {target}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
