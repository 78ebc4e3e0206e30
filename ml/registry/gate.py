"""The one promotion gate every registered model passes, and its thresholds in one table.

A new version becomes `@champion` only if its test score clears the model's absolute floor and beats the
current champion re-scored on the same test data (a champion that can no longer be scored, NaN, cannot
defend); otherwise it becomes `@challenger`. Either way the decision is an audit row (`model_promotions`).
The propensity and churn models are judged on test AUC (ml/propensity/train.py), the coupon effect model on Qini
(ml/uplift/train.py). The targeting policies have their own gate on randomised evidence (ml/targeting/policy_gate.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ml.registry.aliases import promote, set_challenger
from ml.registry.audit import record_audit


@dataclass(frozen=True)
class Rule:
    metric: str  # how the score reads in the audit trail
    floor: float
    floor_included: bool  # True: a score equal to the floor passes
    digits: int  # decimals the audit trail shows


RULES = {
    "purchase_propensity": Rule("test AUC", 0.65, floor_included=True, digits=4),
    "churn_risk": Rule("test AUC", 0.60, floor_included=True, digits=4),
    # A coupon model that ranks users no better than chance (Qini 0) would spend the budget at random.
    "coupon_uplift": Rule("test Qini", 0.0, floor_included=False, digits=5),
}


def decide(
    name: str,
    version: str,
    score: float,
    champion: str | None,
    champion_score: float | None,
    candidate: str,
    tested_on: str,
    evidence: dict,
) -> str:
    """Promote `version` of `name` or make it the challenger; "promoted" or "challenger".

    `candidate` names the flavour or learner, `tested_on` the test data (a date, a campaign) in the audit row.
    """
    rule = RULES[name]
    shown = f"{rule.metric} {score:.{rule.digits}f}"
    trained = f" (trained: {evidence['trained_because']})" if evidence.get("trained_because") else ""
    clears = score >= rule.floor if rule.floor_included else score > rule.floor
    defends = champion_score is not None and not math.isnan(champion_score) and champion_score >= score
    if clears and not defends:
        against = "no champion yet"
        if champion is not None:
            against = f"champion v{champion} {rule.metric} {champion_score:.{rule.digits}f}"
        reason = f"{candidate} {shown} on {tested_on} beats {against}{trained}"
        promote(name, version, reason, evidence, action="auto_promote", actor="training-gate")
        return "promoted"
    why = (
        f"{'below' if rule.floor_included else 'not above'} the floor {rule.floor}"
        if not clears
        else f"does not beat champion v{champion} {rule.metric} {champion_score:.{rule.digits}f}"
    )
    set_challenger(name, version)
    record_audit(
        name, "challenger", champion, version, f"{candidate} {shown} {why}{trained}", evidence, actor="training-gate"
    )
    return "challenger"
