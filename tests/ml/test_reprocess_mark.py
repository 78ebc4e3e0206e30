"""A landed change is rebuilt even when the step that landed it failed after, or was `ml ingest`."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from ml.errors import WarehouseLockedError
from ml.ingest.reprocess_mark import clear_mark, mark_changed, marked_day, read_mark
from tests.checksums import query


def correction(shop, older: date, export_day: date) -> tuple[str, pd.DataFrame]:
    """One event of an older day, re-sent in `export_day`'s export with a new id (a late correction)."""
    landed = pd.read_parquet(shop.data / "landing" / "events" / f"event_date={older}")
    row = landed.drop(columns=["parse_errors", "source_file"]).iloc[[0]].copy()
    row["event_id"] = f"late-correction-{older}"
    return row["event_id"].iloc[0], row


def test_marks_keep_the_oldest_day_and_a_newer_landing_keeps_its_mark(empty_env):
    assert read_mark() is None
    mark_changed(["2026-03-05"])
    first = read_mark()
    mark_changed([date(2026, 3, 9)])
    second = read_mark()
    assert first["day"] == second["day"] == date(2026, 3, 5) and first["id"] != second["id"]
    assert not clear_mark(first["id"])  # a build that started before the second landing leaves it
    assert marked_day() == date(2026, 3, 5)
    assert clear_mark(second["id"]) and read_mark() is None
    mark_changed([])
    assert read_mark() is None


def test_a_land_day_that_failed_after_landing_rebuilds_the_late_correction_on_retry(built_shop, shop_copy, monkeypatch):
    """land_day commits the day's export (with a correction to a day 10 days back), then cannot open the
    warehouse to work out its window; the retry finds nothing new to land but still re-processes from there."""
    import ml.warehouse.builds
    from ml.pipeline import as_of_for, land
    from ml.warehouse.builds import build_features

    shop = shop_copy(built_shop)
    day = shop.remaining_days[0]
    older = day - timedelta(days=10)
    export = shop.data / "inbox" / "events" / f"events_{day}.parquet"
    event_id, row = correction(shop, older, day)
    pd.concat([pd.read_parquet(export), row]).to_parquet(export, index=False)

    def locked(cfg=None):
        raise WarehouseLockedError("the warehouse is held by another process")

    with monkeypatch.context() as patch:
        patch.setattr(ml.warehouse.builds, "newest_processed_day", locked)
        with pytest.raises(WarehouseLockedError):
            land(day)
    retry = land(day)
    assert retry["first_changed_day"] is None  # nothing new to land: only the mark remembers
    assert date.fromisoformat(retry["reprocess_from"]) <= older
    build_features(as_of_for(day), reprocess_from=date.fromisoformat(retry["reprocess_from"]))
    assert query(shop.warehouse, "select count(*) from int_events_checked where event_id = ?", [event_id]) == [(1,)]
    assert read_mark() is None  # the build covered it


def test_a_correction_landed_with_ml_ingest_is_rebuilt_by_the_next_day(built_shop, shop_copy, tmp_path):
    from ml.ingest.landing import ingest
    from ml.pipeline import land

    shop = shop_copy(built_shop)
    day = shop.remaining_days[0]
    older = day - timedelta(days=20)
    _, row = correction(shop, older, older)
    path = tmp_path / f"events_{older}.parquet"
    row.to_parquet(path, index=False)
    ingest(events=str(path))
    assert marked_day() == older
    assert date.fromisoformat(land(day)["reprocess_from"]) <= older
