"""Run one chapter in the full profile and record its result on the results page.

Usage: python scripts/full_run.py NN [--seed S] [--dry-run]

Runs ``notebooks/NN_*.py`` top to bottom with ``SEQLIB_PROFILE=full`` in a
fresh kernel, writes the executed notebook beside the original as
``notebooks/NN_*.full.ipynb`` (the stored smoke outputs are not touched), and
appends a row to the full-profile table of ``book/results.md``: the date, the
device, the PyTorch version, the wall time, the seed, the chapter's target
metric (:func:`seqlib.profiles.report_target`) and its flagship claims, all
read from the run; nothing is typed by hand. A run that fails records nothing.

``--dry-run`` runs the full profile's models for a handful of steps
(:func:`seqlib.profiles.dry_run`), writes ``NN_*.dry-run.ipynb`` and prints
the row it would add, without adding it: a check, on any machine, that the
real run will go through.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import nbformat
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dry_run import chapter_files  # noqa: E402
from execute import ROOT, run  # noqa: E402

RESULTS = ROOT / "book" / "results.md"
MARKER = "<!-- full-profile rows: appended by scripts/full_run.py -->"
NONE_YET = "No full-profile run has been recorded yet"
HEADER = (
    "| Chapter | Date | Device | PyTorch | Wall time | Seed "
    "| Target | Flagship claims |\n"
    "|---|---|---|---|---|---|---|---|"
)


def device_name() -> str:
    """The GPU's name and memory, or the CPU's model and core count."""
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return f"{props.name} ({props.total_memory / 2**30:.0f} GiB)"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {model}, {os.cpu_count()} cores"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def row(
    chapter: str,
    *,
    seconds: float,
    seed: int,
    metrics: list[dict],
    claims: list[dict],
    device: str,
    date: str,
) -> str:
    """One row of the full-profile table, from what a run measured."""
    target = (
        "; ".join(
            f"{m['metric']}: {m['value']:.1%} (target {m['target']:.1%}, "
            f"{'met' if m['met'] else 'missed'})"
            for m in metrics
        )
        or "none set"
    )
    flagship = (
        "; ".join(
            f"{c['id']}: {c['value']:.4g} ({c['condition']}, "
            f"{'held' if c['held'] else 'not held' if c['held'] is False else 'not evaluated'})"
            for c in claims
            if c["flagship"]
        )
        or "none"
    )
    cells = [
        chapter,
        date,
        device,
        torch.__version__,
        f"{seconds / 60:.1f} min",
        str(seed),
        target,
        flagship,
    ]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def append_row(results: Path, line: str) -> None:
    """Add ``line`` to the full-profile table of ``results`` (after its
    marker, starting the table if it has no row yet)."""
    text = results.read_text(encoding="utf-8")
    if MARKER not in text:
        raise SystemExit(
            f"{results} has no line {MARKER!r}: put it where the full-profile "
            "table belongs"
        )
    head, tail = text.split(MARKER, 1)
    body = tail.lstrip("\n")
    if body.startswith(NONE_YET):  # the first row replaces this sentence
        body = body.split("\n", 1)[1] if "\n" in body else ""
    if not body.startswith(HEADER.splitlines()[0]):
        body = HEADER + "\n\n" + body
        body = body.replace("|\n\n", "|\n", 1)
    lines = body.split("\n")
    end = next(
        (i for i, ln in enumerate(lines) if not ln.startswith("|")),
        len(lines),
    )
    lines.insert(end, line)
    results.write_text(
        head + MARKER + "\n" + "\n".join(lines), encoding="utf-8"
    )


def full_run(
    py: Path,
    *,
    seed: int = 0,
    dry: bool = False,
    results: Path | None = RESULTS,
    timeout: int = 24 * 3600,
) -> tuple[str | None, str]:
    """Run ``py`` in the full profile; returns (error, the table row).

    Writes ``<stem>.full.ipynb`` (``.dry-run.ipynb`` with ``dry``) beside
    ``py``, and appends the row to ``results`` unless the run failed or
    ``results`` is None.
    """
    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as tmp:
        metrics_file = tmp.name
    env = {
        "SEQLIB_PROFILE": "full",
        "SEQLIB_DRY_RUN": "1" if dry else "0",
        "SEQLIB_SEED": str(seed),
        "SEQLIB_CLAIMS_SOFT": "1",  # a full run reports, it does not stop
        "SEQLIB_METRICS_FILE": metrics_file,
        "SEQLIB_OFFLINE": os.environ.get("SEQLIB_OFFLINE", "0"),
        "SEQLIB_THREADS": os.environ.get("SEQLIB_THREADS", ""),
        "OMP_NUM_THREADS": os.environ.get(
            "OMP_NUM_THREADS", str(os.cpu_count() or 1)
        ),
        "CI": "",
    }
    try:
        nb, seconds, error, claims = run(py, env, timeout=timeout)
        with open(metrics_file, encoding="utf-8") as f:
            metrics = [json.loads(line) for line in f if line.strip()]
    finally:
        os.unlink(metrics_file)
    suffix = ".dry-run.ipynb" if dry else ".full.ipynb"
    nbformat.write(nb, py.with_name(py.stem + suffix))
    line = row(
        py.stem,
        seconds=seconds,
        seed=seed,
        metrics=metrics,
        claims=claims,
        device=device_name(),
        date=datetime.date.today().isoformat(),
    )
    if error is None and results is not None:
        append_row(results, line)
    return error, line


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapter", help="the chapter's number, e.g. 11")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="a handful of steps per loop; records nothing",
    )
    args = parser.parse_args(argv)
    (py,) = chapter_files([args.chapter])
    error, line = full_run(
        py,
        seed=args.seed,
        dry=args.dry_run,
        results=None if args.dry_run else RESULTS,
    )
    suffix = ".dry-run.ipynb" if args.dry_run else ".full.ipynb"
    print(f"executed notebook: {py.with_name(py.stem + suffix)}")
    if error is not None:
        print(f"FAILED: {error}\nnothing recorded")
        return 1
    print(
        ("would add" if args.dry_run else f"added to {RESULTS}") + ":\n" + line
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
