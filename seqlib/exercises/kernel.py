"""Run a notebook's code cells in a fresh kernel, under time limits, for the
grader.
Errors are allowed (one failing cell does not stop the rest); a cell past its
limit is interrupted and the run goes on if the kernel still answers; a dead
kernel or the whole run's limit stops it. :func:`execute` returns what happened
to each cell.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

GRADER_CELL_S = 120
# how long a kernel may take to answer after a timed-out cell is interrupted
_PROBE_S = 5


@dataclass
class Outcome:
    """What happened to each code cell during the run."""

    reasons: dict[int, str] = field(
        default_factory=dict
    )  # failed cell -> reason
    done: set[int] = field(
        default_factory=set
    )  # cells that ran to the end or failed
    timed_out: set[int] = field(
        default_factory=set
    )  # cells interrupted for time
    stop: str = ""  # "kernel-died" or "timed-out" when the run ended early
    stop_cell: int = -1


def first_line(text: str) -> str:
    """The first non-blank line of ``text``, stripped (``""`` if none)."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def cell_error(cell: nbformat.NotebookNode) -> dict | None:
    """The first error output of an executed cell.

    Returns:
        ``{"ename": ..., "evalue": ...}`` (the first line of the message), or
        None when the cell raised nothing.
    """
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return {
                "ename": out.get("ename", "Error"),
                "evalue": first_line(out.get("evalue", "")),
            }
    return None


def _quiet_logger() -> logging.Logger:
    log = logging.getLogger("seqlib.exercises.grade.nbclient")
    log.addHandler(logging.NullHandler())
    log.propagate, log.level = False, logging.CRITICAL
    return log


def _kernel_env() -> dict[str, str]:
    """The grader's environment, with the repository first on PYTHONPATH.

    The kernel then imports the same ``seqlib`` (and check helpers) as the
    grader, wherever the submission lies.
    """
    root = str(Path(__file__).resolve().parents[2])
    paths = [root] + [
        p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p
    ]
    # One torch thread and no progress bars unless the instructor says
    # otherwise: several threads on a busy grading machine oversubscribe the
    # cores and run several times slower.
    defaults = {
        "SEQLIB_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "SEQLIB_QUIET": "1",
    }
    return {
        **defaults,
        **os.environ,
        "PYTHONPATH": os.pathsep.join(paths),
        "MPLBACKEND": "Agg",
    }


_TIMEOUT_SENTINEL = "seqlib-grade: cell timed out"


def _mark_timeouts(outcome: Outcome):
    """An ``on_cell_executed`` hook recording the cells nbclient interrupted
    for time.

    With ``interrupt_on_timeout`` nbclient interrupts the kernel and hands back
    the ``error_on_timeout`` reply, which is how a timed-out cell is
    recognised.
    """

    def hook(cell, cell_index, execute_reply):
        if execute_reply.get("content", {}).get("evalue") == _TIMEOUT_SENTINEL:
            outcome.timed_out.add(cell_index)

    return hook


def _kernel_answers(client: NotebookClient, outcome: Outcome) -> bool:
    """True when the kernel runs a trivial cell in time (after a cell was
    interrupted)."""
    cells = client.nb.cells
    cells.append(
        nbformat.v4.new_code_cell("pass")
    )  # nbclient stores the executed cell by index
    try:
        client.timeout = _PROBE_S
        client.execute_cell(cells[-1], len(cells) - 1)
        return len(cells) - 1 not in outcome.timed_out
    finally:
        outcome.timed_out.discard(len(cells) - 1)
        cells.pop()


def _run_cells(
    client: NotebookClient, nb, deadline: float, cell_timeout: float
) -> Outcome:
    """Execute the code cells in order, recording failures and where the run
    stopped."""
    outcome = Outcome()
    client.on_cell_executed = _mark_timeouts(outcome)
    for index, cell in enumerate(nb.cells):
        remaining = deadline - time.monotonic()
        if cell.cell_type != "code":
            continue
        if remaining <= 0:
            outcome.stop, outcome.stop_cell = "timed-out", index
            break
        # The grader's own cells (metadata "grader") import the guard, and
        # torch with it: they get at least GRADER_CELL_S, whatever the per-cell
        # limit set for the student's cells.
        limit = (
            max(cell_timeout, GRADER_CELL_S)
            if cell.metadata.get("grader")
            else cell_timeout
        )
        client.timeout = max(1, math.ceil(min(limit, remaining)))
        try:
            client.execute_cell(cell, index)
            if index in outcome.timed_out:
                outcome.reasons[index] = (
                    f"timed out (ran past {client.timeout} s)"
                )
                # Past the whole-run limit, or a kernel that ignores the
                # interrupt: stop here.
                if remaining <= cell_timeout or not _kernel_answers(
                    client, outcome
                ):
                    outcome.done.add(index)
                    outcome.stop, outcome.stop_cell = "timed-out", index
                    break
        except DeadKernelError:
            outcome.stop, outcome.stop_cell = "kernel-died", index
            break
        outcome.done.add(index)
        error = cell_error(cell)
        if error and index not in outcome.reasons:
            outcome.reasons[index] = (
                f"{error['ename']}: {error['evalue']}".rstrip(": ")
            )
    return outcome


def execute(
    nb,
    cwd: Path,
    *,
    timeout: float,
    cell_timeout: float,
    kernel_name: str,
    stderr,
) -> Outcome | str:
    """Run ``nb`` in place; returns the outcome, or a message when the kernel
    cannot start."""
    client = NotebookClient(
        nb,
        timeout=cell_timeout,
        kernel_name=kernel_name,
        allow_errors=True,
        interrupt_on_timeout=True,
        record_timing=False,
        log=_quiet_logger(),
        error_on_timeout={
            "ename": "TimeoutError",
            "evalue": _TIMEOUT_SENTINEL,
            "traceback": [],
        },
        resources={"metadata": {"path": str(cwd)}},
    )
    started, deadline = False, time.monotonic() + timeout
    try:
        with client.setup_kernel(env=_kernel_env(), stderr=stderr):
            started = True
            return _run_cells(client, nb, deadline, cell_timeout)
    # kernel start-up fails in many ways (no kernelspec, crash, ports)
    except Exception as err:
        if started:
            raise
        return f"{type(err).__name__}: {first_line(err) or 'no message'}"


def stderr_tail(handle) -> str:
    """A sentence quoting the kernel's last stderr line, for error messages.

    Args:
        handle: the binary file the kernel's stderr was written to; lines
            with ``WARNING`` are skipped.

    Returns:
        ``" The kernel's last message was: '...'."``, or ``""`` if there was
        none.
    """
    handle.seek(0)
    lines = [
        line.strip()
        for line in handle.read().decode(errors="replace").splitlines()
        if line.strip() and "WARNING" not in line
    ]
    return f" The kernel's last message was: {lines[-1]!r}." if lines else ""
