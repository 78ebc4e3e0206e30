"""Daily feature builds are incremental: a few event days per run, and every way of building gives the same rows.

Split from test_features.py so `make test`'s two workers can run the two files side by side.
"""

from __future__ import annotations

from datetime import date, timedelta

from ml.warehouse.builds import build_features
from tests.checksums import query, table_checksums

INCREMENTAL = [
    "int_events_checked",
    "int_sessions_aggregated",
    "int_user_days_aggregated",
    "events_quarantine",
    "landing_daily_summary",
    "user_features",
    "training_labels",
    "campaign_outcomes",
]


def test_incremental_days_and_a_rerun_equal_one_full_build(built_shop, shop_copy, monkeypatch):
    """Daily runs re-process only a few event days; a rerun of a past day and a full rebuild give the same rows.

    The session shop's history was built 30 event days per dbt run (4 batches, each continuing the one
    before). Its last 3 days then run as the DAG runs them (land, incremental build); the first is rerun;
    then everything is rebuilt from the landed files in one batch.
    """
    from ml.pipeline import as_of_for, land
    from ml.warehouse.history import build_history

    shop = shop_copy(built_shop)
    windows = []
    for day in shop.remaining_days:
        landed = land(day)
        windows.append(landed["reprocess_from"])
        build_features(as_of_for(day), reprocess_from=date.fromisoformat(landed["reprocess_from"]))
    # SHOP_LATE_EVENT_DAYS (3) before the business day: 4 event days per run, not the whole history.
    assert windows == [str(day - timedelta(days=3)) for day in shop.remaining_days]
    summary = query(shop.warehouse, "select min(event_date), max(event_date), count(*) from landing_daily_summary")
    assert summary[0][1] == shop.remaining_days[-1] and summary[0][2] == 120
    incremental = table_checksums(shop.warehouse, INCREMENTAL)
    assert all(count > 0 for table, (count, _) in incremental.items() if table != "events_quarantine")

    rerun_day = shop.remaining_days[0]
    landed = land(rerun_day)
    build_features(as_of_for(rerun_day), reprocess_from=date.fromisoformat(landed["reprocess_from"]))
    assert table_checksums(shop.warehouse, INCREMENTAL) == incremental

    monkeypatch.setenv("SHOP_HISTORY_BATCH_DAYS", "1000")
    build_history(keep_last=0)
    assert table_checksums(shop.warehouse, INCREMENTAL) == incremental


def test_feature_retention_keeps_recent_dates_mondays_and_send_dates_in_every_build(built_shop, shop_copy, monkeypatch):
    """SHOP_FEATURE_RETENTION_DAYS: the same dates are kept by batched history, daily runs and one full build."""
    from ml.pipeline import as_of_for, land
    from ml.propensity.datasets import choose_split
    from ml.warehouse.history import build_history

    shop = shop_copy(built_shop)
    monkeypatch.setenv("SHOP_FEATURE_RETENTION_DAYS", "20")
    build_history(keep_last=3)  # 30 event days per batch
    for day in shop.remaining_days:
        landed = land(day)
        build_features(as_of_for(day), reprocess_from=date.fromisoformat(landed["reprocess_from"]))
    daily = table_checksums(shop.warehouse, ["user_features", "training_labels"])

    kept = [row[0] for row in query(shop.warehouse, "select distinct as_of_date from user_features order by 1")]
    sends = {row[0] for row in query(shop.warehouse, "select distinct send_date from stg_landing__coupon_sends")}
    newest = as_of_for(shop.remaining_days[-1])
    recent = [newest - timedelta(days=n) for n in range(20)]
    assert kept[-20:] == sorted(recent)
    older = kept[:-20]
    assert older and all(d.isoweekday() == 1 or d in sends for d in older)
    assert any(d.isoweekday() == 1 for d in older) and len(older) < (older[-1] - older[0]).days / 2
    labelled = [row[0] for row in query(shop.warehouse, "select distinct as_of_date from training_labels order by 1")]
    assert labelled and set(labelled) <= set(kept)
    # Training finds as many weekly snapshots among the kept dates as it would with every date kept.
    split = choose_split(labelled)
    every_date = [labelled[0] + timedelta(days=n) for n in range((labelled[-1] - labelled[0]).days + 1)]
    assert set(split.train_dates) <= set(labelled) and split.test_date == labelled[-1]
    assert len(split.train_dates) == len(choose_split(every_date).train_dates) >= 3

    monkeypatch.setenv("SHOP_HISTORY_BATCH_DAYS", "1000")
    build_history(keep_last=0)
    assert table_checksums(shop.warehouse, ["user_features", "training_labels"]) == daily


def test_a_gap_of_unbuilt_days_is_reprocessed(built_shop, shop_copy, monkeypatch):
    """Days landed without a feature build (failed or skipped runs) are picked up by the next run."""
    from ml.pipeline import as_of_for, land
    from ml.warehouse.builds import reprocess_start

    shop = shop_copy(built_shop)
    monkeypatch.setenv("SHOP_LATE_EVENT_DAYS", "0")
    first, _, last = shop.remaining_days
    for day in shop.remaining_days:
        landed = land(day)
    assert landed["reprocess_from"] == str(first)  # the newest built day is the one before `first`
    build_features(as_of_for(last), reprocess_from=date.fromisoformat(landed["reprocess_from"]))
    days = query(shop.warehouse, "select count(distinct activity_date) from int_user_days_aggregated")[0][0]
    assert days == 120 and reprocess_start(as_of_for(last)) == last
