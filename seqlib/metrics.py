"""Evaluation metrics of the book. Section 1: BLEU (chapters 2–4); section 2:
mAP (chapter 8).

BLEU (Papineni et al. 2002) scores a corpus of hypotheses against one or more
references per sentence: the geometric mean of the modified (clipped) n-gram
precisions for n = 1..4, times a brevity penalty. :func:`corpus_bleu` is the
reference implementation, sacrebleu (Post 2018), with its signature so a score
can be reproduced; :func:`bleu_by_hand` recomputes it from the definition and
the tests assert the two agree. Sentences are token lists (or strings that are
split on spaces); references are given per sentence, any number of them.
The mAP section scores object detectors the way COCO does (see its comment).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import sacrebleu
import torch

from seqlib.boxes import box_iou

Tokens = Sequence[str]


# --- BLEU --------------------------------------------------------------------
@dataclass(frozen=True)
class BleuResult:
    """A corpus BLEU score (0–100) and the statistics it was computed from."""

    score: float
    precisions: tuple[float, ...]  # modified n-gram precisions, in percent
    bp: float  # brevity penalty
    sys_len: int  # total hypothesis length c
    ref_len: int  # total effective reference length r
    signature: str  # sacrebleu's reproducibility signature, or "by hand"


def _tokens(sentence: Tokens | str) -> list[str]:
    return sentence.split() if isinstance(sentence, str) else list(sentence)


def _check_corpus(hypotheses: Sequence, references: Sequence) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(
            "need one list of references per hypothesis: got "
            f"{len(hypotheses)} hypotheses and {len(references)} reference "
            "lists"
        )
    if len(hypotheses) == 0:
        raise ValueError("BLEU of an empty corpus is undefined")
    for i, refs in enumerate(references):
        if isinstance(refs, str) or len(refs) == 0:
            raise ValueError(
                f"references[{i}] must be a non-empty list of references, got "
                f"{refs!r}"
            )


def corpus_bleu(
    hypotheses: Sequence[Tokens | str],
    references: Sequence[Sequence[Tokens | str]],
    *,
    tokenize: str = "none",
) -> BleuResult:
    """Corpus BLEU through sacrebleu.

    Args:
        hypotheses: one sentence per item (a token list or a string).
        references: for each hypothesis, a list of its references (one or
            more).
        tokenize: sacrebleu's tokenizer; ``"none"`` because our sentences are
            already tokens (use ``"13a"``, sacrebleu's default, on raw text).

    Returns:
        A :class:`BleuResult` whose ``signature`` names the settings and
        version.
    """
    _check_corpus(hypotheses, references)
    hyps = [" ".join(_tokens(h)) for h in hypotheses]
    n_refs = max(len(r) for r in references)
    # sacrebleu wants reference *streams*; None marks a missing reference.
    streams = [
        [" ".join(_tokens(r[k])) if k < len(r) else None for r in references]
        for k in range(n_refs)
    ]
    metric = sacrebleu.BLEU(tokenize=tokenize)
    res = metric.corpus_score(hyps, streams)
    return BleuResult(
        res.score,
        tuple(res.precisions),
        res.bp,
        res.sys_len,
        res.ref_len,
        str(metric.get_signature()),
    )


def ngrams(tokens: Tokens, n: int) -> Counter:
    """Counts of the n-grams (as tuples) of ``tokens``."""
    return Counter(
        tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)
    )


def clipped_matches(
    hyp: Tokens, refs: Sequence[Tokens], n: int
) -> tuple[int, int]:
    """(matches, total) of the modified n-gram precision of one sentence.

    A hypothesis n-gram counts at most as often as it occurs in the single
    reference where it occurs most ("clipping"), so repeating a right word
    does not pay.
    """
    counts = ngrams(hyp, n)
    max_ref = Counter()
    for ref in refs:
        for gram, c in ngrams(ref, n).items():
            max_ref[gram] = max(max_ref[gram], c)
    return sum(min(c, max_ref[g]) for g, c in counts.items()), sum(
        counts.values()
    )


def closest_ref_length(hyp_len: int, ref_lens: Sequence[int]) -> int:
    """The reference length closest to ``hyp_len`` (the shorter one on a
    tie)."""
    return min(ref_lens, key=lambda r: (abs(r - hyp_len), r))


def brevity_penalty(sys_len: int, ref_len: int) -> float:
    """``1`` if ``c > r`` else ``exp(1 - r / c)`` (0 for an empty output), on
    corpus totals."""
    if sys_len > ref_len:
        return 1.0
    return math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0


def bleu_by_hand(
    hypotheses: Sequence[Tokens | str],
    references: Sequence[Sequence[Tokens | str]],
    *,
    max_n: int = 4,
    smooth: str = "exp",
) -> BleuResult:
    """BLEU from its definition: ``BP * exp(mean_n log p_n)``, times 100.

    Matches and totals are summed over the corpus before dividing
    (corpus-level, not an average of sentence scores). ``smooth="exp"``
    reproduces sacrebleu's default for an order with no match (precision
    ``1 / (2^k * total)`` for the k-th such order); ``"none"`` gives 0 then.
    """
    _check_corpus(hypotheses, references)
    matches, totals, sys_len, ref_len = [0] * max_n, [0] * max_n, 0, 0
    for hyp, refs in zip(hypotheses, references):
        hyp, refs = _tokens(hyp), [_tokens(r) for r in refs]
        sys_len += len(hyp)
        ref_len += closest_ref_length(len(hyp), [len(r) for r in refs])
        for n in range(1, max_n + 1):
            m, t = clipped_matches(hyp, refs, n)
            matches[n - 1] += m
            totals[n - 1] += t
    bp = brevity_penalty(sys_len, ref_len)
    if sum(matches) == 0:
        return BleuResult(0.0, (0.0,) * max_n, bp, sys_len, ref_len, "by hand")
    precisions, k = [], 0
    for m, t in zip(matches, totals):
        if t == 0:
            precisions.append(0.0)
        elif m == 0 and smooth == "exp":
            k += 1
            precisions.append(1 / (2**k * t))
        else:
            precisions.append(m / t)
    if min(precisions) == 0:
        return BleuResult(
            0.0,
            tuple(100 * p for p in precisions),
            bp,
            sys_len,
            ref_len,
            "by hand",
        )
    score = 100 * bp * math.exp(sum(math.log(p) for p in precisions) / max_n)
    return BleuResult(
        score,
        tuple(100 * p for p in precisions),
        bp,
        sys_len,
        ref_len,
        "by hand",
    )


def bleu_by_length(
    hypotheses: Sequence[Tokens | str],
    references: Sequence[Sequence[Tokens | str]],
    src_lengths: Sequence[int],
    edges: Sequence[int],
) -> list[dict]:
    """Corpus BLEU of each source-length bucket ``[edges[i], edges[i+1])``.

    Returns:
        One dict per bucket: ``bucket`` (label "a-b"), ``lo``, ``hi``, ``n``
        (sentences) and ``bleu`` (``nan`` for an empty bucket).
    """
    _check_corpus(hypotheses, references)
    if len(src_lengths) != len(hypotheses):
        raise ValueError(
            f"need one source length per hypothesis: got {len(src_lengths)} "
            f"lengths and {len(hypotheses)} hypotheses"
        )
    if len(edges) < 2 or list(edges) != sorted(edges):
        raise ValueError(
            "edges must be increasing with at least 2 values, got "
            f"{list(edges)}"
        )
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        idx = [i for i, n in enumerate(src_lengths) if lo <= n < hi]
        score = (
            corpus_bleu(
                [hypotheses[i] for i in idx], [references[i] for i in idx]
            ).score
            if idx
            else float("nan")
        )
        rows.append(
            {
                "bucket": f"{lo}-{hi - 1}",
                "lo": lo,
                "hi": hi,
                "n": len(idx),
                "bleu": score,
            }
        )
    return rows


# --- mAP (chapter 8) ---------------------------------------------------------
#    Detection is scored per class by average precision: rank the class's
#    detections over all images by score, call one a true positive when it
#    matches a still unmatched ground-truth box of its image with IoU >= t
#    (COCO's greedy rule: the unmatched box of highest IoU), and take the area
#    under the precision-recall curve after replacing each precision by the
#    best precision at any higher recall (the "envelope"). mAP averages AP over
#    the classes that have ground truth; COCO's mAP@[.5:.95] also averages over
#    the ten thresholds t = 0.50, 0.55, ..., 0.95 (Lin et al. 2014). Boxes are
#    corners (x1, y1, x2, y2) in any unit, the same for predictions and
#    targets.
COCO_IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


@dataclass(frozen=True)
class MapResult:
    """Mean average precision, its breakdown, and how it was computed."""

    map: float  # mAP@[.5:.95], mean over classes and the ten COCO thresholds
    map50: float  # mAP at IoU 0.5
    map75: float  # mAP at IoU 0.75
    ap50_per_class: dict[int, float]  # AP@0.5 of each class with ground truth
    interpolation: str  # "coco" (101 recall points) or "voc" (all points)


def average_precision(
    scores: Sequence[float],
    is_tp: Sequence[bool],
    n_gt: int,
    *,
    interpolation: str = "coco",
) -> float:
    """AP of one class at one IoU threshold from its detections.

    Args:
        scores: confidence of each detection (any order; ties keep the given
            order).
        is_tp: whether each detection is a true positive.
        n_gt: number of ground-truth objects of the class (> 0).
        interpolation: ``"coco"``: mean of the precision envelope at the 101
            recalls 0, 0.01, ..., 1 (0 past the highest recall reached);
            ``"voc"``: exact area under the envelope, summing precision ×
            recall step (VOC 2010+, "all points").

    Returns:
        AP in [0, 1]: 1 for every object found before any false positive.
    """
    if n_gt <= 0:
        raise ValueError(
            f"AP needs at least one ground-truth object, got n_gt={n_gt}"
        )
    if len(scores) != len(is_tp):
        raise ValueError(
            f"need one is_tp flag per score: got {len(scores)} scores, "
            f"{len(is_tp)} flags"
        )
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    tp = np.asarray(is_tp, dtype=bool)[order]
    tp_cum, fp_cum = np.cumsum(tp), np.cumsum(~tp)
    recall = tp_cum / n_gt
    precision = tp_cum / np.maximum(tp_cum + fp_cum, 1)
    envelope = (
        np.maximum.accumulate(precision[::-1])[::-1]
        if len(precision)
        else precision
    )
    if interpolation == "coco":
        idx = np.searchsorted(
            recall, np.linspace(0, 1, 101), side="left"
        )  # first rank reaching each recall
        return float(
            np.where(
                idx < len(envelope),
                envelope[np.minimum(idx, len(envelope) - 1)],
                0.0,
            ).mean()
            if len(envelope)
            else 0.0
        )
    if interpolation == "voc":
        steps = np.diff(
            np.concatenate([[0.0], recall])
        )  # recall gained at each rank
        return float((steps * envelope).sum())
    raise ValueError(
        f"interpolation must be 'coco' or 'voc', got {interpolation!r}"
    )


def match_detections(
    pred_boxes: torch.Tensor,
    pred_scores: torch.Tensor,
    gt_boxes: torch.Tensor,
    iou_threshold: float,
) -> np.ndarray:
    """True-positive flags of one image's detections of one class (COCO's
    greedy matching).

    Detections are visited by decreasing score; each takes the unmatched
    ground-truth box of highest IoU if that IoU is at least ``iou_threshold``,
    else it is a false positive. A second detection of an already matched
    object is a false positive.

    Args:
        pred_boxes: ``(P, 4)`` xyxy; pred_scores: ``(P,)``; gt_boxes:
            ``(K, 4)`` xyxy.

    Returns:
        ``(P,)`` bool, in the order of the inputs.
    """
    flags = np.zeros(len(pred_boxes), dtype=bool)
    if len(pred_boxes) == 0 or len(gt_boxes) == 0:
        return flags
    iou = box_iou(pred_boxes.double(), gt_boxes.double())[0].numpy()  # (P, K)
    taken = np.zeros(len(gt_boxes), dtype=bool)
    for i in np.argsort(-pred_scores.double().numpy(), kind="stable"):
        candidates = np.where(taken, -1.0, iou[i])
        j = int(candidates.argmax())
        if candidates[j] >= iou_threshold:
            flags[i], taken[j] = True, True
    return flags


def mean_average_precision(
    predictions: Sequence[dict],
    targets: Sequence[dict],
    *,
    iou_thresholds: Sequence[float] = COCO_IOU_THRESHOLDS,
    interpolation: str = "coco",
) -> MapResult:
    """COCO-style mAP of a detector over a set of images.

    Args:
        predictions: per image
            ``{"boxes": (P, 4) xyxy, "scores": (P,), "labels": (P,)}``.
        targets: per image ``{"boxes": (K, 4) xyxy, "labels": (K,)}``, same
            units.
        iou_thresholds: thresholds averaged into ``map``; must include 0.5 and
            0.75.
        interpolation: ``"coco"`` (101-point, the default) or ``"voc"`` (all
            points).

    Returns:
        A :class:`MapResult`. Classes without ground truth are left out of the
        mean (as COCO does); their detections cannot count.
    """
    if len(predictions) != len(targets):
        raise ValueError(
            "need one prediction dict per target dict: got "
            f"{len(predictions)} and {len(targets)}"
        )
    if not {0.5, 0.75} <= {round(t, 2) for t in iou_thresholds}:
        raise ValueError(
            "iou_thresholds must include 0.5 and 0.75, got "
            f"{list(iou_thresholds)}"
        )
    classes = sorted({int(c) for t in targets for c in t["labels"]})
    if not classes:
        raise ValueError("mAP is undefined without any ground-truth object")
    ap = np.zeros((len(iou_thresholds), len(classes)))  # (thresholds, classes)
    for ci, c in enumerate(classes):
        n_gt = sum(int((t["labels"] == c).sum()) for t in targets)
        for ti, thr in enumerate(iou_thresholds):
            scores, flags = [], []
            for p, t in zip(predictions, targets):
                keep = p["labels"] == c
                flags.append(
                    match_detections(
                        p["boxes"][keep],
                        p["scores"][keep],
                        t["boxes"][t["labels"] == c],
                        thr,
                    )
                )
                scores.append(p["scores"][keep].double().numpy())
            ap[ti, ci] = average_precision(
                np.concatenate(scores),
                np.concatenate(flags),
                n_gt,
                interpolation=interpolation,
            )
    at = {round(t, 2): i for i, t in enumerate(iou_thresholds)}
    return MapResult(
        float(ap.mean()),
        float(ap[at[0.5]].mean()),
        float(ap[at[0.75]].mean()),
        {c: float(a) for c, a in zip(classes, ap[at[0.5]])},
        interpolation,
    )
