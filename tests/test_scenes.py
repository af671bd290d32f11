"""Tests of the generated scene dataset (seqlib.data.scenes): geometry, captions, determinism.

The item pool is small and synthetic (filled squares of known size per class), so
the tests run in well under a second and need no dataset on disk.
"""

import random

import pytest
import torch

from seqlib.boxes import box_cxcywh_to_xyxy
from seqlib.data.scenes import (
    NOUNS,
    SceneConfig,
    caption,
    make_scenes,
    normalised_cxcywh,
    parse_caption,
    relation_accuracy,
    relations,
)

CFG = SceneConfig(canvas=48, min_size=14, max_size=20, n_refs=4)


@pytest.fixture(scope="module")
def pool():
    """Two 28x28 items per class: a bright rectangle with a margin, so the ink box is known."""
    items = torch.zeros(20, 1, 28, 28)
    items[:, :, 4:24, 6:22] = 0.9
    return items, torch.arange(20) % 10


@pytest.fixture(scope="module")
def scenes(pool):
    return make_scenes(60, *pool, config=CFG, seed=3)


def test_shapes_counts_and_distinct_classes(scenes):
    assert (
        scenes.images.shape == (60, 1, 48, 48)
        and scenes.images.dtype == torch.float32
    )
    assert 0 <= float(scenes.images.min()) and float(scenes.images.max()) <= 1
    counts = {len(lab) for lab in scenes.labels}
    assert counts == {1, 2, 3, 4}
    for lab, box in zip(scenes.labels, scenes.boxes):
        assert box.shape == (len(lab), 4) and len(set(lab.tolist())) == len(
            lab
        )


def test_boxes_inside_canvas_tight_and_disjoint(scenes):
    for i in range(len(scenes)):
        s = scenes[i]
        x1, y1, x2, y2 = s.boxes.unbind(-1)
        assert bool(
            (
                (x1 >= 0)
                & (y1 >= 0)
                & (x2 <= 48)
                & (y2 <= 48)
                & (x2 > x1)
                & (y2 > y1)
            ).all()
        )
        for b in (
            s.boxes.int().tolist()
        ):  # the ink touches every side of its box ...
            patch = s.image[0, b[1] : b[3], b[0] : b[2]]
            assert patch[0].max() > 0.15 and patch[-1].max() > 0.15
            assert patch[:, 0].max() > 0.15 and patch[:, -1].max() > 0.15
        ink = s.image[0] > 0.15  # ... and no ink lies outside every box
        covered = torch.zeros_like(ink)
        for b in s.boxes.int().tolist():
            covered[b[1] : b[3], b[0] : b[2]] = True
        assert not bool((ink & ~covered).any())
        for a in range(
            len(s.boxes)
        ):  # pairwise disjoint: some relation always holds
            for b in range(a):
                assert relations(s.boxes[a], s.boxes[b])


def test_normalised_boxes_round_trip_and_lie_in_unit_square(scenes):
    for s in (scenes[i] for i in range(10)):
        cxcywh = s.boxes_cxcywh
        assert bool(((cxcywh >= 0) & (cxcywh <= 1)).all())
        torch.testing.assert_close(box_cxcywh_to_xyxy(cxcywh) * 48, s.boxes)
    target = scenes.detection_targets()[0]
    assert set(target) == {"labels", "boxes"} and target["boxes"].shape == (
        len(target["labels"]),
        4,
    )


def test_relations_by_hand():
    assert relations((0, 0, 10, 10), (20, 0, 30, 10)) == ["left"]
    assert relations((20, 20, 30, 30), (0, 0, 10, 10)) == ["right", "below"]
    assert relations((0, 0, 10, 10), (5, 5, 15, 15)) == []


def test_captions_are_consistent_with_the_layout(scenes):
    for i in range(len(scenes)):
        s = scenes[i]
        assert 1 <= len(s.captions) <= CFG.n_refs and len(
            set(s.captions)
        ) == len(s.captions)
        for cap in s.captions:
            introduced, triples = parse_caption(cap)
            assert sorted(introduced) == sorted(
                s.nouns
            )  # every object named once with "a"
            assert len(triples) == len(s.nouns) - 1
            ok, stated = relation_accuracy(cap, s)
            assert ok == stated  # every stated relation holds for the boxes


def test_caption_grammar_by_hand():
    boxes = [(0, 0, 10, 10), (20, 0, 30, 10), (0, 20, 10, 30)]
    cap = caption(["bag", "boot", "coat"], boxes, random.Random(0))
    assert (
        cap[0] == "a"
        and "and" in cap
        and set(cap)
        <= set(NOUNS)
        | {"a", "the", "and", "left", "right", "of", "above", "below"}
    )
    assert caption(["bag"], boxes[:1], random.Random(0)) == ("a", "bag")
    assert parse_caption(("a", "bag", "left", "of", "a", "boot")) == (
        ["bag", "boot"],
        [("bag", "left", "boot")],
    )


def test_deterministic_by_seed(pool):
    a = make_scenes(8, *pool, config=CFG, seed=11)
    b = make_scenes(8, *pool, config=CFG, seed=11)
    c = make_scenes(8, *pool, config=CFG, seed=12)
    assert torch.equal(a.images, b.images) and a.captions == b.captions
    assert all(torch.equal(x, y) for x, y in zip(a.boxes, b.boxes))
    assert not torch.equal(a.images, c.images)


def test_class_subset_and_bad_inputs(pool):
    sub = make_scenes(
        10,
        *pool,
        config=SceneConfig(
            canvas=48, min_size=14, max_size=20, classes=(1, 5, 8, 9)
        ),
    )
    assert set(torch.cat(sub.labels).tolist()) <= {1, 5, 8, 9}
    with pytest.raises(ValueError, match="max_objects"):
        SceneConfig(min_objects=3, max_objects=2)
    with pytest.raises(ValueError, match="classes"):
        SceneConfig(classes=(1, 2))
    with pytest.raises(ValueError, match="min_size"):
        SceneConfig(canvas=16, min_size=20, max_size=24)
    with pytest.raises(
        ValueError, match=r"items: expected shape \(M, 1, 28, 28\)"
    ):
        make_scenes(
            2, torch.zeros(4, 28, 28), torch.zeros(4, dtype=torch.long)
        )
    with pytest.raises(ValueError, match=r"boxes \(K, 4\)"):
        normalised_cxcywh(torch.zeros(3, 5), 48)
