"""Serve MathJax from the built book instead of a CDN.

The book should read the same offline (a laptop on a train, a classroom with a
firewall) as online. When the ``django-static-mathjax`` wheel is installed (it is
a dependency of ``seqlib[book]`` and ships MathJax 3's files, with no Django
needed), its ``es5`` bundle is copied to ``_static/mathjax`` and Sphinx points
``mathjax_path`` there. Without it the CDN default stays.
"""

from __future__ import annotations

import shutil
from importlib.util import find_spec
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)
BUNDLE = "tex-mml-chtml.js"
# What the bundle loads at run time, relative to itself: fonts and TeX extensions.
SUPPORT = ("output/chtml/fonts/woff-v2", "input/tex/extensions")


def _es5_dir() -> Path | None:
    spec = find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        return None
    es5 = (
        Path(next(iter(spec.submodule_search_locations)))
        / "static"
        / "mathjax"
        / "es5"
    )
    return es5 if (es5 / BUNDLE).is_file() else None


def _config_inited(app, config) -> None:
    if _es5_dir() is not None:
        config.mathjax_path = f"mathjax/{BUNDLE}"
    else:
        logger.info(
            "offline_mathjax: django-static-mathjax not installed; MathJax loads from its CDN"
        )


def _build_finished(app, exception) -> None:
    es5 = _es5_dir()
    if exception is None and es5 is not None and app.builder.format == "html":
        target = Path(app.outdir) / "_static" / "mathjax"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(es5 / BUNDLE, target / BUNDLE)
        for sub in SUPPORT:
            shutil.copytree(es5 / sub, target / sub, dirs_exist_ok=True)


def setup(app) -> dict:
    app.connect("config-inited", _config_inited)
    app.connect("build-finished", _build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
