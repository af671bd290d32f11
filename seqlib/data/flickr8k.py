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
through
:func:`seqlib.data.download.fetch` into ``cache_dir()/flickr8k`` when their
SHA-256 is pinned in :data:`ARCHIVES`; otherwise, or offline, the error says
what to download and where to unpack it.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seqlib.data.download import DatasetUnavailableError, cache_dir, fetch

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
CACHE_SUBDIR = "flickr8k"
MIRROR = "https://github.com/jbrownlee/Datasets/releases/download/Flickr8k/"
# archive -> SHA-256. None = not pinned yet: such an archive is never
# downloaded unverified; pin the digest (sha256sum of a copy you trust) to
# enable the download.
ARCHIVES: dict[str, str | None] = {
    "Flickr8k_text.zip": None,
    "Flickr8k_Dataset.zip": None,
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

    Raises:
        DatasetUnavailableError: if the captions file is absent and cannot be
            fetched; the message says what to download and where to unpack it.
    """
    if root is not None:
        return Path(root)
    root = cache_dir() / CACHE_SUBDIR
    if (root / TOKEN_FILE).is_file():
        return root
    for archive, sha in ARCHIVES.items():
        _fetch_archive(root, archive, sha)
    return root


def _fetch_archive(root: Path, archive: str, sha: str | None) -> None:
    manual = (
        f"Download {MIRROR}{archive} (or get Flickr8k from its authors, "
        "https://hockenmaier.cs.illinois.edu/8k-pictures.html) and unzip it "
        f"into {root}, so that {root / TOKEN_FILE} and "
        f"{root / IMAGE_DIRS[0]}/ exist; or pass root= to the loader."
    )
    if sha is None:
        raise DatasetUnavailableError(
            f"Flickr8k is not in {root} and its archive digest is not pinned "
            "(seqlib.data.flickr8k.ARCHIVES), so it is not "
            f"downloaded.\n{manual}"
        )
    try:
        path = fetch(
            MIRROR + archive,
            root / archive,
            sha,
            what=f"Flickr8k archive {archive}",
        )
    except DatasetUnavailableError as err:
        raise type(err)(f"{err}\n{manual}") from err
    with zipfile.ZipFile(path) as zf:
        zf.extractall(root)


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
            the image folder; default: the cache (fetched on first use).
        n: keep the first ``n`` images.

    Raises:
        ValueError: for an unknown split, or a split image without captions.
        FileNotFoundError: if ``root`` lacks a file.
    """
    if split not in SPLIT_FILES:
        raise ValueError(
            f"split must be one of {sorted(SPLIT_FILES)}, got {split!r}"
        )
    base = flickr8k_dir(root)
    for name in (TOKEN_FILE, SPLIT_FILES[split]):
        if not (base / name).is_file():
            raise FileNotFoundError(
                f"expected {name} in {base}, it is not there"
            )
    captions = read_tokens(base / TOKEN_FILE)
    images = next(
        (base / d for d in IMAGE_DIRS if (base / d).is_dir()),
        base / IMAGE_DIRS[0],
    )
    items = []
    for name in read_split(base / SPLIT_FILES[split])[:n]:
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
