"""The dry run: the switch, what it caps, how claims behave, and the script
that runs a chapter with it (on a small notebook written here)."""

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from seqlib import claims, profiles, train

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import dry_run as dry_run_script  # noqa: E402


@pytest.mark.parametrize(
    "value, expected", [(None, False), ("", False), ("0", False), ("1", True)]
)
def test_dry_run_switch(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("SEQLIB_DRY_RUN", raising=False)
    else:
        monkeypatch.setenv("SEQLIB_DRY_RUN", value)
    assert profiles.dry_run() is expected
    assert profiles.dry_run_cap(10_000) == (256 if expected else 10_000)
    assert profiles.dry_run_cap(100) == 100


@pytest.mark.parametrize("bad", ["yes", "2", "true"])
def test_bad_dry_run_switch_is_a_clear_error(monkeypatch, bad):
    monkeypatch.setenv("SEQLIB_DRY_RUN", bad)
    with pytest.raises(ValueError, match="SEQLIB_DRY_RUN must be 0 or 1"):
        profiles.dry_run()


def _count_steps(monkeypatch, dry, **fit_kwargs):
    monkeypatch.setenv("SEQLIB_DRY_RUN", "1" if dry else "0")
    x, y = torch.randn(64, 3), torch.randn(64, 1)
    steps = []

    def step(model, batch):
        steps.append(len(batch[0]))
        return torch.mean((model(batch[0]) - batch[1]) ** 2)

    hist = train.fit(
        nn.Linear(3, 1),
        train.minibatches(x, y, batch_size=8),
        step,
        device=torch.device("cpu"),
        **fit_kwargs,
    )
    return len(hist.records), len(steps)


def test_fit_takes_a_handful_of_steps_in_a_dry_run(monkeypatch):
    assert _count_steps(monkeypatch, False, epochs=5) == (5, 40)
    assert _count_steps(monkeypatch, True, epochs=5) == (
        train.DRY_RUN_EPOCHS,
        train.DRY_RUN_EPOCHS * train.DRY_RUN_STEPS,
    )
    # fewer steps than the cap stay as asked
    assert _count_steps(monkeypatch, True, epochs=1, steps_per_epoch=1) == (
        1,
        1,
    )


def test_training_claims_are_not_evaluated_in_a_dry_run(monkeypatch, capsys):
    monkeypatch.setenv("SEQLIB_DRY_RUN", "1")
    monkeypatch.delenv("SEQLIB_CLAIMS_SOFT", raising=False)
    claim = claims.check("ch06-dry-a", "learns", 0.1, "> 0.5")
    assert claim.held is None
    assert "not evaluated in a dry run" in capsys.readouterr().out
    # structural claims are still asserted
    assert claims.check("ch06-dry-b", "s", 2.0, "> 1", structural=True).held
    with pytest.raises(AssertionError, match="ch06-dry-c failed"):
        claims.check("ch06-dry-c", "s", 0.5, "> 1", structural=True)
    monkeypatch.setenv("SEQLIB_DRY_RUN", "0")
    with pytest.raises(AssertionError, match="ch06-dry-d failed"):
        claims.check("ch06-dry-d", "learns", 0.1, "> 0.5")


class _FakeCuda:
    type = "cuda"


@pytest.mark.parametrize(
    "env, device, bf16_ok, expected",
    [
        (None, "cpu", True, "fp32"),
        (None, "cuda", True, "bf16"),
        (None, "cuda", False, "fp32"),
        ("fp32", "cuda", True, "fp32"),
        ("bf16", "cpu", True, "bf16"),
        ("AUTO", "cuda", True, "bf16"),
    ],
)
def test_precision_is_bf16_on_a_gpu_unless_switched_off(
    monkeypatch, env, device, bf16_ok, expected
):
    if env is None:
        monkeypatch.delenv("SEQLIB_PRECISION", raising=False)
    else:
        monkeypatch.setenv("SEQLIB_PRECISION", env)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16_ok)
    dev = torch.device("cpu") if device == "cpu" else _FakeCuda()
    assert train.resolve_precision(None, dev) == expected
    # an explicit argument wins over the environment
    assert train.resolve_precision("fp32", dev) == "fp32"


def test_bad_precision_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("SEQLIB_PRECISION", "fp16")
    with pytest.raises(ValueError, match="SEQLIB_PRECISION"):
        train.resolve_precision(None, torch.device("cpu"))


@pytest.mark.parametrize(
    "arg, env, device, dry, expected",
    [
        (None, None, "cuda", False, None),  # opt-in only
        (None, "1", "cpu", False, "inductor"),
        (None, "eager", "cpu", False, "eager"),
        ("auto", None, "cuda", False, "inductor"),
        ("auto", None, "cuda", True, None),  # a dry run takes a few steps
        ("auto", None, "cpu", False, None),
        (False, "1", "cuda", False, None),  # the argument wins
        (True, None, "cpu", False, "inductor"),
    ],
)
def test_compile_where_it_pays_off(
    monkeypatch, arg, env, device, dry, expected
):
    if env is None:
        monkeypatch.delenv("SEQLIB_COMPILE", raising=False)
    else:
        monkeypatch.setenv("SEQLIB_COMPILE", env)
    monkeypatch.setenv("SEQLIB_DRY_RUN", "1" if dry else "0")
    dev = torch.device("cpu") if device == "cpu" else _FakeCuda()
    assert train.resolve_compile(arg, dev) == expected


NOTEBOOK = """# %%
from seqlib import claims, profiles, train
import torch
from torch import nn

x, y = torch.randn(64, 3), torch.randn(64, 1)
hist = train.fit(
    nn.Linear(3, 1),
    train.minibatches(x, y, batch_size=4),
    lambda m, b: torch.mean((m(b[0]) - b[1]) ** 2),
    epochs=50,
    device=torch.device("cpu"),
)
print("epochs", len(hist.records), "dry", profiles.dry_run())
claims.check("ch06-tiny-learns", "s", hist.last("loss"), "< -1")
claims.check("ch06-tiny-shape", "s", x.shape[1], ">= 3", structural=True)
"""


def test_dry_run_script_runs_a_notebook(tmp_path):
    py = tmp_path / "99_tiny.py"
    py.write_text(NOTEBOOK, encoding="utf-8")
    result = dry_run_script.dry_run(py, "smoke", out=tmp_path / "out")
    assert result["error"] is None, result
    assert (result["asserted"], result["skipped"]) == (1, 1)
    executed = (tmp_path / "out" / "99_tiny.dry-run.ipynb").read_text()
    assert "epochs 2 dry True" in executed
    # a structural claim that fails fails the dry run
    py.write_text(NOTEBOOK.replace('">= 3"', '">= 4"'), encoding="utf-8")
    result = dry_run_script.dry_run(py, "smoke")
    assert result["error"] is not None and "ch06-tiny-shape" in result["error"]
