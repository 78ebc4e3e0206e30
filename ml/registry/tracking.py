"""The MLflow connection every registry and training step shares: the configured store and its client."""

from __future__ import annotations

import os

from ml.config import settings


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
