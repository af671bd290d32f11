"""Reading chapter 4's captions and attention: masses in boxes, region totals,
relation baselines, BLEU-1..4.

Attention weights over the ``m x n`` regions are upsampled to the image to
measure how much of a word's attention falls inside the box of the object it
names, against chance (the box's share of the image). Generated relation
triples are scored against the scenes' boxes, with the baselines a rule that
ignores the image would reach. Shape letters: T steps, N = m n regions,
H/W image size.
"""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

from seqlib.metrics import corpus_bleu
from seqlib.shapes import expect_shape


def upsample_attention(
    weights: torch.Tensor,
    grid: tuple[int, int],
    size: tuple[int, int],
    *,
    mode: str = "nearest",
) -> torch.Tensor:
    """Region weights (T, N) -> maps over the image (T, H, W) whose pixels sum
    to each row's total.

    ``nearest`` spreads each region's weight evenly over its patch (exact
    masses, used for measuring); ``bilinear`` gives the smooth overlay of the
    paper's figures.
    """
    m, n = grid
    expect_shape(weights, (None, m * n), name=f"weights (T, N={m}*{n})")
    maps = einops.rearrange(
        weights, "t (m n) -> t 1 m n", m=m, n=n
    )  # (T, 1, m, n)
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    up = F.interpolate(maps, size=size, mode=mode, **kwargs)[:, 0]  # (T, H, W)
    total = weights.sum(-1)[:, None, None]  # (T, 1, 1)
    return (
        up / up.sum((-2, -1), keepdim=True).clamp_min(1e-12) * total
    )  # (T, H, W)


def mass_in_box(
    attention_map: torch.Tensor, box: torch.Tensor
) -> torch.Tensor:
    """Attention mass inside a pixel box ``(x1, y1, x2, y2)`` of a map (H, W)
    or maps (T, H, W)."""
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    return attention_map[..., y1:y2, x1:x2].sum((-2, -1))


def box_share(box: torch.Tensor, size: tuple[int, int]) -> float:
    """The fraction of the image a box covers: the mass a uniform attention
    would put in it (chance)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return (x2 - x1) * (y2 - y1) / (size[0] * size[1])


def attention_on_named_objects(
    words,
    weights: torch.Tensor,
    boxes: dict,
    grid: tuple[int, int],
    size: tuple[int, int],
) -> list[dict]:
    """For every generated word that names an object, the attention mass inside
    its box and chance.

    Args:
        words: the generated caption (T' tokens).
        weights: (T' or T' + 1, N) the attention at each step (row t produced
            word t).
        boxes: word -> pixel box ``(x1, y1, x2, y2)`` of the object it names.
        grid: the region grid (m, n); ``size``: the image (H, W).

    Returns:
        One dict per naming word: ``word``, ``step``, ``mass`` (attention in
        the box) and ``chance`` (the box's share of the image, what uniform
        attention gives).
    """
    maps = upsample_attention(weights, grid, size)  # (T, H, W), exact masses
    return [
        {
            "word": w,
            "step": t,
            "mass": float(mass_in_box(maps[t], boxes[w])),
            "chance": box_share(boxes[w], size),
        }
        for t, w in enumerate(words)
        if w in boxes and t < maps.shape[0]
    ]


def region_totals(
    weights: torch.Tensor, n_steps: int | None = None
) -> torch.Tensor:
    """Each region's attention summed over a caption's steps,
    ``s_i = sum_t alpha_ti``: (T, N) -> (N,).

    ``n_steps`` keeps only the first steps (e.g. the words, without ``<eos>``).
    The doubly stochastic penalty of the caption is ``((1 - s) ** 2).sum()``.
    """
    expect_shape(weights, ("T", "N"), name="weights (T, N)")
    return weights[:n_steps].sum(0)  # (N,)


def relation_baselines(captions, scenes) -> dict[str, float]:
    """The relation triples that generated captions state, scored against the
    scenes' boxes, with baselines.

    For every stated triple ``(a, rel, b)``
    (:func:`seqlib.data.scenes.parse_caption`): is it true; are both objects in
    the scene; and what would the relation word score if it were chosen another
    way, for the same two nouns: at random among the four relations (expected
    value: the number of true relations / 4), or always the same word (each of
    the four; ``best_fixed`` is the best of them in hindsight, an upper bound
    for any rule that ignores the image).

    Returns:
        ``stated``, ``present`` (triples whose two objects are both in the
        scene) counts, and fractions of ``stated``: ``true``, ``random``,
        ``best_fixed``, plus ``true_if_present`` / ``random_if_present``: the
        same among ``present``.
    """
    from seqlib.data.scenes import RELATIONS, parse_caption, relations

    words = tuple(RELATIONS)
    stated = present = true = 0
    random_hits, fixed = 0.0, dict.fromkeys(words, 0)
    for tokens, scene in zip(captions, scenes):
        box = dict(zip(scene.nouns, scene.boxes.tolist()))
        for a, rel, b in parse_caption(tokens)[1]:
            stated += 1
            if a not in box or b not in box or a == b:
                # a relation with an absent object (or an object with itself)
                # is false whatever the word
                continue
            holds = relations(box[a], box[b])
            present += 1
            true += rel in holds
            random_hits += len(holds) / len(words)
            for w in holds:
                fixed[w] += 1
    n, k = max(stated, 1), max(present, 1)
    return {
        "stated": stated,
        "present": present,
        "true": true / n,
        "random": random_hits / n,
        "best_fixed": max(fixed.values()) / n,
        "true_if_present": true / k,
        "random_if_present": random_hits / k,
    }


def bleu_1_to_4(hypotheses, references) -> dict[str, float]:
    """Cumulative BLEU-1..4 (0-100), as captioning papers report them, from one
    sacrebleu run.

    BLEU-n is ``BP * exp(mean_{k<=n} log p_k)`` over the modified precisions
    ``p_1..p_n`` (Papineni et al. 2002); BLEU-4 is sacrebleu's score.
    """
    res = corpus_bleu(hypotheses, references)
    p = [max(q, 1e-9) / 100 for q in res.precisions]
    logs = torch.tensor(p, dtype=torch.float64).log()
    return {
        f"BLEU-{n}": float(100 * res.bp * logs[:n].mean().exp())
        for n in range(1, 5)
    }
