"""Tests for seqlib.detr: shapes, the query set, attention weights, post-processing, a training step."""

import pytest
import torch

from seqlib.attention import MultiHeadAttention
from seqlib.detr import DETR, DETRConfig, detr_tiny, postprocess, predict, train_step


def _tiny(**kw):
    torch.manual_seed(0)
    return detr_tiny(3, channels=(8, 16), dim=32, heads=2, ff_dim=64, num_queries=5, **kw).eval()


def test_shapes_boxes_in_unit_square_and_aux_outputs():
    model = _tiny(dec_layers=3)
    out = model(torch.rand(2, 1, 24, 32), return_attention=True)
    assert out["logits"].shape == (2, 5, 4) and out["boxes"].shape == (2, 5, 4)
    assert bool(((out["boxes"] > 0) & (out["boxes"] < 1)).all())
    assert len(out["aux"]) == 2 and all(a["logits"].shape == (2, 5, 4) for a in out["aux"])
    assert out["feature_size"] == (6, 8)
    assert len(out["cross_attention"]) == 3
    w = out["cross_attention"][-1]
    assert w.shape == (2, 2, 5, 48)  # (B, h, Q, N = H'W')
    assert torch.allclose(w.sum(-1), torch.ones(2, 2, 5), atol=1e-5)


def test_attention_weights_do_not_change_the_output():
    model = _tiny()
    x = torch.rand(2, 1, 16, 16)
    a, b = model(x), model(x, return_attention=True)
    assert torch.allclose(a["logits"], b["logits"], atol=1e-5) and torch.allclose(a["boxes"], b["boxes"], atol=1e-5)


def test_encoder_attention_one_map_per_cell_and_layer():
    model = _tiny(enc_layers=3)
    x = torch.rand(2, 1, 24, 32)
    out = model(x, return_attention=True)
    assert len(out["encoder_attention"]) == 3
    w = out["encoder_attention"][-1]
    assert w.shape == (2, 2, 48, 48)  # (B, h, N, N), N = H'W' = 6 * 8
    assert torch.allclose(w.sum(-1), torch.ones(2, 2, 48), atol=1e-5)
    memory, grid, weights = model.encode(x, return_attention=True)
    plain, grid_plain = model.encode(x)
    assert grid == grid_plain == (6, 8) and torch.allclose(memory, plain, atol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(weights, out["encoder_attention"]))


def test_aux_outputs_are_the_heads_on_each_decoder_layer():
    model = _tiny(dec_layers=3)
    x = torch.rand(2, 1, 16, 16)
    out = model(x)
    with torch.no_grad():
        layers, _ = model.decode(model.encode(x)[0])
    for o, head in zip(layers, out["aux"] + [{"logits": out["logits"], "boxes": out["boxes"]}]):
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
    assert torch.allclose(after["logits"], before["logits"][:, perm], atol=1e-5)
    assert torch.allclose(after["boxes"], before["boxes"][:, perm], atol=1e-5)


def test_reuses_the_book_attention_and_transformer_blocks():
    model = _tiny()
    assert isinstance(model.decoder.blocks[0].cross_attn, MultiHeadAttention)
    assert isinstance(model.encoder.blocks[0].attn, MultiHeadAttention)
    assert "aux" not in detr_tiny(3, aux_loss=False)(torch.rand(1, 1, 16, 16))


def test_postprocess_drops_no_object_and_returns_pixel_corners():
    logits = torch.log(torch.tensor([[[0.1, 0.6, 0.1, 0.2], [0.05, 0.05, 0.1, 0.8]]]))  # 3 classes + no object
    boxes = torch.tensor([[[0.5, 0.5, 0.5, 0.25], [0.25, 0.25, 0.1, 0.1]]])
    dets, = postprocess({"logits": logits, "boxes": boxes}, image_size=64)
    assert dets["labels"].tolist() == [1, 2]
    assert dets["scores"].tolist() == pytest.approx([0.6, 0.1])
    assert dets["boxes"][0].tolist() == pytest.approx([16.0, 24.0, 48.0, 40.0])


def test_training_steps_fit_a_small_batch():
    torch.manual_seed(0)
    model = detr_tiny(3, channels=(8, 16), dim=32, heads=2, ff_dim=64, num_queries=4)
    images = torch.zeros(4, 1, 16, 16)
    targets = []
    for b in range(4):  # one bright square per image, its class = its quadrant row
        y, x = 2 + 6 * (b // 2), 2 + 6 * (b % 2)
        images[b, 0, y:y + 6, x:x + 6] = 1.0
        targets.append({"labels": torch.tensor([b // 2]), "boxes": torch.tensor([[(x + 3) / 16, (y + 3) / 16,
                                                                                   6 / 16, 6 / 16]])})
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = train_step(model, opt, images, targets)
    for _ in range(40):
        last = train_step(model, opt, images, targets)
    assert last["loss"] < 0.5 * first["loss"]
    assert 0 < last["match_seconds"] < last["step_seconds"]
    dets = predict(model, images)
    assert len(dets) == 4 and dets[0]["boxes"].shape == (4, 4)


def test_bad_input_raises_clear_error():
    with pytest.raises(ValueError, match="images"):
        _tiny()(torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="heads must divide"):
        DETR(DETRConfig(3, dim=30, heads=4))
