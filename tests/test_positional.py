"""Tests for seqlib.positional: one test per desideratum of pos(), the 2D codes, the modules, errors."""

import math

import pytest
import torch

from seqlib.positional import (
    LearnedPositionalEncoding,
    SinusoidalPositionalEncoding,
    frequencies,
    positional_encoding,
    sinusoidal_encoding,
    sinusoidal_encoding_2d,
)

D = 32


def test_matches_the_formula_of_vaswani_et_al():
    pe = sinusoidal_encoding(50, D, dtype=torch.float64)
    t, i = 37, 5
    angle = t / 10000 ** (2 * i / D)
    assert pe.shape == (50, D)
    assert math.isclose(pe[t, 2 * i], math.sin(angle), abs_tol=1e-12)
    assert math.isclose(pe[t, 2 * i + 1], math.cos(angle), abs_tol=1e-12)
    assert pe[0, 0::2].abs().max() == 0 and (pe[0, 1::2] == 1).all()


def test_desideratum_1_unique_code_per_position():
    pe = sinusoidal_encoding(2048, D, dtype=torch.float64)
    dist = torch.cdist(pe, pe)  # (T, T)
    off_diagonal = dist + torch.eye(2048, dtype=torch.float64) * 1e9
    assert off_diagonal.min() > 1e-3


def test_desideratum_2_distance_depends_on_offset_only_not_position_or_length():
    pe = sinusoidal_encoding(400, D, dtype=torch.float64)
    for k in (1, 3, 17, 100):
        d = (pe[k:] - pe[:-k]).norm(dim=-1)  # ||p(t+k) - p(t)|| for every t
        expected = torch.sqrt((2 - 2 * torch.cos(frequencies(D) * k)).sum())
        torch.testing.assert_close(d, expected.expand_as(d), rtol=0, atol=1e-9)
    # A sentence of 20 tokens gets the first 20 codes of a sentence of 400: same distances.
    torch.testing.assert_close(
        sinusoidal_encoding(20, D, dtype=torch.float64), pe[:20]
    )
    # Stronger: p(t + k) = R_k p(t) with a rotation R_k that does not depend on t.
    k, w = 7, frequencies(D) * 7
    c, s = torch.cos(w), torch.sin(w)
    R = torch.zeros(D, D, dtype=torch.float64)
    for i in range(D // 2):
        R[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.stack(
            [torch.stack([c[i], s[i]]), torch.stack([-s[i], c[i]])]
        )
    torch.testing.assert_close(pe[:-k] @ R.T, pe[k:], rtol=0, atol=1e-9)


def test_desideratum_3_bounded_and_extends_to_longer_sequences():
    long = sinusoidal_encoding(10000, D)
    assert long.abs().max() <= 1.0 and torch.isfinite(long).all()
    # each (sin, cos) pair lies on the unit circle, so every code has norm sqrt(d/2)
    torch.testing.assert_close(
        long.norm(dim=-1), torch.full((10000,), math.sqrt(D / 2))
    )
    module = SinusoidalPositionalEncoding(D)
    x = torch.zeros(2, 3000, D)
    torch.testing.assert_close(module(x)[0], long[:3000])
    learned = LearnedPositionalEncoding(64, D)
    with pytest.raises(ValueError, match="cannot extend"):
        learned(torch.zeros(1, 65, D))


def test_desideratum_4_deterministic():
    torch.manual_seed(0)
    a = sinusoidal_encoding(100, D)
    torch.manual_seed(123)
    b = sinusoidal_encoding(100, D)
    assert torch.equal(a, b)
    assert (
        sum(p.numel() for p in SinusoidalPositionalEncoding(D).parameters())
        == 0
    )
    torch.manual_seed(0)
    t1 = LearnedPositionalEncoding(10, D).table
    torch.manual_seed(1)
    assert not torch.equal(
        t1, LearnedPositionalEncoding(10, D).table
    )  # learned: depends on init


def test_offset_and_fractional_positions():
    module = SinusoidalPositionalEncoding(D)
    torch.testing.assert_close(
        module.encoding(5, offset=10), sinusoidal_encoding(15, D)[10:]
    )
    half = sinusoidal_encoding(torch.tensor([0.5]), D, dtype=torch.float64)
    assert math.isclose(half[0, 0], math.sin(0.5), abs_tol=1e-12)


def test_learned_table_adds_its_rows_and_gets_gradients():
    learned = LearnedPositionalEncoding(16, 4)
    x = torch.randn(3, 10, 4)
    out = learned(x)
    torch.testing.assert_close(out - x, learned.table[:10].expand(3, 10, 4))
    out.sum().backward()
    assert (
        learned.table.grad[:10].abs().sum() > 0
        and learned.table.grad[10:].abs().sum() == 0
    )


def test_2d_encoding_rows_and_columns():
    H, W, d = 5, 7, 16
    pe = sinusoidal_encoding_2d(H, W, d)
    assert pe.shape == (H, W, d)
    rows, cols = sinusoidal_encoding(H, d // 2), sinusoidal_encoding(W, d // 2)
    torch.testing.assert_close(
        pe[:, 3, : d // 2], rows
    )  # first half: the row only
    torch.testing.assert_close(
        pe[2, :, d // 2 :], cols
    )  # second half: the column only
    flat = pe.reshape(H * W, d)
    assert (
        torch.cdist(flat, flat).add(torch.eye(H * W) * 9).min() > 1e-3
    )  # unique per cell
    norm = sinusoidal_encoding_2d(4, 8, d, normalize=True)
    torch.testing.assert_close(
        norm[-1, -1, : d // 2],
        sinusoidal_encoding(torch.tensor([2 * math.pi]), d // 2)[0],
    )


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: sinusoidal_encoding(10, 7), "even width"),
        (lambda: sinusoidal_encoding(0, 8), "at least one position"),
        (lambda: sinusoidal_encoding(10, 8, base=1.0), "base"),
        (lambda: sinusoidal_encoding(torch.zeros(2, 3), 8), "positions"),
        (lambda: sinusoidal_encoding_2d(4, 4, 6), "divisible by 4"),
        (lambda: sinusoidal_encoding_2d(0, 4, 8), "at least 1"),
        (
            lambda: SinusoidalPositionalEncoding(8)(torch.zeros(2, 5, 6)),
            r"expected shape \(B, N, 8\)",
        ),
        (lambda: LearnedPositionalEncoding(8, 4)(torch.zeros(5, 4)), "dims"),
        (
            lambda: positional_encoding("rotary", 8),
            "unknown positional encoding",
        ),
    ],
)
def test_bad_input_raises_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
