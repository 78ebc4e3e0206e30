"""`python -m ml backtest --feature-groups`: would behaviour the features leave out earn its place?

A feature group joins `user_features` only when the backtest supports it. This trial computes candidate
groups from the clean events (`int_events_checked` and `int_user_category_days`, read-only), for each as-of date
of the backtest's out-of-time split from events strictly before that date, and refits each model family the
pipeline trains (SHOP_MODEL_FLAVOURS) with the current features plus each group (and all of them), on the same
rows, for both tasks. Each line gives the test ROC AUC with the group, its change against the current features
with a paired 95% bootstrap interval (the same resampled test users for both models), `supported` when its lower
end is at least MIN_AUC_GAIN, and on a simulated shop the oracle's AUC on the same rows (the gap a group could
close). Nothing is registered; the run is logged to `shop_backtests`.

The groups, each over the days before the as-of date:
- `dwell_time`: mean session length in seconds (first to last event of a session, split at midnight) and
  events per session, 30 days;
- `time_habits`: shares of events in the evening (18-24 h) and at night (0-6 h), and of active days on a
  weekend, 90 days;
- `category_affinity`: the top category's share of the user's views, and the entropy of their views over
  categories, 90 days.

A fourth group, searches and favourites (30 days) and favourites per view (90 days), was supported for the purchase
model on two as-of dates and joined `user_features` (docs/models.md).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from ml.config import settings

GROUPS = {
    "dwell_time": ["avg_session_seconds_30d", "avg_events_per_session_30d"],
    "time_habits": ["evening_event_share_90d", "night_event_share_90d", "weekend_day_share_90d"],
    "category_affinity": ["top_category_view_share_90d", "category_view_entropy_90d"],
}
BOOTSTRAP = 200  # resamples of the test users for each change's interval
# A group is worth a column only if its gain is at least this much ROC AUC with 95% confidence: a logistic model's
# paired interval can be a few ten-thousandths wide, and a gain that small moves no targeting decision.
MIN_AUC_GAIN = 0.001


def candidate_features(con: duckdb.DuckDBPyConnection, dates: list[date]) -> pd.DataFrame:
    """Every candidate column per (user_id, as_of_date) for `dates`, from clean events strictly before each date.
    A user without events in a window has nulls there (the models treat them as missing)."""
    return con.execute(
        """
        with dates as (select unnest(?::date[]) as as_of_date),
        -- The shopping events only: the groups were measured before searches and favourites were accepted, and a
        -- search or a saved product would lengthen sessions and shift the time shares.
        events as (
            select user_id, session_id, event_at, cast(event_at as date) as activity_date, event_type, category
            from int_events_checked
            where quarantine_reason is null
              and event_type in ('view', 'cart', 'remove_from_cart', 'purchase')
              and event_at >= (select min(as_of_date) from dates) - interval 90 day
              and event_at < (select max(as_of_date) from dates)
        ),
        -- Split at midnight, as the features' sessions are: a session-day holds no event of a later day. Events
        -- without a session id have no length here (the features count each as a session of its own).
        sessions as (
            select user_id, activity_date,
                   epoch(max(event_at)) - epoch(min(event_at)) as seconds, count(*) as events
            from events where session_id is not null group by user_id, session_id, activity_date
        ),
        days as (
            select user_id, activity_date, count(*) as events,
                   count(*) filter (where hour(event_at) >= 18) as evening,
                   count(*) filter (where hour(event_at) < 6) as night,
                   dayofweek(activity_date) in (0, 6) as is_weekend
            from events group by user_id, activity_date
        ),
        dwell as (
            select d.as_of_date, s.user_id, avg(s.seconds) as avg_session_seconds_30d,
                   avg(s.events) as avg_events_per_session_30d
            from dates d join sessions s
              on s.activity_date < d.as_of_date and s.activity_date >= d.as_of_date - 30
            group by all
        ),
        habits as (
            select d.as_of_date, a.user_id,
                   sum(a.evening) / sum(a.events) as evening_event_share_90d,
                   sum(a.night) / sum(a.events) as night_event_share_90d,
                   avg(a.is_weekend::int) as weekend_day_share_90d
            from dates d join days a
              on a.activity_date < d.as_of_date and a.activity_date >= d.as_of_date - 90
            group by all
        ),
        -- The views per user, day and category the recommendations already keep (clean events, own-day).
        per_category as (
            select d.as_of_date, c.user_id, c.category, sum(c.count_views) as views
            from dates d join int_user_category_days c
              on c.activity_date < d.as_of_date and c.activity_date >= d.as_of_date - 90
            group by all
            having sum(c.count_views) > 0
        ),
        affinity as (
            select as_of_date, user_id,
                   max(views) / sum(views) as top_category_view_share_90d,
                   -sum(views / total * ln(views / total)) as category_view_entropy_90d
            from (select *, sum(views) over (partition by as_of_date, user_id) as total from per_category)
            group by all
        )
        select *
        from dwell
        full join habits using (as_of_date, user_id)
        full join affinity using (as_of_date, user_id)
        """,
        [dates],
    ).df()


def with_candidates(frame: pd.DataFrame, candidates: pd.DataFrame) -> pd.DataFrame:
    """`frame` (user_features rows) with the candidate columns joined on user and as-of date."""
    keys = candidates.assign(as_of_date=pd.to_datetime(candidates["as_of_date"]).dt.date)
    out = frame.assign(as_of_date=pd.to_datetime(frame["as_of_date"]).dt.date)
    return out.merge(keys, on=["user_id", "as_of_date"], how="left", validate="one_to_one")


def feature_trial(as_of: date | None = None) -> list[dict[str, Any]]:
    """One line per task, model flavour and feature set (current, + each group, + all groups)."""
    from sklearn.metrics import roc_auc_score

    from ml.propensity.datasets import TASKS, model_inputs
    from ml.propensity.estimators import fit_flavour, flavour_inputs
    from ml.propensity.train import load_split
    from ml.warehouse.read import connect_read_only

    split, columns, frames = load_split(list(TASKS), as_of)
    dates = [*split.train_dates, split.validation_date, split.test_date]
    with connect_read_only() as con:
        candidates = candidate_features(con, dates)
    sets = {"current": [], **GROUPS, "all_groups": [c for group in GROUPS.values() for c in group]}
    lines = []
    for task, parts in frames.items():
        parts = {part: with_candidates(frame, candidates) for part, frame in parts.items()}
        y = {part: frame["label"].to_numpy(dtype=int) for part, frame in parts.items()}
        oracle = _oracle_auc(task, parts["test"], y["test"], split.test_date)
        resamples = np.random.default_rng(settings().seed).integers(0, len(y["test"]), (BOOTSTRAP, len(y["test"])))
        for flavour in settings().model_flavours:
            current = current_auc = None
            for name, extra in sets.items():
                inputs = [*columns, *extra]
                x = {part: model_inputs(frame, inputs) for part, frame in parts.items()}
                x, y_fit = flavour_inputs(flavour, parts, inputs, x, y, settings().seed)
                pipeline, _ = fit_flavour(flavour, x, y_fit, settings().seed)
                proba = pipeline.predict_proba(x["test"])[:, 1]
                auc = float(roc_auc_score(y["test"], proba))
                if current is None:  # the first set is the current features
                    current, current_auc = proba, auc
                low, high = _paired_interval(y["test"], proba, current, resamples)
                lines.append(
                    {
                        "task": task,
                        "flavour": flavour,
                        "features": name,
                        "as_of_date": str(split.test_date),
                        "n_users": int(len(y["test"])),
                        "roc_auc": round(auc, 4),
                        "change": round(auc - current_auc, 4),
                        "change_low": round(low, 4),
                        "change_high": round(high, 4),
                        "supported": name != "current" and low >= MIN_AUC_GAIN,
                        **({"oracle_auc": round(oracle, 4), "gap_to_oracle": round(oracle - auc, 4)} if oracle else {}),
                    }
                )
    _log_run(lines, split)
    return lines


def _paired_interval(
    y: np.ndarray, proba: np.ndarray, current: np.ndarray, resamples: np.ndarray
) -> tuple[float, float]:
    """The 95% bootstrap interval of the AUC change against the current features, on the same resampled users."""
    from sklearn.metrics import roc_auc_score

    changes = [
        roc_auc_score(y[rows], proba[rows]) - roc_auc_score(y[rows], current[rows])
        for rows in resamples
        if 0 < y[rows].sum() < len(rows)
    ]
    if not changes:  # every resample of a tiny test date had one class: no interval
        return float("nan"), float("nan")
    return float(np.quantile(changes, 0.025)), float(np.quantile(changes, 0.975))


def _oracle_auc(task: str, test: pd.DataFrame, y: np.ndarray, as_of: date) -> float | None:
    """The simulator's own probabilities' AUC on the test rows, or None on a shop without truth."""
    from sklearn.metrics import roc_auc_score

    from ml.propensity.datasets import TASKS, truth_file

    path = truth_file(as_of)
    if not path.exists():
        return None
    truth = pd.read_parquet(path).set_index("user_id")
    return float(roc_auc_score(y, truth.loc[test["user_id"], TASKS[task]["oracle_column"]].to_numpy()))


def _log_run(lines: list[dict[str, Any]], split) -> None:
    import mlflow
    from ml.propensity.backtest import EXPERIMENT
    from ml.registry.ownership import owner_tags
    from ml.registry.tracking import configure_mlflow, experiment_id

    configure_mlflow()
    with mlflow.start_run(
        experiment_id=experiment_id(EXPERIMENT), run_name=f"feature-groups-{split.test_date}", tags=owner_tags()
    ):
        mlflow.log_params({**split.as_params(), "groups": ",".join(GROUPS)})
        mlflow.log_metrics(
            {f"{line['task']}_{line['flavour']}_{line['features']}_roc_auc": line["roc_auc"] for line in lines}
        )
        mlflow.log_dict({"results": lines, "groups": GROUPS}, "feature_groups.json")
