"""Off-policy evaluation: what each targeting policy would have earned on the shop's randomised campaigns.

A randomised campaign sends each consenting user either nothing (control) or one coupon drawn at random,
with shares the campaign's own rows reveal: P(control) = share of controls, P(coupon c) = share of users
sent c. That is exactly the evidence off-policy evaluation needs. For every matured campaign sent on S and
every candidate policy (`uplift`, `propensity`, `random`, `none`), the policy is rebuilt as it would have
run on S, from models and data available before S only (out of time):

- `uplift`: a coupon effect model of the champion's learner trained on the campaigns whose window closed
  before S (ml.uplift.model), allocated under the daily budget and rules (ml.targeting.allocation);
- `propensity`: the lifecycle and propensity rules, with purchase and churn probabilities from logistic
  models trained on the newest labels matured before S (a stand-in for that day's champions);
- `random`: random coupons to random users until the planned cost fills the budget;
- `none`: send nothing (value 0 by definition: every value is incremental over sending nothing).

**Estimator: doubly robust (AIPW).** A user's outcome is Y = 7-day revenue x gross margin rate - the
discount paid. For each action a (nothing or coupon c) the score

    G(u, a) = m_a(x_u) + 1[A_u = a] / P(a) x (Y_u - m_a(x_u))

is unbiased for the user's outcome under a whatever the outcome model m is, because P(a) is known from
the randomisation; m (the out-of-time coupon model's P(buy) x order value, margin and discount) only
reduces the variance. Plain inverse-propensity weighting is the case m = 0: unbiased too, but each
coupon reaches only ~1/8 of users, so its variance is several times larger. A policy's incremental value
is the sum over its picks of G(u, pick) - G(u, nothing). Policies are compared by **paired** differences
on the same campaign users (per-user differences of scores), which cancels most of the outcome noise;
intervals are normal approximations from the per-user variance (sums of independent users), and over
several campaigns the per-campaign values are averaged (their variances add).
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa

from ml.config import COUPON_WINDOW_DAYS, LABEL_HORIZON_DAYS, settings
from ml.errors import ModelError
from ml.propensity.datasets import model_inputs
from ml.storage import write_parquet_atomic
from ml.targeting.allocation import allocate, catalogue, random_picks
from ml.targeting.off_policy import (
    NO_COUPON,
    POLICIES,
    assignment_shares,
    doubly_robust_scores,
    outcome_margin,
    policy_increments,
    predicted_margins,
    summed,
)

log = logging.getLogger(__name__)


# How many of the newest matured campaigns the gate reads: older ones describe a shop that has moved on,
# and each costs a model fit the first time it is evaluated.
CAMPAIGNS_EVALUATED = 6


EVALUATIONS_SCHEMA = pa.schema(
    [
        ("send_date", pa.date32()),
        ("policy", pa.string()),
        ("n_users", pa.int64()),
        ("n_targeted", pa.int64()),
        ("planned_spend", pa.float64()),
        ("value", pa.float64()),
        ("value_variance", pa.float64()),
        ("difference_to_propensity", pa.float64()),
        ("difference_to_propensity_variance", pa.float64()),
        ("difference_to_uplift", pa.float64()),
        ("difference_to_uplift_variance", pa.float64()),
        ("uplift_train_campaigns", pa.string()),
        ("propensity_label_date", pa.date32()),
    ]
)


def evaluation_rows(send_date: date, increments: dict[str, np.ndarray], picks: dict[str, pd.DataFrame]) -> list[dict]:
    """One row per policy: value at the budget and paired differences to the two policies that can lead."""
    rows = []
    for policy in POLICIES:
        value, variance = summed(increments[policy])
        row = {
            "send_date": send_date,
            "policy": policy,
            "n_users": len(increments[policy]),
            "n_targeted": int(len(picks.get(policy, ()))),
            "planned_spend": float(picks[policy]["expected_cost"].sum()) if policy in picks else 0.0,
            "value": value,
            "value_variance": variance,
        }
        for other in ("propensity", "uplift"):
            difference, difference_variance = summed(increments[policy] - increments[other])
            row[f"difference_to_{other}"] = difference
            row[f"difference_to_{other}_variance"] = difference_variance
        rows.append(row)
    return rows


LIFECYCLE_INPUTS = ("days_since_last_activity", "tenure_days", "count_purchases_90d", "days_since_last_purchase")


def lifecycle_segments(features: pd.DataFrame) -> pd.Series:
    """The lifecycle rule of dbt's lifecycle_segment macro, on a user_features frame (tested to agree with the mart)."""
    # Plain floats (nulls as NaN, every comparison with NaN false), as the SQL's case compares nulls.
    number = {c: pd.to_numeric(features[c], errors="coerce").astype(float) for c in LIFECYCLE_INPUTS}
    active = number["days_since_last_activity"]
    conditions = [
        (active.isna() | (active > 180)).to_numpy(bool),
        (number["tenure_days"] < 30).to_numpy(bool),
        ((number["count_purchases_90d"] >= 3) & (number["days_since_last_purchase"] <= 30)).to_numpy(bool),
        (active <= 30).to_numpy(bool),
        (active <= 90).to_numpy(bool),
    ]
    labels = ["lost", "new", "loyal", "active", "at_risk"]
    return pd.Series(np.select(conditions, labels, "hibernating"), index=features.index)


def propensity_inputs(con, users: pd.DataFrame, columns: list[str], send_date: date) -> tuple[pd.DataFrame, date]:
    """Segments, propensity deciles and churn probabilities as the rules need them, from labels before S."""
    from ml.propensity.datasets import TASKS, load_labelled
    from ml.propensity.estimators import fit_logistic
    from ml.warehouse.read import matured_dates

    known = [d for d in matured_dates(con) if d + timedelta(days=LABEL_HORIZON_DAYS) <= send_date]
    if not known:
        raise ModelError(f"no training labels matured before the campaign of {send_date}")
    label_date = known[-1]
    x = model_inputs(users, columns)
    probabilities = {}
    for task in TASKS:
        labelled = load_labelled(con, task, [label_date])
        if labelled["label"].nunique() < 2:
            raise ModelError(f"{task}: labels of {label_date} have one class; cannot stand in for a model")
        model = fit_logistic(model_inputs(labelled, columns), labelled["label"], settings().seed)
        probabilities[task] = model.predict_proba(x)[:, 1]
    from ml.propensity.datasets import in_population

    p_churn = np.where(in_population(users, "churn_30d").to_numpy(), probabilities["churn_30d"], np.nan)
    ranks = pd.Series(probabilities["purchase_30d"]).rank(method="first").to_numpy()
    return users.assign(
        lifecycle_segment=lifecycle_segments(users).to_numpy(),
        propensity_decile=np.ceil(ranks * 10 / len(ranks)).astype(int),
        p_purchase_30d=probabilities["purchase_30d"],
        p_churn_30d=p_churn,
    ), label_date


def policy_picks(users: pd.DataFrame, effects: pd.DataFrame, send_date: date) -> dict[str, pd.DataFrame]:
    """Whom each policy would have sent which coupon on `send_date`, under the daily budget and rules.

    `users` needs the features, `planned_order_value` and the propensity rules' inputs (lifecycle_segment,
    propensity_decile, p_churn_30d); `effects` is an uplift model's table for the same rows.
    """
    from ml.targeting.offers import propensity_offers, uplift_offers

    budget = settings().daily_coupon_budget
    return {
        "uplift": allocate(uplift_offers(users, effects), budget),
        "propensity": allocate(propensity_offers(users), budget),
        "random": random_picks(users, send_date, budget),
    }


def value_policies(
    campaign: pd.DataFrame, effects: pd.DataFrame, order_value: np.ndarray, picks: dict[str, pd.DataFrame]
) -> list[dict]:
    """Doubly robust value of each policy's picks on one campaign (rows: evaluation_rows)."""
    margin_rate = settings().gross_margin_rate
    actions = campaign["sent_coupon"].where(campaign["is_treatment"].astype(bool), NO_COUPON).fillna(NO_COUPON)
    predicted = predicted_margins(effects, order_value, margin_rate)
    known = [NO_COUPON, *(c for c in catalogue()["coupon_code"] if c in predicted)]
    scores = doubly_robust_scores(
        actions, outcome_margin(campaign, margin_rate), predicted[known], assignment_shares(actions)
    )
    ids = campaign["user_id"].to_numpy()
    increments = {policy: policy_increments(scores, ids, chosen) for policy, chosen in picks.items()}
    increments[NO_COUPON] = np.zeros(len(ids))
    return evaluation_rows(campaign["send_date"].iloc[0], increments, picks)


def evaluate_campaign(con, frame: pd.DataFrame, columns: list[str], send_date: date, learner: str) -> list[dict]:
    """Every policy's doubly robust value on the campaign of `send_date`, built from what was known before it."""
    from ml.targeting.offers import order_values
    from ml.uplift.model import CouponUpliftModel, campaign_split

    window_end = pd.to_datetime(frame["send_date"]) + pd.Timedelta(days=COUPON_WINDOW_DAYS)
    closed = frame[(window_end <= pd.Timestamp(send_date)).to_numpy()]
    train, _ = campaign_split(pd.concat([closed, frame[frame["send_date"] == send_date]]), send_date)
    campaign = frame[frame["send_date"] == send_date].reset_index(drop=True)
    model = CouponUpliftModel(learner, settings().seed).fit(
        model_inputs(train, columns), train["sent_coupon"], train["has_purchase_7d"]
    )
    effects = model.predict_effects(model_inputs(campaign, columns))
    users, label_date = propensity_inputs(
        con, campaign.assign(planned_order_value=order_values(campaign)), columns, send_date
    )
    picks = policy_picks(users, effects, send_date)
    rows = value_policies(campaign, effects, users["planned_order_value"].to_numpy(float), picks)
    trained_on = ",".join(sorted({str(d) for d in train["send_date"]}))
    return [{**row, "uplift_train_campaigns": trained_on, "propensity_label_date": label_date} for row in rows]


def _campaign_file(send_date: date):
    return settings().evaluations_dir / "campaigns" / f"send_date={send_date}" / "part-0.parquet"


def uplift_learner() -> str:
    """The learner the coupon_uplift champion uses (what the uplift policy runs), t_xgboost before any."""
    from ml.registry.aliases import UPLIFT_MODEL, champion_version
    from ml.registry.tracking import client

    version = champion_version(UPLIFT_MODEL)
    if version is None:
        return "t_xgboost"
    return client().get_model_version(UPLIFT_MODEL, version).tags.get("learner", "t_xgboost")


def evaluate_campaigns(con, as_of: date, learner: str | None = None) -> pd.DataFrame:
    """The evaluations of the newest CAMPAIGNS_EVALUATED campaigns whose window closed before `as_of`.

    Each campaign is evaluated once and kept (evaluations_dir/campaigns/): its evaluation reads only what
    was known before it and its own outcomes, so it does not change as later days land. A campaign that
    cannot be evaluated (too few earlier campaigns to train on, no matured labels) is skipped.
    """
    from ml.uplift.model import load_campaigns
    from ml.warehouse.read import table_names

    if "campaign_outcomes" not in table_names(con):
        return pd.DataFrame(columns=EVALUATIONS_SCHEMA.names)
    sends = [
        r[0]
        for r in con.execute(
            "select distinct send_date from campaign_outcomes where send_date + ? <= ? order by 1",
            [COUPON_WINDOW_DAYS, as_of],
        ).fetchall()
    ]
    wanted = sends[-CAMPAIGNS_EVALUATED:]
    frames, frame, columns = [], None, None
    for send_date in wanted:
        path = _campaign_file(send_date)
        if not path.exists():
            if frame is None:
                frame, columns = load_campaigns(con)
                learner = learner or uplift_learner()
            try:
                rows = evaluate_campaign(con, frame, columns, send_date, learner)
            except ModelError as exc:
                log.info("campaign %s not evaluated: %s", send_date, exc)
                continue
            write_parquet_atomic(pd.DataFrame(rows), path, schema=EVALUATIONS_SCHEMA)
        frames.append(pd.read_parquet(path))
    if not frames:
        return pd.DataFrame(columns=EVALUATIONS_SCHEMA.names)
    return pd.concat(frames, ignore_index=True)


def campaign_evidence(evaluations: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per policy: the mean value per campaign day at the budget and the mean paired differences, with variances.

    A campaign is one day's send, so the mean over campaigns is a value per day at the daily budget; the
    campaigns are independent draws, so the variance of the mean is the sum of their variances over k^2.
    """
    evidence: dict[str, dict[str, float]] = {}
    for policy, rows in evaluations.groupby("policy"):
        k = len(rows)
        evidence[str(policy)] = {
            "campaigns": k,
            "n_users": int(rows["n_users"].sum()),
            "value": float(rows["value"].mean()),
            "value_variance": float(rows["value_variance"].sum() / k**2),
            **{
                f"difference_to_{other}{suffix}": float(
                    rows[f"difference_to_{other}{suffix}"].sum() / k ** (2 if suffix else 1)
                )
                for other in ("propensity", "uplift")
                for suffix in ("", "_variance")
            },
        }
    return evidence
