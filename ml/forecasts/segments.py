"""Demand forecasts: each lifecycle segment's daily orders and revenue for the next 28 days, with how wrong the
same forecast was the last time it could be checked.

From `segment_daily_activity` (the segment's users at the start of each day and what they ordered that day),
for every segment and metric:

- **the forecast**: an ETS model (statsmodels' `ETSModel`: additive error, damped additive trend, additive
  weekly season) fitted on the landed days before the as-of date, 28 days ahead, with 95% prediction
  intervals. Negative values (possible with additive errors) are cut at 0.
- **its realised error**: the same model fitted on the days up to 28 days before the newest landed day, its 28
  days ahead compared with what happened, as MASE (mean absolute error over the in-sample mean absolute
  error of the seasonal naive forecast "same as a week ago"), next to the MASE of the seasonal naive forecast
  itself over the same 28 days: below it, the ETS model earned its keep.

The series must be daily and unbroken: only the newest run of consecutive days is used, and a segment with
fewer than `MIN_DAYS` of them (a new shop, or retention that dropped older feature dates) is left out with the
reason in the result. Written as one partition per as-of date that dbt reads (`segment_forecasts`).
"""

from __future__ import annotations

import warnings
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from ml.config import settings
from ml.storage import as_table, write_parquet_files_atomic
from ml.warehouse.read import connect_read_only, table_names

HORIZON_DAYS = 28
SEASON_DAYS = 7
# Six weeks to estimate a weekly season from, and the 28 days held out for the realised error.
MIN_DAYS = 6 * SEASON_DAYS + HORIZON_DAYS
METRICS = {"orders": "count_orders", "revenue": "sum_revenue"}


def load_series(as_of: date) -> pd.DataFrame:
    """Daily orders and revenue per lifecycle segment on the landed days before `as_of` (0 where none)."""
    with connect_read_only() as con:
        if "segment_daily_activity" not in table_names(con):
            return pd.DataFrame(columns=["activity_date", "lifecycle_segment", *METRICS.values()])
        frame = con.execute(
            "select activity_date, lifecycle_segment, count_orders, sum_revenue from segment_daily_activity "
            "where activity_date < ? order by 1, 2",
            [as_of],
        ).df()
    frame["activity_date"] = pd.to_datetime(frame["activity_date"])
    return frame


def newest_unbroken(series: pd.Series | pd.DataFrame) -> pd.Series | pd.DataFrame:
    """The newest run of consecutive days of a date-indexed series (or frame)."""
    days = series.index.to_series().diff().dt.days.fillna(1).to_numpy()
    breaks = np.flatnonzero(days != 1)
    return series.iloc[breaks[-1] :] if len(breaks) else series


def ets_forecast(history: pd.Series, horizon: int = HORIZON_DAYS) -> pd.DataFrame:
    """`forecast`, `lower_95`, `upper_95` for the `horizon` days after a daily series, cut at 0."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    model = ETSModel(
        history.astype(float).reset_index(drop=True),
        error="add",
        trend="add",
        damped_trend=True,
        seasonal="add",
        seasonal_periods=SEASON_DAYS,
    )
    with warnings.catch_warnings():  # convergence chatter on flat series; the fit is still usable
        warnings.simplefilter("ignore")
        fitted = model.fit(disp=False, maxiter=200)
        frame = fitted.get_prediction(start=len(history), end=len(history) + horizon - 1).summary_frame(alpha=0.05)
    out = pd.DataFrame({"forecast": frame["mean"], "lower_95": frame["pi_lower"], "upper_95": frame["pi_upper"]}).clip(
        lower=0
    )
    out.index = pd.date_range(history.index[-1] + pd.Timedelta(days=1), periods=horizon, freq="D")
    return out


def realised_error(series: pd.Series) -> dict[str, float]:
    """MASE of the ETS forecast made HORIZON_DAYS before the end of `series` and of the seasonal naive one."""
    train, actual = series.iloc[:-HORIZON_DAYS], series.iloc[-HORIZON_DAYS:].to_numpy(float)
    known = train.to_numpy(float)
    # MASE's scale: the in-sample error of "the same as a week ago".
    scale = float(np.mean(np.abs(known[SEASON_DAYS:] - known[:-SEASON_DAYS])))
    if scale <= 0:
        return {"ets_mase": None, "seasonal_naive_mase": None}
    naive = np.resize(known[-SEASON_DAYS:], HORIZON_DAYS)  # the last week, repeated
    ets = ets_forecast(train)["forecast"].to_numpy()
    return {
        "ets_mase": float(np.mean(np.abs(ets - actual)) / scale),
        "seasonal_naive_mase": float(np.mean(np.abs(naive - actual)) / scale),
    }


def forecast_day(as_of: date) -> dict[str, Any]:
    """Write the as-of date's forecasts for every segment and metric; what was written and what was left out."""
    history = load_series(as_of)
    # A day the table has but a segment lacks is a quiet day for it (0); a day the table lacks is a gap.
    built_days = pd.DatetimeIndex(sorted(history["activity_date"].unique()))
    rows, skipped = [], {}
    for segment, days in history.groupby("lifecycle_segment"):
        days = days.set_index("activity_date")[list(METRICS.values())].reindex(built_days, fill_value=0)
        days = newest_unbroken(days)
        for metric, column in METRICS.items():
            series = days[column].astype(float)
            if len(series) < MIN_DAYS or series.index[-1] < pd.Timestamp(as_of - timedelta(days=1)):
                skipped[f"{segment}/{metric}"] = f"{len(series)} unbroken days up to the day before, {MIN_DAYS} needed"
                continue
            ahead = ets_forecast(series)
            error = realised_error(series)
            rows.append(
                ahead.rename_axis("forecast_date")
                .reset_index()
                .assign(lifecycle_segment=segment, metric=metric, history_days=len(series), **error)
            )
    target = settings().forecasts_dir / f"as_of_date={as_of}" / "part-0.parquet"
    if rows:
        frame = pd.concat(rows, ignore_index=True)
        frame["forecast_date"] = frame["forecast_date"].dt.date
        write_parquet_files_atomic({target: as_table(frame)})
    else:
        target.unlink(missing_ok=True)  # a rerun with nothing to forecast leaves no earlier forecast behind
    return {"as_of_date": str(as_of), "series_forecast": len(rows), "left_out": skipped}
