"""Build the history the models need: land every inbox day but the last few and build their features.

The last days are left for the daily DAG, so `make run` shows real DAG runs on fresh data.
"""

from __future__ import annotations

from datetime import date, timedelta

from ml.config import settings
from ml.errors import UserFacingError
from ml.landing import DATE_IN_NAME, land_coupon_sends, land_events, land_table
from ml.pipeline import as_of_for
from ml.warehouse import build_features

# The first as-of date is this many days after the first landed day: earlier snapshots see too little.
WARM_UP_DAYS = 28


def inbox_days() -> dict[date, object]:
    folder = settings().inbox_dir / "events"
    files = sorted(folder.glob("events_*.parquet")) + sorted(folder.glob("events_*.csv"))
    days = {date.fromisoformat(DATE_IN_NAME.search(p.name).group(1)): p for p in files if DATE_IN_NAME.search(p.name)}
    if not days:
        raise UserFacingError(f"no event files in {folder}: run `python -m ml simulate` or drop exports there")
    return dict(sorted(days.items()))


def build_history(keep_last: int = 3) -> list[date]:
    """Land and build all inbox days except the last `keep_last`; return those remaining days."""
    cfg = settings()
    days = inbox_days()
    ordered = list(days)
    if len(ordered) <= keep_last + WARM_UP_DAYS:
        raise UserFacingError(
            f"only {len(ordered)} days in the inbox: need more than {keep_last + WARM_UP_DAYS} to build history"
        )
    if keep_last < 0:
        raise UserFacingError(f"--keep-last must be 0 or more, got {keep_last}")
    history = ordered[: len(ordered) - keep_last]
    land_table(cfg.inbox_dir / "users.parquet", "users")
    land_table(cfg.inbox_dir / "products.parquet", "products")
    sends = sorted((cfg.inbox_dir / "coupon_sends").glob("coupon_sends_*"))
    sends = [p for p in sends if date.fromisoformat(DATE_IN_NAME.search(p.name).group(1)) <= history[-1]]
    if sends:
        land_coupon_sends(sends)
    land_events([days[d] for d in history])
    build_features(history[0] + timedelta(days=WARM_UP_DAYS), as_of_for(history[-1]))
    return ordered[len(history) :]
