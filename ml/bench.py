"""`make bench`: time each pipeline step on a simulated shop in data/bench/ (default 20k users x 180 days).

`SHOP_BENCH_USERS` and `SHOP_BENCH_DAYS` pick the shop. Prints one JSON line per step: wall seconds, the
peak memory of the whole process tree during the step (this process and dbt, sampled) and of dbt alone;
writes them to data/bench/results.json with the shop's size and the warehouse's, then the model quality
against the simulator's truth. Figures depend on the machine; nothing here asserts a speed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from ml.config import PROJECT_ROOT


class PeakMemory:
    """Sample the RSS of this process and of its children (dbt) until stopped; keep the peaks."""

    def __init__(self, every: float = 0.2):
        import psutil

        self.me = psutil.Process()
        self.every = every
        self.peak_total = self.peak_children = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            children = 0
            for child in self.me.children(recursive=True):
                try:
                    children += child.memory_info().rss
                except psutil.Error:  # ended between listing and reading
                    pass
            self.peak_children = max(self.peak_children, children)
            self.peak_total = max(self.peak_total, self.me.memory_info().rss + children)
            self._stop.wait(self.every)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def step(name: str, results: list, detail: str = ""):
    started = time.perf_counter()
    with PeakMemory() as memory:
        yield
    results.append(
        {
            "step": name,
            "seconds": round(time.perf_counter() - started, 1),
            "peak_rss_mb": round(memory.peak_total / 2**20),
            "peak_dbt_rss_mb": round(memory.peak_children / 2**20),
            **({"detail": detail} if detail else {}),
        }
    )
    print(json.dumps(results[-1]), flush=True)


def main() -> None:
    root = Path(os.environ.get("SHOP_BENCH_DIR", PROJECT_ROOT / "data" / "bench"))
    shutil.rmtree(root, ignore_errors=True)
    os.environ["SHOP_DATA_DIR"] = str(root)
    os.environ["SHOP_MLFLOW_DIR"] = str(root / "mlflow")
    users = int(os.environ.get("SHOP_BENCH_USERS", "20000"))
    days = int(os.environ.get("SHOP_BENCH_DAYS", "180"))

    from ml.backtest import backtest
    from ml.config import settings
    from ml.evaluate import evaluate_against_truth
    from ml.history import build_history
    from ml.pipeline import as_of_for, land, train_uplift_if_possible
    from ml.score import score_day
    from ml.simulate import ShopSpec, simulate
    from ml.train import train_all
    from ml.warehouse import build_features, build_targeting, check_data, publish_snapshot

    spec = ShopSpec(users=users, days=days)
    last_day, as_of = spec.end, as_of_for(spec.end)
    results: list[dict] = []
    with step("simulate", results, f"{users} users x {days} days"):
        stats = simulate(spec)
    with step("history", results, f"land and build every day but the last ({settings().history_batch_days} per batch)"):
        build_history(keep_last=1)
    with step("train", results, "2 tasks x 2 flavours and the coupon effect model: log, register, gate"):
        trained = train_all()
        train_uplift_if_possible(as_of)
    # The last day as the DAG runs it, step by step, without Airflow's own overhead.
    with step("day_last", results, f"{last_day}: land, features, checks, score, targeting, publish"):
        with step("land_day_last", results):
            land(last_day)
        with step("dbt_features_day_last", results, f"user_features and its inputs for as-of {as_of}"):
            build_features(as_of, as_of)
            check_data("features", as_of)
        with step("score", results, "every known user, both champions"):
            scored = score_day(as_of)
        with step("targeting_day_last", results, "segments, send list, targeting marts, checks"):
            build_targeting(as_of)
            check_data("targeting", as_of)
        with step("publish", results, "the analyst snapshot"):
            publish_snapshot()
    with step("backtest", results, "2 flavours + 3 baselines on the newest matured date"):
        backtested = backtest()

    import duckdb

    cfg = settings()
    events = duckdb.sql(f"select count(*) from read_parquet('{cfg.landing_dir}/events/*/*.parquet')").fetchall()[0][0]
    warehouse_mb = round(cfg.warehouse_path.stat().st_size / 2**20, 1)
    summary = {"users": users, "days": days, "events": events, "warehouse_mb": warehouse_mb}
    (root / "results.json").write_text(json.dumps({**summary, "steps": results}, indent=2))
    print(json.dumps(summary))
    print(json.dumps({"simulator": stats}))
    print(json.dumps({"users_scored": scored["users_scored"], "trained": trained}))
    for line in backtested:
        print(json.dumps({"backtest": line}))
    for line in evaluate_against_truth():
        print(json.dumps({"against_truth": line}))
    print(f"results: {root / 'results.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
