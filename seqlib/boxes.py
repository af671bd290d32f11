"""Bounding boxes: conversions, IoU and generalised IoU as pure tensor helpers.

DETR (Carion et al. 2020) predicts boxes as normalised ``(cx, cy, w, h)`` in
``[0, 1]`` and compares them with the ground truth through an L1 distance and
the generalised IoU of Rezatofighi et al. (2019), which needs corners
``(x1, y1, x2, y2)``. For two boxes ``a`` and ``b`` with smallest enclosing box
``c``, ``IoU = |a ∩ b| / |a ∪ b|`` and ``GIoU = IoU - |c \\ (a ∪ b)| / |c|``:
it equals IoU when the boxes overlap enough to fill ``c`` and, unlike IoU,
still says *how far apart* two disjoint boxes are (it goes to -1), so its
gradient does not vanish. Every function works on any leading shape
``(..., 4)`` or, for the pairwise ones, on ``(N, 4)`` × ``(M, 4)`` giving
``(N, M)``; boxes in pixels or in ``[0, 1]`` alike. Shape letters: N and M
boxes.
"""

from __future__ import annotations

import torch

from seqlib.shapes import expect_shape


def box_cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """``(cx, cy, w, h)`` -> corners ``(x1, y1, x2, y2)``; shape ``(..., 4)``
    kept."""
    _check_last(boxes, "boxes (..., 4) cxcywh")
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack(
        [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1
    )  # (..., 4)


def box_xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """Corners ``(x1, y1, x2, y2)`` -> ``(cx, cy, w, h)``; inverse of
    :func:`box_cxcywh_to_xyxy`."""
    _check_last(boxes, "boxes (..., 4) xyxy")
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack(
        [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1
    )  # (..., 4)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas ``(...)`` of corner boxes ``(..., 4)``."""
    _check_last(boxes, "boxes (..., 4) xyxy")
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def box_iou(
    a: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairwise IoU and union of corner boxes.

    Args:
        a: ``(N, 4)`` boxes ``(x1, y1, x2, y2)`` with ``x2 >= x1``,
            ``y2 >= y1``.
        b: ``(M, 4)`` boxes likewise.

    Returns:
        ``iou`` ``(N, M)`` in ``[0, 1]`` and ``union`` ``(N, M)``. Two empty
        boxes have IoU 0 (not NaN).

    Raises:
        ValueError: on a wrong shape or a box with ``x2 < x1`` or ``y2 < y1``.
    """
    _check_pair(a, b)
    lt = torch.maximum(
        a[:, None, :2], b[None, :, :2]
    )  # (N, M, 2) top-left of the intersection
    rb = torch.minimum(
        a[:, None, 2:], b[None, :, 2:]
    )  # (N, M, 2) bottom-right
    wh = (rb - lt).clamp(min=0)  # (N, M, 2)
    inter = wh[..., 0] * wh[..., 1]  # (N, M)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter  # (N, M)
    return inter / union.clamp(min=torch.finfo(union.dtype).tiny), union


def generalized_box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise generalised IoU (Rezatofighi et al. 2019) of corner boxes, in
    ``[-1, 1]``.

    ``GIoU = IoU - (|C| - |A ∪ B|) / |C|`` with ``C`` the smallest box
    enclosing both.

    Args:
        a: ``(N, 4)`` boxes ``(x1, y1, x2, y2)``.
        b: ``(M, 4)`` boxes.

    Returns:
        ``(N, M)``; symmetric (``giou(a, b) == giou(b, a).T``) and 1 exactly on
        equal boxes.
    """
    iou, union = box_iou(a, b)  # (N, M) each
    lt = torch.minimum(
        a[:, None, :2], b[None, :, :2]
    )  # (N, M, 2) enclosing box
    rb = torch.maximum(a[:, None, 2:], b[None, :, 2:])  # (N, M, 2)
    hull = (rb - lt)[..., 0] * (rb - lt)[..., 1]  # (N, M), never negative
    return iou - (hull - union) / hull.clamp(min=torch.finfo(hull.dtype).tiny)


def _check_last(boxes: torch.Tensor, name: str) -> None:
    if (
        not isinstance(boxes, torch.Tensor)
        or boxes.dim() < 1
        or boxes.shape[-1] != 4
    ):
        shape = (
            tuple(boxes.shape)
            if isinstance(boxes, torch.Tensor)
            else type(boxes).__name__
        )
        raise ValueError(f"{name}: expected shape (..., 4), got {shape}")


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    for boxes, name in ((a, "a"), (b, "b")):
        expect_shape(boxes, (None, 4), name=f"{name} (N, 4) xyxy")
        if bool((boxes[:, 2:] < boxes[:, :2]).any()):
            bad = boxes[(boxes[:, 2:] < boxes[:, :2]).any(-1)][0].tolist()
            raise ValueError(
                f"{name}: boxes must be corners (x1, y1, x2, y2) with x2 >= "
                f"x1 and y2 >= y1, got {bad} (cxcywh boxes? convert with "
                "box_cxcywh_to_xyxy)"
            )
