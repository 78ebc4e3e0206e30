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

The file shapes accepted are described in `ml/exports.py`.
"""

from __future__ import annotations

import glob
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ml.config import settings
from ml.errors import LandingError
from ml.exports import SUFFIXES, content_signature, read_events, read_table, row_strings
from ml.progress import progress
from ml.reprocess_mark import mark_changed
from ml.storage import EVENT_SCHEMA, as_table, write_parquet_files_atomic, write_text_atomic
from ml.writer_lock import locked

DATE_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")
TABLE_KEYS = {"users": ["user_id"], "products": ["product_id"]}
SEND_KEY = ["campaign_id", "user_id"]
# A daily export's row dated further back than this is not a late correction but a broken clock.
MAX_LATE_DAYS = 366


@dataclass
class LandingPlan:
    """The files an ingest will write and what each changes; `commit` writes them all or none."""

    files: dict[Path, pa.Table] = field(default_factory=dict)
    summary: dict[str, object] = field(default_factory=dict)

    # The inbox snapshots this plan lands, by kind: their content hashes, recorded once the files are in.
    snapshots: dict[str, str] = field(default_factory=dict)
    # The event days whose partitions this plan changes (plan_events adds them).
    changed_days: set[str] = field(default_factory=set)

    def commit(self) -> dict[str, object]:
        # The re-processing mark goes first: a crash before the renames leaves a mark, never a change without one.
        mark_changed(sorted(self.changed_days))
        write_parquet_files_atomic(self.files)
        if self.snapshots:
            record_inbox_snapshots(self.snapshots)
        return self.summary


def expand(pattern: str) -> list[Path]:
    """Paths for a file, a folder of files or a glob; an empty match is an error naming the pattern."""
    path = Path(pattern)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES)
    else:
        files = [Path(p) for p in sorted(glob.glob(pattern))] or ([path] if path.exists() else [])
    if not files:
        raise LandingError(f"{pattern}: no such file or no files match; check the path or quote the glob")
    return files


def named_day(path: Path) -> date | None:
    """The day in a file's name (events_2026-03-01.csv is that day's export), or None."""
    found = DATE_IN_NAME.search(path.name)
    return date.fromisoformat(found.group(1)) if found else None


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


def _merge(existing: pd.DataFrame | None, new: pd.DataFrame, key: list[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """Upsert `new` into `existing` by key; rows whose content is unchanged keep their landed version."""
    if existing is None or existing.empty:
        return new, {"added": new[key].drop_duplicates().shape[0], "updated": 0, "unchanged": 0}
    new_keys = new[key].drop_duplicates()
    old_keys = existing[key].drop_duplicates()
    both = new_keys.merge(old_keys, on=key)
    unchanged = both.iloc[0:0]
    if not both.empty:
        columns = [c for c in new.columns if c in existing.columns and c != "source_file"]
        same = _same_rows_per_key(existing.merge(both, on=key), new.merge(both, on=key), columns, key)
        unchanged = both.set_index(key).loc[same[same].index].reset_index() if same.any() else unchanged
    replaced = both.merge(unchanged, on=key, how="left", indicator=True)
    replaced = replaced[replaced["_merge"] == "left_only"][key]
    keep_old = existing.merge(replaced, on=key, how="left", indicator=True)["_merge"].eq("left_only").to_numpy()
    take_new = new.merge(unchanged, on=key, how="left", indicator=True)["_merge"].eq("left_only").to_numpy()
    merged = pd.concat([existing[keep_old], new[take_new]], ignore_index=True)
    counts = {"added": len(new_keys) - len(both), "updated": len(replaced), "unchanged": len(unchanged)}
    return merged, counts


def _same_rows_per_key(old: pd.DataFrame, new: pd.DataFrame, columns: list[str], key: list[str]) -> pd.Series:
    """Per key, whether its rows in `new` are exactly its rows in `old` (in any order): a re-sent unchanged row.

    Column-wise, not a Python call per key (a 200k-user table took 15 s that way): each side's rows are
    sorted by key and content and numbered within their key, so equal sets of rows line up number by number.
    """

    def numbered(frame: pd.DataFrame) -> pd.DataFrame:
        rows = frame[key].assign(_row=row_strings(frame, columns).to_numpy()).sort_values([*key, "_row"])
        return rows.assign(_n=rows.groupby(key, sort=False).cumcount())

    lined_up = numbered(old).merge(numbered(new), on=[*key, "_n"], how="outer", suffixes=("_old", "_new"))
    equal = lined_up["_row_old"].eq(lined_up["_row_new"]).fillna(False).astype(bool)
    return equal.groupby([lined_up[k] for k in key]).all()


def _read_landed(path: Path) -> pd.DataFrame | None:
    return pq.read_table(path).to_pandas() if path.exists() else None


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
        existing = None if day in replaced else _read_landed(target)
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
        merged, counts = _merge(existing, incoming[day], ["event_id"])
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


def plan_table(
    path: Path, kind: str, plan: LandingPlan, landing_dir: Path, replace: bool = False, snapshot_of: date | None = None
) -> dict:
    """Add a users or products table to `plan`: merged into the landed one by its key (or replacing it).

    `snapshot_of`: the export day of the shop's inbox snapshot being landed; None: a file landed with `ml ingest`.
    They differ in what they may change about consent (`_settle_consent`).
    """
    raw = read_table(path, kind)
    frame = _cast_users(raw, path) if kind == "users" else _cast_products(raw, path)
    target = landing_dir / kind / f"{kind}.parquet"
    existing = None if replace else _read_landed(target)
    if existing is not None:
        frame = _keep_landed_values_of_absent_columns(frame, existing, raw.columns, TABLE_KEYS[kind])
    if kind == "users":
        sent = frame["consent_updated_at"] if "consent_updated_at" in raw.columns else pd.Series(pd.NaT, frame.index)
        frame = _settle_consent(frame, existing, sent.astype("datetime64[us]"), snapshot_of)
    merged, counts = _merge(existing, frame, TABLE_KEYS[kind])
    merged = merged.sort_values(TABLE_KEYS[kind], kind="mergesort")
    plan.files[target] = as_table(merged)
    return {"rows": len(frame), **counts, "table_rows": len(merged)}


def _keep_landed_values_of_absent_columns(
    frame: pd.DataFrame, existing: pd.DataFrame, sent: pd.Index, key: list[str]
) -> pd.DataFrame:
    """A file without a column (a users file with no email) says nothing about it: keep what was landed."""
    landed = existing.set_index(key)
    out = frame.copy()
    for column in frame.columns:
        if column not in sent and column in landed.columns:
            known = frame[key[0]].map(landed[column])
            out[column] = known.where(frame[key[0]].isin(landed.index), frame[column]).astype(frame[column].dtype)
    return out


def _settle_consent(
    frame: pd.DataFrame, existing: pd.DataFrame | None, sent_at: pd.Series, snapshot_of: date | None
) -> pd.DataFrame:
    """Each user's marketing consent after this file, when it last changed, and what the shop's snapshot said.

    - A row with its own `consent_updated_at`: the newest change wins; an older row never undoes a newer one.
    - A row of the shop's inbox snapshot without one: an opt-out always applies; consent is granted only to a
      new user, or where the shop's own record changed since its previous snapshot (`snapshot_consent`). So a
      snapshot that still says yes never undoes an opt-out landed with `ml ingest`, whenever it was exported.
    - A row of an `ml ingest` file without one: applies as of now (a correction someone made on purpose).
    """
    if snapshot_of is not None:
        stamp = datetime.combine(snapshot_of + timedelta(days=1), time())
    else:
        stamp = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    timed = sent_at.notna().to_numpy()
    out = frame.assign(consent_updated_at=sent_at.fillna(pd.Timestamp(stamp)).astype("datetime64[us]"))
    landed = None if existing is None else existing.set_index("user_id")

    def landed_values(column: str, dtype: str) -> pd.Series:
        if landed is None or column not in landed.columns:
            return pd.Series(pd.NaT if dtype.startswith("datetime") else pd.NA, index=out.index, dtype=dtype)
        return out["user_id"].map(landed[column]).astype(dtype)

    previous_sent = landed_values("snapshot_consent", "boolean")
    out["snapshot_consent"] = out["marketing_consent"].astype("boolean") if snapshot_of else previous_sent
    if landed is None:
        return out
    new = out["marketing_consent"]
    known = out["user_id"].isin(landed.index).to_numpy()
    old, old_at = landed_values("marketing_consent", "boolean"), landed_values("consent_updated_at", "datetime64[us]")
    same = known & (old == new).fillna(False).to_numpy()
    refused = known & ~same & timed & (old_at.notna() & (out["consent_updated_at"] < old_at)).to_numpy()
    if snapshot_of is not None:
        shop_changed = (previous_sent != new).fillna(False).to_numpy()
        refused |= known & ~same & ~timed & new.to_numpy() & ~shop_changed
    keep = same | refused
    out.loc[keep, "consent_updated_at"] = old_at[keep]  # unchanged consent keeps the time it was given or withdrawn
    out.loc[refused, "marketing_consent"] = old[refused].astype(bool)
    return out


def land_table(path: Path, kind: str, landing_dir: Path | None = None, replace: bool = False) -> dict:
    plan = LandingPlan()
    counts = plan_table(path, kind, plan, landing_dir or settings().landing_dir, replace)
    plan.commit()
    return counts


def _require_parsed(frame: pd.DataFrame, column: str, parsed: pd.Series, path: Path) -> pd.Series:
    bad = parsed.isna()
    if bad.any():
        example = frame.loc[bad, column].head(3).tolist()
        raise LandingError(
            f"{path}: column {column} has {int(bad.sum())} unreadable value(s), e.g. {example}; "
            "fix or remove those rows (nothing was landed)"
        )
    return parsed


def _cast_users(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    out["user_id"] = _require_parsed(frame, "user_id", pd.to_numeric(frame["user_id"], errors="coerce"), path)
    out["user_id"] = out["user_id"].astype("int64")
    signup = pd.to_datetime(frame["signup_at"], errors="coerce", utc=True, format="mixed").dt.tz_localize(None)
    out["signup_at"] = _require_parsed(frame, "signup_at", signup, path).astype("datetime64[us]")
    if out["user_id"].duplicated().any():
        raise LandingError(
            f"{path}: user_id is not unique ({int(out['user_id'].duplicated().sum())} repeats); keep one row per user"
        )
    for column in ("country", "device", "email", "phone"):
        out[column] = frame[column].astype("string") if column in frame.columns else pd.Series(None, dtype="string")
    consent = frame.get("marketing_consent", pd.Series(False, index=frame.index))
    out["marketing_consent"] = consent.astype(str).str.lower().isin(["true", "1", "yes", "y"])
    # Optional: when the shop recorded each user's consent (given or withdrawn); the newest change wins.
    changed = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us]")
    if "consent_updated_at" in frame.columns:
        sent = frame["consent_updated_at"]
        parsed = pd.to_datetime(sent, errors="coerce", utc=True, format="mixed").dt.tz_localize(None)
        # Blank: the file does not know (the snapshot's time is used); unreadable: refused like any other column.
        _require_parsed(frame[sent.notna()], "consent_updated_at", parsed[sent.notna()], path)
        changed = parsed.astype("datetime64[us]")
    out["consent_updated_at"] = changed
    columns = ["user_id", "signup_at", "country", "device", "marketing_consent", "consent_updated_at"]
    return out[[*columns, "email", "phone"]]


def _cast_products(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    product_id = _require_parsed(frame, "product_id", pd.to_numeric(frame["product_id"], errors="coerce"), path)
    price = _require_parsed(frame, "price", pd.to_numeric(frame["price"], errors="coerce"), path)
    out = pd.DataFrame(
        {
            "product_id": product_id.astype("int64"),
            "category": frame["category"].astype("string"),
            "brand": frame["brand"].astype("string") if "brand" in frame.columns else None,
            "price": price.astype(float),
        }
    )
    if out["product_id"].duplicated().any():
        raise LandingError(f"{path}: product_id is not unique; keep one row per product")
    return out


def plan_coupon_sends(files: list[Path], plan: LandingPlan, landing_dir: Path, replace: bool = False) -> dict:
    """Add campaign send partitions (one per send day, merged by campaign and user) to `plan`."""
    frames = []
    for path in files:
        frame = read_table(path, "coupon_sends")
        sent = pd.to_datetime(frame["sent_at"], errors="coerce", utc=True, format="mixed").dt.tz_localize(None)
        user_id = _require_parsed(frame, "user_id", pd.to_numeric(frame["user_id"], errors="coerce"), path)
        frames.append(
            pd.DataFrame(
                {
                    "campaign_id": _require_parsed(
                        frame, "campaign_id", frame["campaign_id"].astype("string").str.strip().replace("", pd.NA), path
                    ),
                    "user_id": user_id.astype("int64"),
                    "sent_at": _require_parsed(frame, "sent_at", sent, path).astype("datetime64[us]"),
                    "group_name": frame["group_name"].astype("string"),
                    "coupon_code": frame["coupon_code"].astype("string") if "coupon_code" in frame else None,
                }
            )
        )
    combined = pd.concat(frames, ignore_index=True)
    totals = {"rows": len(combined), "added": 0, "updated": 0, "unchanged": 0}
    for day, part in combined.groupby(combined["sent_at"].dt.date):
        target = landing_dir / "coupon_sends" / f"send_date={day}" / "part-0.parquet"
        merged, counts = _merge(None if replace else _read_landed(target), part, SEND_KEY)
        plan.files[target] = as_table(merged.sort_values([*SEND_KEY, "sent_at"], kind="mergesort"))
        for name, value in counts.items():
            totals[name] += value
    return totals


@locked("land coupon sends")
def land_coupon_sends(files: list[Path], landing_dir: Path | None = None, replace: bool = False) -> dict:
    plan = LandingPlan()
    totals = plan_coupon_sends(files, plan, landing_dir or settings().landing_dir, replace)
    plan.commit()
    return totals


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
    plan.commit()
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


SNAPSHOTS_RECORD = "_inbox_snapshots.json"


def landed_inbox_snapshots() -> dict[str, str]:
    path = settings().landing_dir / SNAPSHOTS_RECORD
    return json.loads(path.read_text()) if path.exists() else {}


def record_inbox_snapshots(hashes: dict[str, str]) -> None:
    write_text_atomic(
        json.dumps({**landed_inbox_snapshots(), **hashes}, sort_keys=True), settings().landing_dir / SNAPSHOTS_RECORD
    )


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
    plan.commit()
    summary["events"] = per_day[str(day)]["rows"] if str(day) in per_day else 0
    summary["late_events"] = sum(d["rows"] for d_str, d in per_day.items() if d_str != str(day))
    # The feature build re-processes from here at the latest (late rows may land in an older partition).
    summary["first_changed_day"] = min(plan.changed_days, default=None)
    return summary


def changed_days(per_day: dict[str, dict]) -> list[str]:
    """The event days whose landed partition a plan changes (rows added, updated or moved out)."""
    return sorted(
        d for d, counts in per_day.items() if counts.get("added") or counts.get("updated") or counts.get("moved_out")
    )
