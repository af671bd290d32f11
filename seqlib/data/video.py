"""Generated videos whose label is in the order of the frames: the arrow of
time.

A small item (a Fashion-MNIST image, shrunk) falls down a dark canvas under
gravity: starting at rest, its drop after a fraction ``τ`` of the clip is
``y(τ) = L·τ²``, so it moves faster and faster. Label 0 ("forward") is that
clip; label 1 ("reversed") is the same clip played backwards, an item that
shoots up and slows to a stop, which nothing left to itself does. Every clip is
generated together with its reversal, so the two classes hold exactly the same
frames: no single frame (and no set of frames) tells the label, only their
order does (Wei et al. 2018 call this the arrow of time). Deterministic by
seed. Shape letters: N clips, F frames, C = 1 channel, H = W canvas side.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

ARROW_CLASSES = ("forward", "reversed")


@dataclass(frozen=True)
class VideoData:
    """Clips and labels of a generated video task.

    Attributes:
        videos: float32 (N, F, 1, H, W) in [0, 1].
        labels: int64 (N,), indices into ``classes``.
        classes: class names.
        pair: int64 (N,), the index of the clip holding the same frames in the
            other order.
        item_labels: int64 (N,), the class of the item that falls (-1 if none
            was given), for tasks about what is in the clip rather than how it
            moves.
    """

    videos: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    pair: torch.Tensor
    item_labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


def falling_offsets(frames: int, drop: float) -> torch.Tensor:
    """Drop ``L·τ²`` at ``τ = 0, 1/(F−1), …, 1``: a fall from rest under
    constant gravity, (F,)."""
    if frames < 2:
        raise ValueError(f"a motion needs at least 2 frames, got {frames}")
    tau = torch.linspace(0, 1, frames)  # (F,)
    return drop * tau**2  # (F,)


def render_clip(
    item: torch.Tensor,
    top: int,
    left: int,
    offsets: torch.Tensor,
    size: int,
    *,
    end_brightness: float = 1.0,
) -> torch.Tensor:
    """Paste ``item`` (1, s, s) on a ``size``² canvas at row
    ``top + round(offset)``, column ``left``.

    The item's brightness falls linearly from 1 at the first frame to
    ``end_brightness`` at the last (a cooling ember; 1 keeps it constant).
    Returns (F, 1, H, W).
    """
    s, frames = item.shape[-1], len(offsets)
    brightness = torch.linspace(1.0, end_brightness, frames).tolist()
    clip = torch.zeros(frames, 1, size, size)  # (F, 1, H, W)
    for f, off in enumerate(offsets.round().long().tolist()):
        clip[f, :, top + off : top + off + s, left : left + s] = (
            item * brightness[f]
        )
    return clip


def make_arrow_of_time(
    n: int,
    *,
    items: torch.Tensor,
    item_labels: torch.Tensor | None = None,
    frames: int = 8,
    size: int = 28,
    item_size: int = 12,
    min_drop: int = 10,
    end_brightness: float = 1.0,
    seed: int = 0,
) -> VideoData:
    """``n`` clips (``n/2`` falling items, ``n/2`` the same clips reversed).

    Args:
        n: number of clips, even.
        items: (M, 1, h, w) images in [0, 1] (e.g. Fashion-MNIST), shrunk to
            ``item_size``.
        item_labels: (M,) classes of ``items``, carried into
            ``VideoData.item_labels``.
        frames: F.
        size: canvas side H = W.
        item_size: side of the pasted item.
        min_drop: shortest fall in pixels; the longest is ``size - item_size``.
        end_brightness: brightness of the item in the last frame relative to
            the first, in (0, 1]; below 1 the item also cools as it falls, a
            second arrow of time.
        seed: the same seed gives the same clips.

    Returns:
        :class:`VideoData` with videos (n, F, 1, size, size) in random order;
        ``pair`` links each clip to its reversal.
    """
    room = size - item_size
    if n < 2 or n % 2:
        raise ValueError(
            "n must be a positive even number (clips come in "
            f"forward/reversed pairs), got {n}"
        )
    if items.dim() != 4 or items.shape[1] != 1:
        raise ValueError(
            f"items: expected shape (M, 1, h, w), got {tuple(items.shape)}"
        )
    if item_labels is not None and tuple(item_labels.shape) != (len(items),):
        raise ValueError(
            f"item_labels: expected shape ({len(items)},), got "
            f"{tuple(item_labels.shape)}"
        )
    if not 0 < end_brightness <= 1:
        raise ValueError(
            f"end_brightness must be in (0, 1], got {end_brightness}"
        )
    if not 1 <= min_drop <= room:
        raise ValueError(
            f"min_drop must be in [1, size - item_size = {room}], got "
            f"{min_drop}"
        )
    g = torch.Generator().manual_seed(seed)
    small = F.interpolate(
        items, size=(item_size, item_size), mode="area"
    )  # (M, 1, s, s)
    pick = torch.randint(len(small), (n // 2,), generator=g)
    drops = torch.randint(min_drop, room + 1, (n // 2,), generator=g)
    clips = []
    for i, drop in zip(pick.tolist(), drops.tolist()):
        top = int(
            torch.randint(0, room - drop + 1, (1,), generator=g)
        )  # the whole fall stays on the canvas
        left = int(torch.randint(0, room + 1, (1,), generator=g))
        offsets = falling_offsets(frames, drop)  # (F,)
        clips.append(
            render_clip(
                small[i],
                top,
                left,
                offsets,
                size,
                end_brightness=end_brightness,
            )
        )
    forward = torch.stack(clips)  # (n/2, F, 1, H, W)
    videos = torch.cat(
        [forward, forward.flip(1)]
    )  # (n, F, 1, H, W): the second half is played backwards
    labels = torch.cat(
        [torch.zeros(n // 2), torch.ones(n // 2)]
    ).long()  # (n,)
    order = torch.randperm(n, generator=g)  # (n,): new position -> old index
    new_index = torch.empty_like(order)
    new_index[order] = torch.arange(n)
    partner = (
        order + n // 2
    ) % n  # old index of each shuffled clip's reversal
    what = (
        item_labels[pick].long()
        if item_labels is not None
        else torch.full((n // 2,), -1)
    )  # (n/2,)
    return VideoData(
        videos[order],
        labels[order],
        ARROW_CLASSES,
        new_index[partner],
        what.repeat(2)[order],
    )


def reverse_time(videos: torch.Tensor) -> torch.Tensor:
    """Play clips backwards: (B, F, C, H, W) → (B, F, C, H, W) with frame f
    taken from F − 1 − f."""
    if videos.dim() != 5:
        raise ValueError(
            "videos: expected shape (B, F, C, H, W), got "
            f"{tuple(videos.shape)}"
        )
    return videos.flip(1)
