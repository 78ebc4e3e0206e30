"""Parquet files the pipeline writes: the atomic writer and the event schemas.

Shared by landing (your own files), the simulator (one more source of export files), scoring and the
registry's audit rows, so none of them has to import another to write a file.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

# The event types dbt accepts (int_events_checked quarantines any other); every one is activity.
EVENT_TYPES = ("view", "cart", "remove_from_cart", "purchase", "search", "favourite")
# A landed event partition: what a shop exports plus what landing adds (parse_errors, source_file).
EVENT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_at", pa.timestamp("us")),
        ("event_type", pa.string()),
        ("user_id", pa.int64()),
        ("product_id", pa.int64()),
        ("category", pa.string()),
        ("price", pa.float64()),
        ("quantity", pa.int64()),
        ("session_id", pa.string()),
        ("order_id", pa.string()),
        ("coupon_code", pa.string()),
        ("parse_errors", pa.string()),
        ("source_file", pa.string()),
    ]
)
# What a shop's daily event export may hold.
EXPORT_SCHEMA = pa.schema([f for f in EVENT_SCHEMA if f.name not in ("parse_errors", "source_file")])


def as_table(frame: pd.DataFrame | pa.Table, schema: pa.Schema | None = None) -> pa.Table:
    return frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, schema=schema, preserve_index=False)


def temporary_path(path: Path) -> Path:
    """A hidden name beside `path` (same folder, so the final rename is atomic); readers' globs skip it."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def fsync_file(path: Path) -> None:
    """Flush a written file's bytes to the disk: a rename can reach the disk before the data it names."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename into it) to the disk."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(tmp: Path, path: Path) -> None:
    """fsync the staged file, rename it over `path`, fsync the folder: after a power loss the folder holds the
    old file or the whole new one, never an empty or partial one."""
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_folder(path.parent)


def write_parquet_atomic(frame: pd.DataFrame | pa.Table, path: Path, schema: pa.Schema | None = None) -> Path:
    """Write to a temporary file beside `path`, then rename over it: readers see the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        pq.write_table(as_table(frame, schema), tmp)
        replace_durably(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def append_parquet_rows(rows: pd.DataFrame, path: Path) -> Path:
    """A small record file (the privacy folder's): its rows plus `rows`, replaced atomically."""
    old = pq.read_table(path).to_pandas() if path.exists() else None
    return write_parquet_atomic(pd.concat([old, rows], ignore_index=True) if old is not None else rows, path)


def write_text_atomic(text: str, path: Path) -> Path:
    """Like write_parquet_atomic, for a small text file (a JSON record)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        tmp.write_text(text)
        replace_durably(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_parquet_files_atomic(tables: dict[Path, pa.Table]) -> list[Path]:
    """Write several files all or nothing: every file is written aside first, then all are renamed.

    If any write fails, nothing is renamed and the files already there are untouched. The renames
    themselves are quick and each is atomic, but a process killed between two of them leaves the
    earlier ones done: landing again is safe (it merges by id), so rerunning the same ingest repairs it.
    """
    staged: dict[Path, Path] = {}
    try:
        for path, table in tables.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            staged[path] = temporary_path(path)
            pq.write_table(table, staged[path])
            fsync_file(staged[path])
        for path, tmp in staged.items():
            os.replace(tmp, path)
        for folder in {path.parent for path in staged}:
            fsync_folder(folder)
    finally:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)
    return list(tables)


def replace_folders(writers: dict[Path, Callable[[str], object]]) -> None:
    """Write each folder aside (`writers`: final folder -> a function writing a folder at the path it is given,
    e.g. Spark's `write.parquet`), under `.staging/` beside it (readers skip dot-folders), then rename each over
    its final folder. A failed rename puts the old folder back; a kill between two renames leaves the earlier
    ones done, so the caller reruns the whole write (scoring: the day again, with its pinned models)."""
    token = uuid.uuid4().hex
    staged = {}
    try:
        for final, write in writers.items():
            staging = final.parent / ".staging"
            shutil.rmtree(staging, ignore_errors=True)  # a killed run's leftovers (the caller holds the writer lock)
            staged[final] = staging / token / final.name
            staged[final].parent.mkdir(parents=True)
            write(str(staged[final]))
            for file in staged[final].iterdir():
                if file.suffix == ".parquet":
                    fsync_file(file)
                else:  # Spark's _SUCCESS marker and Hadoop's .crc checksums
                    file.unlink()
        for final, folder in staged.items():
            old = folder.with_name(f"{folder.name}.old")
            if final.exists():
                os.rename(final, old)
            try:
                os.rename(folder, final)
            except OSError:
                if old.exists():
                    os.rename(old, final)
                raise
            fsync_folder(final.parent)
    finally:
        for folder in staged.values():
            shutil.rmtree(folder.parent.parent, ignore_errors=True)
