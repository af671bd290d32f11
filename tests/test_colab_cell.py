"""The chapters' first cell (seqlib.notebook.first_cell) and its Colab install.

The install test plays Colab offline: a fresh virtual environment sees this
environment's packages (torch among them) as preinstalled, seqlib left out,
and the cell pip-installs seqlib from a local git repository holding the
working tree (``SEQLIB_REPO``), with pip told to use no index at all.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
import yaml

from seqlib.notebook import CHAPTER_EXTRAS, REPOSITORY, first_cell

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import first_cells  # noqa: E402

CHAPTERS = [first_cells.chapter_of(p) for p in first_cells.chapter_paths()]


def test_repository_is_the_books_repository():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert REPOSITORY == config["repository"]["url"]
    assert f'url = "{REPOSITORY}"' in first_cell("ch01")


def test_keras_extra_is_for_exactly_the_chapters_that_import_keras():
    uses_keras = re.compile(
        r"^\s*(import keras|from keras\b|from seqlib\.keras_backend\b|"
        r"from seqlib import .*_keras\b)",
        re.MULTILINE,
    )
    importing = {
        first_cells.chapter_of(p)
        for p in first_cells.chapter_paths()
        if uses_keras.search(p.read_text())
    }
    assert importing == {"ch10", "ch11"}
    assert {
        c for c, extras in CHAPTER_EXTRAS.items() if "keras" in extras
    } == (importing)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_first_cell_is_short_valid_python_that_starts_the_chapter(chapter):
    cell = first_cell(chapter)
    compile(cell, f"first_cell({chapter!r})", "exec")
    lines = cell.splitlines()
    assert max(map(len, lines)) <= 79
    assert len(lines) <= 20
    assert lines[-1] == f'device = start("{chapter}")'
    assert cell.endswith("\n") and not cell.endswith("\n\n")
    wanted = "seqlib[keras]" if chapter in ("ch10", "ch11") else "seqlib"
    assert f'f"{wanted} @ git+{{repo}}"' in cell
    assert cell.count("seqlib[") == (wanted != "seqlib")


def test_first_cell_is_ruff_clean(tmp_path):
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    ruff = ruff or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    cell = tmp_path / "cell.py"
    cell.write_text(first_cell("ch10"))
    config = ["--config", str(ROOT / "pyproject.toml")]
    for command in (["format", "--check"], ["check"]):
        done = subprocess.run(
            [ruff, *command, *config, str(cell)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_first_cell_rejects_what_is_not_a_chapter_key():
    for bad in ("ch7", "07", "chapter07", 7):
        with pytest.raises(ValueError, match="like 'ch07'.*got"):
            first_cell(bad)


def test_first_cells_script_rewrites_only_the_first_code_cell(tmp_path):
    source = ROOT / "notebooks" / "02_seq2seq_bleu.py"
    copy = tmp_path / source.name
    old = source.read_text()
    start, end = first_cells.first_code_cell(old)
    stale = old.splitlines(keepends=True)
    stale[start:end] = ["# an old setup cell\n", 'device = start("ch02")\n']
    copy.write_text("".join(stale))
    assert first_cells.differing([copy]) == ["ch02"]
    assert first_cells.main(["--check", str(copy)]) == 1
    assert first_cells.main([str(copy)]) == 0
    assert first_cells.differing([copy]) == []
    assert first_cells.main(["--check", str(copy)]) == 0
    assert first_cells.rewrite(copy) is False
    new = copy.read_text().splitlines(keepends=True)
    cell = first_cell("ch02").splitlines(keepends=True)
    assert new[start : start + len(cell)] == cell
    assert new[:start] == stale[:start]
    assert new[start + len(cell) :] == old.splitlines(keepends=True)[end:]
    jupytext = pytest.importorskip("jupytext")
    code = [c for c in jupytext.read(copy).cells if c.cell_type == "code"]
    assert code[0].source == first_cell("ch02").rstrip("\n")


def test_every_chapter_has_the_generated_first_cell():
    differ = first_cells.differing()
    assert differ == [], (
        f"the first code cell of {', '.join(differ)} is not "
        "seqlib.notebook.first_cell(): run python scripts/first_cells.py "
        "and re-execute those chapters"
    )


def _preinstalled(tmp_path: Path) -> Path:
    """A folder showing this environment's packages, less seqlib and keras.

    Entries are symbolic links; ``.pth`` files (an editable seqlib is one)
    are left out too. Without keras, and with no index to fetch it from, an
    install that asks for ``seqlib[keras]`` fails.
    """
    shown = tmp_path / "preinstalled"
    shown.mkdir()
    paths = sysconfig.get_paths()
    for site in {Path(paths["purelib"]), Path(paths["platlib"])}:
        for entry in site.iterdir():
            name = entry.name.lower()
            if (
                name.startswith(("seqlib", "keras", "__editable__"))
                or name.endswith(".pth")
                or name == "__pycache__"
                or (shown / entry.name).exists()
            ):
                continue
            (shown / entry.name).symlink_to(entry)
    return shown


def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    )
    return done.stdout


def _commit_working_tree(tmp_path: Path) -> Path:
    """A git repository whose one commit is the working tree as it is now
    (uncommitted changes included, ignored files left out)."""
    repo = tmp_path / "repo"
    listed = _git("ls-files", "-z", "-co", "--exclude-standard", cwd=ROOT)
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # tracked files deleted since are skipped
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    _git("init", "-q", cwd=repo)
    _git("add", "-A", cwd=repo)
    _git(
        "-c",
        "user.name=test",
        "-c",
        "user.email=test@example.invalid",
        "-c",
        "commit.gpgsign=false",
        "commit",
        "-q",
        "-m",
        "working tree",
        cwd=repo,
    )
    return repo


def test_colab_cell_installs_seqlib_and_keeps_the_installed_torch(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed; pip installs seqlib with git")
    repo = _commit_working_tree(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)],
        check=True,
    )
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [
                str(python),
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # Colab's preinstalled packages; pip (none in the venv) comes from there
    (site / "preinstalled.pth").write_text(f"{_preinstalled(tmp_path)}\n")

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(
        # "file://localhost/...": pip 23's packaging rejects an empty host
        SEQLIB_REPO=f"file://localhost{repo}",
        PIP_NO_INDEX="1",  # offline: every dependency is preinstalled
        PIP_NO_BUILD_ISOLATION="0",  # "0" turns isolation off (pip's quirk)
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_CONFIG_FILE=os.devnull,
        PIP_CACHE_DIR=str(tmp_path / "pip-cache"),
        PYTHONNOUSERSITE="1",
        PYTHONHASHSEED="0",
        KERAS_BACKEND="torch",
        MPLBACKEND="Agg",
        SEQLIB_DEVICE="cpu",
        SEQLIB_PROFILE="smoke",
    )
    report = textwrap.dedent(
        f"""
        import importlib.metadata, importlib.util, json, seqlib, torch
        own = importlib.metadata.distributions(path=[{str(site)!r}])
        seqlib_dist = importlib.metadata.distribution("seqlib")
        print("REPORT", json.dumps({{
            "seqlib": seqlib.__file__,
            "torch": torch.__version__,
            "torch_file": torch.__file__,
            "installed": sorted(d.metadata["Name"] for d in own),
            "url": json.loads(seqlib_dist.read_text("direct_url.json"))["url"],
            "keras": importlib.util.find_spec("keras") is not None,
        }}))
        """
    )
    done = subprocess.run(
        [str(python), "-c", first_cell("ch02") + report],
        cwd=tmp_path,  # not /work/main, whose seqlib would be imported
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "device:  CPU" in done.stdout.splitlines()
    line = next(x for x in done.stdout.splitlines() if x.startswith("REPORT"))
    got = json.loads(line.removeprefix("REPORT "))
    # seqlib is the fresh environment's copy, installed from SEQLIB_REPO
    assert Path(got["seqlib"]).is_relative_to(site)
    assert got["url"] == f"file://localhost{repo}"
    # nothing else was installed: torch kept, and no keras for chapter 2
    assert got["installed"] == ["seqlib"]
    assert got["torch"] == importlib.metadata.version("torch")
    assert not Path(got["torch_file"]).is_relative_to(site)
    assert got["keras"] is False
