"""Build the history the models need: land what the inbox holds, then build features over every landed day.

Works the same for your own files (`ml ingest` first, nothing in the inbox) and for the simulated shop,
whose exports wait in the inbox. `keep_last` leaves the newest inbox days unlanded for the daily DAG, so
`make run` shows real DAG runs on fresh data.
"""

from __future__ import annotations

from datetime import date, timedelta

from ml.config import settings
from ml.errors import UserFacingError
from ml.landing import LandingPlan, named_day, plan_coupon_sends, plan_events, plan_inbox_tables
from ml.pipeline import as_of_for
from ml.warehouse import build_features

# The first as-of date is this many days after the first landed day: earlier snapshots see too little.
WARM_UP_DAYS = 28


def inbox_days() -> dict[date, object]:
    """The inbox's daily event exports by day (empty when there are none)."""
    folder = settings().inbox_dir / "events"
    files = sorted(folder.glob("events_*.parquet")) + sorted(folder.glob("events_*.csv"))
    return dict(sorted((named_day(p), p) for p in files if named_day(p)))


def landed_days() -> list[date]:
    folder = settings().landing_dir / "events"
    return sorted(named_day(p) for p in folder.glob("event_date=*") if named_day(p) and any(p.glob("*.parquet")))


def land_inbox(keep_last: int) -> list[date]:
    """Land every inbox day but the last `keep_last` (all or nothing); return the days left for the DAG."""
    cfg = settings()
    days = inbox_days()
    ordered = list(days)
    history = ordered[: max(len(ordered) - keep_last, 0)]
    if not history:
        return ordered
    plan = LandingPlan()
    plan_inbox_tables(plan)
    sends = sorted((cfg.inbox_dir / "coupon_sends").glob("coupon_sends_*"))
    sends = [p for p in sends if named_day(p) and named_day(p) <= history[-1]]
    if sends:
        plan_coupon_sends(sends, plan, cfg.landing_dir)
    plan_events([days[d] for d in history], plan, cfg.landing_dir)
    plan.commit()
    return ordered[len(history) :]


def build_history(keep_last: int = 0, full_refresh: bool = False) -> list[date]:
    """Land the inbox (but its last `keep_last` days), build features for all landed days; return the rest."""
    if keep_last < 0:
        raise UserFacingError(f"--keep-last must be 0 or more, got {keep_last}")
    remaining = land_inbox(keep_last)
    landed = landed_days()
    if not landed:
        raise UserFacingError(
            f"no events landed in {settings().landing_dir / 'events'}: run `python -m ml ingest --events FILE` "
            "for your own files, or `python -m ml simulate` for the synthetic shop"
        )
    span = (landed[-1] - landed[0]).days + 1
    if span <= WARM_UP_DAYS:
        raise UserFacingError(
            f"the landed events cover {span} days ({landed[0]}..{landed[-1]}): need more than {WARM_UP_DAYS} "
            "to build history"
        )
    build_features(landed[0] + timedelta(days=WARM_UP_DAYS), as_of_for(landed[-1]), full_refresh=full_refresh)
    return remaining
