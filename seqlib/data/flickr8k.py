"""Flickr8k (Hodosh, Young & Hockenmaier 2013): 8,092 photos with five captions
each.

The full profile of chapter 4 captions real photos. The dataset ships as two
archives: ``Flickr8k_Dataset.zip`` (the JPEGs, in ``Flicker8k_Dataset/``, sic)
and ``Flickr8k_text.zip``, whose captions file ``Flickr8k.token.txt`` holds one
caption per line, ``<image>.jpg#<k><TAB><caption>`` with ``k`` in 0..4, and
whose split files ``Flickr_8k.{train,dev,test}Images.txt`` list one image name
per line (6,000 / 1,000 / 1,000 images). :func:`read_tokens` and
:func:`read_split` parse those formats with line-numbered errors;
:func:`load_flickr8k` joins them into ``(image path, references)`` items and
:func:`load_image` reads one photo as a tensor. The archives are fetched
through :func:`seqlib.data.download.fetch` into ``cache_dir()/flickr8k``,
verified with the digests pinned in :data:`ARCHIVES`, and unpacked all or
nothing (:func:`seqlib.data.download.unpack`); offline, the error says what to
download and where to unpack it. In a dry run (:func:`seqlib.profiles.dry_run`)
nothing is downloaded: without the data on the machine the loader reads a
generated stand-in in the same files and layout
(:func:`seqlib.data.standins.write_flickr8k`), and at most
:data:`seqlib.profiles.DRY_RUN_CAP` images a split either way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

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

TOKEN_FILE = "Flickr8k.token.txt"
SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "dev": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}
IMAGE_DIRS = (
    "Flicker8k_Dataset",
    "Flickr8k_Dataset",
    "Images",
    "images",
)  # the archive's spelling first
SPLIT_SIZES = {"train": 6_000, "dev": 1_000, "test": 1_000}
CACHE_SUBDIR = "flickr8k"
MIRROR = "https://github.com/jbrownlee/Datasets/releases/download/Flickr8k/"
TEXT_ARCHIVE = "Flickr8k_text.zip"
IMAGE_ARCHIVE = "Flickr8k_Dataset.zip"
# archive -> digest (32 hex digits: MD5, 64: SHA-256), in the order they are
# fetched; None = not pinned: such an archive is never downloaded unverified.
# These MD5s of the mirror's files are the ones the R package torchvision
# (mlverse/torchvision, flickr8k_dataset) pins and verifies its downloads with.
ARCHIVES: dict[str, str | None] = {
    TEXT_ARCHIVE: "bf6c1abcb8e4a833b7f922104de18627",
    IMAGE_ARCHIVE: "f18a1e2920de5bd84dae7cf08ec78978",
}
_LINE = re.compile(r"^(?P<image>[^\s#]+\.jpg)#(?P<k>\d+)\t(?P<caption>.*)$")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


@dataclass(frozen=True)
class CaptionedImage:
    """One Flickr8k photo and its reference captions (lower-cased word
    tokens)."""

    image: Path
    captions: tuple[tuple[str, ...], ...]


def tokenize_caption(text: str) -> tuple[str, ...]:
    """Lower-case words of a caption, punctuation dropped: ``"A dog runs ."``
    -> ``("a", "dog", "runs")``."""
    return tuple(_WORD.findall(text.lower()))


def read_tokens(path: Path | str) -> dict[str, list[str]]:
    """Parse ``Flickr8k.token.txt``: image name -> its raw captions, ordered by
    their ``#k``.

    Raises:
        ValueError: naming the file and line for a line not of the form
            ``<name>.jpg#<k><TAB><caption>``, an empty caption, or a repeated
            ``#k``.
    """
    numbered: dict[str, dict[int, str]] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            match = _LINE.match(line)
            if match is None:
                raise ValueError(
                    f"{path}:{number}: expected "
                    f"'<image>.jpg#<k><TAB><caption>', got {line[:80]!r}"
                )
            image, k, text = (
                match["image"],
                int(match["k"]),
                match["caption"].strip(),
            )
            if not text:
                raise ValueError(
                    f"{path}:{number}: empty caption for {image}#{k}"
                )
            if k in numbered.setdefault(image, {}):
                raise ValueError(
                    f"{path}:{number}: caption {image}#{k} appears twice"
                )
            numbered[image][k] = text
    return {
        image: [caps[k] for k in sorted(caps)]
        for image, caps in numbered.items()
    }


def read_split(path: Path | str) -> list[str]:
    """Parse a split file (``Flickr_8k.trainImages.txt``...): the image names,
    one per line, in order.

    Raises:
        ValueError: naming the file and line, for a line that is not one
            ``.jpg`` name.
    """
    names = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            name = line.strip()
            if not name:
                continue
            if not name.endswith(".jpg") or any(c.isspace() for c in name):
                raise ValueError(
                    f"{path}:{number}: expected one image name '<name>.jpg', "
                    f"got {name!r}"
                )
            names.append(name)
    return names


def flickr8k_dir(root: Path | str | None = None) -> Path:
    """The directory holding the unpacked text files (and images): ``root`` or
    the cache, fetched if needed.

    In the cache, each archive of :data:`ARCHIVES` is fetched and unpacked
    unless what it holds is already there (the captions and split files; an
    image folder).

    Raises:
        DatasetUnavailableError: if a part is absent and cannot be fetched;
            the message says what to download and where to unpack it.
        CorruptFileError: if a fetched archive cannot be unpacked (it is
            removed, and nothing of it is left in the cache).
    """
    if root is not None:
        return Path(root)
    root = cache_dir() / CACHE_SUBDIR
    for archive, digest in ARCHIVES.items():
        if not _unpacked(root, archive):
            _fetch_archive(root, archive, digest)
    return root


def _unpacked(root: Path, archive: str) -> bool:
    """Whether ``root`` already holds what ``archive`` unpacks to."""
    if archive == IMAGE_ARCHIVE:
        return any((root / d).is_dir() for d in IMAGE_DIRS)
    return all(
        (root / name).is_file() for name in (TOKEN_FILE, *SPLIT_FILES.values())
    )


def _archive_member(name: str) -> str | None:
    """Keep an archive member unless it is macOS metadata."""
    top = name.split("/", 1)[0]
    return None if top == "__MACOSX" or top.startswith(".") else name


def _fetch_archive(root: Path, archive: str, digest: str | None) -> None:
    url = MIRROR + archive
    manual = (
        f"Download {MIRROR}{TEXT_ARCHIVE} and {MIRROR}{IMAGE_ARCHIVE} (or get "
        "Flickr8k from its authors, "
        "https://hockenmaier.cs.illinois.edu/8k-pictures.html) and unzip "
        f"them into {root}, so that {root / TOKEN_FILE} and "
        f"{root / IMAGE_DIRS[0]}/ exist; or pass root= to the loader."
    )
    if digest is None:
        raise DatasetUnavailableError(
            f"Flickr8k is not in {root} and its archive digest is not pinned "
            "(seqlib.data.flickr8k.ARCHIVES), so it is not "
            f"downloaded.\n{manual}"
        )
    try:
        path = fetch(
            url,
            root / archive,
            digest,
            what=f"Flickr8k archive {archive}",
            algorithm="md5" if len(digest) == 32 else "sha256",
        )
    except DatasetUnavailableError as err:
        raise type(err)(f"{err}\n{manual}") from err
    unpack(
        path,
        root,
        what=f"Flickr8k archive {archive}",
        select=_archive_member,
        expect=(TOKEN_FILE, *SPLIT_FILES.values())
        if archive == TEXT_ARCHIVE
        else (),
        urls=[url],
    )


def load_flickr8k(
    split: str = "train",
    *,
    root: Path | str | None = None,
    n: int | None = None,
) -> list[CaptionedImage]:
    """The images of a split with their tokenised references, in the split
    file's order.

    Args:
        split: ``"train"``, ``"dev"`` or ``"test"``.
        root: a directory holding ``Flickr8k.token.txt``, the split files and
            the image folder; default: the cache (fetched on first use; in a
            dry run, without the data on the machine, a generated stand-in in
            the same layout, announced by a
            :class:`~seqlib.data.standins.StandInWarning`).
        n: keep the first ``n`` images. In a dry run at most
            :data:`seqlib.profiles.DRY_RUN_CAP` are kept.

    Raises:
        ValueError: for an unknown split, or a split image without captions.
        FileNotFoundError: if ``root`` lacks a file.
        CorruptFileError: if a cached archive or file cannot be read (the
            message names it and says what to do).
        DatasetUnavailableError: if the dataset is not cached and cannot be
            downloaded.
    """
    if split not in SPLIT_FILES:
        raise ValueError(
            f"split must be one of {sorted(SPLIT_FILES)}, got {split!r}"
        )
    try:
        base = flickr8k_dir(root)
    except DatasetUnavailableError as err:
        if not profiles.dry_run() or isinstance(err, CorruptFileError):
            raise
        standins.announce("Flickr8k", cache_dir() / CACHE_SUBDIR)
        sizes = {s: profiles.dry_run_cap(SPLIT_SIZES[s]) for s in SPLIT_FILES}
        base = standins.write_flickr8k(
            cache_dir()
            / standins.STANDIN_SUBDIR
            / f"flickr8k-{max(sizes.values())}",
            sizes,
        )
    for name in (TOKEN_FILE, SPLIT_FILES[split]):
        if not (base / name).is_file():
            raise FileNotFoundError(
                f"expected {name} in {base}, it is not there"
            )
    try:
        captions = read_tokens(base / TOKEN_FILE)
        names = read_split(base / SPLIT_FILES[split])[:n]
    except ValueError as err:
        if root is not None:
            raise  # the caller's own files
        raise corrupt_file_error(
            base, str(err), urls=[MIRROR + TEXT_ARCHIVE], dest=base
        ) from err
    images = next(
        (base / d for d in IMAGE_DIRS if (base / d).is_dir()),
        base / IMAGE_DIRS[0],
    )
    items = []
    for name in names[: profiles.dry_run_cap(len(names))]:
        if name not in captions:
            raise ValueError(
                f"{SPLIT_FILES[split]} lists {name}, which has no caption in "
                f"{TOKEN_FILE}"
            )
        items.append(
            CaptionedImage(
                images / name,
                tuple(tokenize_caption(c) for c in captions[name]),
            )
        )
    return items


def load_image(path: Path | str, size: int = 224) -> torch.Tensor:
    """One photo as float32 (3, size, size) in [0, 1] (resized, aspect ratio
    not kept)."""
    from PIL import Image  # Pillow comes with matplotlib

    with Image.open(path) as img:
        arr = (
            np.asarray(
                img.convert("RGB").resize((size, size), Image.BILINEAR),
                dtype=np.float32,
            )
            / 255
        )
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()  # (3, H, W)
