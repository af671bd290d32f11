"""Named claims: every measured result the prose states, asserted and recorded.

A chapter that states a measured result in its prose backs it with
:func:`check`: an id, the statement, the measured value and the condition the
prose relies on. The call asserts the condition, so a run in which the claim
fails stops with a message naming the claim, the value and the seed.

With ``SEQLIB_CLAIMS_FILE`` set, every checked claim is also appended to that
file as one JSON line; ``scripts/claims.py`` runs each chapter on several seeds
(``SEQLIB_SEED``) this way and writes the book's Claims page from the records.
``SEQLIB_CLAIMS_SOFT=1`` records a failed claim instead of raising, so that one
run reports every claim of a chapter.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass

from seqlib import profiles
from seqlib.train import base_seed

FILE_ENV = "SEQLIB_CLAIMS_FILE"
SOFT_ENV = "SEQLIB_CLAIMS_SOFT"
ID_PATTERN = re.compile(r"^ch\d{2}-[a-z0-9]+(-[a-z0-9]+)*$")
_NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
_CONDITION = re.compile(
    rf"^\s*(?:(<=|>=|<|>)\s*{_NUMBER}|in\s*\[\s*{_NUMBER}\s*,\s*{_NUMBER}\s*\])\s*$"
)


@dataclass(frozen=True)
class Claim:
    """One checked claim of one run: what was stated, measured and decided."""

    id: str
    chapter: str
    statement: str
    value: float
    condition: str
    held: bool | None  # None: not evaluated (a dry run)
    flagship: bool
    seed: int
    profile: str


def evaluate(value: float, condition: str) -> bool:
    """Decide ``condition`` (``"> 0.2"``, ``"<= 5"``, ``"in [1.0, 1.05]"``) for
    ``value``.

    Raises:
        ValueError: the condition is not one of the three forms above.
    """
    match = _CONDITION.match(condition)
    if match is None:
        raise ValueError(
            "condition must look like '> 0.2', '<= 5' or 'in [1.0, 1.05]', "
            f"got {condition!r}"
        )
    op, bound, low, high = match.groups()
    if math.isnan(value):
        return False
    if op is None:
        return float(low) <= value <= float(high)
    bound = float(bound)
    return {
        "<": value < bound,
        "<=": value <= bound,
        ">": value > bound,
        ">=": value >= bound,
    }[op]


def check(
    claim_id: str,
    statement: str,
    value: float,
    condition: str,
    *,
    flagship: bool = False,
    structural: bool = False,
) -> Claim:
    """Assert one named claim and record it.

    Args:
        claim_id: ``chNN-short-name``; unique in the book.
        statement: the claim as the prose states it, one sentence.
        value: the measured number the claim is about (a difference for a
            comparison, so that its spread over seeds means something).
        condition: what must hold for ``value``, e.g. ``"> 0"`` or
            ``"in [1, 1.05]"``.
        flagship: True for the chapter's flagship result.
        structural: True for a claim that holds without training (a shape, a
            parameter ratio, the consistency of a configuration): it is
            asserted in a dry run too. Other claims are recorded with
            ``held=None``, "not evaluated in a dry run"
            (:func:`seqlib.profiles.dry_run`), since a few training steps
            cannot show them.

    Returns:
        The :class:`Claim` that was recorded.

    Raises:
        AssertionError: the condition does not hold (unless
            ``SEQLIB_CLAIMS_SOFT=1``).
    """
    if not ID_PATTERN.match(claim_id):
        raise ValueError(
            f"claim id must look like 'ch06-vit-data-gain', got {claim_id!r}"
        )
    if claim_id[:4] not in profiles.SIZES:
        raise ValueError(
            f"claim {claim_id}: chapter {claim_id[:4]!r} has no sizes in "
            f"seqlib/profiles.py; known chapters: {sorted(profiles.SIZES)}"
        )
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"claim {claim_id}: value must be a number, got "
            f"{type(value).__name__}"
        ) from None
    claim = Claim(
        id=claim_id,
        chapter=claim_id[:4],
        statement=statement,
        value=value,
        condition=condition,
        held=evaluate(value, condition)
        if structural or not profiles.dry_run()
        else None,
        flagship=flagship,
        seed=base_seed(),
        profile=profiles.current_profile(),
    )
    path = os.environ.get(FILE_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(claim)) + "\n")
    if claim.held is None:
        print(f"claim {claim_id}: not evaluated in a dry run")
    elif not claim.held and os.environ.get(SOFT_ENV, "0") in ("", "0"):
        raise AssertionError(
            f"claim {claim_id} failed on seed {claim.seed}: {statement} "
            f"(measured {value:.4g}, expected {condition})"
        )
    return claim


def load(path: str | os.PathLike) -> list[Claim]:
    """Read the claims recorded in ``path`` (one JSON object per line)."""
    with open(path, encoding="utf-8") as f:
        return [Claim(**json.loads(line)) for line in f if line.strip()]
