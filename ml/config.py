"""Every path and URI the pipeline uses, read from environment variables with working defaults.

`.env.example` lists the same variables. Nothing here touches the disk: callers create what they need.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ml.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Where a DAG run gets its day (SHOP_SOURCE): the shop's export in the inbox, or the simulated demo shop.
SOURCES = ("inbox", "simulate")
# The engine dbt builds the warehouse on (SHOP_ENGINE): DuckDB (one file, the default) or Spark (docs/spark.md).
ENGINES = ("duckdb", "spark")
# The profile targets (dbt_project/profiles.yml) SHOP_SPARK_TARGET may name: Spark in dbt's process, or a cluster.
SPARK_TARGETS = ("spark", "spark_cluster")
# How the DAG runs dbt (SHOP_DBT_TASKS): one Airflow task per model, or one `dbt build` per group of models.
DBT_TASKS = ("model", "group")
# The model families `ml train` fits, registers and gates for each behaviour model (SHOP_MODEL_FLAVOURS, a subset).
MODEL_FLAVOURS = ("xgboost", "logistic", "random_forest", "mlp", "gru")
# Windows the Python steps and the dbt models share, defined here only: ml.warehouse.builds.as_of_vars passes them to
# every dbt run (the defaults in dbt_project.yml, for dbt by hand, are checked against them by a test).
LABEL_HORIZON_DAYS = 30  # purchase_30d and churn_30d look this many days past the as-of date
COUPON_WINDOW_DAYS = 7  # a send's outcome window [send_date, send_date + 7 days): a campaign is usable once closed


def _path(name: str, default: Path) -> Path:
    return Path(os.environ.get(name, str(default))).expanduser().resolve()


@dataclass(frozen=True)
class Settings:
    """A resolved view of the environment; build a fresh one with `settings()` after changing env vars."""

    data_dir: Path
    inbox_dir: Path
    landing_dir: Path
    warehouse_path: Path
    snapshot_path: Path
    # The snapshot's folder as the analysts' tools see it: its views name their Parquet files under it.
    snapshot_read_dir: Path
    scores_dir: Path
    targets_dir: Path
    # The top reasons behind each user's scores (ml score), and the models' monitoring rows (ml monitor).
    reasons_dir: Path
    monitoring_dir: Path
    # Each scored user's behavioural cluster and each cluster's profile (ml.clusters, written by ml score).
    clusters_dir: Path
    cluster_profiles_dir: Path
    # Each day's 28-day forecasts of the segments' orders and revenue (ml.forecasts, the forecast step).
    forecasts_dir: Path
    # Off-policy evaluations: each campaign's (campaigns/) and each targeting day's gate evidence (daily/).
    evaluations_dir: Path
    audit_dir: Path
    # The pseudonym key (when generated, not set) and the suppression list of forgotten users (ml.privacy).
    privacy_dir: Path
    truth_dir: Path
    dbt_project_dir: Path
    # SHOP_ENGINE; with spark, dbt's tables live under spark_dir (warehouse/ and the metastore/ catalogue).
    engine: str
    spark_dir: Path
    # With spark: the profile target dbt builds through (local mode, or the cluster's Thrift server).
    spark_target: str
    mlflow_tracking_uri: str
    mlflow_artifact_root: Path
    seed: int
    max_quarantine_share: float
    daily_coupon_budget: float
    contact_cap_days: int
    holdout_share: float
    # Days a user stays in (or out of) the coupon holdout; the salt makes the draw unguessable from user ids.
    holdout_days: int
    holdout_salt: str
    # Share of the daily budget (and of users, drawn like the holdout) given to the challenger policy arm.
    challenger_arm_share: float
    # Gross margin on an order's value: what an incremental euro of revenue is worth before coupon cost.
    gross_margin_rate: float
    # Where a DAG run gets its day: "inbox" (the shop's export must be there) or "simulate" (the demo shop).
    source: str
    # "model": one Airflow task per dbt model (its own status, log and retry); "group": one `dbt build` per
    # group (features, segments, targeting), its tests included: a dbt start and project load per group, not
    # per model (about 40 s of a 200k-user day).
    dbt_tasks: str
    # None: score (and train on) every known customer; N: only users active in the N days before the as-of date.
    scoring_lookback_days: int | None
    # Event days per dbt run of the history build (and its as-of dates): its memory grows with this, not the
    # history. None: sized to the shop (ml.warehouse.history.history_batch_days).
    history_batch_days: int | None
    # A daily run re-processes this many event days before its business day: corrected exports landed late.
    late_event_days: int
    # None: user_features keeps every as-of date; N: daily rows for the newest N dates, then Mondays and
    # campaign send dates only (what training and the coupon models read), and the labels of those dates.
    feature_retention_days: int | None
    # Most users per weekly training snapshot: a bigger population is sampled by a hash of user_id (the same
    # users every date), so training memory stays bounded as the shop grows. Validation and test are whole.
    train_max_users: int
    # Seconds a second writer (ingest, land, publish, pins) waits for the one holding ml.writer_lock.
    writer_lock_timeout: float
    # Minutes any DAG task may run before Airflow fails it (the one-slot warehouse pool must not stall).
    task_timeout_minutes: int
    # Largest export file landing reads (it is read whole into memory), in MB.
    max_file_mb: int
    # A model is retrained on the next run when its realised ROC AUC on matured labels falls more than this
    # below its test AUC (or its score PSI passes the major band, ml.monitoring.checks).
    monitor_auc_margin: float
    # False: the monitor's alerts are written and logged but never trigger training (weekly schedule only).
    retrain_on_alert: bool
    # How XGBoost's per-user reasons are computed: "treeshap" (exact Shapley values) or "approximate" (Saabas:
    # the same additivity, about 18x faster, ml.propensity.reasons).
    score_reasons: str
    # The model families each training fits, registers and puts through the gate (all of MODEL_FLAVOURS by default).
    model_flavours: tuple[str, ...]

    @property
    def mlflow_dir(self) -> Path:
        return self.mlflow_artifact_root.parent


def settings() -> Settings:
    data_dir = _path("SHOP_DATA_DIR", PROJECT_ROOT / "data")
    mlflow_dir = _path("SHOP_MLFLOW_DIR", PROJECT_ROOT / "mlflow")
    snapshot_path = _path("SHOP_SNAPSHOT_PATH", data_dir / "analyst" / "warehouse_snapshot.duckdb")
    return Settings(
        data_dir=data_dir,
        inbox_dir=_path("SHOP_INBOX_DIR", data_dir / "inbox"),
        landing_dir=_path("SHOP_LANDING_DIR", data_dir / "landing"),
        warehouse_path=_path("SHOP_WAREHOUSE_PATH", data_dir / "warehouse.duckdb"),
        snapshot_path=snapshot_path,
        snapshot_read_dir=_path("SHOP_SNAPSHOT_READ_DIR", snapshot_path.parent),
        scores_dir=_path("SHOP_SCORES_DIR", data_dir / "scores"),
        targets_dir=_path("SHOP_TARGETS_DIR", data_dir / "targets"),
        reasons_dir=_path("SHOP_REASONS_DIR", data_dir / "score_reasons"),
        monitoring_dir=_path("SHOP_MONITORING_DIR", data_dir / "monitoring"),
        clusters_dir=_path("SHOP_CLUSTERS_DIR", data_dir / "clusters"),
        cluster_profiles_dir=_path("SHOP_CLUSTER_PROFILES_DIR", data_dir / "cluster_profiles"),
        forecasts_dir=_path("SHOP_FORECASTS_DIR", data_dir / "forecasts"),
        evaluations_dir=_path("SHOP_EVALUATIONS_DIR", data_dir / "evaluations"),
        audit_dir=_path("SHOP_AUDIT_DIR", data_dir / "audit"),
        privacy_dir=_path("SHOP_PRIVACY_DIR", data_dir / "privacy"),
        truth_dir=_path("SHOP_TRUTH_DIR", data_dir / "truth"),
        dbt_project_dir=_path("SHOP_DBT_PROJECT_DIR", PROJECT_ROOT / "dbt_project"),
        engine=_choice_env("SHOP_ENGINE", "duckdb", ENGINES),
        spark_dir=_path("SHOP_SPARK_DIR", data_dir / "spark"),
        spark_target=_choice_env("SHOP_SPARK_TARGET", "spark", SPARK_TARGETS),
        mlflow_tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{mlflow_dir / 'mlflow.db'}"),
        mlflow_artifact_root=_path("SHOP_MLFLOW_ARTIFACT_ROOT", mlflow_dir / "artifacts"),
        seed=_int_env("SHOP_SEED", 42),
        max_quarantine_share=_float_env("SHOP_MAX_QUARANTINE_SHARE", 0.05),
        daily_coupon_budget=_float_env("SHOP_DAILY_COUPON_BUDGET", 2500.0, upper=None),
        contact_cap_days=_int_env("SHOP_CONTACT_CAP_DAYS", 14),
        holdout_share=_float_env("SHOP_HOLDOUT_SHARE", 0.1),
        holdout_days=_positive_int_env("SHOP_HOLDOUT_DAYS", 28),
        holdout_salt=os.environ.get("SHOP_HOLDOUT_SALT", "shop-holdout-v1"),
        challenger_arm_share=_float_env("SHOP_CHALLENGER_ARM_SHARE", 0.2),
        gross_margin_rate=_float_env("SHOP_GROSS_MARGIN_RATE", 0.4),
        scoring_lookback_days=_optional_positive_int_env("SHOP_SCORING_LOOKBACK_DAYS"),
        feature_retention_days=_optional_positive_int_env("SHOP_FEATURE_RETENTION_DAYS"),
        train_max_users=_positive_int_env("SHOP_TRAIN_MAX_USERS", 200_000),
        source=_choice_env("SHOP_SOURCE", "inbox", SOURCES),
        dbt_tasks=_choice_env("SHOP_DBT_TASKS", "model", DBT_TASKS),
        history_batch_days=_optional_positive_int_env("SHOP_HISTORY_BATCH_DAYS"),
        late_event_days=_non_negative_int_env("SHOP_LATE_EVENT_DAYS", 3),
        writer_lock_timeout=_float_env("SHOP_WRITER_LOCK_TIMEOUT", 3600.0, upper=None),
        task_timeout_minutes=_positive_int_env("SHOP_TASK_TIMEOUT_MINUTES", 180),
        max_file_mb=_positive_int_env("SHOP_MAX_FILE_MB", 2048),
        monitor_auc_margin=_float_env("SHOP_MONITOR_AUC_MARGIN", 0.05),
        retrain_on_alert=_choice_env("SHOP_RETRAIN_ON_ALERT", "true", ("true", "false")) == "true",
        score_reasons=_choice_env("SHOP_SCORE_REASONS", "treeshap", ("treeshap", "approximate")),
        model_flavours=_choices_env("SHOP_MODEL_FLAVOURS", MODEL_FLAVOURS),
    )


def _choice_env(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, "").strip() or default
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _choices_env(name: str, choices: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated subset of `choices` (all of them when unset), in `choices`' order."""
    raw = os.environ.get(name, "").strip()
    picked = {item.strip() for item in raw.split(",") if item.strip()} if raw else set(choices)
    unknown = sorted(picked - set(choices))
    if unknown or not picked:
        raise ConfigError(
            f"{name} must be a comma-separated list of {', '.join(choices)}, got {raw!r}"
            + (f" ({', '.join(unknown)} unknown)" if unknown else "")
        )
    return tuple(choice for choice in choices if choice in picked)


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _positive_int_env(name: str, default: int) -> int:
    value = _int_env(name, default)
    if value <= 0:
        raise ConfigError(f"{name} must be a positive whole number, got {os.environ.get(name)!r}")
    return value


def _non_negative_int_env(name: str, default: int) -> int:
    value = _int_env(name, default)
    if value < 0:
        raise ConfigError(f"{name} must be 0 or a positive whole number, got {os.environ.get(name)!r}")
    return value


def _optional_positive_int_env(name: str) -> int | None:
    raw = os.environ.get(name, "").strip()
    if raw == "":
        return None
    value = _int_env(name, 0)
    if value <= 0:
        raise ConfigError(f"{name} must be a positive number of days (or unset for no limit), got {raw!r}")
    return value


def _float_env(name: str, default: float, upper: float | None = 1.0) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < 0 or (upper is not None and value > upper):
        raise ConfigError(f"{name} must be between 0 and {upper or 'any positive number'}, got {value}")
    return value
