"""Point in time, provably: an older as-of date rebuilt from past events alone equals the real build."""

from __future__ import annotations

import os
import re
from datetime import timedelta

import pytest

from ml.errors import DbtError
from ml.warehouse.builds import as_of_vars, build_features
from ml.warehouse.dbt_runner import run_dbt
from ml.warehouse.leakage import LeakageError, check_point_in_time
from tests.checksums import query
from tests.conftest import ROOT, altered_project
from tests.dbt_unit import run_unit_tests


def test_the_leakage_check_passes_on_the_real_features(built_shop, shop_copy):
    shop_copy(built_shop)
    result = check_point_in_time()
    assert result["rows"] > 1000 and result["later_event_days"] >= 30
    assert result["rows_differing"] == 0 and result["columns_differing"] == {}


def test_the_leakage_check_and_the_dbt_test_fail_on_a_leaking_feature(built_shop, shop_copy, tmp_path, monkeypatch):
    shop = shop_copy(built_shop)
    honest_project = os.environ.get("SHOP_DBT_PROJECT_DIR", str(ROOT / "dbt_project"))
    # An off-by-one a reviewer could miss: the windows include the as-of day itself.
    project = altered_project(
        tmp_path,
        "marts/features/user_features.sql",
        "and user_days.activity_date < user_spine.as_of_date\n",
        "and user_days.activity_date <= user_spine.as_of_date\n",
    )
    monkeypatch.setenv("SHOP_DBT_PROJECT_DIR", str(project))
    dates = [r[0] for r in query(shop.warehouse, "select distinct as_of_date from user_features order by 1")]
    as_of = dates[len(dates) // 2]  # weeks of later events landed: a leak has something to see
    # dbt's unit test of user_features catches this off-by-one (`make test` and CI run the unit tests)...
    unit = run_unit_tests("test_type:unit,user_features")  # the shop has the features, not the segments
    assert unit.returncode != 0, unit.stdout[-2000:]
    assert re.search(r"FAIL .*user_features::user_features_windows_and_recency_use_only_days_before_as_of", unit.stdout)
    # ...and the pipeline's build, which leaves unit tests out, fails on the data test: nothing downstream of the
    # features (training, scoring, targeting) runs on them.
    with pytest.raises(DbtError, match="assert_features_do_not_see_the_future"):
        build_features(as_of, as_of)
    # A careless `dbt run` builds it too: then the data test and the leakage check both fail.
    dbt_vars = as_of_vars(as_of, as_of)
    run_dbt(["run", "--select", "user_features"], dbt_vars)
    # The failed build left a lifetime checkpoint a few days before the date, so the dbt test
    # recounts from it and the days since, not from the whole history.
    checkpoint = query(
        shop.warehouse, "select max(as_of_date) from int_user_lifetime_as_of where as_of_date < ?", [as_of]
    )[0][0]
    assert checkpoint is not None and as_of - checkpoint <= timedelta(days=30)
    with pytest.raises(DbtError, match="assert_features_do_not_see_the_future"):
        run_dbt(["test", "--select", "assert_features_do_not_see_the_future"], dbt_vars)
    with pytest.raises(LeakageError, match=rf"features as of {as_of} change .*count_sessions_7d \(\d+ users\)"):
        check_point_in_time(as_of)
    # Rebuilt with the honest project, the same date passes again.
    monkeypatch.setenv("SHOP_DBT_PROJECT_DIR", honest_project)
    run_dbt(["run", "--select", "user_features"], dbt_vars)
    run_dbt(["test", "--select", "assert_features_do_not_see_the_future"], dbt_vars)
    assert check_point_in_time(as_of)["rows_differing"] == 0
