"""Scoring every user on Spark (SHOP_ENGINE=spark): the same `score_rows` and clusters, run in the executors.

- The day's `user_features` partition is read from the Spark table's Parquet files (only that partition's
  folder: Spark prunes by the partition column).
- The champions' model folders are zipped and shipped to the executors (`SparkContext.addArchive`, as on a
  cluster); each Python worker loads them once and scores its batches with `mapInPandas`, through the same
  `ml.propensity.batch_scores.score_rows` the one-machine path runs, so a user's score does not depend on the engine
  (`make test-spark` compares to 1e-9). The reasons are a second pass over the same cached users.
- The behavioural clusters are fitted on the same sample of users as on one machine (the SAMPLE_USERS with the
  smallest `sample_keys`), assigned in the executors, and profiled from per-cluster sums.
- The driver collects that sample, the first SIGNATURE_CHECK_ROWS users for the signature check and one row of
  sums per cluster, and writes the few profile rows itself.
- Whatever the executors need from the settings (the seed, the reasons method) is read on the driver.

Spark writes each partition into `<output>/.staging/` (readers skip dot-folders); the day's folders are then
swapped in by renames. A kill before the renames leaves the old partitions whole; a kill between two swaps
leaves some of the day's outputs new and some old, which a rerun of the day (with the same pinned models)
repairs, as on one machine. A failed swap puts the old folder back.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from ml.clusters import behaviour
from ml.clusters.behaviour import CLUSTER_FEATURES, fit_clusters, profiles, sample_keys
from ml.config import settings
from ml.errors import ModelError
from ml.propensity.batch_scores import OUTPUT_COLUMNS, REASON_TYPES, score_rows
from ml.propensity.datasets import lookback_filter
from ml.propensity.sequences import CHANNELS, SEQUENCE_COLUMNS, SEQUENCE_DAYS, is_sequence_column
from ml.registry.aliases import MODEL_NAMES
from ml.storage import as_table, replace_folders, write_parquet_atomic
from ml.warehouse.spark_session import has_rows, spark_session, spark_table

SCORE_TYPES = {"user_id": "bigint"}
for _probability, _version in OUTPUT_COLUMNS.values():
    SCORE_TYPES |= {_probability: "double", _version: "string"}


def scoring_population(as_of: date | None):
    """(as_of, the day's users to score as a cached Spark DataFrame): every known user, or those within the
    lookback. `score_and_write` releases the cache."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    if not has_rows("user_features"):
        raise ModelError("user_features is empty: build features first (SHOP_ENGINE=spark python -m ml history)")
    features = spark_table("user_features")
    as_of = as_of or features.agg(F.max("as_of_date")).first()[0]
    population = features.where(F.col("as_of_date") == F.lit(as_of)).where(lookback_filter())
    # Read once: the checks, the clustering sample and both scoring passes reuse it.
    population = population.persist(StorageLevel.MEMORY_AND_DISK)
    if population.isEmpty():
        population.unpersist()
        raise ModelError(f"no users to score as of {as_of}: user_features has no rows for that date")
    return as_of, population


def with_sequences(population, columns: list[str]):
    """The day's users with their activity sequences (ml.propensity.sequences) when `columns` (the champions'
    inputs) ask for them, built by Spark from `int_user_days_aggregated` as `sequences.with_sequences` builds
    them on one machine; cached in the population's place."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    if not any(is_sequence_column(c) for c in columns):
        return population
    as_of = population.agg(F.max("as_of_date")).first()[0]  # one day's population
    # Only the window's partitions: the join condition alone would scan every day.
    days = spark_table("int_user_days_aggregated").where(
        F.col("activity_date").between(F.date_sub(F.lit(as_of), SEQUENCE_DAYS), F.lit(as_of))
    )
    keys = population.select("user_id", "as_of_date")
    active = keys.join(days, "user_id").where(
        (F.col("activity_date") < F.col("as_of_date"))
        & (F.col("activity_date") >= F.date_sub(F.col("as_of_date"), SEQUENCE_DAYS))
    )
    days_before = F.datediff(F.col("as_of_date"), F.col("activity_date"))
    wide = active.groupBy("user_id").agg(
        *[
            F.sum(F.when(days_before == day, F.col(column))).cast("float").alias(f"seq_{channel}_d{day:02d}")
            for day in range(SEQUENCE_DAYS, 0, -1)
            for channel, column in CHANNELS.items()
        ]
    )
    joined = population.join(wide, "user_id", "left").fillna(0.0, subset=SEQUENCE_COLUMNS)
    joined = joined.persist(StorageLevel.MEMORY_AND_DISK)
    joined.count()  # cached from the population's cache before that is released
    population.unpersist()
    return joined


def score_and_write(as_of: date, population, loaded: dict[str, tuple[Any, str, list[str]]]) -> dict[str, Any]:
    """Score, explain and cluster the day's users in Spark's executors and write the day's partitions."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    cfg = settings()
    method = cfg.score_reasons  # read here: the executors' environment is not the driver's
    scores = None
    try:
        with tempfile.TemporaryDirectory(prefix="shop-models-") as shipped:
            models = ship_models(loaded, Path(shipped))
            clusters = fit_clusters(cluster_sample(population, cfg.seed), as_of)

            def scored(batches):
                ready = shipped_models(models)
                for batch in batches:
                    out, _ = score_rows(batch, ready, reasons=None)
                    cluster_ids, raw = clusters.assign(batch)
                    out["cluster_id"] = cluster_ids.astype("int64")
                    yield as_objects(pd.concat([out, pd.DataFrame(raw, columns=list(CLUSTER_FEATURES))], axis=1))

            def explained(batches):
                ready = shipped_models(models)
                for batch in batches:
                    yield as_objects(score_rows(batch, ready, reasons=method)[1])

            columns = SCORE_TYPES | {"cluster_id": "bigint"} | dict.fromkeys(CLUSTER_FEATURES, "double")
            scores = population.mapInPandas(scored, schema(columns)).persist(StorageLevel.MEMORY_AND_DISK)
            sums = scores.groupBy("cluster_id").agg(
                F.count("*").alias("n_users"), *[F.sum(c).alias(c) for c in CLUSTER_FEATURES]
            )
            profile = profiles(clusters, sums.toPandas())
            users = scores.count()
            partition = f"as_of_date={as_of}"
            replace_folders(
                {
                    cfg.scores_dir / partition: lambda to: scores.select(*SCORE_TYPES).write.parquet(to),
                    cfg.reasons_dir / partition: lambda to: population.mapInPandas(
                        explained, schema(REASON_TYPES)
                    ).write.parquet(to),
                    cfg.clusters_dir / partition: lambda to: scores.select("user_id", "cluster_id").write.parquet(to),
                    cfg.cluster_profiles_dir / partition: lambda to: write_parquet_atomic(
                        as_table(profile), Path(to) / "part-0.parquet"
                    ),
                }
            )
    finally:
        if scores is not None:
            scores.unpersist()
        population.unpersist()
    return {"users_scored": users, "behaviour_clusters": len(profile), "path": str(cfg.scores_dir / partition)}


def ship_models(
    loaded: dict[str, tuple[Any, str, list[str]]], folder: Path, names: dict[str, str] = MODEL_NAMES
) -> dict[str, tuple[str, str, list[str]]]:
    """Zip each model version's folder and ship it to every executor; each task's (archive name, version, inputs).
    `names`: each task's registered model."""
    from mlflow.artifacts import download_artifacts

    models = {}
    for task, (_, version, columns) in loaded.items():
        name = f"{names[task]}-v{version}-{uuid.uuid4().hex[:8]}"
        download_artifacts(artifact_uri=f"models:/{names[task]}/{version}", dst_path=str(folder / name))
        archive = shutil.make_archive(str(folder / name), "zip", root_dir=folder / name)
        spark_session().sparkContext.addArchive(archive)
        models[task] = (Path(archive).name, version, columns)
    return models


# The models an executor's Python worker loaded, by shipped archive: loaded once per worker and scoring day.
_SHIPPED: dict[str, Any] = {}


def shipped_models(models: dict[str, tuple[str, str, list[str]]]) -> dict[str, tuple[Any, str, list[str]]]:
    """In an executor: each task's (model, version, input columns), from the archives `ship_models` sent."""
    import mlflow.pyfunc
    from pyspark import SparkFiles

    wanted = {name for name, _, _ in models.values()}
    for stale in set(_SHIPPED) - wanted:  # an earlier day's models, in a reused worker
        del _SHIPPED[stale]
    for name in wanted - set(_SHIPPED):
        _SHIPPED[name] = mlflow.pyfunc.load_model(SparkFiles.get(name))  # the archive, unpacked
    return {task: (_SHIPPED[name], version, columns) for task, (name, version, columns) in models.items()}


def cluster_sample(population, seed: int) -> pd.DataFrame:
    """The SAMPLE_USERS users with the smallest `sample_keys`, in key order, as `ml.clusters.behaviour.cluster_sample`
    picks them on one machine: the same users on both engines, so the same clusters."""
    keyed = population.select("user_id", *CLUSTER_FEATURES).mapInPandas(
        lambda batches: (b.assign(sample_key=sample_keys(b["user_id"], seed)) for b in batches),
        schema({"user_id": "bigint"} | dict.fromkeys(CLUSTER_FEATURES, "double") | {"sample_key": "bigint"}),
    )
    return keyed.orderBy("sample_key", "user_id").limit(behaviour.SAMPLE_USERS).toPandas().drop(columns="sample_key")


def as_objects(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as plain Python objects: Spark's Arrow writer takes no chunked (pyarrow-backed) strings."""
    text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    return frame.astype(dict.fromkeys(text, object))


def schema(types: dict[str, str]) -> str:
    return ", ".join(f"`{name}` {kind}" for name, kind in types.items())
