"""Each user's recent daily activity as a sequence: the sequence network's input (ml.propensity.sequence_network).

For a (user, as-of date T) row: sessions, views, carts and orders on each of the SEQUENCE_DAYS days before T, the
oldest day first, from `int_user_days_aggregated` (one row per user and active day; events strictly before T, as
every feature). They are model inputs beside the user_features columns, named `seq_<channel>_d<days before T>`,
but not columns of user_features: 112 columns on every snapshot would triple the table for one model family.
They are attached to a frame when a model asks for them (`with_sequences`), from the sparse active days.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SEQUENCE_DAYS = 28
# Channel name -> its column of int_user_days_aggregated.
CHANNELS = {"sessions": "count_sessions", "views": "count_views", "carts": "count_carts", "orders": "count_orders"}
# Oldest day first, the channels within each day: a frame's columns reshape to (rows, days, channels).
SEQUENCE_COLUMNS = [f"seq_{channel}_d{day:02d}" for day in range(SEQUENCE_DAYS, 0, -1) for channel in CHANNELS]
SEQUENCE_PREFIX = "seq_"


def is_sequence_column(column: str) -> bool:
    return column.startswith(SEQUENCE_PREFIX)


def active_days_sql(dates_param: str = "?::date[]") -> str:
    """The user-days within SEQUENCE_DAYS before each of the as-of dates (a DuckDB list parameter), long form."""
    counts = ", ".join(f"d.{column} as {channel}" for channel, column in CHANNELS.items())
    return f"""
        select d.user_id, t.as_of_date, t.as_of_date - d.activity_date as days_before, {counts}
        from int_user_days_aggregated as d
        join (select unnest({dates_param}) as as_of_date) as t
          on d.activity_date < t.as_of_date and d.activity_date >= t.as_of_date - {SEQUENCE_DAYS}
    """


def sequence_array(keys: pd.DataFrame, active_days: pd.DataFrame) -> np.ndarray:
    """(rows of `keys`, SEQUENCE_DAYS, channels) float32: each key's (user_id, as_of_date) activity by day, 0 on days
    without any; `active_days` is `active_days_sql`'s long form (rows of other users are ignored)."""
    out = np.zeros((len(keys), SEQUENCE_DAYS, len(CHANNELS)), dtype=np.float32)
    if active_days.empty or keys.empty:
        return out
    index = pd.MultiIndex.from_arrays(
        [keys["user_id"].to_numpy(dtype="int64"), pd.to_datetime(keys["as_of_date"]).to_numpy()]
    )
    rows = index.get_indexer(
        pd.MultiIndex.from_arrays(
            [active_days["user_id"].to_numpy(dtype="int64"), pd.to_datetime(active_days["as_of_date"]).to_numpy()]
        )
    )
    found = rows >= 0
    days_before = active_days["days_before"].to_numpy(dtype=int)[found]
    values = active_days[list(CHANNELS)].to_numpy(dtype=np.float32)[found]
    out[rows[found], SEQUENCE_DAYS - days_before, :] = values
    return out


def with_sequences(frame: pd.DataFrame, columns: list[str], con=None) -> pd.DataFrame:
    """`frame` (with user_id and as_of_date) plus the sequence columns, when `columns` (a model's inputs) asks for
    them and the frame lacks them; the frame itself otherwise. Reads the warehouse with `con`, or opens it read-only."""
    if not any(is_sequence_column(c) for c in columns) or set(SEQUENCE_COLUMNS) <= set(frame.columns):
        return frame
    if con is None:
        from ml.warehouse.read import connect_read_only

        with connect_read_only() as own:
            return with_sequences(frame, columns, own)
    dates = sorted(pd.to_datetime(frame["as_of_date"]).dt.date.unique())
    active = con.execute(active_days_sql(), [dates]).df()
    flat = sequence_array(frame, active).reshape(len(frame), -1)
    sequences = pd.DataFrame(flat, columns=SEQUENCE_COLUMNS, index=frame.index)
    return pd.concat([frame.drop(columns=[c for c in SEQUENCE_COLUMNS if c in frame]), sequences], axis=1)
