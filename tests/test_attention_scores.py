"""Tests for seqlib.scores (and seqlib.attention's masks): masks, every score function, attend, local and hard attention."""

import pytest
import torch
import torch.nn.functional as F

from seqlib.attention import masked_softmax, padding_mask
from seqlib.scores import (
    SCORES,
    AdditiveScore,
    CosineScore,
    GeneralScore,
    LocalWindow,
    LocationScore,
    attend,
    hard_weights,
    score_function,
)

torch.set_num_threads(1)
B, T, S, D = 3, 4, 6, 8


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(B, T, D, generator=g),
        torch.randn(B, S, D, generator=g),
        torch.randn(B, S, 5, generator=g),
        torch.tensor([6, 3, 1]),
    )


@pytest.mark.parametrize("name", SCORES)
def test_weights_sum_to_one_and_padding_gets_exactly_zero(name):
    torch.manual_seed(0)
    q, k, v, lengths = _inputs()
    score = score_function(name, d_query=D, d_key=D, max_len=S)
    mask = padding_mask(lengths, S)
    context, w = attend(q, k, v, score=score, mask=mask)
    assert context.shape == (B, T, 5) and w.shape == (B, T, S)
    torch.testing.assert_close(w.sum(-1), torch.ones(B, T))
    assert (w[~mask[:, None, :].expand(B, T, S)] == 0).all()
    torch.testing.assert_close(context, w @ v)


def test_padding_mask():
    assert padding_mask(torch.tensor([2, 0, 3]), 4).tolist() == [
        [True, True, False, False],
        [False] * 4,
        [True, True, True, False],
    ]


def test_fully_masked_rows_give_zeros_not_nan_and_finite_gradients():
    scores = torch.randn(2, 3, 4, requires_grad=True)
    mask = torch.ones(2, 3, 4, dtype=torch.bool)
    mask[1] = False
    w = masked_softmax(scores, mask)
    assert torch.isfinite(w).all() and (w[1] == 0).all()
    w.sum().backward()
    assert torch.isfinite(scores.grad).all()


def test_scaled_dot_equals_torch_sdpa():
    q, k, v, lengths = _inputs(1)
    mask = padding_mask(lengths, S)
    ours, _ = attend(
        q,
        k,
        v,
        score=score_function("scaled_dot", d_query=D, d_key=D),
        mask=mask,
    )
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, :])
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    ours, _ = attend(
        q, k, v, score=score_function("scaled_dot", d_query=D, d_key=D)
    )
    torch.testing.assert_close(
        ours, F.scaled_dot_product_attention(q, k, v), rtol=1e-5, atol=1e-6
    )


def test_formulas_by_hand():
    torch.manual_seed(0)
    q, k, _, _ = _inputs(2)
    add = AdditiveScore(D, D, d_hidden=7)
    b, t, j = 1, 2, 3
    by_hand = add.v.weight[0] @ torch.tanh(
        add.W.weight @ q[b, t] + add.U.weight @ k[b, j] + add.U.bias
    )
    torch.testing.assert_close(add(q, k)[b, t, j], by_hand)
    gen = GeneralScore(D, 5)
    k5 = torch.randn(B, S, 5)
    torch.testing.assert_close(
        gen(q, k5)[b, t, j], q[b, t] @ gen.W.weight @ k5[b, j]
    )
    cos = CosineScore(beta=3.0)
    torch.testing.assert_close(
        cos(q, k)[b, t, j], 3.0 * F.cosine_similarity(q[b, t], k[b, j], dim=0)
    )
    dot = score_function("dot", d_query=D, d_key=D)
    torch.testing.assert_close(dot(q, k)[b, t, j], q[b, t] @ k[b, j])


def test_location_score_ignores_the_content_of_the_keys():
    loc = LocationScore(D, max_len=10)
    q, k, _, _ = _inputs(3)
    torch.testing.assert_close(loc(q, k), loc(q, torch.randn_like(k)))
    with pytest.raises(ValueError, match="at most 10"):
        loc(q, torch.randn(B, 11, D))


def test_bad_shapes_give_clear_errors():
    q, k, v, lengths = _inputs()
    dot = score_function("dot", d_query=D, d_key=D)
    with pytest.raises(ValueError, match=r"keys: expected shape \(B, S, \?\)"):
        attend(q, k[:2], v, score=dot)
    with pytest.raises(ValueError, match="values"):
        attend(q, k, v[:, :4], score=dot)
    with pytest.raises(ValueError, match="equal width"):
        attend(q, torch.randn(B, S, D + 1), v, score=dot)
    with pytest.raises(ValueError, match="mask"):
        attend(q, k, v, score=dot, mask=torch.ones(B, S + 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="dtype"):
        attend(q, k, v, score=dot, mask=torch.ones(B, S))
    with pytest.raises(ValueError, match="unknown score"):
        score_function("cosinus", d_query=D, d_key=D)


def test_local_window_masks_outside_and_keeps_a_distribution():
    torch.manual_seed(0)
    q, k, v, lengths = _inputs(4)
    local = LocalWindow(D, window=1)
    bias, window, p = local(q, lengths, S)
    assert p.shape == (B, T)
    assert ((p >= 0) & (p <= (lengths[:, None] - 1))).all()
    j = torch.arange(S)
    assert torch.equal(
        window, ((j - p[..., None]).abs() <= 1) & (j < lengths[:, None, None])
    )
    assert window.any(-1).all()  # never empty
    _, w = attend(
        q,
        k,
        v,
        score=score_function("dot", d_query=D, d_key=D),
        mask=window,
        bias=bias,
    )
    torch.testing.assert_close(w.sum(-1), torch.ones(B, T))
    assert (w[~window] == 0).all()


def test_hard_attention_is_one_hot_and_lets_gradients_through():
    scores = torch.randn(B, T, S, requires_grad=True)
    mask = padding_mask(torch.tensor([6, 3, 1]), S)[:, None, :].expand(B, T, S)
    w = hard_weights(scores, mask, training=True)
    assert torch.equal(w.sum(-1), torch.ones(B, T)) and set(
        w.unique().tolist()
    ) <= {0.0, 1.0}
    assert (w[~mask] == 0).all()
    (w * torch.randn(B, T, S)).sum().backward()
    assert (
        scores.grad.abs().sum() > 0
    )  # straight-through: the soft sample's gradient
    w_eval = hard_weights(scores.detach(), mask, training=False)
    assert torch.equal(
        w_eval.argmax(-1), scores.detach().masked_fill(~mask, -1e9).argmax(-1)
    )
