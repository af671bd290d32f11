"""Grade every chapter and its student edition, as an instructor would, and time it.

Usage: python scripts/grade_all.py [--jobs 2] [NN ...]

Each chapter must get full marks with its own solutions, and its student
edition zero, every exercise failing with its stub's NotImplementedError. The
tests do this for two chapters; this script does it for all eleven (about
25 minutes on two CPU cores with two jobs).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from seqlib.exercises import batch, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "chapters", nargs="*", help="chapter numbers (default: all)"
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="notebooks graded at once"
    )
    args = parser.parse_args(argv)
    chapters = [
        p
        for p in table.chapter_notebooks()
        if not args.chapters or p.stem[:2] in args.chapters
    ]
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        problems = batch.grade_editions(chapters, Path(folder), jobs=args.jobs)
    print(
        f"graded {len(chapters)} chapters and their student editions in {time.monotonic() - start:.0f} s "
        f"with {args.jobs} jobs"
    )
    for problem in problems:
        print(problem)
    print("all as expected" if not problems else f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
