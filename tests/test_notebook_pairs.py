"""Each chapter notebook and its jupytext .py pair hold the same cells, and the stored outputs come from a clean run."""

import jupytext
import pytest

from seqlib.exercises.table import chapter_notebooks

NOTEBOOKS = [p for p in chapter_notebooks() if p.suffix == ".ipynb"]


def _cells(nb):
    return [
        (
            c.cell_type,
            c.source.strip(),
            sorted(c.metadata.get("tags", [])),
            {
                k: v
                for k, v in c.metadata.items()
                if k not in ("tags", "execution")
            },
        )
        for c in nb.cells
    ]


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found under notebooks/"


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=lambda p: p.name)
def test_pair_in_sync(ipynb):
    py = ipynb.with_suffix(".py")
    assert py.exists(), (
        f"{ipynb.name} has no jupytext pair {py.name}: run `jupytext --set-formats ipynb,py:percent {ipynb}`"
    )
    nb_cells, py_cells = (
        _cells(jupytext.read(ipynb)),
        _cells(jupytext.read(py)),
    )
    for i, (a, b) in enumerate(zip(nb_cells, py_cells)):
        assert a == b, (
            f"{ipynb.name}: cell {i} differs from {py.name}; re-run scripts/execute.py {py}"
        )
    assert len(nb_cells) == len(py_cells), (
        f"{ipynb.name} has {len(nb_cells)} cells, {py.name} {len(py_cells)}"
    )


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_outputs_come_from_a_clean_run(ipynb):
    nb = jupytext.read(ipynb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"{ipynb.name}: not executed top to bottom in one kernel"
    )
    errors = [
        i
        for i, c in enumerate(code)
        for o in c.outputs
        if o.output_type == "error"
    ]
    assert not errors, f"{ipynb.name}: code cells {errors} stored an error"
