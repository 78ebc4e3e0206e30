"""A registered model version is checked before anything of it is loaded.

MLflow loads a version the way its own MLmodel file says: a loader module, a code folder, pickled Python, or
skops trusting the types the file itself lists. Registering a version is then running code wherever it is
loaded, here the scheduler. So the pipeline checks each version against its own lists, not the file's:

- origin: the version was logged by a run of the experiment the pipeline trains that model in;
- format: a behaviour model is the sklearn flavour saved with skops, loaded by mlflow.sklearn, with no code
  folder and no trusted type beyond those its training trusts; the coupon model is a skops file the pipeline
  loads itself with its own trusted types (its MLflow face is a models-from-code pyfunc for the UI and
  serving, which the pipeline never loads). Nothing is unpickled.

A version that fails is refused with a ModelError saying what failed and what to do; nothing is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ml.errors import ModelError
from ml.registry.legacy_names import MOVED_MODULES
from ml.registry.tracking import client

# The experiment each registered model's training logs its runs in.
TRAINING_EXPERIMENTS = {
    "purchase_propensity": "shop_behaviour_models",
    "churn_risk": "shop_behaviour_models",
    "coupon_uplift": "shop_coupon_uplift",
}
# Beyond sklearn's and numpy's own (which skops trusts), the types a behaviour model is made of.
PROPENSITY_TRUSTED_TYPES = [
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
    "numpy.arcsinh",
    "numpy.dtype",
    "ml.propensity.bgnbd.BgNbdFeatures",
    "ml.propensity.sequence_network.SequenceNetwork",
    # scikit-learn's own, but not on skops' default list: a forest's trees and a network's optimiser state.
    "sklearn.tree._tree.Tree",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
]
UPLIFT_TRUSTED_TYPES = [*PROPENSITY_TRUSTED_TYPES, "ml.uplift.model.CouponUpliftModel"]
# The coupon model's skops file, among the registered model's artifacts.
UPLIFT_ARTIFACT = "coupon_uplift_model"
UPLIFT_FILE = "coupon_uplift.skops"


class VettedModel:
    """What the pipeline uses of a loaded model, whatever its flavour: its MLflow metadata and `predict`."""

    def __init__(self, metadata, predict: Callable[[pd.DataFrame], pd.DataFrame]):
        self.metadata = metadata
        self._predict = predict

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self._predict(frame)


def load_vetted(name: str, version: str, load_pyfunc: Callable[[str], object]):
    """Check version `version` of `name` (origin, then format) and load it; ModelError naming what failed."""
    from mlflow.models import Model

    import mlflow

    found = client().get_model_version(name, str(version))
    _check_origin(name, str(version), found.run_id)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}"))
    meta = Model.load(str(local / "MLmodel"))
    if name == "coupon_uplift":
        return VettedModel(meta, _load_uplift(name, version, local, meta).predict_effects)
    _check_sklearn_skops(name, version, meta)
    return load_pyfunc(str(local))  # the files just checked, not a second download


def _refused(name: str, version: str, why: str) -> ModelError:
    return ModelError(
        f"{name} v{version} is refused before loading: {why}. Only the pipeline's training registers what it "
        f"loads: roll back (python -m ml models rollback {name} --reason ...) or retrain (python -m ml train)"
    )


def _check_origin(name: str, version: str, run_id: str | None) -> None:
    expected = TRAINING_EXPERIMENTS.get(name)
    if expected is None:
        raise _refused(name, version, "it is not a model the pipeline trains")
    if not run_id:
        raise _refused(name, version, "it names no run that logged it")
    run = client().get_run(run_id)
    experiment = client().get_experiment(run.info.experiment_id)
    if experiment is None or experiment.name != expected:
        logged_in = experiment.name if experiment else run.info.experiment_id
        raise _refused(name, version, f"it was logged in experiment {logged_in!r}, not {expected!r}")


def _check_sklearn_skops(name: str, version: str, meta) -> None:
    pyfunc = meta.flavors.get("python_function", {})
    sklearn = meta.flavors.get("sklearn", {})
    if pyfunc.get("loader_module") != "mlflow.sklearn" or pyfunc.get("code") or sklearn.get("code"):
        raise _refused(name, version, f"it loads through {pyfunc.get('loader_module')!r} or ships code")
    if sklearn.get("serialization_format") != "skops":
        raise _refused(name, version, f"it is saved as {sklearn.get('serialization_format')!r}, not skops")
    # A version registered before ml/ was split names its classes by their old modules (ml.registry.legacy_names).
    listed = {_current_name(t) for t in sklearn.get("skops_trusted_types") or []}
    extra = sorted(listed - set(PROPENSITY_TRUSTED_TYPES))
    if extra:
        raise _refused(name, version, f"it asks to trust types the pipeline does not: {', '.join(extra)}")


def _current_name(type_name: str) -> str:
    module, _, name = type_name.rpartition(".")
    return f"{MOVED_MODULES.get(module, module)}.{name}"


def _load_uplift(name: str, version: str, local: Path, meta):
    import skops.io as sio

    pyfunc = meta.flavors.get("python_function", {})
    path = local / "artifacts" / UPLIFT_FILE
    if pyfunc.get("python_model", "").endswith(".pkl") or not path.is_file():
        raise _refused(name, version, "it is a pickled model (registered before the coupon model moved to skops)")
    untrusted = sorted(set(sio.get_untrusted_types(file=path)) - set(UPLIFT_TRUSTED_TYPES))
    if untrusted:
        raise _refused(name, version, f"its skops file holds types the pipeline does not trust: {', '.join(untrusted)}")
    return sio.load(path, trusted=UPLIFT_TRUSTED_TYPES)
