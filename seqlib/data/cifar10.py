"""CIFAR-10 (Krizhevsky 2009) from its published "python version" pickle
batches.

CIFAR-10 is 60,000 RGB 32x32 images in 10 classes. The python version is one
archive, ``cifar-10-python.tar.gz``, holding ``cifar-10-batches-py/`` with five
training batches ``data_batch_1`` … ``data_batch_5`` and ``test_batch`` (10,000
images each) and ``batches.meta``. Each batch is a pickled dict whose
``data`` is a (10000, 3072) uint8 array (row = 1024 red, 1024 green, 1024 blue
values, each plane row-major) and whose ``labels`` is a list of ints in [0,
10). Pickles can run code, so :func:`read_batch` unpickles with an allow-list
that admits only what a NumPy array needs. The archive is fetched through
:func:`seqlib.data.download.fetch` (its published digest checked) into the
cache and unpacked once, all or nothing (:func:`seqlib.data.download.unpack`).
In a dry run (:func:`seqlib.profiles.dry_run`) nothing is downloaded: without
the data on the machine, :func:`load_cifar10` returns a generated stand-in of
the same format (:func:`seqlib.data.standins.cifar10`), and at most
:data:`seqlib.profiles.DRY_RUN_CAP` images either way. Shape letters: N
images, C = 3 channels, H = W = 32.
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import Any

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
    unpack,
)

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
ARCHIVE = "cifar-10-python.tar.gz"
ARCHIVE_URLS = ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",)
# The MD5 is the one published on the CIFAR page
# (https://www.cs.toronto.edu/~kriz/cifar.html); the SHA-256, which `fetch`
# verifies, is the one Keras pins for the same file (keras.datasets.cifar10).
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_SHA256 = (
    "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
)
BATCH_DIR = "cifar-10-batches-py"
CACHE_SUBDIR = "cifar10"
FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
META = "batches.meta"
IMAGE_SHAPE = (3, 32, 32)
SPLIT_SIZES = {"train": 50_000, "test": 10_000}

_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[
    0
]  # numpy's array-rebuilding function, any version
_ALLOWED = {
    (
        "numpy.core.multiarray",
        "_reconstruct",
    ): _RECONSTRUCT,  # how the published files (NumPy 1) name it
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,  # NumPy 2
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    (
        "_codecs",
        "encode",
    ): codecs.encode,  # bytes pickled by Python 3 with protocol 2
}


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds dicts, lists, strings, numbers and NumPy
    arrays, and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: a CIFAR-10 batch holds only "
            f"NumPy arrays, lists and strings"
        )


def _unpickle(path: Path) -> dict[str, Any]:
    """Load one pickled dict (Python 2 era, so ``encoding='bytes'``) with str
    keys."""
    try:
        obj = _ArrayUnpickler(
            io.BytesIO(Path(path).read_bytes()), encoding="bytes"
        ).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise ValueError(
            f"{path}: expected a CIFAR-10 python-pickle batch, could not "
            f"unpickle it ({err})"
        ) from err
    if not isinstance(obj, dict):
        raise ValueError(
            f"{path}: expected a pickled dict, found {type(obj).__name__}"
        )
    return {
        k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()
    }


def read_batch(path: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 batch file (``data_batch_i`` or ``test_batch``).

    Returns:
        images: uint8 (N, 3, 32, 32), RGB; labels: int64 (N,) in [0, 10).

    Raises:
        ValueError: naming the file and what was expected vs found (missing
            keys, wrong data shape or dtype, label count or range).
    """
    batch = _unpickle(Path(path))
    missing = {"data", "labels"} - set(batch)
    if missing:
        raise ValueError(
            f"{path}: expected keys 'data' and 'labels', missing "
            f"{sorted(missing)}"
        )
    data, labels = batch["data"], np.asarray(batch["labels"], dtype=np.int64)
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != 3072
    ):
        got = (
            f"{data.dtype} {data.shape}"
            if isinstance(data, np.ndarray)
            else type(data).__name__
        )
        raise ValueError(
            f"{path}: expected 'data' as uint8 (N, 3072), found {got}"
        )
    if labels.shape != (len(data),):
        raise ValueError(
            f"{path}: expected {len(data)} labels (one per image), found "
            f"shape {labels.shape}"
        )
    if len(labels) and (
        labels.min() < 0 or labels.max() >= len(CIFAR10_CLASSES)
    ):
        raise ValueError(
            f"{path}: expected labels in [0, 10), found [{labels.min()}, "
            f"{labels.max()}]"
        )
    return data.reshape(-1, *IMAGE_SHAPE), labels  # (N, 3, 32, 32), (N,)


def read_label_names(path: Path | str) -> tuple[str, ...]:
    """The class names stored in ``batches.meta`` (they must equal
    :data:`CIFAR10_CLASSES`)."""
    meta = _unpickle(Path(path))
    names = tuple(
        n.decode() if isinstance(n, bytes) else str(n)
        for n in meta.get("label_names", ())
    )
    if names != CIFAR10_CLASSES:
        raise ValueError(
            f"{path}: expected label_names {CIFAR10_CLASSES}, found {names}"
        )
    return names


def _batch_dir(root: Path | str | None) -> Path:
    """The ``cifar-10-batches-py`` directory: under ``root``, or in the cache
    (downloading once)."""
    if root is not None:
        root = Path(root)
        directory = root if (root / META).is_file() else root / BATCH_DIR
        if not (directory / META).is_file():
            raise FileNotFoundError(
                f"expected {BATCH_DIR}/{META} under {root} (or {META} in it), "
                "found neither"
            )
        return directory
    cache = cache_dir() / CACHE_SUBDIR
    directory = cache / BATCH_DIR
    if all(
        (directory / name).is_file()
        for name in (META, *FILES["train"], *FILES["test"])
    ):
        return directory
    try:
        archive = fetch(
            list(ARCHIVE_URLS),
            cache / ARCHIVE,
            ARCHIVE_SHA256,
            what="CIFAR-10 (python version)",
        )
    except DatasetUnavailableError as err:
        raise type(err)(
            f"{err}\nOr unpack {ARCHIVE} yourself and pass root= the "
            f"directory holding {BATCH_DIR}/."
        ) from err
    unpack(
        archive,
        cache,
        what="CIFAR-10 (python version)",
        select=lambda name: name if name.startswith(BATCH_DIR + "/") else None,
        expect=[
            f"{BATCH_DIR}/{name}"
            for name in (META, *FILES["train"], *FILES["test"])
        ],
        urls=ARCHIVE_URLS,
    )  # all or nothing: no half-unpacked directory in the cache
    return directory


def load_cifar10(
    split: str = "train",
    *,
    n: int | None = None,
    root: Path | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a CIFAR-10 split as tensors.

    Args:
        split: ``"train"`` (data_batch_1..5, 50,000 images) or ``"test"``
            (10,000).
        n: keep the first ``n`` images (deterministic); ``None`` keeps all.
            In a dry run at most :data:`seqlib.profiles.DRY_RUN_CAP` are kept.
        root: a directory holding ``cifar-10-batches-py/`` (or that directory
            itself); only the files' format is checked, so small files in the
            real format work. Without it the archive is fetched into the cache
            (in a dry run, without the data on the machine: a generated
            stand-in of the same format, announced by a
            :class:`~seqlib.data.standins.StandInWarning`).

    Returns:
        images: float32 (N, 3, 32, 32) in [0, 1]; labels: int64 (N,), indices
        into :data:`CIFAR10_CLASSES`.

    Raises:
        ValueError: for an unknown split, a bad ``n`` or malformed files under
            ``root``.
        FileNotFoundError: if ``root`` lacks a file.
        CorruptFileError: if the cached archive or a file unpacked from it
            cannot be read (the message names it and says what to do).
        DatasetUnavailableError: if the archive is not cached and cannot be
            downloaded (the message says what to fetch by hand and where to put
            it).
    """
    if split not in FILES:
        raise ValueError(f"split must be one of {tuple(FILES)}, got {split!r}")
    try:
        directory = _batch_dir(root)
    except DatasetUnavailableError as err:
        if not profiles.dry_run() or isinstance(err, CorruptFileError):
            raise
        k = profiles.dry_run_cap(
            check_n(n, SPLIT_SIZES[split], what=f"CIFAR-10 {split}")
        )
        standins.announce("CIFAR-10", cache_dir() / CACHE_SUBDIR / BATCH_DIR)
        images, labels = standins.cifar10(
            k, seed=standins.STANDIN_SEED + list(FILES).index(split)
        )
        return _tensors(images, labels)
    try:
        read_label_names(directory / META)
        parts = []
        for name in FILES[split]:
            if not (directory / name).is_file():
                raise FileNotFoundError(f"expected {name} in {directory}")
            parts.append(read_batch(directory / name))
    except ValueError as err:
        if root is not None:
            raise  # the caller's own files
        raise corrupt_file_error(
            directory,
            str(err),
            urls=ARCHIVE_URLS,
            dest=directory.parent / ARCHIVE,
        ) from err
    images = np.concatenate([p[0] for p in parts])  # (N, 3, 32, 32) uint8
    labels = np.concatenate([p[1] for p in parts])  # (N,)
    k = profiles.dry_run_cap(check_n(n, len(labels), what=f"CIFAR-10 {split}"))
    return _tensors(images[:k], labels[:k])


def _tensors(
    images: np.ndarray, labels: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, 3, 32, 32) and (N,) -> float32 in [0, 1] and int64
    tensors."""
    x = np.divide(images, np.float32(255), dtype=np.float32)  # (N, 3, 32, 32)
    return torch.from_numpy(x), torch.from_numpy(labels.astype(np.int64))


def random_crop_flip(
    images: torch.Tensor,
    *,
    padding: int = 4,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The standard CIFAR augmentation: pad by ``padding`` (reflect), crop back
    at a random offset, flip half.

    Args:
        images: (B, C, H, W).
        padding: pixels added on each side before cropping.
        generator: for reproducible draws.

    Returns:
        (B, C, H, W), each image shifted by up to ``padding`` pixels and
        mirrored left-right with probability ½.
    """
    B, C, H, W = images.shape
    padded = torch.nn.functional.pad(
        images, (padding,) * 4, mode="reflect"
    )  # (B, C, H + 2p, W + 2p)
    dy, dx = torch.randint(0, 2 * padding + 1, (2, B), generator=generator).to(
        images.device
    )
    flip = (torch.rand(B, generator=generator) < 0.5).to(images.device)
    rows = dy[:, None] + torch.arange(
        H, device=images.device
    )  # (B, H): the crop's rows in the padded image
    cols = dx[:, None] + torch.arange(W, device=images.device)  # (B, W)
    cols = torch.where(
        flip[:, None], cols.flip(-1), cols
    )  # mirrored images read their columns backwards
    b = torch.arange(B, device=images.device)[:, None, None, None]
    c = torch.arange(C, device=images.device)[None, :, None, None]
    return padded[
        b, c, rows[:, None, :, None], cols[:, None, None, :]
    ]  # (B, C, H, W)
