"""Tests for chapter 5's attention layers in seqlib.attention: parity, masks, bias, errors."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seqlib import attention
from seqlib.attention import (
    GeneralAttention,
    MultiHeadAttention,
    SelfAttention,
    causal_mask,
    padding_mask,
    scaled_dot_product_attention,
)

B, T, S, D, H = 3, 5, 7, 16, 4
# float32 tolerances for "the same computation in a different order" (fast vs teaching path,
# ours vs torch.nn.MultiheadAttention); float64 checks are exact to 1e-12.
F32 = dict(rtol=1e-5, atol=1e-6)


def _mha(seed=0, **kwargs):
    torch.manual_seed(seed)
    return MultiHeadAttention(D, H, **kwargs).eval()


def _x(*shape, seed=1, dtype=torch.float32):
    return torch.randn(
        *shape, generator=torch.Generator().manual_seed(seed), dtype=dtype
    )


def _copy_to_torch(
    ours: MultiHeadAttention, kdim=None, vdim=None
) -> nn.MultiheadAttention:
    ref = nn.MultiheadAttention(
        D, H, batch_first=True, kdim=kdim, vdim=vdim
    ).eval()
    with torch.no_grad():
        if ref._qkv_same_embed_dim:
            ref.in_proj_weight.copy_(
                torch.cat(
                    [ours.to_q.weight, ours.to_k.weight, ours.to_v.weight]
                )
            )
        else:
            ref.q_proj_weight.copy_(ours.to_q.weight)
            ref.k_proj_weight.copy_(ours.to_k.weight)
            ref.v_proj_weight.copy_(ours.to_v.weight)
        ref.in_proj_bias.copy_(
            torch.cat([ours.to_q.bias, ours.to_k.bias, ours.to_v.bias])
        )
        ref.out_proj.weight.copy_(ours.proj.weight)
        ref.out_proj.bias.copy_(ours.proj.bias)
    return ref


def _recorded(layer, *args, **kwargs):
    """``layer(*args, **kwargs)`` under :func:`attention.record`: the output and the one recorded map."""
    with attention.record(layer) as maps:
        out = layer(*args, **kwargs)
    assert len(maps) == 1
    return out, maps[0]


def test_causal_mask():
    assert causal_mask(3).tolist() == [
        [True, False, False],
        [True, True, False],
        [True, True, True],
    ]
    assert causal_mask(2, 4).tolist() == [
        [True, True, True, False],
        [True, True, True, True],
    ]


@pytest.mark.parametrize("fast", [True, False])
def test_parity_with_torch_multihead_attention_self_attention_and_masks(fast):
    ours = _mha(fast=fast)
    ref = _copy_to_torch(ours)
    x = _x(B, T, D)
    lengths = torch.tensor([5, 3, 1])
    kpm, am = padding_mask(lengths, T), _x(T, T, seed=5) > -0.5
    am |= torch.eye(T, dtype=torch.bool)  # every query keeps one key
    out, w = _recorded(ours, x, key_padding_mask=kpm, attn_mask=am)
    # torch.nn.MultiheadAttention's masks say where NOT to attend: hence the ~.
    r_out, r_w = ref(
        x,
        x,
        x,
        key_padding_mask=~kpm,
        attn_mask=~am,
        need_weights=True,
        average_attn_weights=False,
    )
    torch.testing.assert_close(out, r_out, **F32)
    torch.testing.assert_close(w, r_w, **F32)
    torch.testing.assert_close(
        ours(x, key_padding_mask=kpm, attn_mask=am), r_out, **F32
    )


def test_parity_with_torch_cross_attention_of_other_widths():
    torch.manual_seed(0)
    ours = MultiHeadAttention(D, H, kdim=10, vdim=6).eval()
    ref = _copy_to_torch(ours, kdim=10, vdim=6)
    q, k, v = _x(B, T, D), _x(B, S, 10, seed=2), _x(B, S, 6, seed=3)
    kpm = padding_mask(torch.tensor([7, 4, 2]), S)
    out = ours(q, k, v, key_padding_mask=kpm)
    r_out, _ = ref(q, k, v, key_padding_mask=~kpm)
    torch.testing.assert_close(out, r_out, **F32)


def test_fast_and_teaching_paths_agree_with_every_mask_and_bias():
    slow, fast = _mha(fast=False).double(), _mha(fast=True).double()
    q, kv = (
        _x(B, T, D, dtype=torch.float64),
        _x(B, S, D, seed=2, dtype=torch.float64),
    )
    kpm = padding_mask(torch.tensor([7, 4, 2]), S)
    am = _x(B, H, T, S, seed=3) > 0
    bias = _x(1, H, T, S, seed=4, dtype=torch.float64)
    for kwargs in [
        {},
        {"key_padding_mask": kpm},
        {"attn_mask": am},
        {"attn_bias": bias},
        {
            "key_padding_mask": kpm,
            "attn_mask": am,
            "attn_bias": bias,
            "causal": True,
        },
    ]:
        torch.testing.assert_close(
            fast(q, kv, **kwargs), slow(q, kv, **kwargs), rtol=0, atol=1e-12
        )
    x = _x(B, T, D, dtype=torch.float64)
    torch.testing.assert_close(
        fast(x, causal=True), slow(x, causal=True), rtol=0, atol=1e-12
    )


def test_function_matches_torch_sdpa_and_writes_out_the_formula():
    q, k, v = _x(2, H, T, 8), _x(2, H, S, 8, seed=2), _x(2, H, S, 3, seed=3)
    mask = _x(2, 1, T, S, seed=4) > 0
    mask[..., 0] = True
    out, w = scaled_dot_product_attention(
        q, k, v, mask=mask, fast=False, return_attention=True
    )
    torch.testing.assert_close(
        out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), **F32
    )
    by_hand = torch.softmax(
        (q @ k.transpose(-1, -2) / 8**0.5).masked_fill(~mask, float("-inf")),
        -1,
    )
    torch.testing.assert_close(w, by_hand, **F32)
    assert (w[~mask.expand_as(w)] == 0).all()


@pytest.mark.parametrize("fast", [True, False])
def test_fully_masked_rows_give_zeros_not_nan(fast):
    mha = _mha(fast=fast)
    q, kv = _x(B, T, D).requires_grad_(True), _x(B, S, D, seed=2)
    kpm = padding_mask(
        torch.tensor([7, 0, 3]), S
    )  # sentence 1 has no key at all
    am = torch.ones(T, S, dtype=torch.bool)
    am[2] = False  # query 2 may attend nothing
    out = mha(q, kv, key_padding_mask=kpm, attn_mask=am)
    assert torch.isfinite(out).all()
    dead = mha.proj.bias.expand(
        T, D
    )  # no value reaches the projection: only its bias
    torch.testing.assert_close(out[1], dead)
    torch.testing.assert_close(out[0, 2], mha.proj.bias)
    out.sum().backward()
    assert torch.isfinite(q.grad).all()
    _, w = _recorded(mha, q, kv, key_padding_mask=kpm, attn_mask=am)
    assert (
        (w[1] == 0).all()
        and (w[:, :, 2] == 0).all()
        and torch.isfinite(w).all()
    )


def test_causal_masking_hides_the_future():
    mha = _mha()
    x = _x(B, T, D)
    changed = x.clone()
    changed[:, 3:] = _x(B, T - 3, D, seed=9)  # change tokens 3, 4
    a, b = mha(x, causal=True), mha(changed, causal=True)
    torch.testing.assert_close(a[:, :3], b[:, :3], rtol=0, atol=0)
    assert not torch.allclose(a[:, 3:], b[:, 3:])
    _, w = _recorded(mha, x, causal=True)
    assert (w.triu(diagonal=1) == 0).all()


def test_padding_hides_the_padded_keys():
    mha = _mha()
    q, kv = _x(B, T, D), _x(B, S, D, seed=2)
    kpm = padding_mask(torch.tensor([7, 4, 2]), S)
    noisy = torch.where(kpm[..., None], kv, _x(B, S, D, seed=8))
    torch.testing.assert_close(
        mha(q, kv, key_padding_mask=kpm),
        mha(q, noisy, key_padding_mask=kpm),
        rtol=0,
        atol=1e-6,
    )


def test_self_attention_is_permutation_equivariant():
    mha = _mha()
    x = _x(B, T, D)
    perm = torch.randperm(T, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(mha(x[:, perm]), mha(x)[:, perm], **F32)


def test_weights_are_distributions_and_bias_is_added_to_the_scores():
    mha = _mha()
    x = _x(B, T, D)
    _, w = _recorded(mha, x)
    assert w.shape == (B, H, T, T)
    torch.testing.assert_close(w.sum(-1), torch.ones(B, H, T))
    # A bias of -1e4 on key 0 for every query and head acts like masking key 0.
    bias = torch.zeros(T, T)
    bias[:, 0] = -1e4
    allowed = torch.ones(T, T, dtype=torch.bool)
    allowed[:, 0] = False
    torch.testing.assert_close(
        mha(x, attn_bias=bias), mha(x, attn_mask=allowed), **F32
    )
    _, wb = _recorded(mha, x, attn_bias=bias)
    assert wb[..., 0].max() < 1e-6


def test_general_and_self_attention_layers():
    torch.manual_seed(0)
    general = GeneralAttention(d_input=D, d_key=8, d_value=3)
    q, x = (
        _x(B, 2, 8),
        _x(B, S, D, seed=2),
    )  # M = 2 queries of width D_k = 8; N = S inputs of width D
    y, w = _recorded(general, q, x)
    assert y.shape == (B, 2, 3) and w.shape == (B, 2, S)
    k, v = (
        x @ general.to_k.weight.T + general.to_k.bias,
        x @ general.to_v.weight.T + general.to_v.bias,
    )
    torch.testing.assert_close(
        y, torch.softmax(q @ k.transpose(1, 2) / 8**0.5, -1) @ v, **F32
    )
    self_att = SelfAttention(D, 8)
    y, w = _recorded(self_att, x)
    assert y.shape == (B, S, 8) and w.shape == (B, S, S)


def test_dropout_only_in_training_and_nothing_stored_on_the_layer():
    mha = _mha(dropout=0.5)
    x = _x(B, T, D)
    before = set(vars(mha))
    assert torch.equal(mha(x), mha(x))
    mha.train()
    assert not torch.equal(mha(x), mha(x))
    _recorded(mha, x)
    assert set(vars(mha)) == before and not list(mha.buffers())


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m, x: MultiHeadAttention(10, 3), "heads must divide dim"),
        (lambda m, x: m(x[..., :8]), r"query: expected shape \(B, T, 16\)"),
        (lambda m, x: m(x, x[:2]), "key"),
        (
            lambda m, x: m(x, key_padding_mask=torch.ones(B, T)),
            "key_padding_mask: expected dtype torch.bool",
        ),
        (
            lambda m, x: m(
                x, key_padding_mask=torch.ones(B, T + 1, dtype=torch.bool)
            ),
            "key_padding_mask",
        ),
        (
            lambda m, x: m(
                x, attn_mask=torch.ones(T, T + 1, dtype=torch.bool)
            ),
            "attn_mask",
        ),
        (
            lambda m, x: m(x, attn_mask=torch.ones(T, dtype=torch.bool)),
            "attn_mask",
        ),
        (
            lambda m, x: m(x, attn_bias=torch.zeros(T, T, dtype=torch.long)),
            "float tensor",
        ),
        (lambda m, x: m(x, attn_bias=torch.zeros(3, T, T)), "broadcastable"),
        (lambda m, x: causal_mask(4, 3), "T <= S"),
    ],
)
def test_bad_input_raises_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call(_mha(), _x(B, T, D))


def test_bias_of_another_dtype_is_cast_on_the_fast_path():
    mha = _mha().double()
    x = _x(B, T, D, dtype=torch.float64)
    bias = _x(
        1, H, T, T, seed=4
    )  # float32, as a bias table kept in float32 under autocast
    slow = MultiHeadAttention(D, H, fast=False).double()
    slow.load_state_dict(mha.state_dict())
    torch.testing.assert_close(
        mha(x, attn_bias=bias),
        slow(x, attn_bias=bias.double()),
        rtol=0,
        atol=1e-6,
    )


def test_the_recorder_names_layers_keeps_order_and_leaves_outputs_unchanged():
    mha, other = _mha(), _mha(seed=1)
    model = nn.ModuleDict({"first": mha, "second": other})
    x = _x(B, T, D)
    plain = other(mha(x, causal=True))
    with attention.record(model) as maps:
        assert attention.recording()
        out = other(mha(x, causal=True))
    assert not attention.recording() and len(maps) == 2
    assert maps.names == ["first", "second"] and maps.select("sec*") == [
        maps[1]
    ]
    torch.testing.assert_close(
        out, plain, **F32
    )  # explicit path under record, fused outside: same output
    assert (maps[0].triu(diagonal=1) == 0).all() and maps[1].shape == (
        B,
        H,
        T,
        T,
    )
    with (
        attention.record() as unnamed
    ):  # without a model, entries are named after the class
        mha(x)
    assert unnamed.names == ["MultiHeadAttention"]
    with pytest.raises(KeyError, match="no recorded attention"):
        maps.select("third")
    mha(x)  # outside record nothing is kept
    assert len(maps) == 2


def test_recorded_weights_equal_the_explicit_computation_per_head():
    mha = _mha()
    q, kv = _x(B, T, D), _x(B, S, D, seed=2)
    kpm = padding_mask(torch.tensor([7, 4, 2]), S)
    _, w = _recorded(mha, q, kv, key_padding_mask=kpm)
    d = D // H
    with torch.no_grad():
        qh = mha.to_q(q).view(B, T, H, d).transpose(1, 2)  # (B, h, T, d)
        kh = mha.to_k(kv).view(B, S, H, d).transpose(1, 2)  # (B, h, S, d)
        scores = (qh @ kh.transpose(-1, -2) / d**0.5).masked_fill(
            ~kpm[:, None, None, :], float("-inf")
        )
    torch.testing.assert_close(w, torch.softmax(scores, -1), **F32)
    out, weights = mha.attend(
        q, *mha.keys_values(kv), mask=kpm[:, None, None, :], need_weights=True
    )
    torch.testing.assert_close(weights, w, rtol=0, atol=0)
    assert (
        mha.attend(q, *mha.keys_values(kv))[1] is None
    )  # no weights unless asked or recording
