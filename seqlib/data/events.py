"""Event-camera clips of moving Fashion-MNIST items: a task that needs memory
across frames.

An event camera reports only *changes* of brightness, per pixel, with a
polarity (on: brighter, off: darker); RVT (Gehrig & Scaramuzza 2023) turns them
into event frames. Here an item appears on an empty canvas, moves for a few
frames and then stops: from then on the camera sees nothing but sensor noise.
The task is to name the item (or say where it is) at the *last* frame, which
shows no trace of it, so a per-frame model is at chance and a model with memory
is not. Everything is generated from a seed. Shape letters: N clips, F frames,
S canvas side, P = 2 polarities.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from seqlib.data.fashion_mnist import load_fashion_mnist

DEFAULT_CLASSES = (
    1,
    5,
    7,
    8,
)  # trouser, sandal, sneaker, bag: shapes that differ in outline


@dataclass(frozen=True)
class EventClips:
    """A batch of generated clips.

    Attributes:
        events: (N, F, 2, S, S) float32 in {0, 1}; channel 0 on events, channel
            1 off events.
        frames: (N, F, 1, S, S) float32 in [0, 1], the scene the camera
            watches.
        labels: (N,) int64 index into ``classes``.
        positions: (N, F, 2) int64 top-left (row, column) of the item.
        moving: (N, F) bool, True where the item moved into this frame (or
            appeared).
        classes: the Fashion-MNIST class ids behind the labels.
    """

    events: torch.Tensor
    frames: torch.Tensor
    labels: torch.Tensor
    positions: torch.Tensor
    moving: torch.Tensor
    classes: tuple[int, ...]


def bouncing_positions(
    n: int,
    *,
    frames: int,
    moving_frames: int,
    room: int,
    max_speed: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Top-left positions (n, F, 2) of items that bounce off the walls, then
    stop.

    The item moves between frames ``t-1`` and ``t`` for
    ``1 <= t < moving_frames`` and stays where it is afterwards; ``room`` is
    the largest allowed coordinate."""
    pos = torch.randint(0, room + 1, (n, 2), generator=generator)
    speed = torch.randint(1, max_speed + 1, (n, 2), generator=generator)
    sign = torch.randint(0, 2, (n, 2), generator=generator) * 2 - 1
    vel = speed * sign  # (n, 2), never zero
    out = [pos.clone()]
    for t in range(1, frames):
        if t < moving_frames:
            pos = pos + vel
            low, high = pos < 0, pos > room
            pos = torch.where(
                low, -pos, torch.where(high, 2 * room - pos, pos)
            )  # reflect off the walls
            vel = torch.where(low | high, -vel, vel)
        out.append(pos.clone())
    return torch.stack(out, dim=1)  # (n, F, 2)


def render(
    items: torch.Tensor, positions: torch.Tensor, canvas: int
) -> torch.Tensor:
    """Paste items (n, s, s) at positions (n, F, 2) on empty canvases → (n, F,
    1, S, S)."""
    n, s, _ = items.shape
    out = torch.zeros(n, positions.shape[1], 1, canvas, canvas)
    for i in range(n):
        for t, (r, c) in enumerate(positions[i].tolist()):
            out[i, t, 0, r : r + s, c : c + s] = items[i]
    return out


def to_events(
    frames: torch.Tensor,
    *,
    threshold: float,
    noise: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Event frames from intensity frames: thresholded change since the
    previous frame, plus noise.

    Args:
        frames: (N, F, 1, S, S); the frame before the first is taken as empty.
        threshold: a change larger than this fires an event.
        noise: probability that any pixel fires a spurious event of either
            polarity.

    Returns:
        (N, F, 2, S, S) float32 in {0, 1}: on events (channel 0), off events
        (channel 1).
    """
    previous = torch.cat(
        [torch.zeros_like(frames[:, :1]), frames[:, :-1]], dim=1
    )  # (N, F, 1, S, S)
    diff = frames - previous
    events = torch.cat(
        [diff > threshold, diff < -threshold], dim=2
    )  # (N, F, 2, S, S)
    spurious = torch.rand(events.shape, generator=generator) < noise
    return (events | spurious).float()


def make_event_clips(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    n: int,
    frames: int = 6,
    moving_frames: int = 3,
    canvas: int = 32,
    item: int = 14,
    max_speed: int = 3,
    threshold: float = 0.1,
    noise: float = 0.01,
    classes: tuple[int, ...] = DEFAULT_CLASSES,
    seed: int = 0,
) -> EventClips:
    """Draw ``n`` clips whose items come from ``images`` (N, 1, 28, 28) with
    Fashion-MNIST ``labels``.

    Only items of ``classes`` are used; each is resized to ``item``×``item``.
    Frames ``moving_frames..F-1`` hold no signal, only noise events.
    """
    if not 1 <= moving_frames < frames:
        raise ValueError(
            "need 1 <= moving_frames < frames so that the last frame is "
            f"silent, got moving_frames={moving_frames}, frames={frames}"
        )
    if item > canvas:
        raise ValueError(
            f"item side {item} must not exceed the canvas side {canvas}"
        )
    keep = torch.isin(labels, torch.tensor(classes))
    pool, pool_labels = images[keep], labels[keep]
    if len(pool) == 0:
        raise ValueError(
            f"no images of classes {classes} among the given labels"
        )
    g = torch.Generator().manual_seed(seed)
    pick = torch.randint(0, len(pool), (n,), generator=g)
    items = F.interpolate(pool[pick], size=(item, item), mode="area")[
        :, 0
    ]  # (n, s, s)
    lookup = {c: i for i, c in enumerate(classes)}
    y = torch.tensor(
        [lookup[int(c)] for c in pool_labels[pick]], dtype=torch.long
    )
    pos = bouncing_positions(
        n,
        frames=frames,
        moving_frames=moving_frames,
        room=canvas - item,
        max_speed=max_speed,
        generator=g,
    )  # (n, F, 2)
    scene = render(items, pos, canvas)  # (n, F, 1, S, S)
    events = to_events(scene, threshold=threshold, noise=noise, generator=g)
    moving = torch.zeros(n, frames, dtype=torch.bool)
    moving[:, :moving_frames] = True
    return EventClips(events, scene, y, pos, moving, tuple(classes))


def load_event_clips(
    split: str = "train", *, n: int, seed: int = 0, **kwargs
) -> EventClips:
    """:func:`make_event_clips` on a Fashion-MNIST split (train and test items
    never mix)."""
    images, labels = load_fashion_mnist(
        split, n=min(60000 if split == "train" else 10000, 8 * n)
    )
    return make_event_clips(images, labels, n=n, seed=seed, **kwargs)
