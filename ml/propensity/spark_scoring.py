"""Scoring every user on Spark (SHOP_ENGINE=spark): the same `score_rows` and clusters, run in the executors.

- The day's `user_features` partition is read from the Spark table's Parquet files (only that partition's
  folder: Spark prunes by the partition column).
- The champions' model folders are shipped to the executors (`SparkContext.addFile`); each Python worker loads
  them once and scores its batches with `mapInPandas`, through the same `ml.propensity.score.score_rows` the
  one-machine path runs, so a user's score does not depend on the engine (`make test-spark` compares to 1e-9).
- The behavioural clusters are fitted on the same sample of users as on one machine (the SAMPLE_USERS with the
  smallest `sample_keys`), assigned in the executors, and profiled from per-cluster sums.
- The driver collects only that sample, the first rows for the signature check and one row of sums per cluster.

Spark writes each partition into a staging folder beside the output folder; the day's folders are then swapped
in by renames. A kill before the renames leaves the old partitions whole; a kill between two leaves some new and
some old, which a rerun of the day (with the same pinned models) repairs, as on one machine.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from ml.clusters.behaviour import CLUSTER_FEATURES, SAMPLE_USERS, fit_clusters, profiles, sample_keys
from ml.config import settings
from ml.errors import ModelError
from ml.propensity.datasets import lookback_filter
from ml.propensity.score import OUTPUT_COLUMNS, REASON_COLUMNS, score_rows
from ml.registry.aliases import MODEL_NAMES
from ml.storage import as_table, fsync_folder, write_parquet_atomic
from ml.warehouse.spark_session import spark_session, spark_tables_dir

SCORE_TYPES = {"user_id": "bigint"}
for _probability, _version in OUTPUT_COLUMNS.values():
    SCORE_TYPES |= {_probability: "double", _version: "string"}
REASON_TYPES = {
    "user_id": "bigint",
    "model_name": "string",
    "model_version": "string",
    "reason_rank": "bigint",
    "feature": "string",
    "contribution": "double",
    "base_value": "double",
    "margin": "double",
    "feature_value": "string",
    "direction": "string",
    "reason": "string",
}
assert list(REASON_TYPES) == REASON_COLUMNS


def scoring_population(as_of: date | None):
    """(as_of, the day's users to score as a Spark DataFrame): every known user, or those within the lookback."""
    from pyspark.sql import functions as F

    table = spark_tables_dir() / "user_features"
    if not any(table.glob("as_of_date=*/*.parquet")):
        raise ModelError("user_features is empty: build features first (SHOP_ENGINE=spark python -m ml history)")
    features = spark_session().read.parquet(str(table))
    as_of = as_of or features.agg(F.max("as_of_date")).first()[0]
    # Decimals as doubles, as DuckDB hands them to pandas: the models' inputs are floats either way.
    decimals = {f.name for f in features.schema if f.dataType.typeName() == "decimal"}
    features = features.select(*[F.col(c).cast("double") if c in decimals else F.col(c) for c in features.columns])
    population = features.where(F.col("as_of_date") == F.lit(as_of)).where(lookback_filter())
    if population.isEmpty():
        raise ModelError(f"no users to score as of {as_of}: user_features has no rows for that date")
    return as_of, population


def score_and_write(as_of: date, population, loaded: dict[str, tuple[Any, str, list[str]]]) -> dict[str, Any]:
    """Score, explain and cluster the day's users in Spark's executors and write the day's partitions."""
    from mlflow.artifacts import download_artifacts
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    spark = spark_session()
    cfg = settings()
    with tempfile.TemporaryDirectory(prefix="shop-models-") as shipped:
        # The executors load the models from their own copy of each model's folder (on a cluster: shipped to them).
        models = {}
        for task, (_, version, columns) in loaded.items():
            folder = Path(shipped) / f"{MODEL_NAMES[task]}-v{version}-{uuid.uuid4().hex[:8]}"
            download_artifacts(artifact_uri=f"models:/{MODEL_NAMES[task]}/{version}", dst_path=str(folder))
            spark.sparkContext.addFile(str(folder), recursive=True)
            models[task] = (folder.name, version, columns)
        clusters = fit_clusters(cluster_sample(population), as_of)

        def scored(batches):
            ready = shipped_models(models)
            for batch in batches:
                out, _ = score_rows(batch.reset_index(drop=True), ready, with_reasons=False)
                cluster_ids, raw = clusters.assign(batch)
                out["cluster_id"] = cluster_ids.astype("int64")
                yield as_objects(pd.concat([out, pd.DataFrame(raw, columns=list(CLUSTER_FEATURES))], axis=1))

        def explained(batches):
            ready = shipped_models(models)
            for batch in batches:
                yield as_objects(score_rows(batch.reset_index(drop=True), ready)[1])

        day = population.persist(StorageLevel.MEMORY_AND_DISK)
        scored_schema = schema(SCORE_TYPES | {"cluster_id": "bigint"} | dict.fromkeys(CLUSTER_FEATURES, "double"))
        scores = day.mapInPandas(scored, scored_schema).persist(StorageLevel.MEMORY_AND_DISK)
        sums = scores.groupBy("cluster_id").agg(
            F.count("*").alias("n_users"), *[F.sum(c).alias(c) for c in CLUSTER_FEATURES]
        )
        profile = profiles(clusters, sums.toPandas())
        partition = f"as_of_date={as_of}"
        staged = {
            cfg.scores_dir / partition: lambda folder: scores.select(*SCORE_TYPES).write.parquet(folder),
            cfg.reasons_dir / partition: lambda folder: day.mapInPandas(explained, schema(REASON_TYPES)).write.parquet(
                folder
            ),
            cfg.clusters_dir / partition: lambda folder: scores.select("user_id", "cluster_id").write.parquet(folder),
            cfg.cluster_profiles_dir / partition: lambda folder: write_parquet_atomic(
                as_table(profile), Path(folder) / "part-0.parquet"
            ),
        }
        try:
            users = scores.count()
            swap_in(staged)
        finally:
            scores.unpersist()
            day.unpersist()
    return {"users_scored": users, "behaviour_clusters": len(profile), "path": str(cfg.scores_dir / partition)}


# The models an executor's Python worker loaded, by shipped folder name: loaded once per worker, not per batch.
_SHIPPED: dict[str, Any] = {}


def shipped_models(models: dict[str, tuple[str, str, list[str]]]) -> dict[str, tuple[Any, str, list[str]]]:
    """In an executor: each task's (model, version, input columns), from the folders `score_and_write` shipped."""
    import mlflow.pyfunc
    from pyspark import SparkFiles

    for name, _, _ in models.values():
        if name not in _SHIPPED:
            _SHIPPED[name] = mlflow.pyfunc.load_model(SparkFiles.get(name))
    return {task: (_SHIPPED[name], version, columns) for task, (name, version, columns) in models.items()}


def cluster_sample(population) -> pd.DataFrame:
    """The SAMPLE_USERS users with the smallest `sample_keys`, as `ml.clusters.behaviour.cluster_sample` picks on
    one machine: the same users on both engines, so the same clusters."""
    keyed = population.select("user_id", *CLUSTER_FEATURES).mapInPandas(
        lambda batches: (b.assign(sample_key=sample_keys(b["user_id"])) for b in batches),
        schema({"user_id": "bigint"} | dict.fromkeys(CLUSTER_FEATURES, "double") | {"sample_key": "bigint"}),
    )
    return keyed.orderBy("sample_key", "user_id").limit(SAMPLE_USERS).toPandas()


def as_objects(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as plain Python objects: Spark's Arrow writer takes no chunked (pyarrow-backed) strings."""
    text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    return frame.astype(dict.fromkeys(text, object))


def schema(types: dict[str, str]) -> str:
    return ", ".join(f"`{name}` {kind}" for name, kind in types.items())


def swap_in(writers: dict[Path, Any]) -> None:
    """Write each partition folder aside (`writers`: final folder -> a function writing a folder), then rename
    each over its final folder."""
    token = uuid.uuid4().hex
    staged = {}
    try:
        for final, write in writers.items():
            root = final.parent.parent / f".{final.parent.name}-staging" / token
            root.mkdir(parents=True, exist_ok=True)
            staged[final] = root / final.name
            write(str(staged[final]))
            for other in staged[final].iterdir():  # Spark's _SUCCESS marker and Hadoop's .crc checksums
                if other.suffix != ".parquet":
                    other.unlink()
        for final, folder in staged.items():
            final.parent.mkdir(parents=True, exist_ok=True)
            old = folder.with_name(f"{folder.name}.old")
            if final.exists():
                final.rename(old)
            folder.rename(final)
            fsync_folder(final.parent)
            shutil.rmtree(old, ignore_errors=True)
    finally:
        for folder in staged.values():
            shutil.rmtree(folder.parent, ignore_errors=True)
