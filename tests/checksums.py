"""Order-independent content checksums of warehouse tables, for rerun and idempotence tests."""

from __future__ import annotations

from pathlib import Path

import duckdb


def table_checksums(warehouse: Path, tables: list[str]) -> dict[str, tuple[int, str]]:
    """(row count, hash of all rows) per table; equal checksums mean identical content."""
    out = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for table in tables:
            count, digest = con.execute(
                f"select count(*), coalesce(sum(hash(t)), 0)::varchar from {table} as t"
            ).fetchone()
            out[table] = (count, digest)
    return out


def query(warehouse: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def rounded_rows(warehouse: Path, table: str, places: int = 6) -> list[tuple]:
    """A table's rows in a fixed order with floats rounded: a float sum's last bits depend on the order DuckDB
    reads its rows in, which a rebuild in other batches changes."""
    rows = query(warehouse, f"select * from {table} order by all")
    return [tuple(round(v, places) if isinstance(v, float) else v for v in row) for row in rows]
