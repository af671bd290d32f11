"""Tests for seqlib.data.translation: the generated task, vocabularies and batching."""

import pytest
import torch

from seqlib.data.translation import (
    ADVERBS,
    INTRANSITIVE,
    TRANSITIVE,
    BucketBatches,
    Vocab,
    check_batch,
    generate_pairs,
    make_batch,
    pad_sequences,
    translation_task,
)

torch.set_num_threads(1)
VERB_FORMS = {
    stem + end
    for _, _, stem in TRANSITIVE + INTRANSITIVE
    for end in ("t", "en")
}


@pytest.fixture(scope="module")
def task():
    return translation_task(300, 30, 60, min_len=3, max_len=40, seed=1)


def test_same_seed_same_data_other_seed_other_data():
    a = generate_pairs(50, seed=3)
    assert a == generate_pairs(50, seed=3)
    assert a != generate_pairs(50, seed=4)


def test_lengths_in_range_and_spread():
    pairs = generate_pairs(400, min_len=5, max_len=45, seed=0)
    lengths = [len(p.src) for p in pairs]
    assert min(lengths) >= 5 and max(lengths) <= 45
    assert sum(n >= 30 for n in lengths) > 80  # well past 30 tokens, often


def test_splits_are_disjoint_and_deterministic(task):
    sources = [
        {p.src for p in split} for split in (task.train, task.valid, task.test)
    ]
    assert (
        not (sources[0] & sources[1])
        and not (sources[0] & sources[2])
        and not (sources[1] & sources[2])
    )
    again = translation_task(300, 30, 60, min_len=3, max_len=40, seed=1)
    assert again.test == task.test


def test_target_is_a_reference_and_references_differ(task):
    for p in task.train:
        assert p.tgt in p.refs
        assert len(set(p.refs)) == len(p.refs)
    assert any(len(p.refs) > 1 for p in task.train)


def test_every_clause_is_verb_final():
    conj = {"und", "aber", "weil", "waehrend"}
    for p in generate_pairs(100, seed=2):
        for ref in p.refs:
            clauses, current = [], []
            for tok in ref:
                if tok in conj:
                    clauses.append(current)
                    current = []
                else:
                    current.append(tok)
            clauses.append(current)
            assert all(c[-1] in VERB_FORMS for c in clauses), ref


def test_reordering_moves_the_verb_past_the_object():
    # one transitive clause without adverb: source S V O, target S O V
    pairs = [
        p
        for p in generate_pairs(300, min_len=3, max_len=12, seed=5)
        if len(p.src) <= 8
        and not set(p.src) & {a for a, _ in ADVERBS}
        and "that" not in p.src
    ]
    moved = [
        p
        for p in pairs
        if p.src[-1]
        not in {v for _, v, _ in INTRANSITIVE}
        | {v for v, _, _ in INTRANSITIVE}
    ]
    assert moved, "expected some transitive one-clause sentences"
    for p in moved:
        assert p.tgt[-1] in VERB_FORMS


def test_vocab_specials_and_round_trip(task):
    v = task.src_vocab
    assert v.itos[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert (v.pad_id, v.bos_id, v.eos_id, v.unk_id) == (0, 1, 2, 3)
    sent = task.test[0].src
    ids = v.encode(sent, bos=True)
    assert ids[0] == v.bos_id and ids[-1] == v.eos_id
    assert v.decode(ids) == list(sent)
    assert v.encode(["zebra"], eos=False) == [v.unk_id]
    assert v.decode([5, 2, 6, 7]) == [v.itos[5]]  # stops at <eos>


def test_vocab_build_min_freq_and_order():
    v = Vocab.build([["a", "b", "a"], ["a", "c"]], min_freq=2)
    assert v.itos == ["<pad>", "<bos>", "<eos>", "<unk>", "a"]


def test_pad_sequences():
    out = pad_sequences([[5, 6, 7], [8]], pad_id=0)
    assert out.tolist() == [[5, 6, 7], [8, 0, 0]] and out.dtype == torch.long
    with pytest.raises(ValueError):
        pad_sequences([])


def test_make_batch_shifts_target_for_teacher_forcing(task):
    batch = make_batch(task.train[:4], task.src_vocab, task.tgt_vocab)
    dims = check_batch(batch)
    assert dims["B"] == 4
    assert (batch["tgt_in"][:, 0] == Vocab.bos_id).all()
    for row_in, row_out in zip(batch["tgt_in"], batch["tgt_out"]):
        n = int((row_out != 0).sum())
        assert row_out[n - 1] == Vocab.eos_id
        assert torch.equal(
            row_in[1:n], row_out[: n - 1]
        )  # input = output shifted right by one
    lengths = (batch["src"] != 0).sum(1)
    assert torch.equal(lengths, batch["src_lengths"])


def test_bucket_batches_cover_everything_once_and_group_lengths(task):
    batches = BucketBatches(
        task.train, task.src_vocab, task.tgt_vocab, batch_size=16, seed=0
    )
    seen = torch.cat([b["index"] for b in batches]).tolist()
    assert sorted(seen) == list(range(len(task.train)))
    assert len(batches) == -(-len(task.train) // 16)
    spread = [
        int(b["src_lengths"].max() - b["src_lengths"].min()) for b in batches
    ]
    assert (
        sum(spread) / len(spread) < 8
    )  # sorted within a pool: little padding
    first = [b["index"].tolist() for b in batches]
    second = [b["index"].tolist() for b in batches]
    assert first != second  # a new order each epoch


def test_check_batch_names_the_bad_shape(task):
    batch = make_batch(task.train[:3], task.src_vocab, task.tgt_vocab)
    batch["tgt_out"] = batch["tgt_out"][:2]
    with pytest.raises(ValueError, match="tgt_out"):
        check_batch(batch)


def test_bad_arguments():
    with pytest.raises(ValueError):
        generate_pairs(5, min_len=10, max_len=5)
    with pytest.raises(ValueError):
        BucketBatches([], Vocab([]), Vocab([]), batch_size=0)
