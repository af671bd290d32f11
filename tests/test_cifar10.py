"""CIFAR-10 loader on small fixture files written in the published python-pickle format."""

import hashlib
import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

from seqlib.data import cifar10
from seqlib.data.cifar10 import CIFAR10_CLASSES, load_cifar10, read_batch
from seqlib.data.download import (
    ChecksumMismatchError,
    CorruptFileError,
    DatasetUnavailableError,
)


def _pickle_like_original(obj) -> bytes:
    """Pickle as the published files are: protocol 2, bytes keys, NumPy 1's module name."""
    raw = pickle.dumps(obj, protocol=2)
    return raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def _write_batch(path, images: np.ndarray, labels: list[int]) -> None:
    data = np.ascontiguousarray(
        images.reshape(len(images), 3072)
    )  # (N, 3072): R plane, G plane, B plane
    obj = {
        b"batch_label": b"fixture batch",
        b"labels": labels,
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
    }
    path.write_bytes(_pickle_like_original(obj))


def _write_dataset(root, per_batch=4, seed=0):
    rng = np.random.default_rng(seed)
    directory = root / "cifar-10-batches-py"
    directory.mkdir(parents=True)
    meta = {
        b"num_cases_per_batch": per_batch,
        b"label_names": [c.encode() for c in CIFAR10_CLASSES],
        b"num_vis": 3072,
    }
    (directory / "batches.meta").write_bytes(_pickle_like_original(meta))
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(
            0, 256, size=(per_batch, 3, 32, 32), dtype=np.uint8
        )
        labels = rng.integers(0, 10, size=per_batch).tolist()
        _write_batch(directory / name, images, labels)
        written[name] = (images, labels)
    return directory, written


def test_fixture_uses_the_original_global_names(tmp_path):
    directory, _ = _write_dataset(tmp_path)
    raw = (directory / "data_batch_1").read_bytes()
    assert (
        b"numpy.core.multiarray\n_reconstruct" in raw
        and b"numpy._core" not in raw
    )


def test_read_batch_restores_channel_planes(tmp_path):
    images = np.zeros((2, 3, 32, 32), dtype=np.uint8)
    images[0, 0, 0, 1] = 200  # red, row 0, column 1 -> data[0, 1]
    images[1, 2, 31, 31] = 7  # blue, last pixel -> data[1, 3071]
    _write_batch(tmp_path / "b", images, [3, 9])
    x, y = read_batch(tmp_path / "b")
    assert x.shape == (2, 3, 32, 32) and x.dtype == np.uint8
    assert (
        x[0, 0, 0, 1] == 200 and x[1, 2, 31, 31] == 7 and int(x.sum()) == 207
    )
    assert y.tolist() == [3, 9]


def test_load_train_and_test_splits(tmp_path):
    directory, written = _write_dataset(tmp_path, per_batch=4)
    x, y = load_cifar10("train", root=tmp_path)
    assert (
        x.shape == (20, 3, 32, 32)
        and str(x.dtype) == "torch.float32"
        and str(y.dtype) == "torch.int64"
    )
    expected = np.concatenate(
        [written[f"data_batch_{i}"][0] for i in range(1, 6)]
    )
    np.testing.assert_allclose(x.numpy(), expected / 255.0, rtol=0, atol=1e-6)
    assert y.tolist() == sum(
        (written[f"data_batch_{i}"][1] for i in range(1, 6)), []
    )
    xt, yt = load_cifar10(
        "test", n=3, root=directory
    )  # the batch directory itself also works
    np.testing.assert_allclose(
        xt.numpy(), written["test_batch"][0][:3] / 255.0, atol=1e-6
    )
    assert yt.tolist() == written["test_batch"][1][:3]


def test_bad_inputs_raise_clear_errors(tmp_path):
    _write_dataset(tmp_path)
    with pytest.raises(ValueError, match="split must be one of"):
        load_cifar10("valid", root=tmp_path)
    with pytest.raises(ValueError, match="n must be an int"):
        load_cifar10("test", n=5, root=tmp_path)
    with pytest.raises(FileNotFoundError, match="batches.meta"):
        load_cifar10("test", root=tmp_path / "nowhere")
    bad = tmp_path / "bad"
    bad.write_bytes(
        _pickle_like_original(
            {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}
        )
    )
    with pytest.raises(ValueError, match=r"uint8 \(N, 3072\)"):
        read_batch(bad)
    _write_batch(bad, np.zeros((2, 3, 32, 32), np.uint8), [0, 10])
    with pytest.raises(ValueError, match=r"labels in \[0, 10\)"):
        read_batch(bad)
    bad.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="could not unpickle"):
        read_batch(bad)


def test_refuses_pickles_that_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil"
    path.write_bytes(
        pickle.dumps({b"data": Evil(), b"labels": []}, protocol=2)
    )
    with pytest.raises(
        ValueError, match=r"refusing to load (__builtin__|builtins)\.print"
    ):
        read_batch(path)


def test_download_from_archive_and_offline_message(tmp_path, monkeypatch):
    """The cache path: a verified archive is extracted once; offline without it, the message helps."""
    monkeypatch.setenv("SEQLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SEQLIB_DRY_RUN", raising=False)
    monkeypatch.setenv("SEQLIB_OFFLINE", "1")
    with pytest.raises(
        DatasetUnavailableError, match="cifar-10-python.tar.gz"
    ) as info:
        load_cifar10("test")
    assert "by hand" in str(info.value) and "root=" in str(info.value)

    source, written = _write_dataset(tmp_path / "src")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(source, arcname="cifar-10-batches-py")
    archive = tmp_path / "cache" / "cifar10" / "cifar-10-python.tar.gz"
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.write_bytes(buffer.getvalue())
    monkeypatch.setattr(
        cifar10,
        "ARCHIVE_SHA256",
        hashlib.sha256(buffer.getvalue()).hexdigest(),
    )
    x, y = load_cifar10("test")
    assert x.shape == (4, 3, 32, 32) and y.tolist() == written["test_batch"][1]
    assert (archive.parent / "cifar-10-batches-py" / "data_batch_5").is_file()


def test_random_crop_flip_moves_and_mirrors():
    from seqlib.data.cifar10 import random_crop_flip

    x = torch.rand(64, 3, 8, 8)
    gen = torch.Generator().manual_seed(0)
    out = random_crop_flip(x, padding=2, generator=gen)
    assert out.shape == x.shape
    same = [
        torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))
        for i in range(64)
    ]
    assert 0 < sum(same) < 64  # some images kept their place, most moved
    again = random_crop_flip(
        x, padding=2, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(out, again)
    assert torch.equal(
        random_crop_flip(x, padding=0, generator=gen).sort(-1).values,
        x.sort(-1).values,
    )


def test_random_crop_flip_is_a_crop_of_the_padded_image():
    from seqlib.data.cifar10 import random_crop_flip

    x = torch.rand(8, 3, 6, 6)
    out = random_crop_flip(
        x, padding=2, generator=torch.Generator().manual_seed(3)
    )
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    for i in range(8):
        crops = [
            padded[i, :, r : r + 6, c : c + 6]
            for r in range(5)
            for c in range(5)
        ]
        assert any(
            torch.equal(out[i], crop) or torch.equal(out[i], crop.flip(-1))
            for crop in crops
        )


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


def _archive_bytes(tmp_path, per_batch=4):
    source, written = _write_dataset(tmp_path / "src", per_batch=per_batch)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(source, arcname="cifar-10-batches-py")
    return buffer.getvalue(), written


def test_pinned_digests_are_the_published_ones_and_verified(
    tmp_path, monkeypatch, cache
):
    assert cifar10.ARCHIVE_MD5 == "c58f30108f718f92721af3b95e74349a"
    assert cifar10.ARCHIVE_SHA256 == (
        "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
    )
    assert cifar10.ARCHIVE_URLS == (
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    )
    # a "download" of a file in the real format but other bytes is refused
    blob, _ = _archive_bytes(tmp_path)
    mirror = tmp_path / "mirror" / "cifar-10-python.tar.gz"
    mirror.parent.mkdir()
    mirror.write_bytes(blob)
    monkeypatch.setattr(cifar10, "ARCHIVE_URLS", (mirror.as_uri(),))
    monkeypatch.delenv("SEQLIB_OFFLINE")
    with pytest.raises(ChecksumMismatchError) as info:
        load_cifar10("test")
    assert (
        f"expected SHA-256 {cifar10.ARCHIVE_SHA256}, got "
        f"{hashlib.sha256(blob).hexdigest()}" in str(info.value)
    )
    assert list((cache / "cifar10").iterdir()) == []  # nothing kept


@pytest.mark.parametrize("keep", [0.3, 0.8])
def test_truncated_archive_is_a_clear_error_and_leaves_nothing(
    tmp_path, monkeypatch, cache, keep
):
    blob, _ = _archive_bytes(tmp_path, per_batch=40)
    blob = blob[: int(len(blob) * keep)]
    archive = cache / "cifar10" / "cifar-10-python.tar.gz"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(blob)
    monkeypatch.setattr(
        cifar10, "ARCHIVE_SHA256", hashlib.sha256(blob).hexdigest()
    )
    with pytest.raises(CorruptFileError) as info:
        load_cifar10("train")
    message = str(info.value)
    assert str(archive) in message and "could not unpack" in message
    assert cifar10.ARCHIVE_URLS[0] in message and "put it at" in message
    assert list((cache / "cifar10").iterdir()) == []  # no partial unpack


def test_unreadable_cached_batch_is_a_corrupt_file_error(
    tmp_path, monkeypatch, cache
):
    directory, _ = _write_dataset(cache / "cifar10", per_batch=2)
    (directory / "data_batch_3").write_bytes(b"\x80\x02}q\x00(X")  # cut short
    with pytest.raises(CorruptFileError) as info:
        load_cifar10("train")
    message = str(info.value)
    assert "data_batch_3" in message and "could not unpickle" in message
    assert f"Delete {directory}" in message
    assert load_cifar10("test")[0].shape == (2, 3, 32, 32)  # others still read
    # the caller's own files give the plain format error, as before
    with pytest.raises(ValueError, match="could not unpickle"):
        load_cifar10("train", root=cache / "cifar10")


@pytest.mark.parametrize(
    "split, n, expected", [("train", None, 256), ("test", 10, 10)]
)
def test_dry_run_without_data_gives_a_stand_in_of_the_same_format(
    monkeypatch, cache, split, n, expected, no_network
):
    from seqlib.data.standins import StandInWarning

    monkeypatch.delenv("SEQLIB_OFFLINE")  # the dry run alone keeps it offline
    monkeypatch.setenv("SEQLIB_DRY_RUN", "1")
    with pytest.warns(StandInWarning, match="dry run: CIFAR-10 not found at"):
        x, y = load_cifar10(split, n=n)
    assert x.shape == (expected, 3, 32, 32) and x.dtype == torch.float32
    assert y.shape == (expected,) and y.dtype == torch.int64
    assert 0 <= float(x.min()) and float(x.max()) <= 1 and float(x.std()) > 0
    assert 0 <= int(y.min()) and int(y.max()) < len(CIFAR10_CLASSES)
    assert torch.equal(x * 255, (x * 255).round())  # uint8 values underneath
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # announced once only
        x2, y2 = load_cifar10(split, n=n)
    assert torch.equal(x, x2) and torch.equal(y, y2)  # deterministic
    with pytest.raises(ValueError, match="n must be an int in \\[0, 50000\\]"):
        load_cifar10("train", n=50_001)
    assert not (cache / "cifar10").exists() or not any(
        (cache / "cifar10").iterdir()
    )


def test_dry_run_uses_data_on_the_machine_capped(
    tmp_path, monkeypatch, cache, no_network
):
    blob, written = _archive_bytes(tmp_path, per_batch=60)  # 300 training
    archive = cache / "cifar10" / "cifar-10-python.tar.gz"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(blob)
    monkeypatch.setattr(
        cifar10, "ARCHIVE_SHA256", hashlib.sha256(blob).hexdigest()
    )
    monkeypatch.delenv("SEQLIB_OFFLINE")
    monkeypatch.setenv("SEQLIB_DRY_RUN", "1")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no stand-in
        x, y = load_cifar10("train")
    expected = np.concatenate(
        [written[f"data_batch_{i}"][0] for i in range(1, 6)]
    )[:256]
    assert x.shape == (256, 3, 32, 32)
    np.testing.assert_allclose(x.numpy(), expected / 255.0, atol=1e-6)
    assert len(load_cifar10("test")[0]) == 60


def test_outside_a_dry_run_an_absent_dataset_still_raises(monkeypatch, cache):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DatasetUnavailableError, match="SEQLIB_OFFLINE"):
            load_cifar10("train", n=5)
