"""The MLflow model registry: aliases, the promotion gate, manual promote/rollback and their audit trail.

`@champion` is what scoring loads; `@challenger` marks the newest version that did not win. MLflow 3
replaced stages with aliases: `champion` plays the old "Production" role, `challenger` the old "Staging".
Every alias change is written as a row to the audit folder, which dbt loads as `model_promotions`.
"""

from __future__ import annotations

import json
import warnings
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from ml.errors import ModelError
from ml.registry.audit import HISTORY_TAG, champion_history, record_audit
from ml.registry.legacy_names import install as install_legacy_names
from ml.registry.tracking import client, configure_mlflow
from ml.registry.vetting import load_vetted

MODEL_NAMES = {"purchase_30d": "purchase_propensity", "churn_30d": "churn_risk"}


UPLIFT_MODEL = "coupon_uplift"


# Every registered model the project manages (list, reconcile); scoring loads MODEL_NAMES, targeting UPLIFT_MODEL.
REGISTERED_MODELS = [*MODEL_NAMES.values(), UPLIFT_MODEL]


CHAMPION, CHALLENGER = "champion", "challenger"


def champion_version(name: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client().get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def load_champion(name: str):
    """Load the `@champion` version of `name` as a pyfunc (by its number, so an alias moved meanwhile cannot
    mix two versions); a clear error when there is none."""
    version = champion_version(name)
    if version is None:
        raise ModelError(f"{name} has no @champion version: train first (python -m ml train)")
    return _loaded(name, version), version


# Loaded versions in this process, by store, name and version: a registered version never changes, and one
# process (the closed loop, `airflow dags test`) scores, monitors and targets with the same ones every day.
_LOADED: OrderedDict[tuple[str, str, str], object] = OrderedDict()


def _loaded(name: str, version: str):
    key = (configure_mlflow(), name, str(version))
    if key not in _LOADED:
        _LOADED[key] = load_vetted(name, version, _load_model)  # checked before anything of it is loaded
        while len(_LOADED) > 8:
            _LOADED.popitem(last=False)
    return _LOADED[key]


def _load_model(uri: str):
    """mlflow.pyfunc.load_model, without the warnings skops raises by probing every loaded module.

    To name scipy's ufuncs, skops reads each of them from every module in sys.modules; in an Airflow task
    that touches Airflow's deprecated module aliases, 1,160 FutureWarnings logged in 3.5 s of a 200k shop's
    score task. Nothing in them concerns the model.
    """
    import mlflow

    install_legacy_names()  # a version registered before ml/ was split into packages
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return mlflow.pyfunc.load_model(uri)


def load_version(name: str, version: str | None = None):
    """Load version `version` of `name` (default: the @champion) as a pyfunc, with the version loaded."""
    import mlflow

    if version is None:
        return load_champion(name)
    try:
        return _loaded(name, version), str(version)
    except mlflow.exceptions.MlflowException as exc:
        raise ModelError(f"{name} v{version} (pinned by this day's first run) cannot be loaded: {exc}") from None


def _set_champion(
    name: str, version: str, action: str, reason: str, metrics: dict | None, actor: str | None = None
) -> dict[str, Any]:
    mlflow_client = client()
    previous = champion_version(name)
    mlflow_client.set_registered_model_alias(name, CHAMPION, version)
    history = [v for v in champion_history(name) if v != version] + [version]
    mlflow_client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[-20:]))
    mlflow_client.set_model_version_tag(name, version, "promoted_at", datetime.now(UTC).isoformat())
    return record_audit(name, action, previous, version, reason, metrics, actor)


def promote(
    name: str, version: str, reason: str, metrics: dict | None = None, action: str = "promote", actor: str | None = None
) -> dict[str, Any]:
    """Make `version` the champion (a person's decision from the CLI, or the gate's)."""
    from mlflow.exceptions import MlflowException

    try:
        found = client().get_model_version(name, str(version))
    except MlflowException:
        raise ModelError(f"{name} has no version {version}: see `python -m ml models list`") from None
    metrics = metrics or {k: v for k, v in found.tags.items() if k.startswith("test_")}
    return _set_champion(name, str(version), action, reason, metrics, actor)


def rollback(name: str, reason: str) -> dict[str, Any]:
    """Put back the champion before the current one."""
    current = champion_version(name)
    if current is None:
        raise ModelError(f"{name} has no @champion to roll back")
    earlier = [v for v in champion_history(name) if v != current]
    if not earlier:
        raise ModelError(f"{name}: version {current} is the only champion it has had; nothing to roll back to")
    target = earlier[-1]
    mlflow_client = client()
    mlflow_client.set_registered_model_alias(name, CHAMPION, target)
    mlflow_client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(earlier))
    return record_audit(name, "rollback", current, target, reason)


def set_challenger(name: str, version: str) -> None:
    client().set_registered_model_alias(name, CHALLENGER, version)


def list_versions() -> list[dict[str, Any]]:
    """Every version of the project's registered models, newest first, with aliases and test metrics."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client()
    rows = []
    for name in REGISTERED_MODELS:
        try:
            model = mlflow_client.get_registered_model(name)
        except MlflowException:
            continue
        aliases_by_version: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            aliases_by_version.setdefault(str(version), []).append(alias)
        for version in mlflow_client.search_model_versions(f"name = '{name}'"):
            rows.append(
                {
                    "model": name,
                    "version": str(version.version),
                    "aliases": sorted(aliases_by_version.get(str(version.version), [])),
                    "flavour": version.tags.get("flavour") or version.tags.get("learner"),
                    "test_roc_auc": version.tags.get("test_roc_auc"),
                    "test_qini": version.tags.get("test_mean_qini"),
                    "test_date": version.tags.get("test_date"),
                    "created": datetime.fromtimestamp(version.creation_timestamp / 1000, UTC).isoformat(),
                }
            )
    return sorted(rows, key=lambda r: (r["model"], -int(r["version"])))


def model_requirements() -> list[str]:
    """What a logged model needs to load, written out so MLflow does not infer it from the whole environment."""
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("scikit-learn", "xgboost-cpu", "pandas", "numpy")]


def reconcile_ui_changes() -> list[dict[str, Any]]:
    """Record alias moves made outside the CLI (e.g. in the MLflow UI) so the audit stays complete."""
    recorded = []
    for name in REGISTERED_MODELS:
        current = champion_version(name)
        if current is None:
            continue
        history = champion_history(name)
        if not history or history[-1] != current:
            client().set_registered_model_tag(name, HISTORY_TAG, json.dumps(([*history, current])[-20:]))
            recorded.append(
                record_audit(
                    name,
                    "alias_moved_outside_cli",
                    history[-1] if history else None,
                    current,
                    "champion alias changed in the MLflow UI or API",
                    actor="mlflow-ui",
                )
            )
    return recorded
