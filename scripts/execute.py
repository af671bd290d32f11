"""Re-execute chapter notebooks from their jupytext .py pair and store the outputs.

Usage: python scripts/execute.py [--seed S] [--no-write] notebooks/01_autoencoders_pca.py [...]

The stored outputs must come from a clean top-to-bottom smoke run with the
default seed, so this script always starts from the .py source, runs it in a
fresh kernel with the settings CI uses (smoke profile, one thread, no progress
bars, offline), writes the .ipynb with its outputs, and reports the wall time
of each notebook. Every claim the notebook checks (seqlib.claims) is recorded
in .cache/claims/, which scripts/claims.py reads; ``--seed`` runs another
seed (and then writes no notebook), ``--no-write`` only records.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "claims"
ENV = {
    "SEQLIB_PROFILE": "smoke",
    "SEQLIB_THREADS": "1",
    "SEQLIB_OFFLINE": "1",
    "CI": "1",
    "KERAS_BACKEND": "torch",
    "OMP_NUM_THREADS": "1",
    "PYTHONHASHSEED": "0",
}


def _seqlib_imports(source: str) -> set[str]:
    """The seqlib modules that ``source`` imports by name (``seqlib.x``, ``from seqlib import x``)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {
                a.name for a in node.names if a.name.split(".")[0] == "seqlib"
            }
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.split(".")[0] == "seqlib"
        ):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _module_files(name: str) -> list[Path]:
    """The files of module ``name`` and of the packages above it (empty if it is not a module)."""
    parts = name.split(".")
    files = [
        ROOT.joinpath(*parts[:i], "__init__.py") for i in range(1, len(parts))
    ]
    candidates = [
        ROOT.joinpath(*parts).with_suffix(".py"),
        ROOT.joinpath(*parts, "__init__.py"),
    ]
    hit = [c for c in candidates if c.exists()]
    return [f for f in files if f.exists()] + hit if hit else []


def source_key(py: Path) -> str:
    """A digest of the code a run's results depend on: the chapter and the seqlib modules it reaches.

    The modules are found by following ``import`` statements from the notebook
    through seqlib, so an edit to a module the chapter never imports keeps its
    recorded claims valid.
    """
    seen: set[Path] = set()
    todo = [py.resolve()]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _seqlib_imports(path.read_text(encoding="utf-8")):
            todo += _module_files(name)
    digest = hashlib.sha256()
    for path in sorted(seen):
        # The syntax tree, not the text: markdown cells, comments and cell markers
        # (such as NBVAL_IGNORE_OUTPUT) cannot change a result.
        tree = ast.dump(ast.parse(path.read_text(encoding="utf-8")))
        digest.update(
            path.relative_to(ROOT).as_posix().encode() + b"\0" + tree.encode()
        )
    return digest.hexdigest()[:16]


def record_path(py: Path, seed: int) -> Path:
    """Where the claims of ``py`` run with ``seed`` are kept."""
    return CACHE / f"{py.stem}.seed{seed}.json"


def run(
    py: Path, env: dict[str, str], *, timeout: int = 900
) -> tuple[nbformat.NotebookNode, float, str | None, list[dict]]:
    """Run ``py`` (a percent-format pair) top to bottom in a fresh kernel.

    The kernel gets this process's environment updated with ``ENV`` and then
    ``env``. Returns the executed notebook, the wall time in seconds, the error
    (the last line of a failed cell's traceback, or None) and the claims the
    run checked (seqlib.claims records).
    """
    nb = jupytext.read(py)
    nb.metadata.setdefault("jupytext", {})["formats"] = "ipynb,py:percent"
    with tempfile.NamedTemporaryFile(
        "w+", suffix=".jsonl", delete=False
    ) as tmp:
        claims_file = tmp.name
    kernel_env = {
        **os.environ,
        **ENV,
        **env,
        "SEQLIB_CLAIMS_FILE": claims_file,
    }
    start, error = time.perf_counter(), None
    try:
        NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(py.parent)}},
        ).execute(env=kernel_env)
    except CellExecutionError as exc:
        error = str(exc).strip().splitlines()[-1][:500]
    seconds = time.perf_counter() - start
    with open(claims_file, encoding="utf-8") as f:
        claims = [json.loads(line) for line in f if line.strip()]
    os.unlink(claims_file)
    return nb, seconds, error, claims


def execute(
    py: Path, *, seed: int = 0, write: bool = True, timeout: int = 900
) -> dict:
    """Run ``py`` (a percent-format pair) with ``SEQLIB_SEED=seed`` and record its claims.

    With ``write`` (seed 0 only) the executed notebook is stored as the ``.ipynb``
    pair. Returns the run record: seconds, error (or None) and the claims.
    """
    if write and seed != 0:
        raise ValueError(
            "stored outputs come from seed 0; pass write=False for other seeds"
        )
    key = source_key(py)
    nb, seconds, error, claims = run(
        py,
        {
            "SEQLIB_SEED": str(seed),
            "SEQLIB_CLAIMS_SOFT": "0" if write else "1",
        },
        timeout=timeout,
    )
    record = {
        "notebook": py.stem,
        "seed": seed,
        "key": key,
        "seconds": round(seconds, 1),
        "error": error,
        "claims": claims,
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    out = record_path(py, seed)
    out.with_suffix(".tmp").write_text(
        json.dumps(record, indent=1), encoding="utf-8"
    )
    out.with_suffix(".tmp").replace(out)
    if error is None and write:
        ipynb = py.with_suffix(".ipynb")
        nbformat.write(nb, ipynb)
        jupytext.write(
            jupytext.read(ipynb), py, fmt="py:percent"
        )  # keep the pair byte-identical
    return record


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-write",
        action="store_true",
        help="record claims only; keep the stored notebook",
    )
    args = parser.parse_args(argv)
    failed = 0
    for name in args.notebooks:
        path = Path(name).with_suffix(".py")
        record = execute(
            path, seed=args.seed, write=not args.no_write and args.seed == 0
        )
        bad = [c["id"] for c in record["claims"] if not c["held"]]
        status = (
            "ok"
            if record["error"] is None and not bad
            else f"FAILED {record['error'] or ''} {bad or ''}"
        )
        print(
            f"{path} (seed {args.seed}): executed in {record['seconds']:.1f} s, "
            f"{len(record['claims'])} claims, {status}",
            flush=True,
        )
        failed += status != "ok"
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
