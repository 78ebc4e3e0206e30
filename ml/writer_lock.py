"""One writer at a time: the steps that read, merge and replace the shop's files hold one lock while they do.

Landing merges a day's new rows into the landed partition and renames the result over it; publishing
rewrites the analyst manifest; a day's pins are read, changed and rewritten. Two such writers side by side
(two `ml ingest`, an ingest beside the DAG's land_day or `ml history`, two publishes) each read the old file
and the later rename drops the other's rows: measured, two 5,000-order ingests into one day both reported
success and the day kept one file's orders. Airflow's one-slot `warehouse` pool keeps the DAG's own tasks
apart, but not a command run beside them.

Held by landing (`ml ingest`, land_day, `ml history`'s landing), `ml build` (build_features, segments,
targeting), scoring, targeting, publish and a day's pins. The DAG's dbt tasks (Cosmos) do not take it:
DuckDB lets one process write the warehouse, and the pool keeps them apart from the DAG's other tasks.

`writer_lock(step)` takes an advisory `flock` on `<data dir>/.writer.lock`. A second writer waits (saying
who holds it) up to SHOP_WRITER_LOCK_TIMEOUT seconds, then fails naming the holder; nothing it planned is
written. The kernel releases the lock when its holder exits, SIGKILL included, so a crash never leaves it
held. Re-entrant within a process: `ml history` lands and then builds, and `dag.test()` runs every task of
a day in one process. DuckDB's own file lock already refuses a second process writing the warehouse.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path

from ml.config import settings
from ml.errors import WriterBusyError

log = logging.getLogger(__name__)
LOCK_NAME = ".writer.lock"
POLL_SECONDS = 0.2
# Lock files this process holds, with how deeply: re-entrant, since a step may call another that locks.
_held: dict[str, int] = {}


def lock_path() -> Path:
    return settings().data_dir / LOCK_NAME


def holder(path: Path) -> str:
    """Who holds the lock, as the holder wrote it: step, pid, command and since when."""
    try:
        found = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        found = {}
    if not found:
        return "a process that has not said who it is"
    return f"{found.get('step')} (pid {found.get('pid')}, `{found.get('command')}`, since {found.get('since')})"


@contextmanager
def writer_lock(step: str) -> Iterator[None]:
    """Hold the shop's writer lock for `step` (waiting for another holder up to the timeout)."""
    path = lock_path()
    key = str(path.resolve())
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, path, step)
        os.ftruncate(fd, 0)
        claim = {
            "step": step,
            "pid": os.getpid(),
            "command": " ".join(sys.argv)[:200],
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        os.pwrite(fd, json.dumps(claim).encode(), 0)
        sweep_stale_temporaries()
        _held[key] = 1
        try:
            yield
        finally:
            del _held[key]
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def locked(step: str) -> Callable:
    """Decorate a function that writes the shop's files: it runs holding writer_lock(step)."""

    def wrap(function: Callable) -> Callable:
        @wraps(function)
        def run(*args, **kwargs):
            with writer_lock(step):
                return function(*args, **kwargs)

        return run

    return wrap


def sweep_stale_temporaries() -> int:
    """Delete the staged files a killed landing left beside its partitions (hidden `.<name>.<id>.tmp`): only
    a holder of this lock writes there, so none of them is still being written. Returns how many."""
    landing = settings().landing_dir
    stale = list(landing.rglob(".*.tmp")) if landing.exists() else []
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        log.info("removed %d staged files a stopped landing left in %s", len(stale), landing)
    return len(stale)


def _acquire(fd: int, path: Path, step: str) -> None:
    limit = settings().writer_lock_timeout
    deadline = time.monotonic() + limit
    announced = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise WriterBusyError(
                    f"{step}: another writer has held {path} for over {limit:.0f} s: {holder(path)}. Nothing was "
                    "written; rerun when it is done (or raise SHOP_WRITER_LOCK_TIMEOUT)"
                ) from None
            if not announced:
                log.warning("%s waits for the writer lock %s, held by %s", step, path, holder(path))
                announced = True
            time.sleep(POLL_SECONDS)
