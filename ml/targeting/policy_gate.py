"""Which targeting policy leads: decided by randomised evidence, never assumed.

Two kinds of randomised evidence value the policies at the planned daily budget:

- **campaign**: the shop's own randomised campaigns, on which every policy is rebuilt out of time and
  valued by a doubly robust estimator with paired differences (ml.targeting.campaign_evaluation). Available from the
  first day a shop has three matured campaigns, whatever the pipeline sent.
- **holdout**: the pipeline's own arms. Both policies run every day, each on its own random share of users
  with a budget in proportion (ml.targeting.plan), and each keeps its own random holdout. For every matured send
  (7-day window landed, `int_coupon_target_outcomes`) a user is worth

      treated: revenue in the 7 days x gross margin rate - the discount actually paid
      holdout: revenue in the 7 days x gross margin rate

  and an arm's realised incremental margin is sum(treated) - n_treated x mean(holdout) over all its matured
  send days (each pick is held out with the same probability, so days pool), on values adjusted by each
  user's pre-send spend (CUPED, cuped_adjusted: the same expectation, a narrower interval). Divided by the arm's planned
  budget over those days, that is its return per euro; times the daily budget, its value at the budget.
  Left out while a holdout has fewer than MIN_HOLDOUT_BUYERS buyers (a handful of orders says little about
  the spread).

**Pooled** by inverse variance (a fixed-effect meta-analysis): both estimate the same quantity, a policy's
value per day at the planned budget, from independent users and days, so each counts by its precision:
the campaigns (thousands of users each, paired) weigh most at first, the holdouts gain weight as send
days accumulate. A policy takes the lead only when the 95% lower bound of its pooled difference to the
leader is above zero **and** the lower bound of its own value is above zero (a policy that is not shown to
earn anything never gets the budget, which keeps a shop whose coupons do nothing from promoting on
noise). The rules go back the same way: the difference's upper bound below zero. A change is an audit row
(model `coupon_policy`) in `model_promotions`; the propensity rules lead until the first decision. Every
targeting day's evidence is a partition of `policy_evaluations` (evaluations_dir/daily/).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml.config import settings
from ml.targeting.holdout_evidence import compare_policies, interval, load_matured_outcomes, pooled_evidence

POLICY_MODEL = "coupon_policy"


DEFAULT_POLICY = "propensity"


def champion_policy(con=None) -> str:
    """The policy the newest coupon_policy audit row names; the propensity rules before any decision."""
    folder = settings().audit_dir / "model_promotions"
    files = sorted(folder.glob("*.parquet")) if folder.exists() else []
    if not files:
        return DEFAULT_POLICY
    rows = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    rows = rows[(rows["model_name"] == POLICY_MODEL) & rows["to_version"].notna()]
    return DEFAULT_POLICY if rows.empty else str(rows.sort_values("changed_at")["to_version"].iloc[-1])


def decide(evidence: dict[str, Any], current: str) -> str:
    """The policy that should lead given the pooled evidence (keeps `current` unless the evidence is clear)."""
    if evidence.get("difference") is None:
        return current
    if current != "uplift" and evidence["ci_low"] > 0:
        value, variance = evidence.get("uplift_value"), evidence.get("uplift_value_variance")
        if value is not None and variance is not None and interval(value, variance)[0] > 0:
            return "uplift"
    if current == "uplift" and evidence["ci_high"] < 0:
        return "propensity"
    return current


def gate_policy(con, as_of) -> dict[str, Any]:
    """Weigh every campaign and holdout evidence known before `as_of`; record a change of leader; keep the day's
    evidence as a `policy_evaluations` partition; return the evidence."""
    from ml.registry.audit import record_audit
    from ml.targeting.campaign_evaluation import campaign_evidence, evaluate_campaigns

    current = champion_policy()
    outcomes = load_matured_outcomes(con, as_of)
    holdout = compare_policies(outcomes) if len(outcomes) else {"difference": None}
    campaigns = evaluate_campaigns(con, as_of)
    campaign = campaign_evidence(campaigns)
    evidence = pooled_evidence(campaign, holdout)
    leader = decide(evidence, current)
    if leader != current:
        reason = (
            f"value at the planned budget, campaigns and holdouts pooled: uplift minus propensity "
            f"{evidence['difference']:+.2f} (95% CI {evidence['ci_low']:+.2f} .. {evidence['ci_high']:+.2f}) "
            f"over evidence before {as_of}"
        )
        record_audit(POLICY_MODEL, "policy_promote", current, leader, reason, _rounded(evidence), actor="policy-gate")
    rows = write_day_evaluations(as_of, leader, campaign, holdout, evidence)
    log_day_evaluations(as_of, rows, campaigns)
    return {"champion_policy": leader, "previous": current, **_rounded({"holdout": holdout, **evidence})}


def _rounded(evidence: dict[str, Any]) -> dict[str, Any]:
    """The evidence for an audit row or a task's result: floats to cents, nested dicts kept."""
    return {
        k: _rounded(v) if isinstance(v, dict) else round(v, 2) if isinstance(v, float) else v
        for k, v in evidence.items()
    }


def evaluation_rows(
    as_of, leader: str, campaign: dict[str, dict[str, float]], holdout: dict[str, Any], pooled: dict[str, Any]
) -> list[dict[str, Any]]:
    """The day's `policy_evaluations` rows: per evidence source and policy, the value and the difference to the
    leader, with 95% intervals (campaign differences are paired on the same users; holdout and pooled are not)."""
    rows = []

    def add(source, policy, value, variance, difference, difference_variance, n_users, n_days):
        low, high = interval(value, variance)
        d_low, d_high = (None, None) if difference is None else interval(difference, difference_variance or 0.0)
        rows.append(
            {
                "evaluation_date": as_of,
                "policy": policy,
                "evidence_source": source,
                "leader_policy": leader,
                "value": value,
                "value_ci_low": low,
                "value_ci_high": high,
                "difference_to_leader": difference,
                "difference_ci_low": d_low,
                "difference_ci_high": d_high,
                "n_users": n_users,
                "n_days": n_days,
            }
        )

    for policy, found in campaign.items():
        to_leader = (found[f"difference_to_{leader}"], found[f"difference_to_{leader}_variance"])
        add(
            "campaign",
            policy,
            found["value"],
            found["value_variance"],
            *to_leader,
            found["n_users"],
            found["campaigns"],
        )
    sign = {"uplift": 1.0, "propensity": -1.0}
    for source, found in (("holdout", holdout), ("pooled", pooled)):
        if found.get("difference") is None:
            continue
        for policy in ("uplift", "propensity"):
            value_key = f"{policy}_value_at_budget" if source == "holdout" else f"{policy}_value"
            if found.get(value_key) is None:
                continue
            difference = 0.0 if policy == leader else sign[policy] * found["difference"]
            variance = 0.0 if policy == leader else found["difference_variance"]
            n_users = found["n_users"][policy] if source == "holdout" else None
            n_days = found["send_days"] if source == "holdout" else None
            add(
                source,
                policy,
                found[value_key],
                found[f"{policy}_value_variance"],
                difference,
                variance,
                n_users,
                n_days,
            )
    return rows


EVALUATION_COLUMNS = [
    "evaluation_date", "policy", "evidence_source", "leader_policy", "value", "value_ci_low", "value_ci_high",
    "difference_to_leader", "difference_ci_low", "difference_ci_high", "n_users", "n_days",
]  # fmt: skip


def write_day_evaluations(as_of, leader, campaign, holdout, pooled) -> pd.DataFrame:
    """Replace the day's partition of the gate's evidence (read by dbt as the source of policy_evaluations)."""
    import pyarrow as pa

    from ml.storage import write_parquet_atomic

    schema = pa.schema(
        [("evaluation_date", pa.date32()), ("policy", pa.string()), ("evidence_source", pa.string()),
         ("leader_policy", pa.string())]
        + [(c, pa.float64()) for c in EVALUATION_COLUMNS[4:10]]
        + [("n_users", pa.int64()), ("n_days", pa.int64())]
    )  # fmt: skip
    rows = pd.DataFrame(evaluation_rows(as_of, leader, campaign, holdout, pooled), columns=EVALUATION_COLUMNS)
    path = settings().evaluations_dir / "daily" / f"as_of_date={as_of}" / "part-0.parquet"
    write_parquet_atomic(rows, path, schema=schema)
    return rows


EXPERIMENT = "shop_coupon_policies"


def log_day_evaluations(as_of, rows: pd.DataFrame, campaigns: pd.DataFrame) -> None:
    """One MLflow run per targeting day: each source's value and difference to the leader, and a plot of them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import mlflow
    from ml.registry.ownership import owner_tags
    from ml.registry.tracking import configure_mlflow, experiment_id

    configure_mlflow()
    with mlflow.start_run(experiment_id=experiment_id(EXPERIMENT), run_name=f"policy_gate-{as_of}", tags=owner_tags()):
        leader = rows["leader_policy"].iloc[0] if len(rows) else champion_policy()
        mlflow.set_tags({"evaluation_date": str(as_of), "leader_policy": leader})
        metrics = {}
        for row in rows.itertuples():
            for name in ("value", "value_ci_low", "value_ci_high", "difference_to_leader", "difference_ci_low"):
                value = getattr(row, name)
                if value is not None and np.isfinite(value):
                    metrics[f"{row.evidence_source}_{row.policy}_{name}"] = float(value)
        mlflow.log_metrics(metrics)
        if len(campaigns):
            mlflow.log_table(
                campaigns.astype({"send_date": str, "propensity_label_date": str}), "campaign_evaluations.json"
            )
        if len(rows):
            fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.5))
            labels = [f"{r.policy} ({r.evidence_source})" for r in rows.itertuples()]
            ax.errorbar(
                rows["value"],
                range(len(rows)),
                xerr=[rows["value"] - rows["value_ci_low"], rows["value_ci_high"] - rows["value"]],
                fmt="o",
                capsize=3,
            )
            ax.axvline(0, color="grey", linestyle="--")
            ax.set_yticks(range(len(rows)), labels)
            ax.set(
                xlabel="incremental margin per day at the planned budget (EUR, 95% interval)",
                title=f"Policies, {as_of}",
            )
            fig.tight_layout()
            mlflow.log_figure(fig, "plots/policy_values.png")
            plt.close(fig)
