"""The closed loop on a small simulated shop: the pipeline's coupons are delivered, and measured.

The same task functions the DAG calls run day after day (ml.sim.loop); the shop delivers each day's send
list. Then the realised incremental margin per policy arm (treated vs its randomised holdout) must
agree with the simulator's truth for the coupons it delivered, within the confidence interval.
"""

from __future__ import annotations

import re
from datetime import date

import duckdb
import pandas as pd
import pytest

from ml.uplift.model import LEARNERS
from ml.uplift.train import SELECTION_CAMPAIGNS
from tests.conftest import point_env_at

# Long enough for the first days' 7-day coupon windows to close inside the loop (their outcomes are measured).
LOOP_DAYS = 9


@pytest.fixture(scope="module")
def looped_shop(tmp_path_factory):
    from ml.pipeline import train_uplift_if_possible
    from ml.propensity.train import train_all
    from ml.registry.tracking import configure_mlflow
    from ml.sim.loop import realised_vs_truth, run_loop
    from ml.sim.policy_truth import evaluate_policies
    from ml.sim.run import simulate
    from ml.sim.shop import ShopSpec
    from ml.warehouse.history import build_history

    root = tmp_path_factory.mktemp("closed_loop")
    with pytest.MonkeyPatch.context() as mp:
        point_env_at(mp, root)
        # A larger holdout than the default, so a small shop's realised lift has a usable interval.
        mp.setenv("SHOP_HOLDOUT_SHARE", "0.3")
        # The loop is about coupons: the quicker reasons (tested exact in tests/ml/test_monitoring.py) will do.
        mp.setenv("SHOP_SCORE_REASONS", "approximate")
        configure_mlflow()
        simulate(ShopSpec(seed=11, users=2500, days=100, start=date(2026, 1, 1)))
        build_history()
        train_all()
        uplift = train_uplift_if_possible()
        days = run_loop(LOOP_DAYS)
        comparison = realised_vs_truth()
        policies = evaluate_policies()
    return {"root": root, "days": days, "comparison": comparison, "uplift": uplift, "policies": policies}


def test_every_day_plans_within_budget_and_the_shop_delivers_the_sent_coupons(looped_shop):
    root = looped_shop["root"] / "data"
    assert len(looped_shop["days"]) == LOOP_DAYS
    assert looped_shop["uplift"]["decision"] in ("promoted", "challenger"), looped_shop["uplift"]
    # Every learner was compared on the newest campaign and the two before it, each tested out of time.
    assert set(looped_shop["uplift"]["selection_qini_by_learner"]) == set(LEARNERS)
    assert looped_shop["uplift"]["selection_campaigns"] == SELECTION_CAMPAIGNS
    targets = pd.read_parquet(root / "targets")
    deliveries = pd.read_parquet(root / "truth" / "deliveries")
    delivered_days = set(pd.to_datetime(deliveries["as_of_date"].astype(str)).dt.date)
    sent = targets[~targets["is_holdout"]]
    sent = sent[pd.to_datetime(sent["as_of_date"].astype(str)).dt.date.isin(delivered_days)]
    assert len(sent) > 0
    # Exactly the sent rows are delivered, never a holdout row.
    key = ["user_id", "coupon_code"]
    assert len(sent.merge(deliveries, on=key)) >= len(sent)
    held = targets[targets["is_holdout"]]
    held_keys = set(zip(held["user_id"], pd.to_datetime(held["as_of_date"].astype(str)).dt.date, strict=True))
    delivered_keys = set(
        zip(deliveries["user_id"], pd.to_datetime(deliveries["as_of_date"].astype(str)).dt.date, strict=True)
    )
    assert not held_keys & delivered_keys
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        redeemed = con.execute(
            """select count(*) from stg_landing__events as e
               join coupon_targets as t on e.user_id = t.user_id and e.coupon_code = t.coupon_code
                 and cast(e.event_at as date) between t.as_of_date and t.as_of_date + 6
               where e.event_type = 'purchase' and not t.is_holdout"""
        ).fetchone()[0]
        matured = con.execute("select count(*) from coupon_results where is_matured_7d").fetchone()[0]
    assert redeemed > 0, "delivered coupons are redeemed in the shop's purchases"
    assert matured > 0


def test_realised_margin_agrees_with_truth_within_the_interval(looped_shop):
    comparison = looped_shop["comparison"]
    assert {line["policy"] for line in comparison} >= {"propensity"}
    for line in comparison:
        assert line["ci_low"] < line["ci_high"]
        assert line["truth_within_ci"], line


def test_policy_gate_records_its_evidence(looped_shop):
    days = looped_shop["days"]
    assert all(day["champion_policy"] in ("uplift", "propensity") for day in days)
    # Before any send of its own matured, the pipeline has no holdout evidence, but the shop's randomised
    # campaigns already value both policies.
    first = days[0]["policy_evidence"]
    assert first["holdout"]["difference"] is None and not first["holdout_counted"]
    assert first["campaigns"] >= 1 and first["difference"] is not None
    assert first["ci_low"] < first["difference"] < first["ci_high"]


def test_campaign_evaluations_are_out_of_time(looped_shop):
    """No policy is valued on a campaign its models trained on: the uplift model of each evaluated campaign
    learned only from campaigns whose 7-day window closed before it, the propensity stand-ins from labels
    whose 30-day window closed before it."""
    files = sorted((looped_shop["root"] / "data" / "evaluations" / "campaigns").glob("*/*.parquet"))
    assert files
    rows = pd.concat([pd.read_parquet(f) for f in files])
    assert set(rows["policy"]) == {"uplift", "propensity", "random", "none"}
    for row in rows.itertuples():
        trained_on = [date.fromisoformat(d) for d in row.uplift_train_campaigns.split(",")]
        assert len(trained_on) >= 2
        assert all((row.send_date - d).days >= 7 for d in trained_on), row
        assert (row.send_date - row.propensity_label_date).days >= 30, row
    # "none" is worth nothing by definition; a policy's difference to itself is 0.
    none = rows[rows["policy"] == "none"]
    assert (none["value"] == 0).all() and (none["n_targeted"] == 0).all()
    uplift = rows[rows["policy"] == "uplift"]
    assert (uplift["difference_to_uplift"] == 0).all() and (uplift["n_targeted"] > 0).all()


def test_policy_evaluations_reach_the_snapshot_for_every_targeting_day(looped_shop):
    snapshot = looped_shop["root"] / "data" / "analyst" / "warehouse_snapshot.duckdb"
    with duckdb.connect(str(snapshot), read_only=True) as con:
        rows = con.execute("select * from policy_evaluations").df()
    days = {d["as_of_date"] for d in looped_shop["days"]}
    assert {str(d) for d in pd.to_datetime(rows["evaluation_date"]).dt.date} == days
    campaign = rows[rows["evidence_source"] == "campaign"]
    assert set(campaign["policy"]) == {"uplift", "propensity", "random", "none"}
    assert (campaign["value_ci_low"] <= campaign["value"]).all() and (
        campaign["value"] <= campaign["value_ci_high"]
    ).all()
    # Each day exactly one policy leads, the one the day's send list gave the bigger budget.
    for day in looped_shop["days"]:
        that_day = rows[pd.to_datetime(rows["evaluation_date"]).dt.date.astype(str) == day["as_of_date"]]
        assert set(that_day["leader_policy"]) == {day["champion_policy"]}
        assert set(that_day.loc[that_day["is_leader"], "policy"]) == {day["champion_policy"]}


def test_the_lifecycle_rule_of_the_evaluation_matches_user_segments(looped_shop):
    """The propensity rules are rebuilt on past campaigns with
    ml.targeting.campaign_evaluation.lifecycle_segments: it must give every user the segment user_segments.sql gives."""
    from ml.targeting.campaign_evaluation import lifecycle_segments

    with duckdb.connect(str(looped_shop["root"] / "data" / "warehouse.duckdb"), read_only=True) as con:
        frame = con.execute(
            """select f.*, s.lifecycle_segment as expected
               from user_segments as s join user_features as f using (user_id, as_of_date)"""
        ).df()
    assert len(frame) > 1000
    assert (lifecycle_segments(frame).to_numpy() == frame["expected"].to_numpy()).all()


def test_every_scored_day_has_a_truth_line_per_policy(looped_shop):
    lines = [line for line in looped_shop["policies"] if "as_of_date" in line]
    days = {line["as_of_date"] for line in lines}
    # A day on which the contact cap left nobody eligible has nothing to compare.
    assert days == {day["as_of_date"] for day in looped_shop["days"] if day["eligible_users"] > 0}
    assert days
    keys = {
        "policy",
        "as_of_date",
        "budget",
        "spend",
        "n_targeted",
        "true_incremental_purchases",
        "true_incremental_margin",
    }
    for day in days:
        by_policy = {line["policy"]: line for line in lines if line["as_of_date"] == day}
        assert {"propensity", "random", "oracle"} <= set(by_policy)
        for line in by_policy.values():
            assert keys <= set(line) and line["spend"] <= line["budget"] + 0.01
        # Knowing the true effects, the same allocation earns at least what a random one does.
        assert by_policy["oracle"]["true_incremental_margin"] >= by_policy["random"]["true_incremental_margin"]
        assert "share_of_oracle" in by_policy["propensity"]
    # Each policy run over the days on its own: its first day's pool is that day's pool, and the oracle funds
    # only offers that truly earn, so its later days add to its first day's margin.
    own = {line["policy"]: line for line in looped_shop["policies"] if "own_history" in line}
    first, last = min(days), max(days)
    assert {"propensity", "oracle", "informed"} <= set(own) and "random" not in own
    assert all(line["own_history"] == f"{first}..{last}" for line in own.values())
    first_oracle = next(line for line in lines if line["as_of_date"] == first and line["policy"] == "oracle")
    assert own["oracle"]["true_incremental_margin"] >= first_oracle["true_incremental_margin"] - 0.01
    assert "share_of_oracle" in own["propensity"]


def test_the_coupon_outcomes_built_day_by_day_equal_a_full_rebuild_and_a_history_rebuild(looped_shop):
    """Each loop day rebuilt the send dates whose 30-day windows reach its re-processed event days, through the
    incremental filters (every loop send date is inside that reach, so no row here was kept unchanged);
    rebuilding the outcomes and results from every send date gives the same rows. A history rebuild drops the
    outcomes, and the next targeting build recomputes the same rows from the rebuilt events.
    """
    from ml.targeting.build import build_targeting
    from ml.warehouse.builds import day_vars
    from ml.warehouse.dbt_runner import run_dbt
    from ml.warehouse.history import build_history
    from tests.checksums import query, rounded_rows, table_checksums

    warehouse = looped_shop["root"] / "data" / "warehouse.duckdb"
    outcomes = ["int_coupon_target_outcomes"]
    daily, results = table_checksums(warehouse, outcomes), rounded_rows(warehouse, "coupon_results")
    daily_rows = rounded_rows(warehouse, outcomes[0])
    sends = query(
        warehouse, "select count(distinct as_of_date), count(*) filter (where is_matured_7d) from " + outcomes[0]
    )
    # Send dates from every loop day, and windows that matured after their send date was first built.
    assert sends[0][0] >= LOOP_DAYS - 1 and sends[0][1] > 0 and results
    newest = date.fromisoformat(looped_shop["days"][-1]["as_of_date"])
    with pytest.MonkeyPatch.context() as mp:
        point_env_at(mp, looped_shop["root"])
        mp.setenv("SHOP_HOLDOUT_SHARE", "0.3")
        run_dbt(["build", "--select", *outcomes, "coupon_results", "--full-refresh"], day_vars(newest))
        assert table_checksums(warehouse, outcomes) == daily
        assert rounded_rows(warehouse, "coupon_results") == results

        build_history(keep_last=0)
        assert not query(warehouse, "select * from duckdb_tables() where table_name = 'int_coupon_target_outcomes'")
        build_targeting(newest, plan=False)
    # The history rebuild sums each user-day's revenue in other batches, so floats are compared rounded.
    assert rounded_rows(warehouse, outcomes[0]) == daily_rows
    assert rounded_rows(warehouse, "coupon_results") == results


def test_no_raw_contact_data_in_any_file_the_pipeline_wrote(looped_shop):
    """The simulated shop's exports carry emails and phone numbers; nothing the pipeline wrote from them does."""
    from tests.privacy_scan import text_hits

    contact = r"user\d+@example\.com|\+49\d{9,10}"
    root = looped_shop["root"]
    assert text_hits(root / "data" / "inbox", contact)  # the check sees what it looks for
    assert text_hits(root / "data", contact, skip=("inbox",)) == []
    assert text_hits(root / "mlflow", contact) == []


def test_each_day_publishes_forecasts_clusters_and_recommendations(looped_shop):
    """The loop's days ran the forecast step and built the segments' clusters and recommendations."""
    root = looped_shop["root"] / "data"
    newest = max(day["as_of_date"] for day in looped_shop["days"])
    with duckdb.connect(str(root / "analyst" / "warehouse_snapshot.duckdb"), read_only=True) as con:
        forecasts = con.execute(
            "select lifecycle_segment, metric, count(*), min(forecast_date), max(forecast_date), "
            "min(forecast), bool_and(lower_95 <= forecast and forecast <= upper_95), any_value(ets_mase) "
            "from segment_forecasts where as_of_date = ? group by 1, 2",
            [newest],
        ).fetchall()
        clustered = con.execute("select count(*) from user_clusters where as_of_date = ?", [newest]).fetchone()[0]
        segmented = con.execute("select count(*) from user_segments where as_of_date = ?", [newest]).fetchone()[0]
        recommended = con.execute(
            "select count(distinct user_id), count(*) from user_recommendations where as_of_date = ?", [newest]
        ).fetchone()
    # Every segment is forecast: a 100-day shop's table has 70 unbroken days, and a segment's days before it had
    # any users are zeros.
    assert {metric for _, metric, *_ in forecasts} == {"orders", "revenue"} and len(forecasts) >= 6
    for segment, metric, days, first, last, lowest, ordered, mase in forecasts:
        assert days == 28 and str(first) == newest and (last - first).days == 27, (segment, metric)
        assert lowest >= 0 and ordered
        # No error scale where the held-back history never moved (a segment its rules fill only lately).
        assert (mase is None or mase > 0) and (mase is not None or segment not in ("active", "loyal", "new"))
    assert segmented > 1000 and clustered == segmented and recommended == (segmented, 3 * segmented)
    # Every order of a known user on a landed day falls in exactly one segment of segment_daily_activity.
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        mismatched = con.execute(
            """select count(*) from (
                   select activity_date, sum(count_orders) as orders from segment_daily_activity group by 1
               ) as s
               join (
                   select activity_date, sum(count_orders) as orders from int_user_days_aggregated group by 1
               ) as d using (activity_date)
               where s.orders <> d.orders"""
        ).fetchone()[0]
    assert mismatched == 0


def test_every_dbt_unit_test_passes_on_the_looped_warehouse(looped_shop, monkeypatch):
    """The pipeline's builds leave dbt's unit tests out (they check the SQL on fixed rows, the same every day):
    here all of them run, on a warehouse where every model they read exists."""
    import yaml

    from ml.config import settings
    from tests.dbt_unit import run_unit_tests

    point_env_at(monkeypatch, looped_shop["root"])
    names = [
        test["name"]
        for path in (settings().dbt_project_dir / "models").rglob("*.yml")
        for test in (yaml.safe_load(path.read_text()) or {}).get("unit_tests", [])
    ]
    assert len(names) >= 6
    done = run_unit_tests()
    assert done.returncode == 0, done.stdout[-3000:]
    # Count the unit tests' own PASS lines by name: a run's PASS total also counts any project hook.
    passed = set(re.findall(r"\d+ of \d+ PASS \S+::(\S+)", done.stdout))
    assert passed == set(names) and "ERROR=0 " in done.stdout, done.stdout[-3000:]
