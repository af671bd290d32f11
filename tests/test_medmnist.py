"""OrganMNIST3D loader on small archives written in MedMNIST's published .npz format."""

import hashlib

import numpy as np
import pytest
import torch

from seqlib.data import (
    ChecksumMismatchError,
    CorruptFileError,
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
    monkeypatch.delenv("SEQLIB_DRY_RUN", raising=False)
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


# --- pinned digests, corrupt files, dry runs -------------------------------------------------


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache; offline unless a test says otherwise; not a dry run; the
    stand-in announcements reset."""
    from seqlib.data import standins

    monkeypatch.setenv("SEQLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SEQLIB_OFFLINE", "1")
    monkeypatch.delenv("SEQLIB_DRY_RUN", raising=False)
    monkeypatch.setattr(standins, "_announced", set())
    return tmp_path / "cache"


def test_pinned_md5s_are_medmnists_and_downloads_are_verified(
    tmp_path, monkeypatch, cache
):
    # medmnist/info.py, INFO["organmnist3d"]["MD5"]: today's file and the first v2 one
    assert medmnist.MD5 == "a0c5a1ff56af4f155c46d46fbb45a2fe"
    assert medmnist.MD5_V2 == "21f0a239e7f502e6eca33c3fc453c0b6"
    assert "records/10519652/" in medmnist.URLS[0]
    assert "record/6496656/" in medmnist.URLS[1]
    mirror = tmp_path / "mirror" / "organmnist3d.npz"
    mirror.parent.mkdir()
    _fixture(mirror)
    md5 = hashlib.md5(mirror.read_bytes()).hexdigest()
    monkeypatch.setattr(medmnist, "URLS", (mirror.as_uri(),))
    monkeypatch.delenv("SEQLIB_OFFLINE")
    with pytest.raises(ChecksumMismatchError) as info:
        load_organmnist3d("test")
    assert (
        f"expected MD5 {medmnist.MD5} or {medmnist.MD5_V2}, got {md5}"
        in str(info.value)
    )
    assert list((cache / "medmnist").iterdir()) == []  # nothing kept
    monkeypatch.setattr(medmnist, "MD5_V2", md5)  # as if this were published
    volumes, labels = load_organmnist3d("test")
    assert volumes.shape == (3, 28, 1, 28, 28) and len(labels) == 3
    assert (cache / "medmnist" / "organmnist3d.npz").is_file()


@pytest.mark.parametrize(
    "damage, message",
    [
        ("missing_key", r"missing \['val_labels'\]"),
        ("truncated", "not a readable .npz archive"),
    ],
)
def test_unreadable_cached_file_is_a_corrupt_file_error(
    monkeypatch, cache, damage, message
):
    cached = cache / "medmnist" / "organmnist3d.npz"
    cached.parent.mkdir(parents=True)
    if damage == "missing_key":
        _fixture(cached, val_labels=None)
    else:
        _fixture(cached)
        cached.write_bytes(cached.read_bytes()[:5000])
    monkeypatch.setattr(
        medmnist, "MD5", hashlib.md5(cached.read_bytes()).hexdigest()
    )
    with pytest.raises(CorruptFileError, match=message) as info:
        load_organmnist3d("val")
    text = str(info.value)
    assert text.startswith(f"{cached} is corrupt:")
    assert f"Delete {cached}" in text and medmnist.URLS[0] in text
    assert f"put it at {cached}" in text
    assert isinstance(info.value, DatasetUnavailableError)


@pytest.mark.parametrize(
    "split, n, expected",
    [("train", None, 256), ("val", None, 161), ("test", 7, 7)],
)
def test_dry_run_without_data_gives_a_stand_in_of_the_same_format(
    monkeypatch, cache, split, n, expected, no_network
):
    from seqlib.data.standins import StandInWarning

    monkeypatch.delenv("SEQLIB_OFFLINE")  # the dry run alone keeps it offline
    monkeypatch.setenv("SEQLIB_DRY_RUN", "1")
    with pytest.warns(StandInWarning, match="dry run: OrganMNIST3D not found"):
        volumes, labels = load_organmnist3d(split, n=n)
    assert volumes.shape == (expected, 28, 1, 28, 28)
    assert volumes.dtype == torch.float32 and labels.dtype == torch.int64
    assert 0 <= float(volumes.min()) and float(volumes.max()) <= 1
    assert torch.equal(volumes * 255, (volumes * 255).round())  # uint8 below
    assert 0 <= int(labels.min()) and int(labels.max()) < 11
    again = load_organmnist3d(split, n=n)
    assert torch.equal(volumes, again[0]) and torch.equal(labels, again[1])
    assert not (cache / "medmnist" / "organmnist3d.npz").exists()


def test_dry_run_uses_the_file_on_the_machine(monkeypatch, cache):
    cached = cache / "medmnist" / "organmnist3d.npz"
    cached.parent.mkdir(parents=True)
    arrays = _fixture(cached)
    monkeypatch.setattr(
        medmnist, "MD5", hashlib.md5(cached.read_bytes()).hexdigest()
    )
    monkeypatch.setenv("SEQLIB_DRY_RUN", "1")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no stand-in
        _, labels = load_organmnist3d("train")
    assert labels.tolist() == arrays["train_labels"][:, 0].tolist()


def test_outside_a_dry_run_an_absent_file_still_raises(monkeypatch, cache):
    with pytest.raises(
        DatasetUnavailableError, match="SEQLIB_OFFLINE"
    ) as info:
        load_organmnist3d("train")
    assert not isinstance(info.value, CorruptFileError)
    assert f"expected MD5 {medmnist.MD5}" in str(info.value)
