"""Tests for seqlib.data.translation (the generated task, vocabularies and batching) and for
Multi30k's full-dataset path in seqlib.data.parallel: tarballs in the published layout,
pinned digests, corrupt archives and dry-run stand-ins (no test touches the network)."""

import hashlib
import io
import tarfile
import warnings
from pathlib import Path

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


# --- Multi30k: pinned digests, corrupt tarballs, dry runs -----------------------------------

MULTI30K = Path(__file__).parent / "fixtures" / "parallel" / "multi30k"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache, offline, not a dry run, stand-in announcements reset."""
    from seqlib.data import standins

    monkeypatch.setenv("SEQLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SEQLIB_OFFLINE", "1")
    monkeypatch.delenv("SEQLIB_DRY_RUN", raising=False)
    monkeypatch.setattr(standins, "_announced", set())
    return tmp_path / "cache"


def _tarball(prefix: str, langs=("en", "de")) -> bytes:
    """A split's tarball as published: ``<prefix>.en`` and ``<prefix>.de``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for lang in langs:
            data = (MULTI30K / f"{prefix}.{lang}").read_bytes()
            info = tarfile.TarInfo(f"{prefix}.{lang}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_multi30k_pins_torchtexts_digests_and_verifies_with_them(
    tmp_path, monkeypatch, cache
):
    from seqlib.data import ChecksumMismatchError, parallel

    digests = {k: v[1] for k, v in parallel.MULTI30K_FILES.items()}
    assert digests == {
        "train": "20140d013d05dd9a72dfde46478663ba05737ce983f478f960c1123c6671be5e",
        "valid": "a7aa20e9ebd5ba5adce7909498b94410996040857154dab029851af3a866da8c",
        "test": (  # the GitHub copy, the original server's
            "6d1ca1dba99e2c5dd54cae1226ff11c2551e6ce63527ebb072a1f70f72a5cd36",
            "0681be16a532912288a91ddd573594fbdd57c0fbb81486eff7c55247e35326c2",
        ),
    }
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    files = {}
    for split, (
        urls,
        digest,
        archive,
        prefix,
    ) in parallel.MULTI30K_FILES.items():
        (mirror / archive).write_bytes(_tarball(prefix))
        files[split] = ([(mirror / archive).as_uri()], digest, archive, prefix)
    monkeypatch.setattr(parallel, "MULTI30K_FILES", files)
    monkeypatch.delenv("SEQLIB_OFFLINE")
    with pytest.raises(ChecksumMismatchError) as info:
        parallel.load_multi30k()
    got = hashlib.sha256((mirror / "training.tar.gz").read_bytes()).hexdigest()
    assert f"expected SHA-256 {digests['train']}, got {got}" in str(info.value)
    assert list((cache / "multi30k").iterdir()) == []


@pytest.mark.parametrize("damage", ["truncated", "lacks_de"])
def test_multi30k_corrupt_tarball_is_a_clear_error_and_leaves_nothing(
    monkeypatch, cache, damage
):
    from seqlib.data import CorruptFileError, parallel

    root = cache / "multi30k"
    root.mkdir(parents=True)
    blob = _tarball("train")
    if damage == "truncated":
        blob = blob[: len(blob) // 2]
    else:
        blob = _tarball("train", langs=("en",))
    (root / "training.tar.gz").write_bytes(blob)
    files = dict(parallel.MULTI30K_FILES)
    urls, _, archive, prefix = files["train"]
    files["train"] = (urls, hashlib.sha256(blob).hexdigest(), archive, prefix)
    monkeypatch.setattr(parallel, "MULTI30K_FILES", files)
    with pytest.raises(CorruptFileError) as info:
        parallel.load_multi30k()
    text = str(info.value)
    assert str(root / "training.tar.gz") in text and urls[0] in text
    if damage == "lacks_de":
        assert "lacks train.de" in text
    assert list(root.iterdir()) == []  # no archive, no train.en, no staging


def test_multi30k_dry_run_without_data_gives_a_stand_in_of_the_same_format(
    monkeypatch, cache, no_network
):
    from seqlib.data import parallel
    from seqlib.data.standins import StandInWarning

    monkeypatch.delenv("SEQLIB_OFFLINE")  # the dry run alone keeps it offline
    monkeypatch.setenv("SEQLIB_DRY_RUN", "1")
    with pytest.warns(StandInWarning, match="dry run: Multi30k not found at"):
        data = parallel.load_multi30k()
    assert (len(data.train), len(data.valid), len(data.test)) == (
        256,
        256,
        256,
    )
    # vocabularies of a few thousand words, as the real ones
    assert 3_000 < len(data.src_vocab) < 10_000
    assert 3_000 < len(data.tgt_vocab) < 10_000
    for split in (data.train, data.valid, data.test):
        for pair in split:
            assert isinstance(pair.src, tuple) and pair.tgt == pair.refs[0]
            assert 2 <= len(pair.src) <= 41 and 1 <= len(pair.tgt) <= 41
    lengths = [len(p.src) for p in data.train]
    assert 9 <= sum(lengths) / len(lengths) <= 17 and max(lengths) >= 20
    batch = make_batch(data.train[:8], data.src_vocab, data.tgt_vocab)
    check_batch(batch)
    assert int(batch["src"].max()) < len(data.src_vocab)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # announced once only
        again = parallel.load_multi30k(src="de", tgt="en")
    assert again.train[0].src == data.train[0].tgt  # same pairs, reversed
    assert not any((cache / "multi30k").iterdir())


def test_multi30k_dry_run_uses_files_on_the_machine(monkeypatch, cache):
    from seqlib.data import parallel

    monkeypatch.setenv("SEQLIB_DRY_RUN", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no stand-in
        data = parallel.load_multi30k(MULTI30K, min_freq=1)
    assert (len(data.train), len(data.valid), len(data.test)) == (4, 2, 2)


def test_multi30k_outside_a_dry_run_still_raises(cache):
    from seqlib.data import DatasetUnavailableError, parallel

    with pytest.raises(DatasetUnavailableError, match="SEQLIB_OFFLINE"):
        parallel.load_multi30k()
    assert not any((cache / "multi30k").iterdir())
