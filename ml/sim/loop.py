"""The closed loop on the simulated shop: the daily pipeline runs day after day and the shop delivers its coupons.

Each business day D runs the DAG's task functions in the DAG's order, without Airflow: land D (the
simulated shop first simulates D, delivering the send list planned for D), build features as of D + 1,
train when due, score, build segments, plan the send list for D + 1, build the targeting marts. The
analyst snapshot is published once at the end.

Then `realised_vs_truth` compares, per policy arm, the incremental margin measured on the randomised
holdout (matured 7-day windows) with what the simulator's truth says the delivered coupons earned. Only
days the shop simulated after their send list existed are delivered (the loop simulates each day just
before landing it); days simulated ahead, like the inbox days `make run` leaves for the DAG, are not.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from ml.config import settings
from ml.errors import UserFacingError
from ml.progress import progress

log = logging.getLogger(__name__)


def run_day(day: date) -> dict[str, Any]:
    """One business day, in the DAG's order (ml.pipeline.DAILY_STEPS); the snapshot is published at the end.

    The check steps are left out: each `dbt build` of a group already runs the tests that join its models.
    """
    from ml.pipeline import run_day as run_daily_steps

    ran = run_daily_steps(day, source="simulate", skip=("check_features", "check_targeting", "publish"))
    return {
        "business_date": str(day),
        "events": ran["land_day"].get("events"),
        "trained": ran["train"] is not None,
        **ran["target"],
    }


def run_loop(days: int) -> list[dict[str, Any]]:
    """Run `days` business days after the newest landed day; return one summary per day."""
    from ml.warehouse.dbt_runner import dbt_in_this_process
    from ml.warehouse.history import landed_days
    from ml.warehouse.publish import publish_snapshot

    if not (settings().inbox_dir / "shop_spec.json").exists():
        raise UserFacingError("the closed loop needs the simulated shop: run `python -m ml simulate` first")
    landed = landed_days()
    if not landed:
        raise UserFacingError("nothing landed yet: build the history first (python -m ml history)")
    first = landed[-1] + timedelta(days=1)
    results = []
    with dbt_in_this_process():  # three dbt builds a day: no process start and dbt import for each
        for offset in progress(range(days), "closed-loop days", total=days):
            results.append(run_day(first + timedelta(days=offset)))
    publish_snapshot()
    return results


def _true_margins(treated: pd.DataFrame) -> pd.Series:
    """The true incremental margin of each delivered coupon (from the simulator's truth for its send date)."""
    from ml.sim.policy_truth import load_truth, true_effects

    values = []
    for send_date, group in treated.groupby("as_of_date"):
        _, margin = true_effects(group, load_truth(pd.Timestamp(send_date).date()))
        values.append(pd.Series(margin, index=group.index))
    return pd.concat(values) if values else pd.Series(dtype=float)


def realised_vs_truth() -> list[dict[str, Any]]:
    """Per policy arm, over matured 7-day windows: realised incremental margin (95% CI) and the truth.

    The truth is summed over the same treated users the estimate counts: the coupons actually delivered.
    """
    from ml.targeting.holdout_evidence import adjusted_arm_values, arm_increment
    from ml.warehouse.read import connect_read_only

    with connect_read_only() as con:
        outcomes = con.execute(
            """
            select as_of_date, user_id, policy, is_holdout, coupon_code, revenue_7d, coupon_cost_7d, pre_send_revenue
            from int_coupon_target_outcomes where is_matured_7d
            """
        ).df()
    # Only send days the simulated shop delivered: days simulated before their send list existed were not.
    folder = settings().truth_dir / "deliveries"
    delivered = (
        {date.fromisoformat(p.name.split("=", 1)[1]) for p in folder.glob("as_of_date=*")} if folder.exists() else set()
    )
    outcomes = outcomes[pd.to_datetime(outcomes["as_of_date"]).dt.date.isin(delivered)]
    if outcomes.empty:
        return []
    outcomes, adjustment = adjusted_arm_values(outcomes, settings().gross_margin_rate)
    lines = []
    for policy, arm in outcomes.groupby("policy"):
        estimate, variance, treated_rows = arm_increment(arm)
        if not treated_rows:
            continue
        delivered = pd.concat(treated_rows)
        truth = float(_true_margins(delivered).sum())
        half = 1.96 * float(np.sqrt(variance))
        lines.append(
            {
                "policy": policy,
                "send_days": int(delivered["as_of_date"].nunique()),
                "n_treated": int(len(delivered)),
                "n_holdout": int(arm["is_holdout"].sum()),
                "realised_incremental_margin": round(estimate, 2),
                "ci_low": round(estimate - half, 2),
                "ci_high": round(estimate + half, 2),
                "true_incremental_margin": round(truth, 2),
                "truth_within_ci": bool(estimate - half <= truth <= estimate + half),
                # The pre-send spend adjustment's interval width against the unadjusted one's.
                "ci_width_ratio": adjustment[policy]["width_ratio"],
            }
        )
    return lines


def results_table() -> pd.DataFrame:
    """coupon_results pooled per policy and coupon over matured send dates (what the loop prints)."""
    from ml.warehouse.read import connect_read_only

    with connect_read_only() as con:
        return con.execute(
            """
            select policy, coupon_code, count(*) as send_days, sum(n_treated) as treated, sum(n_holdout) as holdout,
                   round(sum(incremental_purchases_7d), 1) as incr_purchases_7d,
                   round(sum(incremental_revenue_7d), 0) as incr_revenue_7d,
                   round(sum(coupon_cost), 0) as coupon_cost,
                   round(sum(incremental_margin_7d), 0) as incr_margin_7d,
                   round(sum(incremental_margin_7d) / nullif(sum(coupon_cost), 0), 2) as return_per_euro_7d
            from coupon_results where is_matured_7d
            group by 1, 2 order by 1, 2
            """
        ).df()
