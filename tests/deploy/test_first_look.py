"""`make airflow` and `make mlflow` as a newcomer starts them: a fresh shell, no virtualenv on PATH.

Run by `make test-deploy` (after `make test` in CI): the UI must serve the DAG, and the runs it lists
must be those of `make run` (conf `{"run_date": D}`), never the test suite's (it has its own home).
Like a newcomer, it uses the project's own `.airflow` home: in a working copy, that of your `make run`.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.deploy.topology import ROOT, _die_with_parent, free_port, get_json

pytestmark = pytest.mark.deploy


def _fresh_shell() -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SHOP_", "MLFLOW_", "DBT_", "VIRTUAL_ENV"))
    }
    venv = str(ROOT / ".venv")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(venv))
    return env


def _test_suite_run_ids() -> set[str]:
    database = ROOT / ".airflow-test" / "airflow.db"
    if not database.exists():
        return set()
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as con:
        return {row[0] for row in con.execute("select run_id from dag_run where dag_id = 'shop_daily'")}


def _start(target: str, port_var: str, port: int, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            ["make", target, f"{port_var}={port}"],
            cwd=ROOT,
            env=_fresh_shell(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )


def _wait(proc: subprocess.Popen, log: Path, check, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"exited {proc.returncode}:\n{log.read_text()[-4000:]}"
        try:
            result = check()
        except Exception:
            result = None
        if result:
            return result
        assert time.monotonic() < deadline, f"not up after {timeout}s:\n{log.read_text()[-4000:]}"
        time.sleep(2)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_make_airflow_serves_the_dag_and_only_the_runs_of_make_run(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "airflow.log"
    proc = _start("airflow", "AIRFLOW_PORT", port, log)
    try:
        health = _wait(proc, log, lambda: get_json(f"{base}/api/v2/monitor/health"))
        _wait(proc, log, lambda: get_json(f"{base}/api/v2/monitor/health")["scheduler"]["status"] == "healthy")
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

        dag = _wait(proc, log, lambda: api("dags/shop_daily"))
        assert dag["dag_id"] == "shop_daily"
        runs = api("dags/shop_daily/dagRuns?limit=1000")["dag_runs"]
        assert all(set(run["conf"] or {}) == {"run_date"} for run in runs), [r["conf"] for r in runs]
        # The test suite's own DAG runs (in CI, `make test` just made some) live in its own home only.
        assert not {r["dag_run_id"] for r in runs} & _test_suite_run_ids()
        with urllib.request.urlopen(f"{base}/dags/shop_daily/grid", timeout=10) as page:
            assert page.status == 200 and b"<html" in page.read().lower()
    finally:
        _stop(proc)


def test_make_mlflow_serves_the_ui(tmp_path):
    port = free_port()
    log = tmp_path / "mlflow.log"
    proc = _start("mlflow", "MLFLOW_PORT", port, log)
    try:
        _wait(proc, log, lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).status == 200)
        experiments = get_json(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search", {"max_results": 10})
        assert "experiments" in experiments
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
            assert page.status == 200
    finally:
        _stop(proc)
