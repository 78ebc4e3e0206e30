"""Segment forecasts: the ETS model against the seasonal naive baseline, and only unbroken daily history."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.forecasts.segments import HORIZON_DAYS, ets_forecast, newest_unbroken, realised_error


def _weekly_series(days: int, trend: float, seed: int = 5) -> pd.Series:
    t = np.arange(days)
    noise = np.random.default_rng(seed).normal(0, 2.0, days)
    values = 60 + trend * t + 12 * np.sin(2 * np.pi * t / 7) + noise
    return pd.Series(values, index=pd.date_range("2026-01-01", periods=days, freq="D"))


def test_the_forecast_covers_the_next_28_days_and_its_interval_holds_what_happens():
    series = _weekly_series(140 + HORIZON_DAYS, trend=0.3)
    history, future = series.iloc[:-HORIZON_DAYS], series.iloc[-HORIZON_DAYS:]
    ahead = ets_forecast(history)
    assert list(ahead.index) == list(future.index)
    assert (ahead["lower_95"] <= ahead["forecast"]).all() and (ahead["forecast"] <= ahead["upper_95"]).all()
    inside = ((future >= ahead["lower_95"]) & (future <= ahead["upper_95"])).mean()
    assert inside >= 0.85, inside
    assert np.abs(ahead["forecast"] - future).mean() < 4.0  # the noise's scale is 2


def test_with_a_trend_ets_beats_the_seasonal_naive_forecast_and_without_one_is_no_worse_than_it():
    trending = realised_error(_weekly_series(140, trend=0.5))
    assert trending["ets_mase"] < 0.5 * trending["seasonal_naive_mase"]
    flat = realised_error(_weekly_series(140, trend=0.0))
    assert flat["ets_mase"] <= flat["seasonal_naive_mase"] * 1.05
    assert realised_error(pd.Series(np.ones(120), index=pd.date_range("2026-01-01", periods=120))) == {
        "ets_mase": None,
        "seasonal_naive_mase": None,
    }  # nothing ever changes: no scale to measure an error against


def test_only_the_newest_unbroken_run_of_days_is_used():
    days = pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-05", "2026-01-06", "2026-01-07"])
    series = pd.Series([1.0, 2.0, 3.0, 4.0, 5.0], index=days)
    assert newest_unbroken(series).tolist() == [3.0, 4.0, 5.0]
    assert newest_unbroken(series.iloc[2:]).tolist() == [3.0, 4.0, 5.0]
