"""`ml tune`: hyperparameters chosen by time-ordered cross-validation within a trial budget, then used by training."""

from __future__ import annotations

import json
import math
from datetime import date, timedelta

import pytest

from ml.config import LABEL_HORIZON_DAYS


def test_folds_run_forward_and_by_default_never_train_on_labels_that_overlap_the_validation_date():
    from ml.errors import ModelError
    from ml.propensity.tuning import TUNING_FOLDS, time_ordered_folds

    weekly = [date(2026, 1, 5) + timedelta(days=7 * k) for k in range(8)]
    folds = time_ordered_folds(list(reversed(weekly)))
    assert [validation for _, validation in folds] == weekly[-TUNING_FOLDS:]
    for train, validation in folds:
        assert train == [d for d in weekly if d + timedelta(days=LABEL_HORIZON_DAYS) <= validation]
    with pytest.raises(ModelError, match="span less than the 30-day gap"):
        time_ordered_folds(weekly[:4])
    # A shorter gap tunes a short history: forward chaining.
    assert time_ordered_folds(weekly[:2], gap_days=7) == [([weekly[0]], weekly[1])]


def test_a_folds_training_rows_are_capped_by_a_seeded_sample_and_its_validation_kept_whole(monkeypatch):
    import numpy as np
    import pandas as pd

    from ml.propensity import tuning

    monkeypatch.setattr(tuning, "TUNING_MAX_ROWS", 50)
    weekly = [date(2026, 1, 5) + timedelta(days=7 * k) for k in range(4)]
    rng = np.random.default_rng(0)
    rows = pd.DataFrame(
        {"as_of_date": np.repeat(weekly, 40), "orders": rng.poisson(2, 160), "label": rng.integers(0, 2, 160)}
    )
    folds = tuning.fold_data(rows, ["orders"], seed=5, gap_days=7)
    assert [fold["validation_date"] for fold in folds] == [str(d) for d in weekly[1:]]
    assert [len(fold["y"]["train"]) for fold in folds] == [40, 50, 50]
    assert all(len(fold["y"]["valid"]) == 40 for fold in folds)
    again = tuning.fold_data(rows, ["orders"], seed=5, gap_days=7)
    assert all(a["x"]["train"].index.equals(b["x"]["train"].index) for a, b in zip(folds, again, strict=True))


@pytest.mark.parametrize("flavour", ["xgboost", "logistic", "random_forest", "mlp", "gru"])
def test_trials_start_from_the_defaults_and_keep_to_the_budget(flavour):
    from ml.propensity.tuning import SEARCH_SPACES, default_params, trial_params

    trials = trial_params(flavour, budget=6, seed=3)
    assert trials[0] == default_params(flavour)  # what training fits untuned, scored on the same folds
    assert len(trials) == min(6, math.prod(len(choices) for choices in SEARCH_SPACES[flavour].values()))
    assert len({json.dumps(t, sort_keys=True) for t in trials}) == len(trials)
    assert all(value in SEARCH_SPACES[flavour][name] for t in trials for name, value in t.items())
    assert trial_params(flavour, budget=6, seed=3) == trials and trial_params(flavour, budget=6, seed=4) != trials


def test_tuning_writes_what_training_then_uses_and_a_damaged_file_stops_training_with_nothing_lost(
    built_shop, shop_copy, capsys, monkeypatch
):
    import mlflow
    from ml.__main__ import main
    from ml.config import settings
    from ml.propensity.tuned_params import tuning_file
    from ml.registry.tracking import client

    shop_copy(built_shop)
    monkeypatch.setenv("SHOP_MODEL_FLAVOURS", "logistic,xgboost")
    # This shop's four weekly training snapshots span 21 days: too short for the 30-day gap, as it says.
    assert main(["tune", "--trials", "3"]) == 2
    assert "--gap-days" in capsys.readouterr().err
    assert main(["tune", "--trials", "3", "--gap-days", "7"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert {(line["task"], line["flavour"]) for line in lines} == {
        (task, flavour) for task in ("purchase_30d", "churn_30d") for flavour in ("logistic", "xgboost")
    }
    for line in lines:
        assert line["trials"] == 3 and line["folds"] >= 1 and line["gap_days"] == 7 and line["tuning_seconds"] >= 0
        assert 0.5 < line["default_mean_roc_auc"] <= line["tuned_mean_roc_auc"] <= 1
    tuning = json.loads(tuning_file("purchase_30d").read_text())
    assert all(
        len(t["fold_roc_auc"]) == len(tuning["validation_dates"]) for t in tuning["families"]["xgboost"]["trials"]
    )
    runs = mlflow.search_runs(experiment_names=["shop_tuning"])
    assert len(runs) == 2
    assert "plots/trials.png" in [a.path for a in client().list_artifacts(runs.iloc[0]["run_id"], "plots")]

    # Training uses what the file says (values away from every default, so a dropped override shows).
    tuning["families"] = {
        "logistic": {"params": {"C": 3.0}},
        "xgboost": {"params": {"max_depth": 6, "min_child_weight": 5, "learning_rate": 0.1}},
    }
    tuning_file("purchase_30d").write_text(json.dumps(tuning))
    assert main(["train", "--task", "purchase_30d"]) == 0
    runs = mlflow.search_runs(experiment_names=["shop_behaviour_models"], order_by=["start_time DESC"])
    newest = {flavour: runs[runs["params.flavour"] == flavour].iloc[0] for flavour in ("logistic", "xgboost")}
    assert all(run["params.hyperparameters"].startswith("ml tune on ") for run in newest.values())
    assert float(newest["logistic"]["params.model_C"]) == 3.0
    assert newest["xgboost"]["params.model_max_depth"] == "6"
    assert float(newest["xgboost"]["params.model_learning_rate"]) == 0.1

    # Tuned on other features, or on snapshots after the split (a backtest of an earlier date): the defaults.
    for change, said in (
        ({"feature_hash": "0" * 12}, "defaults (tuned on other features)"),
        ({"newest_snapshot": "2099-01-01"}, "defaults (tuned on later snapshots)"),
    ):
        tuning_file("purchase_30d").write_text(json.dumps({**tuning, **change}))
        assert main(["train", "--task", "purchase_30d"]) == 0
        runs = mlflow.search_runs(experiment_names=["shop_behaviour_models"], order_by=["start_time DESC"])
        logistic = runs[runs["params.flavour"] == "logistic"].iloc[0]
        assert logistic["params.hyperparameters"] == said and float(logistic["params.model_C"]) == 0.5

    # A damaged file, or one with a value outside the search space, stops training before anything registers.
    versions = len(client().search_model_versions("name = 'purchase_propensity'"))
    for damaged in (
        '{"families": {"logistic": 0.5}}',
        json.dumps({**tuning, "families": {"xgboost": {"params": {"max_dept": 6}}}}),
    ):
        tuning_file("purchase_30d").write_text(damaged)
        capsys.readouterr()
        assert main(["train", "--task", "purchase_30d"]) == 2
        error = capsys.readouterr().err
        assert str(tuning_file("purchase_30d")) in error and "Rerun python -m ml tune" in error
    assert len(client().search_model_versions("name = 'purchase_propensity'")) == versions
    assert settings().warehouse_path.exists()


def test_tuned_params_reach_the_forest_and_the_networks_and_the_networks_default_still_picks_its_shape():
    import numpy as np
    import pandas as pd

    from ml.propensity.estimators import fit_flavour

    rng = np.random.default_rng(2)
    age = rng.integers(30, 300, 400).astype(float)
    frame = pd.DataFrame(
        {
            "orders": rng.poisson(2, 400).astype(float),
            "revenue": rng.gamma(2, 30, 400),
            # What the BG/NBD step every family starts with reads.
            "count_repeat_purchase_days_lifetime": (repeat := rng.poisson(2, 400).astype(float)),
            "days_between_first_and_last_purchase": np.where(repeat > 0, np.floor(age * rng.random(400)), 0.0),
            "days_since_first_purchase": age,
        }
    )
    y = (frame["orders"] + rng.normal(0, 1, 400) > 2).astype(int).to_numpy()
    x = {"train": frame.iloc[:300], "valid": frame.iloc[300:]}
    ys = {"train": y[:300], "valid": y[300:]}
    forest, params = fit_flavour("random_forest", x, ys, 0, {"min_samples_leaf": 50, "max_features": 0.4})
    assert forest.named_steps["model"].min_samples_leaf == 50 and params["max_features"] == 0.4
    network, params = fit_flavour("mlp", x, ys, 0, {"hidden_layer_sizes": "64+32", "alpha": 0.1})
    assert network.named_steps["model"].hidden_layer_sizes == (64, 32) and params["alpha"] == 0.1
    _, params = fit_flavour("mlp", x, ys, 0, {})
    assert params["shapes_tried"].count("valid AUC") == 3  # untuned: the three shapes, picked on validation
    # The sequence network reads the same frame plus each user's days (all zero here: only the wiring is checked).
    from ml.propensity.sequences import SEQUENCE_COLUMNS

    days = pd.DataFrame(0.0, index=frame.index, columns=SEQUENCE_COLUMNS)
    with_days = {part: pd.concat([rows, days.loc[rows.index]], axis=1) for part, rows in x.items()}
    tuned = {"hidden_units": 8, "learning_rate": 0.01, "alpha": 0.001}
    gru, params = fit_flavour("gru", with_days, ys, 0, tuned)
    network = gru.named_steps["model"]
    assert (network.hidden_units, network.learning_rate, network.alpha) == (8, 0.01, 0.001)
    assert params["hidden_units"] == 8 and network.params_["U"].shape == (8, 24)
