"""Reading a shop's export files (CSV or Parquet) into the landing schema, whatever shape they come in.

Accepted shapes, one row per event:

| shape | columns |
|---|---|
| full event log | event_at, event_type (view, cart, remove_from_cart, purchase, search, favourite), user_id |
| purchase-only log (CRM export) | user_id, amount, and a date: order_date, date or purchased_at |

Optional columns of an event log: product_id, category, price, quantity, session_id, order_id,
coupon_code, event_id; of a purchase log: order_id, product_id, category, coupon_code, event_id.

Times are UTC, or carry an offset that is converted to UTC. A row whose value cannot be parsed is kept with
nulls and its original text in `parse_errors` (dbt quarantines it with the reason). A file that cannot be
landed at all is a `LandingError`: one line that names the file, the problem and the fix.

Events without an `event_id` get one from their content and their position among identical rows of the
same file, so landing the same file again gives the same ids (and changes nothing), while two identical
orders in one file stay two orders.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from ml.config import settings
from ml.errors import LandingError
from ml.privacy.pseudonyms import redacted
from ml.storage import EVENT_SCHEMA

REQUIRED = {
    "events": ["event_at", "event_type", "user_id"],
    "purchases": ["user_id", "amount"],
    "users": ["user_id", "signup_at"],
    "products": ["product_id", "category", "price"],
    "coupon_sends": ["campaign_id", "user_id", "sent_at", "group_name"],
}
PURCHASE_DATE_COLUMNS = ("order_date", "date", "purchased_at")
SUFFIXES = (".csv", ".parquet", ".pq")
# The columns that make an event what it is: its id is derived from them when the file has none.
CONTENT_COLUMNS = [c for c in EVENT_SCHEMA.names if c not in ("event_id", "source_file")]


def read_table(path: Path, kind: str) -> pd.DataFrame:
    """Read a CSV or Parquet file with lower-case column names and check its required columns."""
    if not path.exists():
        raise LandingError(f"{path}: file not found")
    if not path.is_file():  # a FIFO would block the read forever, a device or folder is no export
        raise LandingError(f"{path}: not a regular file; export the data to a file and land that")
    limit = settings().max_file_mb
    if path.stat().st_size > limit * 1024 * 1024:
        raise LandingError(
            f"{path}: {path.stat().st_size / 1024**2:,.0f} MB, over SHOP_MAX_FILE_MB={limit}; it is read whole into "
            "memory: split it into daily files (or raise the limit if this machine has the memory)"
        )
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise LandingError(f"{path}: unsupported file type {path.suffix!r}; export it as .csv or .parquet")
    frame = _read_csv(path) if suffix == ".csv" else _read_parquet(path)
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    if frame.empty:
        raise LandingError(f"{path}: has a header but no rows; nothing to land (export the rows or leave the file out)")
    if kind == "events" and "event_type" not in frame.columns and set(REQUIRED["purchases"]) <= set(frame.columns):
        return _purchases_as_events(frame, path)
    missing = [c for c in REQUIRED[kind] if c not in frame.columns]
    if missing:
        shapes = (
            "an event log needs event_at, event_type, user_id; a purchase log needs user_id, amount, order_date"
            if kind == "events"
            else f"a {kind} file needs {', '.join(REQUIRED[kind])}"
        )
        raise LandingError(
            f"{path}: missing required column(s) {', '.join(missing)} for {kind}; "
            f"found {', '.join(frame.columns) or 'no columns'} ({shapes})"
        )
    return frame


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        with path.open(encoding="utf-8-sig") as handle:
            header = handle.readline().strip()
    except UnicodeDecodeError:
        raise LandingError(f"{path}: not UTF-8 text; re-save the file as UTF-8 CSV") from None
    if not header:
        raise LandingError(f"{path}: the file is empty (no header, no rows)")
    for separator, name in ((";", "semicolon"), ("\t", "tab")):
        if separator in header and "," not in header:
            raise LandingError(
                f"{path}: looks {name}-separated (header {header[:80]!r}); "
                "export it comma-separated with '.' as the decimal point"
            )
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig")
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LandingError(f"{path}: cannot read as CSV ({first}); check quoting and the column count") from None


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pq.read_table(path).to_pandas()
    except Exception as exc:  # pyarrow raises many types for a damaged file
        raise LandingError(f"{path}: cannot read as parquet ({exc}); re-export the file") from None


def _purchases_as_events(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    date_column = next((c for c in PURCHASE_DATE_COLUMNS if c in frame.columns), None)
    if date_column is None:
        raise LandingError(
            f"{path}: a purchase log needs a date column; name it one of {', '.join(PURCHASE_DATE_COLUMNS)}"
        )
    columns = {
        "event_at": frame[date_column],
        "event_type": "purchase",
        "user_id": frame["user_id"],
        "price": frame["amount"],
        "quantity": "1",
    }
    for optional in ("order_id", "product_id", "category", "coupon_code", "event_id"):
        if optional in frame.columns:
            columns[optional] = frame[optional]
    return pd.DataFrame(columns, index=frame.index)


def normalise_events(frame: pd.DataFrame, source: str, path: Path | None = None) -> pd.DataFrame:
    """Cast an events frame to the landing schema; unparseable values become nulls noted in parse_errors."""
    out = pd.DataFrame(index=frame.index)
    errors = pd.Series("", index=frame.index, dtype=object)

    def parse(column: str, parsed: pd.Series) -> pd.Series:
        lost = frame[column].notna() & parsed.isna()
        if lost.any():
            text = frame.loc[lost, column].astype(str)
            text = text[text.str.strip() != ""]
            if len(text) == len(frame) and column in (*REQUIRED["events"], "price"):
                # Not one row can be read: the file's format is wrong, not a few rows.
                raise LandingError(
                    f"{path or source}: no value of {column} can be read (e.g. {redacted(text.iloc[0])!r}); "
                    + _fix_for(column)
                )
            # The value's shape, not its text (it may be contact data): the export in the inbox keeps the text.
            errors.loc[text.index] += column + "=" + text.map(redacted) + "; "
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
                _refuse_ambiguous_dates(raw, path or source)
                parsed = pd.to_datetime(raw, errors="coerce", utc=True, format="mixed").dt.tz_localize(None)
            out[column] = parse(column, parsed).astype("datetime64[us]")
        elif column in ("user_id", "product_id", "quantity"):
            out[column] = parse(column, _whole_numbers(raw))
        elif column == "price":
            out[column] = parse(column, pd.to_numeric(raw, errors="coerce").astype(float))
        else:
            # A blank cell is a missing value (a blank event_id gets a derived one), never an empty string.
            out[column] = raw.astype("string").str.strip().replace("", pd.NA)
    out["event_type"] = out["event_type"].str.lower()
    out["quantity"] = out["quantity"].fillna(1)
    noted = errors[errors != ""]
    out["parse_errors"] = pd.Series(pd.NA, index=frame.index, dtype="string")
    out.loc[noted.index, "parse_errors"] = noted.str.rstrip("; ")
    out["source_file"] = source
    missing_id = out["event_id"].isna()
    if missing_id.any():
        out.loc[missing_id, "event_id"] = derived_event_ids(out.loc[missing_id])
    return out


AMBIGUOUS_DATE = r"^\s*\d{1,2}[/.]\d{1,2}[/.]\d{2,4}"


def _refuse_ambiguous_dates(raw: pd.Series, where: object) -> None:
    """03/01/2026 is March 1st or January 3rd depending on the country: refuse rather than guess."""
    text = raw.dropna().astype(str)
    if text.str.match(AMBIGUOUS_DATE).any():
        example = text[text.str.match(AMBIGUOUS_DATE)].iloc[0]
        raise LandingError(
            f"{where}: dates like {redacted(example)!r} are ambiguous (day/month or month/day); "
            "export ISO dates (2026-03-01)"
        )


def _whole_numbers(raw: pd.Series) -> pd.Series:
    """Integer ids as Int64, exactly (no trip through float, which rounds ids above 2**53); else NA."""
    if pd.api.types.is_integer_dtype(raw):
        return raw.astype("Int64")
    if pd.api.types.is_float_dtype(raw):
        return raw.where(raw == raw.round()).astype("Int64")
    text = raw.astype("string").str.strip()
    text = text.str.replace(r"\.0+$", "", regex=True)  # 17.0 from a spreadsheet is 17
    return pd.to_numeric(text.where(text.str.fullmatch(r"[+-]?\d{1,18}")), errors="coerce").astype("Int64")


def _fix_for(column: str) -> str:
    return {
        "user_id": "user ids must be whole numbers; map your customer keys to integers first",
        "event_at": "times must be ISO dates or timestamps such as 2026-03-01 or 2026-03-01T10:00:00Z",
        "event_type": "event types must be view, cart, remove_from_cart, purchase, search or favourite",
        "price": "amounts and prices must be numbers with '.' as the decimal point",
    }.get(column, "check the column's format")


def row_strings(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """One string per row from the given columns (nulls as empty), built column-wise rather than row by row."""
    parts = [frame[c].astype("string").fillna("") for c in columns]
    return parts[0].str.cat(parts[1:], sep="|")


def content_signature(events: pd.DataFrame) -> pd.Series:
    """One string per row from its normalised content: equal for the same event in CSV or Parquet."""
    return row_strings(events, CONTENT_COLUMNS)


def derived_event_ids(events: pd.DataFrame) -> pd.Series:
    """Content hash plus the row's occurrence among identical rows: stable across re-ingests of a file."""
    content = content_signature(events)
    occurrence = content.groupby(content).cumcount().astype(str)
    keyed = content + "#" + occurrence
    return keyed.map(lambda s: "h" + hashlib.sha1(s.encode()).hexdigest()[:20]).astype("string")


def read_events(path: Path) -> pd.DataFrame:
    """An event file (either shape) as landing-schema rows."""
    return normalise_events(read_table(path, "events"), path.name, path)
