"""Landing: a shop's export files become Parquet partitions that dbt reads, and nothing landed is lost.

- Events land in the partition of their own day (`events/event_date=YYYY-MM-DD/part-0.parquet`). A file
  named with a date (events_2026-03-01.csv) is that day's export: its late rows (earlier days) merge into
  their own day; rows timestamped after the export's day, or unreadable, stay in the export's day, where
  dbt quarantines them with a reason.
- Landing merges by key: events by `event_id`, users by `user_id`, products by `product_id`, coupon sends
  by (`campaign_id`, `user_id`). A row with a known key replaces the landed one (a correction); new keys
  are added; nothing else changes. Landing the same file twice changes nothing. A day or a table is
  replaced whole only when asked (`replace=True`, `ml ingest --replace`).
- An ingest is all or nothing: every file is read and checked, every new partition is written aside,
  and only then are they renamed into place. A refused file changes nothing.

The file shapes accepted are described in `ml/ingest/exports.py`.
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

from ml.config import settings
from ml.errors import LandingError
from ml.ingest.events import plan_events
from ml.ingest.plans import LandingPlan, expand, landed_inbox_snapshots
from ml.ingest.tables import plan_coupon_sends, plan_landed_contact_data, plan_table
from ml.writer_lock import locked


@locked("ml ingest")
def ingest(
    events: str | None = None,
    users: str | None = None,
    products: str | None = None,
    coupon_sends: str | None = None,
    replace: bool = False,
) -> dict[str, object]:
    """`python -m ml ingest`: land your own files in one go; every file is checked before any is written."""
    if not any((events, users, products, coupon_sends)):
        raise LandingError("nothing to ingest: pass --events (and optionally --users, --products, --coupon-sends)")
    landing_dir = settings().landing_dir
    plan = LandingPlan()
    summary: dict[str, object] = {}
    if users:
        summary["users"] = plan_table(Path(users), "users", plan, landing_dir, replace)
    if products:
        summary["products"] = plan_table(Path(products), "products", plan, landing_dir, replace)
    if coupon_sends:
        summary["coupon_sends"] = plan_coupon_sends(expand(coupon_sends), plan, landing_dir, replace)
    if events:
        per_day = plan_events(expand(events), plan, landing_dir, replace)
        days = [day for day, counts in per_day.items() if counts["rows"]]
        summary["event_days"] = len(days)
        for name in ("rows", "added", "updated", "unchanged", "moved_out"):
            summary[f"events_{name}"] = sum(d.get(name, 0) for d in per_day.values())
        summary["first_day"], summary["last_day"] = min(days), max(days)
    plan_landed_contact_data(plan, landing_dir)
    plan.commit()
    if plan.suppressed_rows:
        summary["suppressed_rows"] = plan.suppressed_rows  # rows of forgotten users, not landed
    return summary


def inbox_file(folder: Path, stem: str, day: date) -> Path | None:
    for suffix in (".parquet", ".csv"):
        candidate = folder / f"{stem}_{day}{suffix}"
        if candidate.is_symlink() or candidate.exists():
            return inbox_checked(candidate)
    return None


def inbox_checked(path: Path) -> Path:
    """An inbox export must be the file the shop wrote there: a link could point anywhere on the machine."""
    if path.is_symlink():
        raise LandingError(f"{path}: a symbolic link in the inbox; copy the export itself into the inbox")
    return path


def plan_inbox_tables(plan: LandingPlan, exported: date) -> dict[str, int]:
    """Add the inbox's users and products snapshots, where the shop sends them, to `plan`; rows per table.

    Only a snapshot that changed since it was last landed: the same file merged again every day would undo
    what was landed since (a correction made with `ml ingest`). 0 rows: unchanged. `exported`: the newest
    export day it came with (its consent changes date from that day's end; see `_settle_consent`).
    """
    cfg = settings()
    landed = landed_inbox_snapshots()
    rows = {}
    for kind in ("users", "products"):
        snapshot = cfg.inbox_dir / f"{kind}.parquet"
        if snapshot.is_symlink() or snapshot.exists():
            digest = hashlib.sha256(inbox_checked(snapshot).read_bytes()).hexdigest()
            if landed.get(kind) == digest:
                rows[kind] = 0
                continue
            rows[kind] = plan_table(snapshot, kind, plan, cfg.landing_dir, snapshot_of=exported)["table_rows"]
            plan.snapshots[kind] = digest
    return rows


@locked("land_day")
def land_day(day: date) -> dict[str, object]:
    """Land one day's export from the inbox (the DAG's first task): events, and any table snapshots sent."""
    cfg = settings()
    events = inbox_file(cfg.inbox_dir / "events", "events", day)
    if events is None:
        raise LandingError(
            f"no event file for {day}: expected {cfg.inbox_dir / 'events' / f'events_{day}.parquet'} (or .csv)"
        )
    plan = LandingPlan()
    summary: dict[str, object] = {"day": str(day), **plan_inbox_tables(plan, day)}
    sends = inbox_file(cfg.inbox_dir / "coupon_sends", "coupon_sends", day)
    if sends is not None:
        summary["coupon_sends"] = plan_coupon_sends([sends], plan, cfg.landing_dir)["rows"]
    per_day = plan_events([events], plan, cfg.landing_dir)
    plan_landed_contact_data(plan, cfg.landing_dir)
    plan.commit()
    if plan.suppressed_rows:
        summary["suppressed_rows"] = plan.suppressed_rows
    summary["events"] = per_day[str(day)]["rows"] if str(day) in per_day else 0
    summary["late_events"] = sum(d["rows"] for d_str, d in per_day.items() if d_str != str(day))
    # The feature build re-processes from here at the latest (late rows may land in an older partition).
    summary["first_changed_day"] = min(plan.changed_days, default=None)
    return summary
