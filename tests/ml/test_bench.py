"""`make bench` options a user can get wrong stop before the bench deletes anything."""

from __future__ import annotations

import pytest

from ml.bench import reuse_built_shop, steps_to_skip


def test_reuse_without_a_built_shop_says_what_is_missing_and_keeps_the_folder(tmp_path, monkeypatch):
    (tmp_path / "inbox").mkdir()
    kept = tmp_path / "inbox" / "events.csv"
    kept.write_text("a shop's file\n")
    monkeypatch.setenv("SHOP_BENCH_REUSE", "1")
    with pytest.raises(SystemExit, match="no built and trained shop .*run `make bench`"):
        reuse_built_shop(tmp_path)
    assert kept.read_text() == "a shop's file\n"
    monkeypatch.delenv("SHOP_BENCH_REUSE")
    assert reuse_built_shop(tmp_path) is False


def test_an_unknown_skipped_step_is_named(monkeypatch):
    monkeypatch.setenv("SHOP_BENCH_SKIP", "day_60,day_90")
    with pytest.raises(SystemExit, match="unknown step\\(s\\) day_90"):
        steps_to_skip()
