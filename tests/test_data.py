"""Tests of seqlib.data: IDX parsing, the Fashion-MNIST loader, fetch, unpack, bundled images.

No test touches the network: an autouse fixture sets SEQLIB_OFFLINE=1 and points
SEQLIB_CACHE at a temporary directory; downloads are exercised with file:// URLs.
"""

import gzip
import hashlib
import io
import struct
import tarfile
import zipfile

import numpy as np
import pytest
import torch

from seqlib.data import (
    FASHION_CLASSES,
    ChecksumMismatchError,
    DatasetUnavailableError,
    cache_dir,
    fetch,
    load_digits,
    load_fashion_mnist,
    load_sample_photo,
    read_idx,
    sha256_file,
)
from seqlib.data import download, fashion_mnist
from seqlib.data.download import CorruptFileError, file_digest, unpack

SIZES = {"train": 5, "test": 3}


@pytest.fixture(autouse=True)
def offline_cache(tmp_path, monkeypatch):
    """Every test here runs offline with its own empty cache; returns the cache root."""
    root = tmp_path / "cache"
    monkeypatch.setenv("SEQLIB_CACHE", str(root))
    monkeypatch.setenv("SEQLIB_OFFLINE", "1")
    monkeypatch.delenv("SEQLIB_DRY_RUN", raising=False)
    return root


def idx_bytes(arr: np.ndarray, *, dtype_byte: int = 0x08) -> bytes:
    """Encode a uint8 array as an IDX file."""
    header = bytes([0, 0, dtype_byte, arr.ndim]) + struct.pack(
        f">{arr.ndim}I", *arr.shape
    )
    return header + arr.astype(np.uint8).tobytes()


def write_idx(path, arr, *, gz=False, **kw):
    data = idx_bytes(arr, **kw)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def tiny_split(n, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(
        0, 256, size=(n, 28, 28), dtype=np.uint8
    )  # (N, 28, 28)
    images[0, 0, 0], images[0, 0, 1] = (
        0,
        255,
    )  # make the range endpoints appear
    return images, (np.arange(n) % 10).astype(np.uint8)  # (N,)


def write_tiny_fashion(directory, *, seed=0, gz=True):
    """Write the four Fashion-MNIST files (tiny) into ``directory``; return the arrays."""
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for i, (split, (image_name, label_name)) in enumerate(
        fashion_mnist.FILES.items()
    ):
        images, labels = tiny_split(SIZES[split], seed + i)
        suffix = ".gz" if gz else ""
        write_idx(directory / f"{image_name}{suffix}", images, gz=gz)
        write_idx(directory / f"{label_name}{suffix}", labels, gz=gz)
        arrays[split] = (images, labels)
    return arrays


def raw_hashes(directory):
    return {
        name: hashlib.sha256(
            fashion_mnist.read_idx_bytes(directory / f"{name}.gz")
        ).hexdigest()
        for pair in fashion_mnist.FILES.values()
        for name in pair
    }


# --- IDX parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path, gz):
    images, labels = tiny_split(4, seed=1)
    got_images = read_idx(write_idx(tmp_path / "img", images, gz=gz), ndim=3)
    got_labels = read_idx(write_idx(tmp_path / "lab", labels, gz=gz))
    assert got_images.dtype == np.uint8 and got_images.shape == (4, 28, 28)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


@pytest.mark.parametrize("cut", [1, 100])
def test_read_idx_rejects_truncated_payload(tmp_path, cut):
    path = tmp_path / "short-images"
    path.write_bytes(idx_bytes(tiny_split(2, 0)[0])[:-cut])
    with pytest.raises(
        ValueError, match=r"short-images.*\(2, 28, 28\).*truncated"
    ):
        read_idx(path)


def test_read_idx_rejects_padded_payload_and_short_header(tmp_path):
    padded = tmp_path / "padded"
    padded.write_bytes(idx_bytes(np.zeros(3, np.uint8)) + b"\0")
    with pytest.raises(ValueError, match="padded.*3 payload bytes, found 4"):
        read_idx(padded)
    short = tmp_path / "short-header"
    short.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(ValueError, match="short-header.*16-byte header"):
        read_idx(short)


def test_read_idx_rejects_corrupt_gzip(tmp_path):
    path = tmp_path / "broken.gz"
    blob = gzip.compress(idx_bytes(tiny_split(3, 0)[0]))
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="broken.gz.*gzip"):
        read_idx(path)


def test_read_idx_rejects_wrong_magic(tmp_path):
    labels = write_idx(tmp_path / "labels-file", np.zeros(5, np.uint8))
    with pytest.raises(
        ValueError,
        match="labels-file.*expected magic 0x00000803.*found 0x00000801",
    ):
        read_idx(labels, ndim=3)
    not_idx = tmp_path / "notes.txt"
    not_idx.write_bytes(b"hello world")
    with pytest.raises(ValueError, match="notes.txt: not an IDX file"):
        read_idx(not_idx)


def test_read_idx_rejects_wrong_dtype_byte(tmp_path):
    path = write_idx(
        tmp_path / "floats", np.zeros((2, 2, 2), np.uint8), dtype_byte=0x0D
    )
    with pytest.raises(
        ValueError, match="floats.*dtype byte 0x08.*found 0x0d"
    ):
        read_idx(path)


# --- Fashion-MNIST loader ------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_load_fashion_mnist_from_root(tmp_path, gz):
    arrays = write_tiny_fashion(tmp_path / "fm", gz=gz)
    for split, (images, labels) in arrays.items():
        x, y = load_fashion_mnist(split, root=tmp_path / "fm")
        assert (
            x.shape == (SIZES[split], 1, 28, 28) and x.dtype == torch.float32
        )
        assert y.shape == (SIZES[split],) and y.dtype == torch.int64
        assert x.min() == 0.0 and x.max() == 1.0
        torch.testing.assert_close(
            x, torch.from_numpy(images[:, None] / np.float32(255))
        )
        assert y.tolist() == labels.tolist()
    x2, y2 = load_fashion_mnist("train", n=2, root=tmp_path / "fm")
    assert x2.shape == (2, 1, 28, 28)
    torch.testing.assert_close(
        x2, load_fashion_mnist("train", root=tmp_path / "fm")[0][:2]
    )
    assert y2.tolist() == arrays["train"][1][:2].tolist()


def test_load_fashion_mnist_bad_arguments(tmp_path):
    write_tiny_fashion(tmp_path / "fm")
    with pytest.raises(ValueError, match=r"'train', 'test'.*'validation'"):
        load_fashion_mnist("validation", root=tmp_path / "fm")
    with pytest.raises(ValueError, match=r"n must be an int in \[0, 5\]"):
        load_fashion_mnist("train", n=6, root=tmp_path / "fm")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_fashion_mnist("train", root=tmp_path / "nowhere")


def test_load_fashion_mnist_rejects_mismatched_counts(tmp_path):
    write_tiny_fashion(tmp_path / "fm")
    write_idx(
        tmp_path / "fm" / "train-labels-idx1-ubyte.gz",
        np.zeros(4, np.uint8),
        gz=True,
    )
    with pytest.raises(ValueError, match=r"\(5, 28, 28\) and \(4,\)"):
        load_fashion_mnist("train", root=tmp_path / "fm")


def test_load_fashion_mnist_offline_without_files_says_what_to_fetch(
    tmp_path, monkeypatch, offline_cache
):
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "no-debian")
    with pytest.raises(DatasetUnavailableError) as info:
        load_fashion_mnist("test")
    message = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in message
    assert str(offline_cache / "fashion-mnist") in message
    assert (
        fashion_mnist.MIRRORS[0] in message
        and "dataset-fashion-mnist" in message
    )
    assert list((offline_cache / "fashion-mnist").iterdir()) == []


def test_load_fashion_mnist_downloads_into_cache(
    tmp_path, monkeypatch, offline_cache
):
    arrays = write_tiny_fashion(tmp_path / "mirror")
    gz_sha = {p.name: sha256_file(p) for p in (tmp_path / "mirror").iterdir()}
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "no-debian")
    monkeypatch.setattr(
        fashion_mnist,
        "MIRRORS",
        (
            (tmp_path / "gone").as_uri() + "/",
            (tmp_path / "mirror").as_uri() + "/",
        ),
    )
    monkeypatch.setattr(fashion_mnist, "GZ_SHA256", gz_sha)
    monkeypatch.setattr(
        fashion_mnist, "RAW_SHA256", raw_hashes(tmp_path / "mirror")
    )
    monkeypatch.delenv("SEQLIB_OFFLINE")
    x, y = load_fashion_mnist("test")
    assert (
        x.shape == (3, 1, 28, 28) and y.tolist() == arrays["test"][1].tolist()
    )
    cached = sorted(
        p.name for p in (offline_cache / "fashion-mnist").iterdir()
    )
    assert cached == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_cache_wins_over_system_dir_and_is_verified(
    tmp_path, monkeypatch, offline_cache
):
    cached = write_tiny_fashion(offline_cache / "fashion-mnist", seed=0)
    write_tiny_fashion(tmp_path / "debian", seed=10)
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "debian")
    monkeypatch.setattr(
        fashion_mnist,
        "RAW_SHA256",
        raw_hashes(offline_cache / "fashion-mnist"),
    )
    x, _ = load_fashion_mnist("train")
    torch.testing.assert_close(
        x[:, 0], torch.from_numpy(cached["train"][0] / np.float32(255))
    )
    # The Debian copy has other content, so it fails the checksum once the cache is gone.
    for p in (offline_cache / "fashion-mnist").iterdir():
        p.unlink()
    with pytest.raises(
        ChecksumMismatchError,
        match="debian/train-images-idx3-ubyte.gz.*expected",
    ):
        load_fashion_mnist("train")


_DEBIAN_FILES = [
    fashion_mnist.SYSTEM_DIR / f"{name}.gz"
    for pair in fashion_mnist.FILES.values()
    for name in pair
]


@pytest.mark.skipif(
    not all(p.is_file() for p in _DEBIAN_FILES),
    reason="Debian package dataset-fashion-mnist not installed",
)
def test_real_fashion_mnist_from_debian_package():
    for split, count in (("train", 60000), ("test", 10000)):
        x, y = load_fashion_mnist(
            split
        )  # the cache is empty, so this reads SYSTEM_DIR
        assert x.shape == (count, 1, 28, 28) and x.dtype == torch.float32
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert torch.bincount(y).tolist() == [count // 10] * len(
            FASHION_CLASSES
        )


# --- fetch ----------------------------------------------------------------------------------


def test_cache_dir_follows_env(offline_cache):
    assert cache_dir() == offline_cache and offline_cache.is_dir()


def test_fetch_offline_raises_and_leaves_nothing(offline_cache):
    dest = offline_cache / "set" / "archive.tar.gz"
    with pytest.raises(DatasetUnavailableError) as info:
        fetch(
            ["https://example.invalid/archive.tar.gz"],
            dest,
            "0" * 64,
            what="test archive",
        )
    message = str(info.value)
    assert "archive.tar.gz" in message and str(dest.parent) in message
    assert (
        "https://example.invalid/archive.tar.gz" in message
        and "SEQLIB_OFFLINE" in message
    )
    assert list(dest.parent.iterdir()) == []


def test_fetch_wrong_checksum_leaves_nothing(
    tmp_path, monkeypatch, offline_cache
):
    monkeypatch.delenv("SEQLIB_OFFLINE")
    source = tmp_path / "payload.bin"
    source.write_bytes(b"some bytes")
    dest = offline_cache / "set" / "payload.bin"
    with pytest.raises(ChecksumMismatchError) as info:
        fetch(source.as_uri(), dest, "ab" * 32, what="payload")
    assert f"expected SHA-256 {'ab' * 32}, got {sha256_file(source)}" in str(
        info.value
    )
    assert list(dest.parent.iterdir()) == []


def test_fetch_right_checksum_lands_atomically(
    tmp_path, monkeypatch, offline_cache
):
    monkeypatch.delenv("SEQLIB_OFFLINE")
    source = tmp_path / "payload.bin"
    source.write_bytes(b"x" * 3_000_000)  # several chunks
    dest = offline_cache / "set" / "payload.bin"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"stale")  # a wrong file is replaced, not trusted
    mirrors = [(tmp_path / "missing.bin").as_uri(), source.as_uri()]
    assert fetch(mirrors, dest, sha256_file(source), what="payload") == dest
    assert dest.read_bytes() == source.read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == [
        "payload.bin"
    ]  # no .part left
    monkeypatch.setenv(
        "SEQLIB_OFFLINE", "1"
    )  # a verified file needs no network
    assert (
        fetch(
            "https://example.invalid/x",
            dest,
            sha256_file(source).upper(),
            what="payload",
        )
        == dest
    )


def test_fetch_all_mirrors_unreachable(tmp_path, monkeypatch, offline_cache):
    monkeypatch.delenv("SEQLIB_OFFLINE")
    urls = [(tmp_path / "a.bin").as_uri(), (tmp_path / "b.bin").as_uri()]
    with pytest.raises(DatasetUnavailableError) as info:
        fetch(urls, offline_cache / "a.bin", "0" * 64, what="payload")
    assert not isinstance(info.value, ChecksumMismatchError)
    assert all(url in str(info.value) for url in urls)
    assert list(offline_cache.iterdir()) == []


def test_fetch_verifies_md5_and_accepts_any_listed_digest(
    tmp_path, monkeypatch, offline_cache
):
    monkeypatch.delenv("SEQLIB_OFFLINE")
    source = tmp_path / "payload.bin"
    source.write_bytes(b"published bytes")
    md5 = hashlib.md5(b"published bytes").hexdigest()
    assert file_digest(source, "md5") == md5
    dest = offline_cache / "set" / "payload.bin"
    with pytest.raises(ChecksumMismatchError) as info:
        fetch(source.as_uri(), dest, "0" * 32, what="payload", algorithm="md5")
    assert f"expected MD5 {'0' * 32}, got {md5}" in str(info.value)
    assert list(dest.parent.iterdir()) == []  # no partial or wrong file
    # one of several accepted digests (mirrors that pack differently) is enough
    got = fetch(
        source.as_uri(),
        dest,
        ["1" * 32, md5.upper()],
        what="payload",
        algorithm="md5",
    )
    assert got == dest and dest.read_bytes() == b"published bytes"


@pytest.mark.parametrize(
    "digest, algorithm, message",
    [
        ("ab" * 32, "sha1", "algorithm must be one of"),
        ("ab" * 16, "sha256", "SHA-256 digest of 64 hex digits"),
        ("zz" * 16, "md5", "MD5 digest of 32 hex digits"),
        ([], "sha256", "at least one"),
    ],
)
def test_fetch_refuses_malformed_pins_before_any_download(
    offline_cache, digest, algorithm, message
):
    with pytest.raises(ValueError, match=message):
        fetch(
            "https://example.invalid/x",
            offline_cache / "x",
            digest,
            what="x",
            algorithm=algorithm,
        )


def test_dry_run_never_downloads(tmp_path, monkeypatch, offline_cache):
    monkeypatch.delenv("SEQLIB_OFFLINE")
    monkeypatch.setenv("SEQLIB_DRY_RUN", "1")
    source = tmp_path / "payload.bin"
    source.write_bytes(b"bytes")
    dest = offline_cache / "set" / "payload.bin"
    assert download.is_offline()
    with pytest.raises(DatasetUnavailableError, match="dry run") as info:
        fetch(source.as_uri(), dest, sha256_file(source), what="payload")
    assert not isinstance(info.value, ChecksumMismatchError)
    assert list(dest.parent.iterdir()) == []
    monkeypatch.setenv("SEQLIB_DRY_RUN", "0")
    assert not download.is_offline()
    assert fetch(source.as_uri(), dest, sha256_file(source), what="x") == dest


# --- unpack ---------------------------------------------------------------------------------


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir())


def test_unpack_moves_whole_files_into_place(tmp_path):
    files = {
        "set/a.txt": b"a" * 5000,
        "set/sub/b.txt": b"b",
        "readme": b"r",
        "../escape.txt": b"x",
        "/abs.txt": b"x",
    }
    archive = tmp_path / "set.tar.gz"
    archive.write_bytes(_tar_gz(files))
    target = tmp_path / "cache"
    (target / "set").mkdir(parents=True)
    (target / "set" / "stale.txt").write_text("from an older attempt")
    placed = unpack(
        archive,
        target,
        what="test set",
        select=lambda name: name if name.startswith("set/") else None,
        expect=["set/a.txt"],
    )
    assert placed == [target / "set"]
    assert (target / "set" / "a.txt").read_bytes() == b"a" * 5000
    assert (target / "set" / "sub" / "b.txt").read_bytes() == b"b"
    assert not (target / "set" / "stale.txt").exists()  # replaced whole
    assert _leftovers(target) == ["set"]  # no staging directory, no escape
    assert not (tmp_path / "escape.txt").exists()
    assert archive.is_file()  # a good archive stays


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_unpack_truncated_tar_gz_leaves_nothing(tmp_path, cut):
    rng = np.random.default_rng(0)
    blob = _tar_gz(
        {
            f"set/part{i}": rng.integers(0, 256, 200_000, np.uint8).tobytes()
            for i in range(4)
        }
    )
    archive = tmp_path / "cache" / "set.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(blob[: int(len(blob) * cut)])
    with pytest.raises(CorruptFileError) as info:
        unpack(
            archive,
            archive.parent,
            what="test set",
            urls=["https://example.org/set.tar.gz"],
        )
    message = str(info.value)
    assert f"{archive} is corrupt: could not unpack test set" in message
    assert "removed" in message
    assert "https://example.org/set.tar.gz" in message
    assert f"put it at {archive}" in message
    assert _leftovers(archive.parent) == []  # archive and staging gone
    assert isinstance(info.value, DatasetUnavailableError)
    assert isinstance(info.value, ValueError)


def test_unpack_zip_with_a_damaged_member_or_a_missing_file(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("first.txt", b"intact")
        zf.writestr("second.txt", b"0123456789" * 100)
    blob = bytearray(buffer.getvalue())
    at = bytes(blob).index(b"0123456789")
    blob[at : at + 4] = b"XXXX"  # the stored bytes no longer match the CRC
    archive = tmp_path / "set.zip"
    archive.write_bytes(bytes(blob))
    with pytest.raises(CorruptFileError, match="BadZipFile"):
        unpack(archive, tmp_path / "out", what="test zip")
    assert (
        _leftovers(tmp_path) == ["out"] and _leftovers(tmp_path / "out") == []
    )

    archive.write_bytes(buffer.getvalue())  # intact, but not what we need
    with pytest.raises(CorruptFileError, match="lacks needed.txt"):
        unpack(
            archive, tmp_path / "out", what="test zip", expect=["needed.txt"]
        )
    assert _leftovers(tmp_path / "out") == [] and not archive.exists()


def test_corrupt_file_error_says_what_to_do(tmp_path):
    err = download.corrupt_file_error(
        tmp_path / "data.npz",
        "missing ['val_labels']",
        urls=["https://example.org/data.npz"],
        dest=tmp_path / "cache" / "data.npz",
    )
    text = str(err)
    assert text.startswith(f"{tmp_path / 'data.npz'} is corrupt: missing")
    assert f"Delete {tmp_path / 'data.npz'}" in text
    assert "https://example.org/data.npz" in text
    assert f"put it at {tmp_path / 'cache' / 'data.npz'}" in text


# --- bundled images -------------------------------------------------------------------------


def test_load_digits():
    x, y = load_digits()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == torch.float32
    assert y.shape == (1797,) and y.dtype == torch.int64
    assert (
        x.min() == 0.0 and x.max() == 1.0 and set(y.tolist()) == set(range(10))
    )
    x5, y5 = load_digits(n=5)
    torch.testing.assert_close(x5, x[:5])
    assert y5.tolist() == y[:5].tolist()
    with pytest.raises(ValueError, match="digits: n must be"):
        load_digits(n=-1)


@pytest.mark.parametrize("name", ["china.jpg", "flower.jpg"])
def test_load_sample_photo(name):
    photo = load_sample_photo(name)
    assert photo.shape == (3, 427, 640) and photo.dtype == torch.float32
    assert 0.0 <= photo.min() and photo.max() <= 1.0 and photo.is_contiguous()


def test_load_sample_photo_bad_name():
    with pytest.raises(
        ValueError, match=r"'china.jpg', 'flower.jpg'.*'cat.jpg'"
    ):
        load_sample_photo("cat.jpg")
