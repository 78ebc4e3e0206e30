"""The warehouse builds: features for a day or a whole history from the oldest changed day, and the checks."""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta

from ml.config import COUPON_WINDOW_DAYS, LABEL_HORIZON_DAYS, Settings, settings
from ml.warehouse.dbt_runner import run_dbt, run_dbt_in_process
from ml.writer_lock import locked


def as_of_vars(as_of_start: date | None, as_of_end: date | None = None, cfg: Settings | None = None) -> dict:
    cfg = cfg or settings()
    dbt_vars: dict[str, object] = {
        "max_quarantine_share": cfg.max_quarantine_share,
        "daily_coupon_budget": cfg.daily_coupon_budget,
        "contact_cap_days": cfg.contact_cap_days,
        "holdout_share": cfg.holdout_share,
        "holdout_days": cfg.holdout_days,
        "gross_margin_rate": cfg.gross_margin_rate,
        # dbt's own window when no reprocess_from is passed (dbt by hand): the same setting as Python's.
        "late_event_days": cfg.late_event_days,
        "feature_retention_days": cfg.feature_retention_days,
        "label_horizon_days": LABEL_HORIZON_DAYS,
        "coupon_window_days": COUPON_WINDOW_DAYS,
    }
    if as_of_start:
        dbt_vars["as_of_start"] = str(as_of_start)
        dbt_vars["as_of_end"] = str(as_of_end or as_of_start)
    return dbt_vars


def newest_processed_day(cfg: Settings | None = None) -> date | None:
    """The newest event day the incremental models hold (None before the first build)."""
    from ml.warehouse.read import connect_read_only, table_names, warehouse_exists

    cfg = cfg or settings()
    if not warehouse_exists():
        return None
    with connect_read_only(None if cfg.engine == "spark" else cfg.warehouse_path) as con:
        if not {"landing_daily_summary", "int_user_days_aggregated"} <= set(table_names(con)):
            return None
        return con.execute(
            "select least((select max(event_date) from landing_daily_summary),"
            " (select max(activity_date) from int_user_days_aggregated))"
        ).fetchall()[0][0]


def reprocess_start(as_of_start: date, first_changed_day: date | None = None, cfg: Settings | None = None) -> date:
    """The first event day a run for `as_of_start` re-processes (dbt var `reprocess_from`).

    `SHOP_LATE_EVENT_DAYS` before the business day; earlier if the landing changed an older partition
    (`first_changed_day`, or the durable mark of any landing no build has re-processed: ml.ingest.reprocess_mark)
    or if landed days were never processed (a gap of failed or skipped runs).
    """
    from ml.ingest.reprocess_mark import marked_day

    cfg = cfg or settings()
    start = as_of_start - timedelta(days=1 + cfg.late_event_days)
    for changed in (first_changed_day, marked_day()):
        if changed is not None:
            start = min(start, changed)
    processed = newest_processed_day(cfg)
    if processed is not None:
        start = min(start, processed + timedelta(days=1))
    return start


@locked("dbt build (features)")
def build_features(
    as_of_start: date | None = None,
    as_of_end: date | None = None,
    full_refresh: bool = False,
    reprocess_from: date | None = None,
) -> str:
    """`dbt build` of staging, intermediate, quality and feature marts for the given as-of dates.

    The models over events re-process event days from `reprocess_from` (default: `reprocess_start`) and
    keep the rest. `full_refresh` rebuilds every table from the landed files: needed once after an upgrade
    that adds feature columns to a warehouse built before it (their contracts refuse a silent schema change).
    """
    from ml.ingest.reprocess_mark import clear_mark, read_mark

    args = ["build", "--select", "tag:features", *(["--full-refresh"] if full_refresh else [])]
    dbt_vars = as_of_vars(as_of_start, as_of_end)
    mark = read_mark()
    if as_of_start and not full_refresh:
        reprocess_from = reprocess_from or reprocess_start(as_of_start)
        dbt_vars["reprocess_from"] = str(reprocess_from)
    output = run_dbt(args, dbt_vars)
    # Without as-of dates dbt picks its own window (late_event_days): the mark waits for a run that covers it.
    if mark and (full_refresh or (as_of_start and reprocess_from <= mark["day"])):
        clear_mark(mark["id"])  # the build re-processed the marked days
    return output


def build_feature_history(first_day: date, last_day: date, as_of_start: date, batch_days: int) -> None:
    """Build every table over the landed event days [first_day, last_day] from scratch, a batch at a time.

    One query over the whole history holds every event, user-day and users x dates row at once (100k
    users x 180 days peaked at 8.8 GB in dbt). Here each batch of `batch_days` event days is a daily run
    with a wider window: it re-processes its event days (vars reprocess_from and reprocess_to), continuing
    the lifetime totals of the batch before; builds the features as of the days after them (from
    `as_of_start` on); and the labels and coupon outcomes whose windows end in them. Memory is bounded by
    one batch however long the history. The first batch is a full refresh and runs up to the first as-of
    date; the last is open-ended, so the rows equal a single build's (a test compares).
    """
    import duckdb

    from ml.progress import progress

    # The coupon outcomes (targeting, incremental by send date) read these tables: dropped here, the next
    # targeting build rebuilds them from every send rather than keeping rows computed from the old build.
    cfg = settings()
    if cfg.engine == "spark":
        run_dbt(["run-operation", "drop_table_if_exists", "--args", '{"name": "int_coupon_target_outcomes"}'])
    elif cfg.warehouse_path.exists():
        with duckdb.connect(str(cfg.warehouse_path)) as con:
            con.execute("drop table if exists main.int_coupon_target_outcomes")
    # Campaign evaluations were computed from the old build's campaigns and features: the gate recomputes them.
    shutil.rmtree(cfg.evaluations_dir / "campaigns", ignore_errors=True)
    first_batch_end = min(max(as_of_start - timedelta(days=1), first_day + timedelta(days=batch_days - 1)), last_day)
    batches = [(first_day, first_batch_end)]
    if first_batch_end < last_day:
        batches += _day_batches(first_batch_end + timedelta(days=1), last_day, batch_days)
    for first, last in progress(batches, f"history, {batch_days} event days per batch", every=0):
        # The as-of dates whose features see these days last: T sees the event days before T.
        dbt_vars = as_of_vars(max(as_of_start, first + timedelta(days=1)), last + timedelta(days=1))
        dbt_vars["reprocess_from"] = str(first)
        # With retention set, the dates it drops once the build ends are never built (int_as_of_dates).
        dbt_vars["history_as_of_end"] = str(last_day + timedelta(days=1))
        if last < last_day:
            dbt_vars["reprocess_to"] = str(last)
        run_dbt(["build", "--select", "tag:features", *(["--full-refresh"] if first == first_day else [])], dbt_vars)


def _day_batches(first: date, last: date, batch_days: int) -> list[tuple[date, date]]:
    """[first, last] cut into consecutive batches of `batch_days` days (the last one may be shorter)."""
    starts = [first + timedelta(days=offset) for offset in range(0, (last - first).days + 1, batch_days)]
    return [(start, min(start + timedelta(days=batch_days - 1), last)) for start in starts]


def day_vars(as_of: date, reprocess_from: date | None = None) -> dict:
    """The dbt vars of one day's run after its feature build: the as-of date and the event days it re-processed.

    The dates travel outside dbt's --vars (ml.warehouse.dbt_runner.DAY_VARS), so every day reuses one parse.
    Without `reprocess_from`, dbt re-processes `late_event_days` before the as-of date (macros/reprocess_window.sql).
    """
    dbt_vars = as_of_vars(as_of)
    if reprocess_from:
        dbt_vars["reprocess_from"] = str(reprocess_from)
    return dbt_vars


def check_data(tag: str, as_of: date, reprocess_from: date | None = None, in_process: bool = False) -> str:
    """Run the data tests that read a model tagged `tag` together with other models (quarantine share against
    the run's dates, a leak recount against the events, consent, contact cap, relationships).

    The DAG builds one model per task with its own tests, and dbt selects a test with two parents only when
    both are built in the same command: without this step such a test never runs there. The tests of one
    model ran with it and are not repeated. Fails (DbtError) on a finding. `in_process`: run dbt in this
    process (an Airflow task, which has dbt loaded) rather than as a subprocess.
    """
    tests = cross_model_tests(tag)
    if not tests:
        return ""
    run = run_dbt_in_process if in_process else run_dbt
    return run(["test", "--select", *tests], day_vars(as_of, reprocess_from))


_BUILT = ("model.", "seed.", "snapshot.", "source.")


def cross_model_tests(tag: str, cfg: Settings | None = None) -> list[str]:
    """The data tests with two or more parents, one of them tagged `tag`, all of them built by then.

    Read from the manifest the DAG renders its tasks from (target/manifest.json, rewritten by every dbt command
    run in the project; parsed first if missing), so a new test that joins models is picked up without a list to
    keep. `+tag:TAG` is what is built by then: the tagged models and everything upstream of them.
    """
    cfg = cfg or settings()
    path = cfg.dbt_project_dir / "target" / "manifest.json"
    if not path.exists():
        run_dbt(["parse"], cfg=cfg, echo=False)
    manifest = json.loads(path.read_text())
    nodes = {**manifest["nodes"], **manifest["sources"]}

    def parents(unique_id: str) -> list[str]:
        return [p for p in nodes[unique_id].get("depends_on", {}).get("nodes", []) if p.startswith(_BUILT)]

    tagged = {uid for uid, node in nodes.items() if uid.startswith(_BUILT) and tag in node.get("tags", [])}
    built, upstream = set(), list(tagged)
    while upstream:
        unique_id = upstream.pop()
        if unique_id not in built and unique_id in nodes:
            built.add(unique_id)
            upstream += parents(unique_id)
    tests = []
    for unique_id, node in manifest["nodes"].items():
        joined = parents(unique_id) if unique_id.startswith("test.") else []
        if len(joined) > 1 and set(joined) <= built and tagged & set(joined):
            tests.append(node["name"])
    return sorted(tests)
