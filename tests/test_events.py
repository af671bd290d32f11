"""Tests for seqlib.data.events: determinism, silent last frames, positions, errors."""

import pytest
import torch

from seqlib.data.events import bouncing_positions, make_event_clips, to_events


def _pool(n=40):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 28, 28, generator=g), torch.arange(n) % 10


def test_deterministic_by_seed_and_shapes():
    images, labels = _pool()
    a = make_event_clips(
        images, labels, n=6, frames=5, moving_frames=3, seed=3
    )
    b = make_event_clips(
        images, labels, n=6, frames=5, moving_frames=3, seed=3
    )
    c = make_event_clips(
        images, labels, n=6, frames=5, moving_frames=3, seed=4
    )
    assert a.events.shape == (6, 5, 2, 32, 32) and a.frames.shape == (
        6,
        5,
        1,
        32,
        32,
    )
    assert torch.equal(a.events, b.events) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.events, c.events)
    assert set(a.events.unique().tolist()) <= {0.0, 1.0}
    assert a.labels.max() < 4


def test_after_the_item_stops_only_noise_remains():
    images, labels = _pool()
    clips = make_event_clips(
        images, labels, n=8, frames=5, moving_frames=2, noise=0.0, seed=0
    )
    assert (
        clips.events[:, 2:].sum() == 0
    )  # silent: the scene no longer changes
    assert (
        clips.events[:, 0].flatten(1).sum(1) > 0
    ).all()  # the item appears in frame 0
    assert torch.equal(clips.positions[:, 1], clips.positions[:, -1])
    assert clips.moving.tolist()[0] == [True, True, False, False, False]


def test_positions_stay_inside_and_move():
    pos = bouncing_positions(
        50,
        frames=6,
        moving_frames=6,
        room=10,
        max_speed=3,
        generator=torch.Generator().manual_seed(0),
    )
    assert pos.min() >= 0 and pos.max() <= 10
    moved = (pos[:, 1:] - pos[:, :-1]).abs().sum(
        -1
    ) > 0  # (50, 5); a bounce may land on the same spot
    assert moved.float().mean() > 0.9


def test_events_have_polarity():
    frames = torch.zeros(1, 2, 1, 4, 4)
    frames[0, 0, 0, 1, 1] = 1.0  # appears, then disappears
    ev = to_events(
        frames, threshold=0.1, noise=0.0, generator=torch.Generator()
    )
    assert ev[0, 0, 0, 1, 1] == 1 and ev[0, 0, 1].sum() == 0
    assert ev[0, 1, 1, 1, 1] == 1 and ev[0, 1, 0].sum() == 0


def test_bad_arguments():
    images, labels = _pool()
    with pytest.raises(ValueError, match="moving_frames"):
        make_event_clips(images, labels, n=2, frames=3, moving_frames=3)
    with pytest.raises(ValueError, match="no images"):
        make_event_clips(images, labels * 0 + 9, n=2, classes=(1, 2))
