"""Tests for seqlib.rvt: partitions, receptive fields of block vs grid attention, recorded maps, explicit LSTM state."""

import pytest
import torch

from seqlib import attention, layers, rvt
from seqlib.swin import window_partition, window_reverse


def test_block_and_grid_partitions_reverse_to_identity():
    x = torch.randn(2, 8, 12, 3)
    torch.testing.assert_close(
        window_reverse(window_partition(x, 4), 4, 8, 12), x
    )
    groups = rvt.grid_partition(x, 4)
    assert groups.shape == (2 * 2 * 3, 16, 3)
    torch.testing.assert_close(rvt.grid_reverse(groups, 4, 8, 12), x)


def test_grid_groups_are_dilated_across_the_map():
    # coordinates as features: group 0 of an 8×8 map with G=4 holds rows and columns 0, 2, 4, 6
    rows, cols = torch.meshgrid(
        torch.arange(8), torch.arange(8), indexing="ij"
    )
    coords = torch.stack([rows, cols], -1)[None].float()  # (1, 8, 8, 2)
    first = rvt.grid_partition(coords, 4)[0]  # (16, 2)
    assert sorted(set(first[:, 0].tolist())) == [0, 2, 4, 6]
    assert sorted(set(first[:, 1].tolist())) == [0, 2, 4, 6]
    block = window_partition(coords, 4)[0]
    assert sorted(set(block[:, 0].tolist())) == [0, 1, 2, 3]


def test_partition_rejects_bad_sizes():
    with pytest.raises(ValueError, match="multiple of the grid size"):
        rvt.grid_partition(torch.randn(1, 6, 8, 2), 4)
    with pytest.raises(ValueError, match="expected"):
        rvt.grid_partition(torch.randn(6, 8, 2), 2)


def _corner_gradient(layer: torch.nn.Module) -> torch.Tensor:
    """|d out[top-left pixel] / d x| over the bottom-right 4×4 corner of an 8×8 map."""
    x = torch.randn(1, 8, 8, 8, requires_grad=True)
    layer(x)[0, 0, 0].sum().backward()
    return x.grad[0, 4:, 4:].abs().sum(-1)  # (4, 4)


def test_grid_attention_connects_opposite_corners_block_attention_does_not():
    torch.manual_seed(0)
    block = rvt.partition_block(8, 2, 4, mode="block")
    grid = rvt.partition_block(8, 2, 4, mode="grid")
    assert (
        _corner_gradient(block).sum() == 0.0
    )  # a different 4×4 block: unreachable
    reach = _corner_gradient(grid) > 1e-6
    # G=4 on 8×8: pixel (0, 0)'s grid group is rows and columns {0, 2, 4, 6}, which include
    # (4, 4), (4, 6), (6, 4), (6, 6) in the opposite corner block, and nothing else there
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[::2, ::2] = True
    assert torch.equal(reach, expected)


def test_partition_block_is_a_block_with_a_partition_mixer():
    block = rvt.partition_block(8, 2, 4, mode="grid", mlp_ratio=2.0)
    assert isinstance(block, layers.Block) and isinstance(
        block.mixer, rvt.PartitionAttention
    )
    assert block.mixer.mode == "grid" and block.mixer.size == 4
    assert isinstance(block.mlp, layers.FeedForward)
    with pytest.raises(ValueError, match="mode"):
        rvt.PartitionAttention(8, 2, 4, mode="shifted")


def test_partition_attention_is_attention_inside_each_group():
    """The mixer equals plain MHA on the partitioned tokens, put back: a pure token grouping."""
    torch.manual_seed(0)
    mixer = rvt.PartitionAttention(8, 2, 4, mode="grid").eval()
    x = torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        groups = rvt.grid_partition(x, 4)
        expected = rvt.grid_reverse(
            attention.MultiHeadAttention.forward(mixer, groups), 4, 8, 8
        )
        torch.testing.assert_close(mixer(x), expected)


def test_recorded_weights_rows_sum_to_one():
    layer = rvt.MultiAxisAttention(8, 2, block=4, grid=2)
    with attention.record(layer) as maps:
        out = layer(torch.randn(2, 8, 8, 8))
    assert out.shape == (2, 8, 8, 8)
    assert maps.names == ["block.mixers.attn", "grid.mixers.attn"]
    assert maps[0].shape == (2 * 4, 2, 16, 16)  # (B·nW, h, P², P²)
    assert maps[1].shape == (2 * 16, 2, 4, 4)  # (B·nG, h, G², G²)
    torch.testing.assert_close(maps[1].sum(-1), torch.ones(32, 2, 4))


def test_recorded_weights_are_the_explicit_attention_weights():
    """What record collects is softmax(q k^T / sqrt(d)) of the grouped, normed tokens."""
    torch.manual_seed(0)
    block = rvt.partition_block(8, 2, 4, mode="block").eval()
    x = torch.randn(1, 8, 8, 8)
    with torch.no_grad(), attention.record(block) as maps:
        block(x)
    mixer = block.mixer
    tokens = window_partition(block.norms[0](x), 4)  # (nW, 16, 8)
    q = mixer.to_q(tokens).view(4, 16, 2, 4).transpose(1, 2)
    k = mixer.to_k(tokens).view(4, 16, 2, 4).transpose(1, 2)
    expected = torch.softmax(
        q @ k.transpose(-2, -1) / 2.0, dim=-1
    )  # (nW, h, 16, 16), sqrt(d) = 2
    torch.testing.assert_close(
        maps.select("mixers.attn")[0], expected.detach()
    )


def test_rvt_recorder_names_one_map_per_frame_and_layer():
    torch.manual_seed(0)
    model = rvt.rvt_tiny(
        image_size=16,
        dims=(8, 8),
        strides=(2, 2),
        heads=(2, 2),
        block=4,
        grid=2,
        depth=2,
    ).eval()
    with torch.no_grad(), attention.record(model) as maps:
        model(torch.randn(1, 3, 2, 16, 16))  # three frames
    per_frame = [
        f"stages.{i}.blocks.{j}.{mode}.mixers.attn"
        for i in range(2)
        for j in range(2)
        for mode in ("block", "grid")
    ]
    assert maps.names == per_frame * 3
    first = rvt.recorded_attention(maps, stage=1, block=1)
    assert len(first["block"]) == len(first["grid"]) == 3
    assert first["grid"][0].shape == (
        1 * 4,
        2,
        4,
        4,
    )  # 4×4 map, G = 2: 4 groups of 4 tokens


def test_attention_to_map_puts_weights_where_the_tokens_are():
    torch.manual_seed(0)
    grid = rvt.partition_block(8, 2, 4, mode="grid")
    with attention.record(grid) as maps:
        grid(torch.randn(2, 8, 8, 8))
    m = rvt.attention_to_map(
        maps[0], (1, 3), mode="grid", size=4, height=8, width=8, image=1
    )
    assert m.shape == (8, 8) and torch.isclose(m.sum(), torch.tensor(1.0))
    nonzero = m > 0
    assert (
        nonzero[1::2, 1::2].all() and nonzero.sum() == 16
    )  # rows ≡ 1, columns ≡ 3 ≡ 1 (mod 2)
    block = rvt.partition_block(8, 2, 4, mode="block")
    with attention.record(block) as maps:
        block(torch.randn(1, 8, 8, 8))
    m = rvt.attention_to_map(
        maps[0], (5, 2), mode="block", size=4, height=8, width=8
    )
    assert (
        (m[4:, :4] > 0).all()
        and m[4:, :4].sum().isclose(torch.tensor(1.0))
        and m.sum().isclose(torch.tensor(1.0))
    )


def test_convlstm_matches_lstm_cell_per_position():
    torch.manual_seed(0)
    cell = rvt.ConvLSTM1x1(4)
    ref = torch.nn.LSTMCell(4, 4)
    W = cell.to_gates.weight  # rows i, f, o, g; columns [x; h]
    order = torch.cat(
        [torch.arange(0, 8), torch.arange(12, 16), torch.arange(8, 12)]
    )  # torch: i, f, g, o
    with torch.no_grad():
        ref.weight_ih.copy_(W[order, :4])
        ref.weight_hh.copy_(W[order, 4:])
        ref.bias_ih.copy_(cell.to_gates.bias[order])
        ref.bias_hh.zero_()
    x, h, c = (
        torch.randn(3, 2, 2, 4),
        torch.randn(3, 2, 2, 4),
        torch.randn(3, 2, 2, 4),
    )
    h1, c1 = cell(x, (h, c))
    h2, c2 = ref(x.reshape(-1, 4), (h.reshape(-1, 4), c.reshape(-1, 4)))
    torch.testing.assert_close(h1.reshape(-1, 4), h2)
    torch.testing.assert_close(c1.reshape(-1, 4), c2)


def test_state_is_passed_in_and_returned():
    torch.manual_seed(0)
    model = rvt.rvt_tiny(
        image_size=16,
        dims=(8, 8),
        strides=(2, 2),
        heads=(2, 2),
        block=4,
        grid=2,
    ).eval()
    a, b = torch.randn(2, 2, 16, 16), torch.randn(2, 2, 16, 16)
    with torch.no_grad():
        fresh, _ = model.step(b, model.initial_state())
        _, after_a = model.step(a)  # None: zero states
        remembered, _ = model.step(
            b, after_a
        )  # same frame, but the states remember a
        again, _ = model.step(b, None)
    assert model.initial_state() == [None, None]
    assert len(after_a) == 2 and all(h.shape == c.shape for h, c in after_a)
    assert after_a[0][0].shape == (2, 8, 8, 8) and after_a[1][0].shape == (
        2,
        4,
        4,
        8,
    )  # (B, H_i, W_i, C_i)
    assert not torch.allclose(fresh, remembered, atol=1e-4)
    torch.testing.assert_close(fresh, again)
    with torch.no_grad():
        clip_logits = model(torch.stack([a, b], 1))
    torch.testing.assert_close(clip_logits, remembered)
    with pytest.raises(ValueError, match="one entry per stage"):
        model.step(a, [None])


def test_stepping_a_clip_frame_by_frame_equals_forward():
    torch.manual_seed(0)
    model = rvt.rvt_tiny(
        image_size=16,
        dims=(8, 8),
        strides=(2, 2),
        heads=(2, 2),
        block=4,
        grid=2,
    ).eval()
    clip = torch.randn(3, 5, 2, 16, 16)
    with torch.no_grad():
        states = model.initial_state()
        per_frame = []
        for t in range(clip.shape[1]):
            logits, states = model.step(clip[:, t], states)
            per_frame.append(logits)
        for t in range(
            1, clip.shape[1] + 1
        ):  # forward on every prefix = the streamed prediction after frame t
            torch.testing.assert_close(model(clip[:, :t]), per_frame[t - 1])


def test_the_module_holds_no_hidden_state():
    """Nothing but parameters and buffers on the module: .to() moves everything, state_dict holds everything."""
    torch.manual_seed(0)
    model = rvt.rvt_tiny(
        image_size=16,
        dims=(8, 8),
        strides=(2, 2),
        heads=(2, 2),
        block=4,
        grid=2,
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tensors_before = {
        k: v
        for k, v in vars(model).items()
        if isinstance(v, (torch.Tensor, list, tuple))
    }
    with torch.no_grad():
        model(torch.randn(2, 3, 2, 16, 16))
        _, states = model.step(torch.randn(2, 2, 16, 16))
    assert {
        k: v
        for k, v in vars(model).items()
        if isinstance(v, (torch.Tensor, list, tuple))
    } == tensors_before
    assert not hasattr(model, "states")
    for (
        module
    ) in model.modules():  # no tensor attribute outside parameters and buffers
        assert not [
            k for k, v in vars(module).items() if isinstance(v, torch.Tensor)
        ], type(module).__name__
    after = model.state_dict()
    assert after.keys() == before.keys() and all(
        torch.equal(after[k], before[k]) for k in before
    )
    moved = model.to(torch.float64)
    assert all(p.dtype == torch.float64 for p in moved.parameters())
    logits, _ = moved.step(
        torch.randn(1, 2, 16, 16, dtype=torch.float64)
    )  # no float32 state left behind
    assert logits.dtype == torch.float64


def test_without_lstm_the_output_ignores_the_past():
    model = rvt.rvt_tiny(
        image_size=16, dims=(8, 8), strides=(2, 2), block=4, grid=2, lstm=False
    ).eval()
    a, b = torch.randn(1, 2, 16, 16), torch.randn(1, 2, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(
            model(torch.stack([a, b], 1)), model(b[:, None])
        )


def test_config_and_input_errors():
    with pytest.raises(ValueError, match="one entry per stage"):
        rvt.RVTConfig(dims=(8,), strides=(2, 2), heads=(2, 2))
    with pytest.raises(ValueError, match="multiple of the block"):
        rvt.RVTConfig(image_size=24, strides=(4, 2), block=4)
    model = rvt.rvt_tiny()
    with pytest.raises(ValueError, match="clip"):
        model(torch.randn(2, 3, 1, 32, 32))


def test_frame_window_stacks_the_last_k_frames_oldest_first():
    clip = torch.arange(2 * 3 * 2 * 4 * 4, dtype=torch.float32).view(
        2, 3, 2, 4, 4
    )  # (B, F, C, H, W)
    two = rvt.frame_window(clip, 2)
    assert two.shape == (2, 4, 4, 4)
    torch.testing.assert_close(two[:, :2], clip[:, 1])  # frame F-2 first
    torch.testing.assert_close(two[:, 2:], clip[:, 2])  # the last frame last
    torch.testing.assert_close(rvt.frame_window(clip, 1), clip[:, -1])
    five = rvt.frame_window(
        clip, 5
    )  # longer than the clip: zeros before its start
    assert five.shape == (2, 10, 4, 4)
    assert (five[:, :4] == 0).all()
    torch.testing.assert_close(five[:, 4:], clip.flatten(1, 2))
    with pytest.raises(ValueError, match="at least 1"):
        rvt.frame_window(clip, 0)


def test_window_model_reads_the_window_as_one_frame():
    model = rvt.rvt_tiny(in_channels=6, lstm=False)
    clip = torch.rand(2, 4, 2, 32, 32)
    logits = model(
        rvt.frame_window(clip, 3).unsqueeze(1)
    )  # a one-frame clip of 3·2 channels
    assert logits.shape == (2, 4)
