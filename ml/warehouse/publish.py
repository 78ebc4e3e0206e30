"""Publish the analyst snapshot without copying the warehouse.

The published marts live as Parquet files, one per table and day, under `<analyst dir>/published/`; the
snapshot (`warehouse_snapshot.duckdb`) is a small DuckDB file of views over the current files, plus the
small whole tables. A publish fingerprints the days a run can have changed (`since` on), writes only the
partitions whose rows differ, each to a new file, and renames a freshly built snapshot file over the old
one. So a publish costs the changed days, not the warehouse; analysts never see a half-published day and
never block the pipeline (they open the snapshot read-only; nothing writes it in place). A session that
stays open keeps reading the files its snapshot names: a replaced file is deleted only at the publish
after the next, and the manifest `published_partitions` says what each file holds.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb

from ml.config import COUPON_WINDOW_DAYS, LABEL_HORIZON_DAYS, Settings, settings
from ml.storage import replace_durably
from ml.warehouse.read import table_names
from ml.writer_lock import locked

log = logging.getLogger(__name__)

# Published tables: the day column they are partitioned by, and how many days before a re-processed event
# day a row of theirs can change (a label reads the 30 days from its as-of date, a campaign outcome the 7 from
# its send; features, scores, segments and targets of date T see only the days before T). None: a small
# table, copied whole into the snapshot.
PUBLISHED: dict[str, tuple[str, int] | None] = {
    "user_features": ("as_of_date", 0),
    "training_labels": ("as_of_date", LABEL_HORIZON_DAYS - 1),
    "user_segments": ("as_of_date", 0),
    "coupon_targets": ("as_of_date", 0),
    "stg_ml__scores": ("as_of_date", 0),
    "user_score_reasons": ("as_of_date", 0),
    "user_recommendations": ("as_of_date", 0),
    "user_clusters": ("as_of_date", 0),
    "cluster_profiles": ("as_of_date", 0),
    "segment_forecasts": ("as_of_date", 0),
    "segment_daily_activity": ("activity_date", 0),
    "campaign_outcomes": ("send_date", COUPON_WINDOW_DAYS - 1),
    "events_quarantine": ("event_date", 0),
    "coupon_results": None,
    "policy_evaluations": None,
    "recommendation_quality": None,
    "model_monitoring": None,
    "landing_daily_summary": None,
    "model_promotions": None,
    "coupon_catalogue": None,
}
MANIFEST = "published_partitions"


@locked("publish")
def publish_snapshot(since: date | None = None, cfg: Settings | None = None) -> Path:
    """Export the partitions a run re-processing event days from `since` on can have changed (every day when
    None) and swap in a new snapshot file. Each table compares its days from the first one those event days
    reach (its lookback in PUBLISHED), so a daily publish reads a few days of each table, not 30 of each.
    """
    cfg = cfg or settings()
    if not cfg.warehouse_path.exists():
        raise FileNotFoundError(f"{cfg.warehouse_path}: no warehouse to publish; build it first")
    files_dir = cfg.snapshot_path.parent / "published"
    files_dir.mkdir(parents=True, exist_ok=True)
    previous = _read_manifest(cfg.snapshot_path)
    tmp = cfg.snapshot_path.with_name(f".{cfg.snapshot_path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with duckdb.connect(str(tmp)) as con:
            con.execute("set enable_progress_bar = false")
            con.execute(f"attach {sql_string(cfg.warehouse_path)} as wh (read_only)")
            present = table_names(con)  # the warehouse's: the new snapshot holds nothing yet
            manifest = []
            for table, partitioning in PUBLISHED.items():
                if table not in present:
                    continue
                if partitioning is None:
                    con.execute(f"create table main.{table} as select * from wh.main.{table}")
                    continue
                column, lookback = partitioning
                kept = [row for row in previous if row["table_name"] == table]
                table_since = since - timedelta(days=lookback) if since else None
                rows = _publish_table(con, table, column, kept, table_since, files_dir)
                manifest += rows
                _create_view(con, table, rows, cfg.snapshot_read_dir / "published")
            _write_manifest(con, manifest)
            con.execute("detach wh")
        replace_durably(tmp, cfg.snapshot_path)
    finally:
        tmp.unlink(missing_ok=True)
    _delete_unlisted(files_dir, {row["file"] for row in previous} | {row["file"] for row in manifest})
    return cfg.snapshot_path


def _publish_table(
    con: duckdb.DuckDBPyConnection, table: str, column: str, kept: list[dict], since: date | None, files_dir: Path
) -> list[dict]:
    """This table's manifest rows: earlier days as they were, days from `since` on re-exported if changed."""
    # A table never published before (or a full publish) is compared on every day.
    since = since if kept and since else None
    where = f"where {column} >= date '{since}'" if since else ""
    current = con.execute(
        f"select {column}, count(*), sum(hash(t))::hugeint::varchar "
        f"from wh.main.{table} as t {where} group by 1 order by 1"
    ).fetchall()
    old = {row["partition_date"]: row for row in kept}
    rows = []
    if since:
        # Earlier days are kept as published unless they left the warehouse (feature retention drops days).
        earlier = {
            r[0]
            for r in con.execute(
                f"select distinct {column} from wh.main.{table} where {column} < ?", [since]
            ).fetchall()
        }
        rows = [row for day, row in old.items() if day < since and day in earlier]
    now = datetime.now(UTC).replace(tzinfo=None)
    for day, count, fingerprint in current:
        if day in old and old[day]["fingerprint"] == fingerprint and (files_dir / old[day]["file"]).exists():
            rows.append(old[day])
            continue
        name = f"{table}/{column}={day}/{uuid.uuid4().hex}.parquet"
        (files_dir / name).parent.mkdir(parents=True, exist_ok=True)
        part = files_dir / f"{name}.tmp"
        con.execute(
            f"copy (select * from wh.main.{table} where {column} = date '{day}') to {sql_string(part)} (format parquet)"
        )
        replace_durably(part, files_dir / name)
        rows.append(
            {
                "table_name": table,
                "partition_date": day,
                "file": name,
                "rows": count,
                "fingerprint": fingerprint,
                "published_at": now,
            }
        )
    return sorted(rows, key=lambda row: row["partition_date"])


def _create_view(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict], read_dir: Path) -> None:
    """A view over the table's files as the analysts' tools see them; an empty table of the same columns if none."""
    if not rows:
        con.execute(f"create table main.{table} as select * from wh.main.{table} limit 0")
        return
    files = ", ".join(sql_string(read_dir / row["file"]) for row in rows)
    # By name: a day published before a column was added (coupon_targets.message_category) has nulls there.
    con.execute(f"create view main.{table} as select * from read_parquet([{files}], union_by_name = true)")


def _write_manifest(con: duckdb.DuckDBPyConnection, rows: list[dict]) -> None:
    con.execute(
        f"create table {MANIFEST} (table_name varchar, partition_date date, file varchar, rows bigint, "
        "fingerprint varchar, published_at timestamp)"
    )
    if rows:
        con.executemany(
            f"insert into {MANIFEST} values (?, ?, ?, ?, ?, ?)",
            [
                [r["table_name"], r["partition_date"], r["file"], r["rows"], r["fingerprint"], r["published_at"]]
                for r in rows
            ],
        )


def sql_string(path: Path | str) -> str:
    """A path as a SQL string literal (a configured folder may hold a quote)."""
    return "'" + str(path).replace("'", "''") + "'"


def published_name_is_valid(row: dict) -> bool:
    """Whether a manifest row names a file publish itself would write: <table>/<column>=<day>/<hex>.parquet.

    Names are read back from the snapshot being replaced and then joined to paths and pasted into SQL: a
    snapshot file edited by hand (or another tool) must not point them outside the published folder.
    """
    partitioning = PUBLISHED.get(row.get("table_name"))
    if partitioning is None or not isinstance(row.get("file"), str):
        return False
    pattern = rf"{row['table_name']}/{partitioning[0]}={row.get('partition_date')}/[0-9a-f]{{32}}\.parquet"
    return re.fullmatch(pattern, row["file"]) is not None


def _read_manifest(snapshot: Path) -> list[dict]:
    """The manifest of the snapshot being replaced (empty for none, or one from before files were published).

    A row whose file name publish would not have written is left out (its day is exported afresh)."""
    if not snapshot.exists():
        return []
    with duckdb.connect(str(snapshot), read_only=True) as con:
        if MANIFEST not in table_names(con):
            return []
        cursor = con.execute(f"select * from {MANIFEST}")
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    valid = [row for row in rows if published_name_is_valid(row)]
    if len(valid) < len(rows):
        log.warning(
            "%s: %d manifest rows name files publish never writes; re-exporting their days",
            snapshot,
            len(rows) - len(valid),
        )
    return valid


def _delete_unlisted(files_dir: Path, listed: set[str]) -> None:
    """Delete published files neither the new snapshot nor the one it replaced names (and stale temp files)."""
    for path in files_dir.rglob("*.parquet*"):
        if path.relative_to(files_dir).as_posix() not in listed:
            path.unlink(missing_ok=True)
