"""Tests for seqlib.seq2seq: shapes, padding, decoding and a tiny training run."""

import pytest
import torch

from seqlib import attention, decoding
from seqlib.data.translation import BucketBatches, make_batch, translation_task
from seqlib.seq2seq import (
    DecodeState,
    Seq2Seq,
    Seq2SeqConfig,
    attention_seq2seq,
    plain_seq2seq,
    sequence_loss,
    train_step,
    translate,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def task():
    return translation_task(64, 4, 8, min_len=3, max_len=14, seed=0)


def _model(task, **kw):
    torch.manual_seed(0)
    return Seq2Seq(
        Seq2SeqConfig(
            len(task.src_vocab), len(task.tgt_vocab), emb=8, hidden=8, **kw
        )
    )


CONFIGS = [
    dict(),
    dict(cell="lstm"),
    dict(bidirectional=False),
    dict(attention="additive"),
    dict(attention="dot", cell="lstm"),
    dict(attention="general", local_window=2),
    dict(attention="scaled_dot", hard=True),
    dict(attention="location", max_src_len=20),
    dict(attention="cosine", bidirectional=False),
]


@pytest.mark.parametrize(
    "kw",
    CONFIGS,
    ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()) or "plain",
)
def test_forward_shapes_and_weights(task, kw):
    model = _model(task, **kw)
    batch = make_batch(task.train[:5], task.src_vocab, task.tgt_vocab)
    B, S = batch["src"].shape
    T = batch["tgt_in"].shape[1]
    with attention.record(model) as maps:
        logits = model(batch["src"], batch["src_lengths"], batch["tgt_in"])
    assert logits.shape == (B, T, len(task.tgt_vocab))
    if "attention" in kw:
        assert maps.names == [
            "decoder"
        ]  # one (B, T, S) map per forward, the decoder's
        w = maps.select("decoder")[0]
        assert w.shape == (B, T, S)
        torch.testing.assert_close(w.sum(-1), torch.ones(B, T))
        pad = torch.arange(S)[None, :] >= batch["src_lengths"][:, None]
        assert (w.masked_select(pad[:, None, :].expand(B, T, S)) == 0).all()
    else:
        assert len(maps) == 0  # the plain decoder has no attention
    sequence_loss(logits, batch["tgt_out"]).backward()


def test_recorded_weights_are_the_decoders_and_recording_changes_nothing(task):
    model = _model(task, attention="additive").eval()
    batch = make_batch(task.train[:5], task.src_vocab, task.tgt_vocab)
    args = batch["src"], batch["src_lengths"], batch["tgt_in"]
    plain_logits = model(*args)
    with attention.record(model) as maps:
        logits = model(*args)
    direct_logits, direct_w = model.decoder(
        batch["tgt_in"], model.encode(*args[:2])
    )  # (logits, weights)
    assert torch.equal(logits, plain_logits) and torch.equal(
        logits, direct_logits
    )
    assert torch.equal(maps[0], direct_w)
    model(*args)  # after the block: nothing more is recorded
    assert len(maps) == 1


def test_step_protocol_state_and_reorder(task):
    model = _model(task, attention="general", cell="lstm").eval()
    batch = make_batch(task.test[:3], task.src_vocab, task.tgt_vocab)
    state = model.start_decoding(batch["src"], batch["src_lengths"])
    assert (
        isinstance(state, DecodeState) and state.memory.prepared is not None
    )  # prepared once
    logits, nxt, w = model.decode_step(torch.ones(3, dtype=torch.long), state)
    assert (
        logits.shape == (3, len(task.tgt_vocab))
        and w.shape == batch["src"].shape
    )
    assert isinstance(nxt.rnn, tuple) and nxt.memory is state.memory
    rows = torch.tensor([2, 2, 0])
    moved = model.reorder_state(nxt, rows)
    assert all(torch.equal(a, b[rows]) for a, b in zip(moved.rnn, nxt.rnn))
    assert torch.equal(moved.memory.states, nxt.memory.states[rows])
    assert torch.equal(moved.memory.lengths, batch["src_lengths"][rows])
    # model.greedy is seqlib.decoding.greedy over this protocol
    ids, w = model.greedy(batch["src"], batch["src_lengths"], max_len=8)
    ids2, w2 = decoding.greedy(model, state, batch_size=3, max_len=8)
    assert torch.equal(ids, ids2) and torch.equal(w, w2)


@pytest.mark.parametrize("kw", [dict(), dict(attention="additive")])
def test_padding_does_not_change_a_sentence(task, kw):
    model = _model(task, **kw).eval()
    pairs = sorted(task.train[:6], key=lambda p: len(p.src))
    batch = make_batch(pairs, task.src_vocab, task.tgt_vocab)
    alone = make_batch(pairs[:1], task.src_vocab, task.tgt_vocab)
    T = alone["tgt_in"].shape[1]
    full = model(batch["src"], batch["src_lengths"], batch["tgt_in"])[:1, :T]
    single = model(alone["src"], alone["src_lengths"], alone["tgt_in"])
    torch.testing.assert_close(full, single, rtol=1e-5, atol=1e-5)


def test_greedy_batched_equals_one_by_one_and_beam_of_one(task):
    model = _model(task, attention="additive").eval()
    batch = make_batch(task.test[:4], task.src_vocab, task.tgt_vocab)
    ids, w = model.greedy(batch["src"], batch["src_lengths"], max_len=12)
    assert w.shape[:2] == ids.shape
    for b in range(4):
        n = int(batch["src_lengths"][b])
        one, _ = model.greedy(
            batch["src"][b : b + 1, :n],
            batch["src_lengths"][b : b + 1],
            max_len=12,
        )
        want = task.tgt_vocab.decode(ids[b].tolist())
        assert task.tgt_vocab.decode(one[0].tolist()) == want
        beam = model.beam_search(batch["src"][b, :n], beam_size=1, max_len=12)
        assert task.tgt_vocab.decode(beam) == want


def _logp(model, src, ids):
    """log p(ids, <eos> | src) under teacher forcing."""
    out = model(
        src[None], torch.tensor([len(src)]), torch.tensor([[1] + ids])
    ).log_softmax(-1)
    return (
        out[0].gather(-1, torch.tensor([ids + [2]])[0][:, None]).sum().item()
    )


def test_tiny_training_run_learns(task):
    torch.manual_seed(0)
    model = attention_seq2seq(
        len(task.src_vocab),
        len(task.tgt_vocab),
        score="additive",
        emb=16,
        hidden=16,
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    batches = list(
        BucketBatches(
            task.train, task.src_vocab, task.tgt_vocab, batch_size=32, seed=0
        )
    )
    first = None
    for _ in range(15):
        for batch in batches:
            loss, metrics = train_step(model, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            first = loss.item() if first is None else first
    assert loss.item() < 0.6 * first and metrics["ppl"] > 1
    hyps, attn = translate(
        model,
        BucketBatches(
            task.test,
            task.src_vocab,
            task.tgt_vocab,
            batch_size=4,
            shuffle=False,
        ),
        task.tgt_vocab,
        return_attention=True,
    )
    assert len(hyps) == len(task.test) and all(
        isinstance(h, list) for h in hyps
    )
    assert (
        attn[0].shape[1] == len(task.test[0].src) + 1
    )  # source words and <eos>
    beams = translate(
        model,
        [make_batch(task.test[:2], task.src_vocab, task.tgt_vocab)],
        task.tgt_vocab,
        beam_size=3,
    )
    assert len(beams) == 2
    # A wider beam finds outputs at least as likely as greedy's (without length normalisation).
    batch = make_batch(task.test, task.src_vocab, task.tgt_vocab)
    greedy_ids, _ = model.greedy(
        batch["src"], batch["src_lengths"], max_len=30
    )
    for b in range(len(task.test)):
        src = batch["src"][b, : int(batch["src_lengths"][b])]
        greedy = task.tgt_vocab.encode(
            task.tgt_vocab.decode(greedy_ids[b].tolist()), eos=False
        )
        beam = model.beam_search(src, beam_size=4, max_len=30, alpha=0.0)
        assert _logp(model, src, beam) >= _logp(model, src, greedy) - 1e-4


def test_presets_and_bad_input(task):
    assert plain_seq2seq(10, 12).config.attention is None
    assert (
        attention_seq2seq(10, 12, score="general").config.attention
        == "general"
    )
    model = _model(task)
    with pytest.raises(ValueError, match="src"):
        model(
            torch.zeros(2, 3, 4, dtype=torch.long),
            torch.tensor([3, 3]),
            torch.zeros(2, 2, dtype=torch.long),
        )
    with pytest.raises(ValueError, match="dtype"):
        model(
            torch.zeros(2, 3),
            torch.tensor([3, 3]),
            torch.zeros(2, 2, dtype=torch.long),
        )
    with pytest.raises(ValueError, match="tgt_in"):
        model(
            torch.ones(2, 3, dtype=torch.long),
            torch.tensor([3, 3]),
            torch.ones(3, 2, dtype=torch.long),
        )
    with pytest.raises(ValueError, match="cell"):
        _model(task, cell="rnn")
