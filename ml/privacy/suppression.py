"""The suppression list: users forgotten on request (`ml forget`), kept out of every later landing.

It holds keyed hashes of the user ids (ml.privacy.pseudonyms), never the ids in clear. Every landing plan
drops their rows before it writes (ml.ingest.plans.LandingPlan.commit): an export sent again, a rerun of a
past day, or the demo shop simulated again cannot bring them back, and a rebuild reads only what landed.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ml.config import Settings, settings
from ml.errors import ConfigError
from ml.privacy.pseudonyms import key_fingerprint, keyed_hashes, pseudonym_key
from ml.storage import append_parquet_rows

LIST_NAME = "suppressed_users.parquet"


def suppressed_keys(cfg: Settings | None = None) -> set[str]:
    """The hashed ids on the list; ConfigError if they were hashed with another key than today's."""
    cfg = cfg or settings()
    path = cfg.privacy_dir / LIST_NAME
    if not path.exists():
        return set()
    frame = pq.read_table(path).to_pandas()
    if frame.empty:
        return set()
    if set(frame["key_fingerprint"]) != {key_fingerprint(pseudonym_key(cfg))}:
        raise ConfigError(
            f"{path}: the forgotten users were recorded under another pseudonym key than the one set now "
            "(SHOP_PSEUDONYM_KEY or privacy/pseudonym.key changed): restore that key, or nothing can keep them out"
        )
    return set(frame["user_key"])


def user_keys(user_ids: pd.Series, cfg: Settings | None = None) -> pd.Series:
    return keyed_hashes(user_ids.astype("Int64").astype("string"), "user_id", pseudonym_key(cfg or settings()))


def add_to_suppression_list(user_ids: list[int], cfg: Settings | None = None) -> int:
    """Add the users (kept hashed); how many were new to the list."""
    cfg = cfg or settings()
    known = suppressed_keys(cfg)
    keys = user_keys(pd.Series(sorted(set(user_ids)), dtype="int64"), cfg)
    new = [k for k in keys if k not in known]
    added = pd.DataFrame(
        {
            "user_key": pd.Series(new, dtype="string"),
            "key_fingerprint": key_fingerprint(pseudonym_key(cfg)),
            "forgotten_at": datetime.now(UTC).replace(tzinfo=None),
        }
    )
    append_parquet_rows(added, cfg.privacy_dir / LIST_NAME)
    return len(new)


def drop_suppressed(table: pa.Table, keys: set[str], cfg: Settings | None = None) -> tuple[pa.Table, int]:
    """`table` without the rows of suppressed users (a table without user_id is returned as it is)."""
    if not keys or "user_id" not in table.column_names or table.num_rows == 0:
        return table, 0
    ids = pd.Series(pc.unique(table["user_id"]).to_pandas()).dropna()
    hashed = user_keys(ids, cfg)
    forgotten = ids[hashed.isin(keys).to_numpy()]
    if forgotten.empty:
        return table, 0
    value_set = pa.array(forgotten.tolist(), type=table.schema.field("user_id").type)
    keep = pc.invert(pc.fill_null(pc.is_in(table["user_id"], value_set=value_set), False))
    kept = table.filter(keep)
    return kept, table.num_rows - kept.num_rows
