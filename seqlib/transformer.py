"""The Transformer (Vaswani et al. 2017): encoder and decoder blocks and the translation model.

An encoder block is multi-head self-attention then a position-wise feed-forward
network, each wrapped in a residual connection and a layer norm. A decoder block
adds *masked* self-attention (a word sees only the words before it) and
cross-attention, whose queries come from the decoder and whose keys and values
are the encoder's outputs. We use **pre-norm** blocks, ``x + f(LN(x))`` (Xiong et
al. 2020; the choice of GPT-2 and ViT): the residual path stays an identity, so
small models train stably at a constant learning rate without the warm-up that
the original **post-norm** ``LN(x + f(x))`` needs; ``norm_first=False`` gives the
original for comparison. The attention is :class:`seqlib.attention.MultiHeadAttention`.
The model speaks the interface of :class:`seqlib.seq2seq.Seq2Seq` (``forward``,
``greedy``, ``beam_search``), so chapter 2's ``train_step`` and ``translate`` work
unchanged. Shape letters: B batch, S source length, T target length, D model
width, h heads, V vocabulary, k beams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from seqlib.attention import MultiHeadAttention, padding_mask
from seqlib.positional import positional_encoding
from seqlib.shapes import expect_dtype, expect_shape

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


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


class FeedForward(nn.Module):
    """Position-wise ``W_2 act(W_1 x + b_1) + b_2``, applied to every token alike."""

    def __init__(self, dim: int, ff_dim: int, *, dropout: float = 0.0, activation: str = "relu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.net = nn.Sequential(nn.Linear(dim, ff_dim), ACTIVATIONS[activation](), nn.Dropout(dropout),
                                 nn.Linear(ff_dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, N, D) -> (B, N, D)``."""
        return self.net(x)


class _Residual(nn.Module):
    """``x + drop(f(LN(x)))`` (pre-norm) or ``LN(x + drop(f(x)))`` (post-norm)."""

    def __init__(self, dim: int, dropout: float, norm_first: bool):
        super().__init__()
        self.norm, self.drop, self.norm_first = nn.LayerNorm(dim), nn.Dropout(dropout), norm_first

    def forward(self, x: torch.Tensor, f) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = f(self.norm(x) if self.norm_first else x)
        out, weights = out if isinstance(out, tuple) else (out, None)
        x = x + self.drop(out)
        return (x if self.norm_first else self.norm(x)), weights


class EncoderBlock(nn.Module):
    """Self-attention and feed-forward, each in a residual connection with a layer norm."""

    def __init__(self, dim: int, heads: int, ff_dim: int, *, dropout: float = 0.1,
                 activation: str = "relu", norm_first: bool = True):
        super().__init__()
        self.attn = MultiHeadAttention(dim, heads, dropout=dropout)
        self.ffn = FeedForward(dim, ff_dim, dropout=dropout, activation=activation)
        self.res_attn = _Residual(dim, dropout, norm_first)
        self.res_ffn = _Residual(dim, dropout, norm_first)

    def forward(self, x: torch.Tensor, *, key_padding_mask: torch.Tensor | None = None,
                attn_bias: torch.Tensor | None = None, return_attention: bool = False):
        """``x`` (B, N, D), ``key_padding_mask`` (B, N) True on tokens -> (B, N, D) [, (B, h, N, N)]."""
        x, weights = self.res_attn(x, lambda y: self.attn(y, key_padding_mask=key_padding_mask,
                                                           attn_bias=attn_bias, return_attention=return_attention))
        x, _ = self.res_ffn(x, self.ffn)
        return (x, weights) if return_attention else x


class DecoderBlock(nn.Module):
    """Masked self-attention, cross-attention to the encoder's output, feed-forward."""

    def __init__(self, dim: int, heads: int, ff_dim: int, *, dropout: float = 0.1,
                 activation: str = "relu", norm_first: bool = True):
        super().__init__()
        self.self_attn = MultiHeadAttention(dim, heads, dropout=dropout)
        self.cross_attn = MultiHeadAttention(dim, heads, dropout=dropout)
        self.ffn = FeedForward(dim, ff_dim, dropout=dropout, activation=activation)
        self.res_self, self.res_cross, self.res_ffn = (_Residual(dim, dropout, norm_first) for _ in range(3))

    def forward(self, x: torch.Tensor, memory: torch.Tensor, *, memory_padding_mask: torch.Tensor | None = None,
                causal: bool = True, return_attention: bool = False):
        """Decode.

        Args:
            x: ``(B, T, D)`` target-side tokens.
            memory: ``(B, S, D)`` encoder outputs.
            memory_padding_mask: ``(B, S)`` bool, True on real source tokens.
            causal: mask the future in self-attention (False for DETR's object queries).
            return_attention: also return the self- ``(B, h, T, T)`` and cross-attention
                ``(B, h, T, S)`` weights.
        """
        ra = return_attention
        x, w_self = self.res_self(x, lambda y: self.self_attn(y, causal=causal, return_attention=ra))
        x, w_cross = self.res_cross(x, lambda y: self.cross_attn(y, memory, key_padding_mask=memory_padding_mask,
                                                                 return_attention=ra))
        x, _ = self.res_ffn(x, self.ffn)
        return (x, w_self, w_cross) if ra else x

    def step(self, x: torch.Tensor, past: KVCache | None, memory: torch.Tensor, *,
             memory_padding_mask: torch.Tensor | None = None):
        """One decoding step with a key/value cache: the new token ``x`` (B, 1, D) attends to the past.

        ``past`` holds the self-attention keys and values of steps 0..t-1 (each
        ``(B, h, t, d)``) and the cross-attention keys and values of ``memory``. The
        step projects only the new token and appends its key and value; the
        encoder's keys and values are projected once, at step 0. So a step's
        projections cost the same at every t; only the attention itself, over the
        t + 1 cached positions, grows with t. Returns the output (B, 1, D), the
        grown cache and the cross-attention weights (B, h, 1, S).
        """
        cache = {}

        def attend_past(y):
            k, v = self.self_attn.keys_values(y)  # (B, h, 1, d) each
            if past is not None:
                k, v = torch.cat([past.k, k], 2), torch.cat([past.v, v], 2)  # (B, h, t + 1, d)
            cache["k"], cache["v"] = k, v
            return self.self_attn.attend(y, k, v)  # no mask: every cached position is in the past

        def attend_memory(y):
            mk, mv = self.cross_attn.keys_values(memory) if past is None else (past.memory_k, past.memory_v)
            cache["memory_k"], cache["memory_v"] = mk, mv
            mask = None if memory_padding_mask is None else memory_padding_mask[:, None, None, :]  # (B, 1, 1, S)
            return self.cross_attn.attend(y, mk, mv, mask=mask, return_attention=True)

        x, _ = self.res_self(x, attend_past)
        x, w_cross = self.res_cross(x, attend_memory)
        x, _ = self.res_ffn(x, self.ffn)
        return x, KVCache(**cache), w_cross


class KVCache(NamedTuple):
    """One decoder block's cache: self-attention keys and values so far, and the encoder's.

    ``k``, ``v``: ``(B, h, t, d)``, grown by one position per step;
    ``memory_k``, ``memory_v``: ``(B, h, S, d)``, computed once.
    """

    k: torch.Tensor
    v: torch.Tensor
    memory_k: torch.Tensor
    memory_v: torch.Tensor

    def select(self, rows: torch.Tensor) -> "KVCache":
        """The cache of the batch rows ``rows`` (beam search keeps each beam's parent)."""
        return KVCache(*(t[rows] for t in self))


class TransformerEncoder(nn.Module):
    """A stack of :class:`EncoderBlock` (plus the final layer norm that pre-norm needs)."""

    def __init__(self, depth: int, dim: int, heads: int, ff_dim: int, *, dropout: float = 0.1,
                 activation: str = "relu", norm_first: bool = True):
        super().__init__()
        self.blocks = nn.ModuleList(EncoderBlock(dim, heads, ff_dim, dropout=dropout, activation=activation,
                                                 norm_first=norm_first) for _ in range(depth))
        self.norm = nn.LayerNorm(dim) if norm_first else nn.Identity()

    def forward(self, x: torch.Tensor, *, key_padding_mask: torch.Tensor | None = None,
                return_attention: bool = False):
        """``(B, N, D) -> (B, N, D)`` [and one ``(B, h, N, N)`` weight tensor per block]."""
        weights = []
        for block in self.blocks:
            x = block(x, key_padding_mask=key_padding_mask, return_attention=return_attention)
            if return_attention:
                x, w = x
                weights.append(w)
        return (self.norm(x), weights) if return_attention else self.norm(x)


class TransformerDecoder(nn.Module):
    """A stack of :class:`DecoderBlock` (plus the final layer norm of pre-norm)."""

    def __init__(self, depth: int, dim: int, heads: int, ff_dim: int, *, dropout: float = 0.1,
                 activation: str = "relu", norm_first: bool = True):
        super().__init__()
        self.blocks = nn.ModuleList(DecoderBlock(dim, heads, ff_dim, dropout=dropout, activation=activation,
                                                 norm_first=norm_first) for _ in range(depth))
        self.norm = nn.LayerNorm(dim) if norm_first else nn.Identity()

    def forward(self, x: torch.Tensor, memory: torch.Tensor, *, memory_padding_mask: torch.Tensor | None = None,
                causal: bool = True, return_attention: bool = False):
        """``(B, T, D) -> (B, T, D)`` [and the cross-attention weights ``(B, h, T, S)`` per block]."""
        cross = []
        for block in self.blocks:
            out = block(x, memory, memory_padding_mask=memory_padding_mask, causal=causal,
                        return_attention=return_attention)
            x = out[0] if return_attention else out
            if return_attention:
                cross.append(out[2])
        return (self.norm(x), cross) if return_attention else self.norm(x)

    def step(self, x: torch.Tensor, past: list[KVCache] | None, memory: torch.Tensor, *,
             memory_padding_mask: torch.Tensor | None = None):
        """Cached step of every block: ``x`` (B, 1, D) -> (B, 1, D), caches, last cross weights."""
        new_past = []
        for i, block in enumerate(self.blocks):
            x, cache, w_cross = block.step(x, None if past is None else past[i], memory,
                                           memory_padding_mask=memory_padding_mask)
            new_past.append(cache)
        return self.norm(x), new_past, w_cross


class Seq2SeqTransformer(nn.Module):
    """Encoder–decoder Transformer for translation with the decoding interface of ``Seq2Seq``."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = c = config
        kw = dict(dropout=c.dropout, activation=c.activation, norm_first=c.norm_first)
        self.src_embed = nn.Embedding(c.src_vocab, c.dim, padding_idx=0)
        self.tgt_embed = nn.Embedding(c.tgt_vocab, c.dim, padding_idx=0)
        self.pos = positional_encoding(c.positional, c.dim, max_len=c.max_len)
        self.drop = nn.Dropout(c.dropout)
        self.encoder = TransformerEncoder(c.enc_layers, c.dim, c.heads, c.ff_dim, **kw)
        self.decoder = TransformerDecoder(c.dec_layers, c.dim, c.heads, c.ff_dim, **kw)
        self.out = nn.Linear(c.dim, c.tgt_vocab)
        for emb in (self.src_embed, self.tgt_embed):  # unit scale after the sqrt(D) of section 3.4
            nn.init.normal_(emb.weight, std=c.dim ** -0.5)
            emb.weight.data[0] = 0

    def _embed(self, ids: torch.Tensor, table: nn.Embedding, offset: int = 0) -> torch.Tensor:
        expect_dtype(ids, torch.long, name="token ids")
        return self.drop(self.pos(table(ids) * math.sqrt(self.config.dim), offset=offset))  # (B, N, D)

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``src`` (B, S) ids -> encoder outputs (B, S, D) and the source mask (B, S)."""
        dims = expect_shape(src, ("B", "S"), name="src")
        expect_shape(src_lengths, (dims["B"],), name="src_lengths")
        mask = padding_mask(src_lengths, dims["S"])  # (B, S)
        return self.encoder(self._embed(src, self.src_embed), key_padding_mask=mask), mask

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor, *,
               return_attention: bool = False):
        """``tgt_in`` (B, T) -> logits (B, T, V) [and last-block cross-attention, head mean, (B, T, S)]."""
        expect_shape(tgt_in, (memory.shape[0], "T"), name="tgt_in")
        out = self.decoder(self._embed(tgt_in, self.tgt_embed), memory, memory_padding_mask=memory_mask,
                           return_attention=return_attention)
        if not return_attention:
            return self.out(out)  # (B, T, V)
        return self.out(out[0]), out[1][-1].mean(1)  # (B, T, V), (B, T, S)

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor, *,
                return_attention: bool = False):
        """Teacher forcing: logits (B, T, V) (and cross-attention weights (B, T, S) if asked)."""
        memory, mask = self.encode(src, src_lengths)
        return self.decode(tgt_in, memory, mask, return_attention=return_attention)

    def decode_step(self, y_prev: torch.Tensor, t: int, past: list[KVCache] | None, memory: torch.Tensor,
                    memory_mask: torch.Tensor):
        """Logits (B, V) for position ``t`` given token ``y_prev`` (B,) and the caches of steps < t.

        Returns the logits, the new caches and the last block's cross-attention,
        averaged over heads, (B, S). Equal to ``decode`` on the whole prefix (tested).
        """
        x = self._embed(y_prev[:, None], self.tgt_embed, offset=t)  # (B, 1, D)
        x, past, w_cross = self.decoder.step(x, past, memory, memory_padding_mask=memory_mask)
        return self.out(x[:, 0]), past, w_cross[:, :, 0].mean(1)  # (B, V), caches, (B, S)

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, src_lengths: torch.Tensor, *, max_len: int, bos_id: int = 1,
               eos_id: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        """Batched greedy decoding: ids (B, T') and the last block's cross-attention (B, T', S).

        Each step feeds only the newest token and reuses the cached keys and values
        of the earlier ones (:meth:`decode_step`).
        """
        memory, mask = self.encode(src, src_lengths)
        y = torch.full((src.shape[0],), bos_id, dtype=torch.long, device=src.device)  # (B,)
        done = torch.zeros_like(y, dtype=torch.bool)
        ids, weights, past = [], [], None
        for t in range(max_len):
            logits, past, w = self.decode_step(y, t, past, memory, mask)  # (B, V)
            y = logits.argmax(-1).masked_fill(done, 0)  # pad after <eos>
            ids.append(y)
            weights.append(w)
            done |= y == eos_id
            if bool(done.all()):
                break
        return torch.stack(ids, 1), torch.stack(weights, 1)  # (B, T'), (B, T', S)

    @torch.no_grad()
    def beam_search(self, src: torch.Tensor, *, beam_size: int = 4, max_len: int, alpha: float = 0.7,
                    bos_id: int = 1, eos_id: int = 2) -> list[int]:
        """Beam search for one sentence ``src`` (S,); returns the best ids.

        Hypotheses are ranked by ``log p / length**alpha`` as in ``Seq2Seq.beam_search``;
        the search stops only when no live beam can beat the best finished one.
        """
        expect_shape(src, ("S",), name="src (one sentence)")
        memory, mask = self.encode(src[None], torch.tensor([src.shape[0]], device=src.device))
        hyps = torch.full((1, 1), bos_id, dtype=torch.long, device=src.device)  # (k, t)
        logp = torch.zeros(1, device=src.device)  # (k,)
        finished: list[tuple[float, list[int]]] = []
        past = None
        for t in range(1, max_len + 1):
            k = hyps.shape[0]
            logits, past, _ = self.decode_step(hyps[:, -1], t - 1, past, memory.expand(k, -1, -1),
                                               mask.expand(k, -1))  # (k, V)
            cand = (logp[:, None] + F.log_softmax(logits, -1)).flatten()  # (k * V,)
            top, flat = cand.topk(min(2 * beam_size, cand.numel()))
            keep = []
            for score, i in zip(top.tolist(), flat.tolist()):
                beam, token = divmod(i, logits.shape[-1])
                if token == eos_id:
                    finished.append((score / t ** alpha, hyps[beam, 1:].tolist()))
                elif len(keep) < beam_size:
                    keep.append((beam, token, score))
            # Stop once no live beam can still win: its log p can only fall, and its
            # normaliser can grow to at most max_len**alpha.
            if not keep or (len(finished) >= beam_size
                            and max(f[0] for f in finished) >= keep[0][2] / max_len ** alpha):
                break
            beams = torch.tensor([b for b, _, _ in keep], device=src.device)
            new = torch.tensor([[tok] for _, tok, _ in keep], device=src.device)
            hyps, logp = torch.cat([hyps[beams], new], 1), torch.tensor([s for _, _, s in keep], device=src.device)
            past = [cache.select(beams) for cache in past]  # each beam keeps its parent's cache
        if not finished:  # nothing ended within max_len: take the best unfinished one
            finished = [(float(logp[0]) / hyps.shape[1] ** alpha, hyps[0, 1:].tolist())]
        return max(finished, key=lambda f: f[0])[1]


def transformer_tiny(src_vocab: int, tgt_vocab: int, **overrides) -> Seq2SeqTransformer:
    """The smoke-profile model: D=64, 4 heads, 2+2 blocks (about 0.2 M parameters + embeddings)."""
    return Seq2SeqTransformer(TransformerConfig(src_vocab, tgt_vocab, **overrides))


def transformer_base(src_vocab: int, tgt_vocab: int, **overrides) -> Seq2SeqTransformer:
    """Vaswani et al.'s base model: D=512, 8 heads, FFN 2048, 6+6 blocks."""
    sizes = dict(dim=512, heads=8, ff_dim=2048, enc_layers=6, dec_layers=6, dropout=0.1)
    return Seq2SeqTransformer(TransformerConfig(src_vocab, tgt_vocab, **{**sizes, **overrides}))
