"""The daily sequence's own rules: the weekly training day, and the steps a caller may name."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from ml.day_pins import pin
from ml.pipeline import DAILY_STEPS, run_day, trained_in_week_before

MONDAY = date(2026, 6, 29)


def test_a_monday_does_not_retrain_models_trained_in_the_week_before(empty_env):
    assert MONDAY.weekday() == 0
    assert trained_in_week_before(MONDAY) is None
    pin(MONDAY - timedelta(days=7), training={"trained": True})  # a week ago: the Monday retrains
    pin(MONDAY - timedelta(days=2), training={"trained": False})
    assert trained_in_week_before(MONDAY) is None
    pin(MONDAY - timedelta(days=1), training={"trained": True})  # the shop's first day, a Sunday, trained
    assert trained_in_week_before(MONDAY) == MONDAY - timedelta(days=1)


def test_a_step_that_does_not_exist_is_named_before_anything_runs(empty_env):
    with pytest.raises(ValueError, match=r"unknown daily step\(s\) \['scoring'\]; the steps: land_day, features"):
        run_day(MONDAY, skip=("scoring",))
    assert not (empty_env / "data").exists()
    assert DAILY_STEPS[0] == "land_day" and DAILY_STEPS[-1] == "publish"
