import pytest

from seqlib import profiles


def test_default_is_smoke(monkeypatch):
    monkeypatch.delenv("SEQLIB_PROFILE", raising=False)
    assert profiles.current_profile() == "smoke"


@pytest.mark.parametrize(
    "value, expected", [("full", "full"), (" SMOKE ", "smoke"), ("", "smoke")]
)
def test_profile_from_environment(monkeypatch, value, expected):
    monkeypatch.setenv("SEQLIB_PROFILE", value)
    assert profiles.current_profile() == expected


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("SEQLIB_PROFILE", "fast")
    with pytest.raises(
        ValueError,
        match=r"SEQLIB_PROFILE must be one of \('smoke', 'full'\), got 'fast'",
    ):
        profiles.current_profile()


def test_every_chapter_defines_both_profiles_with_the_same_keys():
    for chapter, by_profile in profiles.SIZES.items():
        assert set(by_profile) == set(profiles.PROFILES), chapter
        assert set(by_profile["smoke"]) == set(by_profile["full"]), chapter


def test_sizes_are_frozen_typed_records_that_follow_the_profile(monkeypatch):
    import dataclasses

    monkeypatch.setenv("SEQLIB_PROFILE", "full")
    full = profiles.sizes("ch01")
    assert full.n_train == profiles.SIZES["ch01"]["full"]["n_train"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        full.n_train = 1  # type: ignore[misc]
    assert profiles.sizes("ch01", "smoke").n_train < full.n_train
    assert type(full).__name__ == "Ch01Sizes"
    assert {f.name: f.type for f in dataclasses.fields(full)}["lr"] is float


def test_misspelt_names_and_wrong_types_are_errors():
    cfg = profiles.sizes("ch06", "smoke")
    with pytest.raises(AttributeError):
        cfg.epoch  # noqa: B018
    with pytest.raises(TypeError, match=r"Ch06Sizes has no field 'epoch'"):
        cfg.replace(epoch=3)
    with pytest.raises(
        TypeError,
        match=r"Ch06Sizes.epochs: expected a value of type int, got 'three'",
    ):
        cfg.replace(epochs="three")
    with pytest.raises(TypeError, match=r"use \.epochs"):
        cfg["epochs"]
    assert cfg.replace(epochs=1).epochs == 1 and cfg.epochs != 1
    assert cfg.replace(lr=1).lr == 1  # an int is a valid float


def test_a_table_with_mismatched_profiles_is_rejected():
    with pytest.raises(ValueError, match="only in full: \\['extra'\\]"):
        profiles._record_type(
            "ch99", {"smoke": {"a": 1}, "full": {"a": 2, "extra": 3}}
        )
    with pytest.raises(
        TypeError, match="ch99 full a: expected a value of type int"
    ):
        profiles._record_type("ch99", {"smoke": {"a": 1}, "full": {"a": "x"}})


def test_unknown_chapter_or_profile():
    with pytest.raises(ValueError, match="unknown chapter 'ch99'"):
        profiles.sizes("ch99")
    with pytest.raises(ValueError, match="profile must be one of"):
        profiles.sizes("ch01", "medium")


def test_printed_sizes_wrap_without_splitting_a_value():
    text = str(profiles.sizes("ch10", "full"))
    lines = text.splitlines()
    assert lines[0] == "Ch10Sizes(" and all(len(line) <= 76 for line in lines)
    assert "classes=(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)," in text  # on one line


def test_full_profile_targets_are_consistent():
    assert set(profiles.TARGETS) == {"ch06", "ch07", "ch09", "ch11"}
    for chapter, target in profiles.TARGETS.items():
        whole = profiles.sizes(chapter, "full").expected_minutes
        assert target.minutes <= whole, (chapter, target.minutes, whole)
        assert 0 < target.value < 1
    # the Keras example's 48.9 % in 9.6 hours, in under 1/50 of that time
    tlb = profiles.TARGETS["ch11"]
    assert tlb.value >= 0.489 and tlb.minutes <= 9.6 * 60 / 50
    assert profiles.TARGETS["ch09"].value >= 0.77


def test_report_target_prints_and_records(tmp_path, monkeypatch, capsys):
    import json

    path = tmp_path / "metrics.jsonl"
    monkeypatch.setenv("SEQLIB_METRICS_FILE", str(path))
    assert profiles.report_target("ch09", 0.8) is True
    assert profiles.report_target("ch09", 0.5) is False
    out = capsys.readouterr().out
    assert "80.0% (met)" in out and "50.0% (missed)" in out
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["met"] for r in records] == [True, False]
    assert records[0]["target"] == 0.77
    with pytest.raises(ValueError, match="no full-profile target"):
        profiles.report_target("ch02", 0.5)
