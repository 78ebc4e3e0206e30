"""Build the history the models need: land what the inbox holds, then build features over every landed day.

Works the same for your own files (`ml ingest` first, nothing in the inbox) and for the simulated shop,
whose exports wait in the inbox. `keep_last` leaves the newest inbox days unlanded for the daily DAG, so
`make run` shows real DAG runs on fresh data.
"""

from __future__ import annotations

from datetime import date, timedelta

from ml.config import settings
from ml.errors import UserFacingError
from ml.ingest.events import plan_events
from ml.ingest.landing import inbox_checked, plan_inbox_tables
from ml.ingest.plans import LandingPlan, named_day
from ml.ingest.reprocess_mark import clear_mark, read_mark
from ml.ingest.tables import plan_coupon_sends
from ml.progress import progress
from ml.warehouse.builds import build_feature_history
from ml.writer_lock import locked

# The first as-of date is this many days after the first landed day: earlier snapshots see too little.
WARM_UP_DAYS = 28
LAND_BATCH_DAYS = 7
# Users x event days per history batch when SHOP_HISTORY_BATCH_DAYS is unset. dbt needs about 1.2 KB per
# user-day of a batch (200k users x 30 days peaked at 7.0 GB): 3M user-days keep a batch near 3.5 GB.
BATCH_USER_DAYS = 3_000_000
MAX_BATCH_DAYS = 30


def inbox_days() -> dict[date, object]:
    """The inbox's daily event exports by day (empty when there are none)."""
    folder = settings().inbox_dir / "events"
    files = sorted(folder.glob("events_*.parquet")) + sorted(folder.glob("events_*.csv"))
    return dict(sorted((named_day(p), inbox_checked(p)) for p in files if named_day(p)))


def landed_days() -> list[date]:
    folder = settings().landing_dir / "events"
    return sorted(named_day(p) for p in folder.glob("event_date=*") if named_day(p) and any(p.glob("*.parquet")))


def known_users() -> int:
    """How many users the landed files know: the user table's rows, else the distinct ids in the events."""
    import duckdb
    import pyarrow.parquet as pq

    landing = settings().landing_dir
    tables = sorted((landing / "users").glob("*.parquet"))
    if tables:
        return sum(pq.ParquetFile(path).metadata.num_rows for path in tables)
    if not any((landing / "events").glob("event_date=*/*.parquet")):
        return 0
    with duckdb.connect() as con:
        glob = landing / "events" / "event_date=*" / "*.parquet"
        return con.execute(f"select count(distinct user_id) from read_parquet('{glob}')").fetchall()[0][0]


def history_batch_days() -> int:
    """Event days per dbt run of the history build: SHOP_HISTORY_BATCH_DAYS, else sized to the shop's users."""
    configured = settings().history_batch_days
    if configured:
        return configured
    return max(1, min(MAX_BATCH_DAYS, BATCH_USER_DAYS // max(known_users(), 1)))


@locked("ml history (landing)")
def land_inbox(keep_last: int) -> list[date]:
    """Land every inbox day but the last `keep_last`; return the days left for the DAG.

    A week of exports at a time, so memory is a week's, not the history's. Each week lands whole or not
    at all; after a failure, running it again lands the rest (a day landed twice is merged, not doubled).
    """
    cfg = settings()
    days = inbox_days()
    ordered = list(days)
    history = ordered[: max(len(ordered) - keep_last, 0)]
    if not history:
        return ordered
    plan = LandingPlan()
    plan_inbox_tables(plan, history[-1])
    sends = sorted((cfg.inbox_dir / "coupon_sends").glob("coupon_sends_*"))
    sends = [inbox_checked(p) for p in sends if named_day(p) and named_day(p) <= history[-1]]
    if sends:
        plan_coupon_sends(sends, plan, cfg.landing_dir)
    plan.commit()
    weeks = [history[i : i + LAND_BATCH_DAYS] for i in range(0, len(history), LAND_BATCH_DAYS)]
    for week in progress(weeks, f"landing the inbox, {LAND_BATCH_DAYS} days at a time", every=0):
        plan = LandingPlan()
        plan_events([days[d] for d in week], plan, cfg.landing_dir)
        plan.commit()
    return ordered[len(history) :]


def build_history(keep_last: int = 0) -> list[date]:
    """Land the inbox (but its last `keep_last` days), rebuild every table over all landed days; return the rest."""
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
    mark = read_mark()
    build_feature_history(
        landed[0], landed[-1], as_of_start=landed[0] + timedelta(days=WARM_UP_DAYS), batch_days=history_batch_days()
    )
    clear_mark(mark and mark["id"])  # every landed day was re-processed
    return remaining


def history_built() -> bool:
    """True once a history build finished: labels exist (the build's last step), not just a warehouse file."""
    from ml.warehouse.read import connect_read_only, table_names, warehouse_exists

    if not warehouse_exists():
        return False
    with connect_read_only() as con:
        if "training_labels" not in table_names(con):
            return False
        return con.execute("select count(*) from training_labels").fetchone()[0] > 0


def bootstrap(keep_last: int = 1, users: int = 20_000, days: int = 180, today: date | None = None) -> dict:
    """A deployment's first start (compose's `shop-init`, `make test-deploy`): build history once.

    A warehouse whose history build finished is left alone, so restarting the stack costs nothing; one that
    failed half-way (out of memory, a failed check) is built again.
    With SHOP_SOURCE=simulate and an empty inbox, a synthetic shop ending yesterday (UTC, the scheduler's
    clock) is simulated first. The newest `keep_last` inbox days are left for the scheduler's first runs.
    """
    from datetime import UTC, datetime

    cfg = settings()
    if history_built():
        return {"bootstrapped": False, "reason": "history already built", "landed_days": len(landed_days())}
    simulated = None
    if not inbox_days():
        if cfg.source != "simulate":
            raise UserFacingError(
                f"no daily exports in {cfg.inbox_dir / 'events'} to build history from: put the shop's exports "
                "there (events_YYYY-MM-DD.parquet or .csv), or set SHOP_SOURCE=simulate for the demo shop"
            )
        from ml.sim.run import simulate
        from ml.sim.shop import ShopSpec

        last = (today or datetime.now(UTC).date()) - timedelta(days=1)
        simulated = simulate(ShopSpec(seed=cfg.seed, users=users, days=days, start=last - timedelta(days=days - 1)))
    remaining = build_history(keep_last)
    return {
        "bootstrapped": True,
        "simulated": simulated,
        "landed_days": len(landed_days()),
        "left_for_the_dag": [str(d) for d in remaining],
    }
