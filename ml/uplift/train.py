"""The coupon effect models' training job: fit each learner (ml.uplift.model), one MLflow run per candidate,
registration as `coupon_uplift`, and the promotion gate (ml.registry.gate) on the test campaign's mean Qini,
the current champion re-scored on the same campaign.

Which learner is put forward is decided on more than the newest campaign: each is also tested out of time on
up to SELECTION_CAMPAIGNS - 1 campaigns before it (each trained on the campaigns before that one), and its
Qini averaged over them all. The default learner (DEFAULT_LEARNER, the best measured against the truth) is
put forward unless another ranks better with confidence: the 95% lower bound of their paired Qini difference
(the same bootstrap resamples of each campaign's users for both) above zero. The learners' Qinis differ by
less than their noise: on the default shop the newest campaign alone ranked the T-learner first and three
campaigns the logistic T-learner, which earn 18% and 10% less true margin than the offset learner
(docs/coupons.md). A default that learnt no effect at all (every lift 0: on a small shop its shift trees
find too few treated buyers to grow) gives way to the best of the others.
"""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio

from ml.config import COUPON_WINDOW_DAYS, settings
from ml.errors import ModelError
from ml.privacy.examples import synthetic_examples
from ml.propensity.datasets import model_inputs
from ml.registry.aliases import UPLIFT_MODEL, champion_version
from ml.registry.gate import decide
from ml.registry.tracking import client, experiment_id
from ml.registry.vetting import UPLIFT_ARTIFACT, UPLIFT_FILE
from ml.uplift.metrics import qini_coefficient, uplift_by_decile_figure
from ml.uplift.model import (
    DEFAULT_LEARNER,
    EXPERIMENT,
    LEARNERS,
    CouponUpliftModel,
    campaign_split,
    evaluate_effects,
    lift_column,
    load_campaigns,
    pooled_deciles,
)
from ml.warehouse.read import connect_read_only

# How many of the newest matured campaigns the learners are compared on (each tested on its own, trained on
# the campaigns before it); the newest is also the one the champion is re-scored on.
SELECTION_CAMPAIGNS = 3
SELECTION_DRAWS = 200


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
    from ml.propensity.train import code_version
    from ml.registry.aliases import model_requirements
    from ml.registry.ownership import owner_tags

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
                "qini_definition": "Radcliffe Qini, area to random, both axes as shares of users (ml.uplift.metrics)",
                "seed": model.seed,
            }
        )
        mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        mlflow.log_figure(figure, "plots/uplift_by_decile.png")
        mlflow.log_table(deciles, "uplift_by_decile.json")
        plt.close("all")
        sample = x_test.head(200)
        signature = mlflow.models.infer_signature(sample, model.predict_effects(sample))
        with tempfile.TemporaryDirectory() as folder:
            saved = Path(folder) / UPLIFT_FILE
            sio.dump(model, saved)  # skops, not pickle: loading it runs no code (ml.registry.vetting)
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(Path(__file__).with_name("mlflow_model.py")),
                artifacts={UPLIFT_ARTIFACT: str(saved)},
                signature=signature,
                input_example=synthetic_examples(x_test),
                registered_model_name=UPLIFT_MODEL,
                pip_requirements=model_requirements(),
            )
    version = str(info.registered_model_version)
    tags = {"learner": learner, "test_date": test_date, "run_id": run.info.run_id}
    tags.update({f"test_{k}": f"{v:.5f}" for k, v in metrics.items() if k.startswith("mean_") and np.isfinite(v)})
    for key, value in tags.items():
        client().set_model_version_tag(UPLIFT_MODEL, version, key, value)
    return {"version": version, "learner": learner, "qini": metrics["mean_qini"], "metrics": metrics}


def champion_qini_on(test: pd.DataFrame, x_test: pd.DataFrame) -> tuple[str | None, float | None]:
    """The current champion's mean Qini re-scored on this test campaign; (None, None) when there is none."""
    from ml.registry.aliases import load_champion

    if champion_version(UPLIFT_MODEL) is None:
        return None, None
    try:
        model, version = load_champion(UPLIFT_MODEL)
    except ModelError:  # a champion the pipeline refuses to load (ml.registry.vetting) cannot defend
        return champion_version(UPLIFT_MODEL), float("nan")
    expected = [c.name for c in model.metadata.get_input_schema().inputs]
    if any(c not in x_test.columns for c in expected):
        return version, float("nan")  # its features are gone: it cannot defend
    effects = model.predict(x_test[expected])
    return version, evaluate_effects(effects, test, n_boot=0, seed=0)["mean_qini"]


def gate_uplift(
    candidates: list[dict], x_test: pd.DataFrame, test: pd.DataFrame, because: str = "asked"
) -> dict[str, Any]:
    best = put_forward(candidates)
    champion, champion_qini = champion_qini_on(test, x_test)
    test_date = str(test["send_date"].iloc[0])
    evidence = {
        "test_qini": round(best["qini"], 5),
        "test_qini_ci_low": round(best["metrics"]["mean_qini_ci_low"], 5),
        "selection_qini": round(best["selection_qini"], 5),
        "test_campaign_date": test_date,
        "champion_version": champion,
        "champion_test_qini": None if champion_qini is None else round(champion_qini, 5),
        "trained_because": because,
    }
    decision = decide(
        UPLIFT_MODEL,
        best["version"],
        best["qini"],
        champion,
        champion_qini,
        best["learner"],
        f"campaign {test_date}",
        evidence,
    )
    return {
        "model": UPLIFT_MODEL,
        "decision": decision,
        "candidate_version": best["version"],
        "learner": best["learner"],
        "test_qini": round(best["qini"], 5),
        "qini_by_learner": {c["learner"]: round(c["qini"], 5) for c in candidates},
        "selection_qini_by_learner": {c["learner"]: round(c["selection_qini"], 5) for c in candidates},
        "selection_campaigns": int(best["metrics"]["selection_campaigns"]),
        "champion_before": champion,
        "champion_after": champion_version(UPLIFT_MODEL),
    }


def train_uplift(
    test_date: date | None = None, n_boot: int = 200, before: date | None = None, because: str = "asked"
) -> dict[str, Any]:
    """Fit, log, register and gate the coupon effect models; then run the policy gate.

    `before`: use only campaigns whose outcome window closed by then (a backfill's view of the past).
    `because`: why it trains, for the audit rows.
    """
    from ml.registry.ownership import fail_orphaned_runs
    from ml.registry.tracking import configure_mlflow

    configure_mlflow()
    fail_orphaned_runs()
    seed = settings().seed
    with connect_read_only() as con:
        frame, columns = load_campaigns(con)
    if before is not None:
        window_end = pd.to_datetime(frame["send_date"]) + pd.Timedelta(days=COUPON_WINDOW_DAYS)
        frame = frame[(window_end <= pd.Timestamp(before)).to_numpy()]
    train, test = campaign_split(frame, test_date)
    x_train, x_test = model_inputs(train, columns), model_inputs(test, columns)
    earlier = selection_splits(frame, columns, test["send_date"].iloc[0])
    candidates = []
    for learner in LEARNERS:
        model = CouponUpliftModel(learner, seed).fit(x_train, train["sent_coupon"], train["has_purchase_7d"])
        effects = model.predict_effects(x_test)
        metrics = evaluate_effects(effects, test, n_boot, seed)
        tested = [(effects, test), *(earlier_effects(learner, seed, split) for split in earlier)]
        qinis = [metrics["mean_qini"], *(evaluate_effects(e, t, 0, seed)["mean_qini"] for e, t in tested[1:])]
        metrics["selection_qini"] = float(np.mean(qinis))
        metrics["selection_campaigns"] = float(len(tested))
        deciles = pooled_deciles(effects, test)
        figure = uplift_by_decile_figure(
            deciles, f"coupon_uplift ({learner}), test campaign {test['send_date'].iloc[0]}"
        )
        candidate = log_candidate(model, learner, metrics, figure, deciles, train, test, x_test)
        draws = np.mean([qini_draws(e, t, seed + k) for k, (e, t) in enumerate(tested)], axis=0)
        learnt = bool(np.any(effects.filter(like="lift_").to_numpy() != 0))
        candidates.append(
            {**candidate, "selection_qini": metrics["selection_qini"], "qini_draws": draws, "learnt_effects": learnt}
        )
    return gate_uplift(candidates, x_test, test, because)


def selection_splits(frame: pd.DataFrame, columns: list[str], test_date: date) -> list[tuple]:
    """(x_train, train, x_test, test) for each of the SELECTION_CAMPAIGNS - 1 campaigns before `test_date` that
    has enough earlier campaigns to train on: the learners' out-of-time comparison beyond the newest one."""
    earlier = sorted(d for d in frame["send_date"].unique() if d < test_date)
    dates = earlier[len(earlier) - min(SELECTION_CAMPAIGNS - 1, len(earlier)) :]
    splits = []
    for day in dates:
        try:
            train, test = campaign_split(frame[frame["send_date"] <= day], day)
        except ModelError:
            continue  # too few campaigns before it to train on
        splits.append((model_inputs(train, columns), train, model_inputs(test, columns), test))
    return splits


def earlier_effects(learner: str, seed: int, split: tuple) -> tuple[pd.DataFrame, pd.DataFrame]:
    x_train, train, x_test, test = split
    model = CouponUpliftModel(learner, seed).fit(x_train, train["sent_coupon"], train["has_purchase_7d"])
    return model.predict_effects(x_test), test


def qini_draws(effects: pd.DataFrame, test: pd.DataFrame, seed: int) -> np.ndarray:
    """The campaign's mean Qini over its coupons on SELECTION_DRAWS bootstrap resamples of its users. The
    resamples depend on the seed and the campaign only, so two learners' draws pair up."""
    rng = np.random.default_rng(seed)
    sent = test["sent_coupon"].to_numpy(dtype=object)
    control = test["sent_coupon"].isna().to_numpy()
    outcome = test["has_purchase_7d"].to_numpy(dtype=float)
    codes = [c for c in sorted(test["sent_coupon"].dropna().unique()) if lift_column(c) in effects]
    draws = np.empty(SELECTION_DRAWS)
    for i in range(SELECTION_DRAWS):
        rows = rng.integers(0, len(test), len(test))
        qinis = []
        for code in codes:
            keep = rows[control[rows] | (sent[rows] == code)]
            qinis.append(qini_coefficient(effects[lift_column(code)].to_numpy()[keep], ~control[keep], outcome[keep]))
        draws[i] = np.mean(qinis)
    return draws


def put_forward(candidates: list[dict]) -> dict:
    """The default learner's candidate, unless others rank better with confidence (the 95% lower bound of their
    paired Qini difference to it above zero): then the best of those by mean Qini. A default that learnt no
    effect (`learnt_effects` false) gives way to the best of the others that did."""
    default = next(c for c in candidates if c["learner"] == DEFAULT_LEARNER)
    others = [c for c in candidates if c is not default and c["learnt_effects"]]
    if not default["learnt_effects"] and others:
        return max(others, key=lambda c: c["selection_qini"])
    better = [c for c in others if np.quantile(c["qini_draws"] - default["qini_draws"], 0.025) > 0]
    return max(better, key=lambda c: c["selection_qini"]) if better else default
