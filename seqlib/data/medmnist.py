"""OrganMNIST3D (MedMNIST v2, Yang et al. 2023) from its published ``.npz``
file.

OrganMNIST3D holds 1,742 abdominal CT volumes of 28×28×28 voxels cut around one
of 11 organs (971 train, 161 validation, 610 test; the first release had one
more, blank, training volume). MedMNIST publishes each dataset as one NumPy
``.npz`` archive with the arrays ``{split}_images``, uint8 (N, 28, 28, 28), and
``{split}_labels``, (N, 1) integers, for the splits ``train``, ``val`` and
``test``. :func:`read_medmnist_npz` checks that format;
:func:`load_organmnist3d` finds the file (an explicit path, else the seqlib
cache, downloading it through :func:`seqlib.data.download.fetch`, verified
with the MD5 MedMNIST publishes) and returns a volume as a clip of F = 28
slices, the layout of :mod:`seqlib.vivit`. In a dry run
(:func:`seqlib.profiles.dry_run`) nothing is downloaded: without the file on
the machine, a generated stand-in of the same format
(:func:`seqlib.data.standins.organmnist3d`), and at most
:data:`seqlib.profiles.DRY_RUN_CAP` volumes either way. Shape letters: N
volumes, F = D depth slices, C = 1 channel, H = W = 28.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from seqlib import profiles
from seqlib.data import standins
from seqlib.data.download import (
    CorruptFileError,
    DatasetUnavailableError,
    cache_dir,
    check_n,
    corrupt_file_error,
    fetch,
    file_digest,
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
# MedMNIST publishes an MD5 per file (medmnist/info.py, INFO["organmnist3d"]).
# MD5 is today's file (MedMNIST 2.2.4 and 3.x, Zenodo record 10519652: blank
# volumes removed, 971/161/610); MD5_V2 the first MedMNIST v2 release (Zenodo
# record 6496656, 972 training volumes). Either is accepted; downloads try
# today's first.
URLS = (
    "https://zenodo.org/records/10519652/files/organmnist3d.npz?download=1",
    "https://zenodo.org/record/6496656/files/organmnist3d.npz?download=1",
)
MD5 = "a0c5a1ff56af4f155c46d46fbb45a2fe"
MD5_V2 = "21f0a239e7f502e6eca33c3fc453c0b6"
# A SHA-256 to verify with instead (None: the MD5s above are used).
SHA256: str | None = None
SPLIT_SIZES = {"train": 971, "val": 161, "test": 610}
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
        zlib.error,
        EOFError,
        OSError,
        ValueError,
    ) as err:  # ValueError: bytes that are no archive; EOFError: empty file
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


def organmnist3d_path(*, sha256: str | None = SHA256) -> Path:
    """The cached ``organmnist3d.npz``, downloaded first if needed.

    Downloads are verified with the MD5s MedMNIST publishes (:data:`MD5`,
    :data:`MD5_V2`), or with ``sha256`` when it is given. A copy put in the
    cache by hand is used when its MD5 is one of those; one with another MD5
    is left alone and refused.

    Raises:
        DatasetUnavailableError: the file is missing (or has the wrong MD5) and
            cannot be fetched; the message says where to get it and where to
            put it.
    """
    dest = cache_dir() / CACHE_SUBDIR / FILE
    what = "OrganMNIST3D (MedMNIST)"
    if sha256 is not None:
        return fetch(URLS, dest, sha256, what=what)
    accepted = (MD5, MD5_V2)
    if dest.is_file():
        got = file_digest(dest, "md5")
        if got in accepted:
            return dest
        raise DatasetUnavailableError(
            f"Could not use OrganMNIST3D ({FILE}): {dest} has MD5 {got}, not "
            f"one MedMNIST published ({' or '.join(accepted)}).\nReplace it "
            "with a copy fetched by hand from any of:\n"
            + "".join(f"  {u}\n" for u in URLS)
            + (
                f"(put it in the directory {dest.parent}), or delete it to "
                "download it again, or pass path= to load_organmnist3d, or "
                "sha256= to verify it with a SHA-256 you trust."
            )
        )
    try:
        return fetch(URLS, dest, accepted, what=what, algorithm="md5")
    except DatasetUnavailableError as err:
        raise type(err)(
            f"{err}\nOr pass path= to load_organmnist3d (any file in "
            "MedMNIST's format)."
        ) from err


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
        n: keep the first ``n`` volumes; ``None`` keeps all. In a dry run at
            most :data:`seqlib.profiles.DRY_RUN_CAP` are kept.
        path: an ``.npz`` in MedMNIST's format (only its format is checked, so
            small files in the real format work); without it,
            :func:`organmnist3d_path` (in a dry run, without the file on the
            machine: a generated stand-in of the same format, announced by a
            :class:`~seqlib.data.standins.StandInWarning`).
        sha256: a SHA-256 to download and verify the archive with, instead of
            MedMNIST's MD5s.

    Returns:
        ``(volumes, labels)``, with volumes float32 ``(N, 28, 1, 28, 28)`` in
        [0, 1], depth first (a 28-frame clip), and labels int64 ``(N,)``,
        indices into :data:`ORGAN_CLASSES`.

    Raises:
        ValueError: for an unknown split, a bad ``n``, or a malformed file at
            ``path``.
        FileNotFoundError: if there is no file at ``path``.
        CorruptFileError: if the cached file cannot be read (the message names
            it and says what to do).
        DatasetUnavailableError: if the file is not cached and cannot be
            downloaded (the message says what to fetch by hand and where to put
            it).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if path is not None:
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"no MedMNIST archive at {source}")
        images, labels = read_medmnist_npz(source, split)
    else:
        try:
            source = organmnist3d_path(sha256=sha256)
        except DatasetUnavailableError as err:
            if not profiles.dry_run() or isinstance(err, CorruptFileError):
                raise
            k = profiles.dry_run_cap(
                check_n(n, SPLIT_SIZES[split], what=f"OrganMNIST3D {split}")
            )
            standins.announce(
                "OrganMNIST3D", cache_dir() / CACHE_SUBDIR / FILE
            )
            images, labels = standins.organmnist3d(
                k, seed=standins.STANDIN_SEED + SPLITS.index(split)
            )
            return _tensors(images, labels)
        try:
            images, labels = read_medmnist_npz(source, split)
        except ValueError as err:
            # the file matched a published digest, so it is left in place
            raise corrupt_file_error(
                source, str(err), urls=URLS, dest=source
            ) from err
    # (N, 28, 28, 28) uint8, (N,)
    k = profiles.dry_run_cap(
        check_n(n, len(labels), what=f"OrganMNIST3D {split}")
    )
    return _tensors(images[:k], labels[:k])


def _tensors(
    images: np.ndarray, labels: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, D, H, W) and (N,) -> float32 (N, F=D, 1, H, W) in [0, 1]
    and int64 (N,)."""
    volumes = np.divide(images, np.float32(255), dtype=np.float32)[
        :, :, None
    ]  # (N, F, 1, H, W)
    return torch.from_numpy(volumes), torch.from_numpy(labels.astype(np.int64))
