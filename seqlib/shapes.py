"""Input validation shared by every seqlib module.

A wrong shape or dtype is a ``ValueError`` that names what was expected and
what arrived; nothing is silently broadcast.
"""

from __future__ import annotations

from typing import Sequence, Union

import torch

Dim = Union[int, str, None]


def expect_shape(
    x: torch.Tensor,
    spec: Sequence[Dim],
    name: str = "input",
    sizes: dict[str, int] | None = None,
) -> dict[str, int]:
    """Check ``x.shape`` against ``spec`` and return the sizes bound to
    letters.

    Args:
        x: the tensor to check.
        spec: one entry per axis: an ``int`` (that exact size), a letter such
            as ``"B"`` (any size, but the same letter must match everywhere,
            including in ``sizes``), or ``None`` (anything).
        name: how the error message refers to ``x``.
        sizes: letters already bound by earlier checks.

    Returns:
        ``sizes`` extended with the letters bound here.

    Raises:
        ValueError: naming the expected and the received shape.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(
            f"{name}: expected a torch.Tensor, got {type(x).__name__}"
        )
    bound = dict(sizes or {})
    letters = "(" + ", ".join("?" if d is None else str(d) for d in spec) + ")"
    if x.dim() != len(spec):
        raise ValueError(
            f"{name}: expected shape {letters} ({len(spec)} dims), "
            f"got {tuple(x.shape)} ({x.dim()} dims)"
        )
    for axis, (want, got) in enumerate(zip(spec, x.shape)):
        if want is None:
            continue
        if isinstance(want, str):
            want = bound.setdefault(want, got)
        if want != got:
            filled = tuple(
                bound.get(d, d) if isinstance(d, str) else d for d in spec
            )
            raise ValueError(
                f"{name}: expected shape {letters}={filled}, got "
                f"{tuple(x.shape)} (axis {axis} should be {want}, is {got})"
            )
    return bound


def expect_dtype(
    x: torch.Tensor,
    allowed: Sequence[torch.dtype] | torch.dtype,
    name: str = "input",
) -> None:
    """Raise ``ValueError`` unless ``x.dtype`` is one of ``allowed``."""
    allowed = (
        (allowed,) if isinstance(allowed, torch.dtype) else tuple(allowed)
    )
    if x.dtype not in allowed:
        raise ValueError(
            f"{name}: expected dtype {' or '.join(map(str, allowed))}, got "
            f"{x.dtype}"
        )
