"""Attention: alignment scores, masks, and the weighted sum they drive.

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
The last section (chapter 5) adds the attention *layer*: projections to queries, keys
and values, self-attention, and :class:`MultiHeadAttention` (h heads of width d).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from seqlib.shapes import expect_dtype, expect_shape


# --- masks and softmax --------------------------------------------------------------------
def padding_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """``(B, S)`` bool mask, True on real positions ``j < lengths[b]``, False on padding."""
    expect_shape(lengths, ("B",), name="lengths")
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]  # (B, S)


def _expand_mask(mask: torch.Tensor | None, B: int, T: int, S: int) -> torch.Tensor | None:
    """Accept a ``(B, S)`` or ``(B, T, S)`` bool mask; return it as ``(B, T, S)``."""
    if mask is None:
        return None
    expect_dtype(mask, torch.bool, name="mask")
    if mask.dim() == 2:
        expect_shape(mask, (B, S), name="mask (B, S)")
        return mask[:, None, :].expand(B, T, S)  # (B, T, S)
    expect_shape(mask, (B, T, S), name="mask (B, T, S)")
    return mask


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last axis that gives masked positions exactly zero weight.

    A row whose positions are all masked gets all-zero weights (not NaN): the
    fill value is the most negative finite float, so the softmax stays finite
    and its gradient too, and the final multiplication by the mask zeroes it.

    Args:
        scores: ``(B, T, S)`` alignment scores.
        mask: ``(B, T, S)`` bool, True where attention is allowed, or None.
    """
    if mask is None:
        return torch.softmax(scores, dim=-1)
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-1) * mask


def hard_weights(scores: torch.Tensor, mask: torch.Tensor | None, *, tau: float = 1.0,
                 training: bool = True) -> torch.Tensor:
    """Hard attention: one-hot weights on one sampled source position.

    Sampling a position is not differentiable. In training we draw it with the
    Gumbel-max trick and let the gradient pass through the *soft* Gumbel-softmax
    probabilities (straight-through estimator, Jang et al. 2017); at evaluation
    the most likely position is taken. Returns ``(B, T, S)`` one-hot rows (all
    zero where every position is masked).
    """
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    if training:
        weights = F.gumbel_softmax(scores, tau=tau, hard=True, dim=-1)
    else:
        weights = F.one_hot(scores.argmax(-1), scores.shape[-1]).to(scores.dtype)
    return weights if mask is None else weights * mask


# --- score functions ----------------------------------------------------------------------
class Score(nn.Module):
    """Base class: ``score(query, prepare(keys))`` gives ``(B, T, S)`` alignment scores."""

    def prepare(self, keys: torch.Tensor) -> torch.Tensor:
        """Key-only work, reusable for every decoder step. Default: none."""
        return keys

    def score(self, query: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Scores of ``query`` (B, T, Dq) against ``keys`` (B, S, Dk): (B, T, S)."""
        return self.score(query, self.prepare(keys))


def _same_width(query: torch.Tensor, keys: torch.Tensor, what: str) -> None:
    if query.shape[-1] != keys.shape[-1]:
        raise ValueError(f"{what} needs query and key of equal width: query (B, T, D)="
                         f"{tuple(query.shape)}, keys (B, S, D)={tuple(keys.shape)}")


class DotScore(Score):
    """Dot product (Luong et al. 2015): ``score(s, h) = s^T h``. No parameters."""

    def score(self, query, prepared):
        _same_width(query, prepared, "dot score")
        return query @ prepared.transpose(1, 2)  # (B, T, S)


class ScaledDotScore(Score):
    """Scaled dot product (Vaswani et al. 2017): ``score(s, h) = s^T h / sqrt(d)``.

    ``d`` is the key width: for random vectors with unit-variance entries
    ``s^T h`` has variance ``d``, so dividing by ``sqrt(d)`` keeps the softmax
    out of its saturated, small-gradient regime as the width grows.
    """

    def score(self, query, prepared):
        _same_width(query, prepared, "scaled dot score")
        return query @ prepared.transpose(1, 2) / math.sqrt(prepared.shape[-1])  # (B, T, S)


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
        return self.log_beta.exp() * (q @ prepared.transpose(1, 2))  # (B, T, S)


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
    """Additive / concat (Bahdanau et al. 2015): ``score(s, h) = v_a^T tanh(W_a s + U_a h)``.

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
        mixed = torch.tanh(self.W(query)[:, :, None, :] + prepared[:, None, :, :])  # (B, T, S, A)
        return self.v(mixed).squeeze(-1)  # (B, T, S)


class LocationScore(Score):
    """Location-based (Luong et al. 2015): ``score(s, j) = (W_a s)_j``.

    The weights depend on the decoder state only, never on the source words: the
    model learns *where* to look (a position), not *what* to look for. ``W_a``
    has one row per position, so sources are limited to ``max_len`` tokens.
    """

    def __init__(self, d_query: int, max_len: int):
        super().__init__()
        self.max_len = max_len
        self.W = nn.Linear(d_query, max_len)

    def score(self, query, prepared):
        S = prepared.shape[1]
        if S > self.max_len:
            raise ValueError(f"location score was built for sources of at most {self.max_len} "
                             f"positions, got keys of shape (B, S, D)={tuple(prepared.shape)}")
        return self.W(query)[:, :, :S]  # (B, T, S)


SCORES = ("dot", "scaled_dot", "cosine", "general", "additive", "location")


def score_function(name: str, *, d_query: int, d_key: int, d_hidden: int = 64,
                   max_len: int = 128) -> Score:
    """Build the score called ``name`` (one of :data:`SCORES`) for the given widths."""
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


# --- attention ----------------------------------------------------------------------------
def attend(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, *, score: Score,
           mask: torch.Tensor | None = None, bias: torch.Tensor | None = None,
           prepared: torch.Tensor | None = None, hard: bool = False,
           tau: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Context vectors ``c_t = sum_j alpha_tj v_j`` with ``alpha_t = softmax_j(score(q_t, k_j))``.

    Args:
        query: ``(B, T, Dq)`` one query per output step (T = 1 inside an RNN decoder).
        keys: ``(B, S, Dk)`` what the queries are compared with.
        values: ``(B, S, Dv)`` what is averaged (often the keys themselves).
        score: a :class:`Score` module.
        mask: ``(B, S)`` or ``(B, T, S)`` bool, True where attending is allowed.
        bias: optional ``(B, T, S)`` added to the scores (e.g. a local window's prior).
        prepared: ``score.prepare(keys)``, if the caller cached it.
        hard: sample one position (see :func:`hard_weights`) instead of averaging.
        tau: Gumbel-softmax temperature for ``hard``.

    Returns:
        ``context`` (B, T, Dv) and ``weights`` (B, T, S); each weight row sums to 1
        (0 for a fully masked row) and masked positions are exactly 0.
    """
    dims = expect_shape(query, ("B", "T", None), name="query")
    dims = expect_shape(keys, ("B", "S", None), name="keys", sizes=dims)
    expect_shape(values, ("B", "S", None), name="values", sizes=dims)
    B, T, S = dims["B"], dims["T"], dims["S"]
    mask = _expand_mask(mask, B, T, S)
    scores = score.score(query, score.prepare(keys) if prepared is None else prepared)  # (B, T, S)
    if bias is not None:
        expect_shape(bias, (B, T, S), name="bias")
        scores = scores + bias
    if hard:
        weights = hard_weights(scores, mask, tau=tau, training=score.training)
    else:
        weights = masked_softmax(scores, mask)  # (B, T, S)
    return weights @ values, weights  # (B, T, Dv), (B, T, S)


class LocalWindow(nn.Module):
    """Luong et al.'s local-p attention: a predicted centre and a Gaussian window around it.

    ``p_t = (n - 1) * sigmoid(v_p^T tanh(W_p s_t))`` where ``n`` is the true source
    length. Positions with ``|j - p_t| > D`` are masked, and the others get the
    log-prior ``-(j - p_t)^2 / (2 sigma^2)`` with ``sigma = D / 2`` added to their
    scores. Luong et al. multiply the softmax weights by the Gaussian; adding its
    log before the softmax is the same up to renormalisation, so the weights still
    sum to 1. The Gaussian keeps ``p_t`` differentiable.
    """

    def __init__(self, d_query: int, window: int = 4, d_hidden: int = 64):
        super().__init__()
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self.W_p = nn.Linear(d_query, d_hidden, bias=False)
        self.v_p = nn.Linear(d_hidden, 1, bias=False)

    def forward(self, query: torch.Tensor, lengths: torch.Tensor,
                S: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``bias`` (B, T, S), ``mask`` (B, T, S) and the centres ``p`` (B, T)."""
        dims = expect_shape(query, ("B", "T", None), name="query")
        expect_shape(lengths, (dims["B"],), name="lengths")
        gate = torch.sigmoid(self.v_p(torch.tanh(self.W_p(query)))).squeeze(-1)  # (B, T)
        p = (lengths[:, None].to(query.dtype) - 1) * gate  # (B, T)
        j = torch.arange(S, device=query.device, dtype=query.dtype)  # (S,)
        dist = j[None, None, :] - p[:, :, None]  # (B, T, S)
        sigma = self.window / 2
        mask = (dist.abs() <= self.window) & (j[None, None, :] < lengths[:, None, None])
        return -dist.pow(2) / (2 * sigma ** 2), mask, p


# --- chapter 5: the attention layer, self-attention and multi-head attention -------------
# From here on queries, keys and values are projections of token vectors, and every later
# chapter (ViT, Swin, DETR, ViViT, RVT, TLB) uses :class:`MultiHeadAttention`. Mask
# convention, as everywhere in this module: a bool mask is True where attending is ALLOWED
# (the convention of ``F.scaled_dot_product_attention``; ``torch.nn.MultiheadAttention``
# uses the opposite one). Shape letters here: h heads, d head width, T = M queries,
# S = N keys/inputs.
def causal_mask(T: int, S: int | None = None, *, device: torch.device | str | None = None) -> torch.Tensor:
    """``(T, S)`` bool mask, True where query ``t`` may attend key ``s <= t + (S - T)``.

    With ``S = T`` (the default) this is the lower triangle: position ``t`` sees
    itself and the past, never the future (Vaswani et al. 2017, section 3.2.3).
    """
    S = T if S is None else S
    if T < 1 or S < T:
        raise ValueError(f"causal_mask needs 1 <= T <= S, got T={T}, S={S}")
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)  # (T, S)


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *,
                                 mask: torch.Tensor | None = None, bias: torch.Tensor | None = None,
                                 dropout_p: float = 0.0, fast: bool = True,
                                 return_attention: bool = False):
    """``softmax(q k^T / sqrt(d) + bias) v`` with masking, written out or through PyTorch's kernel.

    Args:
        q: ``(..., T, d)`` queries; k: ``(..., S, d)`` keys; v: ``(..., S, dv)`` values.
        mask: bool, broadcastable to ``(..., T, S)``, True where attending is allowed.
        bias: float, broadcastable to ``(..., T, S)``, added to the scores (Swin's B).
        dropout_p: dropout on the weights (pass 0 at evaluation).
        fast: use ``F.scaled_dot_product_attention``; ``False`` runs the teaching path.
        return_attention: also return the weights; this needs the teaching path.

    Returns:
        ``(..., T, dv)``, and the weights ``(..., T, S)`` if asked. A query whose keys
        are all masked gets zero weights and a zero output, never NaN.
    """
    if fast and not return_attention:
        return _fast_attention(q, k, v, mask=mask, bias=bias, dropout_p=dropout_p)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., T, S)
    if bias is not None:
        scores = scores + bias
    weights = masked_softmax(scores, mask)  # (..., T, S)
    if dropout_p > 0:
        weights = F.dropout(weights, dropout_p)
    out = weights @ v  # (..., T, dv)
    return (out, weights) if return_attention else out


def _fast_attention(q, k, v, *, mask, bias, dropout_p):
    """The same through ``F.scaled_dot_product_attention`` (fused kernels on GPU)."""
    if bias is not None:
        bias = bias.to(q.dtype)  # e.g. a float32 bias table under bf16 autocast
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p)
    # Rows with no allowed key are opened to every key for the kernel (some backends give
    # NaN for them), then their output is zeroed, as in masked_softmax.
    alive = mask.any(-1, keepdim=True)  # (..., T, 1)
    open_mask = mask | ~alive
    attn_mask = open_mask if bias is None else bias.masked_fill(~open_mask, float("-inf"))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)
    return out * alive  # (..., T, dv)


class GeneralAttention(nn.Module):
    """The general attention layer: ``M`` given queries against ``N`` input vectors.

    Keys ``k_j = W_k x_j`` and values ``v_j = W_v x_j`` are computed from the inputs
    ``x`` (N×D); the queries ``q`` (M×D_k) come from elsewhere (an RNN decoder state,
    DETR's object queries). Output ``y_i = sum_j softmax_j(q_i·k_j / sqrt(D_k)) v_j``.
    """

    def __init__(self, d_input: int, d_key: int, d_value: int | None = None):
        super().__init__()
        self.to_k = nn.Linear(d_input, d_key)
        self.to_v = nn.Linear(d_input, d_value or d_key)

    def forward(self, query: torch.Tensor, inputs: torch.Tensor, *, mask: torch.Tensor | None = None,
                return_attention: bool = False):
        """``query`` (B, M, D_k), ``inputs`` (B, N, D), ``mask`` bool (B, M, N) -> (B, M, D_v)."""
        dims = expect_shape(query, ("B", "M", self.to_k.out_features), name="query")
        expect_shape(inputs, (dims["B"], "N", self.to_k.in_features), name="inputs")
        k, v = self.to_k(inputs), self.to_v(inputs)  # (B, N, D_k), (B, N, D_v)
        return scaled_dot_product_attention(query, k, v, mask=mask, fast=False,
                                            return_attention=return_attention)


class SelfAttention(GeneralAttention):
    """Self-attention: the queries are projections of the same inputs, ``q_i = W_q x_i``."""

    def __init__(self, d_input: int, d_key: int, d_value: int | None = None):
        super().__init__(d_input, d_key, d_value)
        self.to_q = nn.Linear(d_input, d_key)

    def forward(self, x: torch.Tensor, *, mask: torch.Tensor | None = None, return_attention: bool = False):
        """``x`` (B, N, D) -> (B, N, D_v) (and weights (B, N, N))."""
        return super().forward(self.to_q(x), x, mask=mask, return_attention=return_attention)


class MultiHeadAttention(nn.Module):
    """Multi-head attention (Vaswani et al. 2017, section 3.2.2), the attention of the whole book.

    ``h`` heads attend in parallel in ``d = D / h``-dimensional subspaces; their outputs
    are concatenated to ``(B, T, h·d)`` and projected: ``proj(concat_i head_i)``. Weight
    layout (``to_q``, ``to_k``, ``to_v``, ``proj``) matches ``nn.MultiheadAttention``'s
    ``in_proj_weight`` split in three and its ``out_proj``.

    Args:
        dim: model width D (queries and output).
        heads: number of heads h (must divide ``dim``).
        kdim, vdim: widths of the key and value inputs (default ``dim``), e.g. a CNN's
            feature width in cross-attention.
        dropout: dropout on the attention weights during training.
        bias: biases in the four projections.
        fast: ``F.scaled_dot_product_attention`` (True) or the step-by-step path.
    """

    def __init__(self, dim: int, heads: int, *, kdim: int | None = None, vdim: int | None = None,
                 dropout: float = 0.0, bias: bool = True, fast: bool = True):
        super().__init__()
        if heads < 1 or dim % heads:
            raise ValueError(f"heads must divide dim: got dim={dim}, heads={heads}")
        self.dim, self.heads, self.dropout, self.fast = dim, heads, dropout, fast
        self.to_q = nn.Linear(dim, dim, bias=bias)
        self.to_k = nn.Linear(kdim or dim, dim, bias=bias)
        self.to_v = nn.Linear(vdim or dim, dim, bias=bias)
        self.proj = nn.Linear(dim, dim, bias=bias)

    def forward(self, query: torch.Tensor, key: torch.Tensor | None = None, value: torch.Tensor | None = None,
                *, key_padding_mask: torch.Tensor | None = None, attn_mask: torch.Tensor | None = None,
                attn_bias: torch.Tensor | None = None, causal: bool = False, return_attention: bool = False):
        """Attend from ``query`` to ``key``/``value`` (self-attention when both are None).

        Args:
            query: ``(B, T, D)``.
            key: ``(B, S, kdim)``, default ``query``; value: ``(B, S, vdim)``, default ``key``.
            key_padding_mask: bool ``(B, S)``, True on real tokens (as :func:`padding_mask`).
            attn_mask: bool ``(T, S)``, ``(B, T, S)`` or ``(B, h, T, S)``, True = may attend.
            attn_bias: float, broadcastable to ``(B, h, T, S)``, added to the scores
                (relative position bias, ALiBi, ...).
            causal: also apply :func:`causal_mask` (query t sees keys up to t).
            return_attention: also return the weights ``(B, h, T, S)``.

        Returns:
            ``(B, T, D)``, or ``((B, T, D), (B, h, T, S))`` with ``return_attention``.
        """
        key = query if key is None else key
        value = key if value is None else value
        dims = expect_shape(query, ("B", "T", self.dim), name="query")
        dims = expect_shape(key, ("B", "S", self.to_k.in_features), name="key", sizes=dims)
        expect_shape(value, ("B", "S", self.to_v.in_features), name="value", sizes=dims)
        B, T, S = dims["B"], dims["T"], dims["S"]
        mask = self._mask(B, T, S, key_padding_mask, attn_mask, causal, query.device)
        if attn_bias is not None:
            _check_bias(attn_bias, (B, self.heads, T, S))
        k, v = self.keys_values(key, value)  # (B, h, S, d) each
        only_causal = causal and T == S and key_padding_mask is None and attn_mask is None
        return self.attend(query, k, v, mask=mask, bias=attn_bias, causal=only_causal,
                           return_attention=return_attention)

    def keys_values(self, key: torch.Tensor, value: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The projected keys and values, split into heads: ``(B, S, kdim) -> 2 × (B, h, S, d)``.

        A decoder's key/value cache stores these, so that each step projects only
        its new token (:meth:`seqlib.transformer.DecoderBlock.step`).
        """
        value = key if value is None else value
        k = rearrange(self.to_k(key), "b s (h d) -> b h s d", h=self.heads)  # (B, h, S, d)
        v = rearrange(self.to_v(value), "b s (h d) -> b h s d", h=self.heads)  # (B, h, S, d)
        return k, v

    def attend(self, query: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, mask: torch.Tensor | None = None,
               bias: torch.Tensor | None = None, causal: bool = False, return_attention: bool = False):
        """Attend from ``query`` (B, T, D) to keys and values from :meth:`keys_values`.

        ``mask`` is bool, broadcastable to ``(B, h, T, S)`` (True = may attend).
        ``causal=True`` declares that ``mask`` is only the causal mask (T = S), so the
        fused causal kernel may stand in for it. Returns ``(B, T, D)``, and the
        weights ``(B, h, T, S)`` with ``return_attention``.
        """
        q = rearrange(self.to_q(query), "b t (h d) -> b h t d", h=self.heads)  # (B, h, T, d)
        p = self.dropout if self.training else 0.0
        if self.fast and causal and bias is None and not return_attention:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)  # (B, h, T, d), fused
        else:
            out = scaled_dot_product_attention(q, k, v, mask=mask, bias=bias, dropout_p=p,
                                               fast=self.fast, return_attention=return_attention)
        out, weights = out if return_attention else (out, None)
        out = self.proj(rearrange(out, "b h t d -> b t (h d)"))  # (B, T, D)
        return (out, weights) if return_attention else out

    def _mask(self, B, T, S, key_padding_mask, attn_mask, causal, device) -> torch.Tensor | None:
        """Combine the masks (all True = may attend) into one bool ``(B|1, h|1, T|1, S)``."""
        mask = None
        if key_padding_mask is not None:
            expect_dtype(key_padding_mask, torch.bool, name="key_padding_mask")
            expect_shape(key_padding_mask, (B, S), name="key_padding_mask (B, S)")
            mask = key_padding_mask[:, None, None, :]  # (B, 1, 1, S)
        if attn_mask is not None:
            expect_dtype(attn_mask, torch.bool, name="attn_mask")
            shapes = {2: (T, S), 3: (B, T, S), 4: (B, self.heads, T, S)}
            if attn_mask.dim() not in shapes:
                raise ValueError(f"attn_mask: expected shape (T, S), (B, T, S) or (B, h, T, S) = "
                                 f"{shapes[2]}, {shapes[3]} or {shapes[4]}, got {tuple(attn_mask.shape)}")
            expect_shape(attn_mask, shapes[attn_mask.dim()], name="attn_mask")
            am = attn_mask if attn_mask.dim() == 4 else attn_mask.view(-1, 1, T, S)  # (B|1, h|1, T, S)
            mask = am if mask is None else mask & am
        if causal:
            cm = causal_mask(T, S, device=device)[None, None]  # (1, 1, T, S)
            mask = cm if mask is None else mask & cm
        return mask


def _check_bias(bias: torch.Tensor, full: tuple[int, int, int, int]) -> None:
    """An additive bias must be floating point and broadcast to ``(B, h, T, S)``."""
    if not torch.is_floating_point(bias):
        raise ValueError(f"attn_bias must be a float tensor, got dtype {bias.dtype}")
    try:
        shape = torch.broadcast_shapes(bias.shape, full)
    except RuntimeError:
        shape = None
    if shape != torch.Size(full):
        raise ValueError(f"attn_bias: expected a shape broadcastable to (B, h, T, S)={full}, "
                         f"got {tuple(bias.shape)}")
