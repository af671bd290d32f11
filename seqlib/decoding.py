"""Autoregressive decoding for every model in the book: greedy, beam search,
sampling.

The RNN encoder-decoder (chapters 2 and 3), the captioner (chapter 4) and the
Transformer (chapter 5) all generate the same way: feed the previous token,
get a distribution over the next one, choose, repeat. A model takes part by
speaking a small *step protocol* (:class:`Steppable`):

- ``decode_step(y_prev, state)``: ``y_prev`` (B,) token ids and the model's
  decoding state -> next-token logits (B, V), the new state, and the step's
  attention weights over the source (B, S) or None;
- ``reorder_state(state, rows)``: the state of batch rows ``rows`` (beam search
  keeps each surviving beam's parent, and expands one input into k beams).

The state is whatever the model needs and is opaque here: an RNN's hidden state
and the encoder's memory, or the Transformer's key/value caches.

The rules, one set for every model:

- **Length penalty.** Finished hypotheses are ranked by
  ``log p(Y) / |Y|^alpha`` with ``|Y|`` counting the words and ``<eos>`` (Wu et
  al. 2016's normalisation, simplified); ``alpha = 0`` ranks by raw
  log-probability, which favours short outputs.
- **The end token.** Each step ranks the 2k best (beam, token) candidates. An
  ``<eos>`` candidate finishes its hypothesis only if it ranks among the top k
  (as in fairseq); otherwise unlikely short endings would fill the finished
  list. The best k non-``<eos>`` candidates live on.
- **Stopping.** The search stops when k hypotheses have finished, when no live
  candidate is left, or after ``max_len`` steps; if nothing finished, the best
  live hypothesis is returned.
- **Greedy and sampling** run a whole batch; a row that emitted ``<eos>`` is
  padded with 0 afterwards, and decoding stops when every row has finished.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
import torch.nn.functional as F

from seqlib.shapes import expect_shape


class Steppable(Protocol):
    """What a model provides to be decoded (see the module docstring)."""

    def decode_step(
        self, y_prev: torch.Tensor, state: Any
    ) -> tuple[torch.Tensor, Any, torch.Tensor | None]: ...

    def reorder_state(self, state: Any, rows: torch.Tensor) -> Any: ...


@torch.no_grad()
def greedy(
    model: Steppable,
    state: Any,
    *,
    batch_size: int,
    max_len: int,
    bos_id: int = 1,
    eos_id: int = 2,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The most likely token at every step, for a batch: ids (B, T') and
    weights (B, T', S) or None."""
    return _generate(
        model,
        state,
        batch_size=batch_size,
        max_len=max_len,
        bos_id=bos_id,
        eos_id=eos_id,
        device=device,
        choose=lambda logits: logits.argmax(-1),
    )


@torch.no_grad()
def sample(
    model: Steppable,
    state: Any,
    *,
    batch_size: int,
    max_len: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    bos_id: int = 1,
    eos_id: int = 2,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Draw each token from ``softmax(logits / temperature)``: ids (B, T') and
    weights (B, T', S) or None.

    ``temperature`` < 1 sharpens the distribution (towards greedy), > 1
    flattens it. Pass a seeded CPU ``generator`` for reproducible draws.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")

    def choose(logits: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(logits.float() / temperature, -1).cpu()  # (B, V)
        return torch.multinomial(probs, 1, generator=generator)[:, 0].to(
            logits.device
        )  # (B,)

    return _generate(
        model,
        state,
        batch_size=batch_size,
        max_len=max_len,
        bos_id=bos_id,
        eos_id=eos_id,
        device=device,
        choose=choose,
    )


def _generate(
    model, state, *, batch_size, max_len, bos_id, eos_id, device, choose
):
    if batch_size < 1 or max_len < 1:
        raise ValueError(
            f"batch_size and max_len must be >= 1, got {batch_size} and "
            f"{max_len}"
        )
    y = torch.full(
        (batch_size,), bos_id, dtype=torch.long, device=device
    )  # (B,)
    done = torch.zeros_like(y, dtype=torch.bool)
    ids, weights = [], []
    for _ in range(max_len):
        logits, state, w = model.decode_step(y, state)  # (B, V)
        y = choose(logits).masked_fill(done, 0)  # pad after <eos>
        ids.append(y)
        weights.append(w)
        done |= y == eos_id
        if bool(done.all()):
            break
    attn = (
        None if weights[0] is None else torch.stack(weights, 1)
    )  # (B, T', S)
    return torch.stack(ids, 1), attn  # (B, T')


@torch.no_grad()
def beam_search(
    model: Steppable,
    state: Any,
    *,
    beam_size: int = 4,
    max_len: int,
    alpha: float = 0.7,
    bos_id: int = 1,
    eos_id: int = 2,
    device: torch.device | str = "cpu",
) -> list[int]:
    """Beam search for one input (``state`` of batch size 1); returns the best
    ids (without ``<eos>``)."""
    if beam_size < 1 or max_len < 1:
        raise ValueError(
            f"beam_size and max_len must be >= 1, got {beam_size} and "
            f"{max_len}"
        )
    hyps = torch.full(
        (1, 1), bos_id, dtype=torch.long, device=device
    )  # (k, t)
    logp = torch.zeros(1, device=device)  # (k,)
    finished: list[tuple[float, list[int]]] = []
    for t in range(1, max_len + 1):
        logits, state, _ = model.decode_step(hyps[:, -1], state)  # (k, V)
        cand = (
            logp[:, None] + F.log_softmax(logits, -1)
        ).flatten()  # (k * V,)
        top, flat = cand.topk(min(2 * beam_size, cand.numel()))
        keep = []
        for rank, (score, i) in enumerate(zip(top.tolist(), flat.tolist())):
            beam, token = divmod(i, logits.shape[-1])
            if token == eos_id:
                if (
                    rank < beam_size
                ):  # an ending counts only among the k best candidates
                    finished.append(
                        (score / t**alpha, hyps[beam, 1:].tolist())
                    )
            elif len(keep) < beam_size:
                keep.append((beam, token, score))
        if len(finished) >= beam_size or not keep:
            break
        beams = torch.tensor([b for b, _, _ in keep], device=device)
        hyps = torch.cat(
            [
                hyps[beams],
                torch.tensor([[tok] for _, tok, _ in keep], device=device),
            ],
            1,
        )
        logp = torch.tensor([s for _, _, s in keep], device=device)
        state = model.reorder_state(
            state, beams
        )  # each beam keeps its parent's state
    if (
        not finished
    ):  # nothing ended within max_len: take the best unfinished one
        finished = [
            (float(logp[0]) / hyps.shape[1] ** alpha, hyps[0, 1:].tolist())
        ]
    return max(finished, key=lambda f: f[0])[1]


class SourceDecoding:
    """``greedy`` and ``beam_search`` for a translation model (chapters 2, 3
    and 5).

    The model adds ``start_decoding(src (B, S), src_lengths (B,))`` and the
    step protocol; both the RNN :class:`seqlib.seq2seq.Seq2Seq` and the
    :class:`seqlib.transformer.Seq2SeqTransformer` decode through these two
    methods.
    """

    @torch.no_grad()
    def greedy(
        self,
        src: torch.Tensor,
        src_lengths: torch.Tensor,
        *,
        max_len: int,
        bos_id: int = 1,
        eos_id: int = 2,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Batched greedy decoding: ids (B, T') and the step weights over the
        source (B, T', S) or None."""
        return greedy(
            self,
            self.start_decoding(src, src_lengths),
            batch_size=src.shape[0],
            max_len=max_len,
            bos_id=bos_id,
            eos_id=eos_id,
            device=src.device,
        )

    @torch.no_grad()
    def beam_search(
        self,
        src: torch.Tensor,
        *,
        beam_size: int = 4,
        max_len: int,
        alpha: float = 0.7,
        bos_id: int = 1,
        eos_id: int = 2,
    ) -> list[int]:
        """Beam search for one sentence ``src`` (S,), without padding; returns
        the best ids."""
        expect_shape(src, ("S",), name="src (one sentence)")
        state = self.start_decoding(
            src[None], torch.tensor([src.shape[0]], device=src.device)
        )
        return beam_search(
            self,
            state,
            beam_size=beam_size,
            max_len=max_len,
            alpha=alpha,
            bos_id=bos_id,
            eos_id=eos_id,
            device=src.device,
        )
