"""Landing the shop's tables: users, products and coupon sends, merged by key.

Consent is never granted back by accident (_settle_consent).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pandas as pd

from ml.config import settings
from ml.errors import LandingError
from ml.ingest.exports import read_table
from ml.ingest.plans import LandingPlan, merge_by_key, read_landed
from ml.privacy.pseudonyms import contact_columns_in, pseudonymise_users, redacted
from ml.storage import as_table
from ml.writer_lock import locked

TABLE_KEYS = {"users": ["user_id"], "products": ["product_id"]}


SEND_KEY = ["campaign_id", "user_id"]


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
    existing = None if replace else read_landed(target)
    sent = raw.columns
    if kind == "users":
        # Contact data is pseudonymised before anything is stored (a users table landed earlier too).
        frame = pseudonymise_users(frame)
        existing = None if existing is None else pseudonymise_users(existing)
        sent = sent.append(pd.Index(["email_hash"] if "email" in sent else []))
    if existing is not None:
        frame = _keep_landed_values_of_absent_columns(frame, existing, sent, TABLE_KEYS[kind])
    if kind == "users":
        sent = frame["consent_updated_at"] if "consent_updated_at" in raw.columns else pd.Series(pd.NaT, frame.index)
        frame = _settle_consent(frame, existing, sent.astype("datetime64[us]"), snapshot_of)
    merged, counts = merge_by_key(existing, frame, TABLE_KEYS[kind])
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
        example = [redacted(value) for value in frame.loc[bad, column].head(3)]  # shapes: it may be contact data
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
        merged, counts = merge_by_key(None if replace else read_landed(target), part, SEND_KEY)
        plan.files[target] = as_table(merged.sort_values([*SEND_KEY, "sent_at"], kind="mergesort"))
        for name, value in counts.items():
            totals[name] += value
    return totals


def plan_landed_contact_data(plan: LandingPlan, landing_dir: Path) -> bool:
    """A users table landed before contact data was pseudonymised (raw email or phone): add it to `plan`
    stored again without them. False when there is none (or the plan rewrites the table anyway)."""
    target = landing_dir / "users" / "users.parquet"
    if target in plan.files or not target.exists() or not contact_columns_in(target):
        return False
    plan.files[target] = as_table(pseudonymise_users(read_landed(target)))
    return True


@locked("land coupon sends")
def land_coupon_sends(files: list[Path], landing_dir: Path | None = None, replace: bool = False) -> dict:
    plan = LandingPlan()
    totals = plan_coupon_sends(files, plan, landing_dir or settings().landing_dir, replace)
    plan.commit()
    return totals
