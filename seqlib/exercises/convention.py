"""The exercise authoring convention: parse a chapter notebook and validate it.

A chapter ends with exercises written as sphinx-exercise directives; each
solution sits between gated ``solution-start`` / ``solution-end`` markdown
cells, every cell of that block tagged ``solution``; the function a student
writes has its body between ``# BEGIN SOLUTION`` and ``# END SOLUTION``; self-
check cells are tagged ``check`` and name their exercise in the cell metadata.
``book/instructors.md`` documents the convention with a complete example. The
student edition, the grader and the exercise table all read notebooks through
this module, so they agree on what the convention is.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

SOLUTION_TAG = "solution"
CHECK_TAG = "check"
BEGIN_MARK = "# BEGIN SOLUTION"
END_MARK = "# END SOLUTION"
HINT_MARK = "# HINT:"

LABEL_RE = re.compile(
    r"^ex\d{2}-[a-z0-9]+(?:-[a-z0-9]+)*$"
)  # NN: the chapter number
_EXERCISE_RE = re.compile(r"^\s*(?::{3,}|`{3,})\{exercise\}[ \t]*(.*)$", re.M)
_LABEL_OPT_RE = re.compile(r"^\s*:label:\s*(\S+)\s*$", re.M)
_DEPTH_RE = re.compile(
    r"\(depth:\s*(derive|implement|experiment)\s*;\s*"
    r"about\s+(\d+(?:\s*[-–]\s*\d+)?)\s*min(?:ute)?s?\s*\)",
    re.I,
)
_START_RE = re.compile(
    r"^\s*(?::{3,}|`{3,})\{solution-start\}[ \t]*(\S*)", re.M
)
_DOTTED_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_END_RE = re.compile(r"^\s*(?::{3,}|`{3,})\{solution-end\}", re.M)


class ConventionError(ValueError):
    """A notebook breaks the exercise convention; the message names file and
    cell."""


@dataclass(frozen=True)
class Exercise:
    """One exercise directive.

    Attributes:
        label: the ``exNN-slug`` label.
        title: the directive's title.
        depth: ``derive``, ``implement`` or ``experiment``.
        minutes: the expected time as written, e.g. ``"20"`` or ``"15-20"``.
        cell: index of the markdown cell holding the directive.
    """

    label: str
    title: str
    depth: str
    minutes: str
    cell: int


@dataclass
class Layout:
    """Where the exercise parts of a notebook are.

    Attributes:
        exercises: the exercise directives, in notebook order.
        blocks: ``(start, end, label)`` cell indices of each solution block.
        checks: exercise label -> list of ``(cell index, points)``.
        forbid: exercise label -> the dotted names its solution may not call
            (the union of its check cells' ``forbid`` metadata).
        implements: exercise label -> the functions its solution defines (the
            top-level ``def`` of the cells holding ``# BEGIN SOLUTION``).
    """

    exercises: list[Exercise] = field(default_factory=list)
    blocks: list[tuple[int, int, str]] = field(default_factory=list)
    checks: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    forbid: dict[str, list[str]] = field(default_factory=dict)
    implements: dict[str, list[str]] = field(default_factory=dict)

    def max_points(self, label: str) -> float:
        """Total points of an exercise's check cells."""
        return sum(points for _, points in self.checks.get(label, []))


def tags(cell: nbformat.NotebookNode) -> list[str]:
    """The cell's tags (an empty list when it has none)."""
    return list(cell.get("metadata", {}).get("tags", []))


def read_notebook(path) -> nbformat.NotebookNode:
    """Read an ``.ipynb``, or a jupytext percent-format ``.py`` pair (needs
    jupytext)."""
    if str(path).endswith(".py"):
        import jupytext  # only needed for the .py pairs

        return jupytext.read(path)
    return nbformat.read(path, as_version=4)


def _where(name: str, index: int) -> str:
    return f"{name}: cell {index}"


def _parse_exercise(cell, index: int, name: str) -> Exercise | None:
    match = _EXERCISE_RE.search(cell.source)
    if cell.cell_type != "markdown" or not match:
        return None
    label = _LABEL_OPT_RE.search(cell.source)
    if not label:
        raise ConventionError(
            f"{_where(name, index)}: the exercise directive has no ':label:' "
            "option"
        )
    if not LABEL_RE.match(label.group(1)):
        raise ConventionError(
            f"{_where(name, index)}: exercise label {label.group(1)!r} "
            "is not of the form exNN-slug (e.g. ex01-linear-ae)"
        )
    depth = _DEPTH_RE.search(cell.source)
    if not depth:
        raise ConventionError(
            f"{_where(name, index)}: exercise {label.group(1)} does not say "
            "'(depth: derive|implement|experiment; about N minutes)'"
        )
    minutes = re.sub(r"\s*[-–]\s*", "-", depth.group(2))
    return Exercise(
        label.group(1),
        match.group(1).strip(),
        depth.group(1).lower(),
        minutes,
        index,
    )


def _marker_regions(source: str, where: str) -> list[tuple[int, int]]:
    """Line ranges ``(begin, end)`` of the ``# BEGIN/END SOLUTION`` pairs of a
    code cell."""
    regions, begin = [], None
    for number, line in enumerate(source.splitlines()):
        text = line.strip()
        if text.startswith(BEGIN_MARK):
            if begin is not None:
                raise ConventionError(
                    f"{where}: line {number + 1}: '{BEGIN_MARK}' inside "
                    "another one"
                )
            begin = number
        elif text.startswith(END_MARK):
            if begin is None:
                raise ConventionError(
                    f"{where}: line {number + 1}: '{END_MARK}' without "
                    f"'{BEGIN_MARK}'"
                )
            regions.append((begin, number))
            begin = None
    if begin is not None:
        raise ConventionError(
            f"{where}: line {begin + 1}: '{BEGIN_MARK}' without '{END_MARK}'"
        )
    return regions


def marker_regions(
    cell: nbformat.NotebookNode, where: str = "cell"
) -> list[tuple[int, int]]:
    """``# BEGIN/END SOLUTION`` line ranges of a code cell (empty for other
    cells).

    Raises:
        ConventionError: a marker has no partner or markers nest.
    """
    if cell.cell_type != "code":
        return []
    return _marker_regions(cell.source, where)


def _solution_blocks(nb, name: str) -> list[tuple[int, int, str]]:
    blocks, start = [], None
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        opened, closed = (
            _START_RE.search(cell.source),
            _END_RE.search(cell.source),
        )
        if opened:
            if start is not None:
                raise ConventionError(
                    f"{_where(name, index)}: solution-start inside the "
                    f"solution block opened at cell {start[0]}"
                )
            if not opened.group(1):
                raise ConventionError(
                    f"{_where(name, index)}: solution-start names no exercise "
                    "label"
                )
            start = (index, opened.group(1))
        if closed:
            if start is None:
                raise ConventionError(
                    f"{_where(name, index)}: solution-end without "
                    "solution-start"
                )
            blocks.append((start[0], index, start[1]))
            start = None
    if start is not None:
        raise ConventionError(
            f"{_where(name, start[0])}: solution-start ({start[1]}) "
            "without a matching solution-end"
        )
    return blocks


def _check_points(
    cell, index: int, name: str, labels: set[str]
) -> tuple[str, float]:
    label = cell.metadata.get("exercise")
    if cell.cell_type != "code":
        raise ConventionError(
            f"{_where(name, index)}: a '{CHECK_TAG}' cell must be a code cell"
        )
    if not label:
        raise ConventionError(
            f"{_where(name, index)}: check cell has no 'exercise' metadata "
            "key naming the exercise it checks"
        )
    if label not in labels:
        raise ConventionError(
            f"{_where(name, index)}: check cell names exercise {label!r}, "
            f"which no exercise directive defines (defined: {sorted(labels)})"
        )
    points = cell.metadata.get("points", 1)
    if (
        isinstance(points, bool)
        or not isinstance(points, (int, float))
        or points <= 0
    ):
        raise ConventionError(
            f"{_where(name, index)}: check cell 'points' must be a positive "
            f"number, got {points!r}"
        )
    forbid = cell.metadata.get("forbid", [])
    if not isinstance(forbid, list) or not all(
        isinstance(n, str) and _DOTTED_RE.match(n) for n in forbid
    ):
        raise ConventionError(
            f"{_where(name, index)}: check cell 'forbid' must be a list of "
            f'dotted names such as ["seqlib.swin", "einops"], got {forbid!r}'
        )
    return label, points


def defined_functions(source: str) -> list[str]:
    """Names of the top-level functions a code cell defines (empty if it does
    not parse)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [
        n.name
        for n in tree.body
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]


def _exercises(nb, name: str) -> list[Exercise]:
    exercises: list[Exercise] = []
    chapter = re.match(r"(\d+)_", Path(name).name)
    for index, cell in enumerate(nb.cells):
        exercise = _parse_exercise(cell, index, name)
        if exercise is None:
            continue
        if any(e.label == exercise.label for e in exercises):
            raise ConventionError(
                f"{_where(name, index)}: exercise label {exercise.label} "
                "defined twice"
            )
        if chapter and int(exercise.label[2:4]) != int(chapter.group(1)):
            raise ConventionError(
                f"{_where(name, index)}: label {exercise.label} should start "
                f"with ex{int(chapter.group(1)):02d}- (NN is the chapter "
                "number)"
            )
        exercises.append(exercise)
    return exercises


def _check_blocks(
    nb, blocks: list[tuple[int, int, str]], labels: set[str], name: str
) -> None:
    for start, end, label in blocks:
        if label not in labels:
            raise ConventionError(
                f"{_where(name, start)}: solution-start names {label!r}, "
                "which no exercise directive defines"
            )
        for index in range(start, end + 1):
            if SOLUTION_TAG not in tags(nb.cells[index]):
                raise ConventionError(
                    f"{_where(name, index)}: cell inside the solution of "
                    f"{label} lacks the '{SOLUTION_TAG}' tag"
                )


def parse(nb: nbformat.NotebookNode, name: str = "notebook") -> Layout:
    """Parse and validate a notebook's exercises, solution blocks and check
    cells.

    Args:
        nb: the notebook.
        name: how error messages refer to it (usually its path; a file name
            starting with ``NN_`` makes ``exNN`` in every label compulsory).

    Returns:
        The notebook's exercise layout.

    Raises:
        ConventionError: the first violation found, naming file and cell index.
    """
    layout = Layout(
        exercises=_exercises(nb, name), blocks=_solution_blocks(nb, name)
    )
    labels = {e.label for e in layout.exercises}
    _check_blocks(nb, layout.blocks, labels, name)
    inside = {
        i for start, end, _ in layout.blocks for i in range(start, end + 1)
    }
    for index, cell in enumerate(nb.cells):
        if marker_regions(
            cell, _where(name, index)
        ) and SOLUTION_TAG not in tags(cell):
            raise ConventionError(
                f"{_where(name, index)}: code cell with '{BEGIN_MARK}' "
                f"lacks the '{SOLUTION_TAG}' tag"
            )
        if CHECK_TAG in tags(cell):
            if index in inside or SOLUTION_TAG in tags(cell):
                raise ConventionError(
                    f"{_where(name, index)}: check cell tagged "
                    f"'{SOLUTION_TAG}' or inside a solution block "
                    "(it would vanish from the student edition); move it "
                    "after solution-end"
                )
            label, points = _check_points(cell, index, name, labels)
            layout.checks.setdefault(label, []).append((index, points))
            for banned in cell.metadata.get("forbid", []):
                layout.forbid.setdefault(label, [])
                if banned not in layout.forbid[label]:
                    layout.forbid[label].append(banned)
    for start, end, label in layout.blocks:
        for index in range(start, end + 1):
            if marker_regions(nb.cells[index]):
                layout.implements.setdefault(label, []).extend(
                    defined_functions(nb.cells[index].source)
                )
    return layout


def reference_imports(nb: nbformat.NotebookNode) -> str:
    """The top-level import statements of a notebook's own code (not solutions
    or checks).

    The grader re-runs them before every check, so that the names a check uses
    (``swin``, ``check_close``, ``F`` ...) mean the real modules and helpers.
    """
    statements = []
    for cell in nb.cells:
        if cell.cell_type != "code" or {SOLUTION_TAG, CHECK_TAG} & set(
            tags(cell)
        ):
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        statements += [
            ast.unparse(n)
            for n in tree.body
            if isinstance(n, (ast.Import, ast.ImportFrom))
        ]
    return "\n".join(dict.fromkeys(statements))
