"""The daily `monitor` step: how the champion models do after they ship, one partition per scoring date.

For the run's as-of date D it writes:
- **pending** rows for D's realised metrics (its labels close 30 days later) and the **drift** of D's scores
  and of every model input against the version's training window (PSI, ml.propensity.drift_reference);
- **realised** rows for every scoring date among the newest 30 whose labels have matured and that has none
  yet: the scores the pipeline wrote that day (`scored_by = daily`), or, where it wrote none (a new install's
  past), scores of the champion on that date's features (`backfill`), only for dates after the version's
  newest training snapshot, so no figure is measured on rows the version learnt from.
Nothing here fails the day on a warning or an alert: the rows say it, the next run retrains on an alert
(retrain_reason), and ml.monitoring.report logs them to MLflow.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ml.config import LABEL_HORIZON_DAYS, settings
from ml.day_pins import pins
from ml.monitoring.checks import REALISED, RETRAIN_ON, auc_noise, check_rows, realised_metrics
from ml.propensity.batch_scores import OUTPUT_COLUMNS
from ml.propensity.datasets import TASKS, load_labelled, model_inputs, population_filter
from ml.propensity.drift_reference import REFERENCE_ARTIFACT, SCORE, psi_of_shares, shares_in_sql
from ml.propensity.sequences import with_sequences
from ml.registry.aliases import MODEL_NAMES, champion_version, load_version
from ml.registry.tracking import client
from ml.storage import write_parquet_files_atomic
from ml.warehouse.read import connect_read_only, matured_dates
from ml.writer_lock import locked

log = logging.getLogger(__name__)
WINDOW_DAYS = 30  # the newest matured scoring dates that carry realised figures
SCHEMA = pa.schema(
    [
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("metric", pa.string()),
        ("feature", pa.string()),
        ("value", pa.float64()),
        ("reference_value", pa.float64()),
        ("warn_threshold", pa.float64()),
        ("alert_threshold", pa.float64()),
        ("status", pa.string()),
        ("n_users", pa.int64()),
        ("scored_by", pa.string()),
        ("monitored_on", pa.date32()),
    ]
)


def partition(scoring_date: date):
    return settings().monitoring_dir / f"scoring_date={scoring_date}" / "part-0.parquet"


def read_rows(scoring_date: date) -> pd.DataFrame:
    path = partition(scoring_date)
    return pd.read_parquet(path) if path.exists() else pd.DataFrame(columns=SCHEMA.names)


def version_tags(name: str, version: str) -> dict[str, str]:
    return dict(client().get_model_version(name, version).tags)


def references(tags: dict[str, str]) -> dict[str, float]:
    return {key: float(value) for key, value in tags.items() if key.startswith("test_") and key != "test_date"}


def reference_bins(tags: dict[str, str]) -> dict | None:
    """The version's training-window bins (logged at training); None for a version trained before they were."""
    import mlflow

    try:
        return mlflow.artifacts.load_dict(f"runs:/{tags['run_id']}/{REFERENCE_ARTIFACT}")
    except Exception:  # an older version, or an artifact store that is out of reach: no drift rows, say so
        log.warning("no drift reference for run %s: PSI rows are left out", tags.get("run_id"))
        return None


def stored_scores(scoring_date: date, task: str) -> str | None:
    """The task's scores the pipeline wrote for a date as a SQL subquery (user_id, probability, version), or
    None where it wrote none."""
    # One file from the scoring step on one machine, several from Spark's executors.
    path = settings().scores_dir / f"as_of_date={scoring_date}"
    if not any(path.glob("*.parquet")):
        return None
    probability, version = OUTPUT_COLUMNS[task]
    files = str(path / "*.parquet").replace("'", "''")
    return (
        f"(select user_id, {probability} as probability, {version} as version from read_parquet('{files}') "
        f"where {probability} is not null and {version} is not null)"
    )


def realised_rows(con, task: str, scoring_date: date, champion: tuple | None) -> list[dict]:
    """The realised checks of one matured scoring date; [] when it can be measured neither way. The daily
    scores are joined to the labels by the engine: two numbers per user reach this process."""
    name = MODEL_NAMES[task]
    scores = stored_scores(scoring_date, task)
    if scores is not None:
        label = TASKS[task]["label"]
        joined = con.execute(
            f"""
            select l.{label} as label, s.probability, s.version
            from {scores} as s
            join user_features as f on f.user_id = s.user_id
            join training_labels as l on l.user_id = f.user_id and l.as_of_date = f.as_of_date
            where f.as_of_date = ? and {population_filter(task, prefix="f.")} and l.{label} is not null
            order by f.user_id
            """,
            [scoring_date],
        ).df()
        if joined.empty:
            return []
        version, scored_by = str(joined["version"].iloc[0]), "daily"
        y, proba = joined["label"].to_numpy(), joined["probability"].to_numpy()
    else:
        labelled = load_labelled(con, task, [scoring_date])
        if labelled.empty or champion is None:
            return []
        model, version, tags = champion
        train_end = date.fromisoformat(tags.get("train_end_date", tags.get("test_date", "9999-12-31")))
        if scoring_date <= train_end:
            return []
        columns = [c.name for c in model.metadata.get_input_schema().inputs]
        proba = np.asarray(model.predict(model_inputs(with_sequences(labelled, columns, con), columns)))[:, 1]
        y, scored_by = labelled["label"].to_numpy(), "backfill"
    tags = champion[2] if champion and champion[1] == version else version_tags(name, version)
    metrics = realised_metrics(y, proba)
    positives = int(np.sum(y))
    noise = {"roc_auc": auc_noise(metrics["roc_auc"], positives, len(y) - positives)}
    rows = check_rows(metrics, references(tags), noise=noise)
    return [
        {**row, "model_name": name, "model_version": version, "n_users": len(y), "scored_by": scored_by} for row in rows
    ]


def drift_rows(con, as_of: date, task: str, version: str, tags: dict) -> list:
    """PSI of the day's scores and of every model input against the version's training window, from bin counts
    the engine makes (ml.propensity.drift_reference.shares_in_sql)."""
    bins = reference_bins(tags)
    scores = stored_scores(as_of, task)
    if bins is None or scores is None:
        return []
    shares = shares_in_sql(con, bins[SCORE], "probability", f"from {scores} as s", [])
    rows = check_rows({"score_psi": psi_of_shares(bins[SCORE], shares)}, {})
    members = f"from user_features where as_of_date = ? and {population_filter(task)}"
    known = {column[0] for column in con.execute("select * from user_features limit 0").description}
    for column in [c for c in bins if c != SCORE and c in known]:
        shares = shares_in_sql(con, bins[column], column, members, [as_of])
        rows += check_rows({"feature_psi": psi_of_shares(bins[column], shares)}, {}, feature=column)
    n_users = con.execute(f"select count(*) {members}", [as_of]).fetchone()[0]
    return owned(rows, MODEL_NAMES[task], version, n_users, "daily")


def owned(rows: list[dict], name: str, version: str, n_users: int, scored_by: str) -> list[dict]:
    return [
        {**row, "model_name": name, "model_version": version, "n_users": n_users, "scored_by": scored_by}
        for row in rows
    ]


def pending_rows(task: str, version: str, n_users: int) -> list[dict]:
    return owned(check_rows(dict.fromkeys(REALISED, float("nan")), {}), MODEL_NAMES[task], version, n_users, "daily")


def matured_before(con, as_of: date) -> list[date]:
    """Scoring dates whose label window closed by `as_of` (what a run that day can measure)."""
    return [d for d in matured_dates(con) if d + timedelta(days=LABEL_HORIZON_DAYS) <= as_of]


def merged(kept: pd.DataFrame, new: pd.DataFrame, whole: bool) -> pd.DataFrame:
    """A partition's rows with the new ones in: a model's rows of the run's own date are replaced whole (a
    rerun), on an earlier date only its realised ones (pending until now); other models' rows stay."""
    if kept.empty:
        return new
    stale = kept["model_name"].isin(new["model_name"]) & (whole | kept["metric"].isin(REALISED))
    return pd.concat([kept[~stale], new], ignore_index=True)


@locked("monitor")
def monitor_day(as_of: date) -> dict[str, Any]:
    """Write the day's monitoring partitions (see the module's docstring); a summary of what they say."""
    pinned = pins(as_of).get("models", {})
    new: dict[date, list[dict]] = {}
    with connect_read_only() as con:
        window = matured_before(con, as_of)[-WINDOW_DAYS:]
        for task, name in MODEL_NAMES.items():
            version = pinned.get(name) or champion_version(name)
            if version is None:
                continue
            model, version = load_version(name, version)
            champion = (model, version, version_tags(name, version))
            today = stored_scores(as_of, task)
            n_today = 0 if today is None else con.execute(f"select count(*) from {today}").fetchone()[0]
            new.setdefault(as_of, []).extend(pending_rows(task, version, n_today))
            new[as_of].extend(drift_rows(con, as_of, task, version, champion[2]))
            for scoring_date in window:
                done = read_rows(scoring_date)
                # Realised once: a date's own run left pending and drift rows, which do not count.
                realised = done["metric"].isin(REALISED) & (done["status"] != "pending")
                if ((done["model_name"] == name) & realised).any():
                    continue
                new.setdefault(scoring_date, []).extend(realised_rows(con, task, scoring_date, champion))
    files = {}
    for scoring_date, rows in new.items():
        if rows:
            frame = merged(
                read_rows(scoring_date), pd.DataFrame(rows).assign(monitored_on=as_of), scoring_date == as_of
            )
            files[partition(scoring_date)] = pa.Table.from_pandas(
                frame[SCHEMA.names], schema=SCHEMA, preserve_index=False
            )
    write_parquet_files_atomic(files)
    written_rows = [row for rows in new.values() for row in rows]
    return {
        "as_of_date": str(as_of),
        "scoring_dates": sorted(str(d) for d, rows in new.items() if rows),
        "alerts": sorted({alert_text(r) for r in written_rows if r["status"] == "alert"}),
        "warnings": sum(r["status"] == "warn" for r in written_rows),
    }


def alert_text(row) -> str:
    feature = f" of {row['feature']}" if row.get("feature") else ""
    return f"{row['model_name']} {row['metric']}{feature}"


def all_rows() -> pd.DataFrame:
    paths = sorted(settings().monitoring_dir.glob("scoring_date=*/part-0.parquet"))
    frames = [pd.read_parquet(p).assign(scoring_date=p.parent.name.split("=")[1]) for p in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*SCHEMA.names, "scoring_date"])


def retrain_reason(as_of: date) -> str | None:
    """Why the champions need training before `as_of`'s run: an alert the monitor raised on an earlier day."""
    rows = all_rows()
    if rows.empty:
        return None
    champions = {name: champion_version(name) for name in MODEL_NAMES.values()}
    alerts = rows[
        (rows["model_version"] == rows["model_name"].map(champions))
        & (rows["status"] == "alert")
        & rows["metric"].isin(RETRAIN_ON)
        & (pd.to_datetime(rows["monitored_on"]).dt.date < as_of)
    ]
    reasons = [
        f"{r.model_name} v{r.model_version} {r.metric} {r.value:.3f} past {r.alert_threshold:.3f} on {r.scoring_date}"
        for r in alerts.sort_values("scoring_date").itertuples()
    ]
    return "; ".join(reasons[:3]) or None
