"""Grading an instructor can trust: the reference's checks, no shortcuts, a whole class at once.

Every submission here starts from the minimal chapter of tests/fixtures (one
implement exercise, ``column_means``, worth 2 points, which may not use
``torch.mean`` or ``Tensor.mean``) and one batch run grades them all.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import jupytext
import nbformat
import pytest

from seqlib.exercises import grade, student
from seqlib.exercises.convention import tags
from seqlib.exercises.sandbox import suspicious

FIXTURE = (
    Path(__file__).parent / "fixtures" / "exercises" / "minimal_chapter.py"
)
RIGHT = "def column_means(x):\n    return x.sum(dim=0) / x.shape[0]\n"
WRONG = "def column_means(x):\n    return x.sum(dim=0)\n"


def _edition(tmp: Path) -> nbformat.NotebookNode:
    ref = tmp / "reference.ipynb"
    if not ref.exists():
        nbformat.write(jupytext.read(FIXTURE), ref)
        student.write_student_edition(ref, tmp / "edition")
    return nbformat.read(tmp / "edition" / "reference.ipynb", as_version=4)


def _submission(
    tmp: Path,
    name: str,
    solution: str,
    check: str | None = None,
    extra: str = "",
) -> Path:
    """The student edition with ``solution`` in place of the stub; ``check`` replaces the check cell."""
    nb = _edition(tmp)
    for cell in nb.cells:
        if cell.cell_type == "code" and "NotImplementedError" in cell.source:
            cell.source = solution + extra
        if "check" in tags(cell) and check is not None:
            cell.source = check
    nb.cells = [c for c in nb.cells if c.source != "DELETE"]
    path = tmp / "class" / f"{name}.ipynb"
    path.parent.mkdir(exist_ok=True)
    nbformat.write(nb, path)
    return path


SHORTCUTS = {
    "direct": "def column_means(x):\n    return torch.mean(x, dim=0)\n",
    "method": "def column_means(x):\n    return x.mean(dim=0)\n",
    "aliased": "import torch as tt\nm = tt.mean\n\ndef column_means(x):\n    return m(x, 0)\n",
    "getattr": "def column_means(x):\n    return getattr(torch, 'me' + 'an')(x, 0)\n",
    "imported": "def column_means(x):\n    from torch import mean\n    return mean(x, 0)\n",
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One batch run over a class of eleven submissions."""
    tmp = tmp_path_factory.mktemp("class")
    paths = [
        _submission(tmp, "right", RIGHT),
        _submission(tmp, "wrong", WRONG),
        _submission(tmp, "edited_check", WRONG, check="True"),
        _submission(tmp, "deleted_check", RIGHT, check="DELETE"),
        _submission(
            tmp,
            "tampered",
            WRONG,
            extra=(
                "\nimport seqlib.exercises.checks as hacked\nhacked.check_close = lambda *a, **k: True\n"
                "hacked.check_shape = lambda *a, **k: True\ncheck_close = check_shape = hacked.check_close\n"
            ),
        ),
        *[_submission(tmp, f"shortcut_{k}", v) for k, v in SHORTCUTS.items()],
        _submission(
            tmp,
            "hanging",
            "def column_means(x):\n    while True:\n        pass\n",
        ),
        _submission(
            tmp, "crashing", RIGHT, extra="\nimport os\nos._exit(1)\n"
        ),
    ]
    not_a_notebook = tmp / "class" / "essay.ipynb"
    not_a_notebook.write_text(
        "Dear professor, please find my answers attached."
    )
    paths.append(not_a_notebook)
    out_csv, out_json = tmp / "grades.csv", tmp / "grades"
    code = grade.main(
        [
            *map(str, paths),
            "--reference",
            str(tmp / "reference.ipynb"),
            "--csv",
            str(out_csv),
            "--json-dir",
            str(out_json),
            "--jobs",
            "2",
            "--timeout",
            "400",
            "--cell-timeout",
            "20",
        ]
    )
    with open(out_csv, newline="") as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    return code, rows, out_json


def test_the_batch_gives_every_submission_a_row(graded):
    code, rows, out_json = graded
    assert code == 0 and len(rows) == 13
    assert {p.stem for p in out_json.glob("*.json")} == set(rows)
    header = list(next(iter(rows.values())))
    assert header[:6] == [
        "student",
        "file",
        "status",
        "ex01-column-means",
        "total",
        "max",
    ]


def test_right_and_wrong_answers(graded):
    _, rows, _ = graded
    assert (
        rows["right"]["status"],
        rows["right"]["total"],
        rows["right"]["max"],
    ) == ("graded", "2", "2")
    assert (
        rows["wrong"]["total"] == "0"
        and "values differ" in rows["wrong"]["zeros"]
    )


def test_edited_or_deleted_checks_are_replaced_by_the_reference(graded):
    _, rows, _ = graded
    assert (
        rows["edited_check"]["total"] == "0"
        and "values differ" in rows["edited_check"]["zeros"]
    )
    assert rows["edited_check"]["checks_changed"] == "ex01-column-means"
    assert (
        rows["deleted_check"]["total"] == "2"
        and rows["deleted_check"]["checks_changed"] == "ex01-column-means"
    )
    assert rows["right"]["checks_changed"] == ""


def test_tampering_with_the_check_helpers_is_undone_and_reported(graded):
    _, rows, _ = graded
    row = rows["tampered"]
    assert row["total"] == "0" and "values differ" in row["zeros"]
    assert "seqlib.exercises.checks.check_close" in row["tampering"]
    assert (
        "rebound" in row["tampering"]
        and "assigns hacked.check_close" in row["look_at"]
    )


@pytest.mark.parametrize("kind", sorted(SHORTCUTS))
def test_shortcuts_score_zero_with_the_rule(graded, kind):
    _, rows, _ = graded
    row = rows[f"shortcut_{kind}"]
    assert row["status"] == "graded" and row["total"] == "0", row
    assert re.search(
        r"ShortcutError: .*torch\.(Tensor\.)?mean.* is a shortcut: exercise ex01-column-means "
        r"does not allow torch\.mean, torch\.Tensor\.mean",
        row["zeros"],
    ), row["zeros"]


def test_hanging_crashing_and_non_notebooks_get_their_row(graded):
    _, rows, out_json = graded
    assert (
        rows["hanging"]["status"] == "graded"
        and "timed out" in rows["hanging"]["zeros"]
    )
    assert (
        rows["crashing"]["status"] == "kernel-died"
        and "not reached" in rows["crashing"]["zeros"]
    )
    assert (
        rows["essay"]["status"] == "not-a-notebook"
        and rows["essay"]["max"] == ""
    )
    assert "not a valid Jupyter notebook" in rows["essay"]["message"]
    assert (
        json.loads((out_json / "crashing.json").read_text())["exit_code"]
        == grade.EXIT_KERNEL_DIED
    )


def test_a_chapter_is_found_as_the_reference_by_its_labels(tmp_path):
    from seqlib.exercises.assemble import find_reference, NoReference

    chapter = (
        Path(__file__).parents[1] / "notebooks" / "07_swin_transformer.ipynb"
    )
    edition = student.make_student_notebook(
        nbformat.read(chapter, as_version=4), chapter.name
    )
    assert find_reference(edition) == chapter
    with pytest.raises(NoReference, match="no chapter"):
        find_reference(jupytext.read(FIXTURE))


def test_without_a_reference_the_grader_refuses_and_says_what_to_do(tmp_path):
    path = _submission(tmp_path, "alone", RIGHT)
    report = grade.grade_notebook(path)
    assert report.status == "not-gradable" and "--reference" in report.message


def test_suspicious_code_is_flagged():
    assert suspicious("import sys\nsys.setprofile(None)") == [
        "calls setprofile()"
    ]
    assert suspicious("swin.window_partition = lambda x, m: x") == [
        "assigns swin.window_partition"
    ]
    assert suspicious("f = g.__wrapped__") == ["uses .__wrapped__"]
    assert suspicious("def f(x):\n    return x.sum(0)") == []
