"""What a day's first run decided, kept so that a rerun or backfill of that day does the same.

`audit/day_pins/as_of_date=D.json` holds, per as-of date, the decisions that depend on when a run
happens rather than on the day's data:

- `training`: whether the day trained (and what), so a rerun after later retrains does not train again;
- `models`: the purchase and churn model versions that scored the day;
- `policy` and `uplift_model_version`: the leading targeting policy and the coupon effect model version.

The first run writes each key; a rerun reads it and reproduces the day's scores, segments and send
list byte for byte (the salted holdout and the allocation are deterministic), so later days that
counted its contacts still build. To decide a day afresh, delete its file (`python -m ml unpin --as-of D`).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from ml.config import settings
from ml.storage import write_text_atomic
from ml.writer_lock import locked


def pin_path(as_of: date) -> Path:
    return settings().audit_dir / "day_pins" / f"as_of_date={as_of}.json"


def pins(as_of: date) -> dict[str, Any]:
    path = pin_path(as_of)
    return json.loads(path.read_text()) if path.exists() else {}


@locked("day pins")
def pin(as_of: date, **decisions: Any) -> dict[str, Any]:
    """Record decisions not already pinned for the day (the first run's stand); return the day's pins."""
    current = pins(as_of)
    new = {key: value for key, value in decisions.items() if key not in current}
    if new:
        current |= new
        write_text_atomic(json.dumps(current, indent=2, sort_keys=True, default=str), pin_path(as_of))
    return current


@locked("ml unpin")
def unpin(as_of: date) -> bool:
    """Forget a day's decisions: its next run decides afresh. True if there was anything to forget."""
    path = pin_path(as_of)
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed
