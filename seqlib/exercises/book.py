"""Build the book with or without solutions, from the one ``_config.yml``.

``python -m seqlib.exercises.book --no-solutions [jupyter-book build options]``
loads ``_config.yml``, sets sphinx-exercise's ``hide_solutions``, adds this
module as a Sphinx extension, writes the result to a temporary config and runs
``jupyter-book build . --config <tmp>``; the no-solutions build goes to
``_build/no-solutions/_build/html`` unless ``--path-output`` says otherwise.

Why an extension: with ``hide_solutions: true`` sphinx-exercise drops a gated
``solution-start`` directive but not the cells between it and ``solution-end``,
so solution code would still show. When ``hide_solutions`` is on, this
extension gives Sphinx each notebook with its solution cells removed and its
``# BEGIN SOLUTION`` cells stubbed (as in the student edition, outputs of the
other cells kept), and strips the ``_sources/*.ipynb`` copies behind the
download button the same way. It handles ``.ipynb`` sources; text pages should
use the plain ``{solution}`` directive, which sphinx-exercise hides itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import yaml

from seqlib.exercises.student import student_cell

EXTENSION = "seqlib.exercises.book"
NO_SOLUTIONS_OUTPUT = "_build/no-solutions"


def strip_solutions(text: str, name: str = "notebook") -> str:
    """A notebook's JSON text with solution cells removed and stub cells
    stubbed.

    Args:
        text: the ``.ipynb`` JSON.
        name: how error messages refer to it.

    Returns:
        The JSON text of the solutions-free notebook (other outputs kept).
    """
    nb = nbformat.reads(text, as_version=4)
    cells = (
        student_cell(cell, f"{name}: cell {i}", keep_outputs=True)
        for i, cell in enumerate(nb.cells)
    )
    nb.cells = [cell for cell in cells if cell is not None]
    return json.dumps(nb, ensure_ascii=False)


def _on_source_read(app, docname: str, source: list[str]) -> None:
    if not app.config.hide_solutions or not str(
        app.env.doc2path(docname)
    ).endswith(".ipynb"):
        return
    source[0] = strip_solutions(source[0], docname)


def _on_build_finished(app, exception) -> None:
    """Strip the copies of the notebooks behind the page's download button
    too."""
    sources = Path(app.outdir) / "_sources"
    if (
        exception is not None
        or not app.config.hide_solutions
        or not sources.is_dir()
    ):
        return
    for path in sources.rglob("*.ipynb"):
        path.write_text(
            strip_solutions(path.read_text(encoding="utf-8"), str(path)),
            encoding="utf-8",
        )


def setup(app) -> dict:
    """Sphinx entry point: strip notebook solutions when ``hide_solutions`` is
    true."""
    app.setup_extension("sphinx_exercise")  # registers hide_solutions
    app.connect("source-read", _on_source_read)
    app.connect("build-finished", _on_build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def build_config(
    config: dict, *, hide_solutions: bool, config_dir: Path
) -> dict:
    """A copy of a Jupyter Book config with the solutions switch and this
    extension set.

    Args:
        config: the loaded ``_config.yml``.
        hide_solutions: the value of ``sphinx.config.hide_solutions``.
        config_dir: the directory of ``_config.yml``; relative
            ``local_extensions`` paths are made absolute, since the copy lives
            elsewhere.

    Returns:
        The new config (``config`` is not modified).
    """
    new = json.loads(json.dumps(config))
    sphinx = new["sphinx"] = new.get("sphinx") or {}
    extensions = sphinx.get("extra_extensions") or []
    sphinx["extra_extensions"] = extensions + (
        [EXTENSION] if EXTENSION not in extensions else []
    )
    sphinx["config"] = {
        **(sphinx.get("config") or {}),
        "hide_solutions": hide_solutions,
    }
    if sphinx.get("local_extensions"):
        sphinx["local_extensions"] = {
            name: str((config_dir / path).resolve())
            for name, path in sphinx["local_extensions"].items()
        }
    return new


def _command(
    source: Path, config_path: Path, rest: list[str], no_solutions: bool
) -> list[str]:
    runner = (
        "import sys; from jupyter_book.cli.main import main; sys.exit(main())"
    )
    command = [
        sys.executable,
        "-c",
        runner,
        "build",
        str(source),
        "--config",
        str(config_path),
    ]
    if no_solutions and "--path-output" not in rest:
        command += ["--path-output", str(source / NO_SOLUTIONS_OUTPUT)]
    return command + rest


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns jupyter-book's exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m seqlib.exercises.book",
        description="jupyter-book build with the solutions switch set.",
    )
    parser.add_argument(
        "--no-solutions",
        action="store_true",
        help="hide every exercise solution",
    )
    parser.add_argument(
        "--source", type=Path, default=Path("."), help="book root (default: .)"
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="base config (default: <source>/_config.yml)",
    )
    args, rest = parser.parse_known_args(argv)
    base = args.config or args.source / "_config.yml"
    if not base.is_file():
        print(
            f"book: error: no Jupyter Book config at {base}", file=sys.stderr
        )
        return 2
    config = build_config(
        yaml.safe_load(base.read_text()) or {},
        hide_solutions=args.no_solutions,
        config_dir=base.resolve().parent,
    )
    root = str(
        Path(__file__).resolve().parents[2]
    )  # so Sphinx can import this extension
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [root, os.environ.get("PYTHONPATH")])
        ),
    }
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "_config.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        return subprocess.call(
            _command(args.source, config_path, rest, args.no_solutions),
            env=env,
        )


if __name__ == "__main__":
    sys.exit(main())
