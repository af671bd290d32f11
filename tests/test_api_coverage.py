"""The API-coverage extension (book/_ext/api_coverage.py) reports what the
API reference misses."""

import importlib.util
import sys
import types
from pathlib import Path

import pytest

pytest.importorskip("sphinx")

_PATH = (
    Path(__file__).resolve().parents[1] / "book" / "_ext" / "api_coverage.py"
)
_SPEC = importlib.util.spec_from_file_location("api_coverage", _PATH)
api_coverage = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(api_coverage)


@pytest.fixture
def fake_module(monkeypatch):
    """A module ``fake_api`` with two public functions, a public class, a
    private helper, an imported function and a constant."""
    module = types.ModuleType("fake_api")
    source = (
        "from os.path import join\n"
        "LIMIT = 3\n"
        "def documented(): pass\n"
        "def forgotten(): pass\n"
        "class Model: pass\n"
        "def _helper(): pass\n"
    )
    exec(compile(source, "fake_api.py", "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, "fake_api", module)
    return module


def test_public_names_are_own_functions_and_classes(fake_module):
    assert api_coverage.public_names(fake_module) == [
        "fake_api.documented",
        "fake_api.forgotten",
        "fake_api.Model",
    ]


def test_a_missing_name_is_reported(fake_module):
    documented = {"fake_api", "fake_api.documented", "fake_api.Model"}
    assert api_coverage.missing_names(fake_module, documented) == [
        "fake_api.forgotten"
    ]


def test_nothing_missing_when_all_documented(fake_module):
    documented = set(api_coverage.public_names(fake_module))
    assert api_coverage.missing_names(fake_module, documented) == []


def test_seqlib_modules_are_walked():
    names = api_coverage.package_modules("seqlib")
    assert "seqlib" in names
    assert "seqlib.data.cifar10" in names
    assert "seqlib.exercises.grade" in names


def test_every_seqlib_module_has_a_page():
    """Each module has book/api/<path>.md with its automodule, and _toc.yml
    lists the page (the build's warning says the same, later)."""
    root = _PATH.parents[2]
    toc = (root / "_toc.yml").read_text()
    for name in api_coverage.package_modules("seqlib"):
        if name == "seqlib":
            page = "book/api/index"
        else:
            page = "book/api/" + name.removeprefix("seqlib.").replace(".", "/")
        text = (root / f"{page}.md").read_text()
        assert f".. automodule:: {name}\n" in text, page
        assert f"file: {page}\n" in toc, page


def test_the_build_check_warns_with_the_missing_names(
    fake_module, monkeypatch
):
    """_check (run at env-check-consistency) emits one Sphinx warning per
    module with missing names, and one for a module without a page."""
    warnings = []

    class Logger:
        def warning(self, msg, *args, **kwargs):
            warnings.append((msg % args, kwargs.get("type")))

    monkeypatch.setattr(api_coverage, "logger", Logger())
    monkeypatch.setattr(
        api_coverage, "package_modules", lambda package: [package]
    )
    domain = types.SimpleNamespace(
        objects={"fake_api.documented": None, "fake_api.Model": None},
        modules={"fake_api": None},
    )
    env = types.SimpleNamespace(get_domain=lambda name: domain)
    app = types.SimpleNamespace(
        config=types.SimpleNamespace(api_coverage_package="fake_api")
    )
    api_coverage._check(app, env)
    assert warnings == [
        (
            "api_coverage: fake_api: not in the API reference: forgotten",
            "api_coverage",
        )
    ]
    warnings.clear()
    domain.modules.clear()
    api_coverage._check(app, env)
    assert len(warnings) == 1
    assert "module fake_api has no API page" in warnings[0][0]
