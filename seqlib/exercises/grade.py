"""Grade a submitted notebook by running it and scoring its self-check cells.

The notebook runs top to bottom in a fresh ``python3`` kernel (nbclient, errors
allowed so one failing cell does not stop the rest), each cell under a time
limit and the whole run under a wall-clock limit. An exercise earns its points
(the sum of its check cells' ``points``, default 1 each) when every one of its
``check`` cells ran without error, and zero otherwise, with the reason. The
convention is in ``book/instructors.md``.

Usage::

    seqlib-grade submission.ipynb [--json record.json] [--timeout 600] [--cell-timeout 300]

Exit status: 0 graded (whatever the score), 1 internal error, 2 usage error,
3 not a notebook, 4 nothing to grade (no check cells or a convention error),
5 kernel died, 6 time limit reached, 7 kernel could not start.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from seqlib.exercises.convention import ConventionError, Layout, parse

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE = 0, 1, 2
EXIT_NOT_NOTEBOOK, EXIT_NOT_GRADABLE, EXIT_KERNEL_DIED, EXIT_TIMED_OUT, EXIT_KERNEL_START = 3, 4, 5, 6, 7
_EXIT = {"graded": EXIT_OK, "not-a-notebook": EXIT_NOT_NOTEBOOK, "not-gradable": EXIT_NOT_GRADABLE,
         "kernel-died": EXIT_KERNEL_DIED, "timed-out": EXIT_TIMED_OUT, "kernel-failed": EXIT_KERNEL_START}
_PROBE_S = 5  # how long a kernel may take to answer after a timed-out cell is interrupted


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
        status: ``graded``, ``not-a-notebook``, ``not-gradable``, ``kernel-died``,
            ``timed-out`` or ``kernel-failed``; only ``graded`` means every cell ran.
        message: one paragraph explaining any status other than ``graded``.
        exercises: per-exercise results (empty when the notebook could not be read).
        errors: ``{"cell", "ename", "evalue"}`` for every cell that raised.
        elapsed_s: wall-clock seconds spent.
        timestamp: when grading finished (ISO 8601, UTC).
    """

    notebook: str
    status: str = "graded"
    message: str = ""
    exercises: list[ExerciseResult] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    elapsed_s: float = 0.0
    timestamp: str = ""

    @property
    def total(self) -> float:
        """Points earned."""
        return sum(e.points for e in self.exercises)

    @property
    def max(self) -> float | None:
        """Points available (``None`` when the notebook could not be read)."""
        return sum(e.max_points for e in self.exercises) if self.exercises else None

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
        """A plain-text table: exercise, points, max, status or reason; then totals."""
        width = max([len(e.label) for e in self.exercises] + [8])
        rows = [f"{'exercise':<{width}}  {'points':>6}  {'max':>5}  status"]
        for e in self.exercises:
            status = "passed" if e.status == "passed" else e.reason
            rows.append(f"{e.label:<{width}}  {e.points:>6g}  {e.max_points:>5g}  {status}")
        rows.append(f"{'total':<{width}}  {self.total:>6g}  {self.max or 0:>5g}")
        return "\n".join(rows)


@dataclass
class _Outcome:
    """What happened to each code cell during the run."""

    reasons: dict[int, str] = field(default_factory=dict)  # failed cell -> reason
    done: set[int] = field(default_factory=set)  # cells that ran to the end or failed
    timed_out: set[int] = field(default_factory=set)  # cells interrupted for time
    stop: str = ""  # "kernel-died" or "timed-out" when the run ended early
    stop_cell: int = -1


def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def _cell_error(cell: nbformat.NotebookNode) -> dict | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return {"ename": out.get("ename", "Error"), "evalue": _first_line(out.get("evalue", ""))}
    return None


def _quiet_logger() -> logging.Logger:
    log = logging.getLogger("seqlib.exercises.grade.nbclient")
    log.addHandler(logging.NullHandler())
    log.propagate, log.level = False, logging.CRITICAL
    return log


def _kernel_env() -> dict[str, str]:
    """The grader's environment, with the repository first on PYTHONPATH.

    The kernel then imports the same ``seqlib`` (and check helpers) as the grader,
    wherever the submission lies.
    """
    root = str(Path(__file__).resolve().parents[2])
    paths = [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    # One torch thread and no progress bars unless the instructor says otherwise: several
    # threads on a busy grading machine oversubscribe the cores and run several times slower.
    defaults = {"SEQLIB_THREADS": "1", "OMP_NUM_THREADS": "1", "SEQLIB_QUIET": "1"}
    return {**defaults, **os.environ, "PYTHONPATH": os.pathsep.join(paths), "MPLBACKEND": "Agg"}


_TIMEOUT_SENTINEL = "seqlib-grade: cell timed out"


def _mark_timeouts(outcome: _Outcome):
    """An ``on_cell_executed`` hook recording the cells nbclient interrupted for time.

    With ``interrupt_on_timeout`` nbclient interrupts the kernel and hands back the
    ``error_on_timeout`` reply, which is how a timed-out cell is recognised.
    """
    def hook(cell, cell_index, execute_reply):
        if execute_reply.get("content", {}).get("evalue") == _TIMEOUT_SENTINEL:
            outcome.timed_out.add(cell_index)
    return hook


def _kernel_answers(client: NotebookClient, outcome: _Outcome) -> bool:
    """True when the kernel runs a trivial cell in time (after a cell was interrupted)."""
    cells = client.nb.cells
    cells.append(nbformat.v4.new_code_cell("pass"))  # nbclient stores the executed cell by index
    try:
        client.timeout = _PROBE_S
        client.execute_cell(cells[-1], len(cells) - 1)
        return len(cells) - 1 not in outcome.timed_out
    finally:
        outcome.timed_out.discard(len(cells) - 1)
        cells.pop()


def _run_cells(client: NotebookClient, nb, deadline: float, cell_timeout: float) -> _Outcome:
    """Execute the code cells in order, recording failures and where the run stopped."""
    outcome = _Outcome()
    client.on_cell_executed = _mark_timeouts(outcome)
    for index, cell in enumerate(nb.cells):
        remaining = deadline - time.monotonic()
        if cell.cell_type != "code":
            continue
        if remaining <= 0:
            outcome.stop, outcome.stop_cell = "timed-out", index
            break
        client.timeout = max(1, math.ceil(min(cell_timeout, remaining)))
        try:
            client.execute_cell(cell, index)
            if index in outcome.timed_out:
                outcome.reasons[index] = f"timed out (cell {index} ran past {client.timeout} s)"
                # Past the whole-run limit, or a kernel that ignores the interrupt: stop here.
                if remaining <= cell_timeout or not _kernel_answers(client, outcome):
                    outcome.done.add(index)
                    outcome.stop, outcome.stop_cell = "timed-out", index
                    break
        except DeadKernelError:
            outcome.stop, outcome.stop_cell = "kernel-died", index
            break
        outcome.done.add(index)
        error = _cell_error(cell)
        if error and index not in outcome.reasons:
            outcome.reasons[index] = f"{error['ename']}: {error['evalue']}".rstrip(": ")
    return outcome


def _execute(nb, cwd: Path, *, timeout: float, cell_timeout: float,
             kernel_name: str, stderr) -> _Outcome | str:
    """Run ``nb`` in place; returns the outcome, or a message when the kernel cannot start."""
    client = NotebookClient(nb, timeout=cell_timeout, kernel_name=kernel_name, allow_errors=True,
                            interrupt_on_timeout=True, record_timing=False, log=_quiet_logger(),
                            error_on_timeout={"ename": "TimeoutError", "evalue": _TIMEOUT_SENTINEL,
                                              "traceback": []},
                            resources={"metadata": {"path": str(cwd)}})
    started, deadline = False, time.monotonic() + timeout
    try:
        with client.setup_kernel(env=_kernel_env(), stderr=stderr):
            started = True
            return _run_cells(client, nb, deadline, cell_timeout)
    except Exception as err:  # kernel start-up fails in many ways (no kernelspec, crash, ports)
        if started:
            raise
        return f"{type(err).__name__}: {_first_line(err) or 'no message'}"


def _score(layout: Layout, outcome: _Outcome) -> list[ExerciseResult]:
    results = []
    for exercise in layout.exercises:
        checks = layout.checks.get(exercise.label, [])
        if not checks:
            continue
        reason = ""
        for index, _ in checks:
            if index not in outcome.done:
                reason = "not reached (" + ("kernel died" if outcome.stop == "kernel-died"
                                            else "time limit") + f" at cell {outcome.stop_cell})"
            else:
                reason = outcome.reasons.get(index, "")
            if reason:
                break
        maximum = layout.max_points(exercise.label)
        results.append(ExerciseResult(exercise.label, exercise.title, 0 if reason else maximum,
                                      maximum, "failed" if reason else "passed", reason))
    return results


def _read(path: Path) -> nbformat.NotebookNode:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    return nb


def _stderr_tail(handle) -> str:
    handle.seek(0)
    lines = [line.strip() for line in handle.read().decode(errors="replace").splitlines()
             if line.strip() and "WARNING" not in line]
    return f" The kernel's last message was: {lines[-1]!r}." if lines else ""


def _failure_message(report: GradeReport, outcome: _Outcome, tail: str, timeout: float) -> str:
    if outcome.stop == "kernel-died":
        return (f"The kernel died while running cell {outcome.stop_cell} of {report.notebook}, so "
                "grading stopped there; exercises whose checks had not run score 0 (not reached). "
                "Common causes are running out of memory, os._exit or sys.exit in a cell, and a "
                f"crash in native code.{tail}")
    return (f"Grading of {report.notebook} stopped at cell {outcome.stop_cell}: the notebook did not "
            f"finish within the {timeout:g} s limit (or a timed-out cell could not be interrupted). "
            "Exercises whose checks had not run score 0 (not reached). Look for an infinite loop or "
            "a slow cell, or raise --timeout.")


def grade_notebook(path: str | Path, *, timeout: float = 600, cell_timeout: float | None = None,
                   cwd: str | Path | None = None, kernel_name: str = "python3") -> GradeReport:
    """Run a submitted notebook and score its exercises.

    Args:
        path: the submitted ``.ipynb``.
        timeout: wall-clock limit for the whole run, in seconds.
        cell_timeout: limit per cell (default: ``timeout``); a cell past it is
            interrupted, its exercise fails with "timed out" and the run goes on.
        cwd: working directory of the kernel (default: the notebook's directory).
        kernel_name: the Jupyter kernel to run.

    Returns:
        The report; its ``status`` says whether grading completed.
    """
    start, path = time.monotonic(), Path(path)
    report = GradeReport(notebook=str(path))
    try:
        nb = _read(path)
        layout = parse(nb, str(path))
        if not layout.checks:
            raise ConventionError(f"{path}: no check cells (cells tagged 'check'), nothing to grade")
    except ConventionError as err:
        report.status, report.message = "not-gradable", f"{err}. Nothing was run."
    except OSError as err:
        report.status = "not-a-notebook"
        report.message = f"{path} could not be read ({type(err).__name__}: {err.strerror or err})."
    except Exception as err:  # nbformat raises several types for non-notebooks
        report.status = "not-a-notebook"
        report.message = (f"{path} is not a valid Jupyter notebook ({type(err).__name__}: "
                          f"{_first_line(err)[:200]}). Nothing was run; ask for the .ipynb file "
                          "saved from Jupyter.")
    if report.status == "graded":
        _grade(report, nb, layout, cwd=Path(cwd) if cwd else path.resolve().parent, timeout=timeout,
               cell_timeout=min(cell_timeout or timeout, timeout), kernel_name=kernel_name)
    report.elapsed_s = round(time.monotonic() - start, 2)
    report.timestamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return report


def _grade(report: GradeReport, nb, layout: Layout, *, cwd: Path, timeout: float,
           cell_timeout: float, kernel_name: str) -> None:
    with tempfile.TemporaryFile() as stderr:
        outcome = _execute(nb, cwd, timeout=timeout, cell_timeout=cell_timeout,
                           kernel_name=kernel_name, stderr=stderr)
        tail = _stderr_tail(stderr)
    if isinstance(outcome, str):
        report.status = "kernel-failed"
        report.message = (f"The {kernel_name!r} kernel could not start ({outcome}).{tail} Nothing "
                          "was graded; check that ipykernel is installed in the grading environment.")
        return
    report.exercises = _score(layout, outcome)
    report.errors = [{"cell": i, **err} for i, cell in enumerate(nb.cells)
                     if cell.cell_type == "code" and (err := _cell_error(cell))]
    if outcome.stop:
        report.status = outcome.stop
        report.message = _failure_message(report, outcome, tail, timeout)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point ``seqlib-grade``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="seqlib-grade", description="Run a submitted notebook "
                                     "and score its exercises from their check cells.")
    parser.add_argument("notebook", type=Path, help="the submitted .ipynb")
    parser.add_argument("--json", type=Path, help="write the gradebook record (JSON) here")
    parser.add_argument("--timeout", type=float, default=600, help="limit for the whole run, s")
    parser.add_argument("--cell-timeout", type=float, help="limit per cell, s (default: --timeout)")
    parser.add_argument("--cwd", type=Path, help="kernel working directory (default: notebook's)")
    parser.add_argument("--kernel", default="python3", help="kernel name (default: python3)")
    args = parser.parse_args(argv)
    try:
        report = grade_notebook(args.notebook, timeout=args.timeout, cell_timeout=args.cell_timeout,
                                cwd=args.cwd, kernel_name=args.kernel)
    except Exception as err:  # a clean paragraph instead of a traceback, whatever went wrong
        print(f"seqlib-grade: internal error while grading {args.notebook} "
              f"({type(err).__name__}: {_first_line(err)}). Please report it.")
        return EXIT_INTERNAL
    done = "Graded" if report.status == "graded" else "Could not finish grading"
    print(f"{done} {report.notebook} in {report.elapsed_s:g} s")
    if report.exercises:
        print(report.table())
    if report.message:
        print(f"\nseqlib-grade: {report.status}: {report.message}")
    if args.json:
        try:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report.to_json(), indent=2) + "\n")
        except OSError as err:
            print(f"seqlib-grade: could not write {args.json} ({err.strerror or err}).")
            return EXIT_INTERNAL
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
