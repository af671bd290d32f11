"""Every implement exercise's check passes the reference and rejects typical wrong answers.

For each chapter, ``tests/exercise_cases/chNN.py`` holds

- ``CONTEXT``: code run after the chapter's own imports that makes the names its
  checks use (data, a small model) without running the chapter;
- ``WRONG``: exercise label -> list of ``(what, source, message)``: a wrong
  solution (a classic mistake, or a shortcut through the library the exercise
  forbids) and a regular expression that the check's error message must match,
  so the message tells the student what is wrong.

The checks run as the grader runs them: the student's functions are called
through :class:`seqlib.exercises.guard.Guard` with the exercise's ``forbid``
rules, and the reference's imports are re-run first.
"""

from __future__ import annotations

import importlib.util
import os
import re
from functools import lru_cache
from pathlib import Path

import pytest

from seqlib.exercises import table
from seqlib.exercises.convention import parse, read_notebook, reference_imports
from seqlib.exercises.guard import Guard

os.environ.setdefault("KERAS_BACKEND", "torch")
CASES = Path(__file__).parent / "exercise_cases"
CHAPTERS = {p.stem[:2]: p for p in table.chapter_notebooks()}


def _cases(chapter: str):
    if not (CASES / f"ch{chapter}.py").exists():
        return None
    spec = importlib.util.spec_from_file_location(
        f"exercise_cases_ch{chapter}", CASES / f"ch{chapter}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@lru_cache(maxsize=None)
def _chapter(chapter: str):
    path = CHAPTERS[chapter]
    nb = read_notebook(path.with_suffix(".py"))
    return nb, parse(nb, path.name)


def _implement_labels(chapter: str) -> list[str]:
    """Implement exercises, and derive exercises whose answer a check grades."""
    nb, layout = _chapter(chapter)
    return [
        e.label
        for e in layout.exercises
        if e.depth == "implement" or layout.checks.get(e.label)
    ]


_NAMESPACES: dict[str, dict] = {}


def _namespace(chapter: str) -> dict:
    """The chapter's imports plus its case file's CONTEXT (built once per chapter)."""
    if chapter not in _NAMESPACES:
        nb, _ = _chapter(chapter)
        ns = {"__name__": "__main__"}
        exec(
            compile(
                reference_imports(nb), f"<chapter {chapter} imports>", "exec"
            ),
            ns,
        )
        exec(
            compile(
                getattr(_cases(chapter), "CONTEXT", "") or "",
                f"<chapter {chapter} context>",
                "exec",
            ),
            ns,
        )
        _NAMESPACES[chapter] = ns
    return dict(_NAMESPACES[chapter])


def _solution_sources(chapter: str, label: str) -> list[str]:
    nb, layout = _chapter(chapter)
    start, end = next((s, e) for s, e, lab in layout.blocks if lab == label)
    return [
        nb.cells[i].source
        for i in range(start, end + 1)
        if nb.cells[i].cell_type == "code"
    ]


def _run_checks(chapter: str, label: str, sources: list[str]) -> None:
    """Run ``sources`` as the student's cells, then the label's checks, as the grader does."""
    nb, layout = _chapter(chapter)
    ns = _namespace(chapter)
    guard = Guard(layout.forbid).install()
    try:
        guard.importing(label)
        for i, source in enumerate(sources):
            exec(compile(source, f"<student cell {i} of {label}>", "exec"), ns)
        guard.importing(None)
        for name in layout.implements.get(label, []):
            if name in ns:
                ns[name] = guard.wrap(label, ns[name])
        for index, _ in layout.checks[label]:
            exec(
                compile(
                    nb.cells[index].source, f"<check cell {index}>", "exec"
                ),
                ns,
            )
    finally:
        guard.uninstall()


IMPLEMENT = [
    (ch, label) for ch in sorted(CHAPTERS) for label in _implement_labels(ch)
]
WRONG = [
    (ch, label, what, source, message)
    for ch in sorted(CHAPTERS)
    for label, cases in getattr(_cases(ch), "WRONG", {}).items()
    for what, source, message in cases
]


def test_every_chapter_has_a_case_file():
    assert sorted(p.stem[2:] for p in CASES.glob("ch*.py")) == sorted(CHAPTERS)


@pytest.mark.parametrize(
    "chapter,label", IMPLEMENT, ids=[label for _, label in IMPLEMENT]
)
def test_graded_exercise_has_rules_and_wrong_solutions(chapter, label):
    _, layout = _chapter(chapter)
    depth = next(e.depth for e in layout.exercises if e.label == label)
    assert layout.checks.get(label), f"{label}: no check cell"
    assert depth != "implement" or layout.forbid.get(label), (
        f"{label}: its check cells declare no 'forbid' rule"
    )
    assert layout.implements.get(label), (
        f"{label}: no function between BEGIN/END SOLUTION markers"
    )
    cases = getattr(_cases(chapter), "WRONG", {}).get(label, [])
    if layout.forbid.get(label):
        assert any(re.search("shortcut", m) for _, _, m in cases), (
            f"{label}: no shortcut case in ch{chapter}.py"
        )
    assert any(not re.search("shortcut", m) for _, _, m in cases), (
        f"{label}: no wrong-answer case in ch{chapter}.py"
    )


@pytest.mark.parametrize(
    "chapter,label", IMPLEMENT, ids=[label for _, label in IMPLEMENT]
)
def test_reference_solution_passes_its_checks(chapter, label):
    _run_checks(chapter, label, _solution_sources(chapter, label))


@pytest.mark.parametrize(
    "chapter,label,what,source,message",
    WRONG,
    ids=[f"{label}: {what}" for _, label, what, _, _ in WRONG],
)
def test_wrong_solution_is_rejected_with_a_helpful_message(
    chapter, label, what, source, message
):
    assert label in _implement_labels(chapter), (
        f"{label} is not an implement exercise of chapter {chapter}"
    )
    with pytest.raises(Exception) as caught:
        _run_checks(chapter, label, [source])
    text = f"{type(caught.value).__name__}: {caught.value}"
    assert re.search(message, text), (
        f"{label} / {what}: the check failed, but with {text!r}"
    )
