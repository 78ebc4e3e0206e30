"""Per-user reasons and model monitoring on a real trained shop: real MLflow champions, real dbt marts."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from tests.checksums import query

SHIFT_FROM = date(2026, 1, 1) + timedelta(days=80)
# What retrains a model (realised AUC, score drift) and the inputs' drift: quiet without a shift, loud with one.
SHIFT_CHECKS = ["roc_auc", "score_psi", "feature_psi"]


def test_psi_is_near_zero_for_the_same_distribution_and_major_for_a_shift():
    from ml.propensity.drift_reference import categorical_bins, numeric_bins, psi

    rng = np.random.default_rng(0)
    reference = rng.normal(0, 1, 20_000)
    bins = numeric_bins(reference)
    assert psi(bins, rng.normal(0, 1, 20_000)) < 0.01
    assert 0.1 < psi(bins, rng.normal(0.4, 1, 20_000)) < 0.25  # a moderate shift
    assert psi(bins, rng.normal(1.0, 1, 20_000)) > 0.25
    with_missing = np.where(rng.random(20_000) < 0.5, np.nan, rng.normal(0, 1, 20_000))
    assert psi(bins, with_missing) > 0.25  # half the values gone missing is a major shift
    countries = pd.Series(rng.choice(["DE", "FR"], 10_000))
    assert psi(categorical_bins(countries), countries) < 0.01
    assert psi(categorical_bins(countries), pd.Series(["US"] * 5_000 + ["DE"] * 5_000)) > 0.25


def test_bins_counted_by_the_engine_are_the_shares_the_values_give():
    """The monitor's PSI comes from per-bin counts in SQL, so no user's row leaves the engine on either engine
    (ml.monitoring.monitor.drift_rows): values on an edge, missing ones (null and NaN), booleans, decimals and
    unseen categories land in the bins numpy and pandas put them in."""
    import duckdb

    from ml.propensity.drift_reference import (
        categorical_bins,
        categorical_shares,
        numeric_bins,
        numeric_shares,
        psi,
        psi_of_shares,
        shares_in_sql,
    )

    rng = np.random.default_rng(1)
    reference = numeric_bins(rng.normal(0, 1, 5_000))
    values = np.concatenate([rng.normal(0.3, 1.2, 3_000), reference["edges"], [np.nan] * 40])
    frame = pd.DataFrame(
        {
            "x": values,
            "flag": rng.random(len(values)) < 0.3,
            "country": rng.choice(["DE", "FR", "US", None], len(values)),
        }
    )
    frame.loc[:20, "x"] = None
    with duckdb.connect() as con:
        con.register("frame", frame)
        con.execute(
            "create table t as select *, x::decimal(18, 6) as amount, case when x is null then 'nan'::double "
            "else x end as with_nan from frame"
        )
        rows, no_params = "from t where flag or not flag", []
        as_floats = con.execute("select x, with_nan, flag::double as flag, amount::double as amount from t").df()
        for column in as_floats.columns:
            got = shares_in_sql(con, reference, column, rows, no_params)
            np.testing.assert_allclose(got, numeric_shares(reference["edges"], as_floats[column]), rtol=0, atol=1e-15)
        got = shares_in_sql(con, reference, "x", rows, no_params)
        assert psi_of_shares(reference, got) == pytest.approx(psi(reference, frame["x"].astype(float)), abs=1e-12)
        countries = categorical_bins(pd.Series(["DE", "FR", "DE"]))
        got = shares_in_sql(con, countries, "country", rows, no_params)
        expected = categorical_shares(
            countries["categories"], frame["country"].astype(object).where(frame["country"].notna(), "unknown")
        )
        np.testing.assert_allclose(got, expected, atol=1e-15)
        assert got[-1] > 0.4  # US and the missing ones: outside the reference's categories


def test_bands_turn_values_into_ok_warn_alert_and_pending():
    from ml.monitoring.checks import check_rows

    test = {"test_roc_auc": 0.80, "test_brier": 0.10}
    by_metric = {
        r["metric"]: r for r in check_rows({"roc_auc": 0.79, "brier": 0.12, "ece": 0.2, "pr_auc": float("nan")}, test)
    }
    assert by_metric["roc_auc"]["status"] == "ok" and by_metric["roc_auc"]["alert_threshold"] == pytest.approx(0.75)
    assert by_metric["brier"]["status"] == "warn"  # 1.2x test: past 1.15x, within 1.3x
    assert by_metric["ece"]["status"] == "alert"
    assert by_metric["pr_auc"]["status"] == "pending"
    assert check_rows({"roc_auc": 0.70}, test)[0]["status"] == "alert"
    # A dip within what chance gives a small population (Hanley-McNeil) warns but does not alert.
    from ml.monitoring.checks import auc_noise

    small, large = auc_noise(0.70, 40, 900), auc_noise(0.70, 4_000, 90_000)
    assert small > 0.1 > 0.02 > large
    assert check_rows({"roc_auc": 0.70}, test, noise={"roc_auc": small})[0]["status"] == "warn"
    assert check_rows({"roc_auc": 0.70}, test, noise={"roc_auc": large})[0]["status"] == "alert"


@pytest.fixture(scope="session")
def shifted_shop(tmp_path_factory):
    """The small test shop (1,500 users, 120 days) with the bargain_hunters shift from day 80, trained on what was
    known before it. Scored on the shift's first day it is a shop without a shift (the cohort has not come yet)."""
    from ml.propensity.train import train_all
    from ml.sim.run import simulate
    from ml.sim.shop import ShopSpec
    from ml.warehouse.history import build_history
    from tests.conftest import SMALL_SHOP, Shop, point_env_at

    root = tmp_path_factory.mktemp("shifted_shop")
    with pytest.MonkeyPatch.context() as mp:
        point_env_at(mp, root)
        simulate(ShopSpec(**SMALL_SHOP, shift="bargain_hunters", shift_from=SHIFT_FROM))
        build_history(keep_last=0)
        train_all(as_of=SHIFT_FROM - timedelta(days=1))
    return Shop(root, [])


@pytest.fixture
def scored(shifted_shop, shop_copy):
    """A copy of the shifted shop scored on the shift's first day, before any bargain hunter has signed up."""
    from ml.propensity.score import score_day

    shop = shop_copy(shifted_shop)
    return shop, date.fromisoformat(score_day(SHIFT_FROM)["as_of_date"])


def test_every_scored_user_has_three_reasons_per_model_that_add_up_to_its_margin(scored):
    from ml.propensity.datasets import in_population, load_scoring_population, model_inputs
    from ml.propensity.reasons import contributions, model_margin
    from ml.registry.aliases import MODEL_NAMES, load_champion
    from ml.warehouse.read import connect_read_only

    shop, as_of = scored
    reasons = pd.read_parquet(shop.data / "score_reasons" / f"as_of_date={as_of}" / "part-0.parquet")
    scores = pd.read_parquet(shop.data / "scores" / f"as_of_date={as_of}" / "part-0.parquet")
    per_user = reasons.groupby(["model_name", "user_id"]).size()
    assert set(per_user) == {3}
    assert per_user.loc["purchase_propensity"].size == scores["p_purchase_30d"].notna().sum()
    assert per_user.loc["churn_risk"].size == scores["p_churn_30d"].notna().sum()
    assert reasons["reason"].str.len().gt(0).all() and set(reasons["direction"]) <= {"raises", "lowers"}
    # The reasons' margin is the score: sigmoid(margin) equals the probability written.
    merged = reasons[reasons["model_name"] == "purchase_propensity"].merge(scores, on="user_id")
    assert np.allclose(1 / (1 + np.exp(-merged["margin"])), merged["p_purchase_30d"], atol=1e-6)
    with connect_read_only() as con:
        population = load_scoring_population(con, as_of)
    for task, name in MODEL_NAMES.items():
        model, _ = load_champion(name)
        pipeline = model.get_raw_model()
        columns = [c.name for c in model.metadata.get_input_schema().inputs]
        inputs = model_inputs(population.loc[in_population(population, task).to_numpy()], columns)
        grouped, base, margin = contributions(pipeline, inputs)
        assert np.abs(grouped.sum(axis=1).to_numpy() + base - model_margin(pipeline, inputs)).max() < 1e-5
        assert np.allclose(margin, model_margin(pipeline, inputs), atol=1e-5)
        approximate, base, _ = contributions(pipeline, inputs, approximate=True)  # Saabas: additive as well
        assert np.abs(approximate.sum(axis=1).to_numpy() + base - model_margin(pipeline, inputs)).max() < 1e-5
        assert not any(c.startswith(("country_", "device_", "missingindicator_", "bgnbd_")) for c in grouped.columns)


def test_the_monitor_writes_realised_and_drift_rows_and_a_rerun_changes_nothing(scored):
    from ml.config import settings
    from ml.monitoring.monitor import monitor_day
    from ml.pipeline import monitor
    from ml.propensity.score import score_day
    from ml.targeting.build import build_segments

    shop, as_of = scored
    summary = monitor(as_of)
    assert set(summary["mlflow_runs"]) == {"purchase_propensity", "churn_risk"}
    files = sorted(settings().monitoring_dir.glob("scoring_date=*/part-0.parquet"))
    rows = pd.concat([pd.read_parquet(p).assign(scoring_date=p.parent.name[13:]) for p in files])
    realised = rows[rows["metric"].eq("roc_auc") & rows["status"].ne("pending")]
    for name in ("purchase_propensity", "churn_risk"):
        mine = realised[realised["model_name"] == name]
        assert len(mine) >= 1 and mine["value"].between(0.5, 1).all()
        assert set(mine["scored_by"]) == {"backfill"}  # the shop was never scored on those dates
    today = rows[rows["scoring_date"] == str(as_of)]
    assert set(today.loc[today["metric"] == "roc_auc", "status"]) == {"pending"}
    assert len(today[today["metric"] == "score_psi"]) == 2
    assert today.loc[today["metric"] == "feature_psi", "feature"].nunique() > 20
    assert set(rows["status"]) <= {"ok", "warn", "alert", "pending"}
    # No shift yet: the checks that flag one 40 days later (test_an_injected_shift_is_flagged) stay quiet.
    calm = rows[rows["metric"].isin(SHIFT_CHECKS) & rows["status"].eq("alert")]
    assert calm.empty, calm[["model_name", "metric", "feature", "value", "alert_threshold"]]
    # A rerun of the day rewrites the same rows.
    before = rows.drop(columns=["monitored_on"]).sort_values(["scoring_date", "model_name", "metric", "feature"])
    monitor(as_of)
    again = pd.concat([pd.read_parquet(p).assign(scoring_date=p.parent.name[13:]) for p in files])
    again = again.drop(columns=["monitored_on"]).sort_values(["scoring_date", "model_name", "metric", "feature"])
    pd.testing.assert_frame_equal(before.reset_index(drop=True), again.reset_index(drop=True))
    # Once its labels have matured, a later run measures the day with the scores the pipeline wrote that day.
    later = as_of + timedelta(days=35)
    score_day(later)
    monitor_day(later)
    day = pd.read_parquet(settings().monitoring_dir / f"scoring_date={as_of}" / "part-0.parquet")
    realised_today = day[day["metric"].eq("roc_auc") & day["status"].ne("pending")]
    assert set(realised_today["model_name"]) == {"purchase_propensity", "churn_risk"}
    assert set(realised_today["scored_by"]) == {"daily"}
    assert day["metric"].eq("score_psi").sum() == 2  # the day's own drift rows stay
    files = sorted(settings().monitoring_dir.glob("scoring_date=*/part-0.parquet"))
    rows = pd.concat([pd.read_parquet(p).assign(scoring_date=p.parent.name[13:]) for p in files])
    # The marts build with their contracts and tests, and hold what the files hold.
    build_segments(as_of)
    assert query(shop.warehouse, "select count(*) from model_monitoring") == [(len(rows),)]
    reasons = query(
        shop.warehouse, "select count(distinct user_id) from user_score_reasons where as_of_date = ?", [as_of]
    )
    assert reasons[0][0] > 1000


def test_an_alert_on_a_champion_retrains_on_the_next_run_and_says_why(scored):
    from ml.config import settings
    from ml.monitoring.monitor import SCHEMA, partition, retrain_reason
    from ml.pipeline import train_if_due
    from ml.registry.aliases import champion_version

    shop, as_of = scored
    assert retrain_reason(as_of) is None
    next_run = as_of + timedelta(days=30)  # a run after the alert, with labels enough to train on
    version = champion_version("churn_risk")
    alert = {
        "model_name": "churn_risk", "model_version": version, "metric": "roc_auc", "feature": None, "value": 0.61,
        "reference_value": 0.80, "warn_threshold": 0.775, "alert_threshold": 0.75, "status": "alert",
        "n_users": 900, "scored_by": "daily", "monitored_on": next_run - timedelta(days=1),
    }  # fmt: skip
    target = partition(date(2026, 3, 1))
    target.parent.mkdir(parents=True, exist_ok=True)
    # An alert on a version that is no longer champion, or raised by the same day's run, does not count.
    pd.DataFrame([{**alert, "model_version": "999"}])[SCHEMA.names].to_parquet(target)
    assert retrain_reason(next_run) is None
    pd.DataFrame([{**alert, "monitored_on": next_run}])[SCHEMA.names].to_parquet(target)
    assert retrain_reason(next_run) is None
    pd.DataFrame([alert])[SCHEMA.names].to_parquet(target)
    reason = retrain_reason(next_run)
    assert reason and f"churn_risk v{version} roc_auc 0.610 past 0.750 on 2026-03-01" in reason
    # Not a training day otherwise (no pin, champions in place): the alert alone trains, and says so.
    result = train_if_due(next_run)
    assert result is not None and result["trained_because"].startswith("monitoring alert: churn_risk")
    audit = pd.concat(pd.read_parquet(p) for p in (settings().audit_dir / "model_promotions").glob("*.parquet"))
    newest = audit.sort_values("changed_at").groupby("model_name").tail(1)
    assert newest["reason"].str.contains("trained: monitoring alert").all()


def flagged(shop_root, monkeypatch) -> pd.DataFrame:
    """The newest day's scores monitored; the rows that alert."""
    from ml.monitoring.monitor import monitor_day
    from ml.propensity.score import score_day
    from ml.registry.tracking import configure_mlflow
    from tests.conftest import point_env_at

    point_env_at(monkeypatch, shop_root)
    configure_mlflow()
    as_of = date.fromisoformat(score_day()["as_of_date"])
    monitor_day(as_of)
    rows = pd.concat(pd.read_parquet(p) for p in (shop_root / "data" / "monitoring").glob("*/part-0.parquet"))
    return rows[rows["status"] == "alert"]


def test_an_injected_shift_is_flagged(shifted_shop, monkeypatch):
    """The checks that stay quiet before the shift (test_the_monitor_writes_...) alert 40 days into it."""
    alerts = flagged(shifted_shop.root, monkeypatch)
    assert alerts["metric"].isin(SHIFT_CHECKS).any(), alerts
