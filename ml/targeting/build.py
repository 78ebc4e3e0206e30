"""The targeting build: segments (dbt), the send list (Python) and the targeting marts (dbt) for a day."""

from __future__ import annotations

from datetime import date

from ml.warehouse.builds import day_vars
from ml.warehouse.dbt_runner import run_dbt
from ml.writer_lock import locked


@locked("dbt build (segments)")
def build_segments(as_of: date, reprocess_from: date | None = None) -> str:
    """`dbt build` of user_segments for one as-of date (scores must exist)."""
    return run_dbt(["build", "--select", "tag:segments"], day_vars(as_of, reprocess_from))


@locked("dbt build (targeting)")
def build_targeting(as_of: date, plan: bool = True, reprocess_from: date | None = None) -> str:
    """Segments, the send list (ml.targeting.plan) and the targeting marts for one as-of date (scores must exist).

    `plan=False` only runs the dbt part after the send list (what the DAG's last dbt group does). The coupon
    outcomes are rebuilt for the send dates whose windows reach `reprocess_from` (the day's feature build's).
    """
    if plan:
        from ml.targeting.plan import target_day

        build_segments(as_of, reprocess_from)
        target_day(as_of)
    return run_dbt(["build", "--select", "tag:targeting"], day_vars(as_of, reprocess_from))
