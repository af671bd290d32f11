"""ViViT: tokenisations, the four variants, their costs, order (in)variance and 2D→3D inflation."""

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from seqlib import attention, layers, vit, vivit


def test_report_arithmetic_28_cubed_volume_gives_27_tokens_of_width_128():
    assert (
        vivit.tubelet_grid(28, 8) == (28 - 8) // 8 + 1 == 3
    )  # the last 4 voxels are dropped
    assert (
        vivit.tubelet_grid(28, 8, 4) == 6
        and vivit.tubelet_grid(28, 8, 8, padding=2) == 4
    )
    embed = vivit.TubeletEmbedding(
        frames=28, image_size=28, tubelet=(8, 8), in_channels=1, dim=128
    )
    tokens = embed(torch.rand(2, 28, 1, 28, 28))
    assert tokens.shape == (
        2,
        3,
        9,
        128,
    )  # (B, n_t, n_s, D): 3 × 3×3 = 27 tokens of width 128
    model = vivit.vivit_organmnist3d()
    assert (
        model.nt * model.ns,
        model.config.dim,
        model.config.num_classes,
    ) == (27, 128, 11)
    assert model(torch.rand(2, 28, 1, 28, 28)).shape == (2, 11)
    with pytest.raises(ValueError, match="kernel"):
        vivit.tubelet_grid(4, 8)


def test_tubelet_embedding_equals_flattened_tubelets_times_the_kernel():
    torch.manual_seed(0)
    embed = vivit.TubeletEmbedding(
        frames=4, image_size=6, tubelet=(2, 3), in_channels=2, dim=5
    )
    video = torch.randn(3, 4, 2, 6, 6)
    # independent path: cut the tubelets by hand, flatten in the kernel's (c, t, y, x) order, multiply
    cubes = rearrange(
        video,
        "b (nt t) c (nh p) (nw q) -> b nt (nh nw) (c t p q)",
        t=2,
        p=3,
        q=3,
    )
    expected = (
        cubes @ embed.proj.weight.reshape(5, -1).T + embed.proj.bias
    )  # (B, n_t, n_s, D)
    torch.testing.assert_close(embed(video), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="expected shape"):
        embed(torch.randn(3, 5, 2, 6, 6))


def test_frame_sampling_is_the_vit_embedding_per_frame_and_a_tubelet_of_one_frame():
    torch.manual_seed(0)
    frames = vivit.FrameEmbedding(
        image_size=8, patch_size=4, in_channels=1, dim=6
    )
    video = torch.randn(2, 5, 1, 8, 8)
    out = frames(video)
    assert out.shape == (2, 5, 4, 6)
    for f in range(5):
        torch.testing.assert_close(out[:, f], frames.patch(video[:, f]))
    tube = vivit.TubeletEmbedding.inflate(frames.patch, frames=5, t=1)
    torch.testing.assert_close(tube(video), out, atol=1e-5, rtol=1e-5)
    assert torch.equal(
        vivit.uniform_frame_indices(28, 8),
        torch.tensor([0, 4, 8, 12, 15, 19, 23, 27]),
    )


def test_uniform_frame_indices_span_the_clip_with_near_equal_gaps():
    idx = vivit.uniform_frame_indices(
        32, 8
    )  # the chapter's choice of 8 frames out of 32
    assert idx.tolist() == [0, 4, 9, 13, 18, 22, 27, 31]
    assert set(idx.diff().tolist()) <= {4, 5}  # gaps of about 31 / 7 ≈ 4.4
    assert torch.equal(
        vivit.uniform_frame_indices(8, 8), torch.arange(8)
    )  # a full budget keeps every frame
    assert vivit.uniform_frame_indices(8, 1).tolist() == [0]
    with pytest.raises(ValueError, match="num_frames"):
        vivit.uniform_frame_indices(4, 5)


def test_averaged_inflation_reproduces_the_2d_embedding_on_a_static_video():
    torch.manual_seed(0)
    patch = layers.ConvPatchEmbedding(
        image_size=8, patch_size=4, in_channels=1, dim=6
    )
    image = torch.randn(2, 1, 8, 8)
    static = image[:, None].expand(
        2, 4, 1, 8, 8
    )  # (B, F, C, H, W): the same frame four times
    tube = vivit.TubeletEmbedding.inflate(
        patch, frames=4, t=2, method="average"
    )
    assert tube.proj.weight.shape == (6, 1, 2, 4, 4)
    for nt in range(2):
        torch.testing.assert_close(
            tube(static)[:, nt], patch(image), atol=1e-5, rtol=1e-5
        )


def test_central_frame_inflation_sees_only_the_middle_frame_of_each_tubelet():
    torch.manual_seed(0)
    patch = layers.ConvPatchEmbedding(
        image_size=8, patch_size=4, in_channels=1, dim=6
    )
    video = torch.randn(2, 6, 1, 8, 8)
    tube = vivit.TubeletEmbedding.inflate(
        patch, frames=6, t=3, method="central"
    )
    out = tube(
        video
    )  # tubelets are frames {0, 1, 2} and {3, 4, 5}: centres 1 and 4
    torch.testing.assert_close(
        out[:, 0], patch(video[:, 1]), atol=1e-5, rtol=1e-5
    )
    torch.testing.assert_close(
        out[:, 1], patch(video[:, 4]), atol=1e-5, rtol=1e-5
    )
    with pytest.raises(ValueError, match="method"):
        vivit.inflate_weight(patch.proj.weight, 2, method="middle")


def test_factorised_dot_product_equals_multihead_attention_with_per_head_masks():
    torch.manual_seed(0)
    B, nt, ns, D, h = 2, 3, 4, 8, 4
    fdp = vivit.FactorisedDotProductAttention(D, h).eval()
    x = torch.randn(B, nt, ns, D)
    t_of = torch.arange(nt * ns) // ns  # frame of each flattened token
    s_of = (
        torch.arange(nt * ns) % ns
    )  # spatial position of each flattened token
    same_t, same_s = (
        t_of[:, None] == t_of[None],
        s_of[:, None] == s_of[None],
    )  # (N, N)
    mask = torch.stack([same_t] * (h // 2) + [same_s] * (h // 2))[None].expand(
        B, h, nt * ns, nt * ns
    )
    mha = (
        fdp.attn
    )  # the same weights, run as one dense masked attention over all N tokens
    dense = mha(rearrange(x, "b t s d -> b (t s) d"), attn_mask=mask)
    torch.testing.assert_close(
        fdp(x),
        rearrange(dense, "b (t s) d -> b t s d", t=nt),
        atol=1e-5,
        rtol=1e-5,
    )
    with (
        attention.record() as maps
    ):  # no model: each entry is named after its class
        out = fdp(x)
    torch.testing.assert_close(out, fdp(x), atol=1e-5, rtol=1e-5)
    assert maps.names == [
        "FactorisedDotProductAttention:space",
        "FactorisedDotProductAttention:time",
    ]
    w_s, w_t = maps
    assert w_s.shape == (B, h // 2, nt, ns, ns) and w_t.shape == (
        B,
        h // 2,
        ns,
        nt,
        nt,
    )
    with pytest.raises(ValueError, match="even number of heads"):
        vivit.FactorisedDotProductAttention(D, 3)


def test_factorised_attention_only_mixes_tokens_in_the_same_frame_or_place():
    torch.manual_seed(0)
    fdp = vivit.FactorisedDotProductAttention(8, 2).eval()
    x = torch.randn(1, 3, 4, 8)
    y = x.clone()
    y[0, 0, 0] += 1.0  # perturb the token at frame 0, place 0
    changed = (fdp(x) - fdp(y)).abs().amax(-1)[0] > 1e-6  # (n_t, n_s)
    reach = torch.zeros(3, 4, dtype=torch.bool)
    reach[0, :] = True  # same frame
    reach[:, 0] = True  # same place
    assert torch.equal(changed, reach)


@pytest.mark.parametrize("variant", vivit.VARIANTS)
def test_without_temporal_positions_frame_order_is_invisible(variant):
    torch.manual_seed(0)
    kw = dict(
        frames=4,
        image_size=8,
        patch_size=4,
        dim=16,
        depth=1,
        heads=2,
        variant=variant,
    )
    video = torch.randn(3, 4, 1, 8, 8)
    shuffled = video[:, torch.tensor([2, 0, 3, 1])]
    blind = vivit.vivit_tiny(temporal_position=False, **kw).eval()
    torch.testing.assert_close(
        blind(shuffled), blind(video), atol=1e-5, rtol=1e-5
    )
    torch.testing.assert_close(
        blind(video.flip(1)), blind(video), atol=1e-5, rtol=1e-5
    )
    aware = vivit.vivit_tiny(temporal_position=True, **kw).eval()
    with torch.no_grad():
        aware.pos[
            "time"
        ].normal_()  # make the time codes large enough to matter
    assert not torch.allclose(aware(video.flip(1)), aware(video), atol=1e-4)


RECORDED = {  # what attention.record names, in call order, for a 2-block model (model 2: 1 temporal block)
    "joint": ["encoder.blocks.0.mixers.attn", "encoder.blocks.1.mixers.attn"],
    "factorised_encoder": [
        "encoder.blocks.0.mixers.attn",
        "encoder.blocks.1.mixers.attn",
        "temporal_encoder.blocks.0.mixers.attn",
    ],
    "factorised_self_attention": [
        "blocks.0.mixers.space.attn",
        "blocks.0.mixers.time.attn",
        "blocks.1.mixers.space.attn",
        "blocks.1.mixers.time.attn",
    ],
    "factorised_dot_product": [
        "blocks.0.mixers.attn:space",
        "blocks.0.mixers.attn:time",
        "blocks.1.mixers.attn:space",
        "blocks.1.mixers.attn:time",
    ],
}
SHAPES = {  # B = 2, h = 4, n_t = 4, n_s = 16
    "joint": [(2, 4, 64, 64)] * 2,
    "factorised_encoder": [(8, 4, 16, 16)] * 2 + [(2, 4, 4, 4)],
    "factorised_self_attention": [(8, 4, 16, 16), (32, 4, 4, 4)] * 2,
    "factorised_dot_product": [(2, 2, 4, 16, 16), (2, 2, 16, 4, 4)] * 2,
}


@pytest.mark.parametrize("variant", vivit.VARIANTS)
def test_variants_shapes_attention_and_errors(variant):
    torch.manual_seed(0)
    model = vivit.vivit_tiny(
        variant=variant, embedding="tubelet", tubelet_frames=2, num_classes=3
    ).eval()
    video = torch.rand(2, 8, 1, 28, 28)
    with attention.record(model) as maps:
        logits = model(video)
    assert logits.shape == (2, 3)
    torch.testing.assert_close(logits, model(video), atol=1e-5, rtol=1e-5)
    assert maps.names == RECORDED[variant]
    assert [tuple(w.shape) for w in maps] == SHAPES[variant]
    for w in maps:
        torch.testing.assert_close(
            w.sum(-1), torch.ones(w.shape[:-1])
        )  # rows are distributions
    with pytest.raises(ValueError, match="expected shape"):
        model(torch.rand(2, 7, 1, 28, 28))


def test_bad_configs_raise():
    with pytest.raises(ValueError, match="variant"):
        vivit.vivit_tiny(variant="divided")
    with pytest.raises(ValueError, match="embedding"):
        vivit.vivit_tiny(embedding="voxel")


def test_attention_cost_counts_score_entries():
    c = vivit.ViViTConfig(
        frames=8,
        image_size=28,
        patch_size=7,
        heads=4,
        depth=2,
        temporal_depth=1,
    )
    nt, ns = vivit.token_grid(c)
    assert (nt, ns) == (8, 16)
    costs = {
        v: vivit.attention_cost(
            vivit.ViViTConfig(**{**c.__dict__, "variant": v})
        )
        for v in vivit.VARIANTS
    }
    assert costs["joint"] == 4 * 2 * 128**2 == 131072
    assert (
        costs["factorised_encoder"] == 4 * (2 * 8 * 16**2 + 1 * 8**2) == 16640
    )
    assert (
        costs["factorised_self_attention"]
        == 4 * 2 * (8 * 16**2 + 16 * 8**2)
        == 24576
    )
    assert (
        costs["factorised_dot_product"]
        == costs["factorised_self_attention"] // 2
    )
    # the count matches the weights a model returns
    for v in vivit.VARIANTS:
        model = vivit.vivit_tiny(variant=v).eval()
        with attention.record(model) as maps:
            model(torch.rand(1, 8, 1, 28, 28))
        assert sum(w.numel() for w in maps) == costs[v], v


def test_the_factorised_blocks_are_the_books_block_with_space_and_time_mixers():
    fsa = vivit.FactorisedSelfAttentionBlock(8, 2, 16)
    assert isinstance(fsa, layers.Block) and list(fsa.mixers) == [
        "space",
        "time",
    ]
    assert [m.axis for m in fsa.mixers.values()] == ["space", "time"]
    fdp = vivit.FactorisedDotProductBlock(8, 2, 16)
    assert isinstance(fdp, layers.Block) and isinstance(
        fdp.mixer, vivit.FactorisedDotProductAttention
    )
    x = torch.randn(2, 3, 4, 8)  # (B, n_t, n_s, D)
    for axis, shape in (("space", (6, 4, 8)), ("time", (8, 3, 8))):
        groups = vivit.group_tokens(x, axis)
        assert groups.shape == shape
        assert torch.equal(vivit.ungroup_tokens(groups, axis, 2), x)
    assert torch.equal(
        vivit.group_tokens(x, "space")[4], x[1, 1]
    )  # clip 1, frame 1: its n_s tokens
    assert torch.equal(
        vivit.group_tokens(x, "time")[5], x[1, :, 1]
    )  # clip 1, place 1: its n_t tokens
    with pytest.raises(ValueError, match="axis"):
        vivit.group_tokens(x, "depth")


@pytest.mark.parametrize("variant", vivit.VARIANTS)
def test_weight_decay_skips_the_position_tables_as_the_old_substring_rule(
    variant,
):
    model = vivit.vivit_tiny(variant=variant)
    old = {
        n
        for n, p in model.named_parameters()
        if not (
            p.dim() > 1
            and not any(k in n for k in ("pos.", "token", "bias_table"))
        )
    }
    assert layers.no_weight_decay_names(model) == old
    assert {"pos.space", "pos.time"} <= old


def test_factorised_dot_product_has_the_parameters_of_the_joint_model():
    count = layers.count_parameters
    assert count(vivit.vivit_tiny(variant="factorised_dot_product")) == count(
        vivit.vivit_tiny(variant="joint")
    )
    assert count(
        vivit.vivit_tiny(variant="factorised_self_attention")
    ) > count(vivit.vivit_tiny(variant="joint"))


def test_init_from_vit_copies_embedding_positions_and_blocks():
    torch.manual_seed(0)
    image_model = vit.vit_tiny(dim=32, depth=2, heads=4, mlp_ratio=2.0)
    model = vivit.vivit_tiny(embedding="tubelet", tubelet_frames=2)
    copied = vivit.init_from_vit(model, image_model, method="average")
    assert copied == ["embedding", "pos.space", "encoder"]
    torch.testing.assert_close(model.pos["space"], image_model.pos.table[1:])
    image = torch.rand(2, 1, 28, 28)
    static = image[:, None].expand(2, 8, 1, 28, 28)
    torch.testing.assert_close(
        model.embed(static)[:, 0],
        image_model.patch_embed(image),
        atol=1e-5,
        rtol=1e-5,
    )
    for a, b in zip(
        model.encoder.parameters(), image_model.encoder.parameters()
    ):
        assert torch.equal(a, b)
    fsa = vivit.vivit_tiny(variant="factorised_self_attention")
    assert vivit.init_from_vit(fsa, image_model) == ["embedding", "pos.space"]
    with pytest.raises(ValueError, match="share width"):
        vivit.init_from_vit(model, vit.vit_tiny(dim=64))


def test_a_training_step_reduces_the_loss():
    torch.manual_seed(0)
    model = vivit.vivit_tiny(
        variant="factorised_dot_product",
        embedding="tubelet",
        frames=4,
        image_size=14,
        patch_size=7,
        dim=16,
        heads=2,
        depth=1,
    )
    video, labels = torch.rand(8, 4, 1, 14, 14), torch.arange(8) % 2
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        loss = F.cross_entropy(model(video), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]  # it starts to memorise 8 random clips
