"""The exercises of the real chapters: stubs fail their checks, references pass them.

Grading a chapter runs the whole notebook, so every chapter gets the cheap,
static guarantee (each check cell calls a function that the student edition
turns into a stub raising NotImplementedError), and chapter 1 is graded end to
end, reference and student edition, as an instructor would.
"""

import ast
from pathlib import Path

import pytest

from seqlib.exercises import grade, student, table
from seqlib.exercises.convention import parse

CHAPTERS = table.chapter_notebooks()
GRADED_END_TO_END = [p for p in CHAPTERS if p.stem == "01_autoencoders_pca"]


def _defined_functions(source: str) -> set[str]:
    return {n.name for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)}


def _called_names(source: str) -> set[str]:
    return {n.func.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def _raises_not_implemented_first(source: str, name: str) -> bool:
    fn = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef) and n.name == name)
    body = [s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    first = body[0]
    return (isinstance(first, ast.Raise) and isinstance(first.exc, ast.Call)
            and getattr(first.exc.func, "id", "") == "NotImplementedError")


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_every_check_calls_a_function_that_the_student_edition_stubs(path):
    ref = table.read_notebook(path)
    layout = parse(ref, str(path))
    stu = student.make_student_notebook(ref, str(path))
    stubs = {name: cell.source for cell in stu.cells if cell.cell_type == "code"
             and "NotImplementedError" in cell.source for name in _defined_functions(cell.source)}
    implement = [e.label for e in layout.exercises if e.depth == "implement"]
    assert implement, f"{path.name}: needs at least one implement exercise with self-checks"
    for label in implement:
        assert layout.checks.get(label), f"{path.name}: implement exercise {label} has no check cell"
        for index, _ in layout.checks[label]:
            called = _called_names(ref.cells[index].source) & set(stubs)
            assert called, f"{path.name}: check cell {index} of {label} calls none of the stubbed functions {sorted(stubs)}"
            for name in called:
                assert _raises_not_implemented_first(stubs[name], name), f"{name} stub does not raise first"


@pytest.mark.parametrize("path", GRADED_END_TO_END, ids=[p.name for p in GRADED_END_TO_END])
def test_grader_gives_the_reference_full_marks_and_the_student_edition_zero(path, tmp_path):
    ref_report = grade.grade_notebook(path, timeout=900, cwd=path.parent)
    assert ref_report.status == "graded", ref_report.message
    assert ref_report.exercises and all(r.points == r.max_points > 0 for r in ref_report.exercises), ref_report

    stu_path = student.write_student_edition(path, tmp_path)
    stu_report = grade.grade_notebook(stu_path, timeout=900, cwd=path.parent)
    assert stu_report.status == "graded", stu_report.message
    assert [r.points for r in stu_report.exercises] == [0] * len(ref_report.exercises)
    assert all("NotImplementedError" in r.reason for r in stu_report.exercises), stu_report.exercises
