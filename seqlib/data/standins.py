"""Generated stand-ins for the full datasets, used by dry runs.

A dry run (:func:`seqlib.profiles.dry_run`) checks on a CPU that a chapter's
full profile will run: real model sizes, real data shapes and dtypes, a few
steps. It never downloads, so when a full dataset is not on the machine its
loader returns a stand-in from this module instead: generated data in exactly
the real format (the arrays the file readers return, the same text layout),
small (at most :data:`seqlib.profiles.DRY_RUN_CAP` examples a split) and
deterministic from a seed. The loaders announce it once per dataset with a
:class:`StandInWarning`. Stand-ins are for checking that code runs, never for
results: their labels are not what the pictures show, their sentences are not
language.

* CIFAR-10: :func:`cifar10`, uint8 ``(N, 3, 32, 32)`` images, labels in
  ``[0, 10)``.
* OrganMNIST3D: :func:`organmnist3d`, uint8 ``(N, 28, 28, 28)`` volumes,
  labels in ``[0, 11)``.
* Multi30k: :func:`multi30k_lines`, line-aligned English and German
  sentences of realistic lengths (mostly 6 to 25 words, at most
  :data:`MAX_WORDS`) over vocabularies of a few thousand words
  (:data:`VOCAB_SIZES`).
* Flickr8k: :func:`write_flickr8k`, the published files themselves
  (``Flickr8k.token.txt`` with five captions per image, the split files and
  JPEG photos in ``Flicker8k_Dataset/``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

STANDIN_SEED = 0
"""Default seed of every stand-in (each split adds its own offset)."""
STANDIN_SUBDIR = "dry-run-standins"
"""Where, under :func:`seqlib.data.download.cache_dir`, stand-ins that are
files (Flickr8k's) are written."""
VOCAB_SIZES = {"en": 5_900, "de": 7_850}
"""Words of the Multi30k stand-in languages: about the sizes of the real
vocabularies (Multi30k train at ``min_freq=2``)."""
MAX_WORDS = 40
"""The longest stand-in sentence or caption, in words."""
FLICKR_IMAGE_SIZE = (320, 240)
"""Width and height of the stand-in photos, 4:3 like most of Flickr8k's (which
are 500 pixels on the long side; :func:`seqlib.data.flickr8k.load_image`
resizes either to its output size); some are turned to portrait."""
FLICKR_CAPTIONS = 5
"""Captions per stand-in photo, as in Flickr8k."""

_announced: set[str] = set()


class StandInWarning(UserWarning):
    """A dry run replaced a dataset that is not on the machine by a generated
    stand-in."""


def announce(dataset: str, where: Path | str) -> None:
    """Warn, once per dataset and process, that a stand-in replaces
    ``dataset``.

    Args:
        dataset: its name, e.g. ``"CIFAR-10"``.
        where: where the loader looked for it.
    """
    if dataset in _announced:
        return
    _announced.add(dataset)
    warnings.warn(
        f"dry run: {dataset} not found at {where}, using a generated stand-in "
        "of the same format",
        StandInWarning,
        stacklevel=3,
    )


def _labels(n: int, classes: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` labels, every class about equally often, in random order."""
    return rng.permutation(np.arange(n) % classes).astype(np.int64)


def cifar10(
    n: int, *, seed: int = STANDIN_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR-10 stand-in: what :func:`seqlib.data.cifar10.read_batch`
    returns.

    Each image is a smooth colour field (a 4×4 grid of random colours,
    upsampled) tinted by its class, plus pixel noise.

    Args:
        n: number of images.
        seed: fixes the draw.

    Returns:
        images uint8 ``(n, 3, 32, 32)`` (RGB, channels first); labels int64
        ``(n,)`` in ``[0, 10)``.
    """
    rng = np.random.default_rng(seed)
    labels = _labels(n, 10, rng)
    tint = np.random.default_rng(10_000).uniform(40, 215, size=(10, 3))
    coarse = rng.uniform(-60, 60, size=(n, 3, 4, 4))  # (N, C, 4, 4)
    field = coarse.repeat(8, axis=2).repeat(8, axis=3)  # (N, C, 32, 32)
    noise = rng.normal(0, 12, size=(n, 3, 32, 32))
    images = tint[labels][:, :, None, None] + field + noise
    return np.clip(images, 0, 255).astype(np.uint8), labels


def organmnist3d(
    n: int, *, seed: int = STANDIN_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """An OrganMNIST3D stand-in: what
    :func:`seqlib.data.medmnist.read_medmnist_npz` returns.

    Each volume is a bright ellipsoid, its centre and radii set by its class,
    in a noisy dark background.

    Args:
        n: number of volumes.
        seed: fixes the draw.

    Returns:
        volumes uint8 ``(n, 28, 28, 28)`` (depth, height, width); labels int64
        ``(n,)`` in ``[0, 11)``.
    """
    rng = np.random.default_rng(seed)
    labels = _labels(n, 11, rng)
    shapes = np.random.default_rng(11_000)
    centres = shapes.uniform(9, 19, size=(11, 3))
    radii = shapes.uniform(3, 8, size=(11, 3))
    grid = np.stack(
        np.meshgrid(*[np.arange(28)] * 3, indexing="ij")
    )  # (3, D, H, W)
    volumes = np.empty((n, 28, 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        centre = centres[label] + rng.normal(0, 1.0, size=3)
        d = (
            (grid - centre[:, None, None, None])
            / radii[label][:, None, None, None]
        ) ** 2
        inside = d.sum(0) <= 1.0  # (D, H, W)
        volume = rng.normal(30, 10, size=(28, 28, 28)) + 150 * inside
        volumes[i] = np.clip(volume, 0, 255).astype(np.uint8)
    return volumes, labels


# --- sentences -----------------------------------------------------------
# The most frequent words of each stand-in language are real ones (as in
# image descriptions), the rest are made of syllables: printed examples look
# like text, and the frequency curve is Zipf's, as in a real corpus.
_HEAD = {
    "en": (
        "a in the on is and man of with woman two are to people at an "
        "wearing young shirt white black his while blue men sitting girl "
        "red boy dog standing playing street down group walking front her "
        "water holding"
    ).split(),
    "de": (
        "ein einem in eine mit und auf mann der frau die einer im zwei den "
        "sich trägt hemd junge menschen an vor steht sitzt hund weißen dem "
        "roten kind schwarzen blauen spielt männer straße mädchen gruppe "
        "von das wasser hält"
    ).split(),
}
_SYLLABLES = {
    "en": (
        ["b", "c", "d", "f", "g", "h", "l", "m", "n", "p", "r", "s", "t"]
        + ["w", "br", "cl", "st", "tr", "sh", "th"],
        ["a", "e", "i", "o", "u", "ea", "oo", "ai"],
        ["", "", "n", "r", "t", "s", "ck", "ll", "ng"],
    ),
    "de": (
        ["b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t"]
        + ["w", "z", "sch", "st", "kr", "pf", "gr"],
        ["a", "e", "i", "o", "u", "ei", "au", "ie", "ä", "ü", "ö"],
        ["", "", "n", "r", "t", "s", "ch", "ng", "ck", "tz"],
    ),
}


@lru_cache(maxsize=None)
def vocabulary(lang: str) -> tuple[str, ...]:
    """The words of a stand-in language, most frequent first.

    Args:
        lang: ``"en"`` or ``"de"``.

    Returns:
        :data:`VOCAB_SIZES` ``[lang]`` distinct lower-case words, the same in
        every process.

    Raises:
        ValueError: for another language.
    """
    if lang not in VOCAB_SIZES:
        raise ValueError(
            f"lang must be one of {sorted(VOCAB_SIZES)}, got {lang!r}"
        )
    onsets, nuclei, codas = _SYLLABLES[lang]
    rng = np.random.default_rng(20_000 + sum(map(ord, lang)))
    words, seen = list(_HEAD[lang]), set(_HEAD[lang])
    while len(words) < VOCAB_SIZES[lang]:
        batch = 4 * (VOCAB_SIZES[lang] - len(words))
        syllables = rng.choice([1, 2, 3], size=batch, p=[0.25, 0.55, 0.2])
        parts = (
            rng.integers(len(onsets), size=(batch, 3)),
            rng.integers(len(nuclei), size=(batch, 3)),
            rng.integers(len(codas), size=(batch, 3)),
        )
        for i, k in enumerate(syllables):
            word = "".join(
                onsets[parts[0][i, j]]
                + nuclei[parts[1][i, j]]
                + (codas[parts[2][i, j]] if j == k - 1 else "")
                for j in range(k)
            )
            if len(word) > 1 and word not in seen:
                seen.add(word)
                words.append(word)
                if len(words) == VOCAB_SIZES[lang]:
                    break
    return tuple(words)


def _zipf(size: int) -> np.ndarray:
    """Zipf–Mandelbrot probabilities of ``size`` ranks."""
    p = 1.0 / (np.arange(size) + 2.7)
    return p / p.sum()


def _lengths(
    n: int, rng: np.random.Generator, *, mean: float, low: int
) -> np.ndarray:
    """``n`` sentence lengths in words: a gamma law of the given mean (sd
    about a third of it), clipped to ``[low, MAX_WORDS]``."""
    shape = 8.0
    draw = rng.gamma(shape, mean / shape, size=n)
    return np.clip(np.rint(draw), low, MAX_WORDS).astype(int)


def _render(words: list[str], *, spaced_period: bool) -> str:
    """A sentence as it is printed: capital first letter, final period."""
    text = " ".join(words)
    text = text[:1].upper() + text[1:]
    return text + (" ." if spaced_period else ".")


def _draw(
    n: int, size: int, rng: np.random.Generator, *, mean: float
) -> list[np.ndarray]:
    """``n`` sentences as arrays of word ranks (Zipf-distributed)."""
    lengths = _lengths(n, rng, mean=mean, low=3)
    ranks = rng.choice(size, size=int(lengths.sum()), p=_zipf(size))
    return np.split(ranks, np.cumsum(lengths)[:-1])


def sentences(
    n: int,
    lang: str = "en",
    *,
    mean_words: float = 12.0,
    seed: int = STANDIN_SEED,
    spaced_period: bool = False,
) -> list[str]:
    """``n`` stand-in sentences, one line of text each.

    Args:
        n: how many.
        lang: ``"en"`` or ``"de"`` (see :func:`vocabulary`).
        mean_words: their mean length in words (each has 3 to
            :data:`MAX_WORDS`).
        seed: fixes the draw.
        spaced_period: end with ``" ."`` (Flickr8k's captions) instead of
            ``"."`` (Multi30k's sentences).

    Returns:
        The sentences, e.g. ``"A man in the trock wearing steng."``.
    """
    words = vocabulary(lang)
    rng = np.random.default_rng(seed)
    return [
        _render([words[r] for r in ranks], spaced_period=spaced_period)
        for ranks in _draw(n, len(words), rng, mean=mean_words)
    ]


def multi30k_lines(
    sizes: dict[str, int], *, seed: int = STANDIN_SEED
) -> dict[str, tuple[list[str], list[str]]]:
    """Stand-in Multi30k files: line-aligned English and German sentences.

    The German line of a pair renders the English one word by word through a
    fixed dictionary, with some words replaced, added or dropped and the last
    two often swapped, so the lengths of a pair go together as in a real
    corpus.

    Args:
        sizes: lines per file prefix, e.g. ``{"train": 29000, "val": 1014,
            "test": 1000}``.
        seed: fixes the draw (each prefix adds its position).

    Returns:
        prefix -> (English lines, German lines), what ``<prefix>.en`` and
        ``<prefix>.de`` hold.
    """
    en_words, de_words = vocabulary("en"), vocabulary("de")
    out = {}
    for offset, (prefix, n) in enumerate(sizes.items()):
        rng = np.random.default_rng(seed + 1_000 * (offset + 1))
        en = _draw(n, len(en_words), rng, mean=12.0)
        flat = np.concatenate(en) if en else np.zeros(0, dtype=int)
        # per English word: dropped (6%), another German word (30%) or its
        # dictionary entry; 5% are followed by an extra frequent word
        u = rng.random(len(flat))
        other = rng.choice(
            len(de_words), size=len(flat), p=_zipf(len(de_words))
        )
        extra = np.where(
            rng.random(len(flat)) < 0.05, rng.integers(40, size=len(flat)), -1
        )
        swap = rng.random(n) < 0.5
        de_ranks = np.where(
            u < 0.36, other, np.minimum(flat, len(de_words) - 1)
        )
        en_lines, de_lines, start = [], [], 0
        for i, ranks in enumerate(en):
            en_lines.append(
                _render([en_words[r] for r in ranks], spaced_period=False)
            )
            de = []
            for j in range(start, start + len(ranks)):
                if u[j] >= 0.06:
                    de.append(de_words[de_ranks[j]])
                if extra[j] >= 0:
                    de.append(de_words[extra[j]])
            start += len(ranks)
            if len(de) > 3 and swap[i]:
                de[-1], de[-2] = de[-2], de[-1]  # the verb to the end
            de = de[:MAX_WORDS] or [de_words[0]]
            de_lines.append(_render(de, spaced_period=False))
        out[prefix] = (en_lines, de_lines)
    return out


def _photo(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A smooth random RGB picture, uint8 ``(H, W, 3)``."""
    from PIL import Image  # Pillow comes with matplotlib

    coarse = rng.integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
    img = Image.fromarray(coarse).resize(size, Image.BICUBIC)
    return np.asarray(img)


def write_flickr8k(
    directory: Path | str,
    sizes: dict[str, int],
    *,
    seed: int = STANDIN_SEED,
) -> Path:
    """Write a stand-in Flickr8k in the published layout, all or nothing.

    ``directory`` gets ``Flickr8k.token.txt`` (``<image>.jpg#<k><TAB>
    <caption>``, :data:`FLICKR_CAPTIONS` captions per image), the split
    files ``Flickr_8k.{train,dev,test}Images.txt`` and the JPEG photos in
    ``Flicker8k_Dataset/``. Everything is written into a staging directory
    first and renamed to ``directory`` when complete; an existing complete
    ``directory`` is returned as it is.

    Args:
        directory: where the stand-in goes.
        sizes: images per split, e.g. ``{"train": 256, "dev": 256, "test":
            256}``.
        seed: fixes the draw.

    Returns:
        ``directory``.
    """
    from seqlib.data import flickr8k  # the file names; flickr8k imports us

    directory = Path(directory)
    if (directory / flickr8k.TOKEN_FILE).is_file():
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.")
    )
    try:
        rng = np.random.default_rng(seed)
        images = staging / flickr8k.IMAGE_DIRS[0]
        images.mkdir()
        total = sum(sizes.values())
        ids = rng.choice(9 * 10**9, size=total, replace=False) + 10**9
        names = [f"{i}_{rng.integers(16**10):010x}.jpg" for i in ids.tolist()]
        captions = sentences(
            total * FLICKR_CAPTIONS,
            "en",
            mean_words=11.0,
            seed=seed + 1,
            spaced_period=True,
        )
        token_lines = []
        from PIL import Image

        for i, name in enumerate(names):
            size = FLICKR_IMAGE_SIZE
            if rng.random() < 0.3:
                size = size[::-1]  # some portraits
            Image.fromarray(_photo(rng, size)).save(images / name, quality=85)
            for k in range(FLICKR_CAPTIONS):
                caption = captions[i * FLICKR_CAPTIONS + k]
                token_lines.append(f"{name}#{k}\t{caption}\n")
        start = 0
        for split, count in sizes.items():
            (staging / flickr8k.SPLIT_FILES[split]).write_text(
                "".join(f"{n}\n" for n in names[start : start + count]),
                encoding="utf-8",
            )
            start += count
        (staging / flickr8k.TOKEN_FILE).write_text(
            "".join(token_lines), encoding="utf-8"
        )
        if directory.exists():
            shutil.rmtree(directory)  # an incomplete earlier attempt
        os.replace(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory
