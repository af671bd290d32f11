"""Tests for seqlib.detr: shapes, the query set, recorded attention, post-processing, training through fit."""

import pytest
import torch

from seqlib import attention
from seqlib.attention import MultiHeadAttention
from seqlib.detr import (
    DETR,
    DETRConfig,
    attention_maps,
    detr_tiny,
    postprocess,
    predict,
    random_batches,
    train_step,
)
from seqlib.layers import Block
from seqlib.matcher import detr_loss
from seqlib.positional import sinusoidal_encoding_2d
from seqlib.train import fit


def _tiny(**kw):
    torch.manual_seed(0)
    return detr_tiny(
        3, channels=(8, 16), dim=32, heads=2, ff_dim=64, num_queries=5, **kw
    ).eval()


def test_shapes_boxes_in_unit_square_and_aux_outputs():
    model = _tiny(dec_layers=3)
    x = torch.rand(2, 1, 24, 32)
    with attention.record(model) as maps:
        out = model(x)
    assert set(out) == {"logits", "boxes", "aux"}
    assert out["logits"].shape == (2, 5, 4) and out["boxes"].shape == (2, 5, 4)
    assert bool(((out["boxes"] > 0) & (out["boxes"] < 1)).all())
    assert len(out["aux"]) == 2 and all(
        a["logits"].shape == (2, 5, 4) for a in out["aux"]
    )
    assert model.feature_size(24, 32) == model.encode(x)[1] == (6, 8)
    assert model.feature_size(48) == (12, 12)
    cross = attention_maps(maps)["cross"]
    assert len(cross) == 3
    w = cross[-1]
    assert w.shape == (2, 2, 5, 48)  # (B, h, Q, N = H'W')
    assert torch.allclose(w.sum(-1), torch.ones(2, 2, 5), atol=1e-5)


def test_recorder_names_one_map_per_layer_in_order():
    model = _tiny(enc_layers=2, dec_layers=3)
    with attention.record(model) as maps:
        model(torch.rand(2, 1, 16, 16))
    assert maps.names == (
        [f"encoder.blocks.{i}.mixers.attn" for i in range(2)]
        + [
            f"decoder.blocks.{i}.mixers.{m}"
            for i in range(3)
            for m in ("self_attn", "cross_attn")
        ]
    )
    kinds = attention_maps(maps)
    assert [w.shape for w in kinds["queries"]] == [
        (2, 2, 5, 5)
    ] * 3  # the queries among themselves: a set
    assert [w.shape for w in kinds["cross"]] == [(2, 2, 5, 16)] * 3


def test_attention_weights_do_not_change_the_output():
    model = _tiny()
    x = torch.rand(2, 1, 16, 16)
    a = model(x)
    with attention.record(model):
        b = model(x)
    assert torch.allclose(
        a["logits"], b["logits"], atol=1e-5
    ) and torch.allclose(a["boxes"], b["boxes"], atol=1e-5)


def test_encoder_attention_one_map_per_cell_and_layer_equals_the_explicit_computation():
    model = _tiny(enc_layers=3)
    x = torch.rand(2, 1, 24, 32)
    with attention.record(model) as maps:
        memory, grid = model.encode(x)
    weights = attention_maps(maps)["encoder"]
    assert len(weights) == 3 and grid == (6, 8)
    w = weights[-1]
    assert w.shape == (2, 2, 48, 48)  # (B, h, N, N), N = H'W' = 6 * 8
    assert torch.allclose(w.sum(-1), torch.ones(2, 2, 48), atol=1e-5)
    plain, _ = model.encode(x)
    assert torch.allclose(memory, plain, atol=1e-5)
    # Layer 0's map by hand: the block's input is the projected features plus the 2D code.
    with torch.no_grad():
        features = model.input_proj(model.backbone(x))  # (B, D, H', W')
        tokens = features.flatten(2).transpose(1, 2) + sinusoidal_encoding_2d(
            6, 8, 32, normalize=True
        ).view(1, 48, 32)
        block = model.encoder.blocks[0]
        y = block.norms[0](tokens)
        mha = block.mixers["attn"]
        q = mha.to_q(y).view(2, 48, 2, 16).transpose(1, 2)  # (B, h, N, d)
        k = mha.to_k(y).view(2, 48, 2, 16).transpose(1, 2)
        by_hand = torch.softmax(
            q @ k.transpose(-1, -2) / 16**0.5, -1
        )  # (B, h, N, N)
    torch.testing.assert_close(weights[0], by_hand, rtol=1e-5, atol=1e-6)


def test_aux_outputs_are_the_heads_on_each_decoder_layer():
    model = _tiny(dec_layers=3)
    x = torch.rand(2, 1, 16, 16)
    out = model(x)
    with torch.no_grad():
        layers = model.decode(model.encode(x)[0])
    assert len(layers) == 3
    for o, head in zip(
        layers, out["aux"] + [{"logits": out["logits"], "boxes": out["boxes"]}]
    ):
        assert torch.allclose(head["logits"], model.class_head(o), atol=1e-6)
        assert torch.allclose(head["boxes"], model.box_head(o), atol=1e-6)


def test_object_queries_are_a_set():
    """No positions among the queries: permuting them permutes the predictions and nothing else."""
    model = _tiny()
    x = torch.rand(2, 1, 16, 16)
    before = model(x)
    perm = torch.tensor([3, 0, 4, 1, 2])
    with torch.no_grad():
        model.queries.weight.copy_(model.queries.weight[perm])
    after = model(x)
    assert torch.allclose(
        after["logits"], before["logits"][:, perm], atol=1e-5
    )
    assert torch.allclose(after["boxes"], before["boxes"][:, perm], atol=1e-5)


def test_reuses_the_book_attention_and_the_one_block():
    model = _tiny()
    assert all(
        isinstance(b, Block)
        for b in [*model.encoder.blocks, *model.decoder.blocks]
    )
    assert isinstance(
        model.decoder.blocks[0].mixers["cross_attn"], MultiHeadAttention
    )
    assert isinstance(
        model.encoder.blocks[0].mixers["attn"], MultiHeadAttention
    )
    assert "aux" not in detr_tiny(3, aux_loss=False)(torch.rand(1, 1, 16, 16))


def test_postprocess_drops_no_object_and_returns_pixel_corners():
    logits = torch.log(
        torch.tensor([[[0.1, 0.6, 0.1, 0.2], [0.05, 0.05, 0.1, 0.8]]])
    )  # 3 classes + no object
    boxes = torch.tensor([[[0.5, 0.5, 0.5, 0.25], [0.25, 0.25, 0.1, 0.1]]])
    (dets,) = postprocess({"logits": logits, "boxes": boxes}, image_size=64)
    assert dets["labels"].tolist() == [1, 2]
    assert dets["scores"].tolist() == pytest.approx([0.6, 0.1])
    assert dets["boxes"][0].tolist() == pytest.approx([16.0, 24.0, 48.0, 40.0])


def _squares():
    images = torch.zeros(4, 1, 16, 16)
    targets = []
    for b in range(
        4
    ):  # one bright square per image, its class = its quadrant row
        y, x = 2 + 6 * (b // 2), 2 + 6 * (b % 2)
        images[b, 0, y : y + 6, x : x + 6] = 1.0
        targets.append(
            {
                "labels": torch.tensor([b // 2]),
                "boxes": torch.tensor(
                    [[(x + 3) / 16, (y + 3) / 16, 6 / 16, 6 / 16]]
                ),
            }
        )
    return images, targets


def test_training_through_fit_fits_a_small_batch():
    torch.manual_seed(0)
    model = detr_tiny(
        3, channels=(8, 16), dim=32, heads=2, ff_dim=64, num_queries=4
    )
    images, targets = _squares()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    history = fit(
        model,
        lambda: [(images, targets)],
        train_step,
        epochs=41,
        optimizer=opt,
        grad_clip=0.1,
        device=torch.device("cpu"),
    )
    assert history.last("loss") < 0.5 * history["loss"][0]
    assert all(0 < s < 1 for s in history["match_seconds"]) and {
        "ce",
        "l1",
        "giou",
    } <= set(history.records[0])
    dets = predict(model, images)
    assert len(dets) == 4 and dets[0]["boxes"].shape == (4, 4)


def test_fit_with_train_step_equals_the_hand_written_loop():
    """fit(grad_clip=0.1) + train_step + random_batches is the old loop of chapter 8, bit for bit."""
    images, targets = _squares()
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(
            detr_tiny(
                3,
                channels=(8, 16),
                dim=32,
                heads=2,
                ff_dim=64,
                num_queries=4,
                dropout=0.1,
            )
        )
    ours, ref = models
    torch.manual_seed(1)  # the same dropout draws
    fit(
        ours,
        random_batches(images, targets, batch_size=2, seed=5),
        train_step,
        epochs=2,
        steps_per_epoch=3,
        optimizer=torch.optim.AdamW(
            ours.parameters(), lr=1e-3, weight_decay=1e-4
        ),
        grad_clip=0.1,
        device=torch.device("cpu"),
        evaluate=lambda m: {"n": len(predict(m, images))},
    )
    opt = torch.optim.AdamW(ref.parameters(), lr=1e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(5)
    torch.manual_seed(1)
    for _ in range(6):
        batch = torch.randint(0, 4, (2,), generator=g)
        ref.train()
        loss = detr_loss(ref(images[batch]), [targets[i] for i in batch])[
            "loss"
        ]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.1)
        opt.step()
    for a, b in zip(ours.parameters(), ref.parameters()):
        assert torch.equal(a, b)


def test_bad_input_raises_clear_error():
    with pytest.raises(ValueError, match="images"):
        _tiny()(torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="heads must divide"):
        DETR(DETRConfig(3, dim=30, heads=4))
