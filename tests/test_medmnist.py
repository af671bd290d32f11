"""OrganMNIST3D loader on small archives written in MedMNIST's published .npz format."""

import hashlib

import numpy as np
import pytest
import torch

from seqlib.data import (
    DatasetUnavailableError,
    load_organmnist3d,
    read_medmnist_npz,
    sha256_file,
)
from seqlib.data import medmnist

SIZES = {"train": 5, "val": 2, "test": 3}


def _fixture(path, **override):
    """A tiny organmnist3d.npz: uint8 (N, 28, 28, 28) volumes and (N, 1) labels per split."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in SIZES.items():
        arrays[f"{split}_images"] = rng.integers(
            0, 256, size=(n, 28, 28, 28), dtype=np.uint8
        )
        arrays[f"{split}_labels"] = rng.integers(0, 11, size=(n, 1)).astype(
            np.uint8
        )
    arrays.update(override)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez_compressed(path, **arrays)
    return arrays


def test_loads_every_split_as_depth_first_clips(tmp_path):
    path = tmp_path / "organmnist3d.npz"
    arrays = _fixture(path)
    for split, n in SIZES.items():
        volumes, labels = load_organmnist3d(split, path=path)
        assert (
            volumes.shape == (n, 28, 1, 28, 28)
            and volumes.dtype == torch.float32
        )
        assert (
            labels.dtype == torch.int64
            and labels.tolist() == arrays[f"{split}_labels"][:, 0].tolist()
        )
        expected = torch.from_numpy(arrays[f"{split}_images"]).float() / 255
        torch.testing.assert_close(
            volumes[:, :, 0], expected
        )  # slice f of the volume is frame f
    volumes, labels = load_organmnist3d("train", n=2, path=path)
    assert len(volumes) == len(labels) == 2
    with pytest.raises(ValueError, match="n must be"):
        load_organmnist3d("val", n=3, path=path)
    with pytest.raises(ValueError, match="split"):
        load_organmnist3d("valid", path=path)
    with pytest.raises(FileNotFoundError):
        load_organmnist3d(path=tmp_path / "absent.npz")


@pytest.mark.parametrize(
    "override, message",
    [
        ({"val_labels": None}, "missing"),
        (
            {"train_images": np.zeros((2, 28, 28, 28), dtype=np.float32)},
            "uint8",
        ),
        ({"train_images": np.zeros((2, 28, 28), dtype=np.uint8)}, "uint8"),
        ({"train_labels": np.zeros((5,), dtype=np.uint8)}, r"\(5, 1\)"),
        ({"train_labels": np.full((5, 1), 11, dtype=np.uint8)}, r"\[0, 11\)"),
    ],
)
def test_malformed_archives_are_refused(tmp_path, override, message):
    path = tmp_path / "bad.npz"
    _fixture(path, **override)
    split = "val" if "val_labels" in override else "train"
    with pytest.raises(ValueError, match=message):
        read_medmnist_npz(path, split)


def test_not_an_archive(tmp_path):
    path = tmp_path / "organmnist3d.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="npz"):
        read_medmnist_npz(path, "train")


def test_cache_download_path_with_sha256_and_manual_message(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("SEQLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SEQLIB_OFFLINE", "1")
    # nothing cached, no network: the message says what to fetch and where to put it
    with pytest.raises(DatasetUnavailableError, match="zenodo.org") as err:
        load_organmnist3d("train", sha256="0" * 64)
    assert str(tmp_path / "cache" / "medmnist") in str(err.value)
    with pytest.raises(DatasetUnavailableError, match="MD5"):
        load_organmnist3d("train", sha256=None)
    # a file with the right SHA-256 in the cache is used without touching the network
    cached = tmp_path / "cache" / "medmnist" / "organmnist3d.npz"
    _fixture(cached)
    volumes, _ = load_organmnist3d("test", sha256=sha256_file(cached))
    assert volumes.shape == (3, 28, 1, 28, 28)
    # without a pinned SHA-256 a hand-placed copy is accepted only with MedMNIST's MD5
    with pytest.raises(DatasetUnavailableError, match="has MD5"):
        load_organmnist3d("test", sha256=None)
    monkeypatch.setattr(
        medmnist, "MD5", hashlib.md5(cached.read_bytes()).hexdigest()
    )
    assert load_organmnist3d("val", sha256=None)[0].shape == (2, 28, 1, 28, 28)
