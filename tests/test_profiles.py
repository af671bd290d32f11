import pytest

from seqlib import profiles


def test_default_is_smoke(monkeypatch):
    monkeypatch.delenv("SEQLIB_PROFILE", raising=False)
    assert profiles.current_profile() == "smoke"


@pytest.mark.parametrize("value, expected", [("full", "full"), (" SMOKE ", "smoke"), ("", "smoke")])
def test_profile_from_environment(monkeypatch, value, expected):
    monkeypatch.setenv("SEQLIB_PROFILE", value)
    assert profiles.current_profile() == expected


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("SEQLIB_PROFILE", "fast")
    with pytest.raises(ValueError, match=r"SEQLIB_PROFILE must be one of \('smoke', 'full'\), got 'fast'"):
        profiles.current_profile()


def test_every_chapter_defines_both_profiles_with_the_same_keys():
    for chapter, by_profile in profiles.SIZES.items():
        assert set(by_profile) == set(profiles.PROFILES), chapter
        assert set(by_profile["smoke"]) == set(by_profile["full"]), chapter


def test_sizes_are_read_only_and_follow_the_profile(monkeypatch):
    monkeypatch.setenv("SEQLIB_PROFILE", "full")
    full = profiles.sizes("ch01")
    assert full["n_train"] == profiles.SIZES["ch01"]["full"]["n_train"]
    with pytest.raises(TypeError):
        full["n_train"] = 1  # type: ignore[index]
    assert profiles.sizes("ch01", "smoke")["n_train"] < full["n_train"]


def test_unknown_chapter_or_profile():
    with pytest.raises(ValueError, match="unknown chapter 'ch99'"):
        profiles.sizes("ch99")
    with pytest.raises(ValueError, match="profile must be one of"):
        profiles.sizes("ch01", "medium")
