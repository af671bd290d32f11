"""Dry-run chapters in a profile: real model sizes and data shapes, a few steps.

Usage: python scripts/dry_run.py [--profile full] [--jobs 2] [--out DIR] [NN ...]

Each chapter runs top to bottom in a fresh kernel with ``SEQLIB_DRY_RUN=1``
(see :func:`seqlib.profiles.dry_run`): the profile's models at their real
sizes, its data pipelines' real shapes and dtypes (generated stand-ins where a
dataset is not on the machine; a dry run never downloads), two epochs of two
steps per training loop, and at most 256 examples of any dataset. Claims that
need real training are reported as "not evaluated in a dry run"; structural
claims (shapes, parameter ratios, configuration consistency) are asserted.
A chapter passes when every cell runs. The stored notebooks are not touched;
``--out`` keeps the executed dry-run notebooks for a look.

``SEQLIB_PROFILE=full SEQLIB_DRY_RUN=1`` does the same for one notebook in
Jupyter; this script is how the test command checks, on a CPU, that every
chapter's full profile will run on a GPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from execute import ROOT, run  # noqa: E402

NOTEBOOKS = ROOT / "notebooks"


def chapter_files(chapters: list[str]) -> list[Path]:
    """The .py sources of the chapters numbered ``chapters`` (all if empty)."""
    files = sorted(
        p for p in NOTEBOOKS.glob("[0-9][0-9]_*.py") if "." not in p.stem
    )
    if not chapters:
        return files
    wanted = {c.zfill(2) for c in chapters}
    chosen = [p for p in files if p.name[:2] in wanted]
    unknown = wanted - {p.name[:2] for p in chosen}
    if unknown:
        raise SystemExit(
            f"no chapter notebook numbered {sorted(unknown)}; have "
            f"{[p.name[:2] for p in files]}"
        )
    return chosen


def dry_run(
    py: Path, profile: str, *, out: Path | None = None, timeout: int = 1200
) -> dict:
    """Dry-run one chapter; returns its name, seconds, error and claim counts."""
    env = {
        "SEQLIB_PROFILE": profile,
        "SEQLIB_DRY_RUN": "1",
        "SEQLIB_SEED": "0",
        "SEQLIB_CLAIMS_SOFT": "0",
    }
    nb, seconds, error, claims = run(py, env, timeout=timeout)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out / f"{py.stem}.dry-run.ipynb")
    return {
        "chapter": py.stem,
        "seconds": seconds,
        "error": error,
        "asserted": sum(c["held"] is not None for c in claims),
        "skipped": sum(c["held"] is None for c in claims),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", help="e.g. 07 11 (all if none)")
    parser.add_argument("--profile", default="full", choices=("smoke", "full"))
    parser.add_argument(
        "--jobs",
        type=int,
        default=max(1, min(2, os.cpu_count() or 1)),
        help="chapters run at once (one thread each)",
    )
    parser.add_argument(
        "--out", type=Path, help="keep the executed notebooks here"
    )
    args = parser.parse_args(argv)
    files = chapter_files(args.chapters)
    start = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        jobs = [
            pool.submit(dry_run, py, args.profile, out=args.out)
            for py in files
        ]
        results = []
        for job in jobs:
            r = job.result()
            results.append(r)
            status = "ok" if r["error"] is None else f"FAILED: {r['error']}"
            print(
                f"{r['chapter']}: {r['seconds']:.0f} s, "
                f"{r['asserted']} claims asserted, {r['skipped']} not "
                f"evaluated in a dry run; {status}",
                flush=True,
            )
    failed = [r["chapter"] for r in results if r["error"] is not None]
    print(
        f"dry run of the {args.profile} profile: {len(files) - len(failed)} "
        f"of {len(files)} chapters passed in "
        f"{time.perf_counter() - start:.0f} s"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
