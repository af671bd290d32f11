"""scripts/full_run.py: one command runs a chapter in the full profile, keeps
the executed notebook beside it and records a row measured by the run."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import full_run  # noqa: E402

PAGE = """# Results

## Full profile (GPU)

{marker}
No full-profile run has been recorded yet for this edition.

Until then, these are reference points.
"""

NOTEBOOK = """# %%
from seqlib import claims, profiles

print("profile", profiles.current_profile(), "dry", profiles.dry_run())
profiles.report_target("ch11", 0.5)
claims.check("ch11-tiny-flag", "s", 3.0, "> 2", flagship=True)
claims.check("ch11-tiny-other", "s", 1.0, "> 2")
"""


def test_rows_start_the_table_then_stack(tmp_path):
    page = tmp_path / "results.md"
    page.write_text(PAGE.format(marker=full_run.MARKER))
    full_run.append_row(page, "| a | 1 |")
    full_run.append_row(page, "| b | 2 |")
    text = page.read_text()
    assert "No full-profile run has been recorded" not in text
    table = text.split(full_run.MARKER)[1].strip().split("\n\n")[0]
    assert table.splitlines() == [
        *full_run.HEADER.splitlines(),
        "| a | 1 |",
        "| b | 2 |",
    ]
    assert text.endswith("Until then, these are reference points.\n")


def test_a_page_without_the_marker_is_a_clear_error(tmp_path):
    page = tmp_path / "results.md"
    page.write_text("# Results\n")
    try:
        full_run.append_row(page, "| a |")
    except SystemExit as exc:
        assert "full_run.py" in str(exc)
    else:
        raise AssertionError("expected SystemExit")


def test_the_results_page_has_the_marker():
    assert full_run.MARKER in full_run.RESULTS.read_text()


def test_a_full_run_writes_the_notebook_beside_and_records_a_row(tmp_path):
    py = tmp_path / "11_tiny.py"
    py.write_text(NOTEBOOK)
    page = tmp_path / "results.md"
    page.write_text(PAGE.format(marker=full_run.MARKER))
    error, line = full_run.full_run(py, seed=3, results=page)
    assert error is None, error
    executed = (tmp_path / "11_tiny.full.ipynb").read_text()
    assert "profile full dry False" in executed
    assert line in page.read_text()
    cells = [c.strip() for c in line.strip("|").split(" | ")]
    assert cells[0] == "11_tiny" and cells[5] == "3"
    assert cells[3] == full_run.torch.__version__
    assert "50.0% (target 48.9%, met)" in cells[6]
    assert "ch11-tiny-flag: 3 (> 2, held)" in cells[7]
    assert "ch11-tiny-other" not in cells[7]  # only flagship claims
    # a dry run writes its own copy and the caller decides not to record
    error, line = full_run.full_run(py, dry=True, results=None)
    assert error is None
    assert "dry True" in (tmp_path / "11_tiny.dry-run.ipynb").read_text()
    assert "not evaluated" in line
    assert page.read_text().count("11_tiny") == 1


def test_a_failed_run_records_nothing(tmp_path):
    py = tmp_path / "11_broken.py"
    py.write_text("# %%\nraise RuntimeError('no GPU today')\n")
    page = tmp_path / "results.md"
    page.write_text(PAGE.format(marker=full_run.MARKER))
    error, _ = full_run.full_run(py, results=page)
    assert error is not None and "no GPU today" in error
    assert "11_broken" not in page.read_text()
