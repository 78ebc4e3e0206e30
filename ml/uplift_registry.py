"""MLflow side of the coupon effect models: one run per candidate, registration as `coupon_uplift`, the gate.

The gate mirrors the propensity models' (ml.train.gate): the best new version by mean Qini on the test
campaign becomes `@champion` only if its Qini is above zero and above the current champion's, re-scored
on the same campaign; otherwise it is `@challenger`. Every decision is an audit row in model_promotions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml.registry import (
    UPLIFT_MODEL,
    champion_version,
    client,
    experiment_id,
    promote,
    record_audit,
    set_challenger,
)
from ml.uplift import EXPERIMENT, CouponUpliftModel, UpliftPyfunc, evaluate_effects

QINI_FLOOR = 0.0


def log_candidate(
    model: CouponUpliftModel,
    learner: str,
    metrics: dict[str, float],
    figure,
    deciles: pd.DataFrame,
    train: pd.DataFrame,
    test: pd.DataFrame,
    x_test: pd.DataFrame,
) -> dict[str, Any]:
    """Log one fitted candidate as an MLflow run and register it; return its version and test Qini."""
    import matplotlib.pyplot as plt

    import mlflow
    from ml.registry import owner_tags
    from ml.train import _requirements, code_version

    test_date = str(test["send_date"].iloc[0])
    with mlflow.start_run(
        experiment_id=experiment_id(EXPERIMENT), run_name=f"{UPLIFT_MODEL}-{learner}-{test_date}", tags=owner_tags()
    ) as run:
        mlflow.set_tags({"model_name": UPLIFT_MODEL, "learner": learner, "code_version": code_version()})
        mlflow.log_params(
            {
                "learner": learner,
                "outcome": "any clean purchase in [send_date, send_date + 7 days)",
                "train_campaigns": ",".join(sorted({str(d) for d in train["send_date"]})),
                "test_campaign_date": test_date,
                "train_rows": len(train),
                "test_rows": len(test),
                "coupons": ",".join(model.codes),
                "qini_definition": "Radcliffe Qini, area to random, both axes as shares of users (ml.uplift_metrics)",
                "seed": model.seed,
            }
        )
        mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        mlflow.log_figure(figure, "plots/uplift_by_decile.png")
        mlflow.log_table(deciles, "uplift_by_decile.json")
        plt.close("all")
        sample = x_test.head(200)
        signature = mlflow.models.infer_signature(sample, model.predict_effects(sample))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=UpliftPyfunc(model),
            signature=signature,
            input_example=x_test.head(5),
            registered_model_name=UPLIFT_MODEL,
            pip_requirements=_requirements(),
        )
    version = str(info.registered_model_version)
    tags = {"learner": learner, "test_date": test_date, "run_id": run.info.run_id}
    tags.update({f"test_{k}": f"{v:.5f}" for k, v in metrics.items() if k.startswith("mean_") and np.isfinite(v)})
    for key, value in tags.items():
        client().set_model_version_tag(UPLIFT_MODEL, version, key, value)
    return {"version": version, "learner": learner, "qini": metrics["mean_qini"], "metrics": metrics}


def champion_qini_on(test: pd.DataFrame, x_test: pd.DataFrame) -> tuple[str | None, float | None]:
    """The current champion's mean Qini re-scored on this test campaign; (None, None) when there is none."""
    from ml.registry import load_champion

    if champion_version(UPLIFT_MODEL) is None:
        return None, None
    model, version = load_champion(UPLIFT_MODEL)
    expected = [c.name for c in model.metadata.get_input_schema().inputs]
    if any(c not in x_test.columns for c in expected):
        return version, float("nan")  # its features are gone: it cannot defend
    effects = model.predict(x_test[expected])
    return version, evaluate_effects(effects, test, n_boot=0, seed=0)["mean_qini"]


def gate_uplift(candidates: list[dict], x_test: pd.DataFrame, test: pd.DataFrame) -> dict[str, Any]:
    best = max(candidates, key=lambda c: c["qini"])
    champion, champion_qini = champion_qini_on(test, x_test)
    test_date = str(test["send_date"].iloc[0])
    evidence = {
        "test_qini": round(best["qini"], 5),
        "test_qini_ci_low": round(best["metrics"]["mean_qini_ci_low"], 5),
        "test_campaign_date": test_date,
        "champion_version": champion,
        "champion_test_qini": None if champion_qini is None else round(champion_qini, 5),
    }
    beats = champion_qini is None or np.isnan(champion_qini) or best["qini"] > champion_qini
    if best["qini"] > QINI_FLOOR and beats:
        against = "no champion yet" if champion is None else f"champion v{champion} Qini {champion_qini:.5f}"
        reason = f"{best['learner']} test Qini {best['qini']:.5f} on campaign {test_date} beats {against}"
        promote(UPLIFT_MODEL, best["version"], reason, evidence, action="auto_promote", actor="training-gate")
        decision = "promoted"
    else:
        why = f"Qini not above {QINI_FLOOR}" if best["qini"] <= QINI_FLOOR else f"does not beat champion v{champion}"
        set_challenger(UPLIFT_MODEL, best["version"])
        record_audit(
            UPLIFT_MODEL,
            "challenger",
            champion,
            best["version"],
            f"{best['learner']} test Qini {best['qini']:.5f} {why}",
            evidence,
            actor="training-gate",
        )
        decision = "challenger"
    return {
        "model": UPLIFT_MODEL,
        "decision": decision,
        "candidate_version": best["version"],
        "learner": best["learner"],
        "test_qini": round(best["qini"], 5),
        "qini_by_learner": {c["learner"]: round(c["qini"], 5) for c in candidates},
        "champion_before": champion,
        "champion_after": champion_version(UPLIFT_MODEL),
    }
