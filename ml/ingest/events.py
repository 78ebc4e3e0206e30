"""Landing events: each row in the partition of its own day, merged by `event_id`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa

from ml.config import settings
from ml.errors import LandingError
from ml.ingest.exports import content_signature, read_events
from ml.ingest.plans import MAX_LATE_DAYS, LandingPlan, merge_by_key, named_day, read_landed
from ml.progress import progress
from ml.storage import EVENT_SCHEMA, as_table
from ml.writer_lock import locked


def _event_days(events: pd.DataFrame, path: Path) -> pd.Series:
    """The partition day of each row: its own day, except where the export's named day must hold it."""
    own = events["event_at"].dt.date
    export_day = named_day(path)
    if export_day:
        # A row dated after its export, or more than MAX_LATE_DAYS before it (a clock reset to 1970), stays in
        # the export's partition, where dbt quarantines it ('timestamp outside the partition day'): on its own
        # day it would open a partition decades back and pull every re-processing window there.
        # Compared as timestamps: a column with no readable time has no dates to compare with a date.
        at = events["event_at"]
        too_early = at < pd.Timestamp(export_day - timedelta(days=MAX_LATE_DAYS))
        too_late = at >= pd.Timestamp(export_day + timedelta(days=1))
        keep_in_export = own.isna() | too_late | too_early
        return own.where(~keep_in_export, export_day)
    if own.isna().all():
        raise LandingError(f"{path}: no row has a readable event_at, so the file has no day to land in")
    # Rows without a readable time stay with the file's most common day (and are quarantined there).
    return own.fillna(own.mode().iloc[0])


def canonical_events(frame: pd.DataFrame) -> pd.DataFrame:
    """Events with the landing schema's exact types, however they were read: equal rows compare equal."""
    types = {pa.int64(): pd.Int64Dtype(), pa.float64(): pd.Float64Dtype(), pa.string(): pd.StringDtype()}
    return as_table(frame, EVENT_SCHEMA).to_pandas(ignore_metadata=True, types_mapper=types.get)


def _replaced_days(events: pd.DataFrame, path: Path) -> set:
    """The days a file is the export of: its named day, or every day it covers when it has no date in its name."""
    export_day = named_day(path)
    return {export_day} if export_day else set(events["_day"].dropna())


def plan_events(files: list[Path], plan: LandingPlan, landing_dir: Path, replace: bool = False) -> dict[str, dict]:
    """Add the event partitions these files change to `plan`; return per-day counts.

    An event already landed on a neighbouring day (a correction that moved it across midnight) is moved,
    not duplicated. With `replace`, the days the files are exports of are rebuilt from the files alone;
    late rows for other days still merge.
    """
    frames, replaced = [], set()
    for order, path in enumerate(progress(files, "reading event files", total=len(files))):
        events = canonical_events(read_events(path))
        events = events.assign(_day=_event_days(events, path), _file=order)
        frames.append(events)
        if replace:
            replaced |= _replaced_days(events, path)
    combined = pd.concat(frames, ignore_index=True)
    # The same event in several files of one batch (overlapping exports): the last file's version wins.
    newest_file = combined.groupby("event_id", dropna=False)["_file"].transform("max")
    combined = combined[combined["_file"] == newest_file].drop(columns="_file")
    incoming = {day: part.drop(columns="_day") for day, part in combined.groupby("_day", sort=True)}
    home_day = combined.drop_duplicates("event_id").set_index("event_id")["_day"]
    neighbours = {day + timedelta(days=step) for day in incoming for step in (-1, 1)} - set(incoming)
    per_day: dict[str, dict] = {}
    for day in sorted(set(incoming) | neighbours):
        target = landing_dir / "events" / f"event_date={day}" / "part-0.parquet"
        existing = None if day in replaced else read_landed(target)
        existing = None if existing is None else canonical_events(existing)
        moved = 0
        if existing is not None:
            # Rows whose event now lives on another day leave this one.
            home = existing["event_id"].map(home_day)
            elsewhere = home.notna() & (home != day)
            moved = int(elsewhere.sum())
            existing = existing[~elsewhere.to_numpy()]
        if day not in incoming:
            if moved:
                plan.files[target] = as_table(_in_stable_order(existing), EVENT_SCHEMA)
                per_day[str(day)] = {"rows": 0, "added": 0, "updated": 0, "unchanged": 0, "moved_out": moved}
            continue
        merged, counts = merge_by_key(existing, incoming[day], ["event_id"])
        plan.files[target] = as_table(_in_stable_order(merged), EVENT_SCHEMA)
        per_day[str(day)] = {"rows": len(incoming[day]), **counts, "partition_rows": len(merged)}
        if moved:
            per_day[str(day)]["moved_out"] = moved
    plan.changed_days.update(changed_days(per_day))
    return per_day


def _in_stable_order(events: pd.DataFrame) -> pd.DataFrame:
    """Sort by time and id (and content where an id repeats): the same events always give the same file."""
    order = ["event_at", "event_id"]
    if events["event_id"].duplicated().any():
        events = events.assign(_content=content_signature(events))
        order.append("_content")
    return events.sort_values(order, kind="mergesort", na_position="last").drop(columns="_content", errors="ignore")


@locked("land events")
def land_events(files: list[Path], landing_dir: Path | None = None, replace: bool = False) -> dict[str, dict]:
    """Land event files (merging by event id, or replacing their days whole); all files or none."""
    plan = LandingPlan()
    per_day = plan_events(files, plan, landing_dir or settings().landing_dir, replace)
    plan.commit()
    return per_day


def changed_days(per_day: dict[str, dict]) -> list[str]:
    """The event days whose landed partition a plan changes (rows added, updated or moved out)."""
    return sorted(
        d for d, counts in per_day.items() if counts.get("added") or counts.get("updated") or counts.get("moved_out")
    )
