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


def test_a_quiet_day_is_a_zero_a_day_missing_from_the_table_is_a_gap_and_a_rerun_keeps_no_stale_file(empty_env):
    import duckdb

    from ml.config import settings
    from ml.forecasts.segments import MIN_DAYS, forecast_day

    days = pd.date_range("2026-01-01", periods=MIN_DAYS + 10, freq="D")
    rows = [(d.date(), "active", 1000, 100, 120, 6000.0) for d in days]
    # loyal buys only on even days and has no row on the others: those are quiet days, not gaps.
    rows += [(d.date(), "loyal", 50, 5, 7, 900.0) for i, d in enumerate(days) if i % 2 == 0]
    # new appears only lately: before, the segment had nobody (zeros), as a segment the rules fill later does.
    rows += [(d.date(), "new", 30, 1, 1, 50.0) for d in days[-20:]]
    cfg = settings()
    cfg.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(cfg.warehouse_path)) as con:
        con.execute(
            "create table segment_daily_activity (activity_date date, lifecycle_segment varchar, n_users bigint, "
            "n_buyers bigint, count_orders bigint, sum_revenue double)"
        )
        con.executemany("insert into segment_daily_activity values (?, ?, ?, ?, ?, ?)", rows)
    as_of = (days[-1] + pd.Timedelta(days=1)).date()
    result = forecast_day(as_of)
    assert result["series_forecast"] == 6 and result["left_out"] == {}
    written = pd.read_parquet(cfg.forecasts_dir / f"as_of_date={as_of}" / "part-0.parquet")
    assert set(written["lifecycle_segment"]) == {"active", "loyal", "new"}
    assert (written["history_days"] == len(days)).all() and len(written) == 6 * 28
    # A day missing from the whole table breaks every series: only the days after it remain, too few now.
    with duckdb.connect(str(cfg.warehouse_path)) as con:
        con.execute("delete from segment_daily_activity where activity_date = ?", [days[-15].date()])
    rerun = forecast_day(as_of)
    assert rerun["series_forecast"] == 0 and len(rerun["left_out"]) == 6
    assert not (cfg.forecasts_dir / f"as_of_date={as_of}" / "part-0.parquet").exists()
