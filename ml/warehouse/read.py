"""Read-only access to the warehouse for the Python steps, with a clear message while a build holds it."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import duckdb

from ml.config import settings
from ml.errors import ModelError, WarehouseLockedError


def connect_read_only(path=None) -> duckdb.DuckDBPyConnection:
    path = path or settings().warehouse_path
    if not path.exists():
        raise ModelError(f"{path}: warehouse not found; build it first (make run, or python -m ml history)")
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        raise WarehouseLockedError(locked_message(path, str(exc))) from None


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
