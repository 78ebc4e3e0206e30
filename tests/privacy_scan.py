"""Finders for personal data in a shop's files, by content rather than bytes: Parquet pages are compressed, so
grepping a file's bytes could miss a value that is there. Each finder returns where it found something."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq

TEXT_SUFFIXES = {".json", ".csv", ".txt", ".yaml", ".yml", ".log", ".html", ".md", ".ini", ""}


def _files(root: Path, skip: tuple[str, ...]) -> list[Path]:
    return [
        p
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(part in skip for part in p.relative_to(root).parts)
    ]


def _duckdb_frames(path: Path):
    """Every table and view of a DuckDB file, as frames."""
    with duckdb.connect(str(path), read_only=True) as con:
        names = con.execute(
            "select table_schema, table_name from information_schema.tables where table_catalog = current_database()"
        ).fetchall()
        for schema, name in names:
            yield f"{path.name}:{schema}.{name}", con.execute(f'select * from "{schema}"."{name}"').df()


def _user_id_column(names: list[str]) -> str | None:
    return next((name for name in names if name.strip().lower() == "user_id"), None)


def user_id_hits(root: Path, ids: list[int], skip: tuple[str, ...] = ()) -> list[str]:
    """Files and tables under `root` whose user_id column holds any of `ids`."""
    hits = []
    wanted = set(ids)
    for path in _files(root, skip):
        frames = []
        suffix = path.suffix.lower()
        if suffix in (".parquet", ".pq"):
            column = _user_id_column(pq.read_schema(path).names)
            if column:
                ids_read = pq.read_table(path, columns=[column]).to_pandas()[column].astype("string").str.strip()
                frames = [(str(path), pd.DataFrame({"user_id": pd.to_numeric(ids_read, errors="coerce")}))]
        elif suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            column = _user_id_column(list(frame.columns))
            if column:
                frames = [
                    (str(path), pd.DataFrame({"user_id": pd.to_numeric(frame[column].str.strip(), errors="coerce")}))
                ]
        elif path.suffix == ".duckdb":
            frames = [(name, frame) for name, frame in _duckdb_frames(path) if "user_id" in frame.columns]
        hits += [name for name, frame in frames if frame["user_id"].isin(wanted).any()]
    return hits


def text_hits(root: Path, pattern: str, skip: tuple[str, ...] = ()) -> list[str]:
    """Files and tables under `root` holding text that matches `pattern`: string columns of Parquet files and
    DuckDB tables, the text of text files, and the raw bytes of anything else (SQLite, pickles)."""
    regex = re.compile(pattern)
    hits = []
    for path in _files(root, skip):
        if path.suffix == ".parquet":
            frame = pq.read_table(path).to_pandas()
            frames = [(str(path), frame)]
        elif path.suffix == ".duckdb":
            frames = list(_duckdb_frames(path))
        else:
            content = path.read_bytes()
            if regex.search(content.decode("utf-8", "replace")):
                hits.append(str(path))
            continue
        for name, frame in frames:
            for column in frame.columns:
                if frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column]):
                    if frame[column].dropna().astype(str).str.contains(regex).any():
                        hits.append(f"{name}.{column}")
    return hits
