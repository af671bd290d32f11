"""Datasets, generators and loaders of the book, each small enough for the smoke profile.

Loaders return float32 images in [0, 1], channels first, and int64 labels. Files
from the internet go through :func:`seqlib.data.download.fetch` (SHA-256 checked,
cached under ``$SEQLIB_CACHE`` or ``~/.cache/seqlib``).
"""

from seqlib.data.download import (
    ChecksumMismatchError,
    DatasetUnavailableError,
    cache_dir,
    fetch,
    sha256_file,
)
from seqlib.data.fashion_mnist import FASHION_CLASSES, load_fashion_mnist, read_idx
from seqlib.data.images import load_digits, load_sample_photo

__all__ = [
    "ChecksumMismatchError",
    "DatasetUnavailableError",
    "FASHION_CLASSES",
    "cache_dir",
    "fetch",
    "load_digits",
    "load_fashion_mnist",
    "load_sample_photo",
    "read_idx",
    "sha256_file",
]
