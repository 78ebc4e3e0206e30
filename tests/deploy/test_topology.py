"""`make test-deploy`: the production topology runs one real scheduled DAG day end to end.

Postgres holds Airflow's and MLflow's metadata; the MLflow tracking server takes every run, model
version and alias change over HTTP; the scheduler (not `dags test`) runs yesterday's day, which trains,
registers through the server, scores and publishes; then a person promotes and rolls back through the
CLI and the server's REST API shows each change.
"""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta
from urllib.parse import urlencode

import duckdb
import pytest

from tests.deploy.topology import Topology, get_json, tail

pytestmark = pytest.mark.deploy
SHOP = ["--users", "1500", "--days", "120"]
ML = [sys.executable, "-m", "ml"]


@pytest.fixture(scope="module")
def topology(tmp_path_factory):
    topology = Topology(tmp_path_factory.mktemp("deploy"))
    try:
        topology.start_postgres()
        # compose's shop-init step: a demo shop ending yesterday, history built, yesterday left for the scheduler.
        first, second = (
            json.loads(topology.run(*ML, "bootstrap", *SHOP, SHOP_SOURCE="simulate").stdout.splitlines()[-1])
            for _ in range(2)
        )
        assert first["bootstrapped"] and not second["bootstrapped"], (first, second)
        topology.day_left = first["left_for_the_dag"]  # yesterday when it ran: the scheduler's first day
        topology.start_services()
        yield topology
    finally:
        topology.stop()


def _airflow(topology: Topology, endpoint: str, data: dict | None = None, method: str | None = None) -> dict:
    return get_json(f"{topology.api_url}/api/v2/{endpoint}", data, method=method)


def _finished_run(topology: Topology) -> dict | None:
    runs = _airflow(topology, "dags/shop_daily/dagRuns")["dag_runs"]
    return next((r for r in runs if r["state"] in ("success", "failed")), None)


def _failure_report(topology: Topology, run: dict) -> str:
    tasks = _airflow(topology, f"dags/shop_daily/dagRuns/{run['dag_run_id']}/taskInstances")["task_instances"]
    failed = [t["task_id"] for t in tasks if t["state"] == "failed"]
    logs = [
        f"--- {path.relative_to(topology.root)} ---\n{tail(path, 30)}"
        for task in failed
        for path in (topology.root / "airflow" / "logs").rglob(f"task_id={task}/*.log")
    ]
    return f"run {run['dag_run_id']} {run['state']}; failed tasks {failed}\n" + "\n".join(logs) + topology.all_logs()


def _mlflow(topology: Topology, endpoint: str, data: dict | None = None) -> dict:
    return get_json(f"{topology.mlflow_url}/api/2.0/mlflow/{endpoint}", data)


def _champion(topology: Topology, name: str) -> str:
    return _mlflow(topology, f"registered-models/alias?name={name}&alias=champion")["model_version"]["version"]


def test_a_scheduled_day_trains_registers_scores_and_publishes_through_the_servers(topology):
    [day] = topology.day_left
    yesterday = date.fromisoformat(day)
    topology.wait_for("the DAG processor to parse shop_daily", lambda: _airflow(topology, "dags/shop_daily"), 240)
    # New DAGs start paused; unpausing lets the scheduler make its own run for the newest whole day.
    _airflow(topology, "dags/shop_daily", {"is_paused": False}, method="PATCH")
    run = topology.wait_for("the scheduled shop_daily run to finish", lambda: _finished_run(topology), 1500, 5)
    assert run["state"] == "success", _failure_report(topology, run)
    assert run["run_type"] == "scheduled" and run["triggered_by"] == "timetable", run  # not a trigger, not `dags test`
    assert run["data_interval_start"].startswith(str(yesterday)), run

    # The day's marts reached the analysts' snapshot.
    as_of = yesterday + timedelta(days=1)
    with duckdb.connect(str(topology.root / "data" / "analyst" / "warehouse_snapshot.duckdb"), read_only=True) as db:
        segments = db.execute("select count(*) from user_segments where as_of_date = ?", [as_of]).fetchone()[0]
        targets = db.execute("select count(*) from coupon_targets where as_of_date = ?", [as_of]).fetchone()[0]
    assert segments > 0 and targets > 0, (segments, targets)

    # MLflow: the training runs, their plots and the registered champions, read through the REST API.
    experiments = _mlflow(topology, "experiments/search", {"max_results": 100})["experiments"]
    runs = _mlflow(
        topology, "runs/search", {"experiment_ids": [e["experiment_id"] for e in experiments], "max_results": 200}
    )["runs"]
    assert runs and all(r["info"]["status"] == "FINISHED" for r in runs), [r["info"]["status"] for r in runs]
    plotted = [
        f["path"]
        for r in runs
        for f in _mlflow(topology, f"artifacts/list?run_id={r['info']['run_id']}&path=plots").get("files", [])
        if f["path"].endswith(".png")
    ]
    assert plotted, "no run logged a plot"
    run_ids = {r["info"]["run_id"] for r in runs}
    for name in ("purchase_propensity", "churn_risk"):
        versions = _mlflow(topology, "model-versions/search?" + urlencode({"filter": f"name='{name}'"}))
        registered = {v["version"]: v["run_id"] for v in versions["model_versions"]}
        assert registered and set(registered.values()) <= run_ids, (name, registered)  # each from a logged run
        assert _champion(topology, name) in registered, name
    # No local store was used: everything went through the server into Postgres.
    assert not list(topology.root.rglob("mlflow.db"))


def test_promote_and_rollback_through_the_cli_show_in_the_server(topology):
    name = "purchase_propensity"
    topology.run(*ML, "train", "--task", "purchase_30d")
    versions = _mlflow(topology, "model-versions/search?" + urlencode({"filter": f"name='{name}'"}))["model_versions"]
    newest = str(max(int(v["version"]) for v in versions))
    before = _champion(topology, name)
    target = newest if before != newest else "1"

    topology.run(*ML, "models", "promote", name, target, "--reason", "deploy test: promote")
    assert _champion(topology, name) == target
    topology.run(*ML, "models", "rollback", name, "--reason", "deploy test: roll back")
    assert _champion(topology, name) == before
    audit = duckdb.sql(
        f"select action, from_version, to_version from '{topology.root}/data/audit/model_promotions/*.parquet' "
        "where reason like 'deploy test:%' order by changed_at"
    ).fetchall()
    assert audit == [("promote", before, target), ("rollback", target, before)], audit
