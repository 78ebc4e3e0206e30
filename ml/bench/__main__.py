"""`make bench`: time each pipeline step on a simulated shop in data/bench/ (default 20k users x 180 days).

`SHOP_BENCH_USERS` and `SHOP_BENCH_DAYS` pick the shop. Prints one JSON line per step: wall seconds, the
peak memory of the whole process tree during the step (this process and dbt, sampled) and of dbt alone;
writes them to data/bench/results.json with the shop's size and the warehouse's, a plot of a day's cost
against the history's length (day_cost.png), then the model quality against the simulator's truth.
Figures depend on the machine; nothing here asserts a speed.

Day cost against history length: the history up to day 59 (and 179 on a longer shop) is built and day 60
(180) runs its landing and feature build with its tests, as the DAG does. Each history step starts from an
empty landing folder and warehouse: it is what `ml history` costs a shop of that length. The full history
leaves the last two days: the day before the last runs as `airflow dags test shop_daily` (every task, with
Airflow's own overhead; training pinned off, so it is a day without training), the last one step by step
without Airflow. `reference_features_day_last` is a hand-written single DuckDB query over the landed files
that computes the event features of the last day's as-of date from scratch.

`SHOP_BENCH_SKIP` (comma-separated) leaves out the steps a very large shop cannot afford on a small machine:
`day_60` and `day_180` (each a history build of its own), `day_airflow`, `reference_features_day_last` (the
reference is one query with no batching: at 200k users it already holds 20 GB) and `backtest`.
`SHOP_BENCH_REUSE=1` times only the last day again on the shop a run left there (see reuse_built_shop).
The Airflow day's entry lists each task's seconds (`task_seconds`): where Airflow's overhead goes.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from datetime import timedelta
from pathlib import Path

from ml.bench.day_cost import (
    day_cost_growth,
    fresh_history,
    plot_day_cost,
    reference_features,
    run_day_features,
    users_known,
)
from ml.bench.measure import run_day_in_airflow, step
from ml.config import PROJECT_ROOT, settings

SKIPPABLE = ("day_60", "day_180", "day_airflow", "reference_features_day_last", "backtest")


def steps_to_skip() -> set[str]:
    """The steps named in SHOP_BENCH_SKIP; an unknown name stops the bench before it deletes anything."""
    skip = {name.strip() for name in os.environ.get("SHOP_BENCH_SKIP", "").split(",") if name.strip()}
    if unknown := skip - set(SKIPPABLE):
        known = ", ".join(SKIPPABLE)
        raise SystemExit(f"SHOP_BENCH_SKIP: unknown step(s) {', '.join(sorted(unknown))}; known: {known}")
    return skip


def reuse_built_shop(root: Path, users: int, days: int) -> bool:
    """SHOP_BENCH_REUSE=1: time only the last day's steps again, on the shop a run left in `root`.

    For a shop whose whole bench outlasts a session (1M users: about 3 hours): after a run that got past
    training, the last day is landed, built, scored, targeted and published again (a rerun of that day,
    which replaces its partitions). Without a trained shop of `users` x `days` there, it stops before
    touching anything.
    """
    from ml.sim.shop import ShopSpec

    if os.environ.get("SHOP_BENCH_REUSE", "") not in ("1", "true"):
        return False
    needed = [root / "warehouse.duckdb", root / "mlflow", root / "inbox" / "shop_spec.json"]
    if not all(path.exists() for path in needed):
        raise SystemExit(
            f"SHOP_BENCH_REUSE: no built and trained shop in {root} (needs warehouse.duckdb, mlflow/, inbox/); "
            "run `make bench` with the same SHOP_BENCH_USERS and SHOP_BENCH_DAYS first"
        )
    built = ShopSpec.from_json((root / "inbox" / "shop_spec.json").read_text())
    if built != ShopSpec(users=users, days=days):
        raise SystemExit(
            f"SHOP_BENCH_REUSE: the shop in {root} has {built.users} users x {built.days} days, not "
            f"{users} x {days}; set SHOP_BENCH_USERS and SHOP_BENCH_DAYS to match it"
        )
    return True


# Paths a deployment may set (.env.example): under the bench they would point its deletes (the landing
# folder, the warehouse) and its promotions (the MLflow registry) at that deployment's own files.
DEPLOYMENT_PATHS = (
    "SHOP_INBOX_DIR",
    "SHOP_LANDING_DIR",
    "SHOP_WAREHOUSE_PATH",
    "SHOP_SNAPSHOT_PATH",
    "SHOP_SNAPSHOT_READ_DIR",
    "SHOP_SCORES_DIR",
    "SHOP_TARGETS_DIR",
    "SHOP_REASONS_DIR",
    "SHOP_MONITORING_DIR",
    "SHOP_CLUSTERS_DIR",
    "SHOP_CLUSTER_PROFILES_DIR",
    "SHOP_FORECASTS_DIR",
    "SHOP_EVALUATIONS_DIR",
    "SHOP_AUDIT_DIR",
    "SHOP_TRUTH_DIR",
    "SHOP_MLFLOW_ARTIFACT_ROOT",
    "MLFLOW_TRACKING_URI",
)


def own_paths(root: Path) -> list[str]:
    """Point every path the pipeline writes at the bench's `root` (its own MLflow store included); return the
    deployment settings this set aside, so the bench never deletes or promotes anything outside it."""
    set_aside = [name for name in DEPLOYMENT_PATHS if os.environ.pop(name, None) is not None]
    os.environ["SHOP_DATA_DIR"] = str(root)
    os.environ["SHOP_MLFLOW_DIR"] = str(root / "mlflow")
    return set_aside


def main() -> None:
    skip = steps_to_skip()
    root = Path(os.environ.get("SHOP_BENCH_DIR", PROJECT_ROOT / "data" / "bench"))
    users = int(os.environ.get("SHOP_BENCH_USERS", "20000"))
    days = int(os.environ.get("SHOP_BENCH_DAYS", "180"))
    set_aside = own_paths(root)
    if set_aside:
        print(f"bench: every path under {root}; set aside for this run: {', '.join(set_aside)}", flush=True)
    reuse = reuse_built_shop(root, users, days)
    if not reuse:
        shutil.rmtree(root, ignore_errors=True)

    from ml.pipeline import as_of_for, run_day, train_uplift_if_possible
    from ml.propensity.backtest import backtest
    from ml.propensity.train import train_all
    from ml.sim.run import simulate
    from ml.sim.shop import ShopSpec
    from ml.sim.truth_check import evaluate_against_truth
    from ml.warehouse.history import history_batch_days
    from ml.warehouse.publish import publish_snapshot

    spec = ShopSpec(users=users, days=days)
    last_day, as_of = spec.end, as_of_for(spec.end)
    results: list[dict] = []
    stats, trained = None, None
    if not reuse:
        with step("simulate", results, f"{users} users x {days} days"):
            stats = simulate(spec)
        for day_number in (60, 180):
            if day_number >= days - 1 or f"day_{day_number}" in skip:
                continue
            with step(f"history_{day_number - 1}", results, f"land and build the first {day_number - 1} days"):
                fresh_history(keep_last=days - day_number + 1)
            day = spec.start + timedelta(days=day_number - 1)
            run_day_features(day, results, f"day_{day_number}", day_number - 1)
        with step("history", results, "land and build every day but the last 2"):
            fresh_history(keep_last=2)
        results[-1]["batch_days"] = history_batch_days()
        with step("publish_history", results, "the first publish: every day of every published table to Parquet"):
            publish_snapshot()
        with step("train", results, "2 tasks x the model families and the coupon effect model: log, register, gate"):
            trained = train_all()
            train_uplift_if_possible(as_of)
    if "day_airflow" not in skip and not reuse:
        run_day_in_airflow(last_day - timedelta(days=1), results, root)
    # The last day in the DAG's order (ml.pipeline.DAILY_STEPS), step by step, without Airflow's own overhead;
    # training was timed above, and the features' `dbt build` runs the tests check_features would run again.
    names = {"land_day": "land_day_last", "features": "dbt_features_day_last"}  # the other steps keep their name
    with step("day_last", results, f"{last_day}: land, features, score, targeting, checks, publish"):
        ran = run_day(
            last_day, skip=("check_features", "train"), timed=lambda name: step(names.get(name, name), results)
        )
    targeting = [r for r in results if r["step"] in ("segments", "target", "targeting", "check_targeting")]
    results.append(
        {
            "step": "targeting_day_last",
            "seconds": round(sum(r["seconds"] for r in targeting), 1),
            "detail": "segments, send list, targeting marts, checks",
        }
    )
    scored = ran["score"]
    day_last_features = sum(r["seconds"] for r in results if r["step"] in ("land_day_last", "dbt_features_day_last"))
    results.append(
        {
            "step": "features_day_last",
            "seconds": round(day_last_features, 1),
            "history_days": days - 1,
            "users_known": users_known(as_of),
        }
    )
    if "reference_features_day_last" not in skip:
        with step("reference_features_day_last", results, f"one hand-written DuckDB query for as-of {as_of}"):
            reference_features(as_of)
    backtested = []
    if "backtest" not in skip:
        with step("backtest", results, "every model family and 3 baselines on the newest matured date"):
            backtested = backtest()

    import duckdb

    cfg = settings()
    events = duckdb.sql(f"select count(*) from read_parquet('{cfg.landing_dir}/events/*/*.parquet')").fetchall()[0][0]
    warehouse_mb = round(cfg.warehouse_path.stat().st_size / 2**20, 1)
    published = cfg.snapshot_path.parent / "published"
    published_mb = round(sum(p.stat().st_size for p in published.rglob("*.parquet")) / 2**20, 1)
    summary = {
        "users": users,
        "days": days,
        "events": events,
        "warehouse_mb": warehouse_mb,
        "warehouse_bytes_per_user_day": round(warehouse_mb * 2**20 / (users * days), 1),
        "published_mb": published_mb,
        "snapshot_kb": round(cfg.snapshot_path.stat().st_size / 2**10, 1),
        "feature_retention_days": cfg.feature_retention_days,
        "skipped": sorted(skip),
        "reused_shop": reuse,
        "day_last_vs_day_60": day_cost_growth(results),
    }
    (root / "results.json").write_text(json.dumps({**summary, "steps": results}, indent=2))
    plot_day_cost(results, root / "day_cost.png")
    print(json.dumps(summary))
    if stats is not None:
        print(json.dumps({"simulator": stats}))
    print(json.dumps({"users_scored": scored["users_scored"], "trained": trained}))
    for line in backtested:
        print(json.dumps({"backtest": line}))
    for line in evaluate_against_truth():
        print(json.dumps({"against_truth": line}))
    print(f"results: {root / 'results.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
