"""`make test-deploy`: the production topology runs one real scheduled DAG day end to end.

Postgres holds Airflow's and MLflow's metadata; the MLflow tracking server takes every run, model
version and alias change over HTTP; the scheduler (not `dags test`) runs yesterday's day, which trains,
registers through the server (as MLflow's `pipeline` account), scores and publishes; then a data scientist
promotes and rolls back through the CLI with their own account and the server's REST API shows each change.
Both servers refuse anyone not logged in, and each account can do what its role allows and no more.
"""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta
from urllib.parse import urlencode

import duckdb
import pytest

from tests.deploy.topology import Topology, basic_auth, get_json, http_status, tail

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
    """Airflow's REST API as a data engineer: the `operator` account."""
    headers = topology.airflow_headers("operator")
    return get_json(f"{topology.api_url}/api/v2/{endpoint}", data, method=method, headers=headers)


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
    """MLflow's REST API as someone who only reads: the `analyst` account."""
    analyst = topology.mlflow_headers("analyst")
    return get_json(f"{topology.mlflow_url}/api/2.0/mlflow/{endpoint}", data, headers=analyst)


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

    scientist = topology.mlflow_login("scientist")  # what the README tells a data scientist to export
    topology.run(*ML, "models", "promote", name, target, "--reason", "deploy test: promote", **scientist)
    assert _champion(topology, name) == target
    topology.run(*ML, "models", "rollback", name, "--reason", "deploy test: roll back", **scientist)
    assert _champion(topology, name) == before
    audit = duckdb.sql(
        f"select action, from_version, to_version, changed_by from '{topology.root}/data/audit/model_promotions/"
        "*.parquet' where reason like 'deploy test:%' order by changed_at"
    ).fetchall()
    assert audit == [("promote", before, target, "scientist"), ("rollback", target, before, "scientist")], audit


def test_both_servers_refuse_a_request_without_a_login_or_with_a_wrong_one(topology):
    experiments = f"{topology.mlflow_url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert http_status(experiments) == 401
    assert http_status(experiments, headers=basic_auth("analyst", "not-the-password")) == 401
    assert http_status(f"{topology.api_url}/api/v2/dags") == 401
    assert http_status(f"{topology.api_url}/auth/token", {"username": "viewer", "password": "not-the-password"}) == 401
    # What compose's and this harness's health checks read stays open.
    assert http_status(f"{topology.mlflow_url}/health") == 200
    assert http_status(f"{topology.api_url}/api/v2/monitor/health") == 200


def test_the_analyst_reads_runs_but_can_neither_move_an_alias_nor_register_a_version(topology):
    name = "purchase_propensity"
    analyst = topology.mlflow_headers("analyst")
    api = f"{topology.mlflow_url}/api/2.0/mlflow"
    experiments = _mlflow(topology, "experiments/search", {"max_results": 100})["experiments"]
    runs = _mlflow(topology, "runs/search", {"experiment_ids": [e["experiment_id"] for e in experiments]})["runs"]
    assert runs  # read with the analyst's login (200)
    champion = _champion(topology, name)
    versions = _mlflow(topology, "model-versions/search?" + urlencode({"filter": f"name='{name}'"}))["model_versions"]
    other = next(v["version"] for v in versions if v["version"] != champion)
    alias = {"name": name, "alias": "champion", "version": other}
    assert http_status(f"{api}/registered-models/alias", alias, headers=analyst) == 403
    version = {"name": name, "source": f"runs:/{runs[0]['info']['run_id']}/model", "run_id": runs[0]["info"]["run_id"]}
    assert http_status(f"{api}/model-versions/create", version, headers=analyst) == 403
    assert _champion(topology, name) == champion


def test_the_viewer_cannot_trigger_a_dag_run_and_the_operator_can(topology):
    # Paused first: the operator's run waits in the queue, and is deleted without running anything.
    _airflow(topology, "dags/shop_daily", {"is_paused": True}, method="PATCH")
    runs = f"{topology.api_url}/api/v2/dags/shop_daily/dagRuns"
    trigger = {"logical_date": None, "conf": {}}
    assert http_status(runs, trigger, headers=topology.airflow_headers("viewer")) == 403
    run = get_json(runs, trigger, headers=topology.airflow_headers("operator"))
    assert run["run_type"] == "manual" and run["state"] == "queued", run
    get_json(f"{runs}/{run['dag_run_id']}", method="DELETE", headers=topology.airflow_headers("operator"))


def test_the_account_steps_run_again_at_every_start_and_take_a_changed_password(topology):
    experiments = f"{topology.mlflow_url}/api/2.0/mlflow/experiments/search?max_results=1"
    old = topology.mlflow_headers("analyst")
    again = topology.run(*ML, "accounts", "airflow", **topology.secret_values)
    assert json.loads(again.stdout.splitlines()[-1]) == dict.fromkeys(("admin", "operator", "viewer"), "unchanged")
    # A rotated secret: the next start gives the account its new password, and the old one stops working.
    topology.secret_values["MLFLOW_ANALYST_PASSWORD"] = "rotated-" + topology.secret_values["MLFLOW_ANALYST_PASSWORD"]
    again = topology.run(*ML, "accounts", "mlflow", **topology.secret_values, **topology.mlflow_login("admin"))
    assert json.loads(again.stdout.splitlines()[-1]) == dict.fromkeys(("pipeline", "scientist", "analyst"), "updated")
    assert http_status(experiments, headers=topology.mlflow_headers("analyst")) == 200
    assert http_status(experiments, headers=old) == 401
    # Its grants were set again, no higher: it still reads only.
    alias = {"name": "purchase_propensity", "alias": "champion", "version": "1"}
    set_alias = f"{topology.mlflow_url}/api/2.0/mlflow/registered-models/alias"
    assert http_status(set_alias, alias, headers=topology.mlflow_headers("analyst")) == 403
