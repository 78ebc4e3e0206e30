"""The daily send list: who gets which coupon, under which policy, and who is held out.

For an as-of date D (coupons go out the morning of D):

1. **Eligible users**: scored on D, with marketing consent, and not contacted in the `contact_cap_days`
   before D: a campaign coupon, a sent target or a holdout draw all count as contacts. A campaign's
   control users stay eligible (the shop's campaigns reach every consenting user); the coupon models
   leave out the controls a send list reached inside their campaign's window (ml.uplift.model.load_campaigns).
2. **Two policy arms** on the same day: every user falls, by a salted hash stable for
   `holdout_days`, into the champion policy's arm or the challenger's (`challenger_arm_share` of the
   users and of the budget). The champion policy is the one the policy gate chose (ml.targeting.policy_gate) from
   realised results; the propensity rules lead until the evidence says otherwise.
3. **A holdout in each arm**: `holdout_share` of users, drawn by another salted hash stable for
   `holdout_days`, are never sent anything while held out. The policy picks those its allocation ranks
   ahead of the first offer the arm's budget could not fund (ml.targeting.allocation.allocate_with_holdout), so
   they are a random sample of whom it treats.
4. **The policies** (ml.targeting.allocation values and allocates both):
   - `uplift`: the `coupon_uplift@champion` model's P(buy in 7 days) and lift per coupon, every coupon
     considered for every user;
   - `propensity`: the rules that came before (lifecycle segment and propensity decile choose one coupon;
     its value is the catalogue's assumed uplift, weighted by churn risk; cost from the redemption rate).

Writes `targets/as_of_date=D/part-0.parquet` (replaced whole on rerun), which dbt reads into
`coupon_targets` and tests (consent, contact cap, one coupon a day, budget, holdout share).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import pyarrow as pa

from ml.config import settings
from ml.day_pins import pin, pins
from ml.errors import ModelError
from ml.storage import write_parquet_atomic
from ml.targeting.allocation import allocate_with_holdout
from ml.targeting.arms import POLICIES, arm_budgets, arm_draws, arm_policies
from ml.targeting.offers import order_values, pinned_uplift_model, policy_offers, uplift_effects
from ml.warehouse.read import connect_read_only, table_names
from ml.writer_lock import locked

TARGETS_SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("policy", pa.string()),
        ("is_holdout", pa.bool_()),
        ("coupon_code", pa.string()),
        ("expected_order_value", pa.float64()),
        ("p_buy_with_coupon", pa.float64()),
        ("estimated_lift", pa.float64()),
        ("expected_cost", pa.float64()),
        ("expected_margin", pa.float64()),
        ("priority_rank", pa.int64()),
        ("reason", pa.string()),
        ("uplift_model_version", pa.string()),
        ("arm_budget", pa.float64()),
    ]
)


def load_eligible(con, as_of: date, with_targets: bool = True) -> pd.DataFrame:
    """Scored, consenting users not contacted in the cap window before `as_of`, with their features.

    `with_targets=False`: only the shop's campaign sends count as contacts, not the pipeline's own send lists
    (what a policy that had run the days on its own would find: ml.sim.policy_truth.own_history)."""
    cfg = settings()
    tables = table_names(con)
    earlier_targets = ""
    if with_targets and "coupon_targets" in tables:
        earlier_targets = "union all select user_id, as_of_date from coupon_targets"
    return con.execute(
        f"""
        with contacts as (
            select user_id, send_date as contact_date from stg_landing__coupon_sends where is_treatment
            {earlier_targets}
        )
        select s.lifecycle_segment, s.propensity_decile, s.churn_risk_tier, s.p_purchase_30d, s.p_churn_30d,
               s.purchase_model_version, f.*
        from user_segments as s
        join user_features as f using (user_id, as_of_date)
        where s.as_of_date = ? and s.is_scored and s.has_marketing_consent
          and not exists (
              select 1 from contacts as c
              where c.user_id = s.user_id and c.contact_date < s.as_of_date
                and c.contact_date >= s.as_of_date - {int(cfg.contact_cap_days)}
          )
        order by s.user_id
        """,
        [as_of],
    ).df()


def reasons(picked: pd.DataFrame, policy: str) -> list[str]:
    return [
        f"{code} ({policy} policy): estimated lift {lift:+.1%} in P(buy within 7 days), expected cost "
        f"{cost:.2f}, expected incremental margin {margin:.2f}"
        for code, lift, cost, margin in zip(
            picked["coupon_code"], picked["lift"], picked["expected_cost"], picked["expected_margin"], strict=True
        )
    ]


def plan_targets(
    users: pd.DataFrame, as_of: date, champion_policy: str, uplift, new_buyer_order_value: float | None = None
) -> pd.DataFrame:
    """Assign arms and holdout, allocate each arm's budget; one row per targeted or held-out user.

    `new_buyer_order_value`: a new buyer's order value, where `users` are not every eligible user (Spark's
    candidates); by default the median over `users`."""
    if users.empty:
        return pd.DataFrame(columns=TARGETS_SCHEMA.names)
    users = users.assign(planned_order_value=order_values(users, new_buyer_order_value))
    ids = users["user_id"].to_numpy()
    policies = arm_policies(champion_policy, uplift is not None)
    challenger, holdout = arm_draws(ids, as_of, policies)
    budgets = arm_budgets(policies)
    frames = []
    for arm, policy in enumerate(policies):
        in_arm = challenger if arm == 1 else ~challenger
        offers = policy_offers(users[in_arm], policy, uplift)
        # The treated users get the arm's budget; the holdout gets whomever that allocation ranked ahead of
        # its first unfunded offer, so it is a random sample of the users the policy treats.
        held_out = offers["user_id"].isin(set(ids[in_arm & holdout])).to_numpy()
        allocated = allocate_with_holdout(offers, held_out, budgets[policy])
        for is_holdout, picked in zip((False, True), allocated, strict=True):
            picked["policy"] = policy
            picked["arm_budget"] = budgets[policy]
            picked["is_holdout"] = is_holdout
            picked["reason"] = [
                ("holdout (control, not sent): " if is_holdout else "") + text for text in reasons(picked, policy)
            ]
            frames.append(picked)
    rows = pd.concat(frames, ignore_index=True).rename(
        columns={"order_value": "expected_order_value", "lift": "estimated_lift"}
    )
    rows["user_id"] = rows["user_id"].astype("int64")
    return rows[TARGETS_SCHEMA.names].sort_values(["policy", "is_holdout", "priority_rank"], ignore_index=True)


@locked("target")
def target_day(as_of: date | None = None) -> dict[str, Any]:
    """Plan the send list for `as_of` (default: the newest segmented date) and write its partition."""
    from ml.targeting.policy_gate import gate_policy

    spark = settings().engine == "spark"
    with connect_read_only() as con:
        if as_of is None:
            as_of = con.execute("select max(as_of_date) from user_segments").fetchone()[0]
            if as_of is None:
                raise ModelError(
                    "user_segments is empty: score and build segments first (python -m ml build --targeting)"
                )
        users = None if spark else load_eligible(con, as_of)
        # A rerun keeps the first run's leader and model version (ml.day_pins): the gate's evidence grows
        # as windows mature, and a send list that changed after the fact would break later days' caps.
        pinned = pins(as_of)
        evidence = (
            {"champion_policy": pinned["policy"], "pinned": True} if "policy" in pinned else gate_policy(con, as_of)
        )
    leader, fallback = evidence["champion_policy"], None
    if spark:  # only the users the budget could reach leave Spark
        from ml.targeting.spark_candidates import candidate_users

        users, eligible, fallback, model, uplift_problem = candidate_users(as_of, pinned, leader)
    else:
        eligible = len(users)
        model, uplift_problem = pinned_uplift_model(pinned, list(users.columns), eligible)
    if model is None:
        leader = "propensity"  # without a coupon effect model there is only one policy to run
    uplift = None if model is None or users.empty else (uplift_effects(model, users), model[1])
    rows = plan_targets(users, as_of, leader, uplift, fallback)
    pin(as_of, policy=leader, uplift_model_version=None if model is None else model[1])
    target = settings().targets_dir / f"as_of_date={as_of}" / "part-0.parquet"
    write_parquet_atomic(rows, target, schema=TARGETS_SCHEMA)
    sent = rows[~rows["is_holdout"].astype(bool)]
    return {
        "as_of_date": str(as_of),
        "eligible_users": eligible,
        **({"candidates": len(users)} if spark else {}),
        "champion_policy": leader,
        **({"uplift_unavailable": uplift_problem} if uplift_problem else {}),
        "policy_evidence": {k: v for k, v in evidence.items() if k != "champion_policy"},
        "sent": {p: int((sent["policy"] == p).sum()) for p in POLICIES},
        "held_out": int(rows["is_holdout"].astype(bool).sum()),
        "spend": round(float(sent["expected_cost"].sum()), 2),
        "path": str(target),
    }
