"""Tests for seqlib.matcher: Hungarian matching equals brute force, batches, empty images, the set loss."""

import itertools

import pytest
import torch

from seqlib.matcher import (
    SetLossWeights,
    detr_loss,
    hungarian_match,
    match,
    matching_cost,
    set_loss,
)

C = 5  # classes; index C is "no object"


def _targets(sizes, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for k in sizes:
        centre = torch.rand(k, 2, generator=g) * 0.6 + 0.2
        size = torch.rand(k, 2, generator=g) * 0.2 + 0.05
        out.append(
            {
                "labels": torch.randint(0, C, (k,), generator=g),
                "boxes": torch.cat([centre, size], -1),
            }
        )
    return out


def _predictions(B, Q, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, Q, C + 1, generator=g), torch.rand(
        B, Q, 4, generator=g
    ) * 0.5 + 0.1


def _brute_force(cost):
    """Lowest total cost over every injective map of the K targets to the Q queries."""
    Q, K = cost.shape
    best = min(
        itertools.permutations(range(Q), K),
        key=lambda qs: sum(float(cost[q, j]) for j, q in enumerate(qs)),
    )
    return sum(float(cost[q, j]) for j, q in enumerate(best)), best


@pytest.mark.parametrize("seed", range(5))
def test_matcher_equals_brute_force(seed):
    targets = _targets([3, 1, 4], seed)
    logits, boxes = _predictions(3, 5, seed)
    cost = matching_cost(logits, boxes, targets)
    matches = hungarian_match(cost, [3, 1, 4])
    start = 0
    for b, (q, j) in enumerate(matches):
        k = len(targets[b]["labels"])
        block = cost[b, :, start : start + k]
        start += k
        best, _ = _brute_force(block)
        assert (
            len(q) == k
            and sorted(j.tolist()) == list(range(k))
            and len(set(q.tolist())) == k
        )
        assert float(block[q, j].sum()) == pytest.approx(best, abs=1e-5)


def test_cost_terms_by_hand():
    logits = torch.log(
        torch.tensor([[[0.7, 0.1, 0.2]]])
    )  # 2 classes + no object
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2]]])
    target = [
        {
            "labels": torch.tensor([0]),
            "boxes": torch.tensor([[0.6, 0.5, 0.2, 0.2]]),
        }
    ]
    w = SetLossWeights(ce=1.0, l1=5.0, giou=2.0)
    # p = 0.7; L1 = 0.1; boxes [0.4,0.6]x[0.4,0.6] and [0.5,0.7]x[0.4,0.6]: IoU = 0.02/0.06, hull = union
    expected = -0.7 + 5 * 0.1 - 2 * (1 / 3)
    assert float(
        matching_cost(logits, boxes, target, weights=w)
    ) == pytest.approx(expected, abs=1e-5)


def test_batch_gives_the_same_matches_as_each_image_alone():
    targets = _targets([2, 0, 4, 1], 7)
    logits, boxes = _predictions(4, 6, 7)
    together = match(logits, boxes, targets)
    for b in range(4):
        ((q, j),) = match(
            logits[b : b + 1], boxes[b : b + 1], targets[b : b + 1]
        )
        assert torch.equal(q, together[b][0]) and torch.equal(
            j, together[b][1]
        )


def test_images_without_objects():
    logits, boxes = _predictions(2, 4, 0)
    empty = [
        {
            "labels": torch.zeros(0, dtype=torch.long),
            "boxes": torch.zeros(0, 4),
        }
        for _ in range(2)
    ]
    assert matching_cost(logits, boxes, empty).shape == (2, 4, 0)
    matches = match(logits, boxes, empty)
    assert all(len(q) == 0 and len(j) == 0 for q, j in matches)
    loss = set_loss(logits, boxes, empty, matches)
    assert (
        loss["l1"] == 0 and loss["giou"] == 0 and torch.isfinite(loss["total"])
    )
    # with no object anywhere, the only target is "no object" for every query
    expected_ce = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1), torch.full((8,), C)
    )
    assert float(loss["ce"]) == pytest.approx(float(expected_ce), rel=1e-5)


def test_perfect_prediction_has_zero_box_loss_and_small_class_loss():
    targets = _targets([2, 3], 1)
    Q = 4
    boxes = torch.full((2, Q, 4), 0.3)
    logits = torch.full((2, Q, C + 1), -10.0)
    logits[:, :, C] = 10.0
    for b, t in enumerate(targets):
        k = len(t["labels"])
        boxes[b, Q - k :] = t["boxes"]  # put the objects on the last queries
        logits[b, Q - k :, C] = -10.0
        logits[b, torch.arange(Q - k, Q), t["labels"]] = 10.0
    out = detr_loss({"logits": logits, "boxes": boxes}, targets)
    assert out["l1"] == pytest.approx(0.0, abs=1e-6) and out[
        "giou"
    ] == pytest.approx(0.0, abs=1e-6)
    assert out["ce"] < 1e-6
    assert [q.tolist() for q, _ in out["matches"]] == [[2, 3], [1, 2, 3]]


def test_a_duplicate_query_is_pushed_to_no_object():
    """Two queries predict the same single object: only one is matched, the other's target is 'no object'."""
    target = [
        {
            "labels": torch.tensor([2]),
            "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]]),
        }
    ]
    logits = torch.full((1, 2, C + 1), -5.0)
    logits[0, :, 2] = 5.0  # both say "class 2"
    boxes = target[0]["boxes"].expand(1, 2, 4).clone()
    logits = logits.requires_grad_()
    out = detr_loss({"logits": logits, "boxes": boxes}, target)
    out["loss"].backward()
    unmatched = 1 - int(out["matches"][0][0])
    assert (
        logits.grad[0, unmatched, C] < 0
    )  # gradient descent raises its no-object score
    assert logits.grad[0, 1 - unmatched, C] > 0


def test_no_object_class_is_down_weighted():
    logits, boxes = _predictions(1, 3, 2)
    targets = _targets([1], 2)
    m = match(logits, boxes, targets)
    light = set_loss(
        logits, boxes, targets, m, weights=SetLossWeights(eos_coef=0.1)
    )["ce"]
    full = set_loss(
        logits, boxes, targets, m, weights=SetLossWeights(eos_coef=1.0)
    )["ce"]
    q = int(m[0][0])
    per_query = torch.nn.functional.cross_entropy(
        logits[0],
        torch.tensor([C, C, C]).index_put_(
            (torch.tensor([q]),), targets[0]["labels"]
        ),
        reduction="none",
    )
    w = torch.full((3,), 0.1)
    w[q] = 1.0
    assert float(light) == pytest.approx(
        float((w * per_query).sum() / w.sum()), rel=1e-5
    )
    assert float(full) == pytest.approx(float(per_query.mean()), rel=1e-5)


def test_auxiliary_losses_add_one_set_loss_per_layer():
    targets = _targets([2, 1], 3)
    layers = [
        dict(zip(("logits", "boxes"), _predictions(2, 4, s))) for s in range(3)
    ]
    out = detr_loss({**layers[-1], "aux": layers[:-1]}, targets)
    expected = sum(
        float(
            set_loss(
                layer["logits"],
                layer["boxes"],
                targets,
                match(layer["logits"], layer["boxes"], targets),
            )["total"]
        )
        for layer in layers
    )
    assert float(out["loss"]) == pytest.approx(expected, rel=1e-5)
    assert out["match_seconds"] > 0


def test_bad_inputs_raise_clear_errors():
    logits, boxes = _predictions(2, 3, 0)
    with pytest.raises(ValueError, match="one dict per image"):
        matching_cost(logits, boxes, _targets([1], 0))
    bad = _targets([1, 1], 0)
    bad[1]["labels"] = torch.tensor([C])  # the no-object index is not a class
    with pytest.raises(ValueError, match="no object"):
        matching_cost(logits, boxes, bad)
    with pytest.raises(ValueError, match="boxes"):
        matching_cost(logits, boxes[:, :, :3], _targets([1, 1], 0))
    with pytest.raises(ValueError, match="Q=3"):
        hungarian_match(torch.zeros(1, 3, 4), [4])
