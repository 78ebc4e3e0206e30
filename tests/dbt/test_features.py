"""dbt builds of the feature marts on a small simulated shop: grain, point in time, quarantine."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pandas as pd
import pytest

from ml.errors import DbtError
from ml.ingest.landing import land_day
from ml.warehouse.builds import as_of_vars, build_features
from ml.warehouse.dbt_runner import run_dbt
from tests.checksums import query, table_checksums
from tests.conftest import altered_project


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


def test_a_null_in_a_required_column_fails_the_build_and_keeps_what_was_there(
    built_shop, shop_copy, tmp_path, monkeypatch
):
    """Required columns of a contracted table are NOT NULL constraints: DuckDB refuses the day's rows as they
    are written (no test scanning the table afterwards), names the column, and the rows already there stay."""
    shop = shop_copy(built_shop)
    as_of = query(shop.warehouse, "select max(as_of_date) from user_features")[0][0]
    # A warehouse built before the column was required: the next run adds the constraint to the table.
    with duckdb.connect(str(shop.warehouse)) as con:
        con.execute("alter table user_features alter column country drop not null")
    build_features(as_of, as_of)
    nullable = (
        "select is_nullable from information_schema.columns where table_name = 'user_features' and column_name = ?"
    )
    assert query(shop.warehouse, nullable, ["country"]) == [("NO",)]
    project = altered_project(
        tmp_path,
        "marts/features/user_features.sql",
        "        user_spine.country,\n",
        "        case when user_spine.user_id % 7 = 0 then null else user_spine.country end as country,\n",
    )
    monkeypatch.setenv("SHOP_DBT_PROJECT_DIR", str(project))
    before = table_checksums(shop.warehouse, ["user_features"])
    with pytest.raises(DbtError, match=r"NOT NULL constraint failed: .*user_features\.country"):
        build_features(as_of, as_of)  # rebuilds the newest date: delete, then insert the day's rows
    assert table_checksums(shop.warehouse, ["user_features"]) == before


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
