"""The oldest landed event day no feature build has re-processed yet, kept on disk until a build has.

Without it, the day a landing changed lived only in the landing step's return value: a land_day that
committed its files and then failed (a locked warehouse while it worked out the window) was retried, found
nothing new to land, and the late correction it had landed was never rebuilt; a correction landed with
`ml ingest` was rebuilt only if someone passed `--reprocess-from`.

- Landing (`ml ingest`, land_day, `ml history`) records its oldest changed day *before* committing its files,
  under the writer lock: a crash in between leaves a mark for days that did not change (a rebuild too many),
  never a change without a mark. Every new landing gives the mark a new id, even when its day stays.
- Every run's window starts at the mark at the latest (ml.warehouse.builds.reprocess_start).
- A run that built from the mark clears it at its end (the DAG's publish, `ml build`, `ml history`), but
  only if its id is still the one the run started from: a landing in the meantime keeps it for the next run.
"""

from __future__ import annotations

import json
import uuid
from datetime import date
from pathlib import Path
from typing import Any

from ml.config import settings
from ml.storage import write_text_atomic
from ml.writer_lock import locked

MARK_NAME = "_reprocess_from.json"


def mark_path() -> Path:
    return settings().landing_dir / MARK_NAME


def read_mark() -> dict[str, Any] | None:
    """{"day": the oldest unbuilt changed day, "id": this mark's id}, or None when every change was built."""
    path = mark_path()
    if not path.exists():
        return None
    found = json.loads(path.read_text())
    return {"day": date.fromisoformat(found["day"]), "id": found["id"]}


def marked_day() -> date | None:
    mark = read_mark()
    return mark["day"] if mark else None


@locked("reprocess mark")
def mark_changed(days: list[str] | list[date]) -> None:
    """Record that these landed event days changed (before the files are committed)."""
    if not days:
        return
    oldest = min(date.fromisoformat(str(d)) for d in days)
    current = marked_day()
    day = oldest if current is None else min(current, oldest)
    write_text_atomic(json.dumps({"day": str(day), "id": uuid.uuid4().hex}), mark_path())


@locked("reprocess mark")
def clear_mark(seen_id: str | None) -> bool:
    """Forget the mark a finished build started from; keep a newer one. True if it was cleared."""
    mark = read_mark()
    if mark is None or seen_id is None or mark["id"] != seen_id:
        return False
    mark_path().unlink()
    return True
