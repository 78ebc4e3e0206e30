"""Training, registration, the promotion gate, manual promote/rollback and scoring, on real MLflow stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from ml.errors import ModelError
from ml.registry.aliases import MODEL_NAMES, champion_version, list_versions
from ml.registry.tracking import client

EXPECTED_METRICS = [
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "lift_top_decile",
    "capture_top_decile",
    "precision",
    "recall",
    "f1",
]
EXPECTED_PLOTS = [
    "contributions.png",
    "roc_curve.png",
    "precision_recall_curve.png",
    "calibration.png",
    "gains_by_decile.png",
    "feature_importance.png",
]


def _audit(shop) -> pd.DataFrame:
    return pd.read_parquet(shop.data / "audit" / "model_promotions").sort_values("changed_at")


def test_training_logs_runs_registers_every_family_and_crowns_the_best_as_champion(trained_shop, shop_copy):
    import mlflow
    from ml.config import MODEL_FLAVOURS

    shop = shop_copy(trained_shop)
    rows = list_versions()
    for name in MODEL_NAMES.values():
        versions = [r for r in rows if r["model"] == name]
        assert sorted(r["flavour"] for r in versions) == sorted(MODEL_FLAVOURS)
        champion = [r for r in versions if "champion" in r["aliases"]]
        assert len(champion) == 1 and float(champion[0]["test_roc_auc"]) >= 0.65
    runs = mlflow.search_runs(experiment_names=["shop_behaviour_models"])
    for name in MODEL_NAMES.values():
        # The family with the best validation AUC went to the gate (the first training has no champion to beat).
        ours = runs[runs["tags.model_name"] == name]
        best = ours.loc[ours["metrics.valid_roc_auc"].idxmax(), "tags.flavour"]
        assert [r["flavour"] for r in rows if r["model"] == name and "champion" in r["aliases"]] == [best]
    assert len(runs) == 2 * len(MODEL_FLAVOURS)
    for prefix in ("valid", "test"):
        for metric in EXPECTED_METRICS:
            assert runs[f"metrics.{prefix}_{metric}"].notna().all(), metric
    assert (runs["params.test_date"] > runs["params.validation_date"]).all()
    assert (runs["params.validation_date"] > runs["params.train_dates"].str[-10:]).all()
    for run_id in runs["run_id"]:
        artifacts = {a.path for a in client().list_artifacts(run_id, "plots")}
        assert artifacts == {f"plots/{p}" for p in EXPECTED_PLOTS}
    model = mlflow.pyfunc.load_model("models:/purchase_propensity@champion")
    assert model.metadata.signature is not None and model.metadata.saved_input_example_info is not None
    audit = _audit(shop)
    assert set(audit["action"]) >= {"auto_promote"} and set(audit["changed_by"]) == {"training-gate"}


def test_a_deliberately_worse_model_is_registered_but_not_promoted(trained_shop, shop_copy):
    from ml.propensity.datasets import choose_split, feature_columns, load_labelled
    from ml.propensity.train import train_task
    from ml.warehouse.read import connect_read_only, matured_dates

    shop = shop_copy(trained_shop)
    champion_before = champion_version("purchase_propensity")
    with connect_read_only() as con:
        split = choose_split(matured_dates(con))
        columns = feature_columns(con)
        parts = {
            part: load_labelled(con, "purchase_30d", dates)
            for part, dates in (
                ("train", split.train_dates),
                ("valid", [split.validation_date]),
                ("test", [split.test_date]),
            )
        }
    # Shuffled training labels: the model learns noise.
    parts["train"]["label"] = np.random.default_rng(0).permutation(parts["train"]["label"].to_numpy())
    result = train_task("purchase_30d", parts, split, columns)
    assert result["decision"] == "challenger"
    assert champion_version("purchase_propensity") == champion_before
    challenger = client().get_model_version_by_alias("purchase_propensity", "challenger")
    assert str(challenger.version) == result["candidate_version"]
    last = _audit(shop).iloc[-1]
    assert last["action"] == "challenger" and last["to_version"] == result["candidate_version"]
    assert "test AUC" in last["reason"]
    assert "below the floor 0.65" in last["reason"] or "does not beat" in last["reason"]


def test_one_gate_table_holds_the_threshold_of_every_registered_model():
    from ml.registry.aliases import REGISTERED_MODELS
    from ml.registry.gate import RULES

    assert set(RULES) == set(REGISTERED_MODELS)
    assert RULES["purchase_propensity"].floor == 0.65 and RULES["coupon_uplift"].metric == "test Qini"


def test_promote_and_rollback_from_the_cli_move_the_alias_and_write_audit_rows(trained_shop, shop_copy, capsys):
    from ml.__main__ import main

    shop = shop_copy(trained_shop)
    first = champion_version("churn_risk")
    other = next(r["version"] for r in list_versions() if r["model"] == "churn_risk" and r["version"] != first)
    assert main(["models", "promote", "churn_risk", other, "--reason", "campaign review"]) == 0
    assert champion_version("churn_risk") == other
    assert main(["models", "rollback", "churn_risk", "--reason", "worse calibration"]) == 0
    assert champion_version("churn_risk") == first
    audit = _audit(shop)
    manual = audit[audit["action"].isin(["promote", "rollback"])]
    assert manual[["action", "from_version", "to_version", "reason"]].values.tolist() == [
        ["promote", first, other, "campaign review"],
        ["rollback", other, first, "worse calibration"],
    ]
    assert json.loads(manual.iloc[0]["metrics_json"])  # the version's test metrics travel with the decision
    capsys.readouterr()
    assert main(["models", "rollback", "churn_risk", "--reason", "again"]) == 2
    assert "nothing to roll back to" in capsys.readouterr().err
    assert main(["models", "promote", "churn_risk", "99", "--reason", "typo"]) == 2
    assert "has no version 99" in capsys.readouterr().err


def test_promote_needs_a_reason(capsys):
    from ml.__main__ import main

    with pytest.raises(SystemExit):
        main(["models", "promote", "churn_risk", "1"])
    assert "needs --reason" in capsys.readouterr().err


def test_an_alias_moved_in_the_ui_is_recorded_at_the_next_cli_call(trained_shop, shop_copy):
    from ml.registry.aliases import reconcile_ui_changes

    shop_copy(trained_shop)
    current = champion_version("purchase_propensity")
    other = next(
        r["version"] for r in list_versions() if r["model"] == "purchase_propensity" and r["version"] != current
    )
    client().set_registered_model_alias("purchase_propensity", "champion", other)  # what the UI does
    recorded = reconcile_ui_changes()
    assert [(r["action"], r["from_version"], r["to_version"]) for r in recorded] == [
        ("alias_moved_outside_cli", current, other)
    ]
    assert reconcile_ui_changes() == []


def test_scoring_writes_one_partition_per_day_and_a_rerun_replaces_it(trained_shop, shop_copy):
    from ml.propensity.score import score_day

    shop = shop_copy(trained_shop)
    as_of = shop.remaining_days[0]
    first = score_day(as_of)
    # The rerun in a fresh process, as an Airflow worker runs it: it loads the versions the first run pinned.
    rerun = subprocess.run(
        [sys.executable, "-m", "ml", "score", str(as_of)], cwd=shop.root, capture_output=True, text=True
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    second = json.loads(rerun.stdout.strip().splitlines()[-1])
    files = list((shop.data / "scores").rglob("*.parquet"))
    assert len(files) == 1 and first["users_scored"] == second["users_scored"] > 500
    scores = pd.read_parquet(files[0])
    assert scores["user_id"].is_unique and scores["p_purchase_30d"].between(0, 1).all()
    assert set(scores["purchase_model_version"]) == {champion_version("purchase_propensity")}


@pytest.mark.parametrize("flavour", ["random_forest", "mlp", "gru"])
def test_a_forest_or_network_champion_loads_through_the_vetting_and_scores_with_reasons_that_add_up(
    trained_shop, shop_copy, flavour
):
    from ml.propensity.batch_scores import OUTPUT_COLUMNS
    from ml.propensity.datasets import in_population, load_scoring_population, model_inputs
    from ml.propensity.reasons import contributions, model_margin
    from ml.propensity.score import score_day
    from ml.propensity.sequences import with_sequences
    from ml.registry.aliases import load_champion, promote
    from ml.warehouse.read import connect_read_only

    shop = shop_copy(trained_shop)
    as_of = shop.remaining_days[0]
    for name in MODEL_NAMES.values():
        version = next(r["version"] for r in list_versions() if r["model"] == name and r["flavour"] == flavour)
        promote(name, version, reason=f"review the {flavour}")
    result = score_day(as_of)
    scores = pd.read_parquet(shop.data / "scores" / f"as_of_date={as_of}" / "part-0.parquet")
    reasons = pd.read_parquet(shop.data / "score_reasons" / f"as_of_date={as_of}" / "part-0.parquet")
    assert result["users_scored"] == len(scores) > 500
    for task, name in MODEL_NAMES.items():
        assert set(scores[OUTPUT_COLUMNS[task][1]].dropna()) == {champion_version(name)}
        ours = reasons[reasons["model_name"] == name]
        assert (ours.groupby("user_id").size() == 3).all() and ours["reason"].str.len().gt(0).all()
    # Each user's reasons carry the model's margin: its sigmoid is the probability written; and every feature's
    # contribution (not only the top 3) plus the base value is that margin, on the log-odds scale.
    with connect_read_only() as con:
        population = load_scoring_population(con, as_of)
    for task, name in MODEL_NAMES.items():
        merged = reasons[reasons["model_name"] == name].merge(scores, on="user_id")
        assert np.allclose(1 / (1 + np.exp(-merged["margin"])), merged[OUTPUT_COLUMNS[task][0]], atol=1e-6)
        model, _ = load_champion(name)
        pipeline = model.get_raw_model()
        columns = [c.name for c in model.metadata.get_input_schema().inputs]
        inputs = model_inputs(
            with_sequences(population.loc[in_population(population, task).to_numpy()], columns), columns
        )
        grouped, base, _ = contributions(pipeline, inputs)
        assert np.abs(grouped.sum(axis=1).to_numpy() + base - model_margin(pipeline, inputs)).max() < 1e-6


def test_the_model_families_setting_refuses_an_unknown_family_and_training_registers_nothing(trained_shop, shop_copy):
    shop = shop_copy(trained_shop)
    before = list_versions()
    env = {**os.environ, "SHOP_MODEL_FLAVOURS": "xgboost, svm"}
    result = subprocess.run(
        [sys.executable, "-m", "ml", "train"], cwd=shop.root, env=env, capture_output=True, text=True
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        "SHOP_MODEL_FLAVOURS must be a comma-separated list of xgboost, logistic, random_forest, mlp, gru, "
        "got 'xgboost, svm' (svm unknown)"
    ) in result.stderr
    assert list_versions() == before  # nothing trained, registered or moved


def test_scoring_refuses_a_champion_whose_signature_does_not_match_and_writes_nothing(trained_shop, shop_copy):
    from sklearn.dummy import DummyClassifier

    import mlflow
    from ml.propensity.score import score_day
    from ml.registry.aliases import promote

    shop = shop_copy(trained_shop)
    inputs = pd.DataFrame({"count_views_7d": [1.0, 2.0], "feature_from_the_future": [0.0, 1.0]})
    model = DummyClassifier(strategy="prior").fit(inputs, [0, 1])
    from ml.propensity.train import EXPERIMENT
    from ml.registry.tracking import experiment_id

    with mlflow.start_run(experiment_id=experiment_id(EXPERIMENT)):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            input_example=inputs,
            registered_model_name="purchase_propensity",
            pyfunc_predict_fn="predict_proba",
        )
    promote("purchase_propensity", str(info.registered_model_version), reason="test a bad model")
    with pytest.raises(ModelError, match="expects features that user_features lacks: feature_from_the_future"):
        score_day(shop.remaining_days[0])
    assert not (shop.data / "scores").exists()


def test_evaluate_against_truth_prints_one_json_line_per_model(trained_shop, shop_copy, capsys):
    from ml.__main__ import main

    shop_copy(trained_shop)
    assert main(["evaluate", "--against-truth"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["model"] for line in lines] == list(MODEL_NAMES.values())
    for line in lines:
        assert {"model", "version", "as_of_date", "n_users", "positive_rate", "auc", "oracle_auc", "pr_auc"} <= set(
            line
        )
        assert 0.5 < line["auc"] <= line["oracle_auc"] + 0.05 and line["n_users"] > 100


def test_evaluate_on_own_data_says_there_is_no_truth(trained_shop, shop_copy, capsys):
    import shutil

    from ml.__main__ import main

    shop = shop_copy(trained_shop)
    shutil.rmtree(shop.data / "truth")
    assert main(["evaluate", "--against-truth"]) == 2
    assert "there is no truth to compare with" in capsys.readouterr().err


def test_training_snapshots_are_capped_by_a_user_sample_that_stays_the_same_across_dates(
    built_shop, shop_copy, monkeypatch
):
    """SHOP_TRAIN_MAX_USERS bounds each weekly training snapshot and each campaign; validation and test stay whole."""
    from ml.errors import ConfigError
    from ml.propensity.train import load_split
    from ml.uplift.model import load_campaigns
    from ml.warehouse.read import connect_read_only

    shop_copy(built_shop)
    _, _, whole = load_split(["purchase_30d"], None)
    monkeypatch.setenv("SHOP_TRAIN_MAX_USERS", "400")
    _, _, capped = load_split(["purchase_30d"], None)
    whole, capped = whole["purchase_30d"], capped["purchase_30d"]
    per_date = capped["train"].groupby("as_of_date")["user_id"].apply(set)
    assert whole["train"].groupby("as_of_date").size().max() > 400 >= per_date.map(len).max() > 200
    # One hash sample of users: a user trained on at one date is never left out at another where they exist.
    sampled = set().union(*per_date)
    whole_per_date = whole["train"].groupby("as_of_date")["user_id"].apply(set)
    assert all(whole_per_date[d] & sampled == per_date[d] for d in per_date.index)
    assert capped["train"]["user_id"].isin(whole["train"]["user_id"]).all()
    for part in ("valid", "test"):
        pd.testing.assert_frame_equal(capped[part], whole[part])
    # The coupon models' campaigns are capped the same way, each campaign a snapshot.
    with connect_read_only() as con:
        monkeypatch.delenv("SHOP_TRAIN_MAX_USERS")
        campaigns, _ = load_campaigns(con)
        biggest = campaigns.groupby("send_date").size().max()
        monkeypatch.setenv("SHOP_TRAIN_MAX_USERS", str(biggest // 2))
        sampled, _ = load_campaigns(con)
    assert biggest // 2 >= sampled.groupby("send_date").size().max() > biggest // 4
    assert set(sampled["send_date"]) == set(campaigns["send_date"])
    monkeypatch.setenv("SHOP_TRAIN_MAX_USERS", "0")
    with pytest.raises(ConfigError, match="SHOP_TRAIN_MAX_USERS must be a positive whole number"):
        load_split(["purchase_30d"], None)


def test_training_without_enough_history_is_a_clear_error(built_shop, shop_copy):
    from ml.propensity.train import train_all

    shop = shop_copy(built_shop)
    newest = shop.remaining_days[0] - timedelta(days=30)
    with pytest.raises(ModelError, match="not enough history to test on"):
        train_all(as_of=newest - timedelta(days=40))
