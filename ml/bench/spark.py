"""`make bench-spark`: a day's run on Spark local mode with 1 and with 2 cores, against DuckDB, on one shop.

`SHOP_BENCH_SPARK_USERS` x `SHOP_BENCH_SPARK_DAYS` (default 200k x 110) is simulated in data/bench-spark/.
Its history is built on DuckDB and on Spark (2 cores) from the same landed files, keeping the last day. That day runs on
DuckDB (landing and training included: the champions are trained there), then again, every step after the
landing, as the rerun of the same day (pinned models, no training) on DuckDB, on Spark with 2 cores and on
Spark with 1 core, each in a process of its own (a Spark session keeps its cores). Each step's seconds and
peak memory are printed as JSON lines and written, with the partitions the day's run reads (from Spark's
plan) and the storage each engine holds, to data/bench-spark/results.json. Nothing here asserts a speed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

from ml.bench.measure import step
from ml.config import PROJECT_ROOT, settings

ROOT = PROJECT_ROOT / "data" / "bench-spark"


def folder_bytes(path: Path) -> int:
    """The bytes of a file, or of every file under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def rerun_day(engine: str, cores: str) -> list[dict]:
    """The last day again after its landing (this process: one engine, one core count); each step's figures."""
    from ml.pipeline import run_day

    os.environ["SHOP_ENGINE"] = engine
    os.environ["SHOP_SPARK_CORES"] = cores
    landed = json.loads((ROOT / "landed.json").read_text())
    results: list[dict] = []
    label = "duckdb" if engine == "duckdb" else f"spark_{cores}_cores"
    run_day(
        date.fromisoformat(landed["business_date"]),
        skip={"land_day"},
        landed=landed,
        timed=lambda name: step(f"{label}_{name}", results),
    )
    return results


def partitions_read(landed: dict) -> dict:
    """The landing partitions a day's run reads, from Spark's plan of the window its models read."""
    from ml.warehouse.spark_session import spark_session

    landing = settings().landing_dir / "events"
    window = spark_session().sql(
        f"select * from parquet.`{landing}` where event_date >= date '{landed['reprocess_from']}'"
    )
    plan = window._jdf.queryExecution().executedPlan().toString()
    files = window.selectExpr("input_file_name() as file").distinct().collect()
    return {
        "landing_partitions": len([p for p in landing.iterdir() if p.name.startswith("event_date=")]),
        "landing_partitions_read": len({Path(row.file).parent.name for row in files}),
        "partition_filter_in_plan": "PartitionFilters: [isnotnull(event_date" in plan,
    }


def main() -> None:
    from ml.pipeline import run_day
    from ml.sim.run import simulate
    from ml.sim.shop import ShopSpec
    from ml.warehouse.builds import build_feature_history
    from ml.warehouse.history import WARM_UP_DAYS, build_history, history_batch_days, landed_days

    users = int(os.environ.get("SHOP_BENCH_SPARK_USERS", "200000"))
    days = int(os.environ.get("SHOP_BENCH_SPARK_DAYS", "110"))
    shutil.rmtree(ROOT, ignore_errors=True)
    os.environ |= {"SHOP_DATA_DIR": str(ROOT / "data"), "SHOP_MLFLOW_DIR": str(ROOT / "mlflow")}
    os.environ.setdefault("SHOP_MODEL_FLAVOURS", "xgboost,logistic")
    results: list[dict] = []
    with step("simulate", results, f"{users} users x {days} days"):
        simulate(ShopSpec(seed=7, users=users, days=days, start=date(2026, 1, 1)))
    with step("duckdb_history", results):
        last = build_history(keep_last=1)[0]
    landed_all = landed_days()
    os.environ |= {"SHOP_ENGINE": "spark", "SHOP_SPARK_CORES": "2"}
    with step("spark_2_cores_history", results):
        start = landed_all[0] + timedelta(days=WARM_UP_DAYS)
        build_feature_history(landed_all[0], landed_all[-1], start, history_batch_days())
    os.environ["SHOP_ENGINE"] = "duckdb"
    landed = run_day(last, timed=lambda name: step(f"duckdb_first_run_{name}", results))["land_day"]
    (ROOT / "landed.json").write_text(json.dumps(landed, default=str))
    for engine, cores in (("duckdb", "2"), ("spark", "2"), ("spark", "1")):
        ran = subprocess.run(
            [sys.executable, "-m", "ml.bench.spark", "rerun", engine, cores],
            capture_output=True,
            text=True,
            env=os.environ,
        )
        if ran.returncode:
            raise SystemExit(f"the {engine} rerun failed:\n{ran.stderr[-4000:]}")
        results += json.loads(ran.stdout.strip().splitlines()[-1])
    os.environ["SHOP_ENGINE"] = "spark"
    summary = {
        "users": users,
        "days": days,
        "history_batch_days": history_batch_days(),
        **partitions_read(landed),
        "spark_tables_bytes": folder_bytes(settings().spark_dir / "warehouse"),
        "duckdb_warehouse_bytes": folder_bytes(ROOT / "data" / "warehouse.duckdb"),
        "landing_bytes": folder_bytes(ROOT / "data" / "landing"),
        "steps": results,
    }
    (ROOT / "results.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "steps"}), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["rerun"]:
        print(json.dumps(rerun_day(sys.argv[2], sys.argv[3])))
    else:
        main()
