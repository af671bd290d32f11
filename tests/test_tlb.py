"""Tests for seqlib.tlb (the PyTorch twin): shapes, properties, bad input, and parity with Keras."""

import pytest
import torch

from seqlib import tlb
from seqlib.tlb import TLBConfig

# 8×8 images, 2×2 patches: N = 16 tokens in T = 4 chunks of K = 4; L = 3 latents.
TINY = TLBConfig(image_size=8, patch_size=2, in_channels=3, dim=8, chunk_size=4, num_latents=3,
                 num_layers=3, r=2, num_heads=2, num_classes=5)
PARITY_ATOL = 1e-5  # float32; measured differences are about 1e-6


def tiny(**overrides) -> tlb.TemporalLatentBottleneck:
    torch.manual_seed(0)
    return tlb.TemporalLatentBottleneck(TLBConfig(**{**TINY.__dict__, **overrides})).eval()


def images(n=4, seed=0):
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_shapes_and_weight_rows():
    logits, weights = tiny()(images(), return_attention=True)
    assert logits.shape == (4, 5)
    assert weights.shape == (4, 4, 2, 3, 4)  # (B, T, h, L, K)
    torch.testing.assert_close(weights.sum(-1), torch.ones(4, 4, 2, 3))
    assert tiny().patch_embedding(images()).shape == (4, 4, 4, 8)  # (B, T, K, D)
    assert tiny(num_classes=3)(images()).shape == (4, 3)


def test_cross_attention_every_r_layers():
    assert tlb.cross_layers(4, 2) == [0, 2]
    assert tlb.cross_layers(3, 1) == [0, 1, 2]
    assert len(tiny().cell.cross_blocks) == 2


def test_recurrence_is_causal_over_chunks():
    model = tiny()
    x = images()
    y = x.clone()
    y[..., 6:, :] = 1 - y[..., 6:, :]  # the last row of patches is the last chunk
    _, wx = model(x, return_attention=True)
    _, wy = model(y, return_attention=True)
    torch.testing.assert_close(wx[:, :3], wy[:, :3])
    assert (wx[:, 3] - wy[:, 3]).abs().max() > 1e-4


def test_identical_start_latents_stay_identical():
    """Why the start latents are learned and distinct: from equal latents every update is equal."""
    cell = tiny().cell
    slow = torch.zeros(2, 3, 8)  # (B, L, D), all latents the same
    fast = torch.randn(2, 4, 8)
    for _ in range(3):
        fast_out, slow, _ = cell(fast, slow)
    torch.testing.assert_close(slow[:, 0], slow[:, 2])
    _, slow, _ = cell(fast, cell.initial_state(2))
    assert (slow[:, 0] - slow[:, 2]).abs().max() > 1e-3


def test_gradient_reaches_every_parameter():
    model = tiny().train()
    model(images()).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, missing


def test_heatmap_layout():
    weights = torch.zeros(1, 4, 2, 3, 4)  # (B, T, h, L, K)
    weights[0, 2, :, 1, 3] = 1.0  # latent 1 of chunk 2 looks only at token 3
    heat = tlb.slow_stream_heatmap(weights, grid=4)
    assert heat.shape == (1, 4, 4)
    assert heat[0, 2, 3] == 1.0 and heat.sum() == 1.0  # chunk 2 = patch row 2 (K = patches per row)


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
    ("self"/"cross", id of the attention module) and ("ffn", id of the FFN module)."""
    events = []
    fast_modules = cell.perceptual_module if cell.layout == "keras-example" else [*cell.self_blocks,
                                                                                  *cell.cross_blocks]
    hooks = []
    for module in fast_modules:
        for attention in (module.attention, getattr(module, "cross_attention", None)):
            if attention is not None:
                hooks.append(attention.register_forward_hook(
                    lambda m, args, out: events.append(("self" if args[1] is args[0] else "cross", id(m)))))
        hooks.append(module.ffn.register_forward_hook(lambda m, args, out: events.append(("ffn", id(m)))))
    with torch.no_grad():
        cell(torch.randn(2, 4, cell.bottleneck.ffn.norm.normalized_shape[0]),
             cell.initial_state(2))  # one chunk (B, K, D) and the slow stream (B, L, D)
    for hook in hooks:
        hook.remove()
    return events


def test_fast_stream_calls_of_both_layouts():
    assert tlb.keras_example_modules(4, 2) == ["self_0", "cross_0", "self_1", "self_2", "cross_2", "self_3"]
    separate = tlb.fast_stream_calls(4, 2)
    example = tlb.fast_stream_calls(4, 2, "keras-example")
    assert [k for k, _ in separate].count("self") == 4 and [k for k, _ in separate].count("cross") == 2
    assert [k for k, _ in example].count("self") == 6 and [k for k, _ in example].count("cross") == 3
    assert example == [("self", "self_0"), ("cross", "self_0"), ("self", "cross_0"), ("self", "self_1"),
                       ("cross", "self_1"), ("self", "self_2"), ("self", "cross_2"), ("cross", "cross_2"),
                       ("self", "self_3")]
    with pytest.raises(ValueError, match="layout"):
        tlb.fast_stream_calls(4, 2, "paper")


@pytest.mark.parametrize("layout, n_self, n_cross, n_ffn", [("separate", 4, 2, 6), ("keras-example", 6, 3, 6)])
def test_sublayers_per_chunk_are_counted_by_running_the_cell(layout, n_self, n_cross, n_ffn):
    """ℓ = 4, r = 2: the Keras example's layout runs 6 self- and 3 cross-attention sub-layers per chunk."""
    cell = tiny(num_layers=4, r=2, layout=layout).cell
    events = record_fast_stream(cell)
    kinds = [kind for kind, _ in events]
    assert kinds.count("self") == n_self and kinds.count("cross") == n_cross
    assert kinds.count("ffn") == n_self + n_cross  # an FFN after every attention sub-layer
    assert len({i for kind, i in events if kind == "ffn"}) == n_ffn  # distinct FFN modules used
    assert [k for k, _ in tlb.fast_stream_calls(4, 2, layout)] == [k for k in kinds if k != "ffn"]


def test_keras_example_layout_shares_one_ffn_between_self_and_cross_calls():
    cell = tiny(num_layers=4, r=2, layout="keras-example").cell
    assert len(cell.perceptual_module) == 6
    assert [m.cross_attention is not None for m in cell.perceptual_module] == [True, False, True, False, True,
                                                                              False]
    events = record_fast_stream(cell)
    owner = {id(m.attention): j for j, m in enumerate(cell.perceptual_module)}
    owner |= {id(m.cross_attention): j for j, m in enumerate(cell.perceptual_module)
              if m.cross_attention is not None}
    ffn_of = {id(m.ffn): j for j, m in enumerate(cell.perceptual_module)}
    pairs = [(kind, owner[a], ffn_of[f]) for (kind, a), (_, f) in zip(events[::2], events[1::2])]
    assert all(module == ffn for _, module, ffn in pairs)  # every sub-layer ends with its own module's FFN
    assert [m for kind, m, _ in pairs if kind == "cross"] == [0, 2, 4]  # the same FFN as the self call before
    # parameters: 3 attention sub-layers more than "separate" (9 + 1 against 6 + 1), the same 6 + 1 FFNs
    separate = tiny(num_layers=4, r=2).cell
    attention = tlb.count_parameters(separate.bottleneck.attention)
    assert tlb.count_parameters(cell) - tlb.count_parameters(separate) == 3 * attention
    with pytest.raises(ValueError, match="no cross-attention"):
        cell.perceptual_module[1](torch.zeros(1, 4, 8), torch.zeros(1, 3, 8), torch.zeros(1, 3, 8), cross=True)


def test_presets():
    assert tlb.tlb_cifar().config.num_patches == 144 and tlb.tlb_cifar().config.num_chunks == 18
    assert tlb.TLBConfig().num_chunks == 7
    assert tlb.tlb_cifar().config.layout == "separate"
    assert 0.35e6 < tlb.count_parameters(tlb.tlb_cifar()) < 0.37e6
    assert 0.40e6 < tlb.count_parameters(tlb.tlb_cifar(layout="keras-example")) < 0.42e6
    with pytest.raises(ValueError, match="layout"):
        TLBConfig(layout="interleaved")


# --- parity with the Keras version ---------------------------------------------------------------
def test_parity_with_keras_given_the_same_weights():
    """Same weights in both frameworks → the same logits and slow-stream weights (atol 1e-5)."""
    tk = pytest.importorskip("seqlib.tlb_keras")
    import keras
    import numpy as np

    keras.utils.set_random_seed(1)
    for config in (TINY, TLBConfig(**{**TINY.__dict__, "num_heads": 1, "r": 1, "num_layers": 2}),
                   TLBConfig(**{**TINY.__dict__, "num_layers": 4, "layout": "keras-example"}),
                   TLBConfig(**{**TINY.__dict__, "r": 1, "layout": "keras-example"})):
        k_model = tk.TemporalLatentBottleneck.from_tlb_config(config)
        x = np.random.default_rng(1).random((3, 8, 8, 3), dtype=np.float32)  # (B, H, W, C)
        k_logits, k_weights = k_model(x, return_attention=True)
        t_model = tlb.copy_keras_weights(k_model, tlb.TemporalLatentBottleneck(config)).eval()
        t_logits, t_weights = t_model(torch.from_numpy(x).permute(0, 3, 1, 2), return_attention=True)
        assert (t_logits - k_logits.detach()).abs().max() < PARITY_ATOL
        assert (t_weights - k_weights.detach()).abs().max() < PARITY_ATOL
        assert tlb.count_parameters(t_model) == k_model.count_params()


def test_copy_refuses_a_different_architecture():
    tk = pytest.importorskip("seqlib.tlb_keras")
    import numpy as np

    k_model = tk.TemporalLatentBottleneck.from_tlb_config(TINY)
    k_model(np.zeros((1, 8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError):
        tlb.copy_keras_weights(k_model, tiny(num_layers=2))
    with pytest.raises(ValueError, match="layout"):
        tlb.copy_keras_weights(k_model, tiny(layout="keras-example"))
