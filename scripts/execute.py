"""Re-execute chapter notebooks from their jupytext .py pair and store the outputs.

Usage: python scripts/execute.py notebooks/01_autoencoders_pca.py [...]

The stored outputs must come from a clean top-to-bottom smoke run (DESIGN.md §5),
so this script always starts from the .py source, runs it in a fresh kernel with
the settings CI uses (smoke profile, one thread, no progress bars, offline),
writes the .ipynb with its outputs, and reports the wall time of each notebook.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

ENV = {"SEQLIB_PROFILE": "smoke", "SEQLIB_THREADS": "1", "SEQLIB_OFFLINE": "1", "CI": "1",
       "KERAS_BACKEND": "torch",
       "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def execute(py: Path, timeout: int = 900) -> float:
    """Execute ``py`` (a percent-format pair) and write its ``.ipynb``; return seconds."""
    nb = jupytext.read(py)
    nb.metadata.setdefault("jupytext", {})["formats"] = "ipynb,py:percent"
    os.environ.update(ENV)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(py.parent)}}).execute()
    seconds = time.perf_counter() - start
    ipynb = py.with_suffix(".ipynb")
    nbformat.write(nb, ipynb)
    jupytext.write(jupytext.read(ipynb), py, fmt="py:percent")   # keep the pair byte-identical
    return seconds


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    for name in argv:
        path = Path(name).with_suffix(".py")
        seconds = execute(path)
        print(f"{path}: executed in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
