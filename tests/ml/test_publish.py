"""The analyst snapshot: views over per-day Parquet files; a publish rewrites only the days that changed."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import duckdb
import pytest

from ml.config import settings
from ml.warehouse.publish import MANIFEST, PUBLISHED, publish_snapshot
from tests.checksums import query, table_checksums

LABEL_DAY = "select count(*), sum(hash(t))::varchar from training_labels as t where as_of_date = ?"


def _manifest(snapshot) -> dict[tuple[str, object], str]:
    return {
        (table, day): file
        for table, day, file in query(snapshot, f"select table_name, partition_date, file from {MANIFEST}")
    }


def test_a_publish_rewrites_only_changed_days_and_an_open_session_keeps_its_snapshot(built_shop, shop_copy):
    shop = shop_copy(built_shop)
    cfg = settings()
    tables = [
        t
        for t in PUBLISHED
        if query(shop.warehouse, f"select count(*) from duckdb_tables() where table_name = '{t}'")[0][0]
    ]
    assert {"user_features", "training_labels", "campaign_outcomes", "landing_daily_summary"} <= set(tables)

    snapshot = publish_snapshot()
    assert table_checksums(snapshot, tables) == table_checksums(shop.warehouse, tables)
    first = _manifest(snapshot)
    published_dir = snapshot.parent / "published"
    assert {p.relative_to(published_dir).as_posix() for p in published_dir.rglob("*.parquet")} == set(first.values())
    # The snapshot holds views, not the data: it stays small however long the history.
    assert snapshot.stat().st_size < 5_000_000 < cfg.warehouse_path.stat().st_size

    newest = query(shop.warehouse, "select max(as_of_date) from user_features")[0][0]
    analyst = duckdb.connect(str(snapshot), read_only=True)
    before = analyst.execute(
        "select sum(count_purchases_30d) from user_features where as_of_date = ?", [newest]
    ).fetchall()
    since = newest - timedelta(days=10)
    # A label reads the 30 days from its as-of date: re-processed event days change labels from 29 days before.
    reached, beyond = since - timedelta(days=29), since - timedelta(days=30)
    assert query(shop.warehouse, "select min(as_of_date) from training_labels")[0][0] <= beyond
    with duckdb.connect(str(cfg.warehouse_path)) as con:  # a run re-processing event days from `since`
        con.execute(
            "update user_features set count_purchases_30d = count_purchases_30d + 1 where as_of_date = ?", [newest]
        )
        con.execute("update training_labels set purchase_30d = 1 - purchase_30d where as_of_date = ?", [reached])
        labels_beyond = con.execute(LABEL_DAY, [beyond]).fetchone()
        con.execute("update training_labels set purchase_30d = 1 - purchase_30d where as_of_date = ?", [beyond])

    again = publish_snapshot(since=since)
    # The open session still reads the snapshot it opened, the replaced file included.
    assert (
        analyst.execute("select sum(count_purchases_30d) from user_features where as_of_date = ?", [newest]).fetchall()
        == before
    )
    analyst.close()  # (in one process DuckDB hands a path's open database to every new connection)
    second = _manifest(again)
    changed = {key for key in second if second[key] != first.get(key)}
    # One file per changed day written, every other day kept as it was: a label beyond the reach of the
    # re-processed days is not compared (no run re-processing from `since` can change it).
    assert changed == {("user_features", newest), ("training_labels", reached)}
    assert query(again, LABEL_DAY, [beyond]) == [labels_beyond]
    with duckdb.connect(str(cfg.warehouse_path)) as con:  # undo the change no run could have made
        con.execute("update training_labels set purchase_30d = 1 - purchase_30d where as_of_date = ?", [beyond])
    assert table_checksums(again, tables) == table_checksums(shop.warehouse, tables)

    # The file the first snapshot named is deleted at the publish after the next, not before. A day that left
    # the warehouse before `since` (retention) leaves the snapshot too.
    replaced = published_dir / first[("user_features", newest)]
    oldest = min(day for table, day in first if table == "user_features")
    with duckdb.connect(str(cfg.warehouse_path)) as con:
        con.execute("delete from user_features where as_of_date = ?", [oldest])
    assert replaced.exists()
    publish_snapshot(since=newest)
    assert not replaced.exists()
    assert ("user_features", oldest) not in _manifest(snapshot) and ("training_labels", oldest) in _manifest(snapshot)
    assert table_checksums(snapshot, tables) == table_checksums(shop.warehouse, tables)


def test_publishing_without_a_warehouse_or_with_a_bad_date_says_what_to_do(empty_env):
    with pytest.raises(FileNotFoundError, match="no warehouse to publish; build it first"):
        publish_snapshot()
    assert not settings().snapshot_path.exists()
    result = subprocess.run(
        [sys.executable, "-m", "ml", "publish", "--since", "2026-13-01"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "2026-13-01" in result.stderr, result.stderr


def test_a_manifest_naming_files_outside_the_published_folder_is_not_trusted(built_shop, shop_copy, tmp_path):
    """Names read back from the old snapshot are joined to paths and pasted into SQL: a hand-edited manifest row
    (a path out of the folder, a quote) is left out and its day exported afresh; the snapshot stays whole."""
    import os

    shop_copy(built_shop)
    snapshot = publish_snapshot()
    outside = tmp_path / "outside.parquet"
    outside.write_bytes(b"not yours")
    with duckdb.connect(str(snapshot)) as con:
        day = con.execute(f"select max(partition_date) from {MANIFEST} where table_name = 'user_features'").fetchone()[
            0
        ]
        con.execute(
            f"update {MANIFEST} set file = ? where table_name = 'user_features' and partition_date = ?",
            [os.path.relpath(outside, snapshot.parent / "published"), day],  # exists: kept as published before
        )
        con.execute(
            f"update {MANIFEST} set file = 'x'') ; drop table user_features; --' "
            "where table_name = 'training_labels' and partition_date = (select min(partition_date) from "
            f"{MANIFEST} where table_name = 'training_labels')"
        )
    again = publish_snapshot()
    rows = _manifest(again)
    assert all(".." not in name and "'" not in name for name in rows.values())
    assert rows[("user_features", day)].startswith(f"user_features/as_of_date={day}/")
    assert table_checksums(again, ["user_features", "training_labels"]) == table_checksums(
        settings().warehouse_path, ["user_features", "training_labels"]
    )
    assert outside.read_bytes() == b"not yours"


def test_a_data_folder_with_a_quote_in_its_name_publishes(built_shop, tmp_path, monkeypatch):
    import shutil

    from tests.conftest import point_env_at

    root = tmp_path / "o'brien shop"
    shutil.copytree(built_shop.root, root)
    point_env_at(monkeypatch, root)
    snapshot = publish_snapshot()
    assert table_checksums(snapshot, ["user_features"]) == table_checksums(
        root / "data" / "warehouse.duckdb", ["user_features"]
    )
