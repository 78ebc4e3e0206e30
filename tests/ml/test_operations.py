"""What an operator hits: a locked warehouse, a wrong setting, a build that is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from ml.config import settings
from ml.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ml", *args], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True
    )


def test_a_locked_warehouse_is_one_line_naming_its_holder(tmp_path):
    warehouse = tmp_path / "data" / "warehouse.duckdb"
    warehouse.parent.mkdir(parents=True)
    writer = duckdb.connect(str(warehouse))
    writer.execute("create table kept as select 42 as answer")
    env = {"SHOP_DATA_DIR": str(tmp_path / "data"), "SHOP_MLFLOW_DIR": str(tmp_path / "mlflow")}
    for command in (["summary"], ["score"]):
        result = _cli(*command, env=env)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr
        assert f"{warehouse} is locked by process {os.getpid()}" in lines[0] and "retry" in lines[0]
    assert writer.execute("select answer from kept").fetchone() == (42,)  # nothing lost
    writer.close()


def test_the_source_setting_defaults_to_the_inbox_and_refuses_anything_else(monkeypatch):
    monkeypatch.delenv("SHOP_SOURCE", raising=False)
    assert settings().source == "inbox"  # a scheduled run never fabricates a missing day
    monkeypatch.setenv("SHOP_SOURCE", "simulate")
    assert settings().source == "simulate"
    monkeypatch.setenv("SHOP_SOURCE", "s3")
    with pytest.raises(ConfigError, match="SHOP_SOURCE must be one of inbox, simulate, got 's3'"):
        settings()


def test_the_engine_setting_picks_the_dbt_target_and_refuses_an_unknown_engine(monkeypatch, tmp_path):
    import re

    from ml.warehouse.dbt_runner import OPTIONAL_SOURCES, dbt_env

    monkeypatch.setenv("SHOP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SHOP_ENGINE", raising=False)
    assert settings().engine == "duckdb" and dbt_env()["DBT_TARGET"] == "local"
    (tmp_path / "landing" / "users").mkdir(parents=True)
    (tmp_path / "landing" / "users" / "users.parquet").write_bytes(b"")
    monkeypatch.setenv("SHOP_ENGINE", "spark")
    env = dbt_env()
    assert env["DBT_TARGET"] == "spark"
    monkeypatch.setenv("SHOP_SPARK_TARGET", "spark_cluster")  # a cluster's Thrift server
    assert dbt_env()["DBT_TARGET"] == "spark_cluster"
    monkeypatch.setenv("SHOP_SPARK_TARGET", "databricks")
    with pytest.raises(ConfigError, match="SHOP_SPARK_TARGET must be one of spark, spark_cluster, got 'databricks'"):
        settings()
    monkeypatch.delenv("SHOP_SPARK_TARGET")
    assert env["SHOP_SPARK_WAREHOUSE_DIR"] == str(tmp_path / "spark" / "warehouse")
    # Spark SQL cannot list files: dbt is told which optional sources have some.
    assert env["SHOP_DBT_SOURCES_WITH_FILES"] == "landing.users"
    # The same optional sources as the macro that reads them on DuckDB.
    macro = (settings().dbt_project_dir / "macros" / "optional_sources.sql").read_text()
    patterns = macro[macro.index("set patterns") : macro.index("} -%}")]
    in_macro = {
        f"{source}.{table}"
        for source, block in re.findall(r"'(\w+)': \{(.*?)\}", patterns, flags=re.S)
        for table in re.findall(r"'(\w+)':", block)
    }
    assert in_macro == set(OPTIONAL_SOURCES)
    monkeypatch.setenv("SHOP_ENGINE", "oracle")
    with pytest.raises(ConfigError, match="SHOP_ENGINE must be one of duckdb, spark, got 'oracle'"):
        settings()


def test_the_late_event_days_setting_refuses_a_negative_or_non_number(monkeypatch):
    monkeypatch.setenv("SHOP_LATE_EVENT_DAYS", "0")
    assert settings().late_event_days == 0  # only the business day itself is re-processed
    monkeypatch.setenv("SHOP_LATE_EVENT_DAYS", "-1")
    with pytest.raises(ConfigError, match="SHOP_LATE_EVENT_DAYS must be 0 or a positive whole number, got '-1'"):
        settings()
    monkeypatch.setenv("SHOP_LATE_EVENT_DAYS", "a week")
    with pytest.raises(ConfigError, match="SHOP_LATE_EVENT_DAYS must be an integer, got 'a week'"):
        settings()


def test_history_batches_are_sized_to_the_shop_and_retention_refuses_a_non_positive_value(empty_env, monkeypatch):
    import pandas as pd

    from ml.warehouse.history import history_batch_days, known_users

    assert known_users() == 0 and history_batch_days() == 30  # nothing landed yet: the largest batch
    events = empty_env / "data" / "landing" / "events" / "event_date=2026-01-01"
    events.mkdir(parents=True)
    pd.DataFrame({"user_id": range(400_000)}).to_parquet(events / "part-0.parquet")
    assert known_users() == 400_000 and history_batch_days() == 7  # no user table: the ids in the events
    monkeypatch.setenv("SHOP_HISTORY_BATCH_DAYS", "45")
    assert history_batch_days() == 45
    for name in ("SHOP_HISTORY_BATCH_DAYS", "SHOP_FEATURE_RETENTION_DAYS"):
        monkeypatch.setenv(name, "0")
        with pytest.raises(ConfigError, match=f"{name} must be a positive number of days"):
            settings()
        monkeypatch.delenv(name)
    assert settings().feature_retention_days is None  # unset: every as-of date is kept


def test_stopping_a_build_stops_its_dbt_process(tmp_path):
    """SIGTERM to `ml build` (what Airflow sends a stopped task) ends its dbt child; SIGKILL does too."""
    fake_dbt = tmp_path / "bin" / "dbt"
    fake_dbt.parent.mkdir()
    pid_file = tmp_path / "dbt.pid"
    # A stand-in for a long dbt build: records its pid, then works for a minute.
    fake_dbt.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
    fake_dbt.chmod(0o755)
    script = (
        "import sys, signal; from ml.warehouse import dbt_runner as warehouse; "
        f"warehouse.dbt_executable = lambda: {str(fake_dbt)!r}; "
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(143)); "
        "warehouse.run_dbt(['build'])"
    )
    env = {**os.environ, "SHOP_DATA_DIR": str(tmp_path / "data")}
    for stop in (signal.SIGTERM, signal.SIGKILL):
        pid_file.unlink(missing_ok=True)
        parent = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env)
        for _ in range(200):
            if pid_file.exists() and pid_file.read_text().strip():
                break
            time.sleep(0.05)
        child = int(pid_file.read_text())
        parent.send_signal(stop)
        parent.wait(timeout=30)
        for _ in range(100):
            if not _alive(child):
                break
            time.sleep(0.05)
        assert not _alive(child), f"dbt stand-in {child} outlived its parent stopped by {stop.name}"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def _running_runs(client) -> list:
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, "attributes.status = 'RUNNING'") if experiments else []


def _runs_started_since(client, started_ms: int) -> list:
    experiments = [e.experiment_id for e in client.search_experiments()]
    return [r for r in client.search_runs(experiments) if r.info.start_time >= started_ms] if experiments else []


@pytest.mark.slow
def test_a_killed_training_run_is_marked_failed(built_shop, shop_copy):
    """SIGTERM ends the open MLflow run FAILED at once; after SIGKILL the next training marks it FAILED."""
    from ml.registry.ownership import fail_orphaned_runs
    from ml.registry.tracking import configure_mlflow
    from mlflow import MlflowClient

    shop = shop_copy(built_shop)
    client = MlflowClient(configure_mlflow())
    env = {"SHOP_DATA_DIR": str(shop.data), "SHOP_MLFLOW_DIR": str(shop.root / "mlflow")}
    for stop in (signal.SIGTERM, signal.SIGKILL):
        started_ms = int(time.time() * 1000)
        training = subprocess.Popen([sys.executable, "-m", "ml", "train"], cwd=ROOT, env={**os.environ, **env})
        deadline = time.monotonic() + 300
        while not _running_runs(client):
            assert training.poll() is None and time.monotonic() < deadline, "training never opened an MLflow run"
            time.sleep(0.05)
        # At once: on this small shop a model's run can close within a second. The runs of this training
        # that were open when the signal came are the ones it must close (or, after SIGKILL, leave open).
        training.send_signal(stop)
        training.wait(timeout=60)
        runs = _runs_started_since(client, started_ms)
        assert runs and not [r for r in runs if r.info.status not in ("FINISHED", "FAILED", "RUNNING")]
        interrupted = [r.info.run_id for r in runs if r.info.status != "FINISHED"]
        assert len(interrupted) == 1, [(r.info.run_name, r.info.status) for r in runs]
        status = client.get_run(interrupted[0]).info.status
        if stop == signal.SIGTERM:
            assert status == "FAILED"  # closed by the process itself on its way out
        else:
            assert status == "RUNNING"  # nothing in the killed process could close it
            assert fail_orphaned_runs() == interrupted
            killed = client.get_run(interrupted[0])
            assert killed.info.status == "FAILED"
            assert "ended without closing the run" in killed.data.tags["shop.failure"]
    assert not _running_runs(client)


def test_only_runs_whose_process_is_gone_here_are_marked_failed(empty_env):
    import mlflow
    from ml.registry.ownership import fail_orphaned_runs, owner_tags
    from ml.registry.tracking import experiment_id

    experiment = experiment_id("shop_behaviour_models")
    client = mlflow.MlflowClient()
    with mlflow.start_run(experiment_id=experiment, tags=owner_tags()) as live:  # this process: alive
        foreign = client.create_run(
            experiment, tags={**owner_tags(), "shop.machine": "another-machine", "shop.pid": "1"}
        )
        dead = client.create_run(experiment, tags={**owner_tags(), "shop.pid_started": "0"})  # our pid, not our start
        assert fail_orphaned_runs() == [dead.info.run_id]
        assert client.get_run(live.info.run_id).info.status == "RUNNING"
        assert client.get_run(foreign.info.run_id).info.status == "RUNNING"
        assert client.get_run(dead.info.run_id).info.status == "FAILED"


def test_a_half_built_history_is_built_again_by_bootstrap(empty_env):
    """A warehouse file alone (a build that failed half-way) is not history: bootstrap must not skip it."""
    from ml.config import settings
    from ml.warehouse.history import history_built

    warehouse = settings().warehouse_path
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create table user_features as select 1 as user_id")
    assert not history_built()
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create table training_labels as select 1 as user_id")
    assert history_built()
