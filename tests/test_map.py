"""Tests for the mAP section of seqlib.metrics: hand-computed cases, both interpolations."""

import numpy as np
import pytest
import torch

from seqlib.metrics import (
    average_precision,
    match_detections,
    mean_average_precision,
)


def _pred(boxes, scores, labels):
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).view(-1, 4),
        "scores": torch.tensor(scores, dtype=torch.float32),
        "labels": torch.tensor(labels, dtype=torch.long),
    }


def _gt(boxes, labels):
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).view(-1, 4),
        "labels": torch.tensor(labels),
    }


A, B, FAR = [0, 0, 10, 10], [20, 20, 30, 36], [40, 40, 50, 50]


@pytest.mark.parametrize("interpolation", ["coco", "voc"])
def test_perfect_detections_score_one(interpolation):
    targets = [_gt([A, B], [0, 1]), _gt([B], [2])]
    preds = [_pred([A, B], [0.9, 0.8], [0, 1]), _pred([B], [0.7], [2])]
    res = mean_average_precision(preds, targets, interpolation=interpolation)
    assert res.map == 1.0 and res.map50 == 1.0 and res.map75 == 1.0
    assert res.ap50_per_class == {0: 1.0, 1: 1.0, 2: 1.0}


def test_a_false_positive_ranked_first_halves_ap():
    targets = [_gt([A], [0])]
    first = [_pred([FAR, A], [0.9, 0.8], [0, 0])]
    last = [_pred([FAR, A], [0.5, 0.8], [0, 0])]
    for interp in ("coco", "voc"):  # precision 1/2 at every recall
        assert mean_average_precision(
            first, targets, interpolation=interp
        ).map50 == pytest.approx(0.5)
        assert mean_average_precision(
            last, targets, interpolation=interp
        ).map50 == pytest.approx(1.0)


def test_a_missed_object_caps_recall():
    targets = [_gt([A, B], [0, 0])]
    preds = [_pred([A], [0.9], [0])]
    # recall reaches 1/2 at precision 1: VOC area = 0.5; COCO: 51 of the 101 recall points (0..0.50) at 1
    assert mean_average_precision(
        preds, targets, interpolation="voc"
    ).map50 == pytest.approx(0.5)
    assert mean_average_precision(
        preds, targets, interpolation="coco"
    ).map50 == pytest.approx(51 / 101)


def test_duplicate_detections_are_false_positives():
    targets = [_gt([A], [0]), _gt([B], [0])]
    preds = [
        _pred(
            [A, [0, 0, 10, 9.5]], [0.9, 0.8], [0, 0]
        ),  # the object of image 0 twice
        _pred([B], [0.7], [0]),
    ]
    # ranks: TP, FP (duplicate), TP -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1; envelope 1, 2/3, 2/3
    assert mean_average_precision(
        preds, targets, interpolation="voc"
    ).map50 == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert mean_average_precision(
        preds, targets, interpolation="coco"
    ).map50 == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert match_detections(
        preds[0]["boxes"], preds[0]["scores"], targets[0]["boxes"], 0.5
    ).tolist() == [True, False]


def test_iou_thresholds_average_into_map():
    targets = [_gt([A], [0])]
    preds = [
        _pred([[0, 0, 10, 6.2]], [0.9], [0])
    ]  # IoU 0.62: a hit at t = 0.50, 0.55, 0.60 only
    res = mean_average_precision(preds, targets)
    assert (
        res.map50 == 1.0 and res.map75 == 0.0 and res.map == pytest.approx(0.3)
    )


def test_wrong_class_is_a_miss_and_classes_without_ground_truth_are_ignored():
    targets = [_gt([A, B], [0, 1])]
    preds = [
        _pred([A, B], [0.9, 0.8], [0, 3])
    ]  # B labelled 3, a class with no ground truth
    res = mean_average_precision(preds, targets)
    assert res.ap50_per_class == {0: 1.0, 1: 0.0} and res.map50 == 0.5


def test_greedy_matching_takes_the_unmatched_box_of_highest_iou():
    gts = torch.tensor([[0.0, 0, 10, 10], [2.0, 0, 12, 10]])
    preds = torch.tensor([[2.0, 0, 12, 10], [0.0, 0, 10, 10]])
    assert match_detections(
        preds, torch.tensor([0.9, 0.8]), gts, 0.5
    ).tolist() == [True, True]
    # a single detection between both boxes matches one of them, a second identical one the other
    mid = torch.tensor([[1.0, 0, 11, 10]] * 3)
    assert match_detections(
        mid, torch.tensor([0.9, 0.8, 0.7]), gts, 0.5
    ).tolist() == [True, True, False]


def test_average_precision_by_hand_and_order_independence():
    scores, tp = (
        [0.1, 0.9, 0.5, 0.7],
        [True, True, False, True],
    )  # ranked: T, T, F, T
    voc = average_precision(scores, tp, 4, interpolation="voc")
    assert voc == pytest.approx(0.25 + 0.25 + 0.25 * 0.75)
    perm = [2, 0, 3, 1]
    assert (
        average_precision(
            np.array(scores)[perm], np.array(tp)[perm], 4, interpolation="voc"
        )
        == voc
    )
    assert average_precision([], [], 3) == 0.0


def test_no_predictions_give_zero():
    res = mean_average_precision([_pred([], [], [])], [_gt([A], [0])])
    assert res.map == 0.0 and res.map50 == 0.0


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="coco"):
        average_precision([0.5], [True], 1, interpolation="11-point")
    with pytest.raises(ValueError, match="n_gt"):
        average_precision([0.5], [True], 0)
    with pytest.raises(ValueError, match="one prediction dict"):
        mean_average_precision([], [_gt([A], [0])])
    with pytest.raises(ValueError, match="ground-truth"):
        mean_average_precision([_pred([A], [0.9], [0])], [_gt([], [])])
