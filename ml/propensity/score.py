"""Daily scoring: every known user, as of a date, with the `@champion` models.

Each model scores its own population (ml.propensity.datasets.TASKS): purchase propensity for every known user, churn
risk for users active in the last 30 days (null for the rest). `SHOP_SCORING_LOOKBACK_DAYS` narrows both.

Writes one Parquet partition per as-of date (replaced whole on rerun) that dbt reads as a source, and beside
it the top reasons behind each user's scores (ml.propensity.reasons; `user_score_reasons`) and each user's
behavioural cluster with the clusters' profiles (ml.clusters.behaviour; `user_clusters`, `cluster_profiles`).
If a champion's signature does not match the features, it stops with a clear error and writes nothing.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd

from ml.clusters.behaviour import cluster_day
from ml.config import settings
from ml.day_pins import pin, pins
from ml.errors import ModelError
from ml.propensity.batch_scores import score_rows
from ml.propensity.datasets import load_scoring_population
from ml.propensity.sequences import is_sequence_column, with_sequences
from ml.registry.aliases import MODEL_NAMES, load_version
from ml.storage import as_table, write_parquet_files_atomic
from ml.warehouse.read import connect_read_only
from ml.writer_lock import locked


def check_signature(model, frame: pd.DataFrame, name: str, version: str) -> list[str]:
    """The model's input columns; ModelError naming what is missing or mistyped."""
    schema = model.metadata.get_input_schema()
    if schema is None:
        raise ModelError(f"{name} v{version} was logged without a signature; it cannot be checked, so it is not used")
    expected = {c.name: c.type.name for c in schema.inputs}
    # The sequence network's inputs are not user_features columns: they are attached when scoring needs them.
    missing = sorted(c for c in set(expected) - set(frame.columns) if not is_sequence_column(c))
    if missing:
        raise ModelError(
            f"{name}@champion v{version} expects features that user_features lacks: {', '.join(missing)}. "
            "Retrain (python -m ml train) or roll back to a matching version; no scores were written."
        )
    for column, kind in expected.items():
        if column not in frame:
            continue
        numeric = pd.api.types.is_numeric_dtype(frame[column])
        if (kind == "string") == numeric and not frame[column].isna().all():
            raise ModelError(
                f"{name}@champion v{version} expects {column} as {kind}, user_features has "
                f"{frame[column].dtype}; no scores were written."
            )
    return list(expected)


@locked("score")
def score_day(as_of: date | None = None) -> dict[str, Any]:
    """Score the population as of `as_of` (default: the newest built) into `scores/as_of_date=<as_of>/`.

    The first run of a day uses the `@champion` versions and pins them; a rerun uses the pinned ones. With
    SHOP_ENGINE=spark the users are scored on Spark (ml.propensity.spark_scoring) by the same `score_rows`.
    """
    if settings().engine == "spark":
        from ml.propensity import spark_scoring

        as_of, population = spark_scoring.scoring_population(as_of)
        loaded = champions(as_of, population.limit(SIGNATURE_CHECK_ROWS).toPandas())
        population = spark_scoring.with_sequences(population, model_inputs_of(loaded))
        summary = spark_scoring.score_and_write(as_of, population, loaded)
    else:
        with connect_read_only() as con:
            as_of = as_of or con.execute("select max(as_of_date) from user_features").fetchone()[0]
            if as_of is None:
                raise ModelError("user_features is empty: build features first (python -m ml history)")
            population = load_scoring_population(con, as_of)
        if population.empty:
            raise ModelError(f"no users to score as of {as_of}: user_features has no rows for that date")
        loaded = champions(as_of, population)
        population = with_sequences(population, model_inputs_of(loaded))
        summary = score_and_write(as_of, population, loaded)
    versions = {MODEL_NAMES[task]: version for task, (_, version, _) in loaded.items()}
    pin(as_of, models={name: str(v) for name, v in versions.items()})
    return {"as_of_date": str(as_of), "model_versions": versions, **summary}


# The users whose features a Spark run checks the champions' signatures on before scoring anyone.
SIGNATURE_CHECK_ROWS = 1000


def model_inputs_of(loaded: dict[str, tuple[Any, str, list[str]]]) -> list[str]:
    """Every input column the loaded models read."""
    return [column for _, _, columns in loaded.values() for column in columns]


def champions(as_of: date, features: pd.DataFrame) -> dict[str, tuple[Any, str, list[str]]]:
    """Each task's (model, version, input columns): the versions the day's first run pinned, else the
    `@champion`s, each checked against the features before anything is written."""
    # A rerun of the day scores with the versions its first run used (ml.day_pins), not today's champions.
    pinned = pins(as_of).get("models", {})
    loaded = {}
    for task, name in MODEL_NAMES.items():
        model, version = load_version(name, pinned.get(name))
        loaded[task] = (model, version, check_signature(model, features, name, version))
    return loaded


def score_and_write(as_of: date, population: pd.DataFrame, loaded: dict) -> dict[str, Any]:
    """Score the day's users in this process and write the day's partitions."""
    out, reasons = score_rows(population, loaded, settings().score_reasons)
    cfg = settings()
    partition = f"as_of_date={as_of}/part-0.parquet"
    target = cfg.scores_dir / partition
    clusters, profiles = cluster_day(population, as_of)
    # Scores, their reasons and the day's clusters land together: a rerun, or a kill between the renames,
    # replaces them all.
    write_parquet_files_atomic(
        {
            target: as_table(out),
            cfg.reasons_dir / partition: as_table(reasons),
            cfg.clusters_dir / partition: as_table(clusters),
            cfg.cluster_profiles_dir / partition: as_table(profiles),
        }
    )
    # A day the other engine scored before holds its executors' files too: they would count every user twice.
    for folder in (cfg.scores_dir, cfg.reasons_dir, cfg.clusters_dir, cfg.cluster_profiles_dir):
        for other in (folder / f"as_of_date={as_of}").glob("*.parquet"):
            if other.name != "part-0.parquet":
                other.unlink()
    return {"users_scored": len(out), "behaviour_clusters": len(profiles), "path": str(target)}
