"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747) from its IDX
files.

Fashion-MNIST is 70,000 grayscale 28x28 photos of Zalando articles in 10
classes, stored like MNIST as IDX files: a big-endian header (two zero bytes, a
dtype byte, the number of dims, one uint32 per dim) followed by the raw bytes.
:func:`read_idx` parses one file (gzip or raw) with full validation and
:func:`load_fashion_mnist` returns a split as tensors, looking in an explicit
``root``, then the seqlib cache, then the Debian package
``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``), and
downloading into the cache last. Shape letters: N images, H = W = 28 pixels.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import zlib
from math import prod
from pathlib import Path

import numpy as np
import torch

from seqlib.data.download import (
    ChecksumMismatchError,
    DatasetUnavailableError,
    cache_dir,
    check_n,
    fetch,
)

FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
SPLITS = ("train", "test")
FILES = {  # split -> (images, labels), names without ".gz"
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CACHE_SUBDIR = "fashion-mnist"
SYSTEM_DIR = Path(
    "/usr/share/datasets/fashion-mnist"
)  # Debian: dataset-fashion-mnist
MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
# SHA-256 of the original Zalando .gz files (their MD5s are the ones Zalando
# publishes).
GZ_SHA256 = {
    "train-images-idx3-ubyte.gz": (
        "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc"
    ),
    "train-labels-idx1-ubyte.gz": (
        "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf"
    ),
}
# SHA-256 of the decompressed IDX bytes. Debian recompressed the .gz files (so
# their bytes and MD5s differ from Zalando's) but the content is identical;
# checking the content accepts the original .gz, the Debian .gz and a gunzipped
# copy alike.
RAW_SHA256 = {
    "train-images-idx3-ubyte": (
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
    ),
    "train-labels-idx1-ubyte": (
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
    ),
    "t10k-images-idx3-ubyte": (
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
    ),
    "t10k-labels-idx1-ubyte": (
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
    ),
}
IDX_UBYTE = 0x08  # the dtype byte of unsigned-byte IDX data
_IDX_KIND = {1: "labels", 3: "images"}


def read_idx_bytes(path: Path | str) -> bytes:
    """Return the IDX bytes of ``path``, gunzipping if the file starts with the
    gzip magic.

    Raises:
        ValueError: naming the file, if it is gzip but the stream is corrupt or
            truncated.
    """
    raw = Path(path).read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(
            f"{path}: expected a complete gzip stream holding an IDX file, "
            f"found a corrupt or truncated one ({err})"
        ) from err


def parse_idx(
    data: bytes, *, source: str | Path = "<bytes>", ndim: int | None = None
) -> np.ndarray:
    """Parse the bytes of an unsigned-byte IDX file.

    Args:
        data: the whole (decompressed) file.
        source: how error messages name the file.
        ndim: 3 to require images (magic ``0x00000803``), 1 for labels
            (``0x00000801``), ``None`` to accept either.

    Returns:
        uint8 array of the shape in the header, e.g. (N, 28, 28) or (N,); a
        read-only view of ``data`` (no copy).

    Raises:
        ValueError: naming ``source`` and what was expected vs found, for a
            wrong magic number, dtype byte or number of dims, a short header,
            or a payload whose length is not the product of the dims.
    """
    if ndim is not None and ndim not in _IDX_KIND:
        raise ValueError(
            f"ndim must be 1 (labels), 3 (images) or None, got {ndim!r}"
        )
    if len(data) < 4:
        raise ValueError(
            f"{source}: expected a 4-byte IDX magic number, found {len(data)} "
            "bytes"
        )
    magic = int.from_bytes(data[:4], "big")
    want = f"0x{0x800 + ndim:08x}" if ndim else "0x00000801 or 0x00000803"
    if data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"{source}: not an IDX file: expected magic {want}, found "
            f"0x{magic:08x}"
        )
    if data[2] != IDX_UBYTE:
        raise ValueError(
            f"{source}: expected IDX dtype byte 0x{IDX_UBYTE:02x} "
            f"(unsigned byte), found 0x{data[2]:02x} (magic 0x{magic:08x})"
        )
    dims = data[3]
    if dims not in _IDX_KIND or (ndim is not None and dims != ndim):
        raise ValueError(
            f"{source}: expected magic {want} "
            f"({_IDX_KIND.get(ndim, 'labels or images')}), found "
            f"0x{magic:08x} ({dims} dims)"
        )
    header = 4 + 4 * dims
    if len(data) < header:
        raise ValueError(
            f"{source}: expected a {header}-byte header, found only "
            f"{len(data)} bytes"
        )
    shape = struct.unpack(f">{dims}I", data[4:header])
    if len(data) - header != prod(shape):
        raise ValueError(
            f"{source}: header says shape {shape}, i.e. {prod(shape)} payload "
            f"bytes, found {len(data) - header} (truncated or padded file)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_idx(path: Path | str, *, ndim: int | None = None) -> np.ndarray:
    """Read an unsigned-byte IDX file, gzip-compressed or raw.

    Args:
        path: the file (``.gz`` or not: the content decides).
        ndim: 3 for images, 1 for labels, ``None`` for either (see
            :func:`parse_idx`).

    Returns:
        Read-only uint8 array, (N, H, W) for images or (N,) for labels.

    Raises:
        ValueError: naming the file and what was expected vs found.
    """
    return parse_idx(read_idx_bytes(path), source=path, ndim=ndim)


def load_fashion_mnist(
    split: str = "train",
    *,
    n: int | None = None,
    root: Path | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a Fashion-MNIST split as tensors.

    Files (``<name>`` or ``<name>.gz``) are looked up in ``root`` when given
    (only their IDX structure is checked, so small files in the real format
    work), else in ``cache_dir()/fashion-mnist`` and then :data:`SYSTEM_DIR`,
    whose content must match :data:`RAW_SHA256`; if absent they are downloaded
    into the cache (:func:`~seqlib.data.download.fetch`, checked against
    :data:`GZ_SHA256`).

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000).
        n: keep the first ``n`` examples (deterministic); ``None`` keeps all.
        root: a directory holding the four IDX files; no fallback when given.

    Returns:
        images: float32 (N, 1, 28, 28) in [0, 1].
        labels: int64 (N,) in [0, 10), indices into :data:`FASHION_CLASSES`.

    Raises:
        ValueError: for an unknown split, a bad ``n``, or malformed files.
        FileNotFoundError: if ``root`` is given and lacks a file.
        ChecksumMismatchError: if a cached or system file has the wrong
            content.
        DatasetUnavailableError: if the files are nowhere and cannot be
            downloaded.
    """
    if split not in FILES:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    image_name, label_name = FILES[split]
    images = _load_file(image_name, root=root, ndim=3)  # (N, H, W) uint8
    labels = _load_file(label_name, root=root, ndim=1)  # (N,) uint8
    if images.shape[1:] != (28, 28) or len(labels) != len(images):
        raise ValueError(
            f"Fashion-MNIST {split}: expected images (N, 28, 28) and labels "
            f"(N,), found {images.shape} and {labels.shape}"
        )
    if len(labels) and labels.max() >= len(FASHION_CLASSES):
        raise ValueError(
            f"Fashion-MNIST {split}: expected labels in [0, 10), found "
            f"{labels.max()}"
        )
    k = check_n(n, len(labels), what=f"Fashion-MNIST {split}")
    x = np.divide(
        images[:k, None], np.float32(255), dtype=np.float32
    )  # (N, 1, 28, 28)
    y = labels[:k].astype(np.int64)  # (N,)
    return torch.from_numpy(x), torch.from_numpy(y)


def _find(directory: Path, name: str) -> Path | None:
    """Return ``directory/name`` or ``directory/name.gz``, whichever exists
    first, else None."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _load_file(name: str, *, root: Path | str | None, ndim: int) -> np.ndarray:
    """Find, fetch if needed, verify and parse one IDX file; see
    :func:`load_fashion_mnist`."""
    if root is not None:
        path = _find(Path(root), name)
        if path is None:
            raise FileNotFoundError(
                f"expected {name} or {name}.gz in {root}, found neither"
            )
        return read_idx(path, ndim=ndim)
    cache = cache_dir() / CACHE_SUBDIR
    path = _find(cache, name) or _find(SYSTEM_DIR, name)
    if path is None:
        gz = f"{name}.gz"
        try:
            path = fetch(
                [m + gz for m in MIRRORS],
                cache / gz,
                GZ_SHA256[gz],
                what=f"Fashion-MNIST file {gz}",
            )
        except DatasetUnavailableError as err:
            hint = (
                "On Debian/Ubuntu `apt install dataset-fashion-mnist` puts "
                f"the files in {SYSTEM_DIR}."
            )
            raise type(err)(f"{err}\n{hint}") from err
    data = read_idx_bytes(path)
    got = hashlib.sha256(data).hexdigest()
    if got != RAW_SHA256[name]:
        raise ChecksumMismatchError(
            f"{path}: expected the original Fashion-MNIST {name}, whose "
            f"decompressed SHA-256 is {RAW_SHA256[name]}, got {got}; "
            f"remove or replace the file"
        )
    return parse_idx(data, source=path, ndim=ndim)
