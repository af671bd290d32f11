"""Tests for seqlib.tlb (the PyTorch twin): shapes, properties, bad input, and parity with Keras."""

import pytest
import torch

from seqlib import attention, layers, profiles, tlb
from seqlib.tlb import TLBConfig
from seqlib.tlb_parity import copy_keras_weights

# 8×8 images, 2×2 patches: N = 16 tokens in T = 4 chunks of K = 4; L = 3 latents.
TINY = TLBConfig(
    image_size=8,
    patch_size=2,
    in_channels=3,
    dim=8,
    chunk_size=4,
    num_latents=3,
    num_layers=3,
    r=2,
    num_heads=2,
    num_classes=5,
)
PARITY_ATOL = 1e-5  # float32; measured differences are about 1e-6


def tiny(**overrides) -> tlb.TemporalLatentBottleneck:
    torch.manual_seed(0)
    return tlb.TemporalLatentBottleneck(
        TLBConfig(**{**TINY.__dict__, **overrides})
    ).eval()


def images(n=4, seed=0):
    return torch.rand(
        n, 3, 8, 8, generator=torch.Generator().manual_seed(seed)
    )


def logits_and_maps(model, x):
    """Logits and the slow-stream weights (B, T, h, L, K), recorded."""
    with attention.record(model) as maps:
        logits = model(x)
    return logits, tlb.slow_stream_maps(maps)


def test_shapes_and_weight_rows():
    logits, weights = logits_and_maps(tiny(), images())
    assert logits.shape == (4, 5)
    assert weights.shape == (4, 4, 2, 3, 4)  # (B, T, h, L, K)
    torch.testing.assert_close(weights.sum(-1), torch.ones(4, 4, 2, 3))
    assert tiny().patch_embedding(images()).shape == (
        4,
        4,
        4,
        8,
    )  # (B, T, K, D)
    assert tiny(num_classes=3)(images()).shape == (4, 3)


def test_cross_attention_every_r_layers():
    assert tlb.cross_layers(4, 2) == [0, 2]
    assert tlb.cross_layers(3, 1) == [0, 1, 2]
    assert len(tiny().cell.cross_blocks) == 2


def test_recurrence_is_causal_over_chunks():
    model = tiny()
    x = images()
    y = x.clone()
    y[..., 6:, :] = (
        1 - y[..., 6:, :]
    )  # the last row of patches is the last chunk
    _, wx = logits_and_maps(model, x)
    _, wy = logits_and_maps(model, y)
    torch.testing.assert_close(wx[:, :3], wy[:, :3])
    assert (wx[:, 3] - wy[:, 3]).abs().max() > 1e-4


def test_identical_start_latents_stay_identical():
    """Why the start latents are learned and distinct: from equal latents every update is equal."""
    cell = tiny().cell
    slow = torch.zeros(2, 3, 8)  # (B, L, D), all latents the same
    fast = torch.randn(2, 4, 8)
    for _ in range(3):
        fast_out, slow = cell(fast, slow)
    torch.testing.assert_close(slow[:, 0], slow[:, 2])
    _, slow = cell(fast, cell.initial_state(2))
    assert (slow[:, 0] - slow[:, 2]).abs().max() > 1e-3


def test_gradient_reaches_every_parameter():
    model = tiny().train()
    model(images()).sum().backward()
    missing = [
        n
        for n, p in model.named_parameters()
        if p.grad is None or p.grad.abs().sum() == 0
    ]
    assert not missing, missing


def test_layers_are_blocks_with_normed_kv_mixers():
    model = tiny(num_layers=4, r=2)
    for block in [
        *model.cell.self_blocks,
        *model.cell.cross_blocks,
        model.cell.bottleneck,
    ]:
        assert isinstance(block, layers.Block) and isinstance(
            block.mixer, tlb.NormedKVAttention
        )
        assert isinstance(block.mlp, layers.FeedForward)
    assert (
        not model.cell.bottleneck.mixer.fast
    )  # the slow-stream update always forms its weights
    assert all(b.mixer.fast for b in model.cell.self_blocks)


def test_block_is_the_normed_attention_then_the_ffn():
    """block(q, key=s, value=s) = FFN(q + MHA(LN_q(q), LN_k(s), LN_v(s))), FFN(x) = x + W2 GELU(W1 LN(x))."""
    torch.manual_seed(0)
    block = tlb.attention_block(8, num_heads=2).eval()
    q, s = torch.randn(2, 3, 8), torch.randn(2, 5, 8) * 3 + 1
    mixer = block.mixer
    with torch.no_grad():
        x = q + attention.MultiHeadAttention.forward(
            mixer, block.norms[0](q), mixer.key_norm(s), mixer.value_norm(s)
        )
        expected = x + block.mlp(block.norms[1](x))
        torch.testing.assert_close(block(q, key=s, value=s), expected)


def test_recorder_names_and_bottleneck_maps():
    model = tiny()
    with torch.no_grad(), attention.record(model) as maps:
        model(images())
    bottleneck = [n for n in maps.names if "bottleneck" in n]
    assert bottleneck == ["cell.bottleneck.mixers.attn"] * 4  # one per chunk
    assert (
        "cell.self_blocks.0.mixers.attn" in maps.names
        and "cell.cross_blocks.1.mixers.attn" in maps.names
    )
    assert len(maps) == 4 * (3 + 2 + 1)  # per chunk: 3 self, 2 cross, 1 update
    with (
        torch.no_grad(),
        attention.record(model.cell) as cell_maps,
    ):  # the cell alone, one chunk
        model.cell(torch.randn(2, 4, 8), model.cell.initial_state(2))
    assert tlb.slow_stream_maps(cell_maps).shape == (2, 1, 2, 3, 4)


def test_recording_does_not_change_the_logits():
    model = tiny()
    x = images()
    with torch.no_grad():
        plain = model(x)
        recorded, _ = logits_and_maps(model, x)
    torch.testing.assert_close(recorded, plain, atol=1e-6, rtol=1e-5)


def test_heatmap_layout():
    weights = torch.zeros(1, 4, 2, 3, 4)  # (B, T, h, L, K)
    weights[0, 2, :, 1, 3] = 1.0  # latent 1 of chunk 2 looks only at token 3
    heat = tlb.slow_stream_heatmap(weights, grid=4)
    assert heat.shape == (1, 4, 4)
    assert (
        heat[0, 2, 3] == 1.0 and heat.sum() == 1.0
    )  # chunk 2 = patch row 2 (K = patches per row)


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="images"):
        tiny()(torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="chunk_size"):
        TLBConfig(image_size=8, patch_size=2, chunk_size=5)
    with pytest.raises(ValueError, match="num_heads"):
        TLBConfig(dim=10, num_heads=3)
    with pytest.raises(ValueError, match=r"r \(one cross"):
        TLBConfig(r=0)


# --- the two fast-stream layouts ------------------------------------------------------------------
def record_fast_stream(cell: tlb.TLBCell) -> list[tuple[str, int]]:
    """Run the cell on one chunk; return, in order, every fast-stream sub-layer call as (kind, id):
    ("self"/"cross", id of the attention mixer) and ("ffn", id of the FFN module)."""
    events = []
    if cell.layout == "keras-example":
        blocks = [
            b
            for m in cell.perceptual_module
            for b in (m.self_block, m.cross_block)
            if b is not None
        ]
    else:
        blocks = [*cell.self_blocks, *cell.cross_blocks]
    hooks = []
    for block in blocks:
        hooks.append(
            block.mixer.register_forward_hook(
                lambda m, args, kwargs, out: events.append(
                    ("self" if kwargs["key"].shape[1] == 4 else "cross", id(m))
                ),
                with_kwargs=True,
            )
        )
    for ffn in {id(b.mlp): b.mlp for b in blocks}.values():
        hooks.append(
            ffn.register_forward_hook(
                lambda m, args, out: events.append(("ffn", id(m)))
            )
        )
    with torch.no_grad():
        cell(
            torch.randn(2, 4, cell.bottleneck.dim), cell.initial_state(2)
        )  # a chunk (B, K=4, D), latents (B, L=3, D)
    for hook in hooks:
        hook.remove()
    return events


def test_fast_stream_calls_of_both_layouts():
    assert tlb.keras_example_modules(4, 2) == [
        "self_0",
        "cross_0",
        "self_1",
        "self_2",
        "cross_2",
        "self_3",
    ]
    separate = tlb.fast_stream_calls(4, 2)
    example = tlb.fast_stream_calls(4, 2, "keras-example")
    assert [k for k, _ in separate].count("self") == 4 and [
        k for k, _ in separate
    ].count("cross") == 2
    assert [k for k, _ in example].count("self") == 6 and [
        k for k, _ in example
    ].count("cross") == 3
    assert example == [
        ("self", "self_0"),
        ("cross", "self_0"),
        ("self", "cross_0"),
        ("self", "self_1"),
        ("cross", "self_1"),
        ("self", "self_2"),
        ("self", "cross_2"),
        ("cross", "cross_2"),
        ("self", "self_3"),
    ]
    with pytest.raises(ValueError, match="layout"):
        tlb.fast_stream_calls(4, 2, "paper")


@pytest.mark.parametrize(
    "layout, n_self, n_cross, n_ffn",
    [("separate", 4, 2, 6), ("keras-example", 6, 3, 6)],
)
def test_sublayers_per_chunk_are_counted_by_running_the_cell(
    layout, n_self, n_cross, n_ffn
):
    """ℓ = 4, r = 2: the Keras example's layout runs 6 self- and 3 cross-attention sub-layers per chunk."""
    cell = tiny(num_layers=4, r=2, layout=layout).cell
    events = record_fast_stream(cell)
    kinds = [kind for kind, _ in events]
    assert kinds.count("self") == n_self and kinds.count("cross") == n_cross
    assert (
        kinds.count("ffn") == n_self + n_cross
    )  # an FFN after every attention sub-layer
    assert (
        len({i for kind, i in events if kind == "ffn"}) == n_ffn
    )  # distinct FFN modules used
    assert [k for k, _ in tlb.fast_stream_calls(4, 2, layout)] == [
        k for k in kinds if k != "ffn"
    ]


def test_keras_example_layout_shares_one_ffn_between_self_and_cross_calls():
    cell = tiny(num_layers=4, r=2, layout="keras-example").cell
    assert len(cell.perceptual_module) == 6
    assert [m.cross_block is not None for m in cell.perceptual_module] == [
        True,
        False,
        True,
        False,
        True,
        False,
    ]
    for m in cell.perceptual_module:
        if (
            m.cross_block is not None
        ):  # one FFN, with its one layer norm; separate attention and query norm
            assert (
                m.cross_block.mlp is m.self_block.mlp
                and m.cross_block.norms[1] is m.self_block.norms[1]
            )
            assert (
                m.cross_block.norms[0] is not m.self_block.norms[0]
                and m.cross_block.mixer is not m.self_block.mixer
            )
    events = record_fast_stream(cell)
    owner = {
        id(m.self_block.mixer): j for j, m in enumerate(cell.perceptual_module)
    }
    owner |= {
        id(m.cross_block.mixer): j
        for j, m in enumerate(cell.perceptual_module)
        if m.cross_block is not None
    }
    ffn_of = {id(m.ffn): j for j, m in enumerate(cell.perceptual_module)}
    pairs = [
        (kind, owner[a], ffn_of[f])
        for (kind, a), (_, f) in zip(events[::2], events[1::2])
    ]
    assert all(
        module == ffn for _, module, ffn in pairs
    )  # every sub-layer ends with its own module's FFN
    assert [m for kind, m, _ in pairs if kind == "cross"] == [
        0,
        2,
        4,
    ]  # the same FFN as the self call before
    # parameters: 3 attention sub-layers more than "separate" (9 + 1 against 6 + 1), the same 6 + 1 FFNs
    separate = tiny(num_layers=4, r=2).cell
    b = separate.bottleneck
    attention_params = layers.count_parameters(
        b.mixer
    ) + layers.count_parameters(b.norms[0])  # MHA + 3 norms
    assert (
        layers.count_parameters(cell) - layers.count_parameters(separate)
        == 3 * attention_params
    )
    with pytest.raises(ValueError, match="no cross-attention"):
        cell.perceptual_module[1](
            torch.zeros(1, 4, 8),
            key=torch.zeros(1, 3, 8),
            value=torch.zeros(1, 3, 8),
            cross=True,
        )


def test_full_profile_sizes():
    """The Keras example's CIFAR-10 sizes, read from the chapter's full profile."""
    full = TLBConfig.from_sizes(profiles.sizes("ch11", "full"), num_classes=10)
    assert (
        full.num_patches == 144
        and full.num_chunks == 18
        and full.layout == "separate"
    )
    assert (
        0.35e6
        < layers.count_parameters(tlb.TemporalLatentBottleneck(full))
        < 0.37e6
    )
    example = tlb.TemporalLatentBottleneck(
        TLBConfig.from_sizes(
            profiles.sizes("ch11", "full"),
            num_classes=10,
            layout="keras-example",
        )
    )
    assert 0.40e6 < layers.count_parameters(example) < 0.42e6
    smoke = TLBConfig.from_sizes(profiles.sizes("ch11", "smoke"))
    assert (smoke.image_size, smoke.chunk_size, smoke.num_layers) == (28, 7, 2)
    assert tlb.TLBConfig().num_chunks == 7
    with pytest.raises(ValueError, match="layout"):
        TLBConfig(layout="interleaved")


# --- parity with the Keras version ---------------------------------------------------------------
def test_parity_with_keras_given_the_same_weights():
    """Same weights in both frameworks → the same logits and slow-stream weights (atol 1e-5)."""
    tk = pytest.importorskip("seqlib.tlb_keras")
    import keras
    import numpy as np

    keras.utils.set_random_seed(1)
    for config in (
        TINY,
        TLBConfig(
            **{**TINY.__dict__, "num_heads": 1, "r": 1, "num_layers": 2}
        ),
        TLBConfig(
            **{**TINY.__dict__, "num_layers": 4, "layout": "keras-example"}
        ),
        TLBConfig(**{**TINY.__dict__, "r": 1, "layout": "keras-example"}),
    ):
        k_model = tk.TemporalLatentBottleneck.from_tlb_config(config)
        x = np.random.default_rng(1).random(
            (3, 8, 8, 3), dtype=np.float32
        )  # (B, H, W, C)
        k_logits, k_weights = k_model(x, return_attention=True)
        t_model = copy_keras_weights(
            k_model, tlb.TemporalLatentBottleneck(config)
        ).eval()
        t_x = torch.from_numpy(x).permute(0, 3, 1, 2)
        with torch.no_grad():
            t_plain = t_model(t_x)  # the fused kernel in the fast stream
            t_logits, t_weights = logits_and_maps(
                t_model, t_x
            )  # every attention explicit
        assert (t_plain - k_logits.detach()).abs().max() < PARITY_ATOL
        assert (t_logits - k_logits.detach()).abs().max() < PARITY_ATOL
        assert (t_weights - k_weights.detach()).abs().max() < PARITY_ATOL
        assert layers.count_parameters(t_model) == k_model.count_params()


def test_copy_refuses_a_different_architecture():
    tk = pytest.importorskip("seqlib.tlb_keras")
    import numpy as np

    k_model = tk.TemporalLatentBottleneck.from_tlb_config(TINY)
    k_model(np.zeros((1, 8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError):
        copy_keras_weights(k_model, tiny(num_layers=2))
    with pytest.raises(ValueError, match="layout"):
        copy_keras_weights(k_model, tiny(layout="keras-example"))
