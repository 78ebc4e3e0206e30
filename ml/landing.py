"""Landing: shop files (from the simulator or your own) become one Parquet partition per day.

Landing keeps every row. Values that cannot be parsed are kept as nulls with the original text in
`parse_errors`, so dbt staging can send the row to quarantine with a reason. A file that cannot be read
at all, or lacks a required column, is a `LandingError` naming the file; nothing is written for it.

Event file schema (CSV or Parquet), one row per event:

| column | required | meaning |
|---|---|---|
| event_at | yes | event time (UTC, or with an offset that is converted to UTC) |
| event_type | yes | view, cart, remove_from_cart or purchase |
| user_id | yes | integer user id |
| product_id, category, price | no | the product seen, carted or bought; price per unit |
| quantity | no | units bought (default 1) |
| session_id, order_id, coupon_code, event_id | no | event_id defaults to a hash of the row |

A purchase-only log (columns user_id, amount and one of order_date/date/purchased_at) is accepted too:
each row becomes a purchase event.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import uuid
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ml.config import settings
from ml.errors import LandingError
from ml.progress import progress

EVENT_TYPES = ("view", "cart", "remove_from_cart", "purchase")
EVENT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_at", pa.timestamp("us")),
        ("event_type", pa.string()),
        ("user_id", pa.int64()),
        ("product_id", pa.int64()),
        ("category", pa.string()),
        ("price", pa.float64()),
        ("quantity", pa.int64()),
        ("session_id", pa.string()),
        ("order_id", pa.string()),
        ("coupon_code", pa.string()),
        ("parse_errors", pa.string()),
        ("source_file", pa.string()),
    ]
)
REQUIRED = {
    "events": ["event_at", "event_type", "user_id"],
    "purchases": ["user_id", "amount"],
    "users": ["user_id", "signup_at"],
    "products": ["product_id", "category", "price"],
    "coupon_sends": ["campaign_id", "user_id", "sent_at", "group_name"],
}
PURCHASE_DATE_COLUMNS = ("order_date", "date", "purchased_at")
DATE_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")


def write_parquet_atomic(frame: pd.DataFrame | pa.Table, path: Path, schema: pa.Schema | None = None) -> Path:
    """Write to a temporary file beside `path`, then rename over it: readers see the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_table(path: Path, kind: str) -> pd.DataFrame:
    """Read a CSV or Parquet file as text-typed columns and check its required columns."""
    if not path.exists():
        raise LandingError(f"{path}: file not found")
    try:
        if path.suffix.lower() == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        elif path.suffix.lower() in (".parquet", ".pq"):
            frame = pq.read_table(path).to_pandas()
        else:
            raise LandingError(f"{path}: unsupported file type {path.suffix!r} (use .csv or .parquet)")
    except LandingError:
        raise
    except Exception as exc:  # pyarrow and pandas raise many types for a damaged file
        raise LandingError(f"{path}: cannot read as {path.suffix.lstrip('.')}: {exc}") from exc
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    if kind == "events" and "event_type" not in frame.columns and set(REQUIRED["purchases"]) <= set(frame.columns):
        return _purchases_as_events(frame, path)
    missing = [c for c in REQUIRED[kind] if c not in frame.columns]
    if missing:
        raise LandingError(
            f"{path}: missing required column(s) {', '.join(missing)} for {kind}; "
            f"found {', '.join(frame.columns) or 'no columns'}"
        )
    return frame


def _purchases_as_events(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    date_column = next((c for c in PURCHASE_DATE_COLUMNS if c in frame.columns), None)
    if date_column is None:
        raise LandingError(f"{path}: a purchase log needs a date column ({', '.join(PURCHASE_DATE_COLUMNS)})")
    out = pd.DataFrame(
        {
            "event_at": frame[date_column],
            "event_type": "purchase",
            "user_id": frame["user_id"],
            "price": frame["amount"],
            "quantity": "1",
            "order_id": frame.get("order_id"),
        }
    )
    return out


def normalise_events(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Cast an events frame to the landing schema; unparseable values become nulls noted in parse_errors."""
    out = pd.DataFrame(index=frame.index)
    errors = pd.Series("", index=frame.index, dtype=object)

    def parse(column: str, parsed: pd.Series) -> pd.Series:
        # Only rows that lost their value can be errors: look at their text alone (typed Parquet has none).
        lost = frame[column].notna() & parsed.isna()
        if lost.any():
            text = frame.loc[lost, column].astype(str)
            text = text[text.str.strip() != ""]
            errors.loc[text.index] += column + "=" + text.str.slice(0, 60) + "; "
        return parsed

    for column in EVENT_SCHEMA.names:
        if column in ("parse_errors", "source_file"):
            continue
        if column not in frame.columns:
            out[column] = None
            continue
        raw = frame[column]
        if column == "event_at":
            if pd.api.types.is_datetime64_any_dtype(raw):
                parsed = raw.dt.tz_convert("UTC").dt.tz_localize(None) if raw.dt.tz is not None else raw
            else:
                parsed = pd.to_datetime(raw, errors="coerce", utc=True, format="mixed").dt.tz_localize(None)
            out[column] = parse(column, parsed)
        elif column in ("user_id", "product_id", "quantity"):
            numbers = raw if pd.api.types.is_integer_dtype(raw) else pd.to_numeric(raw, errors="coerce")
            whole = numbers.where(numbers == numbers.round())
            out[column] = parse(column, whole).astype("Int64")
        elif column == "price":
            out[column] = parse(column, pd.to_numeric(raw, errors="coerce").astype(float))
        else:
            out[column] = raw.astype("string").str.strip()
    out["event_type"] = out["event_type"].str.lower()
    out["quantity"] = out["quantity"].fillna(1)
    noted = errors[errors != ""]
    out["parse_errors"] = pd.Series(pd.NA, index=frame.index, dtype="string")
    out.loc[noted.index, "parse_errors"] = noted.str.rstrip("; ")
    out["source_file"] = source
    missing_id = out["event_id"].isna()
    if missing_id.any():
        # A content hash: the same row ingested twice gets the same id and is caught as a duplicate.
        content = frame.loc[missing_id].astype(str).agg("|".join, axis=1)
        out.loc[missing_id, "event_id"] = content.map(lambda s: "h" + hashlib.sha1(s.encode()).hexdigest()[:20])
    return out


def expand(pattern: str) -> list[Path]:
    """Paths for a file, a folder of files or a glob; an empty match is an error naming the pattern."""
    path = Path(pattern)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".csv", ".parquet", ".pq"))
    else:
        files = [Path(p) for p in sorted(glob.glob(pattern))] or ([path] if path.exists() else [])
    if not files:
        raise LandingError(f"{pattern}: no such file or no files match")
    return files


def land_events(files: list[Path], landing_dir: Path | None = None) -> dict[str, int]:
    """Land event files: rows are grouped by event day and each day's partition is replaced whole.

    A file named with a date (events_2026-03-01.csv) is that day's export: all its rows land in that
    day's partition, so rows timestamped outside the day reach quarantine instead of another day.
    Every file is read and checked before anything is written.
    """
    landing_dir = landing_dir or settings().landing_dir
    frames = []
    for path in progress(files, "reading event files", total=len(files)):
        raw = read_table(path, "events")
        events = normalise_events(raw, path.name)
        named = DATE_IN_NAME.search(path.name)
        if named:
            day = pd.Series(date.fromisoformat(named.group(1)), index=events.index)
        else:
            day = events["event_at"].dt.date
            # Rows without a readable time stay with the file's most common day.
            day = day.fillna(day.mode().iloc[0] if day.notna().any() else None)
            if day.isna().any():
                raise LandingError(f"{path}: no row has a readable event_at, so the file has no day to land in")
        frames.append(events.assign(_day=day))
    combined = pd.concat(frames, ignore_index=True)
    counts = {}
    for day, part in combined.groupby("_day", sort=True):
        target = landing_dir / "events" / f"event_date={day}" / "part-0.parquet"
        write_parquet_atomic(part.drop(columns="_day"), target, schema=EVENT_SCHEMA)
        counts[str(day)] = len(part)
    return counts


def land_table(path: Path, kind: str, landing_dir: Path | None = None) -> int:
    """Land a whole-table snapshot (users, products): checked, then replaced atomically."""
    landing_dir = landing_dir or settings().landing_dir
    frame = read_table(path, kind)
    if kind == "users":
        frame = _cast_users(frame, path)
    elif kind == "products":
        frame = _cast_products(frame, path)
    write_parquet_atomic(frame, landing_dir / kind / f"{kind}.parquet")
    return len(frame)


def _require_parsed(frame: pd.DataFrame, column: str, parsed: pd.Series, path: Path) -> pd.Series:
    bad = frame[column].notna() & parsed.isna()
    if bad.any() or parsed.isna().any():
        example = frame.loc[bad | parsed.isna(), column].head(3).tolist()
        raise LandingError(
            f"{path}: column {column} has {int((bad | parsed.isna()).sum())} unreadable value(s), e.g. {example}"
        )
    return parsed


def _cast_users(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    out = frame.copy()
    out["user_id"] = _require_parsed(frame, "user_id", pd.to_numeric(frame["user_id"], errors="coerce"), path).astype(
        "int64"
    )
    signup = pd.to_datetime(frame["signup_at"], errors="coerce", utc=True, format="mixed").dt.tz_localize(None)
    out["signup_at"] = _require_parsed(frame, "signup_at", signup, path)
    if out["user_id"].duplicated().any():
        raise LandingError(f"{path}: user_id is not unique ({int(out['user_id'].duplicated().sum())} repeats)")
    consent = frame.get("marketing_consent", pd.Series(False, index=frame.index))
    out["marketing_consent"] = consent.astype(str).str.lower().isin(["true", "1", "yes", "y"])
    for column in ("country", "device", "email", "phone"):
        out[column] = frame[column].astype(object) if column in frame.columns else None
    return out[["user_id", "signup_at", "country", "device", "marketing_consent", "email", "phone"]]


def _cast_products(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "product_id": _require_parsed(
                frame, "product_id", pd.to_numeric(frame["product_id"], errors="coerce"), path
            ).astype("int64"),
            "category": frame["category"].astype(str),
            "brand": frame["brand"].astype(object) if "brand" in frame.columns else None,
            "price": _require_parsed(frame, "price", pd.to_numeric(frame["price"], errors="coerce"), path).astype(
                float
            ),
        }
    )
    return out


def land_coupon_sends(files: list[Path], landing_dir: Path | None = None) -> int:
    """Land campaign send files, one partition per send day."""
    landing_dir = landing_dir or settings().landing_dir
    frames = []
    for path in files:
        frame = read_table(path, "coupon_sends")
        sent = pd.to_datetime(frame["sent_at"], errors="coerce", utc=True, format="mixed").dt.tz_localize(None)
        frames.append(
            pd.DataFrame(
                {
                    "campaign_id": frame["campaign_id"].astype(str),
                    "user_id": _require_parsed(
                        frame, "user_id", pd.to_numeric(frame["user_id"], errors="coerce"), path
                    ).astype("int64"),
                    "sent_at": _require_parsed(frame, "sent_at", sent, path),
                    "group_name": frame["group_name"].astype(str),
                    "coupon_code": frame["coupon_code"].astype(object) if "coupon_code" in frame.columns else None,
                }
            )
        )
    combined = pd.concat(frames, ignore_index=True)
    for day, part in combined.groupby(combined["sent_at"].dt.date):
        write_parquet_atomic(part, landing_dir / "coupon_sends" / f"send_date={day}" / "part-0.parquet")
    return len(combined)


def ingest(
    events: str, users: str | None = None, products: str | None = None, coupon_sends: str | None = None
) -> dict[str, object]:
    """`python -m ml ingest`: land your own files (or the simulator's exports) in one go."""
    summary: dict[str, object] = {}
    if users:
        summary["users"] = land_table(Path(users), "users")
    if products:
        summary["products"] = land_table(Path(products), "products")
    if coupon_sends:
        summary["coupon_sends"] = land_coupon_sends(expand(coupon_sends))
    days = land_events(expand(events))
    summary["event_days"] = len(days)
    summary["events"] = sum(days.values())
    summary["first_day"], summary["last_day"] = min(days), max(days)
    return summary


def inbox_file(folder: Path, stem: str, day: date) -> Path | None:
    for suffix in (".parquet", ".csv"):
        candidate = folder / f"{stem}_{day}{suffix}"
        if candidate.exists():
            return candidate
    return None


def land_day(day: date, simulate_missing: bool = False) -> dict[str, object]:
    """Land one day from the inbox (the DAG's first task). Simulates the day first if asked and missing."""
    cfg = settings()
    events = inbox_file(cfg.inbox_dir / "events", "events", day)
    if events is None and simulate_missing:
        from ml.simulate import extend_shop

        extend_shop(day)
        events = inbox_file(cfg.inbox_dir / "events", "events", day)
    if events is None:
        raise LandingError(
            f"no event file for {day}: expected {cfg.inbox_dir / 'events' / f'events_{day}.parquet'} (or .csv)"
        )
    summary: dict[str, object] = {"day": str(day)}
    for kind in ("users", "products"):
        snapshot = cfg.inbox_dir / f"{kind}.parquet"
        if snapshot.exists():
            summary[kind] = land_table(snapshot, kind)
        elif not (cfg.landing_dir / kind / f"{kind}.parquet").exists():
            raise LandingError(f"{snapshot}: file not found, and no {kind} table has been landed before")
    sends = inbox_file(cfg.inbox_dir / "coupon_sends", "coupon_sends", day)
    if sends is not None:
        summary["coupon_sends"] = land_coupon_sends([sends])
    summary["events"] = land_events([events])[str(day)]
    return summary
