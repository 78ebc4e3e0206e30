"""dbt builds of the feature marts on a small simulated shop: grain, point in time, quarantine."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from ml.errors import DbtError
from ml.landing import land_day
from ml.warehouse import as_of_vars, build_features, run_dbt
from tests.checksums import query, table_checksums


def test_user_features_has_one_row_per_user_who_had_signed_up_per_as_of_date(built_shop):
    rows = query(
        built_shop.warehouse,
        """
        select f.as_of_date, count(*), count(distinct f.user_id),
               (select count(*) from stg_landing__users u where u.signup_at < f.as_of_date)
        from user_features f group by 1 order by 1""",
    )
    assert len(rows) == 120 - 3 - 28 + 1  # from the warm-up day to the day after the last built day
    for _as_of, count, distinct_users, signed_up in rows:
        assert count == distinct_users == signed_up


def test_no_mart_carries_pii(built_shop):
    columns = query(built_shop.warehouse, "select table_name, column_name from information_schema.columns")
    assert not [c for c in columns if c[1] in ("email", "phone")]


def test_labels_exist_only_where_the_window_has_closed(built_shop):
    newest_event, newest_label = query(
        built_shop.warehouse,
        """
        select (select max(event_date) from stg_landing__events), (select max(as_of_date) from training_labels)""",
    )[0]
    assert newest_label + timedelta(days=30) == newest_event + timedelta(days=1)
    rates = query(
        built_shop.warehouse,
        """
        select avg(purchase_30d), avg(churn_30d), count(churn_30d) < count(*) from training_labels""",
    )[0]
    assert 0.02 < rates[0] < 0.5 and 0.05 < rates[1] < 0.6 and rates[2]


def test_features_as_of_a_day_do_not_change_when_that_day_lands(built_shop, shop_copy):
    """Point in time, end to end: events on or after T never reach features as of T."""
    shop = shop_copy(built_shop)
    as_of = shop.remaining_days[0]  # built as of this date, its own events not landed yet
    where = f"(select * from user_features where as_of_date = date '{as_of}')"
    before = table_checksums(shop.warehouse, [where])
    land_day(as_of)
    land_day(as_of + timedelta(days=1))
    build_features(as_of, as_of)
    assert table_checksums(shop.warehouse, [where]) == before
    assert before[where][0] > 1000


def _bad_day(shop, day, n_bad_per_reason: int) -> pd.DataFrame:
    """The shop's export for `day` plus rows that break each validation rule."""
    path = shop.data / "inbox" / "events" / f"events_{day}.parquet"
    events = pd.read_parquet(path)
    good = events.iloc[0]
    bad = []
    for i in range(n_bad_per_reason):
        bad += [
            {**good, "event_id": f"bad-type-{i}", "event_type": "wishlist"},
            {**good, "event_id": f"bad-price-{i}", "price": -5.0},
            # after the export's day: it stays in the export's partition and is quarantined there
            {**good, "event_id": f"bad-day-{i}", "event_at": good["event_at"] + timedelta(days=2)},
            {**good, "event_id": f"bad-user-{i}", "user_id": 999_999},
            {**good, "event_id": good["event_id"]},  # a duplicate of the first row
        ]
    return pd.concat([events, pd.DataFrame(bad)], ignore_index=True)


def test_bad_rows_are_quarantined_with_reasons_and_nothing_is_lost(built_shop, shop_copy):
    shop = shop_copy(built_shop)
    day = shop.remaining_days[0]
    frame = _bad_day(shop, day, n_bad_per_reason=2)
    frame.to_parquet(shop.data / "inbox" / "events" / f"events_{day}.parquet")
    landed = land_day(day)["events"]
    build_features(day + timedelta(days=1))
    reasons = dict(
        query(
            shop.warehouse,
            f"""
        select quarantine_reason, count(*) from events_quarantine where event_date = date '{day}' group by 1""",
        )
    )
    assert reasons == {
        "unknown event type": 2,
        "negative price": 2,
        "timestamp outside the partition day": 2,
        "unknown user": 2,
        "duplicate event_id": 2,
    }
    clean = query(
        shop.warehouse,
        f"""
        select count(*) from int_events_checked where event_date = date '{day}' and quarantine_reason is null""",
    )[0][0]
    assert clean + sum(reasons.values()) == landed == len(frame)


def test_a_flood_of_bad_rows_fails_the_build_and_keeps_earlier_features(built_shop, shop_copy, monkeypatch):
    shop = shop_copy(built_shop)
    day = shop.remaining_days[0]
    earlier = table_checksums(shop.warehouse, ["user_features"])
    frame = _bad_day(shop, day, n_bad_per_reason=400)
    frame.to_parquet(shop.data / "inbox" / "events" / f"events_{day}.parquet")
    land_day(day)
    with pytest.raises(DbtError, match="assert_quarantine_share_below_limit"):
        build_features(day + timedelta(days=1))
    rows = query(shop.warehouse, "select count(*) from user_features where as_of_date <= ?", [day])[0][0]
    assert rows == earlier["user_features"][0]
    shares = query(shop.warehouse, "select quarantined_share from landing_daily_summary where event_date = ?", [day])
    assert shares[0][0] > 0.05


def test_the_quarantine_threshold_is_a_setting(built_shop, shop_copy, monkeypatch):
    shop = shop_copy(built_shop)
    day = shop.remaining_days[0]
    _bad_day(shop, day, n_bad_per_reason=400).to_parquet(shop.data / "inbox" / "events" / f"events_{day}.parquet")
    land_day(day)
    monkeypatch.setenv("SHOP_MAX_QUARANTINE_SHARE", "0.9")
    build_features(day + timedelta(days=1))
    monkeypatch.setenv("SHOP_MAX_QUARANTINE_SHARE", "lots")
    from ml.errors import ConfigError

    with pytest.raises(ConfigError, match="SHOP_MAX_QUARANTINE_SHARE must be a number, got 'lots'"):
        build_features(day + timedelta(days=1))


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
    from ml.history import build_history
    from ml.pipeline import as_of_for, land

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
    from ml.data import choose_split
    from ml.history import build_history
    from ml.pipeline import as_of_for, land

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
    from ml.warehouse import reprocess_start

    shop = shop_copy(built_shop)
    monkeypatch.setenv("SHOP_LATE_EVENT_DAYS", "0")
    first, _, last = shop.remaining_days
    for day in shop.remaining_days:
        landed = land(day)
    assert landed["reprocess_from"] == str(first)  # the newest built day is the one before `first`
    build_features(as_of_for(last), reprocess_from=date.fromisoformat(landed["reprocess_from"]))
    days = query(shop.warehouse, "select count(distinct activity_date) from int_user_days_aggregated")[0][0]
    assert days == 120 and reprocess_start(as_of_for(last)) == last


def test_an_event_id_seen_within_the_duplicate_window_is_quarantined_and_a_full_refresh_agrees(built_shop, shop_copy):
    """Duplicate ids are checked against the `duplicate_window_days` (30) before an event's day, not the whole
    history: an id first seen 5 or 30 days earlier is a duplicate, one first seen 31 or 60 days earlier is not.
    Incremental runs and a full refresh of the checked events give the same rows."""
    shop = shop_copy(built_shop)
    day = shop.remaining_days[0]
    path = shop.data / "inbox" / "events" / f"events_{day}.parquet"
    events = pd.read_parquet(path)
    copies = []
    for days_back in (5, 30, 31, 60):
        earlier = pd.read_parquet(shop.data / "inbox" / "events" / f"events_{day - timedelta(days=days_back)}.parquet")
        # The same id re-used on this day (a copy of the same event would fail the partition-day rule first).
        copies.append({**earlier.iloc[0], "event_at": earlier.iloc[0]["event_at"] + timedelta(days=days_back)})
    pd.concat([events, pd.DataFrame(copies)], ignore_index=True).to_parquet(path)
    land_day(day)
    build_features(day + timedelta(days=1))
    ids = [copy["event_id"] for copy in copies]
    reasons = dict(
        query(
            shop.warehouse,
            """
            select event_id, quarantine_reason from int_events_checked
            where event_date = ? and list_contains(?, event_id)""",
            [day, ids],
        )
    )
    assert [reasons[i] for i in ids] == ["duplicate event_id", "duplicate event_id", None, None]
    incremental = table_checksums(shop.warehouse, ["int_events_checked"])
    run_dbt(["run", "--select", "int_events_checked", "--full-refresh"], as_of_vars(day + timedelta(days=1)))
    assert table_checksums(shop.warehouse, ["int_events_checked"]) == incremental
