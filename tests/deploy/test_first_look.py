"""`make airflow` and `make mlflow` as a newcomer starts them: a fresh shell, no virtualenv on PATH.

Run by `make test-deploy` (after `make test` in CI): the UI must serve the DAG, and the runs it lists
must be those of `make run` (conf `{"run_date": D}`), never the test suite's (it has its own home).
Like a newcomer, it uses the project's own `.airflow` home: in a working copy, that of your `make run`.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import urllib.request
from pathlib import Path

import pytest

from tests.deploy.topology import ROOT, Topology, free_port, get_json

pytestmark = pytest.mark.deploy


def _fresh_shell() -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SHOP_", "MLFLOW_", "DBT_", "VIRTUAL_ENV"))
    }
    venv = str(ROOT / ".venv")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(venv))
    return env


def _test_suite_run_ids() -> set[str]:
    """The DAG runs `make test` made: one Airflow home per pytest worker under `.airflow-test/`."""
    ids = set()
    for database in (ROOT / ".airflow-test").glob("*/airflow.db"):
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as con:
            ids |= {row[0] for row in con.execute("select run_id from dag_run where dag_id = 'shop_daily'")}
    return ids


def _start(target: str, port_var: str, port: int, root: Path) -> Topology:
    """`make TARGET` as one service of a bare harness (no Postgres): logged, stopped with its process group."""
    services = Topology(root)
    services.spawn(target, "make", target, f"{port_var}={port}", env=_fresh_shell())
    return services


def test_make_airflow_serves_the_dag_and_only_the_runs_of_make_run(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    services = _start("airflow", "AIRFLOW_PORT", port, tmp_path)
    try:
        health = services.wait_for("the API server", lambda: get_json(f"{base}/api/v2/monitor/health"), 240)
        services.wait_for(
            "a healthy scheduler",
            lambda: get_json(f"{base}/api/v2/monitor/health")["scheduler"]["status"] == "healthy",
            240,
        )
        assert health["metadatabase"]["status"] == "healthy"
        passwords = ROOT / ".airflow" / "simple_auth_manager_passwords.json.generated"
        token = get_json(
            f"{base}/auth/token", {"username": "admin", "password": json.loads(passwords.read_text())["admin"]}
        )

        def api(endpoint: str) -> dict:
            request = urllib.request.Request(
                f"{base}/api/v2/{endpoint}", headers={"Authorization": f"Bearer {token['access_token']}"}
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())

        dag = services.wait_for("shop_daily to be served", lambda: api("dags/shop_daily"), 240)
        assert dag["dag_id"] == "shop_daily"
        runs = api("dags/shop_daily/dagRuns?limit=1000")["dag_runs"]
        assert all(set(run["conf"] or {}) == {"run_date"} for run in runs), [r["conf"] for r in runs]
        # The test suite's own DAG runs (in CI, `make test` just made some) live in its own home only.
        assert not {r["dag_run_id"] for r in runs} & _test_suite_run_ids()
        # The page the README sends people to: the UI answers 200 for any path (a single-page app), so check
        # the path against the routes its script actually defines (a /grid suffix showed "404 Page Not Found").
        path = re.search(r"\*\*The DAG\*\*: http://localhost:8080(/\S+) ", (ROOT / "README.md").read_text()).group(1)
        with urllib.request.urlopen(f"{base}{path}", timeout=10) as page:
            html = page.read().decode()
        script = re.search(r'src="\.?/?(static/assets/index-[^"]+\.js)"', html).group(1)
        with urllib.request.urlopen(f"{base}/{script}", timeout=30) as bundle:
            routes = set(re.findall(r"path:`([^`]+)`", bundle.read().decode()))
        assert "dags/:dagId" in routes and "dags/:dagId/runs/:runId" in routes  # the routes are readable
        assert path.strip("/").replace("shop_daily", ":dagId") in routes, path
    finally:
        services.stop()


def test_make_mlflow_serves_the_ui(tmp_path):
    port = free_port()
    services = _start("mlflow", "MLFLOW_PORT", port, tmp_path)
    try:
        services.wait_for(
            "the MLflow server",
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).status == 200,
            240,
        )
        experiments = get_json(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search", {"max_results": 10})
        assert "experiments" in experiments
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
            assert page.status == 200
    finally:
        services.stop()
