"""Tests for the exercise tooling: student edition, convention checks, grader, book switch.

The reference notebook is ``tests/fixtures/exercises/minimal_chapter.py`` (jupytext
percent format), the same file ``book/instructors.md`` shows as the example.
"""

from __future__ import annotations

import html as html_lib
import json
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from seqlib.exercises import book, grade, student, table
from seqlib.exercises.convention import (
    ConventionError,
    marker_regions,
    parse,
    tags,
)

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "exercises" / "minimal_chapter.py"
KERNELSPEC = {
    "name": "python3",
    "display_name": "Python 3",
    "language": "python",
}


def reference() -> nbformat.NotebookNode:
    return jupytext.read(FIXTURE)


def solution_lines(nb: nbformat.NotebookNode) -> list[str]:
    """Non-trivial lines of the solutions that appear nowhere outside them in ``nb``."""
    kept, secret = [], []
    for cell in nb.cells:
        lines = cell.source.splitlines()
        if "solution" not in tags(cell):
            kept += lines
            continue
        inside = {
            i
            for begin, end in marker_regions(cell)
            for i in range(begin, end + 1)
        }
        if not inside:
            secret += lines
            continue
        kept += [line for i, line in enumerate(lines) if i not in inside]
        secret += [
            line
            for i, line in enumerate(lines)
            if i in inside and "# HINT:" not in line
        ]
    kept_text = "\n".join(kept)
    return [
        s
        for s in (line.strip() for line in secret)
        if len(s) >= 8 and any(c.isalnum() for c in s) and s not in kept_text
    ]


def assert_no_solution_text(ref: nbformat.NotebookNode, path: Path) -> None:
    raw = path.read_text()
    sources = "\n".join(
        cell.source for cell in nbformat.read(path, as_version=4).cells
    )
    secrets = solution_lines(ref)
    leaked = [s for s in secrets if s in raw or s in sources]
    assert not leaked, f"solution text in the student edition: {leaked}"


def tagged(cell, *cell_tags, **metadata):
    cell.metadata.update(tags=list(cell_tags), **metadata)
    return cell


def exercise(label: str, depth: str = "implement") -> nbformat.NotebookNode:
    return new_markdown_cell(
        f":::{{exercise}} Title\n:label: {label}\n\nDo it. "
        f"(depth: {depth}; about 5 minutes)\n:::"
    )


def notebook(*cells) -> nbformat.NotebookNode:
    return new_notebook(cells=list(cells), metadata={"kernelspec": KERNELSPEC})


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The reference notebook and its student edition, written as .ipynb files."""
    folder = tmp_path_factory.mktemp("exercises")
    ref = folder / "reference.ipynb"
    nbformat.write(reference(), ref)
    assert student.main([str(ref), "-o", str(folder / "student")]) == 0
    return {
        "reference": ref,
        "student": folder / "student" / "reference.ipynb",
    }


# ----- student edition -------------------------------------------------------------------------


def test_student_edition_has_no_solution_text(files):
    secrets = "\n".join(solution_lines(reference()))
    assert (
        "return column_totals / x.shape[0]" in secrets
    )  # the search looks for code
    assert "the secret of every column statistic" in secrets  # and for prose
    assert_no_solution_text(reference(), files["student"])
    assert "solution-start" not in files["student"].read_text()


def test_student_edition_keeps_checks_and_scrubs_metadata(files):
    nb = nbformat.read(files["student"], as_version=4)
    checks = [c for c in nb.cells if "check" in tags(c)]
    assert [c.metadata for c in checks] == [
        {
            "tags": ["check"],
            "exercise": "ex01-column-means",
            "points": 2,
            "forbid": ["torch.mean", "torch.Tensor.mean"],
        }
    ]
    assert all("solution" not in tags(c) for c in nb.cells)
    assert all(
        c.outputs == [] and c.execution_count is None
        for c in nb.cells
        if c.cell_type == "code"
    )
    assert set(nb.metadata) == {
        "kernelspec"
    }  # the jupytext pairing is not for students
    assert sum(":::{exercise}" in c.source for c in nb.cells) == 2


def test_stub_raises_not_implemented_with_the_hint(files):
    nb = nbformat.read(files["student"], as_version=4)
    (stub,) = [c for c in nb.cells if "def column_means" in c.source]
    assert (
        '"""Mean over the rows' in stub.source
    )  # signature and docstring stay
    namespace: dict = {}
    exec(stub.source, namespace)
    with pytest.raises(
        NotImplementedError,
        match="sum over dim 0, then divide by the number of rows",
    ):
        namespace["column_means"](None)


def test_stub_without_hint_keeps_indentation():
    source = (
        "class A:\n    def f(self):\n        '''Doc.'''\n        # BEGIN SOLUTION\n"
        "        return 42\n        # END SOLUTION\n\n    def g(self):\n        return 1"
    )
    stubbed = student.stub_source(source)
    assert "42" not in stubbed and "def g(self)" in stubbed
    namespace: dict = {}
    exec(stubbed, namespace)
    with pytest.raises(NotImplementedError, match="write this function"):
        namespace["A"]().f()


def test_make_student_notebook_does_not_modify_the_reference():
    ref = reference()
    before = json.dumps(ref, sort_keys=True)
    student.make_student_notebook(ref)
    assert json.dumps(ref, sort_keys=True) == before


# ----- convention violations -------------------------------------------------------------------

SOLUTION_START = "```{solution-start} ex01-a\n:class: dropdown\n```"
SOLUTION_END = "```{solution-end}\n```"
VIOLATIONS = {
    "begin without end": (
        [
            exercise("ex01-a"),
            tagged(new_markdown_cell(SOLUTION_START), "solution"),
            tagged(
                new_code_cell("def f():\n    # BEGIN SOLUTION\n    return 1"),
                "solution",
            ),
            tagged(new_markdown_cell(SOLUTION_END), "solution"),
        ],
        "cell 2: line 2: '# BEGIN SOLUTION' without '# END SOLUTION'",
    ),
    "start without end": (
        [
            exercise("ex01-a"),
            tagged(new_markdown_cell(SOLUTION_START), "solution"),
            tagged(new_code_cell("x = 1"), "solution"),
        ],
        "cell 1: solution-start (ex01-a) without a matching solution-end",
    ),
    "check without exercise key": (
        [exercise("ex01-a"), tagged(new_code_cell("assert True"), "check")],
        "cell 1: check cell has no 'exercise' metadata key",
    ),
    "check naming an undefined label": (
        [
            exercise("ex01-a"),
            tagged(new_code_cell("assert True"), "check", exercise="ex01-b"),
        ],
        "cell 1: check cell names exercise 'ex01-b', which no exercise directive defines",
    ),
    "untagged cell inside a solution": (
        [
            exercise("ex01-a"),
            tagged(new_markdown_cell(SOLUTION_START), "solution"),
            new_code_cell("answer = 42"),
            tagged(new_markdown_cell(SOLUTION_END), "solution"),
        ],
        "cell 2: cell inside the solution of ex01-a lacks the 'solution' tag",
    ),
    "label not exNN-slug": (
        [exercise("exercise-one")],
        "is not of the form exNN-slug",
    ),
    "missing depth": (
        [new_markdown_cell(":::{exercise} T\n:label: ex01-a\n\nDo it.\n:::")],
        "(depth: derive|implement|experiment; about N minutes)",
    ),
}


@pytest.mark.parametrize("case", list(VIOLATIONS))
def test_convention_violations_name_file_and_cell(case):
    cells, message = VIOLATIONS[case]
    with pytest.raises(ConventionError) as err:
        student.make_student_notebook(notebook(*cells), "ch.ipynb")
    assert str(err.value).startswith("ch.ipynb: cell ")
    assert message in str(err.value)


def test_label_must_carry_the_chapter_number():
    with pytest.raises(ConventionError, match="should start with ex03-"):
        parse(notebook(exercise("ex01-a")), "notebooks/03_vit.ipynb")


def test_student_cli_reports_violations(tmp_path, capsys):
    path = tmp_path / "ch.ipynb"
    nbformat.write(
        notebook(*VIOLATIONS["check without exercise key"][0]), path
    )
    assert student.main([str(path), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"{path}: cell 1: check cell has no 'exercise' metadata key" in err
    assert not (tmp_path / "out" / "ch.ipynb").exists()


# ----- grader ----------------------------------------------------------------------------------


def test_reference_grades_full(files, tmp_path):
    record = tmp_path / "record.json"
    assert (
        grade.main(
            [
                str(files["reference"]),
                "--json",
                str(record),
                "--timeout",
                "120",
                "--reference",
                str(files["reference"]),
            ]
        )
        == 0
    )
    data = json.loads(record.read_text())
    assert (data["status"], data["total"], data["max"], data["exit_code"]) == (
        "graded",
        2,
        2,
        0,
    )
    assert data["exercises"] == [
        {
            "label": "ex01-column-means",
            "title": "Column means",
            "points": 2,
            "max_points": 2,
            "status": "passed",
            "reason": "",
        }
    ]
    assert (
        data["errors"] == []
        and data["notebook"] == str(files["reference"])
        and data["timestamp"]
    )


def test_student_edition_grades_zero_with_the_reason(files, capfd):
    assert (
        grade.main(
            [
                str(files["student"]),
                "--timeout",
                "120",
                "--reference",
                str(files["reference"]),
            ]
        )
        == 0
    )
    out = capfd.readouterr().out
    assert (
        "NotImplementedError: sum over dim 0" in out and "Traceback" not in out
    )
    report = grade.grade_notebook(
        files["student"], reference=files["reference"], timeout=120
    )
    (result,) = report.exercises
    assert (result.points, result.max_points, result.status) == (
        0,
        2,
        "failed",
    )
    assert result.reason.startswith("NotImplementedError: sum over dim 0")


def hanging_notebook() -> nbformat.NotebookNode:
    """ex01-a's function never returns; ex01-b's check passes. No torch: quick kernel."""
    return notebook(
        exercise("ex01-a"),
        new_code_cell("def f():\n    while True:\n        pass"),
        tagged(new_code_cell("assert f() == 1"), "check", exercise="ex01-a"),
        exercise("ex01-b"),
        tagged(new_code_cell("assert 1 + 1 == 2"), "check", exercise="ex01-b"),
    )


def test_hanging_cell_is_interrupted_and_grading_goes_on(tmp_path):
    path = tmp_path / "hang.ipynb"
    nbformat.write(hanging_notebook(), path)
    report = grade.grade_notebook(
        path, own_checks=True, timeout=60, cell_timeout=2
    )
    assert (
        report.status == "graded"
        and report.exit_code == 0
        and report.elapsed_s < 40
    )
    assert [(e.label, e.points) for e in report.exercises] == [
        ("ex01-a", 0),
        ("ex01-b", 1),
    ]
    assert report.exercises[0].reason.startswith("timed out")


def test_notebook_past_the_time_limit_is_reported(tmp_path, capfd):
    path = tmp_path / "hang.ipynb"
    nbformat.write(hanging_notebook(), path)
    assert (
        grade.main([str(path), "--own-checks", "--timeout", "4"])
        == grade.EXIT_TIMED_OUT
    )
    out = capfd.readouterr()
    assert "timed-out:" in out.out and "4 s limit" in out.out
    assert "not reached" in out.out and "Traceback" not in out.out + out.err


def test_dead_kernel_is_reported(tmp_path, capfd):
    path = tmp_path / "die.ipynb"
    nbformat.write(
        notebook(
            exercise("ex01-a"),
            new_code_cell("import os\nos._exit(1)"),
            tagged(new_code_cell("assert True"), "check", exercise="ex01-a"),
        ),
        path,
    )
    assert (
        grade.main([str(path), "--own-checks", "--timeout", "60"])
        == grade.EXIT_KERNEL_DIED
    )
    out = capfd.readouterr()
    assert (
        "kernel died while running cell 1" in out.out
        and "not reached" in out.out
    )
    assert "Traceback" not in out.out + out.err


@pytest.mark.parametrize(
    "content",
    ['{"cells": [{"cell_type": "co', '{"name": "not a notebook"}', "x"],
)
def test_non_notebooks_are_reported_cleanly(tmp_path, capfd, content):
    path = tmp_path / "submission.ipynb"
    path.write_text(content)
    record = tmp_path / "record.json"
    assert (
        grade.main([str(path), "--json", str(record)])
        == grade.EXIT_NOT_NOTEBOOK
    )
    out = capfd.readouterr()
    assert (
        "is not a valid Jupyter notebook" in out.out
        and "Traceback" not in out.out + out.err
    )
    data = json.loads(record.read_text())
    assert (data["status"], data["total"], data["max"]) == (
        "not-a-notebook",
        0,
        None,
    )


def test_notebook_without_checks_is_not_gradable(tmp_path):
    path = tmp_path / "empty.ipynb"
    nbformat.write(notebook(exercise("ex01-a"), new_code_cell("x = 1")), path)
    report = grade.grade_notebook(path, own_checks=True)
    assert (
        report.exit_code == grade.EXIT_NOT_GRADABLE
        and "no check cells" in report.message
    )


def test_grade_command_exit_code_end_to_end(tmp_path):
    path = tmp_path / "broken.ipynb"
    path.write_text('{"cells": [')
    run = subprocess.run(
        [sys.executable, "-m", "seqlib.exercises.grade", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert run.returncode == grade.EXIT_NOT_NOTEBOOK
    assert (
        "Traceback" not in run.stdout + run.stderr
        and "not a valid Jupyter notebook" in run.stdout
    )


# ----- book without solutions ------------------------------------------------------------------


def test_book_without_solutions_has_no_solution_text(tmp_path):
    ref = reference()
    nbformat.write(ref, tmp_path / "chapter.ipynb")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: chapter\n")
    (tmp_path / "_config.yml").write_text(
        "title: Tiny\nexecute:\n  execute_notebooks: 'off'\nparse:\n  myst_enable_extensions: [colon_fence]\n"
        "sphinx:\n  extra_extensions: [sphinx_exercise]\n  config:\n    hide_solutions: false\n"
    )
    secrets = solution_lines(ref)

    def built_text(*args) -> str:
        assert book.main(["--source", str(tmp_path), "-q", *args]) == 0
        html = (
            tmp_path
            / "_build"
            / ("no-solutions/_build/html" if args else "html")
        )
        text = "\n".join(
            p.read_text(errors="ignore")
            for p in html.rglob("*")
            if p.is_file()
        )
        return (
            text + "\n" + html_lib.unescape(re.sub(r"<[^>]+>", "", text))
        )  # code is split in spans

    shown = built_text()
    assert (
        "return column_totals / x.shape[0]" in shown
        and "secret of every column" in shown
    )
    hidden = built_text("--no-solutions")
    assert "Column means" in hidden and "NotImplementedError" in hidden
    assert [s for s in secrets if s in hidden] == []


def test_build_config_sets_the_switch_without_touching_the_original():
    config = {
        "sphinx": {
            "extra_extensions": ["sphinx_exercise"],
            "config": {"hide_solutions": False},
        }
    }
    new = book.build_config(config, hide_solutions=True, config_dir=ROOT)
    assert new["sphinx"]["config"]["hide_solutions"] is True
    assert new["sphinx"]["extra_extensions"] == [
        "sphinx_exercise",
        book.EXTENSION,
    ]
    assert config["sphinx"]["config"]["hide_solutions"] is False


# ----- numbering per chapter ------------------------------------------------------------------


def test_book_numbers_chapters_by_file_and_exercises_per_chapter():
    """``_toc.yml`` numbers exactly the chapter parts, so chapter N is notebooks/NN_*.

    jupyter-book's multitoc numbering counts on across numbered parts and skips the
    unnumbered ones; with numfig_secnum_depth 1 sphinx-exercise then shows
    "Exercise 4.2" (``test_numbered_parts_give_exercise_numbers_per_chapter`` builds it).
    """
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    numbered = []
    for part in toc["parts"]:
        files = [chapter["file"] for chapter in part["chapters"]]
        if any(f.startswith("notebooks/") for f in files):
            assert part.get("numbered") == 1, (
                f"part {part['caption']!r}: numbered: 1 (chapter titles only)"
            )
            numbered += files
        else:
            assert not part.get("numbered"), (
                f"part {part['caption']!r} must stay unnumbered"
            )
    assert numbered == [f"notebooks/{p.stem}" for p in CHAPTERS]
    assert [int(f.split("/")[1][:2]) for f in numbered] == list(
        range(1, len(numbered) + 1)
    )
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    sphinx_config = config["sphinx"]["config"]
    assert (
        sphinx_config["numfig"] is True
        and sphinx_config.get("numfig_secnum_depth", 1) == 1
    )
    assert (config.get("html") or {}).get(
        "use_multitoc_numbering", True
    ) is True


def test_numbered_parts_give_exercise_numbers_per_chapter(tmp_path):
    for number, name in [(1, "one"), (2, "two")]:
        cells = [
            new_markdown_cell(f"# Chapter {name}"),
            exercise(f"ex0{number}-a"),
            exercise(f"ex0{number}-b"),
        ]
        if number == 2:
            cells.append(new_markdown_cell("As in {ref}`ex01-b`."))
        nbformat.write(notebook(*cells), tmp_path / f"{name}.ipynb")
    (tmp_path / "front.md").write_text("# Front\n\nText.\n")
    (tmp_path / "setup.md").write_text(
        "# Setup\n\nText.\n"
    )  # an unnumbered part first, as in _toc.yml
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: front\nparts:\n  - caption: Start\n    chapters:\n      - file: setup\n"
        "  - caption: A\n    numbered: 1\n    chapters:\n      - file: one\n"
        "  - caption: B\n    numbered: 1\n    chapters:\n      - file: two\n"
    )
    (tmp_path / "_config.yml").write_text(
        "title: Tiny\nexecute:\n  execute_notebooks: 'off'\nparse:\n  myst_enable_extensions: [colon_fence]\n"
        "sphinx:\n  extra_extensions: [sphinx_exercise]\n  config:\n    numfig: true\n    numfig_secnum_depth: 1\n"
    )
    assert book.main(["--source", str(tmp_path), "-q", "-W"]) == 0
    html = tmp_path / "_build" / "html"
    two = re.sub(r"\s+", " ", (html / "two.html").read_text())
    assert re.findall(r'caption-number">Exercise ([\d.]+)', two) == [
        "2.1",
        "2.2",
    ]
    assert re.search(
        r'href="one.html#ex01-b"><span class="std std-numref">Exercise 1.2</span>',
        two,
    )
    assert '<span class="section-number">2. </span>Chapter two' in two
    assert (
        "<h1>Front<" in (html / "front.html").read_text()
        and "<h1>Setup<" in (html / "setup.html").read_text()
    )


# ----- the chapters ----------------------------------------------------------------------------

CHAPTERS = table.chapter_notebooks()


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_chapter_student_edition_has_no_solution_text(path, tmp_path):
    ref = table.read_notebook(path)
    layout = parse(ref, str(path))  # raises on any convention violation
    assert set(layout.checks) <= {e.label for e in layout.exercises}
    assert_no_solution_text(ref, student.write_student_edition(path, tmp_path))


def test_instructors_page_has_the_current_exercise_table():
    page = (ROOT / "book" / "instructors.md").read_text()
    assert table.replace_table(page, table.markdown_table()) == page, (
        "book/instructors.md is out of date: run python -m seqlib.exercises.table --update book/instructors.md"
    )


def test_table_rows_come_from_the_directives():
    rows = table.table_rows([FIXTURE])
    assert rows == [
        "| A minimal chapter | Column means (`ex01-column-means`) | implement | about 5 min |",
        "| A minimal chapter | Why the mean (`ex01-why-mean`) | derive | about 10 min |",
    ]


def test_long_hint_stub_fits_79_columns_and_keeps_its_message():
    hint = (
        "build the (B, h, N, N) scores, fill the masked ones with the "
        "dtype's minimum, softmax over the last axis and zero the masked rows"
    )
    source = (
        "def f(x):\n    '''Doc.'''\n    # BEGIN SOLUTION\n"
        f"    # HINT: {hint}\n    return x\n    # END SOLUTION\n"
    )
    stubbed = student.stub_source(source)
    assert all(len(line) <= 79 for line in stubbed.splitlines()), stubbed
    namespace: dict = {}
    exec(stubbed, namespace)
    with pytest.raises(NotImplementedError) as err:
        namespace["f"](1)
    assert str(err.value) == hint


def test_student_edition_keeps_figure_alt_text():
    cell = nbformat.v4.new_code_cell("plt.show()")
    cell.metadata["mystnb"] = {"image": {"alt": "A line rising."}}
    cell.metadata["secret"] = 1
    new = student.student_cell(cell)
    assert new.metadata == {"mystnb": {"image": {"alt": "A line rising."}}}
