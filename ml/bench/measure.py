"""Measuring a step: wall seconds and the peak memory of the process tree, and each Airflow task's seconds."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from ml.config import settings


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


def run_day_in_airflow(day, results: list, root: Path) -> None:
    """`airflow dags test shop_daily` for `day`: every task as the scheduler runs them, training pinned off."""
    from ml.day_pins import pin
    from ml.pipeline import as_of_for

    pin(as_of_for(day), training={"trained": False})  # the figure is a day without training
    log = root / f"airflow-dags-test-{day}.log"
    airflow = Path(sys.executable).parent / "airflow"
    with step("day_airflow", results, f"{day}: airflow dags test shop_daily (log: {log.name})"):
        with log.open("w") as out:
            done = subprocess.run(
                [str(airflow), "dags", "test", "shop_daily", "-c", json.dumps({"run_date": str(day)})],
                env={**os.environ, "SHOP_TASK_RETRIES": "0"},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
    if done.returncode != 0:
        raise SystemExit(f"the DAG run for {day} failed; log: {log}")
    results[-1]["task_seconds"] = task_seconds(log.read_text())
    results[-1]["dbt_tasks"] = settings().dbt_tasks  # one Airflow task per dbt model, or per group


_TASK_START = re.compile(r"^(\S+Z) .*\[DAG TEST\] running task <TaskInstance: \S+?\.(\S+) ")


_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\S+Z) ")


def task_seconds(log: str) -> dict[str, float]:
    """Seconds from each task's start to the next one's (the last: to the log's last line), from a dags-test log.

    Where an Airflow day's time goes beyond the work itself: Airflow's start before the first task, a dbt
    invocation per model task, imports in a task's first use of a library.
    """
    starts, last = [], None
    for line in log.splitlines():
        if match := _TASK_START.match(line):
            starts.append((datetime.fromisoformat(match[1].replace("Z", "+00:00")), match[2]))
        if match := _TIMESTAMP.match(line):
            last = datetime.fromisoformat(match[1].replace("Z", "+00:00"))
    ends = [start for start, _ in starts[1:]] + [last]
    return {task: round((end - start).total_seconds(), 2) for (start, task), end in zip(starts, ends, strict=True)}
