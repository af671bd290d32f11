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


def test_presets():
    assert tlb.tlb_cifar().config.num_patches == 144 and tlb.tlb_cifar().config.num_chunks == 18
    assert tlb.TLBConfig().num_chunks == 7


# --- parity with the Keras version ---------------------------------------------------------------
def test_parity_with_keras_given_the_same_weights():
    """Same weights in both frameworks → the same logits and slow-stream weights (atol 1e-5)."""
    tk = pytest.importorskip("seqlib.tlb_keras")
    import keras
    import numpy as np

    keras.utils.set_random_seed(1)
    for config in (TINY, TLBConfig(**{**TINY.__dict__, "num_heads": 1, "r": 1, "num_layers": 2})):
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
