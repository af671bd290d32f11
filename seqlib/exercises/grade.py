"""Grade a submitted notebook by running it with the reference's check cells.

The submission runs top to bottom in a fresh ``python3`` kernel (nbclient,
errors allowed so one failing cell does not stop the rest), each cell under a
time limit and the whole run under a wall-clock limit. Its own check cells are
replaced by the reference's (:mod:`seqlib.exercises.assemble`), and the
student's functions run under the exercise's shortcut rules
(:mod:`seqlib.exercises.guard`). An exercise earns its points (the sum of its
check cells' ``points``, default 1 each) when every one of its checks ran
without error, and zero otherwise, with the reason. The convention is in
``book/instructors.md``; a whole class is graded by
:mod:`seqlib.exercises.batch`.

Usage::

    seqlib-grade submission.ipynb [--reference chapter.ipynb] [--json
    record.json]
                 [--timeout 600] [--cell-timeout 300]
    seqlib-grade submissions/*.ipynb --csv grades.csv --json-dir grades/
    [--jobs 2]

Exit status: 0 graded (whatever the score), 1 internal error, 2 usage error,
3 not a notebook, 4 nothing to grade (no check cells or a convention error),
5 kernel died, 6 time limit reached, 7 kernel could not start.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import nbformat

from seqlib.exercises.assemble import (
    Assembly,
    NoReference,
    assemble,
    find_reference,
)
from seqlib.exercises.convention import ConventionError, parse, read_notebook
from seqlib.exercises.sandbox import suspicious
from seqlib.exercises.kernel import (
    Outcome,
    cell_error,
    execute,
    first_line,
    stderr_tail,
)

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE = 0, 1, 2
(
    EXIT_NOT_NOTEBOOK,
    EXIT_NOT_GRADABLE,
    EXIT_KERNEL_DIED,
    EXIT_TIMED_OUT,
    EXIT_KERNEL_START,
) = 3, 4, 5, 6, 7
_EXIT = {
    "graded": EXIT_OK,
    "not-a-notebook": EXIT_NOT_NOTEBOOK,
    "not-gradable": EXIT_NOT_GRADABLE,
    "kernel-died": EXIT_KERNEL_DIED,
    "timed-out": EXIT_TIMED_OUT,
    "kernel-failed": EXIT_KERNEL_START,
}


@dataclass
class ExerciseResult:
    """The score of one exercise: full points when all its checks passed."""

    label: str
    title: str
    points: float
    max_points: float
    status: str  # "passed" or "failed"
    reason: str = ""


@dataclass
class GradeReport:
    """The outcome of grading one notebook.

    Attributes:
        notebook: the path graded.
        status: ``graded``, ``not-a-notebook``, ``not-gradable``,
            ``kernel-died``, ``timed-out`` or ``kernel-failed``; only
            ``graded`` means every cell ran.
        message: one paragraph explaining any status other than ``graded``.
        exercises: per-exercise results (empty when the notebook could not be
            read).
        errors: ``{"cell", "ename", "evalue"}`` for every cell that raised.
        elapsed_s: wall-clock seconds spent.
        timestamp: when grading finished (ISO 8601, UTC).
        reference: the notebook whose check cells were run.
        changed_checks: exercises whose check cells in the submission differ
            from the reference's (edited, added or deleted); they were graded
            with the reference's all the same.
        notes: tampering the grader found and undid while grading.
        flags: ``{"cell", "what"}`` for submission code that deserves a look
            (a profile hook, ``reload``, patching a library module ...).
    """

    notebook: str
    status: str = "graded"
    message: str = ""
    exercises: list[ExerciseResult] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    reference: str = ""
    changed_checks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    flags: list[dict] = field(default_factory=list)
    elapsed_s: float = 0.0
    timestamp: str = ""

    @property
    def total(self) -> float:
        """Points earned."""
        return sum(e.points for e in self.exercises)

    @property
    def max(self) -> float | None:
        """Points available (``None`` when the notebook could not be read)."""
        return (
            sum(e.max_points for e in self.exercises)
            if self.exercises
            else None
        )

    @property
    def exit_code(self) -> int:
        """The command's exit status for this outcome."""
        return _EXIT[self.status]

    def to_json(self) -> dict:
        """A machine-readable gradebook record."""
        record = asdict(self)
        record.update(total=self.total, max=self.max, exit_code=self.exit_code)
        return record

    def table(self) -> str:
        """A plain-text table: exercise, points, max, status or reason; then
        totals."""
        width = max([len(e.label) for e in self.exercises] + [8])
        rows = [f"{'exercise':<{width}}  {'points':>6}  {'max':>5}  status"]
        for e in self.exercises:
            status = "passed" if e.status == "passed" else e.reason
            rows.append(
                f"{e.label:<{width}}  {e.points:>6g}  {e.max_points:>5g}  "
                f"{status}"
            )
        rows.append(
            f"{'total':<{width}}  {self.total:>6g}  {self.max or 0:>5g}"
        )
        return "\n".join(rows)


def _score(assembly: Assembly, outcome: Outcome) -> list[ExerciseResult]:
    layout, steps = assembly.layout, assembly.steps
    results = []
    for exercise in layout.exercises:
        checks = [
            i
            for i, step in enumerate(steps)
            if step.kind == "check" and step.label == exercise.label
        ]
        if not checks:
            continue
        reason = ""
        for index in checks:
            if index not in outcome.done:
                where = _where(steps, outcome.stop_cell)
                reason = (
                    "not reached ("
                    + (
                        "kernel died"
                        if outcome.stop == "kernel-died"
                        else "time limit"
                    )
                    + f" at {where})"
                )
            else:
                reason = outcome.reasons.get(index, "")
            if reason:
                break
        shortcut = next(
            (
                outcome.reasons[i]
                for i, step in enumerate(steps)
                if step.kind == "cell"
                and step.label == exercise.label
                and outcome.reasons.get(i, "").startswith("Shortcut")
            ),
            "",
        )
        if reason and shortcut and not reason.startswith("Shortcut"):
            reason = shortcut
        maximum = layout.max_points(exercise.label)
        results.append(
            ExerciseResult(
                exercise.label,
                exercise.title,
                0 if reason else maximum,
                maximum,
                "failed" if reason else "passed",
                reason,
            )
        )
    return results


def _where(steps, index: int) -> str:
    """How messages name a cell of the graded run."""
    if not 0 <= index < len(steps):
        return "the end"
    step = steps[index]
    if step.kind == "cell":
        return f"cell {step.cell}"
    return (
        f"the checks of {step.label}"
        if step.kind == "check"
        else "a grader cell"
    )


def _read(path: Path) -> nbformat.NotebookNode:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    return nb


def _failure_message(
    report: GradeReport, outcome: Outcome, tail: str, timeout: float, steps
) -> str:
    where = _where(steps, outcome.stop_cell)
    if outcome.stop == "kernel-died":
        return (
            f"The kernel died while running {where} of {report.notebook}, so "
            "grading stopped there; exercises whose checks had not run score "
            "0 (not reached). Common causes are running out of memory, "
            "os._exit or sys.exit in a cell, and a crash in native "
            f"code.{tail}"
        )
    return (
        f"Grading of {report.notebook} stopped at {where}: the notebook did "
        f"not finish within the {timeout:g} s limit (or a timed-out cell "
        "could not be interrupted). Exercises whose checks had not run score "
        "0 (not reached). Look for an infinite loop or a slow cell, or raise "
        "--timeout."
    )


def grade_notebook(
    path: str | Path,
    *,
    reference: str | Path | None = None,
    own_checks: bool = False,
    timeout: float = 600,
    cell_timeout: float | None = None,
    cwd: str | Path | None = None,
    kernel_name: str = "python3",
) -> GradeReport:
    """Run a submitted notebook with the reference's checks and score its
    exercises.

    Args:
        path: the submitted ``.ipynb``.
        reference: the notebook whose check cells and rules count: a chapter
            (``.ipynb`` or its ``.py`` pair) or its student edition. Default:
            the chapter of this repository that defines the submission's
            exercises.
        own_checks: grade with the submission's own check cells (no reference);
            only for notebooks that are not chapters of this book.
        timeout: wall-clock limit for the whole run, in seconds.
        cell_timeout: limit per cell (default: ``timeout``); a cell past it is
            interrupted, its exercise fails with "timed out" and the run goes
            on.
        cwd: working directory of the kernel (default: the notebook's
            directory).
        kernel_name: the Jupyter kernel to run.

    Returns:
        The report; its ``status`` says whether grading completed.
    """
    start, path = time.monotonic(), Path(path)
    report = GradeReport(notebook=str(path))
    try:
        nb = _read(path)
    except OSError as err:
        report.status = "not-a-notebook"
        report.message = (
            f"{path} could not be read ({type(err).__name__}: "
            f"{err.strerror or err})."
        )
    except Exception as err:  # nbformat raises several types for non-notebooks
        report.status = "not-a-notebook"
        report.message = (
            f"{path} is not a valid Jupyter notebook ({type(err).__name__}: "
            f"{first_line(err)[:200]}). Nothing was run; ask for the .ipynb "
            "file saved from Jupyter."
        )
    if report.status == "graded":
        try:
            ref_path = (
                path
                if own_checks
                else Path(reference)
                if reference
                else find_reference(nb)
            )
            ref = nb if own_checks else read_notebook(ref_path)
            report.reference = str(ref_path)
            if not parse(ref, str(ref_path)).checks:
                raise ConventionError(
                    f"{ref_path}: no check cells (cells tagged 'check'), "
                    "nothing to grade"
                )
        except (ConventionError, NoReference) as err:
            report.status = "not-gradable"
            report.message = f"{err}. Nothing was run." + (
                ""
                if reference or own_checks
                else (
                    " Give the chapter (or its student edition) with "
                    "--reference."
                )
            )
        except Exception as err:
            report.status = "not-gradable"
            report.message = (
                f"the reference {reference} could not be read "
                f"({type(err).__name__}: {err})."
            )
    if report.status == "graded":
        _grade(
            report,
            nb,
            ref,
            cwd=Path(cwd) if cwd else path.resolve().parent,
            timeout=timeout,
            cell_timeout=min(cell_timeout or timeout, timeout),
            kernel_name=kernel_name,
        )
    report.elapsed_s = round(time.monotonic() - start, 2)
    report.timestamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return report


def _grade(
    report: GradeReport,
    nb,
    ref,
    *,
    cwd: Path,
    timeout: float,
    cell_timeout: float,
    kernel_name: str,
) -> None:
    with (
        tempfile.TemporaryDirectory() as scratch,
        tempfile.TemporaryFile() as stderr,
    ):
        notes = Path(scratch) / "notes.jsonl"
        assembly = assemble(nb, ref, report.reference, str(notes))
        outcome = execute(
            assembly.nb,
            cwd,
            timeout=timeout,
            cell_timeout=cell_timeout,
            kernel_name=kernel_name,
            stderr=stderr,
        )
        tail = stderr_tail(stderr)
        report.notes = (
            list(
                dict.fromkeys(
                    json.loads(line) for line in notes.read_text().splitlines()
                )
            )
            if notes.exists()
            else []
        )
    report.changed_checks = assembly.changed
    report.flags = [
        {"cell": i, "what": what}
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for what in suspicious(cell.source)
    ]
    if isinstance(outcome, str):
        report.status = "kernel-failed"
        report.message = (
            f"The {kernel_name!r} kernel could not start ({outcome}).{tail} "
            "Nothing was graded; check that ipykernel is installed in the "
            "grading environment."
        )
        return
    report.exercises = _score(assembly, outcome)
    for index, (cell, step) in enumerate(
        zip(assembly.nb.cells, assembly.steps)
    ):
        err = (
            cell_error(cell)
            if cell.cell_type == "code" and step.kind != "guard"
            else None
        )
        if err:
            where = (
                {"cell": step.cell}
                if step.kind == "cell"
                else {"check": step.label}
            )
            report.errors.append({**where, **err})
    if outcome.stop:
        report.status = outcome.stop
        report.message = _failure_message(
            report, outcome, tail, timeout, assembly.steps
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqlib-grade",
        description=(
            "Run submitted notebooks with the reference's check cells and "
            "score their exercises. One notebook: a table and an exit "
            "status. Several, or --csv: a class, graded in parallel, one CSV "
            "row per student."
        ),
    )
    parser.add_argument(
        "notebooks",
        type=Path,
        nargs="+",
        metavar="notebook",
        help="submitted .ipynb files",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        help="the chapter (or its student edition) whose check "
        "cells and rules count (default: this repository's chapter)",
    )
    parser.add_argument(
        "--own-checks",
        action="store_true",
        help="run the submission's own check cells "
        "(only for notebooks that are not chapters of this book)",
    )
    parser.add_argument(
        "--json", type=Path, help="one notebook: write its record (JSON) here"
    )
    parser.add_argument(
        "--csv",
        type=Path,
        help="write the class's grades here (one row per student)",
    )
    parser.add_argument(
        "--json-dir",
        type=Path,
        help="write each student's record (JSON) into this folder",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=max(1, (os.cpu_count() or 2) // 2),
        help="notebooks graded at once (default: half the CPU cores)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600,
        help="limit for each whole run, s",
    )
    parser.add_argument(
        "--cell-timeout",
        type=float,
        help="limit per cell, s (default: --timeout)",
    )
    parser.add_argument(
        "--cwd",
        type=Path,
        help="kernel working directory (default: notebook's)",
    )
    parser.add_argument(
        "--kernel", default="python3", help="kernel name (default: python3)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command line entry point ``seqlib-grade``; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if len(args.notebooks) > 1 or args.csv or args.json_dir:
        if args.json:
            parser.error("--json is for one notebook; give a class --json-dir")
        from seqlib.exercises import batch

        return batch.run(args)
    (notebook,) = args.notebooks
    try:
        report = grade_notebook(
            notebook,
            reference=args.reference,
            own_checks=args.own_checks,
            timeout=args.timeout,
            cell_timeout=args.cell_timeout,
            cwd=args.cwd,
            kernel_name=args.kernel,
        )
    except (
        Exception
    ) as err:  # a clean paragraph instead of a traceback, whatever went wrong
        print(
            f"seqlib-grade: internal error while grading {notebook} "
            f"({type(err).__name__}: {first_line(err)}). Please report it."
        )
        return EXIT_INTERNAL
    done = (
        "Graded" if report.status == "graded" else "Could not finish grading"
    )
    print(f"{done} {report.notebook} in {report.elapsed_s:g} s")
    if report.exercises:
        print(report.table())
    for line in _remarks(report):
        print(line)
    if report.message:
        print(f"\nseqlib-grade: {report.status}: {report.message}")
    if args.json:
        try:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report.to_json(), indent=2) + "\n")
        except OSError as err:
            print(
                f"seqlib-grade: could not write {args.json} "
                f"({err.strerror or err})."
            )
            return EXIT_INTERNAL
    return report.exit_code


def _remarks(report: GradeReport) -> list[str]:
    """Lines for the instructor: changed checks, undone tampering, code to look
    at."""
    lines = []
    if report.changed_checks:
        lines.append(
            "check cells differ from the reference (graded with the "
            "reference's): " + ", ".join(report.changed_checks)
        )
    lines += [f"tampering undone: {note}" for note in report.notes]
    lines += [
        f"look at cell {flag['cell']}: {flag['what']}" for flag in report.flags
    ]
    return lines


if __name__ == "__main__":
    sys.exit(main())
