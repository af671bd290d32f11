"""The arrow-of-time video generator: determinism, pairs, physics and errors."""

import pytest
import torch

from seqlib.data import ARROW_CLASSES, make_arrow_of_time, reverse_time
from seqlib.data.video import falling_offsets


def _items(m=6):
    torch.manual_seed(0)
    return torch.rand(m, 1, 28, 28)


def test_shapes_range_balance_and_determinism():
    items = _items()
    data = make_arrow_of_time(
        12, items=items, item_labels=torch.arange(6), seed=3
    )
    assert (
        data.videos.shape == (12, 8, 1, 28, 28)
        and data.videos.dtype == torch.float32
    )
    assert float(data.videos.min()) >= 0 and float(data.videos.max()) <= 1
    assert data.labels.tolist().count(0) == 6 and data.classes == ARROW_CLASSES
    again = make_arrow_of_time(
        12, items=items, item_labels=torch.arange(6), seed=3
    )
    assert torch.equal(again.videos, data.videos) and torch.equal(
        again.labels, data.labels
    )
    other = make_arrow_of_time(12, items=items, seed=4)
    assert not torch.equal(other.videos, data.videos)
    assert other.item_labels.tolist() == [-1] * 12


def test_every_clip_has_its_reversal_with_the_other_label():
    data = make_arrow_of_time(
        20, items=_items(), item_labels=torch.arange(6), seed=0
    )
    assert torch.equal(data.videos[data.pair], reverse_time(data.videos))
    assert torch.equal(data.labels[data.pair], 1 - data.labels)
    assert torch.equal(data.item_labels[data.pair], data.item_labels)

    # so the two classes hold exactly the same frames: no frame-level cue exists
    def frames(y):
        return sorted(
            v.sum().item() for v in data.videos[data.labels == y].flatten(0, 1)
        )

    assert frames(0) == frames(1)


def test_forward_clips_fall_faster_and_faster():
    data = make_arrow_of_time(10, items=torch.ones(1, 1, 28, 28), seed=1)
    rows = torch.arange(28.0)[:, None]
    for clip, label in zip(data.videos, data.labels):
        mass = clip[:, 0]  # (F, H, W)
        centre = (mass * rows).sum((1, 2)) / mass.sum(
            (1, 2)
        )  # (F,) row of the centre of mass
        steps = (
            centre if label == 0 else centre.flip(0)
        ).diff()  # reversed clips rise
        assert bool((steps >= -1e-4).all()) and float(steps[-1]) > float(
            steps[0]
        )  # down, accelerating
    assert torch.allclose(
        falling_offsets(5, 16.0), torch.tensor([0.0, 1.0, 4.0, 9.0, 16.0])
    )


def test_fading_items_get_dimmer_forward():
    data = make_arrow_of_time(
        4, items=torch.ones(1, 1, 28, 28), end_brightness=0.5, seed=0
    )
    clip = data.videos[data.labels == 0][0]
    assert (
        abs(float(clip[0].max()) - 1.0) < 1e-6
        and abs(float(clip[-1].max()) - 0.5) < 1e-6
    )


def test_bad_arguments_raise():
    items = _items()
    with pytest.raises(ValueError, match="even"):
        make_arrow_of_time(7, items=items)
    with pytest.raises(ValueError, match=r"\(M, 1, h, w\)"):
        make_arrow_of_time(4, items=torch.rand(3, 28, 28))
    with pytest.raises(ValueError, match="min_drop"):
        make_arrow_of_time(4, items=items, min_drop=17)
    with pytest.raises(ValueError, match="item_labels"):
        make_arrow_of_time(4, items=items, item_labels=torch.arange(5))
    with pytest.raises(ValueError, match="end_brightness"):
        make_arrow_of_time(4, items=items, end_brightness=0.0)
    with pytest.raises(ValueError, match=r"\(B, F, C, H, W\)"):
        reverse_time(torch.rand(8, 1, 28, 28))
