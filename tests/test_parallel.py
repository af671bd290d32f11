"""Tests for seqlib.data.parallel on small files in the published formats (no network)."""

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from seqlib.data import parallel
from seqlib.data.download import DatasetUnavailableError

FIXTURES = Path(__file__).parent / "fixtures" / "parallel"


def test_tokenize_splits_punctuation_and_lowercases():
    assert parallel.tokenize("Nous aimons l'été.") == [
        "nous",
        "aimons",
        "l",
        "'",
        "été",
        ".",
    ]
    assert parallel.tokenize("Où est la gare ?", lowercase=False) == [
        "Où",
        "est",
        "la",
        "gare",
        "?",
    ]


def test_read_tab_pairs_drops_attribution():
    pairs = parallel.read_tab_pairs(FIXTURES / "fra.txt")
    assert len(pairs) == 12
    assert pairs[0] == ("Hi.", "Salut.")
    assert all("tatoeba" not in b for _, b in pairs)


def test_read_tab_pairs_reports_bad_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("Hi.\tSalut.\tx\nno tab here\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.txt:2"):
        parallel.read_tab_pairs(bad)


def test_same_source_becomes_several_references():
    data = parallel.load_tatoeba(
        FIXTURES / "fra.txt", n_valid=2, n_test=2, min_freq=1
    )
    everything = data.train + data.valid + data.test
    assert len(everything) == 10  # 12 lines, 2 repeated sources
    hi = next(p for p in everything if p.src == ("hi", "."))
    assert set(hi.refs) == {("salut", "."), ("bonjour", ".")}
    happy = next(p for p in everything if p.src[:2] == ("they", "are"))
    assert len(happy.refs) == 2


def test_tatoeba_split_is_deterministic_and_reversible():
    a = parallel.load_tatoeba(
        FIXTURES / "fra.txt", n_valid=2, n_test=2, seed=3, min_freq=1
    )
    b = parallel.load_tatoeba(
        FIXTURES / "fra.txt", n_valid=2, n_test=2, seed=3, min_freq=1
    )
    assert a.test == b.test
    r = parallel.load_tatoeba(
        FIXTURES / "fra.txt", reverse=True, n_valid=2, n_test=2, min_freq=1
    )
    assert any(
        p.src == ("le", "chien", "dort", ".")
        for p in r.train + r.valid + r.test
    )
    with pytest.raises(ValueError, match="distinct sources"):
        parallel.load_tatoeba(FIXTURES / "fra.txt", n_valid=5, n_test=5)


def test_load_multi30k_from_text_files():
    data = parallel.load_multi30k(FIXTURES / "multi30k", min_freq=1)
    assert (len(data.train), len(data.valid), len(data.test)) == (4, 2, 2)
    assert data.train[1].src == (
        "two",
        "dogs",
        "play",
        "in",
        "the",
        "snow",
        ".",
    )
    assert data.train[1].tgt == (
        "zwei",
        "hunde",
        "spielen",
        "im",
        "schnee",
        ".",
    )
    assert "hunde" in data.tgt_vocab
    reverse = parallel.load_multi30k(
        FIXTURES / "multi30k", src="de", tgt="en", min_freq=1
    )
    assert reverse.train[1].tgt[0] == "two"
    with pytest.raises(ValueError, match="English-German"):
        parallel.load_multi30k(FIXTURES / "multi30k", src="en", tgt="fr")


def test_misaligned_files_are_an_error(tmp_path):
    (tmp_path / "a.en").write_text("one\ntwo\n", encoding="utf-8")
    (tmp_path / "a.de").write_text("eins\n", encoding="utf-8")
    with pytest.raises(ValueError, match="2 lines .* 1"):
        parallel.read_aligned(tmp_path / "a.en", tmp_path / "a.de")


def _tarball(prefix: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for lang in ("en", "de"):
            data = (FIXTURES / "multi30k" / f"{prefix}.{lang}").read_bytes()
            info = tarfile.TarInfo(f"some/dir/{prefix}.{lang}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_multi30k_dir_verifies_and_unpacks_cached_archives(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("SEQLIB_OFFLINE", "1")
    files = {}
    for split, (urls, _, archive, prefix) in parallel.MULTI30K_FILES.items():
        blob = _tarball(prefix)
        (tmp_path / archive).write_bytes(blob)
        files[split] = (
            urls,
            hashlib.sha256(blob).hexdigest(),
            archive,
            prefix,
        )
    monkeypatch.setattr(parallel, "MULTI30K_FILES", files)
    root = parallel.multi30k_dir(tmp_path)
    assert (root / "val.de").read_text(encoding="utf-8").startswith("Ein Kind")
    assert not (root / "some").exists()  # archive paths are not trusted
    assert len(parallel.load_multi30k(root, min_freq=1).test) == 2


def test_multi30k_offline_without_files_explains_what_to_fetch(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("SEQLIB_OFFLINE", "1")
    with pytest.raises(DatasetUnavailableError, match="training.tar.gz"):
        parallel.multi30k_dir(tmp_path)


def test_missing_anki_file_gives_manual_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQLIB_CACHE", str(tmp_path))
    with pytest.raises(DatasetUnavailableError, match="manythings.org"):
        parallel.anki_file("deu")
    (tmp_path / "anki").mkdir()
    (tmp_path / "anki" / "deu.txt").write_text(
        "Hi.\tHallo.\tx\n", encoding="utf-8"
    )
    assert parallel.anki_file("deu").name == "deu.txt"
