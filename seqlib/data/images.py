"""Small images that ship with scikit-learn: the 8x8 digits and two sample
photos.

Both need no download, so every chapter can use them in the smoke profile. The
digits are the UCI optical handwritten digits (Alpaydin & Kaynak 1998), 1,797
grayscale 8x8 images with 17 intensity levels; the sample photos are two JPEGs
("china.jpg", "flower.jpg", 427x640 RGB). Everything is returned as float32 in
[0, 1], channels first. Shape letters: N images, C channels, H/W image size.
"""

from __future__ import annotations

import numpy as np
import sklearn.datasets
import torch

from seqlib.data.download import check_n

SAMPLE_PHOTOS = ("china.jpg", "flower.jpg")
DIGITS_MAX = 16  # the digits' pixel values are counts in 0..16


def load_digits(*, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Load scikit-learn's bundled 8x8 handwritten digits.

    Args:
        n: keep the first ``n`` of the 1,797 images (deterministic); ``None``
            keeps all.

    Returns:
        images: float32 (N, 1, 8, 8) in [0, 1] (pixel count / 16).
        labels: int64 (N,) in [0, 10), the digit shown.

    Raises:
        ValueError: if ``n`` is not an int in [0, 1797].
    """
    bunch = sklearn.datasets.load_digits()
    k = check_n(n, len(bunch.target), what="digits")
    x = np.divide(
        bunch.images[:k, None], DIGITS_MAX, dtype=np.float32
    )  # (N, 1, 8, 8)
    y = bunch.target[:k].astype(np.int64)  # (N,)
    return torch.from_numpy(x), torch.from_numpy(y)


def load_sample_photo(name: str = "china.jpg") -> torch.Tensor:
    """Load one of scikit-learn's sample photos.

    Args:
        name: ``"china.jpg"`` or ``"flower.jpg"``.

    Returns:
        float32 (3, H, W) in [0, 1], RGB, channels first; H, W = 427, 640 for
        both.

    Raises:
        ValueError: for any other name, listing the valid ones.
    """
    if name not in SAMPLE_PHOTOS:
        raise ValueError(f"name must be one of {SAMPLE_PHOTOS}, got {name!r}")
    photo = sklearn.datasets.load_sample_image(name)  # (H, W, 3) uint8
    x = np.divide(
        photo.transpose(2, 0, 1), 255, dtype=np.float32, order="C"
    )  # (3, H, W)
    return torch.from_numpy(x)
