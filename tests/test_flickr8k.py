"""Tests of seqlib.data.flickr8k on fixture files in the published Flickr8k formats.

The fixtures under tests/fixtures/flickr8k mimic ``Flickr8k_text.zip``
(``Flickr8k.token.txt`` and the split files) and ``Flickr8k_Dataset.zip``
(``Flicker8k_Dataset/*.jpg``); no test touches the network.
"""

import hashlib
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

from seqlib.data import (
    ChecksumMismatchError,
    CorruptFileError,
    DatasetUnavailableError,
    flickr8k,
)
from seqlib.data.flickr8k import (
    load_flickr8k,
    load_image,
    read_split,
    read_tokens,
    tokenize_caption,
)

FIXTURES = Path(__file__).parent / "fixtures" / "flickr8k"


@pytest.fixture(autouse=True)
def offline_cache(tmp_path, monkeypatch):
    """An empty cache, offline, not a dry run, stand-in announcements reset."""
    from seqlib.data import standins

    monkeypatch.setenv("SEQLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SEQLIB_OFFLINE", "1")
    monkeypatch.delenv("SEQLIB_DRY_RUN", raising=False)
    monkeypatch.setattr(standins, "_announced", set())
    return tmp_path / "cache"


def test_read_tokens_groups_five_captions_ordered_by_index():
    caps = read_tokens(FIXTURES / "Flickr8k.token.txt")
    assert len(caps) == 3 and all(len(c) == 5 for c in caps.values())
    # the file lists #1 before #0 for the third image: the order follows k, not the file
    assert caps["1000000003_2c3d4e5f6a.jpg"][0].startswith("A cyclist")


def test_tokenize_caption_lowercases_and_drops_punctuation():
    assert tokenize_caption("A brown Dog runs , fast .") == (
        "a",
        "brown",
        "dog",
        "runs",
        "fast",
    )
    assert tokenize_caption("The dog's ball") == ("the", "dog's", "ball")


def test_load_split_joins_captions_and_images():
    train = load_flickr8k("train", root=FIXTURES)
    assert [item.image.name for item in train] == read_split(
        FIXTURES / "Flickr_8k.trainImages.txt"
    )
    assert train[0].captions[4] == ("dog", "on", "grass")
    assert all(item.image.is_file() for item in train)
    assert len(load_flickr8k("test", root=FIXTURES)) == 1
    assert len(load_flickr8k("train", root=FIXTURES, n=1)) == 1


def test_load_image_gives_rgb_tensor_in_unit_range():
    item = load_flickr8k("dev", root=FIXTURES)[0]
    img = load_image(item.image, size=32)
    assert img.shape == (3, 32, 32) and img.dtype == torch.float32
    assert (
        0 <= float(img.min())
        and float(img.max()) <= 1
        and float(img.std()) > 0
    )


@pytest.mark.parametrize(
    "line, message",
    [
        (
            "1000000001_0a1b2c3d4e.jpg 0\tA dog .",
            "expected '<image>.jpg#<k><TAB><caption>'",
        ),
        (
            "1000000001_0a1b2c3d4e.jpg#0 A dog .",
            "expected '<image>.jpg#<k><TAB><caption>'",
        ),
        ("1000000001_0a1b2c3d4e.jpg#0\t  ", "empty caption"),
    ],
)
def test_malformed_token_line_is_a_clear_error(tmp_path, line, message):
    path = tmp_path / "Flickr8k.token.txt"
    path.write_text("1000000001_0a1b2c3d4e.jpg#1\tA dog .\n" + line + "\n")
    with pytest.raises(ValueError, match=f"{path}:2: .*") as err:
        read_tokens(path)
    assert message in str(err.value)


def test_repeated_caption_index_and_bad_split_line_are_errors(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("a.jpg#0\tone\na.jpg#0\ttwo\n")
    with pytest.raises(ValueError, match="appears twice"):
        read_tokens(path)
    split = tmp_path / "s.txt"
    split.write_text("a.jpg\nb.png\n")
    with pytest.raises(ValueError, match=r"s.txt:2: expected one image name"):
        read_split(split)


def test_split_image_without_captions_and_unknown_split(tmp_path):
    for f in FIXTURES.glob("*.txt"):
        (tmp_path / f.name).write_text(f.read_text())
    (tmp_path / "Flickr_8k.testImages.txt").write_text(
        "9999999999_ffffffffff.jpg\n"
    )
    with pytest.raises(ValueError, match="has no caption"):
        load_flickr8k("test", root=tmp_path)
    with pytest.raises(ValueError, match="split must be one of"):
        load_flickr8k("val", root=FIXTURES)
    with pytest.raises(FileNotFoundError, match="Flickr8k.token.txt"):
        load_flickr8k("train", root=tmp_path / "empty")


def test_missing_dataset_says_what_to_download(offline_cache):
    with pytest.raises(DatasetUnavailableError) as err:
        load_flickr8k("train")
    text = str(err.value)
    assert (
        "Flickr8k_text.zip" in text and str(offline_cache / "flickr8k") in text
    )


def test_pinned_archive_goes_through_fetch_and_is_unpacked(
    tmp_path, monkeypatch
):
    # a local "mirror" holding a zip of the fixtures, reached through a file:// URL
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with zipfile.ZipFile(mirror / "Flickr8k_text.zip", "w") as zf:
        for f in FIXTURES.glob("*.txt"):
            zf.write(f, f.name)
    from seqlib.data import sha256_file

    monkeypatch.setattr(flickr8k, "MIRROR", mirror.as_uri() + "/")
    monkeypatch.setattr(
        flickr8k,
        "ARCHIVES",
        {"Flickr8k_text.zip": sha256_file(mirror / "Flickr8k_text.zip")},
    )
    monkeypatch.setenv("SEQLIB_OFFLINE", "0")
    items = load_flickr8k("train")
    assert len(items) == 2 and items[1].captions[1] == (
        "kids",
        "building",
        "a",
        "sandcastle",
    )


# --- pinned digests, both archives, corrupt zips, dry runs ------------------------------------


def _zip(path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _mirror(tmp_path) -> Path:
    """Both archives in the published layout, from the fixtures."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    text = {f.name: f.read_bytes() for f in FIXTURES.glob("*.txt")}
    text["__MACOSX/._Flickr8k.token.txt"] = b"resource fork"
    _zip(mirror / "Flickr8k_text.zip", text)
    images = {
        f"Flicker8k_Dataset/{f.name}": f.read_bytes()
        for f in (FIXTURES / "Flicker8k_Dataset").glob("*.jpg")
    }
    images["__MACOSX/Flicker8k_Dataset/._x.jpg"] = b"resource fork"
    _zip(mirror / "Flickr8k_Dataset.zip", images)
    return mirror


def test_pinned_md5s_and_downloads_are_verified(
    tmp_path, monkeypatch, offline_cache
):
    # the MD5s mlverse/torchvision pins for the same two files of the mirror
    assert flickr8k.ARCHIVES == {
        "Flickr8k_text.zip": "bf6c1abcb8e4a833b7f922104de18627",
        "Flickr8k_Dataset.zip": "f18a1e2920de5bd84dae7cf08ec78978",
    }
    assert flickr8k.MIRROR == (
        "https://github.com/jbrownlee/Datasets/releases/download/Flickr8k/"
    )
    mirror = _mirror(tmp_path)
    monkeypatch.setattr(flickr8k, "MIRROR", mirror.as_uri() + "/")
    monkeypatch.setenv("SEQLIB_OFFLINE", "0")
    with pytest.raises(ChecksumMismatchError) as err:
        load_flickr8k("train")
    md5 = hashlib.md5((mirror / "Flickr8k_text.zip").read_bytes()).hexdigest()
    assert f"expected MD5 bf6c1abcb8e4a833b7f922104de18627, got {md5}" in str(
        err.value
    )
    assert list((offline_cache / "flickr8k").iterdir()) == []


def test_both_archives_are_fetched_and_unpacked(
    tmp_path, monkeypatch, offline_cache
):
    mirror = _mirror(tmp_path)
    monkeypatch.setattr(flickr8k, "MIRROR", mirror.as_uri() + "/")
    monkeypatch.setattr(
        flickr8k,
        "ARCHIVES",
        {
            name: hashlib.md5((mirror / name).read_bytes()).hexdigest()
            for name in ("Flickr8k_text.zip", "Flickr8k_Dataset.zip")
        },
    )
    monkeypatch.setenv("SEQLIB_OFFLINE", "0")
    items = load_flickr8k("train")
    assert [i.image.name for i in items] == read_split(
        FIXTURES / "Flickr_8k.trainImages.txt"
    )
    assert all(item.image.is_file() for item in items)
    root = offline_cache / "flickr8k"
    assert not (root / "__MACOSX").exists()
    assert (
        sorted(p.name for p in root.iterdir() if p.name.startswith(".")) == []
    )
    assert load_image(items[0].image, size=16).shape == (3, 16, 16)
    monkeypatch.setenv("SEQLIB_OFFLINE", "1")  # now all local
    assert len(load_flickr8k("test")) == 1


def test_a_zip_that_fails_leaves_nothing(tmp_path, monkeypatch, offline_cache):
    mirror = _mirror(tmp_path)
    blob = (mirror / "Flickr8k_text.zip").read_bytes()
    cut = blob[: len(blob) // 2]  # the central directory is gone
    root = offline_cache / "flickr8k"
    root.mkdir(parents=True)
    (root / "Flickr8k_text.zip").write_bytes(cut)
    monkeypatch.setattr(
        flickr8k,
        "ARCHIVES",
        {"Flickr8k_text.zip": hashlib.md5(cut).hexdigest()},
    )
    with pytest.raises(CorruptFileError) as err:
        load_flickr8k("train")
    text = str(err.value)
    assert str(root / "Flickr8k_text.zip") in text and "BadZipFile" in text
    assert flickr8k.MIRROR + "Flickr8k_text.zip" in text
    assert list(root.iterdir()) == []  # no archive, no partial unpack


def test_unreadable_cached_captions_are_a_corrupt_file_error(offline_cache):
    root = offline_cache / "flickr8k"
    (root / "Flicker8k_Dataset").mkdir(parents=True)
    for f in FIXTURES.glob("*.txt"):
        (root / f.name).write_bytes(f.read_bytes())
    (root / "Flickr8k.token.txt").write_text("truncated line without tab")
    with pytest.raises(CorruptFileError, match="Flickr8k.token.txt:1"):
        load_flickr8k("train")


def test_dry_run_without_data_reads_a_stand_in_in_the_real_layout(
    monkeypatch, offline_cache, no_network
):
    from seqlib.data.standins import StandInWarning

    monkeypatch.delenv("SEQLIB_OFFLINE")  # the dry run alone keeps it offline
    monkeypatch.setenv("SEQLIB_DRY_RUN", "1")
    with pytest.warns(StandInWarning, match="dry run: Flickr8k not found at"):
        train = load_flickr8k("train")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # announced once only
        dev = load_flickr8k("dev", n=3)
        again = load_flickr8k("train")
    assert len(train) == 256 and len(dev) == 3 and again == train
    assert not {i.image for i in train} & {i.image for i in dev}
    base = train[0].image.parent.parent
    assert train[0].image.parent.name == "Flicker8k_Dataset"
    assert read_tokens(base / "Flickr8k.token.txt")  # the published format
    lengths = []
    for item in train:
        assert len(item.captions) == 5 and all(item.captions)
        lengths += [len(c) for c in item.captions]
    assert 6 <= sum(lengths) / len(lengths) <= 16 and max(lengths) <= 41
    img = load_image(train[0].image)
    assert img.shape == (3, 224, 224) and img.dtype == torch.float32
    assert float(img.std()) > 0
    assert not (offline_cache / "flickr8k" / "Flickr8k.token.txt").exists()


def test_dry_run_uses_data_on_the_machine(monkeypatch):
    monkeypatch.setenv("SEQLIB_DRY_RUN", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no stand-in
        items = load_flickr8k("train", root=FIXTURES)
    assert [i.image.name for i in items] == read_split(
        FIXTURES / "Flickr_8k.trainImages.txt"
    )


def test_outside_a_dry_run_nothing_is_generated(offline_cache):
    with pytest.raises(DatasetUnavailableError, match="SEQLIB_OFFLINE"):
        load_flickr8k("dev")
    assert not (offline_cache / "dry-run-standins").exists()
