"""A day's cost against the history's length, and the hand-written reference query for the last day's features."""

from __future__ import annotations

import shutil
from pathlib import Path

from ml.bench.measure import step
from ml.config import settings
from ml.storage import EVENT_TYPES

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
      and event_type in ({event_types})
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
    event_types = ", ".join(f"'{kind}'" for kind in EVENT_TYPES)
    sql = REFERENCE_FEATURES.format(
        as_of=as_of, landing=settings().landing_dir, windows=windows, event_types=event_types
    )
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
    from ml.warehouse.read import connect_read_only

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
    from ml.warehouse.history import build_history

    cfg = settings()
    shutil.rmtree(cfg.landing_dir, ignore_errors=True)
    for path in (cfg.warehouse_path, cfg.warehouse_path.with_name(cfg.warehouse_path.name + ".wal")):
        path.unlink(missing_ok=True)
    build_history(keep_last=keep_last)
