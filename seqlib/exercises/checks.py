"""Self-check helpers used by the exercise cells of every chapter.

Each helper raises ``AssertionError`` with a helpful message and returns
``True`` on success, so a check cell can end with one of them and show
``True``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch


def _as_array(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    try:
        return np.asarray(x, dtype=float)
    except (TypeError, ValueError) as err:
        raise AssertionError(
            f"{name}: expected numbers (tensor, array or float), "
            f"got {type(x).__name__}"
        ) from err


def check_shape(
    x: Any,
    expected: Sequence[int],
    name: str = "output",
    letters: str | None = None,
) -> bool:
    """Assert ``x.shape == expected``.

    Args:
        x: a tensor or array.
        expected: the expected shape.
        name: how the message refers to ``x``.
        letters: optional axis letters for the message, e.g. ``"B, N, D"``.
    """
    if x is None or not hasattr(x, "shape"):
        raise AssertionError(
            f"{name}: expected a tensor of shape {tuple(expected)}, got "
            f"{type(x).__name__}"
        )
    got, want = tuple(x.shape), tuple(int(d) for d in expected)
    if got != want:
        label = f"({letters})=" if letters else ""
        raise AssertionError(
            f"{name}: expected shape {label}{want}, got {got}"
        )
    return True


def check_close(
    actual: Any,
    expected: Any,
    *,
    rtol: float = 1e-4,
    atol: float = 1e-6,
    name: str = "output",
) -> bool:
    """Assert ``actual`` matches ``expected`` within
    ``atol + rtol * |expected|``."""
    a, e = _as_array(actual, name), _as_array(expected, "expected")
    if a.shape != e.shape:
        raise AssertionError(
            f"{name}: expected shape {e.shape}, got {a.shape}"
        )
    if not np.all(np.isfinite(a)):
        raise AssertionError(f"{name}: contains NaN or inf")
    err = np.abs(a - e)
    tol = atol + rtol * np.abs(e)
    if np.any(err > tol):
        idx = (
            np.unravel_index(np.argmax(err - tol), err.shape)
            if err.ndim
            else ()
        )
        where = f" at index {tuple(int(i) for i in idx)}" if idx else ""
        raise AssertionError(
            f"{name}: values differ{where}: got {float(a[idx]):.6g}, expected "
            f"{float(e[idx]):.6g} (|diff|={float(err[idx]):.3g} > tolerance "
            f"{float(tol[idx]):.3g}; {int(np.sum(err > tol))} of {err.size} "
            "entries out of tolerance)"
        )
    return True


def check_true(condition: bool, message: str) -> bool:
    """Assert ``condition``; ``message`` says what should have held."""
    if not bool(condition):
        raise AssertionError(message)
    return True
