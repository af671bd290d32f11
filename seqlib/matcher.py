"""Bipartite matching and the set loss of DETR (Carion et al. 2020, section
3.1).

DETR predicts a fixed set of Q (class, box) pairs per image; the image has K <=
Q objects. Training first finds the one-to-one assignment σ of queries to
objects with the lowest total cost (Eq. 1 of the paper), a linear assignment
problem. The paper, like most texts, names Kuhn's Hungarian algorithm for it;
we call ``scipy.optimize.linear_sum_assignment``, an exact solver of the same
problem by a different algorithm (a shortest augmenting path method of the
Jonker–Volgenant family, Crouse 2016). Any exact solver returns a minimum-cost
assignment. The pairwise cost of query i and object j is

    C_ij = -w_class · p_i(c_j) + w_l1 · ||b_i - b_j||_1 - w_giou · GIoU(b_i,
    b_j),

computed for the whole batch at once as one ``(B, Q, ΣK)`` tensor and cut per
image. The loss (Eq. 2) is then a cross-entropy on every query, whose target is
its matched object's class or "no object" (index ``num_classes``, down-weighted
by ``eos_coef`` because most queries are empty), plus the L1 and ``1 - GIoU``
box losses on matched queries only, averaged over the objects of the batch.
Because each object is the target of exactly one query, a second query
predicting the same object is pushed to "no object": duplicates are penalised
by the loss itself and no NMS is needed. With auxiliary decoding losses
(section 3.2) the same matching and loss are applied to every decoder layer's
output. Shape letters: B images, Q queries, K objects of an image, C classes
(+1 for no object).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from seqlib.boxes import box_cxcywh_to_xyxy, generalized_box_iou
from seqlib.shapes import expect_dtype, expect_shape

Target = dict[
    str, torch.Tensor
]  # {"labels": (K,) int64, "boxes": (K, 4) normalised cxcywh}
Match = tuple[
    torch.Tensor, torch.Tensor
]  # (query indices (k,), target indices (k,)), int64


@dataclass(frozen=True)
class SetLossWeights:
    """Weights of the matching cost and of the loss (DETR uses the same ones
    for both)."""

    ce: float = (
        1.0  # class term (probability in the cost, cross-entropy in the loss)
    )
    l1: float = 5.0  # L1 distance of (cx, cy, w, h)
    giou: float = 2.0  # generalised IoU
    eos_coef: float = (
        0.1  # relative weight of the "no object" class in the cross-entropy
    )


def matching_cost(
    logits: torch.Tensor,
    boxes: torch.Tensor,
    targets: Sequence[Target],
    *,
    weights: SetLossWeights = SetLossWeights(),
) -> torch.Tensor:
    """The batched cost of Eq. 1: every query of every image against every
    object of the batch.

    Args:
        logits: ``(B, Q, C + 1)`` class scores, the last one "no object".
        boxes: ``(B, Q, 4)`` predicted ``(cx, cy, w, h)`` in [0, 1].
        targets: B dicts with ``"labels"`` ``(K_b,)`` and ``"boxes"``
            ``(K_b, 4)`` cxcywh.
        weights: the cost weights.

    Returns:
        ``(B, Q, ΣK)``; image b's block is columns ``sum(K[:b])`` to
        ``sum(K[:b+1])``.
    """
    labels, tgt_boxes = _concat_targets(logits, boxes, targets)
    B, Q, _ = logits.shape
    prob = logits.flatten(0, 1).softmax(-1)  # (B·Q, C+1)
    out_boxes = boxes.flatten(0, 1)  # (B·Q, 4)
    cost_class = -prob[
        :, labels
    ]  # (B·Q, ΣK): the probability of the right class, negated
    cost_l1 = torch.cdist(out_boxes, tgt_boxes, p=1)  # (B·Q, ΣK)
    cost_giou = -generalized_box_iou(
        box_cxcywh_to_xyxy(out_boxes), box_cxcywh_to_xyxy(tgt_boxes)
    )  # (B·Q, ΣK)
    cost = (
        weights.ce * cost_class
        + weights.l1 * cost_l1
        + weights.giou * cost_giou
    )
    return cost.view(B, Q, -1)  # (B, Q, ΣK)


def hungarian_match(cost: torch.Tensor, sizes: Sequence[int]) -> list[Match]:
    """Optimal one-to-one assignment of queries to objects, image by image.

    Named after the Hungarian algorithm as in DETR; the solver is SciPy's
    shortest-augmenting-path ``linear_sum_assignment``, exact like the
    Hungarian method.

    Args:
        cost: ``(B, Q, ΣK)`` from :func:`matching_cost`.
        sizes: ``K_b`` objects of each image (they sum to ΣK), each at most Q.

    Returns:
        B pairs ``(query_idx, target_idx)`` of int64 tensors of length ``K_b``,
        sorted by query; ``target_idx`` indexes image b's own targets.
    """
    dims = expect_shape(cost, ("B", "Q", sum(sizes)), name="cost (B, Q, ΣK)")
    if len(sizes) != dims["B"] or any(k > dims["Q"] for k in sizes):
        raise ValueError(
            f"sizes: expected {dims['B']} object counts, each <= "
            f"Q={dims['Q']}, got {list(sizes)}"
        )
    blocks = (
        cost.detach().cpu().split(list(sizes), dim=-1)
    )  # B tensors (B, Q, K_b)
    out = []
    for b, block in enumerate(blocks):
        rows, cols = linear_sum_assignment(
            block[b].numpy()
        )  # exact; Jonker–Volgenant-type, not Kuhn's method
        out.append(
            (
                torch.as_tensor(rows, dtype=torch.long),
                torch.as_tensor(cols, dtype=torch.long),
            )
        )
    return out


def match(
    logits: torch.Tensor,
    boxes: torch.Tensor,
    targets: Sequence[Target],
    *,
    weights: SetLossWeights = SetLossWeights(),
) -> list[Match]:
    """:func:`matching_cost` then :func:`hungarian_match`, without
    gradients."""
    with torch.no_grad():
        cost = matching_cost(logits, boxes, targets, weights=weights)
    return hungarian_match(cost, [len(t["labels"]) for t in targets])


def set_loss(
    logits: torch.Tensor,
    boxes: torch.Tensor,
    targets: Sequence[Target],
    matches: Sequence[Match],
    *,
    weights: SetLossWeights = SetLossWeights(),
) -> dict[str, torch.Tensor]:
    """The Hungarian loss of Eq. 2 for given matches.

    Args:
        logits: ``(B, Q, C + 1)``; boxes: ``(B, Q, 4)`` cxcywh.
        targets: B target dicts; matches: B ``(query_idx, target_idx)`` pairs.
        weights: loss weights and the no-object weight.

    Returns:
        ``{"ce", "l1", "giou", "total"}``: the three terms (box terms averaged
        over the objects of the batch) and their weighted sum.
    """
    B, Q, C1 = logits.shape
    batch_idx = torch.cat(
        [torch.full_like(q, b) for b, (q, _) in enumerate(matches)]
    ).to(logits.device)
    query_idx = torch.cat([q for q, _ in matches]).to(logits.device)
    classes = torch.full(
        (B, Q), C1 - 1, dtype=torch.long, device=logits.device
    )  # (B, Q) all "no object"
    classes[batch_idx, query_idx] = torch.cat(
        [t["labels"][j] for t, (_, j) in zip(targets, matches)]
    ).to(logits.device)
    class_weight = torch.ones(C1, device=logits.device)
    class_weight[-1] = weights.eos_coef
    ce = F.cross_entropy(
        logits.transpose(1, 2), classes, weight=class_weight
    )  # over (B, Q)
    matched = boxes[batch_idx, query_idx]  # (ΣK, 4)
    wanted = torch.cat(
        [t["boxes"][j] for t, (_, j) in zip(targets, matches)]
    ).to(boxes)  # (ΣK, 4)
    n_boxes = max(len(wanted), 1)
    l1 = (matched - wanted).abs().sum() / n_boxes
    giou = generalized_box_iou(
        box_cxcywh_to_xyxy(matched), box_cxcywh_to_xyxy(wanted)
    )  # (ΣK, ΣK)
    giou_loss = (1 - giou.diagonal()).sum() / n_boxes
    total = weights.ce * ce + weights.l1 * l1 + weights.giou * giou_loss
    return {"ce": ce, "l1": l1, "giou": giou_loss, "total": total}


def detr_loss(
    outputs: dict,
    targets: Sequence[Target],
    *,
    weights: SetLossWeights = SetLossWeights(),
    assign: Callable[
        [torch.Tensor, Sequence[int]], list[Match]
    ] = hungarian_match,
) -> dict:
    """Set loss of the final decoder layer plus the auxiliary losses of the
    earlier ones.

    Args:
        outputs: ``{"logits": (B, Q, C+1), "boxes": (B, Q, 4), "aux":
            [{"logits", "boxes"}, ...]}`` as returned by
            :class:`seqlib.detr.DETR`.
        targets: B target dicts.
        weights: cost and loss weights.
        assign: ``(cost, sizes) -> matches``; :func:`hungarian_match` (a
            teaching variant can swap in another assignment).

    Returns:
        ``{"loss"}`` (sum over layers, for ``backward``), the final layer's
        ``"ce"``, ``"l1"``, ``"giou"`` (floats), ``"matches"`` of the final
        layer and ``"match_seconds"``, the time spent building costs and
        assigning.
    """
    total, seconds, last = 0.0, 0.0, None
    for layer in [*outputs.get("aux", []), outputs]:
        start = time.perf_counter()
        with torch.no_grad():
            cost = matching_cost(
                layer["logits"], layer["boxes"], targets, weights=weights
            )
        matches = assign(cost, [len(t["labels"]) for t in targets])
        seconds += time.perf_counter() - start
        last = set_loss(
            layer["logits"], layer["boxes"], targets, matches, weights=weights
        )
        total = total + last["total"]
    return {
        "loss": total,
        **{k: float(last[k].detach()) for k in ("ce", "l1", "giou")},
        "matches": matches,
        "match_seconds": seconds,
    }


def _concat_targets(
    logits: torch.Tensor, boxes: torch.Tensor, targets: Sequence[Target]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate predictions and targets; return all labels ``(ΣK,)`` and boxes
    ``(ΣK, 4)``."""
    dims = expect_shape(logits, ("B", "Q", None), name="logits (B, Q, C+1)")
    expect_shape(
        boxes, (dims["B"], dims["Q"], 4), name="boxes (B, Q, 4)", sizes=dims
    )
    if len(targets) != dims["B"]:
        raise ValueError(
            f"targets: expected one dict per image (B={dims['B']}), got "
            f"{len(targets)}"
        )
    n_classes = logits.shape[-1] - 1
    for b, t in enumerate(targets):
        k = expect_shape(t["labels"], ("K",), name=f"targets[{b}]['labels']")
        expect_dtype(t["labels"], torch.long, name=f"targets[{b}]['labels']")
        expect_shape(
            t["boxes"], (k["K"], 4), name=f"targets[{b}]['boxes'] (K, 4)"
        )
        if (
            len(t["labels"])
            and not 0
            <= int(t["labels"].min())
            <= int(t["labels"].max())
            < n_classes
        ):
            raise ValueError(
                f"targets[{b}]['labels'] must lie in 0..{n_classes - 1} "
                f"(index {n_classes} is 'no object'), got "
                f"{t['labels'].tolist()}"
            )
    labels = torch.cat([t["labels"] for t in targets]).to(
        logits.device
    )  # (ΣK,)
    tgt_boxes = torch.cat([t["boxes"] for t in targets]).to(boxes)  # (ΣK, 4)
    return labels, tgt_boxes
