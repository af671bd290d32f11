"""Swin: windows, shifts, masks, relative positions, patch merging, stage shapes."""

import pytest
import torch

from seqlib import attention, layers, swin


def test_partition_then_reverse_is_identity():
    x = torch.randn(2, 8, 12, 5)
    windows = swin.window_partition(x, 4)
    assert windows.shape == (2 * 2 * 3, 16, 5)
    assert torch.equal(swin.window_reverse(windows, 4, 8, 12), x)


def test_partition_groups_the_right_tokens():
    grid = torch.arange(16.0).reshape(
        1, 4, 4, 1
    )  # token value = its row-major index
    windows = swin.window_partition(grid, 2)[..., 0]
    assert windows.tolist() == [
        [0, 1, 4, 5],
        [2, 3, 6, 7],
        [8, 9, 12, 13],
        [10, 11, 14, 15],
    ]


def test_partition_rejects_bad_sizes():
    with pytest.raises(ValueError, match="multiple of the window size"):
        swin.window_partition(torch.zeros(1, 6, 8, 2), 4)
    with pytest.raises(ValueError, match="4 dims"):
        swin.window_partition(torch.zeros(6, 8, 2), 2)
    with pytest.raises(ValueError, match="multiple of nW"):
        swin.window_reverse(torch.zeros(3, 4, 2), 2, 4, 4)


def test_relative_position_index_range_and_symmetry():
    for m in (1, 2, 3, 7):
        index = swin.relative_position_index(m)
        assert index.shape == (m * m, m * m) and index.dtype == torch.int64
        assert (
            int(index.min()) == 0 and int(index.max()) == (2 * m - 1) ** 2 - 1
        )
        assert (
            len(index.unique()) == (2 * m - 1) ** 2
        )  # every offset occurs, each gets its own row
        centre = (2 * m - 1) ** 2 // 2  # offset (0, 0)
        assert torch.all(index.diagonal() == centre)
        assert torch.equal(
            index + index.T, torch.full_like(index, 2 * centre)
        )  # offset(i,j) = −offset(j,i)


def test_relative_position_index_depends_only_on_offset():
    m = 3
    index = swin.relative_position_index(m)
    coords = [(r, c) for r in range(m) for c in range(m)]
    for i, (ri, ci) in enumerate(coords):
        for j, (rj, cj) in enumerate(coords):
            assert index[i, j] == (ri - rj + m - 1) * (2 * m - 1) + (
                ci - cj + m - 1
            )


def test_shift_mask_blocks_the_seam():
    """Unshift the shifted windows: every allowed pair must be neighbours in the image, not across the border."""
    H = W = 8
    M, s = 4, 2
    allowed = swin.shifted_window_mask(H, W, M, s)  # (nW, M², M²)
    assert allowed.shape == (4, 16, 16) and allowed.dtype == torch.bool
    rows = torch.arange(H)[:, None].expand(H, W)
    cols = torch.arange(W)[None, :].expand(H, W)
    pos = torch.stack([rows, cols], -1)[
        None
    ]  # (1, H, W, 2): original coordinates
    shifted = swin.window_partition(
        swin.cyclic_shift(pos, s), M
    )  # (nW, M², 2)
    for w in range(len(shifted)):
        for i in range(M * M):
            for j in range(M * M):
                dy, dx = (shifted[w, i] - shifted[w, j]).abs().tolist()
                wraps = (
                    dy >= M or dx >= M
                )  # only a pair that came around the border is this far apart
                assert allowed[w, i, j] == (not wraps), (w, i, j)
    assert allowed[
        0
    ].all()  # the first window lies inside the image: no masking
    assert not allowed[-1].all()  # the corner window mixes four regions


def test_mask_without_shift_is_all_true_and_shift_is_validated():
    assert swin.shifted_window_mask(8, 8, 4, 0).all()
    with pytest.raises(ValueError, match="shift must be in"):
        swin.shifted_window_mask(8, 8, 4, 4)


def test_patch_merging_concatenates_2x2_neighbourhoods():
    torch.manual_seed(0)
    merge = swin.PatchMerging(3)
    x = torch.randn(2, 6, 6, 3)
    out = merge(x)
    assert out.shape == (2, 3, 3, 6)
    # the same 4C vector the official code builds: x0=[0::2,0::2], x1=[1::2,0::2], x2=[0::2,1::2], x3=[1::2,1::2]
    cat = torch.cat(
        [
            x[:, 0::2, 0::2],
            x[:, 1::2, 0::2],
            x[:, 0::2, 1::2],
            x[:, 1::2, 1::2],
        ],
        -1,
    )
    torch.testing.assert_close(out, merge.reduction(merge.norm(cat)))
    assert merge(torch.randn(1, 7, 7, 3)).shape == (
        1,
        4,
        4,
        6,
    )  # odd sides are padded
    with pytest.raises(ValueError, match="expected shape"):
        merge(torch.randn(1, 6, 6, 4))


def _reference_window_attention(
    wa: swin.WindowAttention, x: torch.Tensor, mask=None
) -> torch.Tensor:
    """softmax(QKᵀ/√d + B + mask) V written out with the layer's weights, one window at a time."""
    mha, h = (
        wa,
        wa.heads,
    )  # WindowAttention is a MultiHeadAttention with a bias table
    q, k, v = mha.to_q(x), mha.to_k(x), mha.to_v(x)  # (B·nW, N, C)
    d = x.shape[-1] // h
    q, k, v = (
        t.view(x.shape[0], x.shape[1], h, d).transpose(1, 2) for t in (q, k, v)
    )  # (B·nW, h, N, d)
    scores = (
        q @ k.transpose(-1, -2) / d**0.5 + wa.relative_bias()
    )  # (B·nW, h, N, N)
    if mask is not None:
        scores = scores.masked_fill(
            ~mask.repeat(x.shape[0] // len(mask), 1, 1)[:, None], float("-inf")
        )
    out = (
        (scores.softmax(-1) @ v).transpose(1, 2).reshape(x.shape)
    )  # (B·nW, N, C)
    return mha.proj(out)


def test_window_attention_matches_the_formula_with_bias_and_mask():
    torch.manual_seed(0)
    wa = swin.WindowAttention(8, 2, 4)
    with torch.no_grad():
        wa.bias_table.normal_()  # a bias large enough to matter
    x = torch.randn(2 * 4, 16, 8)
    mask = swin.shifted_window_mask(8, 8, 4, 2)
    torch.testing.assert_close(
        wa(x), _reference_window_attention(wa, x), atol=1e-5, rtol=1e-5
    )
    torch.testing.assert_close(
        wa(x, mask=mask),
        _reference_window_attention(wa, x, mask),
        atol=1e-5,
        rtol=1e-5,
    )
    with attention.record(wa) as maps:
        wa(x, mask=mask)
    weights = maps[0]
    assert len(maps) == 1 and weights.shape == (8, 2, 16, 16)
    assert torch.all(
        weights[:, :, ~mask[-1]][-1] == 0
    )  # the corner window: zero weight across the seam
    with pytest.raises(ValueError, match="expected shape"):
        wa(torch.randn(8, 9, 8))


def test_shifted_block_never_mixes_opposite_borders():
    """A change at pixel (0, 0) shares a cyclic window with (H−1, W−1) but must not reach it."""
    torch.manual_seed(0)
    block = swin.SwinBlock(8, 2, window=4, grid=8, shift=2).eval()
    x = torch.randn(1, 8, 8, 8)
    y = x.clone()
    y[0, 0, 0] += torch.randn(8)  # not a constant: LayerNorm would remove that
    diff = (block(y) - block(x)).abs().sum(-1)[0]  # (H, W)
    assert diff[7, 7] == 0 and diff[0, 7] == 0 and diff[7, 0] == 0
    assert diff[1, 1] > 0  # its own region does see it
    plain = swin.SwinBlock(8, 2, window=4, grid=8, shift=0).eval()
    diff = (plain(y) - plain(x)).abs().sum(-1)[0]
    assert (
        diff[:4, :4].min() > 0
        and diff[4:].max() == 0
        and diff[:, 4:].max() == 0
    )  # only its window


def test_swin_block_is_the_books_block_with_a_registered_shift_mask():
    block = swin.SwinBlock(8, 2, window=4, grid=8, shift=2)
    assert isinstance(block, layers.Block) and isinstance(
        block.mixer, swin.ShiftedWindowAttention
    )
    assert torch.equal(
        block.mixer.mask, swin.shifted_window_mask(8, 8, 4, 2)
    )  # built once, from the grid
    assert "mixer.mask" not in "".join(
        block.state_dict()
    )  # a buffer, but not saved: it follows from the sizes
    assert any(
        b is block.mixer.mask for b in block.buffers()
    )  # so .to(device) moves it
    assert (
        swin.SwinBlock(8, 2, window=4, grid=8).mixer.mask is None
    )  # W-MSA needs no mask
    with pytest.raises(ValueError, match="shift must be in"):
        swin.SwinBlock(8, 2, window=4, grid=8, shift=4)
    with pytest.raises(ValueError, match="expected shape"):
        block(
            torch.randn(1, 4, 4, 8)
        )  # a grid other than the one the mask was built for


def test_recorded_maps_are_per_block_and_zero_across_the_seam():
    torch.manual_seed(0)
    model = swin.swin_tiny().eval()
    images = torch.rand(2, 1, 32, 32)
    with attention.record(model) as maps:
        logits = model(images)
    assert maps.names == [
        f"stages.{s}.blocks.{b}.mixers.attn.attn"
        for s in range(3)
        for b in range(2)
    ]
    torch.testing.assert_close(logits, model(images), atol=1e-5, rtol=1e-5)
    assert [tuple(w.shape) for w in maps.select("stages.0.*")] == [
        (2 * 4, 2, 16, 16)
    ] * 2  # (B·nW, h, M², M²)
    mask = model.stages[0].blocks[1].mixer.mask  # (nW, M², M²)
    shifted = maps.select("stages.0.blocks.1.*")[0]
    assert torch.all(
        shifted.transpose(1, -1)[~mask.repeat(2, 1, 1).transpose(1, -1)] == 0
    )


def test_weight_decay_skips_the_bias_tables_as_the_old_substring_rule():
    model = swin.swin_tiny()
    old = {
        n
        for n, p in model.named_parameters()
        if not (
            p.dim() > 1
            and not any(k in n for k in ("pos.", "token", "bias_table"))
        )
    }
    assert layers.no_weight_decay_names(model) == old
    assert sum("bias_table" in n for n in old) == 6  # one table per block


def test_stage_shapes_double_width_and_halve_grid():
    model = swin.swin_tiny(
        patch_size=2,
        in_channels=3,
        dim=8,
        depths=(1, 1, 1, 1),
        heads=(1, 2, 2, 4),
    )
    maps = model.features(torch.rand(2, 3, 32, 32))
    assert [tuple(m.shape) for m in maps] == [
        (2, 8, 16, 16),
        (2, 16, 8, 8),
        (2, 32, 4, 4),
        (2, 64, 2, 2),
    ]
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    small = swin.SwinTransformer(
        swin.SwinConfig(
            image_size=28, patch_size=2, window=7, dim=8, heads=(1, 2, 2)
        )
    )
    shapes = [
        tuple(m.shape[1:]) for m in small.features(torch.rand(1, 1, 28, 28))
    ]
    assert shapes == [(8, 14, 14), (16, 7, 7), (32, 4, 4)]
    assert (
        small.stages[1].window == 7 and small.stages[2].window == 4
    )  # a grid smaller than M is one window
    assert [b.shift for b in small.stages[0].blocks] == [
        0,
        3,
    ] and small.stages[1].blocks[1].shift == 0
    regular = swin.SwinStage(
        8, depth=2, heads=1, window=7, grid=14, shifted=False
    )
    assert [b.shift for b in regular.blocks] == [0, 0] and regular.blocks[
        1
    ].mixer.mask is None
    tiny = swin.swin_tiny()
    assert [
        tuple(m.shape[1:]) for m in tiny.features(torch.rand(1, 1, 32, 32))
    ] == [(20, 8, 8), (40, 4, 4), (80, 2, 2)]
    with pytest.raises(ValueError, match="expected shape"):
        small(torch.rand(1, 3, 28, 28))
    with pytest.raises(ValueError, match="expected shape"):
        tiny(torch.rand(1, 1, 28, 28))
    with pytest.raises(ValueError, match="one entry per stage"):
        swin.SwinConfig(depths=(2, 2), heads=(2,))


def test_every_parameter_gets_a_gradient():
    """The relative bias tables, the merges and the head all take part in the loss."""
    torch.manual_seed(0)
    model = swin.swin_tiny(dim=8, heads=(1, 2, 2), depths=(2, 2, 1))
    loss = torch.nn.functional.cross_entropy(
        model(torch.rand(2, 1, 32, 32)), torch.tensor([0, 1])
    )
    loss.backward()
    silent = [
        name
        for name, p in model.named_parameters()
        if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert silent == []
    table = model.stages[0].blocks[1].mixer.attn.bias_table
    assert torch.all(
        table.grad.abs().sum(-1) > 0
    )  # all (2M−1)² offsets occur in a window


def test_cost_formulas_and_swin_t_size():
    # 56×56 tokens, C = 96, M = 7: the numbers behind the paper's Sec. 3.2
    assert swin.msa_cost(56, 56, 96) == 4 * 3136 * 96**2 + 2 * 3136**2 * 96
    assert swin.window_msa_cost(7, 7, 96, 7) == swin.msa_cost(
        7, 7, 96
    )  # one window = global
    assert swin.msa_cost(56, 56, 96) / swin.window_msa_cost(56, 56, 96, 7) > 13
    # Swin-T built from this module has exactly the parameter count of the official model
    model = swin.SwinTransformer(
        swin.SwinConfig(
            image_size=224,
            patch_size=4,
            in_channels=3,
            num_classes=1000,
            dim=96,
            depths=(2, 2, 6, 2),
            heads=(3, 6, 12, 24),
            window=7,
            mlp_ratio=4.0,
        )
    )
    assert sum(p.numel() for p in model.parameters()) == 28_288_354


def test_the_head_normalises_every_token_before_pooling_as_the_official_model():
    torch.manual_seed(0)
    model = swin.swin_tiny().eval()
    images = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        last = model.features(images)[-1].permute(0, 2, 3, 1)  # (B, H, W, C)
        official = model.head(model.norm(last).mean(dim=(1, 2)))
        pooled_first = model.head(model.norm(last.mean(dim=(1, 2))))
        torch.testing.assert_close(model(images), official)
    assert not torch.allclose(
        official, pooled_first, atol=1e-4
    )  # the order matters
