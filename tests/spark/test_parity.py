"""One dbt project, two engines: the same landed shop built on DuckDB and on Spark (local mode) gives the same rows.

`make test-spark` runs this (it needs the `spark` dependency group and Java 17+; `make test` leaves it out). A small
simulated shop's history is built in batches on both engines; then two daily runs: the whole day on DuckDB (land,
features, train, score, segments, forecast, send list, targeting marts), and on Spark the same dbt builds and
checks, reading the same landed files and the same Parquet the Python steps wrote. Every table Spark built is then
compared row for row with DuckDB's (floats to 1e-9 relative). The Spark tables are read from their Parquet
files, so the comparison needs no Spark session of its own.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pytest

pytestmark = pytest.mark.spark

# Every table the three dbt groups build, the issue's list first (views over the Python steps' Parquet, which both
# engines read from the same files, are not tables: user_clusters, cluster_profiles, user_score_reasons,
# segment_forecasts and the staging views).
COMPARED = [
    "user_features",
    "training_labels",
    "campaign_outcomes",
    "user_segments",
    "coupon_targets",
    "coupon_results",
    "events_quarantine",
    "landing_daily_summary",
    "segment_daily_activity",
    "user_recommendations",
    "recommendation_quality",
    "int_events_checked",
    "int_user_days_aggregated",
    "int_sessions_aggregated",
    "int_user_category_days",
    "int_coupon_target_outcomes",
    "int_user_lifetime_as_of",
    "int_users_resolved",
    "int_as_of_dates",
    "model_monitoring",
    "model_promotions",
    "policy_evaluations",
    "coupon_catalogue",
    # A table on Spark only: the send list reads it from its files (on DuckDB a view).
    "stg_landing__coupon_sends",
]


@pytest.fixture(scope="module")
def both_engines(tmp_path_factory) -> Path:
    """A 600-user, 110-day shop built on DuckDB and on Spark from the same landed files; its data folder."""
    from ml.pipeline import run_day
    from ml.sim.run import simulate
    from ml.sim.shop import ShopSpec
    from ml.warehouse.builds import build_feature_history
    from ml.warehouse.history import WARM_UP_DAYS, build_history, history_batch_days, landed_days

    root = tmp_path_factory.mktemp("engines")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHOP_DATA_DIR", str(root / "data"))
        mp.setenv("SHOP_MLFLOW_DIR", str(root / "mlflow"))
        # Two history batches after the warm-up: the second continues the first's lifetime totals incrementally.
        # 110 days: the daily runs train, which needs labels matured 30 days before a test date and a history before it.
        mp.setenv("SHOP_HISTORY_BATCH_DAYS", "40")
        # Clusters fitted on a sample of the users (5,000 by default: more than this shop has), picked alike by both.
        mp.setattr("ml.clusters.behaviour.SAMPLE_USERS", 250)
        simulate(ShopSpec(seed=11, users=600, days=110, start=date(2026, 1, 1)))
        # Rows that break the validation rules, in a history day and in a day the daily runs land.
        inbox = root / "data" / "inbox" / "events"
        for day in (date(2026, 2, 10), date(2026, 4, 19)):
            with_bad_rows(inbox / f"events_{day}.parquet")
        remaining = build_history(keep_last=2)
        assert remaining[0] == date(2026, 4, 19)
        landed = landed_days()
        mp.setenv("SHOP_ENGINE", "spark")
        build_feature_history(landed[0], landed[-1], landed[0] + timedelta(days=WARM_UP_DAYS), history_batch_days())
        for day in remaining:
            mp.delenv("SHOP_ENGINE")
            landed = run_day(day, skip={"publish"})["land_day"]
            keep_python_outputs(root / "data", root / "duckdb_outputs", landed["as_of_date"])
            # The same day on Spark, every step after the landing: the day's pins (its model versions, its
            # training decision, its policy) make it the rerun of the same day, so its Python steps must write
            # what DuckDB's run wrote.
            mp.setenv("SHOP_ENGINE", "spark")
            run_day(day, skip={"land_day"}, landed=landed)
    return root / "data"


# The Python steps' outputs that the day's scoring writes: kept from the DuckDB run before Spark's run replaces them.
SCORED_OUTPUTS = ("scores", "score_reasons", "clusters", "cluster_profiles")


def keep_python_outputs(data: Path, kept: Path, as_of: str) -> None:
    import shutil

    for output in SCORED_OUTPUTS:
        shutil.copytree(data / output / f"as_of_date={as_of}", kept / output / f"as_of_date={as_of}")


def with_bad_rows(export: Path) -> None:
    """Add rows to a day's export that break each validation rule (and a duplicate of its first row)."""
    import pandas as pd

    events = pd.read_parquet(export)
    good = events.iloc[0]
    bad = [
        {**good, "event_id": "bad-type", "event_type": "wishlist"},
        {**good, "event_id": "bad-price", "price": -5.0},
        {**good, "event_id": "bad-day", "event_at": good["event_at"] + timedelta(days=2)},
        {**good, "event_id": "bad-user", "user_id": 999_999},
        {**good},
    ]
    pd.concat([events, pd.DataFrame(bad)], ignore_index=True).to_parquet(export)


def spark_tables(data: Path) -> Path:
    """The folder of the Spark schema's tables, one folder of Parquet files each."""
    return data / "spark" / "warehouse" / "shop.db"


def spark_relation(con: duckdb.DuckDBPyConnection, data: Path, table: str) -> duckdb.DuckDBPyRelation:
    """A Spark table read from its Parquet files (partition folders become their column)."""
    folder = spark_tables(data) / table
    assert folder.is_dir(), f"Spark built no table {table} ({folder})"
    partitioned = any(child.is_dir() and "=" in child.name for child in folder.iterdir())
    files = f"{folder}/*/*.parquet" if partitioned else f"{folder}/*.parquet"
    return con.sql(f"select * from read_parquet('{files}', hive_partitioning = {str(partitioned).lower()})")


def spark_table(data: Path, table: str) -> tuple[dict[str, str], list[tuple]]:
    """Spark's table: each column's kind of type (type_families), in column order, and its rows."""
    with duckdb.connect() as con:
        relation = spark_relation(con, data, table)
        return type_families(relation), relation.fetchall()


def duckdb_table(data: Path, table: str) -> tuple[dict[str, str], list[tuple]]:
    """DuckDB's table, as spark_table gives Spark's."""
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        relation = con.sql(f"select * from {table}")
        return type_families(relation), relation.fetchall()


def type_families(relation: duckdb.DuckDBPyRelation) -> dict[str, str]:
    """Each column's kind of type: the engines' widths differ (DuckDB sums counts into hugeints, Spark's longest
    integer is a bigint), the kinds must not (a decimal stays exact, a flag stays boolean)."""
    kinds = {
        "BIGINT": "int",
        "INTEGER": "int",
        "HUGEINT": "int",
        "SMALLINT": "int",
        "DOUBLE": "float",
        "FLOAT": "float",
    }
    families = {}
    for name, kind in zip(relation.columns, relation.types, strict=True):
        text = str(kind)
        families[name] = kinds.get(text, "list" if text.endswith("[]") else text.split("(")[0].split(" ")[0])
    return families


def normalised(columns: list[str], rows: list[tuple]) -> list[tuple]:
    """Rows as tuples in column-name order: numbers as floats, dates as ISO strings, lists as tuples; sorted by
    everything but the floats (which are compared with a tolerance)."""
    order = sorted(range(len(columns)), key=lambda i: columns[i])

    def value(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        if isinstance(v, bool):
            return v
        if isinstance(v, (int, float, Decimal, np.integer, np.floating)):
            return float(v)
        if isinstance(v, datetime) and v.tzinfo is not None:  # Spark's timestamps are instants: read back in UTC
            return v.astimezone(UTC).replace(tzinfo=None).isoformat()
        if isinstance(v, (datetime, date)):
            return v.isoformat()
        if isinstance(v, (list, tuple, np.ndarray)):
            return tuple(value(x) for x in v)
        return str(v)

    out = [tuple(value(row[i]) for i in order) for row in rows]

    def key(row: tuple) -> tuple:
        return tuple((0, round(v, 6)) if isinstance(v, float) else (1, "") if v is None else (2, str(v)) for v in row)

    return sorted(out, key=key)


@pytest.mark.parametrize("table", COMPARED)
def test_spark_builds_the_same_rows_as_duckdb(both_engines: Path, table: str) -> None:
    duck_types, duck = duckdb_table(both_engines, table)
    spark_types, spark = spark_table(both_engines, table)
    duck_columns, spark_columns = list(duck_types), list(spark_types)
    assert sorted(spark_columns) == sorted(duck_columns)
    assert len(duck) > 0, f"{table} is empty on DuckDB: nothing was compared"
    if table == "events_quarantine":  # both injected days, every rule
        assert len(duck) == 10
    assert len(spark) == len(duck), f"{table}: {len(spark)} rows on Spark, {len(duck)} on DuckDB"
    assert spark_types == duck_types
    names = sorted(duck_columns)
    differing: dict[str, tuple[int, object, object]] = {}  # column: (rows that differ, DuckDB's value, Spark's)
    for duck_row, spark_row in zip(normalised(duck_columns, duck), normalised(spark_columns, spark), strict=True):
        for name, d, s in zip(names, duck_row, spark_row, strict=True):
            same = (
                math.isclose(d, s, rel_tol=1e-9, abs_tol=1e-9)
                if isinstance(d, float) and isinstance(s, float)
                else d == s
            )
            if not same:
                count, first_d, first_s = differing.get(name, (0, d, s))
                differing[name] = (count + 1, first_d, first_s)
    assert not differing, f"{table} differs in {len(differing)} columns (rows, DuckDB, Spark): {differing}"


@pytest.mark.parametrize("output", SCORED_OUTPUTS)
def test_spark_scores_every_user_as_duckdb_does(both_engines: Path, output: str) -> None:
    """Scoring on Spark (mapInPandas in the executors, the same pinned model versions) writes the same scores,
    reasons, clusters and cluster profiles as scoring in one process: probabilities to 1e-9."""
    import pandas as pd

    kept = both_engines.parent / "duckdb_outputs" / output
    days = sorted(folder.name for folder in kept.iterdir())
    assert len(days) == 2
    keys = {
        "scores": ["user_id"],
        "score_reasons": ["user_id", "model_name", "reason_rank"],
        "clusters": ["user_id"],
        "cluster_profiles": ["cluster_id"],
    }[output]
    for day in days:
        duck = pd.read_parquet(kept / day).sort_values(keys, ignore_index=True)
        if output != "cluster_profiles":  # (the few profile rows are written by the driver)
            names = [path.name for path in (both_engines / output / day).glob("*.parquet")]
            assert names and all(name.startswith("part-0000") for name in names), f"not written by Spark: {names}"
        spark = pd.read_parquet(both_engines / output / day).sort_values(keys, ignore_index=True)
        assert len(duck) > 0
        assert list(spark.columns) == list(duck.columns)
        # The probabilities, contributions and cluster means to 1e-9; every id, version, rank and text exactly.
        pd.testing.assert_frame_equal(spark, duck, check_exact=False, rtol=1e-9, atol=1e-9, check_dtype=False)
        assert dict(spark.dtypes) == dict(duck.dtypes)


def test_training_reads_the_same_rows_from_spark_as_from_duckdb(both_engines: Path, monkeypatch) -> None:
    """The training sample (features joined to labels over the split's dates, capped by the hash sample) is read
    from the Spark tables' files on Spark: the same rows and values as from DuckDB's warehouse."""
    import pandas as pd

    from ml.propensity.datasets import TASKS, choose_split, load_labelled, training_user_share
    from ml.warehouse.read import connect_read_only, matured_dates

    monkeypatch.setenv("SHOP_DATA_DIR", str(both_engines))
    frames = {}
    for engine in ("duckdb", "spark"):
        monkeypatch.setenv("SHOP_ENGINE", engine)
        with connect_read_only() as con:
            split = choose_split(matured_dates(con))
            dates = [*split.train_dates, split.validation_date]
            for task in TASKS:
                share = training_user_share(con, task, dates, max_users=100)
                assert share < 1  # the cap applies: the hash sample is read on both engines
                frames[engine, task] = load_labelled(con, task, dates, share)
    for task in TASKS:
        duck, spark = frames["duckdb", task], frames["spark", task]
        assert len(duck) > 100
        pd.testing.assert_frame_equal(spark[list(duck.columns)], duck, check_dtype=False)


def test_every_table_spark_built_is_compared(both_engines: Path) -> None:
    built = {p.name for p in spark_tables(both_engines).iterdir() if p.is_dir()}
    assert built == set(COMPARED)


def test_a_daily_spark_run_rebuilds_only_the_reprocessed_partitions(both_engines: Path) -> None:
    """The incremental tables are partitioned by day on Spark, and the daily runs kept the earlier days' files."""
    folder = spark_tables(both_engines) / "int_events_checked"
    days = sorted(p.name for p in folder.iterdir() if p.name.startswith("event_date="))
    assert len(days) >= 105
    # The history's first batch wrote the oldest day; no daily run (they re-process the last few days) touched it.
    oldest, newest = folder / days[0], folder / days[-1]
    written = {folder: min(f.stat().st_mtime for f in folder.glob("*.parquet")) for folder in (oldest, newest)}
    assert written[oldest] < written[newest]


def test_a_daily_run_reads_only_the_reprocessed_days_of_the_landing(both_engines: Path) -> None:
    """The models read the landed events through `in_reprocess_window` (event_date >= the first re-processed day):
    Spark prunes the partitions, so a day's run reads its few days, not the history (from the query's plan)."""
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.getOrCreate()  # the session the builds above ran in (this process)
    landing = both_engines / "landing" / "events"
    first = date(2026, 4, 17)  # the second daily run's (as of 04-21): its as-of date less 1 + SHOP_LATE_EVENT_DAYS
    window = spark.sql(f"select * from parquet.`{landing}` where event_date >= date '{first}'")
    plan = window._jdf.queryExecution().executedPlan().toString()
    assert "PartitionFilters: [isnotnull(event_date" in plan and f">= {first})]" in plan, plan
    files = window.selectExpr("input_file_name() as file").distinct().collect()
    read = {Path(row.file.removeprefix("file:")).parent.name for row in files}
    assert read == {f"event_date={first + timedelta(days=n)}" for n in range(4)}  # 04-17 .. 04-20
    assert len(list(landing.iterdir())) >= 110  # of the whole history


def test_the_dbt_unit_tests_pass_on_spark(both_engines: Path, monkeypatch) -> None:
    """The same fixed rows through the same SQL on Spark (the daily builds leave unit tests out on both engines).

    In this process, as the builds above ran (tests/conftest.py): the embedded metastore they opened admits one
    process at a time."""
    import yaml
    from dbt.cli.main import dbtRunner

    from ml.config import settings
    from ml.warehouse.dbt_runner import dbt_env

    monkeypatch.setenv("SHOP_DATA_DIR", str(both_engines))
    monkeypatch.setenv("SHOP_ENGINE", "spark")
    cfg = settings()
    for key, value in dbt_env(cfg).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("DBT_EXCLUDE_RESOURCE_TYPES")
    monkeypatch.chdir(cfg.dbt_project_dir)
    ran = dbtRunner().invoke(["test", "--select", "test_type:unit", "--project-dir", str(cfg.dbt_project_dir)])
    assert ran.success, ran.exception
    declared = [
        test["name"]
        for path in cfg.dbt_project_dir.glob("models/**/*.yml")
        for test in (yaml.safe_load(path.read_text()) or {}).get("unit_tests", [])
    ]
    passed = sorted(result.node.name for result in ran.result if str(result.status) == "pass")
    assert passed == sorted(declared)


def test_spark_sends_the_driver_only_the_users_the_budget_could_reach(both_engines: Path, monkeypatch) -> None:
    """With a budget that leaves most users out of reach, Spark's candidates are a few of the eligible users, and
    the send list planned on them is the one planned on every eligible user (ml.targeting.spark_candidates)."""
    import pandas as pd

    from ml.day_pins import pins
    from ml.targeting.offers import uplift_effects
    from ml.targeting.plan import load_eligible, plan_targets
    from ml.targeting.spark_candidates import candidate_users
    from ml.warehouse.read import connect_read_only

    monkeypatch.setenv("SHOP_DATA_DIR", str(both_engines))
    monkeypatch.setenv("SHOP_MLFLOW_DIR", str(both_engines.parent / "mlflow"))
    monkeypatch.setenv("SHOP_ENGINE", "spark")
    # Few offers of this small shop are worth funding at the default margin; at 100% more are, and a 5 EUR
    # budget funds a few of them.
    monkeypatch.setenv("SHOP_GROSS_MARGIN_RATE", "1.0")
    monkeypatch.setenv("SHOP_DAILY_COUPON_BUDGET", "5")
    as_of = date(2026, 4, 21)
    pinned = pins(as_of)
    users, eligible, fallback, model, problem = candidate_users(as_of, pinned, pinned["policy"])
    assert model is not None and problem is None  # both arms: the coupon effect model ran in the executors
    with connect_read_only() as con:
        everyone = load_eligible(con, as_of)
    assert eligible == len(everyone)
    assert 0 < len(users) < len(everyone) / 4, (len(users), len(everyone))
    plans = [
        plan_targets(frame, as_of, pinned["policy"], (uplift_effects(model, frame), model[1]), value)
        for frame, value in ((everyone, None), (users, fallback))
    ]
    assert plans[0]["is_holdout"].any() and (~plans[0]["is_holdout"]).any()
    assert set(plans[0]["policy"]) == {"uplift", "propensity"}
    pd.testing.assert_frame_equal(plans[1], plans[0], check_exact=False, rtol=1e-9, check_dtype=False)


def test_a_forgotten_user_leaves_every_spark_table_and_the_tables_still_build(both_engines: Path, monkeypatch) -> None:
    """`ml forget` rewrites the Spark tables' Parquet files as it does the landing's; a build reads them after.
    Last in this module: it changes the shared shop."""
    from ml.forget import forget
    from ml.warehouse.builds import check_data

    monkeypatch.setenv("SHOP_DATA_DIR", str(both_engines))
    monkeypatch.setenv("SHOP_MLFLOW_DIR", str(both_engines.parent / "mlflow"))
    monkeypatch.setenv("SHOP_ENGINE", "spark")
    with duckdb.connect() as con:
        user_id = spark_relation(con, both_engines, "user_features").aggregate("min(user_id)").fetchall()[0][0]
    forget([int(user_id)])
    with duckdb.connect() as con:
        for table in COMPARED:
            relation = spark_relation(con, both_engines, table)
            if "user_id" in relation.columns:
                assert relation.filter(f"user_id = {int(user_id)}").count("*").fetchall()[0][0] == 0, table
    newest = max(
        date.fromisoformat(p.name.split("=")[1]) for p in (spark_tables(both_engines) / "user_features").iterdir()
    )
    check_data("features", newest, newest - timedelta(days=4))  # Spark reads the rewritten files


def test_spark_attaches_the_same_activity_sequences_as_duckdb(both_engines: Path, monkeypatch) -> None:
    """A sequence network champion scores on Spark with the day-by-day activity that one machine reads
    (ml.propensity.spark_scoring.with_sequences against ml.propensity.sequences.with_sequences)."""
    from ml.propensity import spark_scoring
    from ml.propensity.datasets import load_scoring_population
    from ml.propensity.sequences import SEQUENCE_COLUMNS, with_sequences
    from ml.warehouse.read import connect_read_only

    monkeypatch.setenv("SHOP_DATA_DIR", str(both_engines))
    monkeypatch.setenv("SHOP_ENGINE", "spark")
    as_of, population = spark_scoring.scoring_population(date(2026, 4, 21))
    columns = ["user_id", *SEQUENCE_COLUMNS]
    spark = spark_scoring.with_sequences(population, SEQUENCE_COLUMNS).select(*columns).toPandas()
    monkeypatch.delenv("SHOP_ENGINE")
    with connect_read_only() as con:
        duck = with_sequences(load_scoring_population(con, as_of), SEQUENCE_COLUMNS, con)[columns]
    spark = spark.sort_values("user_id").reset_index(drop=True)
    assert len(duck) > 500 and duck[SEQUENCE_COLUMNS].to_numpy().sum() > 1000
    np.testing.assert_array_equal(spark.to_numpy(dtype=float), duck.to_numpy(dtype=float))
