"""Tests for seqlib.boxes: conversions round-trip, IoU and GIoU on hand-computed cases."""

import pytest
import torch

from seqlib.boxes import (
    box_area,
    box_cxcywh_to_xyxy,
    box_iou,
    box_xyxy_to_cxcywh,
    generalized_box_iou,
)


def _random_xyxy(n, seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g)
    wh = torch.rand(n, 2, generator=g) * 0.5 + 0.01
    return torch.cat([xy, xy + wh], -1)


def test_conversions_round_trip_on_any_leading_shape():
    boxes = torch.rand(3, 5, 4, dtype=torch.float64)
    assert torch.allclose(box_xyxy_to_cxcywh(box_cxcywh_to_xyxy(boxes)), boxes)
    xyxy = _random_xyxy(7, 0).double()
    assert torch.allclose(box_cxcywh_to_xyxy(box_xyxy_to_cxcywh(xyxy)), xyxy)


def test_conversion_by_hand():
    assert box_cxcywh_to_xyxy(
        torch.tensor([0.5, 0.5, 0.2, 0.4])
    ).tolist() == pytest.approx([0.4, 0.3, 0.6, 0.7])
    assert box_xyxy_to_cxcywh(
        torch.tensor([[2.0, 4.0, 6.0, 10.0]])
    ).tolist() == [[4.0, 7.0, 4.0, 6.0]]


def test_scene_targets_are_the_normalised_pixel_boxes():
    """Chapter 8 trains on the scene generator's targets and scores mAP on its pixel boxes: they must agree."""
    from seqlib.data import SceneConfig, make_scenes

    items = torch.zeros(20, 1, 28, 28)
    items[:, :, 6:22, 8:20] = 1.0
    config = SceneConfig(
        canvas=48,
        max_objects=2,
        min_size=14,
        max_size=18,
        classes=tuple(range(10)),
        n_refs=1,
    )
    data = make_scenes(4, items, torch.arange(20) % 10, config=config, seed=0)
    for target, pixels in zip(data.detection_targets(), data.boxes):
        assert torch.allclose(target["boxes"], box_xyxy_to_cxcywh(pixels / 48))
        assert torch.allclose(
            box_cxcywh_to_xyxy(target["boxes"]) * 48, pixels, atol=1e-4
        )


def test_iou_and_giou_hand_cases():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor(
        [
            [1.0, 1.0, 3.0, 3.0],  # overlap 1, union 7, hull 9
            [0.0, 0.0, 2.0, 2.0],  # identical
            [3.0, 0.0, 5.0, 2.0],  # disjoint: union 8, hull 10
            [0.0, 0.0, 1.0, 1.0],
        ]
    )  # inside: iou 1/4, hull = a
    iou, union = box_iou(a, b)
    assert iou[0].tolist() == pytest.approx([1 / 7, 1.0, 0.0, 0.25])
    assert union[0].tolist() == pytest.approx([7.0, 4.0, 8.0, 4.0])
    giou = generalized_box_iou(a, b)
    assert giou[0].tolist() == pytest.approx(
        [1 / 7 - 2 / 9, 1.0, -2 / 10, 0.25]
    )
    assert box_area(b).tolist() == [4.0, 4.0, 4.0, 1.0]


def test_giou_tends_to_minus_one_far_apart_and_is_bounded():
    a = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    far = torch.tensor([[100.0, 100.0, 101.0, 101.0]])
    assert -1.0 <= float(generalized_box_iou(a, far)) < -0.99
    x, y = _random_xyxy(20, 1), _random_xyxy(30, 2)
    g, (iou, _) = generalized_box_iou(x, y), box_iou(x, y)
    assert (
        g.shape == (20, 30)
        and bool((g <= iou + 1e-6).all())
        and bool((g >= -1).all())
    )


def test_giou_is_symmetric_and_one_on_the_diagonal():
    x, y = _random_xyxy(9, 3), _random_xyxy(6, 4)
    assert torch.allclose(
        generalized_box_iou(x, y), generalized_box_iou(y, x).T
    )
    assert torch.allclose(generalized_box_iou(x, x).diagonal(), torch.ones(9))


def test_degenerate_boxes_give_numbers_not_nan():
    point = torch.tensor([[0.5, 0.5, 0.5, 0.5]])
    assert torch.isfinite(generalized_box_iou(point, point)).all()
    assert float(box_iou(point, point)[0]) == 0.0


def test_giou_gives_a_gradient_for_disjoint_boxes():
    a = torch.tensor([[0.0, 0.0, 1.0, 1.0]], requires_grad=True)
    b = torch.tensor([[2.0, 0.0, 3.0, 1.0]])
    generalized_box_iou(a, b).sum().backward()
    assert (
        a.grad[0, 2] > 0
    )  # growing x2 towards b increases GIoU, although IoU stays 0


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        box_cxcywh_to_xyxy(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="x2 >= x1"):
        box_iou(
            torch.tensor([[0.5, 0.5, 0.2, 0.2]]),
            torch.tensor([[0.0, 0.0, 1.0, 1.0]]),
        )
    with pytest.raises(ValueError, match="expected shape"):
        generalized_box_iou(torch.zeros(2, 3, 4), torch.zeros(2, 4))
