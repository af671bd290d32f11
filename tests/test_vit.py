"""ViT: patches, the two forms of the patch embedding, tokens, rollout, the model."""

import pytest
import torch

from seqlib import vit
from seqlib.attention import MultiHeadAttention


def test_patchify_orders_patches_and_pixels():
    img = torch.arange(2 * 4 * 4.0).reshape(1, 2, 4, 4)  # C=2, H=W=4
    patches = vit.patchify(img, 2)
    assert patches.shape == (1, 4, 8)
    assert patches[0, 0].tolist() == [0, 1, 4, 5, 16, 17, 20, 21]  # top-left patch, channel by channel
    assert patches[0, 1].tolist()[:4] == [2, 3, 6, 7]  # then the patch to its right
    assert torch.equal(vit.unpatchify(patches, 2, 4, 4), img)


def test_patchify_rejects_sizes_that_do_not_divide():
    with pytest.raises(ValueError, match="multiple of the patch size"):
        vit.patchify(torch.zeros(1, 1, 28, 28), 5)
    with pytest.raises(ValueError, match="4 dims"):
        vit.patchify(torch.zeros(28, 28), 4)


def test_conv_and_unfold_embeddings_are_equal_with_shared_weights():
    torch.manual_seed(0)
    conv = vit.PatchEmbedding(image_size=12, patch_size=4, in_channels=3, dim=5)
    unfold = vit.UnfoldPatchEmbedding.from_conv(conv)
    x = torch.randn(2, 3, 12, 12)
    assert conv(x).shape == (2, 9, 5)
    torch.testing.assert_close(conv(x), unfold(x), atol=1e-5, rtol=1e-5)
    # and against unfold from torch itself (an independent patch extraction)
    cols = torch.nn.functional.unfold(x, kernel_size=4, stride=4).transpose(1, 2)  # (B, N, C·P·P)
    torch.testing.assert_close(cols, vit.patchify(x, 4))
    with pytest.raises(ValueError, match="expected shape"):
        conv(torch.randn(2, 1, 12, 12))


def test_attention_rollout_properties():
    torch.manual_seed(0)
    maps = [torch.softmax(torch.randn(2, 3, 5, 5), -1) for _ in range(3)]
    rollout = vit.attention_rollout(maps)
    assert rollout.shape == (2, 5, 5)
    torch.testing.assert_close(rollout.sum(-1), torch.ones(2, 5))  # still a distribution over inputs
    # by hand: ½(A+I) per layer, heads averaged, later layers on the left
    step = [0.5 * (m.mean(1) + torch.eye(5)) for m in maps]
    torch.testing.assert_close(rollout, step[2] @ step[1] @ step[0])
    identity = [torch.eye(5).expand(2, 3, 5, 5)] * 4
    torch.testing.assert_close(vit.attention_rollout(identity), torch.eye(5).expand(2, 5, 5))
    torch.testing.assert_close(vit.attention_rollout(maps[:1], residual=False), maps[0].mean(1))
    with pytest.raises(ValueError, match="at least one"):
        vit.attention_rollout([])


def test_position_similarity_is_cosine():
    pos = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    sim = vit.position_similarity(pos)
    torch.testing.assert_close(sim, torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))


def test_vit_shapes_tokens_and_attention_maps():
    torch.manual_seed(0)
    model = vit.vit_tiny(patch_size=4, dim=16, depth=2, heads=2).eval()
    x = torch.rand(3, 1, 28, 28)
    z = model.embed(x)
    assert z.shape == (3, 50, 16) and model.grid == 7
    # Eq. 1 by hand: [z_cls, E x_1 … E x_N] + p
    tokens = torch.cat([model.cls_token.expand(3, -1, -1), model.patch_embed(x)], 1)
    torch.testing.assert_close(z, tokens + model.pos.table[None])
    logits, maps = model(x, return_attention=True)
    assert logits.shape == (3, 10) and len(maps) == 2 and maps[0].shape == (3, 2, 50, 50)
    torch.testing.assert_close(logits, model(x))
    assert all(isinstance(b.attn, MultiHeadAttention) for b in model.encoder.blocks)  # the book's one attention


def test_vit_without_positions_is_blind_to_patch_order():
    """With p = 0 the class token's output cannot depend on where the patches are."""
    torch.manual_seed(0)
    model = vit.vit_tiny(patch_size=4, dim=16, depth=2, heads=2).eval()
    with torch.no_grad():
        model.pos.table.zero_()
    x = torch.rand(2, 1, 28, 28)
    perm = torch.randperm(49)
    shuffled = vit.unpatchify(vit.patchify(x, 4)[:, perm], 4, 28, 28)  # same patches, other places
    torch.testing.assert_close(model(x), model(shuffled), atol=1e-5, rtol=1e-4)


def test_small_cnn_and_presets():
    cnn = vit.small_cnn(widths=(8, 16))
    assert cnn(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert vit.count_parameters(vit.vit_tiny()) == 139018
    assert vit.vit_cifar(depth=1)(torch.rand(1, 3, 32, 32)).shape == (1, 10)
