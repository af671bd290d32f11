import pytest
import torch
from torch import nn

from seqlib import attention, layers


class Scale(nn.Module):
    """A toy mixer that records the context it was given."""

    def __init__(self, factor):
        super().__init__()
        self.factor, self.seen = factor, []

    def forward(self, x, **context):
        self.seen.append(context)
        return self.factor * x


def test_block_is_pre_norm_residual_in_order():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8)
    a, b = Scale(2.0), Scale(3.0)
    mlp = layers.FeedForward(8, 16)
    block = layers.Block(8, {"a": a, "b": b}, mlp).eval()
    ln = nn.LayerNorm(8)  # fresh norms are the identity affine
    y = x + 2.0 * ln(x)
    y = y + 3.0 * ln(y)
    y = y + mlp(ln(y))
    assert torch.allclose(block(x, mask="m"), y, atol=1e-6)
    assert a.seen == [{"mask": "m"}] and b.seen == [
        {"mask": "m"}
    ]  # the context reaches every mixer
    assert list(block.mixers) == ["a", "b"] and block.mixer is a
    # parameters(): mixers, mlp, then the norms (gradient clipping sums in this order)
    names = [n for n, _ in block.named_parameters()]
    assert names[0].startswith("mlp.") and names[-1] == "norms.2.bias"


def test_post_norm_and_single_mixer_without_mlp():
    x = torch.randn(2, 3, 4)
    block = layers.Block(4, Scale(1.0), None, norm_first=False)
    assert list(block.mixers) == ["attn"] and len(block.norms) == 1
    assert torch.allclose(block(x), nn.LayerNorm(4)(2 * x), atol=1e-6)


def test_block_rejects_the_wrong_width_and_no_mixer():
    with pytest.raises(
        ValueError,
        match=r"expected tokens of width D=8 on the last axis, got shape \(2, 3, 4\)",
    ):
        layers.Block(8, Scale(1.0))(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="at least one mixer"):
        layers.Block(8, {})


def test_patch_embeddings_agree_and_invert():
    torch.manual_seed(0)
    conv = layers.ConvPatchEmbedding(
        image_size=8, patch_size=4, in_channels=3, dim=5
    )
    unfold = layers.UnfoldPatchEmbedding.from_conv(conv)
    images = torch.randn(2, 3, 8, 8)
    assert torch.allclose(conv(images), unfold(images), atol=1e-5)
    assert torch.equal(
        layers.unpatchify(layers.patchify(images, 4), 4, 8, 8), images
    )
    with pytest.raises(ValueError, match="multiple of the patch size P=3"):
        layers.patchify(images, 3)


def test_recorder_names_layers_and_stays_out_of_the_way():
    torch.manual_seed(0)
    model = nn.Sequential(
        layers.Block(
            8, attention.MultiHeadAttention(8, 2), layers.FeedForward(8, 16)
        ),
        layers.Block(8, attention.MultiHeadAttention(8, 2)),
    )
    x = torch.randn(3, 5, 8)
    plain = model(x)
    with attention.record(model) as maps:
        recorded = model(x)
    assert torch.allclose(
        plain, recorded, atol=1e-5
    )  # the explicit path gives the same output
    assert maps.names == ["0.mixers.attn", "1.mixers.attn"] and len(maps) == 2
    assert maps[0].shape == (3, 2, 5, 5) and torch.allclose(
        maps[0].sum(-1), torch.ones(3, 2, 5)
    )
    assert [w.shape for w in maps.select("1.*")] == [(3, 2, 5, 5)]
    with pytest.raises(
        KeyError,
        match=r"no recorded attention matches 'decoder\*'; recorded: \['0.mixers.attn'",
    ):
        maps.select("decoder*")
    assert maps.select("decoder*", required=False) == []
    model(x)
    assert (
        len(maps) == 2 and not attention.recording()
    )  # nothing is recorded after the block
    with attention.record() as unnamed:
        model[0](x)
    assert unnamed.names == ["MultiHeadAttention"]


def test_recorded_weights_are_the_attention_the_layer_applied():
    torch.manual_seed(0)
    mha = attention.MultiHeadAttention(8, 2).eval()
    q, kv = torch.randn(2, 3, 8), torch.randn(2, 6, 8)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    with attention.record(mha) as maps:
        out = mha(q, kv, key_padding_mask=mask)
    w = maps[0]  # (B, h, T, S)
    assert maps.names == ["MultiHeadAttention"] and torch.all(
        w[1, :, :, 4:] == 0
    )
    v = mha.to_v(kv).view(2, 6, 2, 4).transpose(1, 2)  # (B, h, S, d)
    heads = (w @ v).transpose(1, 2).reshape(2, 3, 8)
    assert torch.allclose(mha.proj(heads), out, atol=1e-6)
