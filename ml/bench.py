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
import re
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from ml.config import PROJECT_ROOT, settings


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


REFERENCE_FEATURES = """
-- One query, no intermediate tables: the event features of every known user as of {as_of}.
with
events as (
    select
        user_id, event_type, cast(event_at as date) as day,
        coalesce(session_id, 'order:' || order_id, 'event:' || event_id) as session_key,
        coalesce(order_id, event_id) as order_key,
        cast(price * quantity as decimal(18, 2)) as order_value, coupon_code, category
    from read_parquet('{landing}/events/*/*.parquet', hive_partitioning = true, union_by_name = true)
    where event_date < date '{as_of}' and event_at < date '{as_of}' and user_id is not null
      and event_type in ('view', 'cart', 'remove_from_cart', 'purchase')
),
per_user as (
    select
        user_id,
        {windows}
        count(distinct session_key) as count_sessions_lifetime,
        count(*) filter (where event_type = 'view') as count_views_lifetime,
        count(*) filter (where event_type = 'cart') as count_carts_lifetime,
        count(distinct order_key) filter (where event_type = 'purchase') as count_purchases_lifetime,
        coalesce(sum(order_value) filter (where event_type = 'purchase'), 0) as sum_revenue_lifetime,
        count(distinct order_key) filter (where event_type = 'purchase' and coupon_code is not null)
            as count_coupon_redemptions_lifetime,
        count(distinct day) filter (where event_type = 'purchase') as count_purchase_days_lifetime,
        count(distinct day) filter (where day >= date '{as_of}' - 30) as count_active_days_30d,
        count(distinct category) filter (where day >= date '{as_of}' - 90) as count_distinct_categories_90d,
        date '{as_of}' - max(day) as days_since_last_activity,
        date '{as_of}' - max(day) filter (where event_type = 'view') as days_since_last_view,
        date '{as_of}' - max(day) filter (where event_type = 'cart') as days_since_last_cart,
        date '{as_of}' - max(day) filter (where event_type = 'purchase') as days_since_last_purchase,
        date '{as_of}' - min(day) filter (where event_type = 'purchase') as days_since_first_purchase,
    from events
    group by 1
),
users as (
    select user_id, cast(signup_at as date) as signup_date, country, device
    from read_parquet('{landing}/users/users.parquet')
    where signup_at < date '{as_of}'
)
select users.*, date '{as_of}' - users.signup_date as tenure_days, per_user.* exclude (user_id)
from users
left join per_user using (user_id)
"""


def reference_features(as_of) -> int:
    """Run the hand-written single-query feature build for `as_of`; return its row count."""
    import duckdb

    windows = "".join(
        f"count(distinct session_key) filter (where day >= date '{as_of}' - {n}) as count_sessions_{n}d, "
        f"count(*) filter (where event_type = 'view' and day >= date '{as_of}' - {n}) as count_views_{n}d, "
        f"count(*) filter (where event_type = 'cart' and day >= date '{as_of}' - {n}) as count_carts_{n}d, "
        f"count(distinct order_key) filter (where event_type = 'purchase' and day >= date '{as_of}' - {n}) "
        f"as count_purchases_{n}d, "
        f"coalesce(sum(order_value) filter (where event_type = 'purchase' and day >= date '{as_of}' - {n}), 0) "
        f"as sum_revenue_{n}d,\n"
        for n in (7, 30, 90)
    )
    sql = REFERENCE_FEATURES.format(as_of=as_of, landing=settings().landing_dir, windows=windows)
    with duckdb.connect() as con:
        con.execute(f"create table reference as {sql}")
        return con.execute("select count(*) from reference").fetchall()[0][0]


def plot_day_cost(results: list[dict], path: Path) -> None:
    """Seconds of one day's landing, feature build and checks against the days of history before it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = sorted((r["history_days"], r["seconds"]) for r in results if "history_days" in r)
    reference = [r["seconds"] for r in results if r["step"] == "reference_features_day_last"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label="land + dbt features + checks")
    for days, seconds in points:
        ax.annotate(f"{seconds:.0f} s", (days, seconds), textcoords="offset points", xytext=(0, 6), ha="center")
    if reference and points:
        ax.scatter([points[-1][0]], reference, marker="x", color="black", label="one hand-written query")
    ax.set_xlabel("days of history before the day")
    ax.set_ylabel("seconds")
    ax.set_ylim(0, 1.2 * max([p[1] for p in points] + reference, default=1))  # room for the labels
    ax.set_title("One day's feature build against history length")
    # The customer base grows over the year: the same cost per known user is a flat line here.
    per_user = sorted(
        (r["history_days"], r["seconds"] * 1e5 / r["users_known"]) for r in results if r.get("users_known")
    )
    lines, labels = ax.get_legend_handles_labels()
    if per_user:
        twin = ax.twinx()
        (line,) = twin.plot([p[0] for p in per_user], [p[1] for p in per_user], color="grey", linestyle="--")
        twin.set_ylabel("seconds per 100k known users")
        twin.set_ylim(bottom=0)
        lines, labels = lines + [line], labels + ["per 100k known users"]
    ax.legend(lines, labels, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_day_features(day, results: list, name: str, history_days: int) -> None:
    """One day as the DAG's first tasks run it: land, the incremental feature build with its tests.

    One `dbt build` runs every model's tests and the tests joining them (the DAG's model tasks and its
    check_features task run the same, split by model).
    """
    from ml.pipeline import as_of_for, run_day

    with step(name, results, f"{day}: land, dbt features and tests after {history_days} days of history"):
        run_day(day, until="features")
    results[-1].update(history_days=history_days, users_known=users_known(as_of_for(day)))


def users_known(as_of) -> int:
    """Users signed up before `as_of`: the rows a day's feature build writes (the shop's customer base grows)."""
    from ml.data import connect_read_only

    with connect_read_only() as con:
        return con.execute("select count(*) from user_features where as_of_date = ?", [as_of]).fetchone()[0]


def day_cost_growth(results: list[dict]) -> dict | None:
    """The last day's landing and feature build against day 60's: in seconds, and per user it writes features for.

    The simulated shop keeps signing up customers (about 60% of the year's users are known by day 60), so the
    raw ratio mixes a growing customer base with a growing history; the per-user ratio is the history's part.
    """
    days = {r["step"]: r for r in results if "users_known" in r}
    first, last = days.get("day_60"), days.get("features_day_last")
    if not first or not last:
        return None
    ratio = last["seconds"] / first["seconds"]
    return {
        "seconds": round(ratio, 2),
        "per_known_user": round(ratio * first["users_known"] / last["users_known"], 2),
        "users_known": [first["users_known"], last["users_known"]],
    }


def fresh_history(keep_last: int) -> None:
    """`ml history` on an empty landing folder and warehouse (the inbox stays): a shop's first build."""
    from ml.history import build_history

    cfg = settings()
    shutil.rmtree(cfg.landing_dir, ignore_errors=True)
    for path in (cfg.warehouse_path, cfg.warehouse_path.with_name(cfg.warehouse_path.name + ".wal")):
        path.unlink(missing_ok=True)
    build_history(keep_last=keep_last)


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
    from ml.simulate import ShopSpec

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

    from ml.backtest import backtest
    from ml.evaluate import evaluate_against_truth
    from ml.history import history_batch_days
    from ml.pipeline import as_of_for, run_day, train_uplift_if_possible
    from ml.publish import publish_snapshot
    from ml.simulate import ShopSpec, simulate
    from ml.train import train_all

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
        with step("train", results, "2 tasks x 2 flavours and the coupon effect model: log, register, gate"):
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
        with step("backtest", results, "2 flavours + 3 baselines on the newest matured date"):
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
