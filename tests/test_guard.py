"""The shortcut guard and the sandbox that undoes tampering, in this process."""

from __future__ import annotations

import sys

import pytest
import torch

from seqlib import swin
from seqlib.exercises import sandbox
from seqlib.exercises.guard import Guard, ShortcutError

RULES = {
    "ex07-partition": ["seqlib", "einops"],
    "ex06-unfold": ["torch.nn.functional.conv2d", "torch.nn.Conv2d"],
    "ex01-column-means": ["torch.mean", "torch.Tensor.mean"],
}
RIGHT = (
    "def partition(x, M):\n    B, H, W, C = x.shape\n    x = x.view(B, H // M, M, W // M, M, C)\n"
    "    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, M * M, C)\n"
)
SHORTCUTS = {
    "direct": "def partition(x, M):\n    return swin.window_partition(x, M)\n",
    "getattr": "def partition(x, M):\n    return getattr(swin, 'window_' + 'partition')(x, M)\n",
    "partial": "import functools\npartition = functools.partial(swin.window_partition)\n",
    "caught": (
        "def partition(x, M):\n    try:\n        return swin.window_partition(x, M)\n"
        "    except Exception:\n        return swin.window_partition(x, M)\n"
    ),
    "helper in another cell": "def partition(x, M):\n    return helper(x, M)\n",
    "reload": "import importlib\ndef partition(x, M):\n    return importlib.reload(swin).window_partition(x, M)\n",
    "profile switched off": "import sys\ndef partition(x, M):\n    sys.setprofile(None)\n    return swin.window_partition(x, M)\n",
    "library class": "def partition(x, M):\n    return swin.WindowAttention(x.shape[-1], M, 1).partition(x) if False else swin.window_partition(x, M)\n",
}


@pytest.fixture
def guard():
    g = Guard(RULES).install()
    yield g
    g.uninstall()
    assert sys.getprofile() is None


def _define(source: str, name: str = "partition", **extra) -> dict:
    ns = {"__name__": "__main__", "swin": swin, "torch": torch, **extra}
    exec(compile(source, "<student cell>", "exec"), ns)
    return ns


def test_a_solution_of_its_own_passes_and_the_reference_still_works(guard):
    x = torch.randn(2, 8, 12, 3)
    mine = guard.wrap("ex07-partition", _define(RIGHT)["partition"])(x, 4)
    assert torch.equal(
        mine, swin.window_partition(x, 4)
    )  # the check calls the reference freely


@pytest.mark.parametrize("kind", sorted(SHORTCUTS))
def test_every_route_to_a_forbidden_function_is_caught(guard, kind):
    helper = _define(
        "def helper(x, M):\n    return swin.window_partition(x, M)\n", "helper"
    )["helper"]
    fn = guard.wrap(
        "ex07-partition", _define(SHORTCUTS[kind], helper=helper)["partition"]
    )
    with pytest.raises(
        ShortcutError,
        match=r"is a shortcut: exercise ex07-partition does not allow seqlib, einops",
    ):
        fn(torch.randn(1, 8, 8, 2), 4)
    assert sys.getprofile() is None


@pytest.mark.parametrize(
    "source",
    [
        "import seqlib.swin as s\n",
        "from seqlib.swin import window_partition\n",
        "from einops import rearrange\n",
    ],
)
def test_importing_a_forbidden_module_fails_in_the_exercise_cells(
    guard, source
):
    guard.importing("ex07-partition")
    with pytest.raises(ShortcutError, match="importing .* is a shortcut"):
        _define(source)
    guard.importing(None)
    _define(source)  # elsewhere in the notebook the import is fine


def test_builtins_and_methods_are_caught(guard):
    conv = _define(
        "import torch.nn.functional as F\ndef emb(x, w):\n    return F.conv2d(x, w, stride=2)\n"
    )["emb"]
    with pytest.raises(
        ShortcutError,
        match="calling torch.nn.functional.conv2d at line 3 of emb",
    ):
        guard.wrap("ex06-unfold", conv)(
            torch.randn(1, 3, 4, 4), torch.randn(2, 3, 2, 2)
        )
    method = _define("def f(x):\n    return getattr(x, 'me' + 'an')(0)\n")["f"]
    with pytest.raises(ShortcutError, match="torch.Tensor.mean"):
        guard.wrap("ex01-column-means", method)(torch.ones(3, 2))
    module = _define("def f(x):\n    return torch.nn.Conv2d(3, 2, 2)(x)\n")[
        "f"
    ]
    with pytest.raises(ShortcutError, match="Conv2d.__init__"):
        guard.wrap("ex06-unfold", module)(torch.randn(1, 3, 4, 4))


def test_rules_are_per_exercise(guard):
    fn = _define(SHORTCUTS["direct"])["partition"]
    assert guard.wrap("ex06-unfold", fn)(torch.randn(1, 8, 8, 2), 4).shape == (
        4,
        16,
        2,
    )


def test_tampered_library_functions_and_names_are_put_back(tmp_path):
    notes = tmp_path / "notes.jsonl"
    sandbox.install(RULES, notes=str(notes))
    try:
        original = swin.window_partition
        ns = _define(
            "import seqlib.swin as s\ns.window_partition = lambda x, M: x\nswin = None\n"
            "def partition(x, M):\n    return x\n"
        )
        assert swin.window_partition is not original
        sandbox.before_check(
            ns, "ex07-partition", ["partition"], "from seqlib import swin"
        )
        assert (
            swin.window_partition.__code__.co_filename
            == original.__code__.co_filename
        )
        assert ns["swin"] is sys.modules["seqlib.swin"]
        assert ns["partition"].__seqlib_exercise__ == "ex07-partition"
        text = notes.read_text()
        assert (
            "replaced seqlib.swin.window_partition" in text
            and "rebound swin" in text
        )
    finally:
        swin.window_partition = original
        sandbox._GUARD.uninstall()
        sandbox._GUARD = None
