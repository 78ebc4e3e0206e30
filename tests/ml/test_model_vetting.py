"""A registered version is checked before anything of it is loaded: registering a model must not be a way to run
code in the scheduler. Each hostile version here is refused, and its payload never runs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import mlflow
from ml.errors import ModelError
from ml.registry.aliases import load_version
from ml.registry.tracking import experiment_id


class _Payload:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


class _HostileModel(mlflow.pyfunc.PythonModel):
    def __init__(self, marker: str):
        self.payload = _Payload(marker)

    def predict(self, context, model_input, params=None):
        return model_input


def _register(name: str, experiment: str, log) -> str:
    with mlflow.start_run(experiment_id=experiment_id(experiment)):
        info = log(name)
    return str(info.registered_model_version)


def _register_sklearn(name: str, experiment: str, **how_saved) -> str:
    """A small sklearn classifier registered as version of `name`, logged in `experiment`, saved as asked."""
    classifier = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
    return _register(
        name,
        experiment,
        lambda registered: mlflow.sklearn.log_model(
            classifier, name="model", registered_model_name=registered, **how_saved
        ),
    )


def test_hostile_versions_are_refused_before_anything_is_loaded(trained_shop, shop_copy, tmp_path):
    shop_copy(trained_shop)
    marker = tmp_path / "payload_ran"

    pickled = _register(
        "coupon_uplift",
        "shop_coupon_uplift",
        lambda name: mlflow.pyfunc.log_model(
            name="model", python_model=_HostileModel(str(marker)), registered_model_name=name
        ),
    )
    marker.unlink(missing_ok=True)  # logging may have loaded it; what matters is the pipeline's load
    with pytest.raises(ModelError, match=f"coupon_uplift v{pickled} is refused before loading: it is a pickled"):
        load_version("coupon_uplift", pickled)
    assert not marker.exists()

    cloudpickled = _register_sklearn("purchase_propensity", "shop_behaviour_models", serialization_format="cloudpickle")
    with pytest.raises(ModelError, match="is refused before loading: it is saved as 'cloudpickle', not skops"):
        load_version("purchase_propensity", cloudpickled)

    too_trusting = _register_sklearn(
        "purchase_propensity",
        "shop_behaviour_models",
        serialization_format="skops",
        skops_trusted_types=["builtins.eval"],
    )
    with pytest.raises(ModelError, match="asks to trust types the pipeline does not: builtins.eval"):
        load_version("purchase_propensity", too_trusting)

    elsewhere = _register_sklearn("churn_risk", "someone_elses_experiment", serialization_format="skops")
    with pytest.raises(
        ModelError, match="logged in experiment 'someone_elses_experiment', not 'shop_behaviour_models'"
    ):
        load_version("churn_risk", elsewhere)
    assert not marker.exists()
