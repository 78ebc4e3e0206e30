"""The audit trail of alias changes: one row per change in the audit folder, loaded by dbt as `model_promotions`."""

from __future__ import annotations

import getpass
import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa

from ml.config import settings
from ml.registry.tracking import client
from ml.storage import write_parquet_atomic

HISTORY_TAG = "champion_history"


AUDIT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("changed_at", pa.timestamp("us")),
        ("model_name", pa.string()),
        ("action", pa.string()),
        ("from_version", pa.string()),
        ("to_version", pa.string()),
        ("changed_by", pa.string()),
        ("reason", pa.string()),
        ("metrics_json", pa.string()),
    ]
)


def _actor() -> str:
    """Who changed an alias: SHOP_ACTOR, else the MLflow account the server checked, else the login name."""
    try:
        return os.environ.get("SHOP_ACTOR") or os.environ.get("MLFLOW_TRACKING_USERNAME") or getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def record_audit(
    name: str,
    action: str,
    from_version: str | None,
    to_version: str | None,
    reason: str,
    metrics: dict[str, Any] | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """Append one audit row (one small Parquet file, written atomically) for an alias change."""
    row = {
        "event_id": uuid.uuid4().hex,
        "changed_at": datetime.now(UTC).replace(tzinfo=None),
        "model_name": name,
        "action": action,
        "from_version": from_version,
        "to_version": to_version,
        "changed_by": actor or _actor(),
        "reason": reason,
        "metrics_json": json.dumps(metrics or {}, sort_keys=True),
    }
    target = (
        settings().audit_dir / "model_promotions" / f"{row['changed_at']:%Y%m%dT%H%M%S%f}-{row['event_id'][:8]}.parquet"
    )
    write_parquet_atomic(pd.DataFrame([row]), target, schema=AUDIT_SCHEMA)
    return {**row, "changed_at": row["changed_at"].isoformat()}


def champion_history(name: str) -> list[str]:
    model = client().get_registered_model(name)
    return json.loads(model.tags.get(HISTORY_TAG, "[]"))
