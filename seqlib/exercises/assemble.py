"""Build the notebook the grader runs: the submission with the reference's
checks and guard.

The submission's own check cells are never run. Each exercise's check cells are
taken from the reference (the chapter in this repository, or an edition given
with ``--reference``) and put where the submission had them; where the student
deleted them, after the last cell of the exercise's section (the cells from its
directive to the next directive). Around them the grader adds small cells of
its own (see :mod:`seqlib.exercises.sandbox`): one that installs the shortcut
rules before anything runs, one before and after each exercise section with
rules, and a line ahead of every check that undoes tampering.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from seqlib.exercises.table import chapter_notebooks

from seqlib.exercises.convention import (
    CHECK_TAG,
    Layout,
    _LABEL_OPT_RE,
    defined_functions,
    parse,
    read_notebook,
    reference_imports,
    tags,
)

ROOT = Path(__file__).resolve().parents[2]
_GUARD = '__import__("seqlib.exercises.sandbox", fromlist=["sandbox"])'


class NoReference(ValueError):
    """No reference could be found for a submission."""


@dataclass
class Step:
    """One cell of the graded run: a submission cell, a reference check, or the
    grader's own."""

    kind: str  # "cell", "check" or "guard"
    label: str | None = (
        None  # the exercise of a check, or of the section a cell lies in
    )
    cell: int | None = (
        # index in the submission (kind "cell") or the reference ("check")
        None
    )


@dataclass
class Assembly:
    """The notebook to run, what each of its cells is, and what the submission
    changed."""

    nb: nbformat.NotebookNode
    steps: list[Step]
    layout: Layout  # the reference's
    changed: list[str] = field(
        default_factory=list
    )  # labels whose check cells differ from the reference


def _normalised(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def submission_labels(nb) -> list[str]:
    """Exercise labels a notebook mentions (directives and check metadata),
    leniently."""
    found = []
    for cell in nb.cells:
        if cell.cell_type == "markdown" and "{exercise}" in cell.source:
            found += [m.group(1) for m in _LABEL_OPT_RE.finditer(cell.source)]
        label = cell.get("metadata", {}).get("exercise")
        if isinstance(label, str):
            found.append(label)
    return list(dict.fromkeys(found))


def find_reference(nb, folder: Path = ROOT / "notebooks") -> Path:
    """The chapter of this repository that defines the submission's exercises.

    Raises:
        NoReference: no chapter defines any of its labels.
    """
    labels = submission_labels(nb)
    for number in dict.fromkeys(
        label[2:4] for label in labels if re.match(r"ex\d{2}-", label)
    ):
        for path in chapter_notebooks(folder):
            if path.suffix != ".ipynb" or not path.name.startswith(
                f"{number}_"
            ):
                continue
            if set(labels) & {
                e.label
                for e in parse(read_notebook(path), path.name).exercises
            }:
                return path
    raise NoReference(
        f"no chapter in {folder} defines the exercises "
        f"{labels or '(none found)'}"
    )


def _is_check(cell) -> bool:
    return CHECK_TAG in tags(cell) or "exercise" in cell.get("metadata", {})


def _sections(nb, labels: set[str]) -> list[str | None]:
    """For each submission cell, the exercise whose section it lies in (None
    before the first)."""
    current, result = None, []
    for cell in nb.cells:
        if cell.cell_type == "markdown" and "{exercise}" in cell.source:
            found = [
                m.group(1)
                for m in _LABEL_OPT_RE.finditer(cell.source)
                if m.group(1) in labels
            ]
            current = found[0] if found else current
        result.append(current)
    return result


def implemented(ref, layout: Layout, label: str) -> list[str]:
    """The functions an exercise asks for: its solution's, or the stubs its
    checks call."""
    if layout.implements.get(label):
        return layout.implements[label]
    stubs = {
        name
        for cell in ref.cells
        if cell.cell_type == "code" and "NotImplementedError" in cell.source
        for name in defined_functions(cell.source)
    }
    called = set()
    for index, _ in layout.checks.get(label, []):
        called |= {
            n.func.id
            for n in ast.walk(ast.parse(ref.cells[index].source))
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        }
    return sorted(called & stubs)


def _code(source: str, **metadata) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata.update(metadata)
    return cell


def assemble(submission, ref, ref_name: str, notes: str) -> Assembly:
    """The notebook to run for ``submission``, graded against ``ref``.

    Args:
        submission: the student's notebook (read leniently: it may break the
            convention).
        ref: the reference notebook (must follow the convention).
        ref_name: how messages name the reference.
        notes: a file the guard appends its findings to.
    """
    layout = parse(ref, ref_name)
    labels = {e.label for e in layout.exercises}
    section = _sections(submission, labels)
    theirs: dict[str, list[str]] = {}
    for cell in submission.cells:
        if _is_check(cell):
            theirs.setdefault(str(cell.metadata.get("exercise")), []).append(
                _normalised(cell.source)
            )
    changed = [
        label
        for label in layout.checks
        if theirs.get(label, [])
        != [_normalised(ref.cells[i].source) for i, _ in layout.checks[label]]
    ]

    # Where each exercise's reference checks go: at the submission's first
    # check of that exercise, else after the last cell of its section, else at
    # the end.
    anchor: dict[str, int] = {}
    for index, cell in enumerate(submission.cells):
        label = cell.metadata.get("exercise") if _is_check(cell) else None
        if label in layout.checks and label not in anchor:
            anchor[label] = index
    for label in layout.checks:
        if label not in anchor:
            inside = [i for i, s in enumerate(section) if s == label]
            anchor[label] = inside[-1] + 1 if inside else len(submission.cells)

    imports = reference_imports(ref)
    cells = [
        _code(
            f"{_GUARD}.install({layout.forbid!r}, notes={notes!r})",
            grader=True,
        )
    ]
    steps = [Step("guard")]
    guarded = None

    def toggle(label):
        nonlocal guarded
        wanted = label if label in layout.forbid else None
        if wanted != guarded:
            cells.append(_code(f"{_GUARD}.importing({wanted!r})", grader=True))
            steps.append(Step("guard"))
            guarded = wanted

    def add_checks(position: int):
        for label, at in anchor.items():
            if at != position:
                continue
            toggle(None)
            names = implemented(ref, layout, label)
            for ref_index, points in layout.checks[label]:
                source = (
                    f"{_GUARD}.before_check(globals(), {label!r}, {names!r}, "
                    f"{imports!r})\n" + ref.cells[ref_index].source
                )
                cells.append(
                    _code(
                        source, tags=[CHECK_TAG], exercise=label, points=points
                    )
                )
                steps.append(Step("check", label, ref_index))

    for index, cell in enumerate(submission.cells):
        add_checks(index)
        if _is_check(cell):
            continue
        if cell.cell_type == "code":
            toggle(section[index])
        cells.append(nbformat.from_dict(dict(cell)))
        steps.append(Step("cell", section[index], index))
    add_checks(len(submission.cells))
    nb = nbformat.v4.new_notebook(
        cells=cells, metadata=submission.get("metadata", {})
    )
    return Assembly(nb, steps, layout, changed)
