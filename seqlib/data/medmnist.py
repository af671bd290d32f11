"""OrganMNIST3D (MedMNIST v2, Yang et al. 2023) from its published ``.npz``
file.

OrganMNIST3D holds 1,742 abdominal CT volumes of 28×28×28 voxels cut around one
of 11 organs (971 train, 161 validation, 610 test). MedMNIST publishes each
dataset as one NumPy ``.npz`` archive with the arrays ``{split}_images``, uint8
(N, 28, 28, 28), and ``{split}_labels``, (N, 1) integers, for the splits
``train``, ``val`` and ``test``. :func:`read_medmnist_npz` checks that format;
:func:`load_organmnist3d` finds the file (an explicit path, else the seqlib
cache, downloading it through :func:`seqlib.data.download.fetch` with its
SHA-256) and returns a volume as a clip of F = 28 slices, the layout of
:mod:`seqlib.vivit`. Shape letters: N volumes, F = D depth slices, C = 1
channel, H = W = 28.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import torch

from seqlib.data.download import (
    DatasetUnavailableError,
    cache_dir,
    check_n,
    fetch,
)

ORGAN_CLASSES = (
    "liver",
    "kidney-right",
    "kidney-left",
    "femur-right",
    "femur-left",
    "bladder",
    "heart",
    "lung-right",
    "lung-left",
    "spleen",
    "pancreas",
)
SPLITS = ("train", "val", "test")
FILE = "organmnist3d.npz"
CACHE_SUBDIR = "medmnist"
# The MedMNIST v2 release (Yang et al. 2023). Later releases (MedMNIST+, Zenodo
# 10519652) re-packed the files, so their bytes and digests may differ: MD5
# below is that of this record.
URLS = ("https://zenodo.org/record/6496656/files/organmnist3d.npz?download=1",)
# MedMNIST publishes MD5 digests (medmnist/info.py); this one is that of the v2
# file. The SHA-256 that `fetch` verifies must be pinned from a verified copy:
# until then, pass `sha256=` or put the file in the cache by hand, where its
# MD5 is checked.
MD5 = "21f0a239e7f502e6eca33c3fc453c0b6"
SHA256: str | None = None
VOLUME = (28, 28, 28)


def read_medmnist_npz(
    path: Path | str,
    split: str,
    *,
    volume: tuple[int, ...] = VOLUME,
    num_classes: int = len(ORGAN_CLASSES),
) -> tuple[np.ndarray, np.ndarray]:
    """Read one split of a MedMNIST ``.npz`` and check its format.

    Args:
        path: the archive.
        split: ``"train"``, ``"val"`` or ``"test"``.
        volume: the expected shape of one volume.
        num_classes: labels must lie in ``[0, num_classes)``.

    Returns:
        images uint8 ``(N, *volume)`` and labels int64 ``(N,)``.

    Raises:
        ValueError: for an unknown split, a missing array, or wrong shapes,
            dtypes or labels.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    try:
        with np.load(path, allow_pickle=False) as data:
            files = list(data.files)
            arrays = {
                k: data[k]
                for k in (f"{split}_images", f"{split}_labels")
                if k in files
            }
    except (
        zipfile.BadZipFile,
        OSError,
        ValueError,
    ) as err:  # ValueError: bytes that are no archive
        raise ValueError(
            f"{path}: not a readable .npz archive ({err})"
        ) from err
    if len(arrays) < 2:
        missing = sorted({f"{split}_images", f"{split}_labels"} - set(arrays))
        raise ValueError(
            f"{path}: not a MedMNIST archive, missing {missing} "
            f"(has {sorted(files)})"
        )
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    if images.dtype != np.uint8 or images.shape[1:] != volume:
        raise ValueError(
            f"{split}_images: expected uint8 (N, "
            f"{', '.join(map(str, volume))}), got {images.dtype} "
            f"{images.shape}"
        )
    if labels.shape != (len(images), 1) or not np.issubdtype(
        labels.dtype, np.integer
    ):
        raise ValueError(
            f"{split}_labels: expected integers of shape ({len(images)}, 1), "
            f"got {labels.dtype} {labels.shape}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"{split}_labels: expected values in [0, {num_classes}), got "
            f"[{labels.min()}, {labels.max()}]"
        )
    return images, labels[:, 0].astype(np.int64)


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def organmnist3d_path(*, sha256: str | None = SHA256) -> Path:
    """The cached ``organmnist3d.npz``, downloaded first (SHA-256 checked) when
    ``sha256`` is known.

    Without a SHA-256 nothing is downloaded: a copy placed in the cache by hand
    is accepted when its MD5 is MedMNIST's published :data:`MD5`.

    Raises:
        DatasetUnavailableError: the file is missing (or has the wrong MD5) and
            cannot be fetched; the message says where to get it and where to
            put it.
    """
    dest = cache_dir() / CACHE_SUBDIR / FILE
    if sha256 is not None:
        return fetch(URLS, dest, sha256, what="OrganMNIST3D (MedMNIST v2)")
    if dest.is_file() and _md5(dest) == MD5:
        return dest
    found = (
        f"{dest} has MD5 {_md5(dest)}"
        if dest.is_file()
        else f"{dest} does not exist"
    )
    raise DatasetUnavailableError(
        f"Could not obtain OrganMNIST3D ({FILE}): {found}, and no SHA-256 is "
        f"pinned for a download.\nFetch {FILE} by hand from any of:\n"
        + "".join(f"  {u}\n" for u in URLS)
        + (
            f"and put it in the directory {dest.parent} (expected MD5 {MD5}, "
            "as published by MedMNIST),\nor pass path= to load_organmnist3d, "
            "or sha256= to download with a verified digest."
        )
    )


def load_organmnist3d(
    split: str = "train",
    *,
    n: int | None = None,
    path: Path | str | None = None,
    sha256: str | None = SHA256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load an OrganMNIST3D split as clips of slices.

    Args:
        split: ``"train"`` (971 volumes), ``"val"`` (161) or ``"test"`` (610).
        n: keep the first ``n`` volumes; ``None`` keeps all.
        path: an ``.npz`` in MedMNIST's format (only its format is checked, so
            small files in the real format work); without it,
            :func:`organmnist3d_path`.
        sha256: the digest to download and verify the archive with.

    Returns:
        ``(volumes, labels)``, with volumes float32 ``(N, 28, 1, 28, 28)`` in
        [0, 1], depth first (a 28-frame clip), and labels int64 ``(N,)``,
        indices into :data:`ORGAN_CLASSES`.
    """
    source = (
        Path(path) if path is not None else organmnist3d_path(sha256=sha256)
    )
    if path is not None and not source.is_file():
        raise FileNotFoundError(f"no MedMNIST archive at {source}")
    images, labels = read_medmnist_npz(
        source, split
    )  # (N, 28, 28, 28) uint8, (N,)
    k = check_n(n, len(labels), what=f"OrganMNIST3D {split}")
    volumes = np.divide(images[:k], np.float32(255), dtype=np.float32)[
        :, :, None
    ]  # (N, F, 1, H, W)
    return torch.from_numpy(volumes), torch.from_numpy(labels[:k].copy())
