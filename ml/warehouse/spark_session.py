"""The Spark session of the Python steps that run on Spark (SHOP_ENGINE=spark): scoring every user.

They read and write Parquet by path, never through the metastore, so they need no Hive catalogue and never
contend for Derby's one-process lock with dbt. The settings follow the profile's `spark` target
(dbt_project/profiles.yml), from the same environment variables. In dbt's own process (tests, `ml` commands
that build and score in one go) dbt's session is reused.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ml.config import Settings, settings
from ml.errors import UserFacingError


def spark_session():
    """The process's Spark session, created on first use (local mode, SHOP_SPARK_CORES cores)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise UserFacingError(
            "SHOP_ENGINE=spark needs pyspark: install the spark group (make setup-spark) and run from .venv-spark"
        ) from None
    # The executors' Python workers run this interpreter (with the project's packages), not `python3` on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.appName("shop-ml")
        .master(f"local[{os.environ.get('SHOP_SPARK_CORES', '*')}]")
        .config("spark.driver.memory", os.environ.get("SHOP_SPARK_DRIVER_MEMORY", "4g"))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.shuffle.partitions", os.environ.get("SHOP_SPARK_SHUFFLE_PARTITIONS", "8"))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    # A session dbt created first in this process may have fixed another interpreter for the workers.
    spark.sparkContext.pythonExec = sys.executable
    return spark


def spark_tables_dir(cfg: Settings | None = None) -> Path:
    """The folder of the Spark schema's tables: one folder of Parquet files per table (dbt's `spark` target)."""
    cfg = cfg or settings()
    return cfg.spark_dir / "warehouse" / f"{os.environ.get('SHOP_SPARK_SCHEMA', 'shop')}.db"


def spark_table(name: str):
    """A Spark table read from its Parquet folder (partitions discovered), decimals as doubles, as DuckDB hands
    them to pandas: the models' inputs are floats on either engine."""
    from pyspark.sql import functions as F

    table = spark_session().read.parquet(str(spark_tables_dir() / name))
    decimals = {f.name for f in table.schema if f.dataType.typeName() == "decimal"}
    return table.select(*[F.col(c).cast("double") if c in decimals else F.col(c) for c in table.columns])


def has_rows(name: str) -> bool:
    """Whether Spark has written any Parquet file of table `name` (a table with no rows has none)."""
    return any((spark_tables_dir() / name).glob("**/*.parquet"))
