"""The Transformer (Vaswani et al. 2017): encoder and decoder blocks and the
translation model.

An encoder block is multi-head self-attention then a position-wise feed-forward
network, each wrapped in a residual connection and a layer norm. A decoder
block adds *masked* self-attention (a word sees only the words before it) and
cross-attention, whose queries come from the decoder and whose keys and values
are the encoder's outputs. We use **pre-norm** blocks, ``x + f(LN(x))`` (Xiong
et al. 2020; the choice of GPT-2 and ViT): the residual path stays an identity,
so small models train stably at a constant learning rate without the warm-up
that the original **post-norm** ``LN(x + f(x))`` needs; ``norm_first=False``
gives the original for comparison. The attention is
:class:`seqlib.attention.MultiHeadAttention`. Both blocks are
:class:`seqlib.layers.Block`, the one residual block of the book; they differ
only in their mixers. The model speaks the interface of
:class:`seqlib.seq2seq.Seq2Seq` (``forward``, ``greedy``, ``beam_search``), so
chapter 2's ``train_step`` and ``translate`` work unchanged, and decodes
through
:mod:`seqlib.decoding` with a true key/value cache. Shape letters: B batch, S
source length, T target length, D model width, h heads, V vocabulary, k beams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from seqlib import decoding
from seqlib.attention import MultiHeadAttention, padding_mask
from seqlib.layers import Block, FeedForward
from seqlib.positional import positional_encoding
from seqlib.shapes import expect_dtype, expect_shape


@dataclass(frozen=True)
class TransformerConfig:
    """Everything that defines a :class:`Seq2SeqTransformer`."""

    src_vocab: int
    tgt_vocab: int
    dim: int = 64
    heads: int = 4
    ff_dim: int = 128
    enc_layers: int = 2
    dec_layers: int = 2
    dropout: float = 0.1
    activation: str = "relu"
    positional: str = "sinusoidal"  # or "learned"
    max_len: int = 256  # rows of a learned position table
    norm_first: bool = True  # pre-norm (True) or the original post-norm


# --- the decoder's two mixers ------------------------------------------------
class CausalSelfAttention(MultiHeadAttention):
    """The decoder's first mixer: each position attends to itself and the
    positions before it."""

    def forward(
        self,
        x: torch.Tensor,
        *,
        memory: torch.Tensor | None = None,
        memory_padding_mask: torch.Tensor | None = None,
        causal: bool = True,
    ) -> torch.Tensor:
        """``(B, T, D) -> (B, T, D)``; ``causal=False`` lets every query see
        every position (DETR)."""
        return super().forward(x, causal=causal)


class CrossAttention(MultiHeadAttention):
    """The decoder's second mixer: queries from the decoder, keys and values
    from the encoder's memory."""

    def forward(
        self,
        x: torch.Tensor,
        *,
        memory: torch.Tensor,
        memory_padding_mask: torch.Tensor | None = None,
        causal: bool = True,
    ) -> torch.Tensor:
        """``x`` (B, T, D) attends to ``memory`` (B, S, D), masked by
        ``memory_padding_mask`` (B, S)."""
        return super().forward(x, memory, key_padding_mask=memory_padding_mask)


class EncoderBlock(Block):
    """Self-attention over all tokens (the mixer) and the feed-forward network.

    Called as ``block(x, key_padding_mask=..., attn_bias=...)``: the keywords
    go to :class:`seqlib.attention.MultiHeadAttention`.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        ff_dim: int,
        *,
        dropout: float = 0.1,
        activation: str = "relu",
        norm_first: bool = True,
    ):
        super().__init__(
            dim,
            MultiHeadAttention(dim, heads, dropout=dropout),
            FeedForward(dim, ff_dim, dropout=dropout, activation=activation),
            dropout=dropout,
            norm_first=norm_first,
        )


class DecoderBlock(Block):
    """Masked self-attention, cross-attention to the encoder's output,
    feed-forward.

    Called as ``block(x, memory=..., memory_padding_mask=..., causal=True)``.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        ff_dim: int,
        *,
        dropout: float = 0.1,
        activation: str = "relu",
        norm_first: bool = True,
    ):
        super().__init__(
            dim,
            {
                "self_attn": CausalSelfAttention(dim, heads, dropout=dropout),
                "cross_attn": CrossAttention(dim, heads, dropout=dropout),
            },
            FeedForward(dim, ff_dim, dropout=dropout, activation=activation),
            dropout=dropout,
            norm_first=norm_first,
        )

    def step(
        self,
        x: torch.Tensor,
        past: KVCache | None,
        memory: torch.Tensor,
        *,
        memory_padding_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, KVCache, torch.Tensor]:
        """One decoding step with a key/value cache: the new token ``x`` (B, 1,
        D) attends to the past.

        ``past`` holds the self-attention keys and values of steps 0..t-1 (each
        ``(B, h, t, d)``) and the cross-attention keys and values of
        ``memory``. The step projects only the new token and appends its key
        and value; the encoder's keys and values are projected once, at step 0.
        So a step's projections cost the same at every t; only the attention
        itself, over the t + 1 cached positions, grows with t. Returns the
        output (B, 1, D), the grown cache and the cross-attention weights (B,
        h, 1, S).
        """
        self_attn, cross_attn = (
            self.mixers["self_attn"],
            self.mixers["cross_attn"],
        )
        cache, weights = {}, {}

        def attend_past(y: torch.Tensor) -> torch.Tensor:
            k, v = self_attn.keys_values(y)  # (B, h, 1, d) each
            if past is not None:
                k, v = (
                    torch.cat([past.k, k], 2),
                    torch.cat([past.v, v], 2),
                )  # (B, h, t + 1, d)
            cache["k"], cache["v"] = k, v
            return self_attn.attend(y, k, v)[
                0
            ]  # no mask: every cached position is in the past

        def attend_memory(y: torch.Tensor) -> torch.Tensor:
            mk, mv = (
                cross_attn.keys_values(memory)
                if past is None
                else (past.memory_k, past.memory_v)
            )
            cache["memory_k"], cache["memory_v"] = mk, mv
            mask = cross_attn._mask(
                memory.shape[0],
                1,
                memory.shape[1],
                memory_padding_mask,
                None,
                False,
                memory.device,
            )  # (B, 1, 1, S)
            out, weights["cross"] = cross_attn.attend(
                y, mk, mv, mask=mask, need_weights=True
            )
            return out

        x = self._residual(x, 0, attend_past)
        x = self._residual(x, 1, attend_memory)
        x = self._residual(x, 2, self.mlp)
        return x, KVCache(**cache), weights["cross"]


class KVCache(NamedTuple):
    """One decoder block's cache: self-attention keys and values so far, and
    the encoder's.

    ``k``, ``v``: ``(B, h, t, d)``, grown by one position per step;
    ``memory_k``, ``memory_v``: ``(B, h, S, d)``, computed once.
    """

    k: torch.Tensor
    v: torch.Tensor
    memory_k: torch.Tensor
    memory_v: torch.Tensor

    def select(self, rows: torch.Tensor) -> "KVCache":
        """The cache of the batch rows ``rows`` (beam search keeps each beam's
        parent)."""
        return KVCache(*(t[rows] for t in self))


class TransformerEncoder(nn.Module):
    """A stack of :class:`EncoderBlock` (plus the final layer norm that
    pre-norm needs)."""

    def __init__(
        self,
        depth: int,
        dim: int,
        heads: int,
        ff_dim: int,
        *,
        dropout: float = 0.1,
        activation: str = "relu",
        norm_first: bool = True,
    ):
        super().__init__()
        self.blocks = nn.ModuleList(
            EncoderBlock(
                dim,
                heads,
                ff_dim,
                dropout=dropout,
                activation=activation,
                norm_first=norm_first,
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim) if norm_first else nn.Identity()

    def forward(
        self, x: torch.Tensor, *, key_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(B, N, D) -> (B, N, D)``; ``key_padding_mask`` (B, N) is True on
        real tokens."""
        for block in self.blocks:
            x = block(x, key_padding_mask=key_padding_mask)
        return self.norm(x)


class TransformerDecoder(nn.Module):
    """A stack of :class:`DecoderBlock` (plus the final layer norm of
    pre-norm)."""

    def __init__(
        self,
        depth: int,
        dim: int,
        heads: int,
        ff_dim: int,
        *,
        dropout: float = 0.1,
        activation: str = "relu",
        norm_first: bool = True,
    ):
        super().__init__()
        self.blocks = nn.ModuleList(
            DecoderBlock(
                dim,
                heads,
                ff_dim,
                dropout=dropout,
                activation=activation,
                norm_first=norm_first,
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim) if norm_first else nn.Identity()

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        *,
        memory_padding_mask: torch.Tensor | None = None,
        causal: bool = True,
    ) -> torch.Tensor:
        """``(B, T, D)`` attending to ``memory`` ``(B, S, D)`` ->
        ``(B, T, D)``."""
        for block in self.blocks:
            x = block(
                x,
                memory=memory,
                memory_padding_mask=memory_padding_mask,
                causal=causal,
            )
        return self.norm(x)

    def step(
        self,
        x: torch.Tensor,
        past: list[KVCache] | None,
        memory: torch.Tensor,
        *,
        memory_padding_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[KVCache], torch.Tensor]:
        """Cached step of every block: ``x`` (B, 1, D) -> (B, 1, D), caches,
        last cross weights."""
        new_past = []
        for i, block in enumerate(self.blocks):
            x, cache, w_cross = block.step(
                x,
                None if past is None else past[i],
                memory,
                memory_padding_mask=memory_padding_mask,
            )
            new_past.append(cache)
        return self.norm(x), new_past, w_cross


class DecodingState(NamedTuple):
    """What :meth:`Seq2SeqTransformer.decode_step` carries: the step t, the
    caches, the encoded source."""

    t: int
    past: list[KVCache] | None
    memory: torch.Tensor  # (B, S, D)
    memory_mask: torch.Tensor  # (B, S)


class Seq2SeqTransformer(decoding.SourceDecoding, nn.Module):
    """Encoder–decoder Transformer for translation with the decoding interface
    of ``Seq2Seq``.

    ``greedy`` and ``beam_search`` come from
    :class:`seqlib.decoding.SourceDecoding`; each step feeds only the newest
    token and reuses the cached keys and values of the earlier ones. Greedy's
    weights are the last block's cross-attention, averaged over heads.
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = c = config
        kw = dict(
            dropout=c.dropout, activation=c.activation, norm_first=c.norm_first
        )
        self.src_embed = nn.Embedding(c.src_vocab, c.dim, padding_idx=0)
        self.tgt_embed = nn.Embedding(c.tgt_vocab, c.dim, padding_idx=0)
        self.pos = positional_encoding(c.positional, c.dim, max_len=c.max_len)
        self.drop = nn.Dropout(c.dropout)
        self.encoder = TransformerEncoder(
            c.enc_layers, c.dim, c.heads, c.ff_dim, **kw
        )
        self.decoder = TransformerDecoder(
            c.dec_layers, c.dim, c.heads, c.ff_dim, **kw
        )
        self.out = nn.Linear(c.dim, c.tgt_vocab)
        for emb in (
            self.src_embed,
            self.tgt_embed,
        ):  # unit scale after the sqrt(D) of section 3.4
            nn.init.normal_(emb.weight, std=c.dim**-0.5)
            emb.weight.data[0] = 0

    def _embed(
        self, ids: torch.Tensor, table: nn.Embedding, offset: int = 0
    ) -> torch.Tensor:
        expect_dtype(ids, torch.long, name="token ids")
        return self.drop(
            self.pos(table(ids) * math.sqrt(self.config.dim), offset=offset)
        )  # (B, N, D)

    def encode(
        self, src: torch.Tensor, src_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``src`` (B, S) ids -> encoder outputs (B, S, D) and the source mask
        (B, S)."""
        dims = expect_shape(src, ("B", "S"), name="src")
        expect_shape(src_lengths, (dims["B"],), name="src_lengths")
        mask = padding_mask(src_lengths, dims["S"])  # (B, S)
        return self.encoder(
            self._embed(src, self.src_embed), key_padding_mask=mask
        ), mask

    def decode(
        self,
        tgt_in: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor,
    ) -> torch.Tensor:
        """``tgt_in`` (B, T) -> logits (B, T, V)."""
        expect_shape(tgt_in, (memory.shape[0], "T"), name="tgt_in")
        return self.out(
            self.decoder(
                self._embed(tgt_in, self.tgt_embed),
                memory,
                memory_padding_mask=memory_mask,
            )
        )  # (B, T, V)

    def forward(
        self,
        src: torch.Tensor,
        src_lengths: torch.Tensor,
        tgt_in: torch.Tensor,
    ) -> torch.Tensor:
        """Teacher forcing: logits (B, T, V). Under
        :func:`seqlib.attention.record`, the cross-attention of block i is
        recorded as ``decoder.blocks.i.mixers.cross_attn``."""
        memory, mask = self.encode(src, src_lengths)
        return self.decode(tgt_in, memory, mask)

    # --- the decoding protocol of seqlib.decoding ----------------------------
    def start_decoding(
        self, src: torch.Tensor, src_lengths: torch.Tensor
    ) -> DecodingState:
        """Encode ``src`` (B, S) once; the state before the first step."""
        memory, mask = self.encode(src, src_lengths)
        return DecodingState(0, None, memory, mask)

    def decode_step(
        self, y_prev: torch.Tensor, state: DecodingState
    ) -> tuple[torch.Tensor, DecodingState, torch.Tensor]:
        """Logits (B, V) for position ``state.t`` given token ``y_prev`` (B,)
        and the caches of steps < t.

        Returns the logits, the next state and the last block's
        cross-attention, averaged over heads, (B, S). Equal to ``decode`` on
        the whole prefix (tested).
        """
        x = self._embed(
            y_prev[:, None], self.tgt_embed, offset=state.t
        )  # (B, 1, D)
        x, past, w_cross = self.decoder.step(
            x, state.past, state.memory, memory_padding_mask=state.memory_mask
        )
        return (
            self.out(x[:, 0]),
            state._replace(t=state.t + 1, past=past),
            w_cross[:, :, 0].mean(1),
        )

    def reorder_state(
        self, state: DecodingState, rows: torch.Tensor
    ) -> DecodingState:
        """The state of batch rows ``rows``: caches, memory and mask (beam
        search)."""
        past = (
            None
            if state.past is None
            else [cache.select(rows) for cache in state.past]
        )
        return state._replace(
            past=past,
            memory=state.memory[rows],
            memory_mask=state.memory_mask[rows],
        )


def transformer_tiny(
    src_vocab: int, tgt_vocab: int, **overrides
) -> Seq2SeqTransformer:
    """The smoke-profile model: D=64, 4 heads, 2+2 blocks (about 0.2 M
    parameters + embeddings)."""
    return Seq2SeqTransformer(
        TransformerConfig(src_vocab, tgt_vocab, **overrides)
    )
