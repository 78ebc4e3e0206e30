"""Read-only access to the warehouse for the Python steps, with a clear message while a build holds it."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import duckdb

from ml.config import settings
from ml.errors import ModelError, WarehouseLockedError


def connect_read_only(path=None) -> duckdb.DuckDBPyConnection:
    """The warehouse, read-only. With SHOP_ENGINE=spark: the Spark tables' Parquet files (`spark_tables`)."""
    if path is None and settings().engine == "spark":
        return spark_tables()
    path = path or settings().warehouse_path
    if not path.exists():
        raise ModelError(f"{path}: warehouse not found; build it first (make run, or python -m ml history)")
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        raise WarehouseLockedError(locked_message(path, str(exc))) from None


def warehouse_exists() -> bool:
    """Whether a build has written the warehouse: DuckDB's file, or (SHOP_ENGINE=spark) the Spark tables' folder."""
    if settings().engine == "spark":
        from ml.warehouse.spark_session import spark_tables_dir

        return spark_tables_dir().is_dir()
    return settings().warehouse_path.exists()


def spark_tables() -> duckdb.DuckDBPyConnection:
    """A DuckDB session over the Spark tables' Parquet files, one view per table, for the Python steps on Spark.

    They read one day's partitions or a capped sample (training, the send list's candidates, monitoring): the
    folder a day's partition lives in is pruned by the reader, as Spark's own plan prunes it. A table Spark
    holds no rows of (no Parquet file yet) is left out, as an absent table is on DuckDB.
    """
    from ml.warehouse.spark_session import spark_tables_dir

    folder = spark_tables_dir()
    if not folder.is_dir():
        raise ModelError(f"{folder}: no Spark tables; build them first (SHOP_ENGINE=spark python -m ml history)")
    con = duckdb.connect()
    for table in sorted(p for p in folder.iterdir() if p.is_dir()):
        partitioned = any(child.is_dir() and "=" in child.name for child in table.iterdir())
        pattern = f"{table}/*/*.parquet" if partitioned else f"{table}/*.parquet"
        if not any(table.glob(pattern.removeprefix(f"{table}/"))):
            continue
        files = pattern.replace("'", "''")
        con.execute(
            f"create view {table.name} as select * from read_parquet('{files}', hive_partitioning = {partitioned})"
        )
    return con


def locked_message(path, error: str) -> str:
    """One line: which process holds the warehouse (from DuckDB's lock error) and what to do."""
    match = re.search(r"\(PID (\d+)\)", error)
    holder = "another process"
    if match:
        pid = match.group(1)
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            command = ""
        command = " ".join(command.split())[:120]
        holder = f"process {pid}" + (f" ({command})" if command else "")
    return f"{path} is locked by {holder}: wait until it finishes (a dbt build or a DAG task writes it) and retry"


def table_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The tables and views the warehouse holds (a step that reads an optional one checks here first)."""
    return {row[0] for row in con.execute("select table_name from information_schema.tables").fetchall()}


def matured_dates(con: duckdb.DuckDBPyConnection) -> list[date]:
    rows = con.execute("select distinct as_of_date from training_labels order by 1").fetchall()
    return [r[0] for r in rows]
