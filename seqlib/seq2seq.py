"""RNN encoder–decoders for translation, without and with attention.

The encoder (Cho et al. 2014; Sutskever et al. 2014) reads the whole source
with a GRU or LSTM, optionally in both directions. The *plain* decoder
conditions every step on one fixed context vector, the encoder's final state;
the *attention* decoder recomputes the context at every step as a weighted sum
of all encoder states, ``c_t = sum_j alpha_tj h_j`` (Bahdanau et al. 2015),
with any score of :mod:`seqlib.scores`, Luong et al.'s local-p window, or hard
(sampled, straight-through) weights. Both decoders share one step, ``s_t =
RNN([E y_{t-1}; c_t], s_{t-1})`` and ``p(y_t) = softmax(W_o [s_t; c_t; E
y_{t-1}])``, so the only difference the book discusses is where ``c_t`` comes
from. Training uses teacher forcing; decoding is batched greedy search or
per-sentence beam search, both from :mod:`seqlib.decoding` (the rules every
model of the book shares), which a :class:`Seq2Seq` speaks to through
``start_decoding``, ``decode_step`` and ``reorder_state``. ``forward`` returns
logits only; the attention decoder's weights (B, T, S) are read with the
recorder::

    with attention.record(model) as maps:
        model(src, src_lengths, tgt_in)
    weights = maps.select("decoder")[0]  # (B, T, S)

Shape letters: B batch, S source length, T target length, E embedding,
H decoder width, D encoder output width (H or 2H), V vocabulary, k beams.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from seqlib import attention, decoding
from seqlib.attention import padding_mask
from seqlib.scores import LocalWindow, attend, score_function
from seqlib.shapes import expect_dtype, expect_shape

RNNS = {"gru": nn.GRU, "lstm": nn.LSTM}


@dataclass(frozen=True)
class Seq2SeqConfig:
    """Everything that defines a model; ``attention=None`` gives the plain
    encoder–decoder."""

    src_vocab: int
    tgt_vocab: int
    emb: int = 64
    hidden: int = 64
    cell: str = "gru"
    bidirectional: bool = True
    attention: str | None = None  # a name from seqlib.scores.SCORES, or None
    local_window: int | None = (
        None  # Luong's D for local-p attention; None = global
    )
    hard: bool = (
        False  # sampled one-hot attention (straight-through Gumbel-softmax)
    )
    max_src_len: int = 128  # for the location score


class Memory(NamedTuple):
    """What the decoder reads: encoder states, their summary, mask and cached
    keys."""

    states: torch.Tensor  # (B, S, D)
    final: torch.Tensor  # (B, D)
    mask: torch.Tensor  # (B, S) True on real tokens
    lengths: torch.Tensor  # (B,)
    prepared: torch.Tensor | None = (
        None  # score.prepare(states), computed once
    )

    def select(self, index: torch.Tensor) -> "Memory":
        """Rows ``index`` of every field (to follow beams; rows may repeat)."""
        return Memory(
            *(None if f is None else f.index_select(0, index) for f in self)
        )


RNNState = (
    torch.Tensor | tuple[torch.Tensor, torch.Tensor]
)  # GRU: s (B, H); LSTM: (s, m), each (B, H)


class DecodeState(NamedTuple):
    """What :mod:`seqlib.decoding` carries between steps: the RNN state and the
    prepared memory."""

    rnn: RNNState
    memory: Memory

    def select(self, rows: torch.Tensor) -> "DecodeState":
        """The state of batch rows ``rows`` (each beam keeps its parent's state
        and source)."""
        rnn = (
            tuple(s[rows] for s in self.rnn)
            if isinstance(self.rnn, tuple)
            else self.rnn[rows]
        )
        return DecodeState(rnn, self.memory.select(rows))


class Encoder(nn.Module):
    """Embedding + (bi)GRU/LSTM over the padded source.

    Returns every state ``h_j`` (B, S, D) and a summary (B, D): the last
    forward state, concatenated with the backward RNN's state at position 0
    when bidirectional. Packing makes both ignore the padding.
    """

    def __init__(
        self,
        vocab: int,
        emb: int,
        hidden: int,
        *,
        cell: str = "gru",
        bidirectional: bool = True,
    ):
        super().__init__()
        if cell not in RNNS:
            raise ValueError(
                f"cell must be one of {sorted(RNNS)}, got {cell!r}"
            )
        self.embed = nn.Embedding(vocab, emb, padding_idx=0)
        self.rnn = RNNS[cell](
            emb, hidden, batch_first=True, bidirectional=bidirectional
        )
        self.out_dim = hidden * (2 if bidirectional else 1)

    def forward(
        self, src: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        dims = expect_shape(src, ("B", "S"), name="src")
        expect_dtype(src, torch.long, name="src")
        expect_shape(lengths, (dims["B"],), name="lengths")
        packed = nn.utils.rnn.pack_padded_sequence(
            self.embed(src),
            lengths.cpu(),
            batch_first=True,
            enforce_sorted=False,
        )
        out, h = self.rnn(packed)
        h = (
            h[0] if isinstance(h, tuple) else h
        )  # LSTM: (h, c) -> h;  (dirs, B, H)
        states, _ = nn.utils.rnn.pad_packed_sequence(
            out, batch_first=True, total_length=dims["S"]
        )  # (B, S, D)
        final = torch.cat(
            list(h[-2:]) if self.rnn.bidirectional else [h[-1]], dim=-1
        )  # (B, D)
        return states, final


class Decoder(nn.Module):
    """The decoder step shared by both models; subclasses say where the context
    comes from."""

    def __init__(
        self,
        vocab: int,
        emb: int,
        hidden: int,
        d_context: int,
        *,
        cell: str = "gru",
    ):
        super().__init__()
        if cell not in RNNS:
            raise ValueError(
                f"cell must be one of {sorted(RNNS)}, got {cell!r}"
            )
        self.cell = cell
        self.embed = nn.Embedding(vocab, emb, padding_idx=0)
        self.rnn = (nn.LSTMCell if cell == "lstm" else nn.GRUCell)(
            emb + d_context, hidden
        )
        self.init = nn.Linear(d_context, hidden)
        self.out = nn.Linear(hidden + d_context + emb, vocab)

    def prepare(self, memory: Memory) -> Memory:
        """Per-sentence precomputation (none for the plain decoder)."""
        return memory

    def context(
        self, query: torch.Tensor, memory: Memory
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The context ``c_t`` (B, D) for decoder state ``query`` = s_{t-1} (B,
        H), and weights (B, S)."""
        raise NotImplementedError

    def init_state(self, memory: Memory) -> RNNState:
        h = torch.tanh(self.init(memory.final))  # s_0: (B, H)
        return (h, torch.zeros_like(h)) if self.cell == "lstm" else h

    def _advance(self, e: torch.Tensor, state, memory: Memory):
        """s_t from E y_{t-1} (B, E) and s_{t-1}; returns (s_t, state, c_t,
        weights)."""
        query = state[0] if self.cell == "lstm" else state  # s_{t-1}: (B, H)
        c, weights = self.context(query, memory)  # (B, D), (B, S)
        state = self.rnn(torch.cat([e, c], -1), state)
        return (state[0] if self.cell == "lstm" else state), state, c, weights

    def step(self, y_prev: torch.Tensor, state, memory: Memory):
        """One step: ``y_prev`` (B,) -> logits (B, V), new state, weights (B,
        S) or None."""
        e = self.embed(y_prev)  # (B, E)
        s, state, c, weights = self._advance(e, state, memory)
        return self.out(torch.cat([s, c, e], -1)), state, weights  # (B, V)

    def start(self, memory: Memory) -> DecodeState:
        """The decoding state before the first step: ``s_0`` and the prepared
        memory."""
        memory = self.prepare(memory)
        return DecodeState(self.init_state(memory), memory)

    def forward(
        self, tgt_in: torch.Tensor, memory: Memory
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher forcing: ``tgt_in`` (B, T) -> logits (B, T, V), weights (B,
        T, S) or None.

        Under :func:`seqlib.attention.record` the weights are also reported (as
        this module's).
        """
        memory, state = self.prepare(memory), self.init_state(memory)
        emb = self.embed(tgt_in)  # (B, T, E)
        states, contexts, weights = [], [], []
        for e in emb.unbind(
            1
        ):  # unbind, not emb[:, t]: its backward is one stack, not T copies
            s, state, c, w = self._advance(e, state, memory)
            states.append(s)
            contexts.append(c)
            weights.append(w)
        # The output layer runs once on all steps (the same as per step, but
        # faster).
        logits = self.out(
            torch.cat(
                [torch.stack(states, 1), torch.stack(contexts, 1), emb], -1
            )
        )  # (B, T, V)
        if weights[0] is None:
            return logits, None
        weights = torch.stack(weights, 1)  # (B, T, S)
        if attention.recording():
            attention.report(self, weights)
        return logits, weights


class PlainDecoder(Decoder):
    """Cho et al. (2014): the same context, the encoder's summary, at every
    step."""

    def context(self, query, memory):
        return memory.final, None


class AttentionDecoder(Decoder):
    """Bahdanau et al. (2015): a fresh context ``c_t = sum_j alpha_tj h_j`` at
    every step.

    The query is the previous decoder state ``s_{t-1}``. ``local_window``
    restricts attention to Luong's local-p window; ``hard`` samples one
    position.
    """

    def __init__(
        self,
        vocab: int,
        emb: int,
        hidden: int,
        d_context: int,
        *,
        score: str,
        cell: str = "gru",
        local_window: int | None = None,
        hard: bool = False,
        max_src_len: int = 128,
    ):
        super().__init__(vocab, emb, hidden, d_context, cell=cell)
        # dot-style scores compare s_{t-1} (H) with h_j (D) directly, so they
        # need H == D
        self.score = score_function(
            score,
            d_query=hidden,
            d_key=d_context,
            d_hidden=hidden // 2,
            max_len=max_src_len,
        )
        self.local = (
            None
            if local_window is None
            else LocalWindow(hidden, local_window, d_hidden=hidden // 2)
        )
        self.hard = hard

    def prepare(self, memory):
        return memory._replace(prepared=self.score.prepare(memory.states))

    def context(self, query, memory):
        query = query[:, None, :]  # (B, 1, H)
        mask, bias = memory.mask, None
        if self.local is not None:
            bias, window, _ = self.local(
                query, memory.lengths, memory.states.shape[1]
            )  # (B, 1, S)
            mask = window & memory.mask[:, None, :]
        c, w = attend(
            query,
            memory.states,
            memory.states,
            score=self.score,
            mask=mask,
            bias=bias,
            prepared=memory.prepared,
            hard=self.hard,
        )
        return c[:, 0], w[:, 0]  # (B, D), (B, S)


class StepDecoding:
    """The step protocol of :mod:`seqlib.decoding` for a model whose
    ``decoder`` is a :class:`Decoder`.

    Shared by :class:`Seq2Seq` and chapter 4's captioner; each adds
    ``start_decoding`` (encode its input, then ``self.decoder.start(memory)``).
    """

    decoder: Decoder

    def decode_step(
        self, y_prev: torch.Tensor, state: DecodeState
    ) -> tuple[torch.Tensor, DecodeState, torch.Tensor | None]:
        """``y_prev`` (B,) -> logits (B, V), the next state, weights (B, S) or
        None (plain decoder)."""
        logits, rnn, weights = self.decoder.step(
            y_prev, state.rnn, state.memory
        )
        return logits, DecodeState(rnn, state.memory), weights

    def reorder_state(
        self, state: DecodeState, rows: torch.Tensor
    ) -> DecodeState:
        """The state of rows ``rows`` (beam search: each beam's parent; rows
        may repeat)."""
        return state.select(rows)


class Seq2Seq(StepDecoding, decoding.SourceDecoding, nn.Module):
    """Encoder + decoder, with teacher-forced training and greedy/beam
    decoding."""

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = config
        c = config
        self.encoder = Encoder(
            c.src_vocab,
            c.emb,
            c.hidden,
            cell=c.cell,
            bidirectional=c.bidirectional,
        )
        D = self.encoder.out_dim
        if c.attention is None:
            self.decoder: Decoder = PlainDecoder(
                c.tgt_vocab, c.emb, D, D, cell=c.cell
            )
        else:
            self.decoder = AttentionDecoder(
                c.tgt_vocab,
                c.emb,
                D,
                D,
                score=c.attention,
                cell=c.cell,
                local_window=c.local_window,
                hard=c.hard,
                max_src_len=c.max_src_len,
            )

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> Memory:
        states, final = self.encoder(src, src_lengths)  # (B, S, D), (B, D)
        return Memory(
            states, final, padding_mask(src_lengths, src.shape[1]), src_lengths
        )

    def forward(
        self,
        src: torch.Tensor,
        src_lengths: torch.Tensor,
        tgt_in: torch.Tensor,
    ) -> torch.Tensor:
        """Logits (B, T, V) for teacher-forced ``tgt_in``; the weights (B, T,
        S) go to the recorder."""
        expect_shape(tgt_in, (src.shape[0], "T"), name="tgt_in")
        logits, _ = self.decoder(tgt_in, self.encode(src, src_lengths))
        return logits

    # --- decoding: the step protocol of seqlib.decoding (decode_step,
    #    reorder_state: StepDecoding)
    def start_decoding(
        self, src: torch.Tensor, src_lengths: torch.Tensor
    ) -> DecodeState:
        """Encode a batch (B, S) and return the state before the first step
        (``s_0``, prepared memory)."""
        return self.decoder.start(self.encode(src, src_lengths))


def sequence_loss(
    logits: torch.Tensor, tgt_out: torch.Tensor, pad_id: int = 0
) -> torch.Tensor:
    """Mean cross-entropy per real target token; ``logits`` (B, T, V),
    ``tgt_out`` (B, T)."""
    dims = expect_shape(logits, ("B", "T", None), name="logits")
    expect_shape(tgt_out, ("B", "T"), name="tgt_out", sizes=dims)
    return F.cross_entropy(
        logits.flatten(0, 1), tgt_out.flatten(), ignore_index=pad_id
    )


def train_step(model: Seq2Seq, batch: dict[str, torch.Tensor]):
    """Teacher forcing: predict ``tgt_out`` from the source and the *true*
    previous words."""
    logits = model(batch["src"], batch["src_lengths"], batch["tgt_in"])
    loss = sequence_loss(logits, batch["tgt_out"])
    return loss, {"ppl": float(loss.detach().exp())}


def translate(
    model: Seq2Seq,
    batches,
    tgt_vocab,
    *,
    beam_size: int = 1,
    extra_len: int = 10,
    return_attention: bool = False,
):
    """Decode every batch; returns hypotheses (token lists) in the batches'
    ``index`` order.

    With ``return_attention`` also returns, per sentence, its (T', S) weights
    (greedy only).
    """
    device = next(model.parameters()).device
    model.eval()
    hyps, attn = {}, {}
    for batch in batches:
        src, lengths = batch["src"].to(device), batch["src_lengths"].to(device)
        max_len = int(lengths.max()) + extra_len
        if beam_size > 1:
            outs = [
                model.beam_search(
                    src[b, : int(lengths[b])],
                    beam_size=beam_size,
                    max_len=int(lengths[b]) + extra_len,
                )
                for b in range(src.shape[0])
            ]
        else:
            ids, w = model.greedy(
                src, lengths, max_len=max_len
            )  # w: (B, T', S) or None
            outs = ids.tolist()
        for b, i in enumerate(batch["index"].tolist()):
            hyps[i] = tgt_vocab.decode(outs[b])
            if return_attention and beam_size == 1 and w is not None:
                n_out = min(
                    len(hyps[i]) + 1, w.shape[1]
                )  # the words and <eos>
                attn[i] = w[b, :n_out, : int(lengths[b])].cpu()
    order = sorted(hyps)
    out = [hyps[i] for i in order]
    return (out, [attn.get(i) for i in order]) if return_attention else out


def plain_seq2seq(src_vocab: int, tgt_vocab: int, **kwargs) -> Seq2Seq:
    """The plain (fixed-context) encoder–decoder of chapter 2."""
    return Seq2Seq(
        Seq2SeqConfig(src_vocab, tgt_vocab, attention=None, **kwargs)
    )


def attention_seq2seq(
    src_vocab: int, tgt_vocab: int, score: str = "additive", **kwargs
) -> Seq2Seq:
    """The attention encoder–decoder of chapter 3 (``score`` from
    ``seqlib.scores.SCORES``)."""
    return Seq2Seq(
        Seq2SeqConfig(src_vocab, tgt_vocab, attention=score, **kwargs)
    )
