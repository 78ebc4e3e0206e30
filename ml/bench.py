"""`make bench`: time each pipeline step on the default shop (20k users, 180 days) in data/bench/.

Prints one JSON line per step with wall seconds and the process's peak memory so far, then the model
quality against the simulator's truth. Figures depend on the machine; nothing here asserts a speed.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from ml.config import PROJECT_ROOT


@contextmanager
def step(name: str, results: list):
    started = time.perf_counter()
    yield
    results.append(
        {
            "step": name,
            "seconds": round(time.perf_counter() - started, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "peak_children_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
        }
    )
    print(json.dumps(results[-1]), flush=True)


def main() -> None:
    root = Path(os.environ.get("SHOP_BENCH_DIR", PROJECT_ROOT / "data" / "bench"))
    shutil.rmtree(root, ignore_errors=True)
    os.environ["SHOP_DATA_DIR"] = str(root)
    os.environ["SHOP_MLFLOW_DIR"] = str(root / "mlflow")
    users = int(os.environ.get("SHOP_BENCH_USERS", "20000"))

    from ml.backtest import backtest
    from ml.evaluate import evaluate_against_truth
    from ml.history import build_history
    from ml.pipeline import as_of_for
    from ml.score import score_day
    from ml.simulate import ShopSpec, simulate
    from ml.train import train_all

    results: list[dict] = []
    with step(f"simulate {users} users x 180 days", results):
        stats = simulate(ShopSpec(users=users))
    with step("land 180 days + dbt build of 153 as-of dates", results):
        build_history(keep_last=0)
    with step("train 2 tasks x 2 flavours, log, register, gate", results):
        trained = train_all()
    with step("score one day with both champions", results):
        scored = score_day(as_of_for(ShopSpec().end))
    with step("backtest: 2 flavours + 3 baselines on the newest matured date", results):
        backtested = backtest()
    print(json.dumps({"simulator": stats}))
    print(json.dumps({"users_scored": scored["users_scored"], "trained": trained}))
    for line in backtested:
        print(json.dumps({"backtest": line}))
    for line in evaluate_against_truth():
        print(json.dumps({"against_truth": line}))
    total = sum(r["seconds"] for r in results)
    print(f"total {total:.0f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
