"""Run profiles: one place that holds every chapter's sizes.

``SEQLIB_PROFILE`` selects ``smoke`` (CPU, minutes, what CI runs and the book
shows) or ``full`` (a GPU and the real datasets). Each chapter asks for its
sizes with :func:`sizes` and never hard-codes them in the notebook, so a reader
switches profile by setting one environment variable.
"""

from __future__ import annotations

import os
from types import MappingProxyType
from typing import Any, Mapping

PROFILES = ("smoke", "full")
DEFAULT_PROFILE = "smoke"
ENV_VAR = "SEQLIB_PROFILE"

# chapter key -> profile -> sizes. Keys are "chNN"; values are plain numbers/strings.
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "ch01": {
        "smoke": dict(n_train=10000, n_test=2000, k=8, linear_epochs=30, deep_epochs=10,
                      batch_size=128, lr=2e-3, linear_lr=1e-2, noise_std=0.5, overcomplete_width=1024,
                      overcomplete_epochs=5, overcomplete_lr=1e-3, expected_minutes=1.5),
        "full": dict(n_train=60000, n_test=10000, k=8, linear_epochs=40, deep_epochs=40,
                     batch_size=256, lr=1e-3, linear_lr=1e-2, noise_std=0.5, overcomplete_width=2048,
                     overcomplete_epochs=20, overcomplete_lr=1e-3, expected_minutes=10),
    },
}


def current_profile() -> str:
    """Return the active profile name from ``SEQLIB_PROFILE`` (default ``smoke``).

    Raises:
        ValueError: if the variable holds anything but ``smoke`` or ``full``.
    """
    value = os.environ.get(ENV_VAR, DEFAULT_PROFILE).strip().lower() or DEFAULT_PROFILE
    if value not in PROFILES:
        raise ValueError(
            f"{ENV_VAR} must be one of {PROFILES}, got {os.environ.get(ENV_VAR)!r}. "
            f"Unset it for the default ({DEFAULT_PROFILE!r})."
        )
    return value


def sizes(chapter: str, profile: str | None = None) -> Mapping[str, Any]:
    """Return the read-only sizes of ``chapter`` (e.g. ``"ch01"``) for a profile.

    Args:
        chapter: chapter key, ``"chNN"``.
        profile: ``"smoke"`` or ``"full"``; defaults to :func:`current_profile`.

    Raises:
        ValueError: for an unknown chapter or profile.
    """
    profile = current_profile() if profile is None else profile
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    if chapter not in SIZES:
        raise ValueError(f"unknown chapter {chapter!r}; expected one of {sorted(SIZES)}")
    return MappingProxyType(dict(SIZES[chapter][profile]))
