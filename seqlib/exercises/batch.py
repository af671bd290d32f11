"""Grade a whole class: many submissions in parallel, one CSV row per student.

Each submission is graded by its own ``seqlib-grade`` process (so a crash in
one never touches the others), at most ``--jobs`` at a time, each under its own
time limits plus a margin. Every submission gets its row, whatever happened:
graded, not a notebook, kernel died, timed out, or the grader itself failed.

The CSV has the columns ``student``, ``file``, ``status``, one column per
exercise (the points earned), ``total``, ``max``, then ``zeros`` (the reason
for each exercise that scored 0), ``checks_changed``, ``tampering``,
``look_at`` (cells worth a look) and ``message``. It opens in a spreadsheet and
imports into a gradebook as it is.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from seqlib.exercises.grade import EXIT_INTERNAL, EXIT_OK

# beyond a run's own limit, how long before its grader process is stopped
_MARGIN_S = 60


def _student(path: Path, taken: set[str]) -> str:
    """A unique row name: the file's stem, with its folder when two stems
    clash."""
    name = path.stem
    if name in taken:
        name = f"{path.parent.name}/{path.stem}"
    taken.add(name)
    return name


def _command(path: Path, record: Path, args) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "seqlib.exercises.grade",
        str(path),
        "--json",
        str(record),
        "--timeout",
        str(args.timeout),
        "--kernel",
        args.kernel,
    ]
    for flag, value in (
        ("--cell-timeout", args.cell_timeout),
        ("--reference", args.reference),
        ("--cwd", args.cwd),
    ):
        if value is not None:
            command += [flag, str(value)]
    return command + (["--own-checks"] if args.own_checks else [])


def grade_one(path: Path, args, record: Path) -> dict:
    """Grade one submission in its own process; always returns a record."""
    start = time.monotonic()
    try:
        run = subprocess.run(
            _command(path, record, args),
            capture_output=True,
            text=True,
            timeout=args.timeout + _MARGIN_S,
        )
        output = run.stdout.strip().splitlines()
    except subprocess.TimeoutExpired:
        return {
            "notebook": str(path),
            "status": "timed-out",
            "exercises": [],
            "total": 0,
            "max": None,
            "message": (
                "the grader did not finish within "
                f"{args.timeout + _MARGIN_S:g} s and was stopped"
            ),
            "elapsed_s": round(time.monotonic() - start, 2),
        }
    if record.exists():
        return json.loads(record.read_text())
    last = (
        output[-1]
        if output
        else (run.stderr.strip().splitlines() or ["no output"])[-1]
    )
    return {
        "notebook": str(path),
        "status": "internal-error",
        "exercises": [],
        "total": 0,
        "max": None,
        "message": f"the grader failed ({last[:300]})",
        "elapsed_s": round(time.monotonic() - start, 2),
    }


def _progress(total: int):
    """A progress bar on stderr (tqdm when installed, else one line per
    notebook)."""
    try:
        from tqdm import tqdm

        return tqdm(
            total=total, unit="notebook", desc="grading", file=sys.stderr
        )
    except ImportError:

        class Lines:
            done = 0

            def update(self, n):
                self.done += n
                print(f"graded {self.done}/{total}", file=sys.stderr)

            def set_postfix_str(self, text):
                pass

            def close(self):
                pass

        return Lines()


def grade_class(paths: list[Path], args) -> list[dict]:
    """Records for ``paths``, in their order, graded ``args.jobs`` at a
    time."""
    records: dict[int, dict] = {}
    bar = _progress(len(paths))
    with (
        tempfile.TemporaryDirectory() as scratch,
        ThreadPoolExecutor(max(1, args.jobs)) as pool,
    ):
        futures = {
            pool.submit(grade_one, path, args, Path(scratch) / f"{i}.json"): i
            for i, path in enumerate(paths)
        }
        for future in as_completed(futures):
            i = futures[future]
            records[i] = future.result()
            bar.set_postfix_str(Path(paths[i]).name)
            bar.update(1)
    bar.close()
    return [records[i] for i in range(len(paths))]


def _labels(records: list[dict]) -> list[str]:
    return list(
        dict.fromkeys(
            e["label"] for r in records for e in r.get("exercises", [])
        )
    )


def rows(
    paths: list[Path], records: list[dict]
) -> tuple[list[str], list[dict]]:
    """The CSV header and one row per submission."""
    labels, taken = _labels(records), set()
    header = (
        ["student", "file", "status"]
        + labels
        + [
            "total",
            "max",
            "zeros",
            "checks_changed",
            "tampering",
            "look_at",
            "message",
        ]
    )
    table = []
    for path, record in zip(paths, records):
        points = {e["label"]: e["points"] for e in record.get("exercises", [])}
        zeros = [
            f"{e['label']}: {e['reason']}"
            for e in record.get("exercises", [])
            if e["status"] != "passed"
        ]
        row = {
            "student": _student(Path(path), taken),
            "file": str(path),
            "status": record["status"],
            **{label: points.get(label, 0) for label in labels},
            "total": record.get("total", 0),
            "max": record.get("max") or "",
            "zeros": " | ".join(zeros),
            "checks_changed": " ".join(record.get("changed_checks", [])),
            "tampering": " | ".join(record.get("notes", [])),
            "look_at": " | ".join(
                f"cell {f['cell']}: {f['what']}"
                for f in record.get("flags", [])
            ),
            "message": record.get("message", ""),
        }
        table.append(row)
    return header, table


def run(args) -> int:
    """``seqlib-grade`` with several notebooks or ``--csv``: grade the class
    and write its files."""
    paths = list(args.notebooks)
    start = time.monotonic()
    records = grade_class(paths, args)
    header, table = rows(paths, records)
    try:
        if args.csv:
            args.csv.parent.mkdir(parents=True, exist_ok=True)
            with open(args.csv, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=header)
                writer.writeheader()
                writer.writerows(table)
        if args.json_dir:
            args.json_dir.mkdir(parents=True, exist_ok=True)
            for row, record in zip(table, records):
                name = row["student"].replace("/", "__")
                (args.json_dir / f"{name}.json").write_text(
                    json.dumps(record, indent=2) + "\n"
                )
    except OSError as err:
        print(
            "seqlib-grade: could not write the class's files "
            f"({err.strerror or err})."
        )
        return EXIT_INTERNAL
    width = max([len(r["student"]) for r in table] + [7])
    print(
        f"Graded {len(paths)} submissions in {time.monotonic() - start:.1f} s"
    )
    print(f"{'student':<{width}}  {'total':>6}  {'max':>5}  status")
    for row in table:
        print(
            f"{row['student']:<{width}}  {row['total']:>6g}  "
            f"{str(row['max']):>5}  {row['status']}"
        )
    return EXIT_OK


def _args(**overrides):
    """The options of ``seqlib-grade``, as parsed, with ``overrides``."""
    from seqlib.exercises.grade import _parser

    args = _parser().parse_args(["-"])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def grade_editions(
    chapters: list[Path], folder: Path, *, jobs: int = 2, timeout: float = 900
) -> list[str]:
    """Grade each chapter and its student edition; returns what is wrong (empty
    when all is well).

    The chapter itself must get full marks, every exercise passed; its student
    edition must get zero, every exercise failing with ``NotImplementedError``
    (its stub). Used by the tests (two chapters) and ``scripts/grade_all.py``
    (all).
    """
    from seqlib.exercises import student

    paths = []
    for chapter in chapters:
        paths += [
            chapter,
            student.write_student_edition(chapter, folder / chapter.stem),
        ]
    records = grade_class(
        paths, _args(jobs=jobs, timeout=timeout, cwd=chapters[0].parent)
    )
    problems = []
    for path, record in zip(paths, records):
        reference = path in chapters
        if record["status"] != "graded" or not record.get("exercises"):
            problems.append(
                f"{path}: {record['status']}: {record.get('message', '')}"
            )
            continue
        for e in record["exercises"]:
            if reference and e["status"] != "passed":
                problems.append(
                    f"{path}: the reference fails {e['label']}: {e['reason']}"
                )
            if not reference and (
                e["points"] or "NotImplementedError" not in e["reason"]
            ):
                problems.append(
                    f"{path}: the student edition's {e['label']} scores "
                    f"{e['points']} ({e['reason'] or 'passed'})"
                )
    return problems
