"""Tests for seqlib.metrics: BLEU by hand equals sacrebleu; buckets; errors."""

import math
import random

import pytest

from seqlib.metrics import (
    bleu_by_hand,
    bleu_by_length,
    brevity_penalty,
    clipped_matches,
    closest_ref_length,
    corpus_bleu,
)


def _random_corpus(seed, n=40, vocab=8):
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(vocab)]
    hyps, refs = [], []
    for _ in range(n):
        ref = [rng.choice(words) for _ in range(rng.randint(1, 12))]
        hyp = [t if rng.random() < 0.7 else rng.choice(words) for t in ref]
        hyp = hyp[: rng.randint(max(1, len(hyp) - 3), len(hyp))] + rng.sample(
            words, k=rng.randint(0, 2)
        )
        alts = [
            [t if rng.random() < 0.8 else rng.choice(words) for t in ref]
            for _ in range(rng.randint(0, 2))
        ]
        hyps.append(hyp)
        refs.append([ref] + alts)
    return hyps, refs


@pytest.mark.parametrize("seed", range(6))
def test_hand_bleu_equals_sacrebleu_with_variable_references(seed):
    hyps, refs = _random_corpus(seed)
    ours, theirs = bleu_by_hand(hyps, refs), corpus_bleu(hyps, refs)
    assert ours.score == pytest.approx(theirs.score, abs=1e-9)
    assert ours.bp == pytest.approx(theirs.bp)
    assert (ours.sys_len, ours.ref_len) == (theirs.sys_len, theirs.ref_len)
    assert ours.precisions == pytest.approx(theirs.precisions)


def test_smoothing_of_an_order_without_matches_matches_sacrebleu():
    hyps, refs = (
        [["a", "b", "c", "d"]],
        [[["a", "x", "c", "y"]]],
    )  # unigrams match, no bigram does
    ours, theirs = bleu_by_hand(hyps, refs), corpus_bleu(hyps, refs)
    assert ours.score == pytest.approx(theirs.score) and ours.score > 0
    assert bleu_by_hand(hyps, refs, smooth="none").score == 0.0


def test_perfect_and_empty_outputs():
    refs = [[["the", "cat", "sat", "on", "the", "mat"]]]
    assert corpus_bleu(
        [["the", "cat", "sat", "on", "the", "mat"]], refs
    ).score == pytest.approx(100)
    assert bleu_by_hand(
        ["the cat sat on the mat"], refs
    ).score == pytest.approx(100)
    assert bleu_by_hand([[]], refs).score == 0.0


def test_clipping_and_brevity_by_hand():
    # Papineni et al.'s example: "the the the ..." gets credit for two "the" only.
    assert clipped_matches(
        ["the"] * 7, [["the", "cat", "is", "on", "the", "mat"]], 1
    ) == (2, 7)
    assert brevity_penalty(10, 8) == 1.0
    assert brevity_penalty(8, 10) == pytest.approx(math.exp(1 - 10 / 8))
    assert brevity_penalty(0, 5) == 0.0
    assert closest_ref_length(6, [4, 8, 9]) == 4  # tie -> shorter


def test_signature_names_the_settings():
    res = corpus_bleu([["a", "b"]], [[["a", "b"]]])
    assert "tok:none" in res.signature and "nrefs:1" in res.signature


def test_bleu_by_length_buckets():
    hyps = [["a", "b", "c", "d"], ["x"] * 4, ["a", "b", "c", "d"]]
    refs = [[["a", "b", "c", "d"]]] * 3
    rows = bleu_by_length(hyps, refs, [3, 12, 25], [0, 10, 20, 30, 40])
    assert [r["n"] for r in rows] == [1, 1, 1, 0]
    assert rows[0]["bleu"] == pytest.approx(100) and rows[1][
        "bleu"
    ] == pytest.approx(0)
    assert rows[0]["bucket"] == "0-9" and math.isnan(rows[3]["bleu"])


def test_bad_inputs_are_clear():
    with pytest.raises(
        ValueError, match="one list of references per hypothesis"
    ):
        corpus_bleu([["a"]], [])
    with pytest.raises(ValueError, match="non-empty list"):
        bleu_by_hand([["a"]], [[]])
    with pytest.raises(ValueError, match="edges"):
        bleu_by_length([["a"]], [[["a"]]], [1], [5])
    with pytest.raises(ValueError, match="source length"):
        bleu_by_length([["a"]], [[["a"]]], [1, 2], [0, 5])
