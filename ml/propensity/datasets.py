"""Reads features and labels from the warehouse (read-only) and splits them out of time.

Training rows are `user_features` joined to `training_labels` over several as-of dates. The split is by
date, never by user: train on older snapshots, stop early on a newer one, test on the newest matured
one. Validation sits one label horizon before test, so no training or validation label window overlaps
the test window; training snapshots end a week before validation.

Each model is trained on the population it scores (`TASKS`): the purchase model on every known customer
(a customer whose last order was 9 months ago is who a winback coupon is for), the churn model on users
active in the 30 days before the as-of date, the only users for whom "no activity in the next 30 days"
is a change. `SHOP_SCORING_LOOKBACK_DAYS` narrows both to users active within that many days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from ml.config import LABEL_HORIZON_DAYS, settings
from ml.errors import ModelError

TRAIN_SNAPSHOTS = 8


TRAIN_EVERY_DAYS = 7


CATEGORICAL_FEATURES = ["country", "device"]


ID_COLUMNS = ["user_id", "as_of_date"]


# Columns of user_features that are not model inputs.
NOT_FEATURES = {*ID_COLUMNS, "has_marketing_consent"}


# Each task: its label, the population it is trained on and scores (users active within `active_within_days`
# of the as-of date; None: every known user), and both in words for the MLflow run and the docs.
TASKS = {
    "purchase_30d": {
        "label": "purchase_30d",
        "label_definition": "1 if any clean purchase in [as_of_date, as_of_date + 30 days), else 0",
        "active_within_days": None,
        "population_definition": "every known user who signed up before the as-of date",
        # On a simulated shop: the truth's probability the label is drawn from (truth_file).
        "oracle_column": "p_purchase_30d",
    },
    "churn_30d": {
        "label": "churn_30d",
        "label_definition": "1 if no activity at all in [as_of_date, as_of_date + 30 days), else 0",
        "active_within_days": 30,
        "population_definition": "users with activity in the 30 days before the as-of date",
        "oracle_column": "p_no_visit_30d",
    },
}


def truth_file(as_of: date) -> Path:
    """A simulated shop's per-user truth as of `as_of` (each task's oracle_column); absent on a shop's own data."""
    return settings().truth_dir / "probabilities" / f"as_of_date={as_of}" / "part-0.parquet"


def feature_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    names = [row[0] for row in con.execute("describe user_features").fetchall()]
    return [n for n in names if n not in NOT_FEATURES]


@dataclass(frozen=True)
class Split:
    train_dates: list[date]
    validation_date: date
    test_date: date

    def as_params(self) -> dict[str, str]:
        return {
            "train_dates": ",".join(str(d) for d in self.train_dates),
            "validation_date": str(self.validation_date),
            "test_date": str(self.test_date),
        }


def choose_split(available: list[date], test_date: date | None = None) -> Split:
    """Test on `test_date` (default: newest matured), validate one horizon earlier, train before that."""
    if not available:
        raise ModelError("training_labels is empty: no as-of date has a closed 30-day label window yet")
    if test_date is None:
        test_date = available[-1]
    elif test_date not in available:
        raise ModelError(
            f"--as-of {test_date} has no matured labels; matured dates run {available[0]}..{available[-1]}"
        )
    have = set(available)
    validation = _latest_on_or_before(have, test_date - timedelta(days=LABEL_HORIZON_DAYS))
    # Training labels may overlap the validation window (it only steers early stopping) but never the test one.
    newest_train = validation and _latest_on_or_before(have, validation - timedelta(days=TRAIN_EVERY_DAYS))
    if validation is None or newest_train is None:
        raise ModelError(
            f"not enough history to test on {test_date}: need matured as-of dates "
            f"{LABEL_HORIZON_DAYS + TRAIN_EVERY_DAYS} days "
            f"earlier (have {available[0]}..{available[-1]})"
        )
    # Weekly, each the newest built date on or before its week's (older dates may be kept weekly only).
    weeks = [newest_train - timedelta(days=TRAIN_EVERY_DAYS * k) for k in range(TRAIN_SNAPSHOTS)]
    train = {_latest_on_or_before(have, week) for week in weeks}
    train = sorted(d for d in train if d is not None)
    return Split(train_dates=train, validation_date=validation, test_date=test_date)


def _latest_on_or_before(have: set[date], limit: date) -> date | None:
    candidates = [d for d in have if d <= limit]
    return max(candidates) if candidates else None


def _active_within(days: int | None, prefix: str = "") -> str:
    """SQL filter on user_features: activity within `days` of the as-of date (true when None)."""
    return "true" if days is None else f"{prefix}days_since_last_activity <= {int(days)}"


def lookback_filter(prefix: str = "") -> str:
    """The configured scoring lookback as a SQL filter on user_features (true when unset)."""
    return _active_within(settings().scoring_lookback_days, prefix)


def population_filter(task: str, prefix: str = "") -> str:
    return f"({_active_within(TASKS[task]['active_within_days'], prefix)}) and ({lookback_filter(prefix)})"


def in_population(frame: pd.DataFrame, task: str) -> pd.Series:
    """Which rows of a user_features frame belong to the task's population (the same rule as the SQL)."""
    days = TASKS[task]["active_within_days"]
    if days is None:
        return pd.Series(True, index=frame.index)
    return frame["days_since_last_activity"].le(days).fillna(False).astype(bool)


# Hash buckets of the training user sample: a share is kept as a whole number of buckets.
SAMPLE_BUCKETS = 10_000


def user_sample(share: float, column: str) -> str:
    """SQL filter keeping `share` of users by a hash of their id: the same users on every date and in every run."""
    return "true" if share >= 1 else f"hash({column}) % {SAMPLE_BUCKETS} < {int(share * SAMPLE_BUCKETS)}"


def training_user_share(con: duckdb.DuckDBPyConnection, task: str, dates: list[date], max_users: int) -> float:
    """The share of users to train on so no snapshot of `dates` has more than `max_users` labelled rows."""
    label = TASKS[task]["label"]
    biggest = con.execute(
        f"""
        select coalesce(max(n), 0) from (
            select count(*) as n
            from user_features as f
            join training_labels as l using (user_id, as_of_date)
            where f.as_of_date in (select unnest(?::date[]))
              and {population_filter(task, prefix="f.")}
              and l.{label} is not null
            group by f.as_of_date
        )
        """,
        [dates],
    ).fetchone()[0]
    return 1.0 if biggest <= max_users else max_users / biggest


def load_labelled(
    con: duckdb.DuckDBPyConnection, task: str, dates: list[date], user_share: float = 1.0
) -> pd.DataFrame:
    """Features and the task's label for the given as-of dates, on the task's population.

    `user_share` below 1 keeps that share of users, picked by a hash of user_id: the same users on every date.
    """
    label = TASKS[task]["label"]
    return con.execute(
        f"""
        select f.*, l.{label} as label
        from user_features as f
        join training_labels as l using (user_id, as_of_date)
        where f.as_of_date in (select unnest(?::date[]))
          and {population_filter(task, prefix="f.")}
          and l.{label} is not null
          and {user_sample(user_share, "f.user_id")}
        order by f.as_of_date, f.user_id
        """,
        [dates],
    ).df()


def load_scoring_population(con: duckdb.DuckDBPyConnection, as_of: date) -> pd.DataFrame:
    """Every known user as of `as_of` (or those within the configured lookback), with their features."""
    return con.execute(
        f"select * from user_features where as_of_date = ? and {lookback_filter()} order by user_id", [as_of]
    ).df()


def model_inputs(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The model's input frame: numeric features as float (nulls stay NaN), categoricals as strings."""
    out = frame[columns].copy()
    for column in columns:
        if column in CATEGORICAL_FEATURES:
            # object dtype, not pandas' string or category dtype: MLflow signatures round-trip it.
            out[column] = out[column].astype(object).where(out[column].notna(), "unknown").map(str).astype(object)
        else:
            out[column] = pd.to_numeric(out[column], errors="coerce").astype("float64")
    return out
