"""The exercises of the real chapters: stubs fail their checks, references pass them.

Grading a chapter runs the whole notebook, so every chapter gets the cheap,
static guarantee (each check cell calls a function that the student edition
turns into a stub raising NotImplementedError), and two chapters are graded end
to end, reference and student edition, as an instructor would; the script
``scripts/grade_all.py`` grades all eleven the same way.
"""

import ast

import pytest

from seqlib.exercises import batch, student, table
from seqlib.exercises.convention import parse

CHAPTERS = table.chapter_notebooks()
GRADED_END_TO_END = [
    p for p in CHAPTERS if p.stem[:2] in {"05", "10"}
]  # the two quickest chapters


def _defined_functions(source: str) -> set[str]:
    return {
        n.name
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.FunctionDef)
    }


def _called_names(source: str) -> set[str]:
    return {
        n.func.id
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }


def _raises_not_implemented_first(source: str, name: str) -> bool:
    fn = next(
        n
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.FunctionDef) and n.name == name
    )
    body = [
        s
        for s in fn.body
        if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
    ]
    first = body[0]
    return (
        isinstance(first, ast.Raise)
        and isinstance(first.exc, ast.Call)
        and getattr(first.exc.func, "id", "") == "NotImplementedError"
    )


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_every_check_calls_a_function_that_the_student_edition_stubs(path):
    ref = table.read_notebook(path)
    layout = parse(ref, str(path))
    stu = student.make_student_notebook(ref, str(path))
    stubs = {
        name: cell.source
        for cell in stu.cells
        if cell.cell_type == "code" and "NotImplementedError" in cell.source
        for name in _defined_functions(cell.source)
    }
    implement = [e.label for e in layout.exercises if e.depth == "implement"]
    assert implement, (
        f"{path.name}: needs at least one implement exercise with self-checks"
    )
    for label in implement + [
        label for label in layout.checks if label not in implement
    ]:
        assert layout.checks.get(label), (
            f"{path.name}: implement exercise {label} has no check cell"
        )
        for index, _ in layout.checks[label]:
            called = _called_names(ref.cells[index].source) & set(stubs)
            assert called, (
                f"{path.name}: check cell {index} of {label} calls none of the stubbed functions {sorted(stubs)}"
            )
            for name in called:
                assert _raises_not_implemented_first(stubs[name], name), (
                    f"{name} stub does not raise first"
                )


def test_two_chapters_grade_full_and_their_student_editions_zero(tmp_path):
    assert len(GRADED_END_TO_END) == 2
    problems = batch.grade_editions(GRADED_END_TO_END, tmp_path, jobs=2)
    assert not problems, "\n".join(problems)
