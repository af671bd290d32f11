"""Tests of seqlib.data.flickr8k on fixture files in the published Flickr8k formats.

The fixtures under tests/fixtures/flickr8k mimic ``Flickr8k_text.zip``
(``Flickr8k.token.txt`` and the split files) and ``Flickr8k_Dataset.zip``
(``Flicker8k_Dataset/*.jpg``); no test touches the network.
"""

import zipfile
from pathlib import Path

import pytest
import torch

from seqlib.data import DatasetUnavailableError, flickr8k
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
    monkeypatch.setenv("SEQLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SEQLIB_OFFLINE", "1")
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
