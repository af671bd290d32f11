"""ViT: patches, the two forms of the patch embedding, tokens, rollout, the model."""

import pytest
import torch

from seqlib import attention, layers, train, vit
from seqlib.attention import MultiHeadAttention
from seqlib.layers import patchify, unpatchify


def test_patchify_orders_patches_and_pixels():
    img = torch.arange(2 * 4 * 4.0).reshape(1, 2, 4, 4)  # C=2, H=W=4
    patches = patchify(img, 2)
    assert patches.shape == (1, 4, 8)
    assert patches[0, 0].tolist() == [
        0,
        1,
        4,
        5,
        16,
        17,
        20,
        21,
    ]  # top-left patch, channel by channel
    assert patches[0, 1].tolist()[:4] == [
        2,
        3,
        6,
        7,
    ]  # then the patch to its right
    assert torch.equal(unpatchify(patches, 2, 4, 4), img)


def test_patchify_rejects_sizes_that_do_not_divide():
    with pytest.raises(ValueError, match="multiple of the patch size"):
        patchify(torch.zeros(1, 1, 28, 28), 5)
    with pytest.raises(ValueError, match="4 dims"):
        patchify(torch.zeros(28, 28), 4)


def test_conv_and_unfold_embeddings_are_equal_with_shared_weights():
    torch.manual_seed(0)
    conv = layers.ConvPatchEmbedding(
        image_size=12, patch_size=4, in_channels=3, dim=5
    )
    unfold = layers.UnfoldPatchEmbedding.from_conv(conv)
    x = torch.randn(2, 3, 12, 12)
    assert conv(x).shape == (2, 9, 5)
    torch.testing.assert_close(conv(x), unfold(x), atol=1e-5, rtol=1e-5)
    # and against unfold from torch itself (an independent patch extraction)
    cols = torch.nn.functional.unfold(x, kernel_size=4, stride=4).transpose(
        1, 2
    )  # (B, N, C·P·P)
    torch.testing.assert_close(cols, patchify(x, 4))
    with pytest.raises(ValueError, match="expected shape"):
        conv(torch.randn(2, 1, 12, 12))


def test_attention_rollout_properties():
    torch.manual_seed(0)
    maps = [torch.softmax(torch.randn(2, 3, 5, 5), -1) for _ in range(3)]
    rollout = vit.attention_rollout(maps)
    assert rollout.shape == (2, 5, 5)
    torch.testing.assert_close(
        rollout.sum(-1), torch.ones(2, 5)
    )  # still a distribution over inputs
    # by hand: ½(A+I) per layer, heads averaged, later layers on the left
    step = [0.5 * (m.mean(1) + torch.eye(5)) for m in maps]
    torch.testing.assert_close(rollout, step[2] @ step[1] @ step[0])
    identity = [torch.eye(5).expand(2, 3, 5, 5)] * 4
    torch.testing.assert_close(
        vit.attention_rollout(identity), torch.eye(5).expand(2, 5, 5)
    )
    torch.testing.assert_close(
        vit.attention_rollout(maps[:1], residual=False), maps[0].mean(1)
    )
    with pytest.raises(ValueError, match="at least one"):
        vit.attention_rollout([])


def test_position_similarity_is_cosine():
    pos = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    sim = vit.position_similarity(pos)
    torch.testing.assert_close(
        sim, torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    )


def test_vit_shapes_tokens_and_attention_maps():
    torch.manual_seed(0)
    model = vit.vit_tiny(patch_size=4, dim=16, depth=2, heads=2).eval()
    x = torch.rand(3, 1, 28, 28)
    z = model.embed(x)
    assert z.shape == (3, 50, 16) and model.grid == 7
    # Eq. 1 by hand: [z_cls, E x_1 … E x_N] + p
    tokens = torch.cat(
        [model.cls_token.expand(3, -1, -1), model.patch_embed(x)], 1
    )
    torch.testing.assert_close(z, tokens + model.pos.table[None])
    logits = model(x)
    assert logits.shape == (3, 10)
    assert all(
        isinstance(b.mixer, MultiHeadAttention) for b in model.encoder.blocks
    )  # the book's one attention
    assert all(
        isinstance(b, layers.Block) for b in model.encoder.blocks
    )  # chapter 5's block


def test_attention_maps_are_recorded_per_block_and_leave_the_output_unchanged():
    torch.manual_seed(0)
    model = vit.vit_tiny(patch_size=4, dim=16, depth=2, heads=2).eval()
    x = torch.rand(3, 1, 28, 28)
    with attention.record(model) as maps:
        logits = model(x)
    assert maps.names == [
        "encoder.blocks.0.mixers.attn",
        "encoder.blocks.1.mixers.attn",
    ]
    torch.testing.assert_close(
        logits, model(x), atol=1e-5, rtol=1e-5
    )  # explicit path vs fused kernel
    helper = vit.attention_maps(model, x)
    assert len(helper) == 2 and helper[0].shape == (3, 2, 50, 50)
    for a, b in zip(helper, maps):
        assert torch.equal(a, b)
    torch.testing.assert_close(
        helper[0].sum(-1), torch.ones(3, 2, 50)
    )  # rows are distributions
    # block 0's map by hand: softmax(q kᵀ / √d) of the first block's normed input
    block = model.encoder.blocks[0]
    y = block.norms[0](model.embed(x))
    q = block.mixer.to_q(y).view(3, 50, 2, 8).transpose(1, 2)
    k = block.mixer.to_k(y).view(3, 50, 2, 8).transpose(1, 2)
    torch.testing.assert_close(
        helper[0], torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, -1)
    )


def test_vit_without_positions_is_blind_to_patch_order():
    """With p = 0 the class token's output cannot depend on where the patches are."""
    torch.manual_seed(0)
    model = vit.vit_tiny(patch_size=4, dim=16, depth=2, heads=2).eval()
    with torch.no_grad():
        model.pos.table.zero_()
    x = torch.rand(2, 1, 28, 28)
    perm = torch.randperm(49)
    shuffled = unpatchify(
        patchify(x, 4)[:, perm], 4, 28, 28
    )  # same patches, other places
    torch.testing.assert_close(model(x), model(shuffled), atol=1e-5, rtol=1e-4)


def test_small_cnn_and_preset_sizes():
    cnn = layers.small_cnn(widths=(8, 16))
    assert cnn(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert layers.count_parameters(vit.vit_tiny()) == 139018
    full = vit.vit_tiny(
        image_size=32, patch_size=4, in_channels=3, dim=192, depth=1, heads=12
    )  # the full profile's
    assert full(torch.rand(1, 3, 32, 32)).shape == (1, 10)


def test_weight_decay_skips_what_the_old_substring_rule_skipped():
    """Class token, position table, biases and norms: the rule of the old ``vit.train_classifier``."""
    model = vit.vit_tiny(dim=16, depth=2, heads=2)
    old = {
        n
        for n, p in model.named_parameters()
        if not (
            p.dim() > 1
            and not any(k in n for k in ("pos.", "token", "bias_table"))
        )
    }
    assert layers.no_weight_decay_names(model) == old
    assert {
        "cls_token",
        "pos.table",
    } <= old and "patch_embed.proj.weight" not in old
    decay, rest = layers.param_groups(model, 0.05)
    assert len(decay["params"]) + len(rest["params"]) == len(
        list(model.parameters())
    )


def test_train_classifier_fits_a_few_images():
    torch.manual_seed(0)
    model = vit.vit_tiny(patch_size=7, dim=16, depth=1, heads=2, num_classes=2)
    y = torch.arange(16) % 2
    x = (
        torch.rand(16, 1, 28, 28) + y[:, None, None, None]
    )  # class 1 is brighter
    hist = train.train_classifier(
        model,
        x,
        y,
        epochs=15,
        batch_size=8,
        lr=3e-3,
        device=torch.device("cpu"),
    )
    assert hist.last("loss") < 0.8 * hist["loss"][0]
    with torch.no_grad():
        expected = (model(x).argmax(-1) == y).float().mean().item()
    assert train.accuracy(model, x, y, batch_size=5) == pytest.approx(expected)
