"""`python -m ml forget`: erase customers on request from every place the pipeline keeps data, and keep them out.

In order: the users go on the suppression list (hashed, ml.privacy.suppression), so that from then on no
landing, rerun or rebuild can bring them back, even if this erasure stops half-way (running it again
finishes it). Then their rows leave every Parquet and CSV file under the pipeline's folders (landing,
the inbox exports it landed, scores, targets, reasons, monitoring, evaluations, audit, the simulator's
truth, local MLflow artifacts), every warehouse table (checkpoints and quarantine included), and the
analysts' snapshot, which is published again from the erased warehouse. The erasure is recorded without
the ids: when, how many users, how many rows left each place.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ml.config import Settings, settings
from ml.errors import UserFacingError
from ml.ingest.exports import SUFFIXES
from ml.ingest.plans import landed_inbox_snapshots, record_inbox_snapshots
from ml.privacy.pseudonyms import key_fingerprint, pseudonym_key
from ml.privacy.suppression import add_to_suppression_list
from ml.storage import append_parquet_rows, replace_durably, temporary_path, write_parquet_atomic
from ml.writer_lock import locked

ERASURES = "erasures.parquet"


def read_user_ids(values: list[str], files: list[Path]) -> list[int]:
    """The ids given on the command line and in files (one per line, blank lines and # comments skipped);
    UserFacingError naming the first that is not a whole number."""
    given = [(str(v), "--user-id") for v in values]
    for path in files:
        if not path.is_file():
            raise UserFacingError(f"{path}: no such file of user ids")
        lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
        given += [(line, str(path)) for line in lines if line]
    ids = []
    for text, where in given:
        if not text.strip().isdigit():
            raise UserFacingError(f"{where}: user id {text!r} is not a whole number; nothing was erased")
        ids.append(int(text))
    if not ids:
        raise UserFacingError("no user ids to forget: pass --user-id ID (repeatable) or --file FILE")
    return sorted(set(ids))


@locked("ml forget")
def forget(user_ids: list[int]) -> dict[str, object]:
    cfg = settings()
    ids = sorted(set(user_ids))
    summary: dict[str, object] = {"users": len(ids), "newly_suppressed": add_to_suppression_list(ids, cfg)}
    rows = {}
    for place, folder in _folders(cfg).items():
        rows[place] = erase_from_files(folder, ids, skip=_not_erased_here(cfg))
    rows["warehouse"] = erase_from_warehouse(cfg.warehouse_path, ids)
    summary["rows_erased"] = rows
    if cfg.snapshot_path.exists() and cfg.warehouse_path.exists():
        from ml.warehouse.publish import publish_snapshot

        # Twice: a publish keeps the files the snapshot it replaces names (an analyst may be reading them);
        # the second one drops those, the last holders of the erased rows.
        publish_snapshot(cfg=cfg)
        publish_snapshot(cfg=cfg)
        summary["snapshot"] = "published again"
    _record(cfg, summary)
    return summary


def _folders(cfg: Settings) -> dict[str, Path]:
    """Every folder the pipeline writes user rows to; one inside another is scanned once, as part of it."""
    folders = {
        "landing": cfg.landing_dir,
        "inbox": cfg.inbox_dir,
        "scores": cfg.scores_dir,
        "targets": cfg.targets_dir,
        "score_reasons": cfg.reasons_dir,
        "clusters": cfg.clusters_dir,
        "monitoring": cfg.monitoring_dir,
        "evaluations": cfg.evaluations_dir,
        "audit": cfg.audit_dir,
        "truth": cfg.truth_dir,
        "mlflow_artifacts": cfg.mlflow_artifact_root,
        # SHOP_ENGINE=spark: the warehouse's tables are Parquet files here, erased like the others.
        "spark_warehouse": cfg.spark_dir,
    }
    return {
        place: folder
        for place, folder in folders.items()
        if not any(other != folder and folder.is_relative_to(other) for other in folders.values())
    }


def _not_erased_here(cfg: Settings) -> set[Path]:
    # The snapshot's files are published again from the warehouse; the privacy folder holds only hashes.
    return {cfg.snapshot_path.parent / "published", cfg.privacy_dir}


def erase_from_files(folder: Path, ids: list[int], skip: set[Path] = frozenset()) -> int:
    """Rewrite every Parquet and CSV file under `folder` that holds a row of `ids` (column user_id) without
    those rows; how many rows left. Each file is replaced atomically."""
    if not folder.exists():
        return 0
    erased = 0
    inbox_digests = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.is_symlink() or any(path.is_relative_to(s) for s in skip):
            continue
        suffix = path.suffix.lower()  # what landing accepts (ml.ingest.exports.SUFFIXES), in any case
        if suffix in SUFFIXES and suffix != ".csv":
            removed, old_digest = _erase_parquet(path, ids)
        elif suffix == ".csv":
            removed, old_digest = _erase_csv(path, ids)
        else:
            continue
        if removed:
            erased += removed
            inbox_digests[old_digest] = hashlib.sha256(path.read_bytes()).hexdigest()
            # Spark (Hadoop's local file system) keeps a checksum beside each file it wrote and refuses a file that
            # no longer matches it: without the checksum it reads the rewritten file.
            path.with_name(f".{path.name}.crc").unlink(missing_ok=True)
    _follow_rewritten_snapshots(inbox_digests)
    return erased


def _user_id_column(names: list[str]) -> str | None:
    """The user id column as landing reads headers: trimmed, any case."""
    return next((name for name in names if name.strip().lower() == "user_id"), None)


def _erase_parquet(path: Path, ids: list[int]) -> tuple[int, str]:
    column = _user_id_column(pq.read_schema(path).names)
    if column is None:
        return 0, ""
    table = pq.read_table(path)
    values = table[column]
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):  # an export's text ids
        values = pc.cast(pc.utf8_trim_whitespace(values), pa.float64(), safe=False)
    forgotten = pc.fill_null(pc.is_in(values, value_set=_id_values(ids, values.type)), False)
    removed = pc.sum(forgotten).as_py() or 0
    if removed:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        write_parquet_atomic(table.filter(pc.invert(forgotten)), path)
        return removed, digest
    return 0, ""


def _id_values(ids: list[int], type_: pa.DataType) -> pa.Array:
    return pa.array(ids, type=pa.int64()).cast(type_)


def _erase_csv(path: Path, ids: list[int]) -> tuple[int, str]:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    column = _user_id_column(list(frame.columns))
    if column is None:
        return 0, ""
    # As landing reads them: 42, " 42", "0042" and "42.0" are all user 42.
    forgotten = pd.to_numeric(frame[column].str.strip(), errors="coerce").isin(ids)
    if not forgotten.any():
        return 0, ""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    tmp = temporary_path(path)
    try:
        frame[~forgotten].to_csv(tmp, index=False)
        replace_durably(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return int(forgotten.sum()), digest


def _follow_rewritten_snapshots(rewritten: dict[str, str]) -> None:
    """An inbox users/products snapshot landing recorded, rewritten here: record the new file as landed too,
    so the next daily landing does not merge it again for nothing."""
    landed = landed_inbox_snapshots()
    moved = {kind: rewritten[digest] for kind, digest in landed.items() if digest in rewritten}
    if moved:
        record_inbox_snapshots(moved)


def erase_from_warehouse(warehouse: Path, ids: list[int]) -> int:
    """Delete the users' rows from every table of the warehouse with a user_id column; rows deleted."""
    if not warehouse.exists():
        return 0
    import duckdb

    with duckdb.connect(str(warehouse)) as con:
        tables = con.execute(
            """select c.table_schema, c.table_name from information_schema.columns as c
               join information_schema.tables as t using (table_catalog, table_schema, table_name)
               where c.column_name = 'user_id' and t.table_type = 'BASE TABLE' order by all"""
        ).fetchall()
        deleted = 0
        for schema, table in tables:
            deleted += con.execute(
                f'delete from "{schema}"."{table}" where user_id in (select unnest(?::bigint[]))', [ids]
            ).fetchone()[0]
        con.execute("checkpoint")
    return deleted


def _record(cfg: Settings, summary: dict[str, object]) -> None:
    """Append the erasure to the privacy folder's record: counts and the key's fingerprint, no ids."""
    path = cfg.privacy_dir / ERASURES
    row = pd.DataFrame(
        [
            {
                "erased_at": datetime.now(UTC).replace(tzinfo=None),
                "users": summary["users"],
                "newly_suppressed": summary["newly_suppressed"],
                "rows_erased": json.dumps(summary["rows_erased"], sort_keys=True),
                "key_fingerprint": key_fingerprint(pseudonym_key(cfg)),
            }
        ]
    )
    append_parquet_rows(row, path)
