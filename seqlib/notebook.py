"""The first code cell of every chapter: seed, threads, device, and a report.

``start("ch01")`` makes a notebook behave the same on a laptop, on Colab and in
CI: it seeds every generator from ``SEQLIB_SEED``, caps CPU threads (``SEQLIB_THREADS``; CI runs one
notebook per core), picks the device, sets a readable figure style and prints
the profile with the run time to expect.
"""

from __future__ import annotations

import os

import matplotlib
import torch

from seqlib import profiles
from seqlib.train import base_seed, pick_device, seed_everything, seed_for


def start(chapter: str) -> torch.device:
    """Prepare a chapter notebook and print what will run.

    Args:
        chapter: the chapter key used in :mod:`seqlib.profiles`, e.g. ``"ch01"``.

    Returns:
        The device the chapter trains on (cuda, mps or cpu).
    """
    threads = os.environ.get("SEQLIB_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    seed_everything(seed_for(0))
    device = pick_device()
    profile = profiles.current_profile()
    minutes = getattr(profiles.sizes(chapter), "expected_minutes", None)
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100, "axes.grid": False,
                                "image.cmap": "gray", "figure.autolayout": True})
    where = "GPU" if device.type == "cuda" else device.type.upper()
    print(f"profile: {profile} (set SEQLIB_PROFILE=full for the real-data run)")
    print(f"device:  {where}")
    print(f"seed:    SEQLIB_SEED={base_seed()} (every random choice of the chapter derives from it)")
    if minutes is not None:
        print(f"expected run time: about {minutes:g} min on {'a GPU' if profile == 'full' else '2 CPU cores'}")
    return device
