"""Alignment scores for RNN attention (chapters 2-4): score, softmax, weighted
sum.

Every form of attention in this book is the same three steps: score each key
against a query, turn the scores into weights with a (masked) softmax, and
return the weighted sum of the values. The score functions are the ones of
Bahdanau et al. (2015, additive), Luong et al. (2015: dot, general, location,
and the local-p window), Graves et al. (2014, content-based cosine) and Vaswani
et al. (2017, scaled dot). Each is a small module with its formula in the
docstring and two methods, ``prepare(keys)`` (work that depends on the keys
only, done once per source sentence) and ``score(query, prepared)``; the
function :func:`attend` does the rest. Shape letters: B batch, T queries
(decoder steps), S keys (source positions), D widths (``Dq``, ``Dk``, ``Dv``).
The attention *layer* of chapter 5 on (projections, multi-head attention) is
:mod:`seqlib.attention`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqlib.attention import masked_softmax
from seqlib.shapes import expect_dtype, expect_shape


# --- masks and hard weights --------------------------------------------------
def _expand_mask(
    mask: torch.Tensor | None, B: int, T: int, S: int
) -> torch.Tensor | None:
    """Accept a ``(B, S)`` or ``(B, T, S)`` bool mask; return it as
    ``(B, T, S)``."""
    if mask is None:
        return None
    expect_dtype(mask, torch.bool, name="mask")
    if mask.dim() == 2:
        expect_shape(mask, (B, S), name="mask (B, S)")
        return mask[:, None, :].expand(B, T, S)  # (B, T, S)
    expect_shape(mask, (B, T, S), name="mask (B, T, S)")
    return mask


def hard_weights(
    scores: torch.Tensor,
    mask: torch.Tensor | None,
    *,
    tau: float = 1.0,
    training: bool = True,
) -> torch.Tensor:
    """Hard attention: one-hot weights on one sampled source position.

    Sampling a position is not differentiable. In training we draw it with the
    Gumbel-max trick and let the gradient pass through the *soft*
    Gumbel-softmax probabilities (straight-through estimator, Jang et al.
    2017); at evaluation the most likely position is taken. Returns
    ``(B, T, S)`` one-hot rows (all zero where every position is masked).
    """
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    if training:
        weights = F.gumbel_softmax(scores, tau=tau, hard=True, dim=-1)
    else:
        weights = F.one_hot(scores.argmax(-1), scores.shape[-1]).to(
            scores.dtype
        )
    return weights if mask is None else weights * mask


# --- score functions ---------------------------------------------------------
class Score(nn.Module):
    """Base class: ``score(query, prepare(keys))`` gives ``(B, T, S)``
    alignment scores."""

    def prepare(self, keys: torch.Tensor) -> torch.Tensor:
        """Key-only work, reusable for every decoder step. Default: none."""
        return keys

    def score(
        self, query: torch.Tensor, prepared: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Scores of ``query`` (B, T, Dq) against ``keys`` (B, S, Dk): (B, T,
        S)."""
        return self.score(query, self.prepare(keys))


def _same_width(query: torch.Tensor, keys: torch.Tensor, what: str) -> None:
    if query.shape[-1] != keys.shape[-1]:
        raise ValueError(
            f"{what} needs query and key of equal width: query (B, T, D)="
            f"{tuple(query.shape)}, keys (B, S, D)={tuple(keys.shape)}"
        )


class DotScore(Score):
    """Dot product (Luong et al. 2015): ``score(s, h) = s^T h``. No
    parameters."""

    def score(self, query, prepared):
        _same_width(query, prepared, "dot score")
        return query @ prepared.transpose(1, 2)  # (B, T, S)


class ScaledDotScore(Score):
    """Scaled dot product (Vaswani et al. 2017):
    ``score(s, h) = s^T h / sqrt(d)``.

    ``d`` is the key width: for random vectors with unit-variance entries
    ``s^T h`` has variance ``d``, so dividing by ``sqrt(d)`` keeps the softmax
    out of its saturated, small-gradient regime as the width grows.
    """

    def score(self, query, prepared):
        _same_width(query, prepared, "scaled dot score")
        return (
            query @ prepared.transpose(1, 2) / math.sqrt(prepared.shape[-1])
        )  # (B, T, S)


class CosineScore(Score):
    """Content-based (Graves et al. 2014): ``score(s, h) = beta * cos(s, h)``.

    The cosine lies in [-1, 1], so a softmax of raw cosines is nearly uniform;
    ``beta`` (the "key strength", learned here, kept positive through its log)
    sets how sharp the attention can become.
    """

    def __init__(self, beta: float = 10.0):
        super().__init__()
        self.log_beta = nn.Parameter(torch.tensor(math.log(beta)))

    def prepare(self, keys):
        return F.normalize(keys, dim=-1)

    def score(self, query, prepared):
        _same_width(query, prepared, "cosine score")
        q = F.normalize(query, dim=-1)
        return self.log_beta.exp() * (
            q @ prepared.transpose(1, 2)
        )  # (B, T, S)


class GeneralScore(Score):
    """General / bilinear (Luong et al. 2015): ``score(s, h) = s^T W_a h``.

    ``W_a h`` is computed once per sentence in :meth:`prepare`. Query and key
    widths may differ.
    """

    def __init__(self, d_query: int, d_key: int):
        super().__init__()
        self.W = nn.Linear(d_key, d_query, bias=False)

    def prepare(self, keys):
        return self.W(keys)  # (B, S, Dq)

    def score(self, query, prepared):
        return query @ prepared.transpose(1, 2)  # (B, T, S)


class AdditiveScore(Score):
    """Additive / concat (Bahdanau et al. 2015):
    ``score(s, h) = v_a^T tanh(W_a s + U_a h)``.

    ``U_a h`` is computed once per sentence (Bahdanau et al., appendix A.1.2).
    """

    def __init__(self, d_query: int, d_key: int, d_hidden: int = 64):
        super().__init__()
        self.W = nn.Linear(d_query, d_hidden, bias=False)
        self.U = nn.Linear(d_key, d_hidden, bias=True)
        self.v = nn.Linear(d_hidden, 1, bias=False)

    def prepare(self, keys):
        return self.U(keys)  # (B, S, A)

    def score(self, query, prepared):
        mixed = torch.tanh(
            self.W(query)[:, :, None, :] + prepared[:, None, :, :]
        )  # (B, T, S, A)
        return self.v(mixed).squeeze(-1)  # (B, T, S)


class LocationScore(Score):
    """Location-based (Luong et al. 2015): ``score(s, j) = (W_a s)_j``.

    The weights depend on the decoder state only, never on the source words:
    the model learns *where* to look (a position), not *what* to look for.
    ``W_a`` has one row per position, so sources are limited to ``max_len``
    tokens.
    """

    def __init__(self, d_query: int, max_len: int):
        super().__init__()
        self.max_len = max_len
        self.W = nn.Linear(d_query, max_len)

    def score(self, query, prepared):
        S = prepared.shape[1]
        if S > self.max_len:
            raise ValueError(
                "location score was built for sources of at most "
                f"{self.max_len} positions, got keys of shape "
                f"(B, S, D)={tuple(prepared.shape)}"
            )
        return self.W(query)[:, :, :S]  # (B, T, S)


SCORES = ("dot", "scaled_dot", "cosine", "general", "additive", "location")


def score_function(
    name: str,
    *,
    d_query: int,
    d_key: int,
    d_hidden: int = 64,
    max_len: int = 128,
) -> Score:
    """Build the score called ``name`` (one of :data:`SCORES`) for the given
    widths."""
    if name == "dot":
        return DotScore()
    if name == "scaled_dot":
        return ScaledDotScore()
    if name == "cosine":
        return CosineScore()
    if name == "general":
        return GeneralScore(d_query, d_key)
    if name == "additive":
        return AdditiveScore(d_query, d_key, d_hidden)
    if name == "location":
        return LocationScore(d_query, max_len)
    raise ValueError(f"unknown score {name!r}; expected one of {SCORES}")


# --- attention ---------------------------------------------------------------
def attend(
    query: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    *,
    score: Score,
    mask: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    prepared: torch.Tensor | None = None,
    hard: bool = False,
    tau: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Context vectors ``c_t = sum_j alpha_tj v_j`` with
    ``alpha_t = softmax_j(score(q_t, k_j))``.

    Args:
        query: ``(B, T, Dq)`` one query per output step (T = 1 inside an RNN
            decoder).
        keys: ``(B, S, Dk)`` what the queries are compared with.
        values: ``(B, S, Dv)`` what is averaged (often the keys themselves).
        score: a :class:`Score` module.
        mask: ``(B, S)`` or ``(B, T, S)`` bool, True where attending is
            allowed.
        bias: optional ``(B, T, S)`` added to the scores (e.g. a local window's
            prior).
        prepared: ``score.prepare(keys)``, if the caller cached it.
        hard: sample one position (see :func:`hard_weights`) instead of
            averaging.
        tau: Gumbel-softmax temperature for ``hard``.

    Returns:
        ``context`` (B, T, Dv) and ``weights`` (B, T, S); each weight row sums
        to 1 (0 for a fully masked row) and masked positions are exactly 0.
    """
    dims = expect_shape(query, ("B", "T", None), name="query")
    dims = expect_shape(keys, ("B", "S", None), name="keys", sizes=dims)
    expect_shape(values, ("B", "S", None), name="values", sizes=dims)
    B, T, S = dims["B"], dims["T"], dims["S"]
    mask = _expand_mask(mask, B, T, S)
    scores = score.score(
        query, score.prepare(keys) if prepared is None else prepared
    )  # (B, T, S)
    if bias is not None:
        expect_shape(bias, (B, T, S), name="bias")
        scores = scores + bias
    if hard:
        weights = hard_weights(scores, mask, tau=tau, training=score.training)
    else:
        weights = masked_softmax(scores, mask)  # (B, T, S)
    return weights @ values, weights  # (B, T, Dv), (B, T, S)


class LocalWindow(nn.Module):
    """Luong et al.'s local-p attention: a predicted centre and a Gaussian
    window around it.

    ``p_t = (n - 1) * sigmoid(v_p^T tanh(W_p s_t))`` where ``n`` is the true
    source length. Positions with ``|j - p_t| > D`` are masked, and the others
    get the log-prior ``-(j - p_t)^2 / (2 sigma^2)`` with ``sigma = D / 2``
    added to their scores. Luong et al. multiply the softmax weights by the
    Gaussian; adding its log before the softmax is the same up to
    renormalisation, so the weights still sum to 1. The Gaussian keeps ``p_t``
    differentiable.
    """

    def __init__(self, d_query: int, window: int = 4, d_hidden: int = 64):
        super().__init__()
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self.W_p = nn.Linear(d_query, d_hidden, bias=False)
        self.v_p = nn.Linear(d_hidden, 1, bias=False)

    def forward(
        self, query: torch.Tensor, lengths: torch.Tensor, S: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``bias`` (B, T, S), ``mask`` (B, T, S) and the centres ``p``
        (B, T)."""
        dims = expect_shape(query, ("B", "T", None), name="query")
        expect_shape(lengths, (dims["B"],), name="lengths")
        gate = torch.sigmoid(self.v_p(torch.tanh(self.W_p(query)))).squeeze(
            -1
        )  # (B, T)
        p = (lengths[:, None].to(query.dtype) - 1) * gate  # (B, T)
        j = torch.arange(S, device=query.device, dtype=query.dtype)  # (S,)
        dist = j[None, None, :] - p[:, :, None]  # (B, T, S)
        sigma = self.window / 2
        mask = (dist.abs() <= self.window) & (
            j[None, None, :] < lengths[:, None, None]
        )
        return -dist.pow(2) / (2 * sigma**2), mask, p
