import math

import pytest
import torch

from seqlib import decoding


class Table:
    """A toy model: the next-token log-probabilities depend only on the previous token.

    Tokens: 0 pad, 1 <bos>, 2 <eos>, 3.. words. The state counts steps and records reorders.
    """

    def __init__(self, logp: dict[int, dict[int, float]], vocab: int = 6):
        self.vocab, self.logp, self.reorders = vocab, logp, []

    def decode_step(self, y_prev, state):
        rows = []
        for y in y_prev.tolist():
            row = torch.full((self.vocab,), -1e9)
            for tok, p in self.logp.get(y, {2: 0.0}).items():
                row[tok] = p
            rows.append(row)
        return torch.stack(rows), state + 1, None

    def reorder_state(self, state, rows):
        self.reorders.append(rows.tolist())
        return state


def test_greedy_follows_the_most_likely_token_and_pads_after_eos():
    model = Table(
        {
            1: {3: math.log(0.6), 4: math.log(0.4)},
            3: {2: math.log(0.9), 5: math.log(0.1)},
        }
    )
    ids, weights = decoding.greedy(model, 0, batch_size=2, max_len=5)
    assert ids.tolist() == [[3, 2], [3, 2]] and weights is None


def test_beam_search_finds_the_better_longer_sequence_and_normalises_length():
    # greedy takes 3 then must end badly; the beam keeps 4, whose continuation is certain
    table = {
        1: {3: math.log(0.55), 4: math.log(0.45)},
        3: {2: math.log(0.3), 5: math.log(0.7)},
        5: {2: math.log(0.5), 3: math.log(0.5)},
        4: {5: 0.0},
    }
    model = Table(table)
    assert decoding.greedy(model, 0, batch_size=1, max_len=6)[0].tolist()[0][
        :2
    ] == [3, 5]
    best = decoding.beam_search(
        Table(table), 0, beam_size=2, max_len=6, alpha=0.0
    )
    assert best == [4, 5]  # log(0.45) + log(0.5) beats log(0.55) + log(0.3)


def test_an_eos_outside_the_top_k_does_not_finish_a_hypothesis():
    # After <bos>, <eos> is the 3rd best candidate and, once finished, would beat every longer output.
    table = {
        1: {3: math.log(0.35), 4: math.log(0.34), 2: math.log(0.31)},
        3: {5: math.log(0.5), 4: math.log(0.5)},
        4: {5: math.log(0.5), 3: math.log(0.5)},
        5: {2: 0.0},
    }
    assert (
        decoding.beam_search(
            Table(table), 0, beam_size=2, max_len=6, alpha=0.0
        )
        != []
    )  # rank 2 >= k: ignored
    assert (
        decoding.beam_search(
            Table(table), 0, beam_size=3, max_len=6, alpha=0.0
        )
        == []
    )  # within the top 3


def test_beam_search_reorders_the_state_to_each_beams_parent_and_falls_back_without_eos():
    table = {
        1: {3: math.log(0.6), 4: math.log(0.4)},
        3: {3: math.log(0.9), 4: math.log(0.1)},
        4: {4: 0.0},
    }
    model = Table(table)
    best = decoding.beam_search(model, 0, beam_size=2, max_len=3, alpha=0.0)
    assert best == [
        3,
        3,
        3,
    ]  # nothing ends: the best live hypothesis (0.6 · 0.9 · 0.9 > 0.4 · 1 · 1)
    assert model.reorders[0] == [
        0,
        0,
    ]  # both first beams come from the single start


def test_sample_is_reproducible_and_approaches_greedy_at_low_temperature():
    table = {1: {3: math.log(0.5), 4: math.log(0.5)}, 3: {2: 0.0}, 4: {2: 0.0}}
    draws = [
        decoding.sample(
            Table(table),
            0,
            batch_size=64,
            max_len=3,
            generator=torch.Generator().manual_seed(5),
        )[0]
        for _ in range(2)
    ]
    assert torch.equal(draws[0], draws[1]) and set(
        draws[0][:, 0].tolist()
    ) == {3, 4}
    skewed = {
        1: {3: math.log(0.6), 4: math.log(0.4)},
        3: {2: 0.0},
        4: {2: 0.0},
    }
    cold = decoding.sample(
        Table(skewed),
        0,
        batch_size=32,
        max_len=3,
        temperature=1e-3,
        generator=torch.Generator().manual_seed(0),
    )[0]
    assert torch.equal(
        cold, decoding.greedy(Table(skewed), 0, batch_size=32, max_len=3)[0]
    )
    with pytest.raises(ValueError, match="temperature must be > 0"):
        decoding.sample(
            Table(table), 0, batch_size=1, max_len=2, temperature=0
        )
