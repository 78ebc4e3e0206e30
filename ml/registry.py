"""The MLflow model registry: aliases, the promotion gate, manual promote/rollback and their audit trail.

`@champion` is what scoring loads; `@challenger` marks the newest version that did not win. MLflow 3
replaced stages with aliases: `champion` plays the old "Production" role, `challenger` the old "Staging".
Every alias change is written as a row to the audit folder, which dbt loads as `model_promotions`.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import socket
import uuid
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from ml.config import settings
from ml.errors import ModelError
from ml.storage import write_parquet_atomic

MODEL_NAMES = {"purchase_30d": "purchase_propensity", "churn_30d": "churn_risk"}
UPLIFT_MODEL = "coupon_uplift"
# Every registered model the project manages (list, reconcile); scoring loads MODEL_NAMES, targeting UPLIFT_MODEL.
REGISTERED_MODELS = [*MODEL_NAMES.values(), UPLIFT_MODEL]
CHAMPION, CHALLENGER = "champion", "challenger"
HISTORY_TAG = "champion_history"
AUDIT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("changed_at", pa.timestamp("us")),
        ("model_name", pa.string()),
        ("action", pa.string()),
        ("from_version", pa.string()),
        ("to_version", pa.string()),
        ("changed_by", pa.string()),
        ("reason", pa.string()),
        ("metrics_json", pa.string()),
    ]
)


def configure_mlflow() -> str:
    """Point MLflow at the configured store; the local default keeps its artifacts beside the database."""
    import mlflow

    cfg = settings()
    os.environ.setdefault("MLFLOW_UV_AUTO_DETECT", "false")
    os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")
    if cfg.mlflow_tracking_uri.startswith("sqlite:///"):
        cfg.mlflow_dir.mkdir(parents=True, exist_ok=True)
        cfg.mlflow_artifact_root.mkdir(parents=True, exist_ok=True)
    user_setting = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(cfg.mlflow_tracking_uri)
    # set_tracking_uri also exports MLFLOW_TRACKING_URI; undo that so a later change of SHOP_MLFLOW_DIR
    # (another shop in the same process) is still honoured, while a user's own setting stays.
    if user_setting is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    return cfg.mlflow_tracking_uri


def experiment_id(name: str) -> str:
    """The MLflow experiment `name`, created on first use (local store: artifacts beside the database)."""
    import mlflow

    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    cfg = settings()
    location = cfg.mlflow_artifact_root.as_uri() if cfg.mlflow_tracking_uri.startswith("sqlite:") else None
    return mlflow.create_experiment(name, artifact_location=location)


def client():
    from mlflow import MlflowClient

    configure_mlflow()
    return MlflowClient()


def champion_version(name: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client().get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def load_champion(name: str):
    """Load `models:/<name>@champion` as a pyfunc; a clear error when there is none."""
    version = champion_version(name)
    if version is None:
        raise ModelError(f"{name} has no @champion version: train first (python -m ml train)")
    return _load_model(f"models:/{name}@{CHAMPION}"), version


def _load_model(uri: str):
    """mlflow.pyfunc.load_model, without the warnings skops raises by probing every loaded module.

    To name scipy's ufuncs, skops reads each of them from every module in sys.modules; in an Airflow task
    that touches Airflow's deprecated module aliases, 1,160 FutureWarnings logged in 3.5 s of a 200k shop's
    score task. Nothing in them concerns the model.
    """
    import mlflow

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return mlflow.pyfunc.load_model(uri)


def load_version(name: str, version: str | None = None):
    """Load version `version` of `name` (default: the @champion) as a pyfunc, with the version loaded."""
    import mlflow

    if version is None:
        return load_champion(name)
    configure_mlflow()  # a rerun in a fresh process (an Airflow worker) has not pointed MLflow anywhere yet
    try:
        return _load_model(f"models:/{name}/{version}"), str(version)
    except mlflow.exceptions.MlflowException as exc:
        raise ModelError(f"{name} v{version} (pinned by this day's first run) cannot be loaded: {exc}") from None


def _actor() -> str:
    try:
        return os.environ.get("SHOP_ACTOR") or getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def record_audit(
    name: str,
    action: str,
    from_version: str | None,
    to_version: str | None,
    reason: str,
    metrics: dict[str, Any] | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """Append one audit row (one small Parquet file, written atomically) for an alias change."""
    row = {
        "event_id": uuid.uuid4().hex,
        "changed_at": datetime.now(UTC).replace(tzinfo=None),
        "model_name": name,
        "action": action,
        "from_version": from_version,
        "to_version": to_version,
        "changed_by": actor or _actor(),
        "reason": reason,
        "metrics_json": json.dumps(metrics or {}, sort_keys=True),
    }
    target = (
        settings().audit_dir / "model_promotions" / f"{row['changed_at']:%Y%m%dT%H%M%S%f}-{row['event_id'][:8]}.parquet"
    )
    write_parquet_atomic(pd.DataFrame([row]), target, schema=AUDIT_SCHEMA)
    return {**row, "changed_at": row["changed_at"].isoformat()}


def _history(name: str) -> list[str]:
    model = client().get_registered_model(name)
    return json.loads(model.tags.get(HISTORY_TAG, "[]"))


def _set_champion(
    name: str, version: str, action: str, reason: str, metrics: dict | None, actor: str | None = None
) -> dict[str, Any]:
    mlflow_client = client()
    previous = champion_version(name)
    mlflow_client.set_registered_model_alias(name, CHAMPION, version)
    history = [v for v in _history(name) if v != version] + [version]
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
    earlier = [v for v in _history(name) if v != current]
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


def _first_line(*paths: str) -> str:
    for path in paths:
        try:
            return Path(path).read_text().strip()
        except OSError:
            continue
    return ""


def _machine() -> str:
    """This machine: its machine id (two hosts may share a name), else its host name (a container's id)."""
    return _first_line("/etc/machine-id", "/var/lib/dbus/machine-id") or socket.gethostname()


def _boot_id() -> str:
    """This boot of the machine: a process from an earlier boot is gone whatever its pid."""
    return _first_line("/proc/sys/kernel/random/boot_id")


def _started(pid: int) -> str | None:
    """When process `pid` started, immune to clock changes: clock ticks since boot (Linux), else psutil's time."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            text = stat.read_text()
        except OSError:
            return None
        return text[text.rindex(")") + 2 :].split()[19]  # field 22, starttime
    import psutil

    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except psutil.Error:
        return None


def owner_tags() -> dict[str, str]:
    """Which process owns a run (tagged on every run), so a run left RUNNING by a killed process can be found."""
    return {
        "shop.host": socket.gethostname(),
        "shop.machine": _machine(),
        "shop.boot": _boot_id(),
        "shop.pid": str(os.getpid()),
        "shop.pid_started": _started(os.getpid()) or "",
    }


def _owner_gone(tags: dict[str, str]) -> bool:
    """True when the run's process is known to be gone: this machine, and a reboot since or no such process."""
    if tags.get("shop.machine") != _machine() or not tags.get("shop.pid", "").isdigit():
        return False  # another machine's run (or an untagged one): its process cannot be seen from here
    if tags.get("shop.boot") != _boot_id():
        return True
    return _started(int(tags["shop.pid"])) != tags.get("shop.pid_started")  # same pid, same start: alive


def fail_orphaned_runs() -> list[str]:
    """Mark FAILED the RUNNING runs whose process on this machine is gone (SIGKILL, out of memory, a reboot).

    A run whose process ends normally, raises or gets SIGTERM is closed by MLflow itself; only a process
    that never got to run its handlers leaves one RUNNING forever. Runs owned by other machines are left
    alone: their processes cannot be seen from here.
    """
    mlflow_client = client()
    experiments = [e.experiment_id for e in mlflow_client.search_experiments()]
    if not experiments:
        return []
    failed = []
    for run in mlflow_client.search_runs(experiments, "attributes.status = 'RUNNING'", max_results=1000):
        tags = run.data.tags
        if not _owner_gone(tags):
            continue
        reason = f"process {tags['shop.pid']} on {tags.get('shop.host')} ended without closing the run (killed?)"
        mlflow_client.set_tag(run.info.run_id, "shop.failure", reason)
        mlflow_client.set_terminated(run.info.run_id, status="FAILED")
        logging.getLogger(__name__).warning("MLflow run %s marked FAILED: %s", run.info.run_id, reason)
        failed.append(run.info.run_id)
    return failed


def reconcile_ui_changes() -> list[dict[str, Any]]:
    """Record alias moves made outside the CLI (e.g. in the MLflow UI) so the audit stays complete."""
    recorded = []
    for name in REGISTERED_MODELS:
        current = champion_version(name)
        if current is None:
            continue
        history = _history(name)
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


def model_requirements() -> list[str]:
    """What a logged model needs to load, written out so MLflow does not infer it from the whole environment."""
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("scikit-learn", "xgboost-cpu", "pandas", "numpy")]
