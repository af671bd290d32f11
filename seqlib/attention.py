"""Attention from chapter 5 on: masks, scaled dot-product attention, multi-head
attention.

Queries, keys and values are projections of token vectors; every model from
chapter 5 on (the Transformer, ViT, Swin, DETR, ViViT, RVT, TLB) attends with
:class:`MultiHeadAttention`. The RNN-era score functions of chapters 2 to 4
live in :mod:`seqlib.scores`.

Attention *maps* never travel through return values. A model's ``forward``
returns its output; to see the weights, run it under :func:`record`::

    with attention.record(model) as maps:
        logits = model(images)
    maps.select("encoder.blocks.*")  # one (B, h, T, S) tensor per matching
    layer

Every attention layer that runs inside the ``with`` block computes its weights
explicitly (the teaching path, not the fused kernel) and hands them to the
recorder under its module name. Mask convention, everywhere: a bool mask is
True where attending is ALLOWED (the convention of
``F.scaled_dot_product_attention``; ``torch.nn.MultiheadAttention`` uses the
opposite one). Shape letters: B batch, T queries, S keys, D width, h heads, d =
D/h head width.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from fnmatch import fnmatch
from typing import Iterator

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from seqlib.shapes import expect_dtype, expect_shape


# --- masks and softmax -------------------------------------------------------
def padding_mask(
    lengths: torch.Tensor, max_len: int | None = None
) -> torch.Tensor:
    """``(B, S)`` bool mask, True on real positions ``j < lengths[b]``, False
    on padding."""
    expect_shape(lengths, ("B",), name="lengths")
    max_len = int(lengths.max()) if max_len is None else max_len
    return (
        torch.arange(max_len, device=lengths.device)[None, :]
        < lengths[:, None]
    )  # (B, S)


def masked_softmax(
    scores: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """Softmax over the last axis that gives masked positions exactly zero
    weight.

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


# --- recording attention maps ------------------------------------------------
class AttentionMaps:
    """The attention weights recorded by :func:`record`, in the order the
    layers ran.

    ``maps[i]`` is the i-th recorded tensor, ``len(maps)`` their number,
    ``maps.names[i]`` its module's name in the recorded model (with a
    ``":tag"`` when one layer records several, e.g. ViViT's ``":space"`` and
    ``":time"``), and :meth:`select` the tensors whose name matches a glob
    pattern.
    """

    def __init__(self, names: dict[int, str]):
        self._module_names = names
        self.names: list[str] = []
        self.weights: list[torch.Tensor] = []

    def add(
        self, module: nn.Module, weights: torch.Tensor, tag: str | None = None
    ) -> None:
        name = self._module_names.get(id(module), type(module).__name__)
        self.names.append(name if tag is None else f"{name}:{tag}")
        self.weights.append(weights)

    def __len__(self) -> int:
        return len(self.weights)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.weights[i]

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(self.weights)

    def select(
        self, pattern: str, *, required: bool = True
    ) -> list[torch.Tensor]:
        """The recorded tensors whose name matches ``pattern`` (``fnmatch``),
        in order.

        Raises:
            KeyError: if nothing matches and ``required`` (the message lists
                the recorded names); with ``required=False`` no match is an
                empty list.
        """
        found = [
            w for n, w in zip(self.names, self.weights) if fnmatch(n, pattern)
        ]
        if not found and required:
            raise KeyError(
                f"no recorded attention matches {pattern!r}; recorded: "
                f"{sorted(set(self.names))}"
            )
        return found


_RECORDERS: list[AttentionMaps] = []


@contextmanager
def record(model: nn.Module | None = None) -> Iterator[AttentionMaps]:
    """Record the weights of every attention layer that runs inside the
    ``with`` block.

    Args:
        model: names the layers (``model.named_modules()``); without it, each
            entry is named after its layer's class.

    Inside the block attention takes the explicit path (weights are formed and
    kept), so it is slower and uses more memory than the fused kernel; outputs
    agree to rounding.
    """
    names = (
        {id(m): n for n, m in model.named_modules() if n}
        if model is not None
        else {}
    )  # the root: its class
    maps = AttentionMaps(names)
    _RECORDERS.append(maps)
    try:
        yield maps
    finally:
        _RECORDERS.remove(maps)


def recording() -> bool:
    """True inside a :func:`record` block: attention layers must form and
    report their weights."""
    return bool(_RECORDERS)


def report(
    module: nn.Module, weights: torch.Tensor, tag: str | None = None
) -> None:
    """Hand ``weights`` of ``module`` to every active recorder (a no-op outside
    :func:`record`)."""
    for maps in _RECORDERS:
        maps.add(module, weights, tag)


# --- chapter 5: attention layer, self-attention, multi-head attention ---
# From here on queries, keys and values are projections of token vectors, and
# every later chapter (ViT, Swin, DETR, ViViT, RVT, TLB) uses
# :class:`MultiHeadAttention`. Mask convention, as everywhere in this module: a
# bool mask is True where attending is ALLOWED (the convention of
# ``F.scaled_dot_product_attention``; ``torch.nn.MultiheadAttention`` uses the
# opposite one). Shape letters here: h heads, d head width, T = M queries, S =
# N keys/inputs.
def causal_mask(
    T: int, S: int | None = None, *, device: torch.device | str | None = None
) -> torch.Tensor:
    """``(T, S)`` bool mask, True where query ``t`` may attend key
    ``s <= t + (S - T)``.

    With ``S = T`` (the default) this is the lower triangle: position ``t``
    sees itself and the past, never the future (Vaswani et al. 2017, section
    3.2.3).
    """
    S = T if S is None else S
    if T < 1 or S < T:
        raise ValueError(f"causal_mask needs 1 <= T <= S, got T={T}, S={S}")
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(
        diagonal=S - T
    )  # (T, S)


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    fast: bool = True,
    return_attention: bool = False,
):
    """``softmax(q k^T / sqrt(d) + bias) v`` with masking, written out or
    through PyTorch's kernel.

    Args:
        q: ``(..., T, d)`` queries; k: ``(..., S, d)`` keys; v:
            ``(..., S, dv)`` values.
        mask: bool, broadcastable to ``(..., T, S)``, True where attending is
            allowed.
        bias: float, broadcastable to ``(..., T, S)``, added to the scores
            (Swin's B).
        dropout_p: dropout on the weights (pass 0 at evaluation).
        fast: use ``F.scaled_dot_product_attention``; ``False`` runs the
            teaching path.
        return_attention: also return the weights; this needs the teaching
            path.

    Returns:
        ``(..., T, dv)``, and the weights ``(..., T, S)`` if asked. A query
        whose keys are all masked gets zero weights and a zero output, never
        NaN.
    """
    if fast and not return_attention:
        return _fast_attention(
            q, k, v, mask=mask, bias=bias, dropout_p=dropout_p
        )
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., T, S)
    if bias is not None:
        scores = scores + bias
    weights = masked_softmax(scores, mask)  # (..., T, S)
    if dropout_p > 0:
        weights = F.dropout(weights, dropout_p)
    out = weights @ v  # (..., T, dv)
    return (out, weights) if return_attention else out


def _fast_attention(q, k, v, *, mask, bias, dropout_p):
    """The same through ``F.scaled_dot_product_attention`` (fused kernels on
    GPU)."""
    if bias is not None:
        bias = bias.to(
            q.dtype
        )  # e.g. a float32 bias table under bf16 autocast
    if mask is None:
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=dropout_p
        )
    # Rows with no allowed key are opened to every key for the kernel (some
    # backends give NaN for them), then their output is zeroed, as in
    # masked_softmax.
    alive = mask.any(-1, keepdim=True)  # (..., T, 1)
    open_mask = mask | ~alive
    attn_mask = (
        open_mask
        if bias is None
        else bias.masked_fill(~open_mask, float("-inf"))
    )
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=attn_mask, dropout_p=dropout_p
    )
    return out * alive  # (..., T, dv)


class GeneralAttention(nn.Module):
    """The general attention layer: ``M`` given queries against ``N`` input
    vectors.

    Keys ``k_j = W_k x_j`` and values ``v_j = W_v x_j`` are computed from the
    inputs ``x`` (N×D); the queries ``q`` (M×D_k) come from elsewhere (an RNN
    decoder state, DETR's object queries). Output
    ``y_i = sum_j softmax_j(q_i·k_j / sqrt(D_k)) v_j``. The weights (B, M, N)
    go to :func:`record`."""

    def __init__(self, d_input: int, d_key: int, d_value: int | None = None):
        super().__init__()
        self.to_k = nn.Linear(d_input, d_key)
        self.to_v = nn.Linear(d_input, d_value or d_key)

    def forward(
        self,
        query: torch.Tensor,
        inputs: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``query`` (B, M, D_k), ``inputs`` (B, N, D), ``mask`` bool (B, M, N)
        -> (B, M, D_v)."""
        dims = expect_shape(
            query, ("B", "M", self.to_k.out_features), name="query"
        )
        expect_shape(
            inputs, (dims["B"], "N", self.to_k.in_features), name="inputs"
        )
        k, v = self.to_k(inputs), self.to_v(inputs)  # (B, N, D_k), (B, N, D_v)
        out, weights = scaled_dot_product_attention(
            query, k, v, mask=mask, fast=False, return_attention=True
        )
        report(self, weights)
        return out


class SelfAttention(GeneralAttention):
    """Self-attention: the queries are projections of the same inputs,
    ``q_i = W_q x_i``."""

    def __init__(self, d_input: int, d_key: int, d_value: int | None = None):
        super().__init__(d_input, d_key, d_value)
        self.to_q = nn.Linear(d_input, d_key)

    def forward(
        self, x: torch.Tensor, *, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``x`` (B, N, D) -> (B, N, D_v); the weights (B, N, N) go to
        :func:`record`."""
        return super().forward(self.to_q(x), x, mask=mask)


class MultiHeadAttention(nn.Module):
    """Multi-head attention (Vaswani et al. 2017, section 3.2.2), the attention
    of the whole book.

    ``h`` heads attend in parallel in ``d = D / h``-dimensional subspaces;
    their outputs are concatenated to ``(B, T, h·d)`` and projected:
    ``proj(concat_i head_i)``. Weight layout (``to_q``, ``to_k``, ``to_v``,
    ``proj``) matches ``nn.MultiheadAttention``'s ``in_proj_weight`` split in
    three and its ``out_proj``.

    Args:
        dim: model width D (queries and output).
        heads: number of heads h (must divide ``dim``).
        kdim, vdim: widths of the key and value inputs (default ``dim``), e.g.
        a CNN's
            feature width in cross-attention.
        dropout: dropout on the attention weights during training.
        bias: biases in the four projections.
        fast: ``F.scaled_dot_product_attention`` (True) or always the
            step-by-step path.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        kdim: int | None = None,
        vdim: int | None = None,
        dropout: float = 0.0,
        bias: bool = True,
        fast: bool = True,
    ):
        super().__init__()
        if heads < 1 or dim % heads:
            raise ValueError(
                f"heads must divide dim: got dim={dim}, heads={heads}"
            )
        self.dim, self.heads, self.dropout, self.fast = (
            dim,
            heads,
            dropout,
            fast,
        )
        self.to_q = nn.Linear(dim, dim, bias=bias)
        self.to_k = nn.Linear(kdim or dim, dim, bias=bias)
        self.to_v = nn.Linear(vdim or dim, dim, bias=bias)
        self.proj = nn.Linear(dim, dim, bias=bias)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        *,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        attn_bias: torch.Tensor | None = None,
        causal: bool = False,
    ) -> torch.Tensor:
        """Attend from ``query`` to ``key``/``value`` (self-attention when both
        are None).

        Args:
            query: ``(B, T, D)``.
            key: ``(B, S, kdim)``, default ``query``; value: ``(B, S, vdim)``,
                default ``key``.
            key_padding_mask: bool ``(B, S)``, True on real tokens (as
                :func:`padding_mask`).
            attn_mask: bool ``(T, S)``, ``(B, T, S)`` or ``(B, h, T, S)``, True
                = may attend.
            attn_bias: float, broadcastable to ``(B, h, T, S)``, added to the
                scores (relative position bias, ALiBi, ...).
            causal: also apply :func:`causal_mask` (query t sees keys up to t).

        Returns:
            ``(B, T, D)``. Under :func:`record` the weights ``(B, h, T, S)``
            are recorded.
        """
        key = query if key is None else key
        value = key if value is None else value
        dims = expect_shape(query, ("B", "T", self.dim), name="query")
        dims = expect_shape(
            key, ("B", "S", self.to_k.in_features), name="key", sizes=dims
        )
        expect_shape(
            value, ("B", "S", self.to_v.in_features), name="value", sizes=dims
        )
        B, T, S = dims["B"], dims["T"], dims["S"]
        mask = self._mask(
            B, T, S, key_padding_mask, attn_mask, causal, query.device
        )
        if attn_bias is not None:
            _check_bias(attn_bias, (B, self.heads, T, S))
        k, v = self.keys_values(key, value)  # (B, h, S, d) each
        only_causal = (
            causal
            and T == S
            and key_padding_mask is None
            and attn_mask is None
        )
        return self.attend(
            query, k, v, mask=mask, bias=attn_bias, causal=only_causal
        )[0]

    def keys_values(
        self, key: torch.Tensor, value: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The projected keys and values, split into heads:
        ``(B, S, kdim) -> 2 × (B, h, S, d)``.

        A decoder's key/value cache stores these, so that each step projects
        only its new token (:meth:`seqlib.transformer.DecoderBlock.step`).
        """
        value = key if value is None else value
        k = rearrange(
            self.to_k(key), "b s (h d) -> b h s d", h=self.heads
        )  # (B, h, S, d)
        v = rearrange(
            self.to_v(value), "b s (h d) -> b h s d", h=self.heads
        )  # (B, h, S, d)
        return k, v

    def attend(
        self,
        query: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
        causal: bool = False,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from ``query`` (B, T, D) to keys and values from
        :meth:`keys_values`.

        ``mask`` is bool, broadcastable to ``(B, h, T, S)`` (True = may
        attend). ``causal=True`` declares that ``mask`` is only the causal mask
        (T = S), so the fused causal kernel may stand in for it. Returns
        ``(B, T, D)`` and the weights ``(B, h, T, S)``, formed explicitly when
        ``need_weights`` or under :func:`record` (else None).
        """
        q = rearrange(
            self.to_q(query), "b t (h d) -> b h t d", h=self.heads
        )  # (B, h, T, d)
        p = self.dropout if self.training else 0.0
        explicit = need_weights or recording()
        weights = None
        if self.fast and causal and bias is None and not explicit:
            out = F.scaled_dot_product_attention(
                q, k, v, is_causal=True, dropout_p=p
            )  # (B, h, T, d), fused
        elif explicit:
            out, weights = scaled_dot_product_attention(
                q,
                k,
                v,
                mask=mask,
                bias=bias,
                dropout_p=p,
                return_attention=True,
            )
            report(self, weights)
        else:
            out = scaled_dot_product_attention(
                q, k, v, mask=mask, bias=bias, dropout_p=p, fast=self.fast
            )
        return self.proj(
            rearrange(out, "b h t d -> b t (h d)")
        ), weights  # (B, T, D), (B, h, T, S) | None

    def _mask(
        self, B, T, S, key_padding_mask, attn_mask, causal, device
    ) -> torch.Tensor | None:
        """Combine the masks (all True = may attend) into one bool
        ``(B|1, h|1, T|1, S)``."""
        mask = None
        if key_padding_mask is not None:
            expect_dtype(key_padding_mask, torch.bool, name="key_padding_mask")
            expect_shape(
                key_padding_mask, (B, S), name="key_padding_mask (B, S)"
            )
            mask = key_padding_mask[:, None, None, :]  # (B, 1, 1, S)
        if attn_mask is not None:
            expect_dtype(attn_mask, torch.bool, name="attn_mask")
            shapes = {2: (T, S), 3: (B, T, S), 4: (B, self.heads, T, S)}
            if attn_mask.dim() not in shapes:
                raise ValueError(
                    "attn_mask: expected shape (T, S), (B, T, S) or "
                    f"(B, h, T, S) = {shapes[2]}, {shapes[3]} or {shapes[4]}, "
                    f"got {tuple(attn_mask.shape)}"
                )
            expect_shape(attn_mask, shapes[attn_mask.dim()], name="attn_mask")
            am = (
                attn_mask
                if attn_mask.dim() == 4
                else attn_mask.view(-1, 1, T, S)
            )  # (B|1, h|1, T, S)
            mask = am if mask is None else mask & am
        if causal:
            cm = causal_mask(T, S, device=device)[None, None]  # (1, 1, T, S)
            mask = cm if mask is None else mask & cm
        return mask


def _check_bias(bias: torch.Tensor, full: tuple[int, int, int, int]) -> None:
    """An additive bias must be floating point and broadcast to
    ``(B, h, T, S)``."""
    if not torch.is_floating_point(bias):
        raise ValueError(
            f"attn_bias must be a float tensor, got dtype {bias.dtype}"
        )
    try:
        shape = torch.broadcast_shapes(bias.shape, full)
    except RuntimeError:
        shape = None
    if shape != torch.Size(full):
        raise ValueError(
            "attn_bias: expected a shape broadcastable to "
            f"(B, h, T, S)={full}, got {tuple(bias.shape)}"
        )
