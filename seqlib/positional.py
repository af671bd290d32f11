"""Positional encodings: telling an order-blind attention layer where each
token is.

Self-attention treats its inputs as a set: permuting the tokens permutes the
outputs and changes nothing else. A positional encoding ``p_t = pos(t)`` is
added to token ``t`` (Vaswani et al. 2017 add it; concatenating works too, at
the price of width) so that order can matter. Two choices of ``pos``: a learned
lookup table of ``T×d`` parameters (BERT, ViT), or the fixed sinusoids of
Vaswani et al. (section 3.5), ``p_t[2i] = sin(ω_i t)``,
``p_t[2i+1] = cos(ω_i t)`` with ``ω_i = base^(-2i/d)``, which meet four
desiderata: a unique code per position, distances between positions ``t`` and
``t+k`` independent of ``t``
and of the sentence length, bounded values that extend to any length, and
determinism. The 2D variant (DETR, Carion et al. 2020) encodes the row in one
half of the channels and the column in the other. Shape letters: B batch, N or
T positions, d width, H/W grid height and width.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from seqlib.shapes import expect_shape


def frequencies(d: int, *, base: float = 10000.0) -> torch.Tensor:
    """The ``d/2`` angular frequencies ``ω_i = base^(-2i/d)``, from 1 down to
    about ``1/base``."""
    if d < 2 or d % 2:
        raise ValueError(
            f"a sinusoidal encoding needs an even width d >= 2, got d={d}"
        )
    if base <= 1:
        raise ValueError(f"base must be > 1, got {base}")
    return torch.exp(
        -math.log(base) * torch.arange(0, d, 2, dtype=torch.float64) / d
    )  # (d/2,)


def sinusoidal_encoding(
    positions: int | torch.Tensor,
    d: int,
    *,
    base: float = 10000.0,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Sinusoidal codes (Vaswani et al. 2017, Eq. in section 3.5), sin and cos
    interleaved.

    Args:
        positions: ``T`` (for positions ``0..T-1``) or a 1-D tensor of
            (possibly fractional) positions.
        d: width, even.
        base: the longest wavelength is ``2π·base``.
        dtype: of the result (computed in float64 first, so long sequences stay
            exact).

    Returns:
        ``(T, d)`` with ``out[t, 2i] = sin(ω_i t)`` and
        ``out[t, 2i+1] = cos(ω_i t)``.
    """
    if isinstance(positions, int):
        if positions < 1:
            raise ValueError(f"need at least one position, got T={positions}")
        positions = torch.arange(positions)
    expect_shape(positions, ("T",), name="positions")
    angles = (
        positions.to(torch.float64)[:, None]
        * frequencies(d, base=base)[None, :]
    )  # (T, d/2)
    pe = torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)  # (T, d)
    return pe.to(dtype)


def sinusoidal_encoding_2d(
    H: int,
    W: int,
    d: int,
    *,
    base: float = 10000.0,
    normalize: bool = False,
    scale: float = 2 * math.pi,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """2D sinusoidal codes for an ``H×W`` grid: rows in the first ``d/2``
    channels, columns in the rest.

    Args:
        H, W: grid size (patches of a ViT, cells of DETR's feature map).
        d: width, a multiple of 4 (sin/cos pairs for each axis).
        base: as in :func:`sinusoidal_encoding`.
        normalize: map positions to ``(0, scale]`` as DETR does
            (``(i + 1) / H · scale``), so the code describes relative location
            in the image, whatever its size.
        scale: the range of normalised positions.
        dtype: of the result.

    Returns:
        ``(H, W, d)``; ``out[i, j, :d/2]`` encodes row ``i`` and
        ``out[i, j, d/2:]`` column ``j``.
    """
    if H < 1 or W < 1:
        raise ValueError(f"grid must be at least 1×1, got H={H}, W={W}")
    if d % 4:
        raise ValueError(
            f"a 2D sinusoidal encoding needs d divisible by 4, got d={d}"
        )
    rows, cols = (
        torch.arange(H, dtype=torch.float64),
        torch.arange(W, dtype=torch.float64),
    )
    if normalize:
        rows, cols = (rows + 1) / H * scale, (cols + 1) / W * scale
    pe_rows = sinusoidal_encoding(
        rows, d // 2, base=base, dtype=dtype
    )  # (H, d/2)
    pe_cols = sinusoidal_encoding(
        cols, d // 2, base=base, dtype=dtype
    )  # (W, d/2)
    return torch.cat(
        [
            pe_rows[:, None, :].expand(H, W, d // 2),
            pe_cols[None, :, :].expand(H, W, d // 2),
        ],
        dim=-1,
    )  # (H, W, d)


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the fixed sinusoidal code to ``(B, N, d)`` tokens; no parameters,
    any length."""

    def __init__(self, d: int, *, base: float = 10000.0):
        super().__init__()
        frequencies(d, base=base)  # validates d and base
        self.d, self.base = d, base

    def encoding(self, N: int, *, offset: int = 0) -> torch.Tensor:
        """The ``(N, d)`` codes of positions ``offset .. offset+N-1``."""
        return sinusoidal_encoding(
            torch.arange(offset, offset + N), self.d, base=self.base
        )

    def forward(self, x: torch.Tensor, *, offset: int = 0) -> torch.Tensor:
        """``x`` (B, N, d) -> ``x + p`` (B, N, d); ``offset`` shifts the first
        position."""
        dims = expect_shape(x, ("B", "N", self.d), name="x")
        pe = self.encoding(dims["N"], offset=offset).to(
            device=x.device, dtype=x.dtype
        )  # (N, d)
        return x + pe[None]  # (B, N, d)


class LearnedPositionalEncoding(nn.Module):
    """Adds a learned code from a ``max_len×d`` table; positions past
    ``max_len`` do not exist.

    The table starts small and random (std 0.02, as BERT and ViT) and is
    trained with the model, so it can fit whatever the task needs, but it knows
    nothing about positions it never saw in training.
    """

    def __init__(self, max_len: int, d: int):
        super().__init__()
        if max_len < 1 or d < 1:
            raise ValueError(
                f"need max_len >= 1 and d >= 1, got max_len={max_len}, d={d}"
            )
        self.table = nn.Parameter(torch.randn(max_len, d) * 0.02)  # (T, d)

    def encoding(self, N: int, *, offset: int = 0) -> torch.Tensor:
        """The ``(N, d)`` rows for positions ``offset .. offset+N-1``."""
        max_len = self.table.shape[0]
        if offset < 0 or offset + N > max_len:
            raise ValueError(
                f"learned positional table has {max_len} positions; positions "
                f"{offset}..{offset + N - 1} were asked for (it cannot extend)"
            )
        return self.table[offset : offset + N]

    def forward(self, x: torch.Tensor, *, offset: int = 0) -> torch.Tensor:
        """``x`` (B, N, d) -> ``x + p`` (B, N, d)."""
        dims = expect_shape(x, ("B", "N", self.table.shape[1]), name="x")
        return x + self.encoding(dims["N"], offset=offset)[None]  # (B, N, d)


def positional_encoding(kind: str, d: int, *, max_len: int = 512) -> nn.Module:
    """``"sinusoidal"`` or ``"learned"`` (a table of ``max_len`` rows)."""
    if kind == "sinusoidal":
        return SinusoidalPositionalEncoding(d)
    if kind == "learned":
        return LearnedPositionalEncoding(max_len, d)
    raise ValueError(
        f"unknown positional encoding {kind!r}; expected 'sinusoidal' or "
        "'learned'"
    )
