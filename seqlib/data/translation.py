"""A generated translation task with a real alignment problem, plus
vocabularies and batching.

Two small artificial languages. The source is English-like
(subject–verb–object, adjectives before the noun, adverbs at the end of a
clause). The target is a made-up language that behaves like German or Hindi
where it matters for attention: the verb goes to the end of every clause,
adjectives follow the noun and agree with its gender and number, articles mark
gender, number and case, the verb agrees with its subject, and relative clauses
are verb-final too. A free adverb position and two synonyms give several
correct translations, which become the BLEU references. Sentences are chained
with conjunctions, so their length is set by the caller and can go well past 30
tokens. This is the data of chapters 2–3 (the "bottleneck" experiment of Cho et
al. 2014 and Bahdanau et al. 2015); :mod:`seqlib.data.parallel` loads real
corpora into the same
:class:`TranslationData`. Shape letters: B batch, S source length, T target
length.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import torch

from seqlib.shapes import expect_dtype, expect_shape

# --- the two languages -------------------------------------------------------
#    noun: (source singular, source plural, target stem, gender); target plural
#    = stem + "(e)n".
NOUNS = [
    ("dog", "dogs", "hund", "m"),
    ("cat", "cats", "katze", "f"),
    ("bird", "birds", "vogel", "m"),
    ("horse", "horses", "stute", "f"),
    ("boy", "boys", "knabe", "m"),
    ("girl", "girls", "maid", "f"),
    ("king", "kings", "koenig", "m"),
    ("queen", "queens", "dame", "f"),
    ("fox", "foxes", "fuchs", "m"),
    ("mouse", "mice", "maus", "f"),
    ("farmer", "farmers", "bauer", "m"),
    ("owl", "owls", "eule", "f"),
]
# verb: (source 3rd singular, source plural, target stem); target: stem + "t"
# (sg) / + "en" (pl).
TRANSITIVE = [
    ("sees", "see", "seh"),
    ("likes", "like", "lieb"),
    ("follows", "follow", "folg"),
    ("finds", "find", "find"),
    ("calls", "call", "ruf"),
    ("hears", "hear", "hoer"),
]
INTRANSITIVE = [
    ("sleeps", "sleep", "schlaf"),
    ("runs", "run", "lauf"),
    ("sings", "sing", "sing"),
    ("waits", "wait", "harr"),
]
# adjective: (source, target stems); several stems are synonyms, all correct.
ADJECTIVES = [
    ("big", ("gross", "riesig")),
    ("small", ("klein", "winzig")),
    ("old", ("alt",)),
    ("young", ("jung",)),
    ("red", ("rot",)),
    ("clever", ("klug",)),
]
ADVERBS = [
    ("quickly", "schnell"),
    ("slowly", "langsam"),
    ("often", "oft"),
    ("today", "heute"),
]
CONJUNCTIONS = [
    ("and", "und"),
    ("but", "aber"),
    ("because", "weil"),
    ("while", "waehrend"),
]
ADJ_SUFFIX = {
    ("m", "sg"): "o",
    ("f", "sg"): "a",
    ("m", "pl"): "i",
    ("f", "pl"): "i",
}
DEFINITE = {
    ("m", "sg", "nom"): "der",
    ("m", "sg", "acc"): "den",
    ("f", "sg", "nom"): "die",
    ("f", "sg", "acc"): "die",
    ("m", "pl", "nom"): "die",
    ("f", "pl", "nom"): "die",
    ("m", "pl", "acc"): "die",
    ("f", "pl", "acc"): "die",
}
INDEFINITE = {
    ("m", "nom"): "ein",
    ("m", "acc"): "einen",
    ("f", "nom"): "eine",
    ("f", "acc"): "eine",
}
RELATIVE = {
    ("m", "sg"): "welcher",
    ("f", "sg"): "welche",
    ("m", "pl"): "welche",
    ("f", "pl"): "welche",
}

Variants = list[list[str]]  # alternative target renderings of one phrase


@dataclass(frozen=True)
class Pair:
    """One sentence pair: source tokens, the training target, and every
    reference."""

    src: tuple[str, ...]
    tgt: tuple[str, ...]
    refs: tuple[tuple[str, ...], ...]


def _product(parts: Sequence[Variants], limit: int) -> Variants:
    """Concatenate one variant of each part, for the first ``limit``
    combinations."""
    combos = itertools.islice(itertools.product(*parts), limit)
    joined = [
        tuple(tok for piece in combo for tok in piece) for combo in combos
    ]
    return [list(v) for v in dict.fromkeys(joined)]  # distinct, in order


def _noun_phrase(
    rng: random.Random, case: str, *, allow_relative: bool
) -> tuple[list[str], Variants, str]:
    """A noun phrase: source tokens, target variants, and its number (for verb
    agreement)."""
    src_sg, src_pl, stem, gender = rng.choice(NOUNS)
    number = rng.choice(["sg", "pl"])
    definite = number == "pl" or rng.random() < 0.6
    adjs = rng.sample(ADJECTIVES, k=rng.choice([0, 0, 1, 1, 2]))
    det = "the" if definite else "a"
    src = [a for a, _ in adjs] + [src_sg if number == "sg" else src_pl]
    src = ["an" if det == "a" and src[0][0] in "aeiou" else det] + src
    art = (
        DEFINITE[(gender, number, case)]
        if definite
        else INDEFINITE[(gender, case)]
    )
    noun = (
        stem
        if number == "sg"
        else stem + ("n" if stem.endswith("e") else "en")
    )
    suffix = ADJ_SUFFIX[(gender, number)]
    # Target: article, noun, then the adjectives (agreeing) in source order.
    parts: list[Variants] = [[[art, noun]]] + [
        [[s + suffix] for s in stems] for _, stems in adjs
    ]
    tgt = _product(parts, limit=4)
    if (
        allow_relative and rng.random() < 0.3
    ):  # "the dog that sees the cat" -> "... welcher die katze sieht"
        vs, vp, vstem = rng.choice(TRANSITIVE)
        obj_src, obj_tgt, _ = _noun_phrase(rng, "acc", allow_relative=False)
        src += ["that", vs if number == "sg" else vp] + obj_src
        verb = vstem + ("t" if number == "sg" else "en")
        tgt = _product(
            [tgt, [[RELATIVE[(gender, number)]]], obj_tgt, [[verb]]], limit=4
        )
    return src, tgt, number


def _clause(rng: random.Random) -> tuple[list[str], Variants]:
    """Subject, verb, optional object and adverb; the target puts the verb
    last."""
    subj_src, subj_tgt, number = _noun_phrase(rng, "nom", allow_relative=True)
    transitive = rng.random() < 0.6
    vs, vp, stem = rng.choice(TRANSITIVE if transitive else INTRANSITIVE)
    verb = stem + ("t" if number == "sg" else "en")
    obj_src, obj_tgt = ([], [[]])
    if transitive:
        obj_src, obj_tgt, _ = _noun_phrase(rng, "acc", allow_relative=False)
    src = subj_src + [vs if number == "sg" else vp] + obj_src
    if (
        rng.random() < 0.4
    ):  # the adverb may stand after the subject or just before the verb
        adv_src, adv_tgt = rng.choice(ADVERBS)
        src.append(adv_src)
        orders = [
            [subj_tgt, [[adv_tgt]], obj_tgt, [[verb]]],
            [subj_tgt, obj_tgt, [[adv_tgt]], [[verb]]],
        ]
        tgt = _product(
            [[v for order in orders for v in _product(order, limit=2)]],
            limit=4,
        )
    else:
        tgt = _product([subj_tgt, obj_tgt, [[verb]]], limit=4)
    return src, tgt


def generate_pair(
    rng: random.Random, target_length: int, *, max_refs: int = 4
) -> Pair:
    """Chain clauses with conjunctions until the source has at least
    ``target_length`` tokens."""
    src, parts = [], []
    while True:
        c_src, c_tgt = _clause(rng)
        src += c_src
        parts.append(c_tgt)
        if len(src) >= target_length:
            break
        conj_src, conj_tgt = rng.choice(CONJUNCTIONS)
        src.append(conj_src)
        parts.append([[conj_tgt]])
    # The first variant of every part is the canonical reference; the others
    # come from changing one part at a time, so the references differ in a few
    # places each.
    canonical = [p[0] for p in parts]
    refs = [tuple(tok for piece in canonical for tok in piece)]
    for i, part in enumerate(parts):
        for alt in part[1:]:
            if len(refs) >= max_refs:
                break
            refs.append(
                tuple(
                    tok
                    for piece in canonical[:i] + [alt] + canonical[i + 1 :]
                    for tok in piece
                )
            )
    tgt = refs[
        rng.randrange(len(refs))
    ]  # train on a random correct translation
    return Pair(src=tuple(src), tgt=tgt, refs=tuple(refs))


def generate_pairs(
    n: int,
    *,
    min_len: int = 3,
    max_len: int = 45,
    seed: int = 0,
    max_refs: int = 4,
) -> list[Pair]:
    """``n`` pairs with distinct sources, lengths spread evenly over
    ``[min_len, max_len]``."""
    if not 1 <= min_len <= max_len:
        raise ValueError(
            f"need 1 <= min_len <= max_len, got min_len={min_len}, "
            f"max_len={max_len}"
        )
    rng, seen, pairs = random.Random(seed), set(), []
    for _ in range(50 * n + 1000):
        if len(pairs) == n:
            return pairs
        pair = generate_pair(
            rng, rng.randint(min_len, max_len), max_refs=max_refs
        )
        if min_len <= len(pair.src) <= max_len and pair.src not in seen:
            seen.add(pair.src)
            pairs.append(pair)
    raise ValueError(
        f"could only generate {len(pairs)} distinct pairs of length "
        f"{min_len}..{max_len}; ask for fewer or widen the range"
    )


# --- vocabularies ------------------------------------------------------------
class Vocab:
    """Token <-> id mapping with ``<pad>=0, <bos>=1, <eos>=2, <unk>=3``."""

    SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    def __init__(self, tokens: Iterable[str]):
        self.itos = list(self.SPECIALS) + [
            t for t in dict.fromkeys(tokens) if t not in self.SPECIALS
        ]
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(
        cls,
        sentences: Iterable[Sequence[str]],
        *,
        min_freq: int = 1,
        max_size: int | None = None,
    ) -> "Vocab":
        """Vocabulary of the tokens seen at least ``min_freq`` times, most
        frequent first."""
        counts = Counter(tok for sent in sentences for tok in sent)
        ranked = sorted(
            (t for t, c in counts.items() if c >= min_freq),
            key=lambda t: (-counts[t], t),
        )
        return cls(ranked[:max_size])

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def encode(
        self, tokens: Sequence[str], *, bos: bool = False, eos: bool = True
    ) -> list[int]:
        """Ids of ``tokens`` (unknown ones become ``<unk>``), optionally framed
        by bos/eos."""
        ids = [self.stoi.get(t, self.unk_id) for t in tokens]
        return (
            ([self.bos_id] if bos else [])
            + ids
            + ([self.eos_id] if eos else [])
        )

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens up to the first ``<eos>``, without ``<bos>`` and
        ``<pad>``."""
        out = []
        for i in (int(i) for i in ids):
            if i == self.eos_id:
                break
            if i not in (self.bos_id, self.pad_id):
                out.append(
                    self.itos[i]
                    if 0 <= i < len(self.itos)
                    else self.SPECIALS[self.unk_id]
                )
        return out


# --- padding and batching ----------------------------------------------------
def pad_sequences(
    seqs: Sequence[Sequence[int]], pad_id: int = Vocab.pad_id
) -> torch.Tensor:
    """Stack id lists into a ``(B, T)`` long tensor, right-padded with
    ``pad_id``."""
    if len(seqs) == 0:
        raise ValueError("pad_sequences: got no sequences")
    out = torch.full(
        (len(seqs), max(len(s) for s in seqs)), pad_id, dtype=torch.long
    )  # (B, T)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
    return out


def make_batch(
    pairs: Sequence[Pair],
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    index: Sequence[int] | None = None,
) -> dict[str, torch.Tensor]:
    """Encode and pad pairs into a batch dict.

    Returns:
        ``src`` (B, S) source ids ending in ``<eos>``; ``src_lengths`` (B,);
        ``tgt_in`` (B, T) = ``<bos> y_1 .. y_n`` (teacher forcing input);
        ``tgt_out`` (B, T) = ``y_1 .. y_n <eos>`` (what to predict); ``index``
        (B,) positions of the pairs in the caller's list.
    """
    src = [src_vocab.encode(p.src) for p in pairs]
    tgt = [tgt_vocab.encode(p.tgt, bos=True, eos=True) for p in pairs]
    index = range(len(pairs)) if index is None else index
    return {
        "src": pad_sequences(src),
        "src_lengths": torch.tensor([len(s) for s in src]),
        "tgt_in": pad_sequences([t[:-1] for t in tgt]),
        "tgt_out": pad_sequences([t[1:] for t in tgt]),
        "index": torch.as_tensor(list(index), dtype=torch.long),
    }


class BucketBatches:
    """Length-aware batches: each batch holds sentences of similar source
    length.

    Sentences are shuffled, cut into pools of ``pool`` batches, sorted by
    length inside a pool and chunked; then the batch order is shuffled. Padding
    (and decoder steps wasted on it) shrinks, while each epoch still sees a new
    order. Iterating again starts a new epoch; a fixed ``seed`` fixes every
    epoch.
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        src_vocab: Vocab,
        tgt_vocab: Vocab,
        *,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        pool: int = 50,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.pairs, self.src_vocab, self.tgt_vocab = (
            list(pairs),
            src_vocab,
            tgt_vocab,
        )
        self.batch_size, self.shuffle, self.pool = batch_size, shuffle, pool
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return -(-len(self.pairs) // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        order = list(range(len(self.pairs)))
        if self.shuffle:
            self.rng.shuffle(order)
        size = self.batch_size * self.pool if self.shuffle else len(order)
        chunks = []
        for start in range(0, len(order), size):
            pool = sorted(
                order[start : start + size],
                key=lambda i: len(self.pairs[i].src),
            )
            chunks += [
                pool[i : i + self.batch_size]
                for i in range(0, len(pool), self.batch_size)
            ]
        if self.shuffle:
            self.rng.shuffle(chunks)
        for idx in chunks:
            yield make_batch(
                [self.pairs[i] for i in idx],
                self.src_vocab,
                self.tgt_vocab,
                index=idx,
            )


def check_batch(batch: dict[str, torch.Tensor]) -> dict[str, int]:
    """Validate a batch dict's shapes and dtypes; return
    ``{"B", "S", "T"}``."""
    dims = expect_shape(batch["src"], ("B", "S"), name="src")
    expect_dtype(batch["src"], torch.long, name="src")
    expect_shape(batch["src_lengths"], ("B",), name="src_lengths", sizes=dims)
    dims = expect_shape(batch["tgt_in"], ("B", "T"), name="tgt_in", sizes=dims)
    expect_shape(batch["tgt_out"], ("B", "T"), name="tgt_out", sizes=dims)
    return dims


# --- the whole task ----------------------------------------------------------
@dataclass
class TranslationData:
    """Train/valid/test pairs and the two vocabularies built on the training
    split."""

    train: list[Pair]
    valid: list[Pair]
    test: list[Pair]
    src_vocab: Vocab
    tgt_vocab: Vocab

    @classmethod
    def from_splits(
        cls,
        train: list[Pair],
        valid: list[Pair],
        test: list[Pair],
        *,
        min_freq: int = 1,
        max_size: int | None = None,
    ) -> "TranslationData":
        """Build vocabularies on ``train`` only (so test words may be
        ``<unk>``)."""
        src_vocab = Vocab.build(
            (p.src for p in train), min_freq=min_freq, max_size=max_size
        )
        tgt_vocab = Vocab.build(
            (r for p in train for r in p.refs),
            min_freq=min_freq,
            max_size=max_size,
        )
        return cls(train, valid, test, src_vocab, tgt_vocab)


def translation_task(
    n_train: int,
    n_valid: int,
    n_test: int,
    *,
    min_len: int = 3,
    max_len: int = 45,
    seed: int = 0,
) -> TranslationData:
    """Deterministic train/valid/test splits of the generated task (distinct
    sources)."""
    pairs = generate_pairs(
        n_train + n_valid + n_test, min_len=min_len, max_len=max_len, seed=seed
    )
    random.Random(seed + 1).shuffle(pairs)
    return TranslationData.from_splits(
        pairs[:n_train],
        pairs[n_train : n_train + n_valid],
        pairs[n_train + n_valid :],
    )
