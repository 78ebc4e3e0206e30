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


@pytest.mark.parametrize("flavour", ["xgboost", "logistic", "random_forest", "mlp"])
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
    chosen_c = tuning["families"]["logistic"]["params"]["C"]
    assert all(
        len(t["fold_roc_auc"]) == len(tuning["validation_dates"]) for t in tuning["families"]["xgboost"]["trials"]
    )
    runs = mlflow.search_runs(experiment_names=["shop_tuning"])
    assert len(runs) == 2
    assert "plots/trials.png" in [a.path for a in client().list_artifacts(runs.iloc[0]["run_id"], "plots")]

    assert main(["train", "--task", "purchase_30d"]) == 0
    trained = mlflow.search_runs(
        experiment_names=["shop_behaviour_models"], filter_string="params.flavour = 'logistic'"
    )
    assert trained.iloc[0]["params.hyperparameters"].startswith("ml tune on ")
    assert float(trained.iloc[0]["params.model_C"]) == chosen_c

    versions = len(client().search_model_versions("name = 'purchase_propensity'"))
    tuning_file("purchase_30d").write_text('{"families": {"logistic": 0.5}}')
    capsys.readouterr()
    assert main(["train", "--task", "purchase_30d"]) == 2
    error = capsys.readouterr().err
    assert str(tuning_file("purchase_30d")) in error and "Rerun python -m ml tune" in error
    assert len(client().search_model_versions("name = 'purchase_propensity'")) == versions  # nothing registered
    assert settings().warehouse_path.exists()
