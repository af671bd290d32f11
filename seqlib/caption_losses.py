"""Losses for chapter 4's captioner: the doubly stochastic penalty, soft
attention, REINFORCE for hard attention.

*Soft* attention (Xu et al. 2015) trains by backpropagation, with the doubly
stochastic regulariser ``lambda sum_i (1 - sum_t alpha_ti)^2`` that asks every
region to be looked at about once over a caption. *Hard* attention samples one
region per word; the words still train by backpropagation, the sampler by
REINFORCE (Williams 1992) against a moving-average baseline. Every loss takes a
:class:`seqlib.captioning.CaptionOutput`. Shape letters: B batch, T caption
length, N regions, V vocabulary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from seqlib.captioning import CaptionOutput
from seqlib.shapes import expect_shape


def doubly_stochastic_penalty(
    weights: torch.Tensor, step_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Xu et al.'s Eq. (14) regulariser ``sum_i (1 - sum_t alpha_ti)^2``,
    averaged over the batch.

    Each row ``alpha_t`` already sums to 1 over regions; the penalty pushes the
    sum over *time* of each region's weight towards 1 as well, so that over a
    caption every region gets looked at and none is stared at for every word.

    Args:
        weights: (B, T, N) attention weights.
        step_mask: (B, T) bool, True on real (non-padding) steps; padded steps
            are ignored.
    """
    dims = expect_shape(weights, ("B", "T", "N"), name="weights")
    if step_mask is not None:
        expect_shape(step_mask, ("B", "T"), name="step_mask", sizes=dims)
        weights = weights * step_mask[:, :, None]
    return (
        ((1 - weights.sum(1)) ** 2).sum(-1).mean()
    )  # sum over t, then over i; mean over B


def soft_attention_loss(
    out: CaptionOutput,
    tgt_out: torch.Tensor,
    *,
    lam: float = 1.0,
    pad_id: int = 0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy per real token plus ``lam`` times
    :func:`doubly_stochastic_penalty`."""
    expect_shape(tgt_out, tuple(out.logits.shape[:2]), name="tgt_out")
    ce = F.cross_entropy(
        out.logits.flatten(0, 1), tgt_out.flatten(), ignore_index=pad_id
    )
    reg = doubly_stochastic_penalty(out.weights, tgt_out != pad_id)
    return ce + lam * reg, {
        "ce": float(ce.detach()),
        "ds": float(reg.detach()),
    }


class MovingAverageBaseline:
    """``b <- momentum * b + (1 - momentum) * mean reward`` (Xu et al. Sec.
    4.1); starts at the first mean."""

    def __init__(self, momentum: float = 0.9):
        self.momentum, self.value = momentum, None

    def update(self, reward: torch.Tensor) -> float:
        """Return the baseline to use for this batch, then fold the batch's
        mean reward in."""
        mean = float(reward.mean())
        b = mean if self.value is None else self.value
        self.value = (
            mean
            if self.value is None
            else self.momentum * self.value + (1 - self.momentum) * mean
        )
        return b


def hard_attention_loss(
    out: CaptionOutput,
    tgt_out: torch.Tensor,
    baseline: MovingAverageBaseline,
    *,
    lam_entropy: float = 0.01,
    lam_ds: float = 0.0,
    pad_id: int = 0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """REINFORCE for sampled attention: words by backprop, the region sampler
    by the score function.

    The reward of a caption is its mean per-word log-likelihood given the
    sampled regions, ``r = log p(y | s, a) / T``. The sampler's gradient
    estimate is ``(r - b) grad sum_t log alpha_t(s_t)`` with the moving-average
    baseline ``b`` (which lowers the variance without biasing it), plus an
    entropy bonus ``lam_entropy H(alpha_t)`` that keeps it exploring (Xu et al.
    Eq. 12).
    """
    if out.log_probs is None:
        raise ValueError(
            "hard_attention_loss needs a model with hard=True "
            "(out.log_probs is None)"
        )
    expect_shape(tgt_out, tuple(out.logits.shape[:2]), name="tgt_out")
    real = (tgt_out != pad_id).float()  # (B, T)
    nll = F.cross_entropy(
        out.logits.transpose(1, 2),
        tgt_out,
        ignore_index=pad_id,
        reduction="none",
    )  # (B, T)
    n_words = real.sum(1).clamp_min(1)  # (B,)
    reward = -(nll * real).sum(1).detach() / n_words  # (B,)
    b = baseline.update(reward)
    reinforce = -(
        (reward - b) * (out.log_probs * real).sum(1) / n_words
    ).mean()
    entropy = -(out.weights * out.weights.clamp_min(1e-12).log()).sum(
        -1
    )  # (B, T)
    entropy = (entropy * real).sum() / real.sum()
    ce = (nll * real).sum() / real.sum()
    reg = doubly_stochastic_penalty(out.weights, real.bool())
    loss = ce + reinforce - lam_entropy * entropy + lam_ds * reg
    return loss, {
        "ce": float(ce.detach()),
        "reward": float(reward.mean()),
        "baseline": b,
        "entropy": float(entropy.detach()),
    }
