"""The send list's users on Spark (SHOP_ENGINE=spark): only those the day's budget could reach leave Spark.

The allocation funds only upgrades at or above its funding cutoff (ml.targeting.allocation.funding_cutoff: the
best upgrades worth FUNDING_REACH budgets). So:

1. Spark selects the eligible users as `ml.targeting.plan.load_eligible` does (scored, consenting, not
   contacted within the cap) and takes the median known order value over all of them (a new buyer's value).
2. In the executors, each user's offers under their arm's policy are valued (the coupon effect model shipped
   as scoring ships the champions) and turned into the allocation's upgrades, through the same functions.
3. Each arm's cutoff comes from the best treated upgrades, collected with a growing top-k (only as many as
   reach it; all of them only where the budget would fund everyone); the driver collects the users of either
   arm, treated or held out, with an upgrade at or above it. The cutoff is taken a little low (a slightly
   larger reach, a slightly lower rate) so last-bit float differences between the executors and the driver
   can only add users, never leave one out.
4. `ml.targeting.plan.plan_targets` plans on those users as on every user: the upgrades it reads are all among
   theirs, so the rows are the ones planning on every eligible user gives (make test-spark compares them
   with a budget small enough that the cutoff drops most users).
"""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.config import settings
from ml.targeting.allocation import catalogue, funding_cutoff, upgrade_steps
from ml.targeting.arms import arm_budgets, arm_draws, arm_policies
from ml.targeting.offers import order_values, pinned_uplift_model, policy_offers, uplift_effects
from ml.warehouse.spark_session import has_rows, spark_session, spark_table

SEGMENT_COLUMNS = [
    "lifecycle_segment",
    "propensity_decile",
    "churn_risk_tier",
    "p_purchase_30d",
    "p_churn_30d",
    "purchase_model_version",
]
UPGRADE_TYPES = {
    "user_id": "bigint",
    "arm": "int",
    "is_holdout": "boolean",
    "step": "bigint",
    "efficiency": "double",
    "delta_cost": "double",
}
FIRST_TOP_K = 4096  # upgrades read for a cutoff, times 4 until they reach it
FLOAT_SLACK = 1e-9  # relative: executors and driver may differ in the last bits of a prediction
REACH_SLACK = 1e-6  # relative, on the budget: where the costs' running sum crosses the reach may move too


def eligible_users(as_of: date):
    """The day's eligible users with their segments and features (ml.targeting.plan.load_eligible on Spark)."""
    from pyspark.sql import functions as F

    spark_session()  # before any column expression: a task of its own starts none before this
    day = F.lit(as_of)
    segments = (
        spark_table("user_segments")
        .where((F.col("as_of_date") == day) & F.col("is_scored") & F.col("has_marketing_consent"))
        .select("user_id", "as_of_date", *SEGMENT_COLUMNS)
    )
    features = spark_table("user_features").where(F.col("as_of_date") == day)
    contacts = (
        spark_table("stg_landing__coupon_sends")
        .where(F.col("is_treatment"))
        .select("user_id", F.col("send_date").alias("contact_date"))
    )
    if has_rows("coupon_targets"):
        targets = spark_table("coupon_targets").select("user_id", F.col("as_of_date").alias("contact_date"))
        contacts = contacts.unionByName(targets)
    recent = contacts.where(
        (F.col("contact_date") < day) & (F.col("contact_date") >= F.date_sub(day, int(settings().contact_cap_days)))
    )
    return segments.join(features, ["user_id", "as_of_date"]).join(recent.select("user_id"), "user_id", "left_anti")


def candidate_users(as_of: date, pinned: dict, leader: str) -> tuple[pd.DataFrame, int, float, Any, str | None]:
    """(the users the budget could reach, how many were eligible, the new buyers' order value, the day's coupon
    effect model or None, why it is unavailable or None)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    eligible = eligible_users(as_of).persist(StorageLevel.MEMORY_AND_DISK)
    upgrades = None
    try:
        n_eligible = eligible.count()
        model, problem = pinned_uplift_model(pinned, eligible.columns, n_eligible)
        policies = arm_policies(leader if model is not None else "propensity", model is not None)
        median = eligible.agg(F.expr("percentile(avg_order_value_lifetime, 0.5)")).first()[0]
        fallback = 50.0 if median is None else float(median)
        with tempfile.TemporaryDirectory(prefix="shop-models-") as shipped:
            upgrades = offer_upgrades(eligible, as_of, policies, model, fallback, Path(shipped))
            upgrades = upgrades.persist(StorageLevel.MEMORY_AND_DISK)
            reach = None
            for arm, budget in enumerate(arm_budgets(policies).values()):
                treated = upgrades.where((F.col("arm") == arm) & ~F.col("is_holdout"))
                above = F.col("efficiency") >= F.lit(lenient(arm_cutoff(treated, budget)))
                in_reach = (F.col("arm") == arm) & above
                reach = in_reach if reach is None else reach | in_reach
            wanted = upgrades.where(reach).select("user_id").distinct()
            users = eligible.join(wanted, "user_id", "left_semi").orderBy("user_id").toPandas()
    finally:
        if upgrades is not None:
            upgrades.unpersist()
        eligible.unpersist()
    return users, n_eligible, fallback, model, problem


def offer_upgrades(eligible, as_of: date, policies: list[str], model, fallback: float, folder: Path):
    """Every eligible user's allocation upgrades under their arm's policy, computed in the executors."""
    from ml.propensity.spark_scoring import schema, ship_models, shipped_models
    from ml.registry.aliases import UPLIFT_MODEL

    cfg, cat = settings(), catalogue()  # read here: the executors' environment is not the driver's
    models = {} if model is None else ship_models({"uplift": model}, folder, names={"uplift": UPLIFT_MODEL})

    def upgrades(batches):
        ready = shipped_models(models) if models else {}
        for users in batches:
            users = users.assign(planned_order_value=order_values(users, fallback))
            ids = users["user_id"].to_numpy()
            challenger, holdout = arm_draws(ids, as_of, policies, cfg)
            for arm, policy in enumerate(policies):
                in_arm = challenger if arm == 1 else ~challenger
                part = users[in_arm]
                if part.empty:
                    continue
                uplift = (uplift_effects(ready["uplift"], part), ready["uplift"][1]) if policy == "uplift" else None
                steps = upgrade_steps(policy_offers(part, policy, uplift, cat, cfg.gross_margin_rate))
                yield pd.DataFrame(
                    {
                        "user_id": steps["user_id"].to_numpy("int64"),
                        "arm": np.full(len(steps), arm, "int32"),
                        "is_holdout": np.isin(steps["user_id"].to_numpy(), ids[in_arm & holdout]),
                        "step": steps["step"].to_numpy("int64"),
                        "efficiency": steps["efficiency"].to_numpy(float),
                        "delta_cost": steps["delta_cost"].to_numpy(float),
                    }
                )

    return eligible.mapInPandas(upgrades, schema(UPGRADE_TYPES))


def arm_cutoff(treated, budget: float) -> float:
    """The arm's funding cutoff from its best treated upgrades, read FIRST_TOP_K, then 4x more, at a time."""
    from pyspark.sql import functions as F

    k = FIRST_TOP_K
    while True:
        best = treated.orderBy(F.desc("efficiency"), "user_id", "step").limit(k).toPandas()
        cutoff = funding_cutoff(best, budget, slack=REACH_SLACK)
        if cutoff > float("-inf") or len(best) < k:
            return cutoff
        k *= 4


def lenient(cutoff: float) -> float:
    return cutoff - FLOAT_SLACK * max(1.0, abs(cutoff)) if np.isfinite(cutoff) else cutoff
