"""Run every chapter on several seeds and write the book's Claims page.

Usage: python scripts/claims.py [--seeds 0 1 2] [--chapters 03 06] [--jobs 2] [--force] [--store]

Each (chapter, seed) runs in the smoke profile through scripts/execute.py, in
its own process, ``--jobs`` at a time; its checked claims are kept in
.cache/claims/ together with a digest of the chapter's and seqlib's source, so
a run whose source has not changed is reused (``--force`` runs it again).
``--store`` also stores seed 0's outputs in the notebook. The page
book/claims.md lists every claim with its value on each seed, the mean and
spread, and whether it held on all of them; it is written from the records
alone. Exit status 1 when a run failed or a claim did not hold.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import execute  # noqa: E402  (the sibling script)

ROOT = execute.ROOT
PAGE = ROOT / "book" / "claims.md"
TITLES = {
    "01": "Autoencoders and PCA",
    "02": "RNN encoder–decoders and BLEU",
    "03": "Attention for sequence to sequence",
    "04": "Image captioning with attention",
    "05": "Self-attention and Transformers",
    "06": "The Vision Transformer",
    "07": "The Swin Transformer",
    "08": "DETR",
    "09": "ViViT",
    "10": "The Recurrent Vision Transformer",
    "11": "The Temporal Latent Bottleneck",
}


def notebooks(chapters: list[str] | None) -> list[Path]:
    found = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    return [
        p
        for p in found
        if not chapters or p.name[:2] in {c.zfill(2) for c in chapters}
    ]


def cached(py: Path, seed: int) -> dict | None:
    path = execute.record_path(py, seed)
    if not path.exists():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    return record if record["key"] == execute.source_key(py) else None


def run_one(py: Path, seed: int, store: bool) -> dict:
    cmd = [
        sys.executable,
        str(Path(execute.__file__)),
        "--seed",
        str(seed),
        str(py),
    ]
    if not (store and seed == 0):
        cmd.insert(2, "--no-write")
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    print(done.stdout.strip() or done.stderr.strip()[-2000:], flush=True)
    record = cached(py, seed)
    if record is None:
        raise RuntimeError(
            f"{py.name} seed {seed}: no record written\n{done.stderr[-2000:]}"
        )
    return record


def device() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, one PyTorch thread per run"


def digits(mean: float | None, spread: float) -> int:
    """Significant digits that show the seed-to-seed spread of a value (3 to 7)."""
    if mean is None or spread == 0 or mean == 0:
        return 3
    return max(3, min(7, 1 + math.ceil(math.log10(abs(mean) / spread))))


def fmt(x: float | None, d: int = 3) -> str:
    return "—" if x is None else f"{x:.{d}g}"


def held_on_every(claim: dict, seeds: list[int]) -> bool:
    """True when the claim was measured on every seed and held on each."""
    return all(claim["held_on"].get(s) for s in seeds)


def render(
    records: list[dict], seeds: list[int], seconds: float, command: str
) -> str:
    import torch

    by_claim: dict[str, dict] = {}
    errors = []
    for record in records:
        if record["error"]:
            errors.append(
                f"{record['notebook']} (seed {record['seed']}): {record['error']}"
            )
        for c in record["claims"]:
            entry = by_claim.setdefault(c["id"], {**c, "values": {}})
            entry["values"][record["seed"]] = c["value"]
            entry.setdefault("held_on", {})[record["seed"]] = c["held"]
    lines = [
        "# Claims",
        "",
        "Every sentence of the book that states a measured result is backed by a",
        "*named claim*: the notebook measures a value, checks the condition the",
        "prose relies on with `seqlib.claims.check`, and stops if it fails. This page",
        "runs every chapter in the smoke profile once per seed (`SEQLIB_SEED`, which",
        "drives data generation, initialisation, batching and sampling) and lists",
        "what each claim measured. A claim is *held* only if its condition held on",
        "every seed. For a comparison the value is the difference the prose talks",
        "about, so its spread shows how much the comparison moves from seed to seed.",
        "★ marks a chapter's flagship result.",
        "",
        f"- **Generated** {datetime.date.today().isoformat()} by `{command}` "
        f"({len(records)} runs of the smoke profile, {seconds / 60:.0f} min of run time in all).",
        f"- **Device:** {device()}; PyTorch {torch.__version__}; Python {platform.python_version()}.",
        f"- **Seeds:** {', '.join(map(str, seeds))}.",
        "",
        "Spread is the sample standard deviation over the seeds. Run times are the",
        "wall-clock seconds of each run; runs that shared the cores with other runs",
        "(`--jobs`, or other work on the machine) took longer than a run alone.",
        "",
    ]
    held_all = sum(held_on_every(c, seeds) for c in by_claim.values())
    lines += [
        f"**{held_all} of {len(by_claim)} claims held on every seed.**",
        "",
    ]
    if errors:
        lines += (
            ["```{warning}", "These runs did not finish:", ""]
            + [f"- {e}" for e in errors]
            + ["```", ""]
        )
    for chapter in sorted({c["chapter"] for c in by_claim.values()}):
        nn = chapter[2:]
        stem = next(p.stem for p in notebooks([nn]))
        times = ", ".join(
            f"{r['seconds']:.0f} s" for r in records if r["notebook"] == stem
        )
        lines += [
            f"(claims-{chapter})=",
            f"## {int(nn)}. {TITLES[nn]}",
            "",
            f"Chapter: {{doc}}`../notebooks/{stem}`. Run time per seed: {times}.",
            "",
            "| claim | condition | seeds "
            + " / ".join(map(str, seeds))
            + " | mean ± spread | held |",
            "|---|---|---|---|---|",
        ]
        for cid, c in by_claim.items():  # in the order the chapter checks them
            if c["chapter"] != chapter:
                continue
            values = [c["values"].get(s) for s in seeds]
            present = [v for v in values if v is not None]
            mean = statistics.fmean(present) if present else None
            spread = statistics.stdev(present) if len(present) > 1 else 0.0
            held = held_on_every(c, seeds)
            n_held = sum(bool(c["held_on"].get(s)) for s in seeds)
            star = " ★" if c["flagship"] else ""
            d = digits(mean, spread)
            lines.append(
                f"| {c['statement']} `{cid}`{star} | {c['condition'].replace('|', '/')} | "
                + " / ".join(fmt(v, d) for v in values)
                + f" | {fmt(mean, d)} ± {fmt(spread, 2)} | {'yes' if held else f'{n_held} of {len(seeds)}'} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--chapters",
        nargs="*",
        help="two-digit chapter numbers (default: all)",
    )
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--force",
        action="store_true",
        help="rerun even when the source is unchanged",
    )
    parser.add_argument(
        "--store",
        action="store_true",
        help="store seed 0's outputs in the notebooks",
    )
    parser.add_argument(
        "--no-page",
        action="store_true",
        help="run and report, but do not write the page",
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    todo, records = [], []
    for py in notebooks(args.chapters):
        for seed in args.seeds:
            record = (
                None
                if args.force or (args.store and seed == 0)
                else cached(py, seed)
            )
            (records.append(record) if record else todo.append((py, seed)))
    print(
        f"{len(records)} runs reused, {len(todo)} to run with {args.jobs} jobs",
        flush=True,
    )
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        records += list(pool.map(lambda job: run_one(*job, args.store), todo))
    seconds = time.perf_counter() - start
    failed = [
        f"{r['notebook']} seed {r['seed']}: {r['error']}"
        for r in records
        if r["error"]
    ]
    failed += [
        f"{r['notebook']} seed {r['seed']}: claim {c['id']} = {c['value']:.4g}, expected {c['condition']}"
        for r in records
        for c in r["claims"]
        if not c["held"]
    ]
    if not args.no_page:
        found = {
            (py.stem, s): cached(py, s)
            for py in notebooks(None)
            for s in args.seeds
        }
        missing = [
            f"{stem} seed {s}"
            for (stem, s), record in found.items()
            if record is None
        ]
        if missing:
            print(
                "page not written; runs missing or out of date:",
                ", ".join(missing),
            )
        else:
            every = list(found.values())
            ran = sum(r["seconds"] for r in every)
            command = "python scripts/claims.py --seeds " + " ".join(
                map(str, args.seeds)
            )
            PAGE.write_text(
                render(every, args.seeds, ran, command) + "\n",
                encoding="utf-8",
            )
            print(f"wrote {PAGE.relative_to(ROOT)}")
    print(f"done in {seconds / 60:.1f} min; {len(failed)} failures")
    for line in failed:
        print("  " + line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
