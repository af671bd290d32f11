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
  three tarballs; they are fetched with SHA-256 checks into the cache and
  unpacked all or nothing (:func:`seqlib.data.download.unpack`). In a dry run
  (:func:`seqlib.profiles.dry_run`) nothing is downloaded: without the files
  on the machine, :func:`load_multi30k` reads generated stand-in lines of the
  same layout (:func:`seqlib.data.standins.multi30k_lines`), and keeps at most
  :data:`seqlib.profiles.DRY_RUN_CAP` pairs a split either way.
"""

from __future__ import annotations

import random
import re
from collections import OrderedDict
from pathlib import Path

from seqlib import profiles
from seqlib.data import standins
from seqlib.data.download import (
    CorruptFileError,
    DatasetUnavailableError,
    cache_dir,
    corrupt_file_error,
    fetch,
    unpack,
)
from seqlib.data.translation import Pair, TranslationData

# split -> (mirrors, SHA-256, archive name, prefix of the text files inside).
# Digests as published with torchtext's Multi30k loader (pytorch/text,
# torchtext/datasets/multi30k.py). The original server (quest.dcs.shef.ac.uk)
# has been down for long stretches, so the GitHub copy torchtext switched to
# comes first; its test tarball is packed differently (pytorch/text#1756,
# #2194), so that split accepts either file's digest.
MULTI30K_FILES = {
    "train": (
        [
            "https://raw.githubusercontent.com/neychev/small_DL_repo/master/datasets/Multi30k/training.tar.gz",
            "http://www.quest.dcs.shef.ac.uk/wmt16_files_mmt/training.tar.gz",
        ],
        "20140d013d05dd9a72dfde46478663ba05737ce983f478f960c1123c6671be5e",
        "training.tar.gz",
        "train",
    ),
    "valid": (
        [
            "https://raw.githubusercontent.com/neychev/small_DL_repo/master/datasets/Multi30k/validation.tar.gz",
            "http://www.quest.dcs.shef.ac.uk/wmt16_files_mmt/validation.tar.gz",
        ],
        "a7aa20e9ebd5ba5adce7909498b94410996040857154dab029851af3a866da8c",
        "validation.tar.gz",
        "val",
    ),
    "test": (
        [
            "https://raw.githubusercontent.com/neychev/small_DL_repo/master/datasets/Multi30k/mmt16_task1_test.tar.gz",
            "http://www.quest.dcs.shef.ac.uk/wmt16_files_mmt/mmt16_task1_test.tar.gz",
        ],
        (
            "6d1ca1dba99e2c5dd54cae1226ff11c2551e6ce63527ebb072a1f70f72a5cd36",
            "0681be16a532912288a91ddd573594fbdd57c0fbb81486eff7c55247e35326c2",
        ),
        "mmt16_task1_test.tar.gz",
        "test",
    ),
}
MULTI30K_SIZES = {"train": 29_000, "val": 1_014, "test": 1_000}
"""Sentence pairs in each Multi30k file (by prefix)."""
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
    their directory.

    Args:
        root: where the text files go; default ``cache_dir()/multi30k``. A
            split whose two files are already there is not fetched.

    Raises:
        DatasetUnavailableError: if a tarball is absent and cannot be fetched
            (the message says from where, and where to put it).
        CorruptFileError: if a tarball cannot be unpacked or lacks its two
            files (it is removed; no partial file is left).
    """
    root = Path(root) if root is not None else cache_dir() / "multi30k"
    for urls, digest, archive, prefix in MULTI30K_FILES.values():
        names = (f"{prefix}.en", f"{prefix}.de")
        if all((root / name).exists() for name in names):
            continue
        tar_path = fetch(
            urls, root / archive, digest, what=f"Multi30k {prefix} split"
        )
        unpack(
            tar_path,
            root,
            what=f"Multi30k {prefix} split",
            # never trust paths inside an archive: keep the bare file names
            select=lambda name, names=names: (
                Path(name).name if Path(name).name in names else None
            ),
            expect=names,
            urls=urls,
        )
    return root


def load_multi30k(
    directory: Path | str | None = None,
    *,
    src: str = "en",
    tgt: str = "de",
    min_freq: int = 2,
) -> TranslationData:
    """Multi30k's train/val/test splits from ``directory`` (default: fetched
    into the cache).

    Args:
        directory: holds ``train.en``, ``train.de``, ``val.*`` and ``test.*``;
            default: :func:`multi30k_dir` (in a dry run, without the files on
            the machine: generated stand-in lines of the same layout,
            announced by a :class:`~seqlib.data.standins.StandInWarning`).
        src, tgt: ``"en"`` and ``"de"``, in either order.
        min_freq: rarer words become ``<unk>`` in the vocabularies.

    Returns:
        The splits (each pair with its one reference) and vocabularies built
        on the whole training file; in a dry run each split keeps its first
        :data:`seqlib.profiles.DRY_RUN_CAP` pairs.

    Raises:
        ValueError: for another language pair, or files that are not
            line-aligned.
        CorruptFileError: if a cached file cannot be read (the message names
            it and says what to do).
        DatasetUnavailableError: if the files are not cached and cannot be
            downloaded.
    """
    if {src, tgt} != {"en", "de"}:
        raise ValueError(
            "Multi30k task 1 is English-German: need src/tgt 'en' and 'de', "
            f"got {src!r}, {tgt!r}"
        )
    raw: dict[str, list[tuple[str, str]]] = {}
    if directory is None:
        try:
            directory = multi30k_dir()
        except DatasetUnavailableError as err:
            if not profiles.dry_run() or isinstance(err, CorruptFileError):
                raise
            standins.announce("Multi30k", cache_dir() / "multi30k")
            lines = standins.multi30k_lines(MULTI30K_SIZES)
            raw = {
                prefix: list(zip(en, de)) if src == "en" else list(zip(de, en))
                for prefix, (en, de) in lines.items()
            }
        cached = True
    else:
        cached = False
    for prefix in MULTI30K_SIZES:
        if prefix in raw:
            continue
        paths = [Path(directory) / f"{prefix}.{lang}" for lang in (src, tgt)]
        try:
            raw[prefix] = read_aligned(*paths)
        except ValueError as err:  # also UnicodeDecodeError
            if not cached:
                raise
            urls, _, archive, _ = next(
                f for f in MULTI30K_FILES.values() if f[3] == prefix
            )
            raise corrupt_file_error(
                paths[0], str(err), urls=urls, dest=Path(directory) / archive
            ) from err
    splits = [
        [
            Pair(src=tuple(a), tgt=tuple(b), refs=(tuple(b),))
            for a, b in ((tokenize(x), tokenize(y)) for x, y in raw[prefix])
        ]
        for prefix in MULTI30K_SIZES
    ]
    data = TranslationData.from_splits(*splits, min_freq=min_freq)
    if profiles.dry_run():  # vocabularies of the whole file, few pairs
        for name in ("train", "valid", "test"):
            pairs = getattr(data, name)
            setattr(data, name, pairs[: profiles.dry_run_cap(len(pairs))])
    return data
