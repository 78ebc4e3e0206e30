"""The production topology of docker-compose.yml on one machine, without Docker.

PostgreSQL (pgserver's server binaries, on a Unix socket) holds two databases made by the same
mlflow/init-databases.sql that compose mounts; an MLflow tracking server runs over one, Airflow's API
server, scheduler and DAG processor (LocalExecutor) over the other. Every service is a real process in
its own process group with its own log; `stop()` ends them all, Postgres last.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ml.warehouse.dbt_runner import die_with_parent

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, data: dict | None = None, timeout: float = 10, method: str | None = None) -> dict:
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method=method)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Topology:
    root: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    mlflow_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    pseudonym_key: str = field(default_factory=lambda: secrets.token_hex(32))
    fernet_key: str = field(default_factory=lambda: _fernet_key())
    _postgres: object = None

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start_postgres(self) -> str:
        """Postgres with the airflow and mlflow databases; returns its socket folder."""
        import pgserver

        (self.root / "pgdata").mkdir(parents=True, exist_ok=True)
        self._postgres = pgserver.get_server(self.root / "pgdata", cleanup_mode="stop")
        self._postgres.psql((ROOT / "mlflow" / "init-databases.sql").read_text())
        self.socket_dir = str(self._postgres.get_postmaster_info().socket_dir)
        return self.socket_dir

    def database_uri(self, name: str) -> str:
        # Same users and passwords as compose; over the socket Postgres trusts them.
        return f"postgresql+psycopg2://{name}:{name}@/{name}?host={self.socket_dir}"

    def env(self) -> dict[str, str]:
        """What compose's x-shop-env sets, with host names replaced by this machine's ports."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOP_", "AIRFLOW_", "AIRFLOW__", "MLFLOW_"))}
        env.update(
            PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            PYTHONPATH=str(ROOT),
            SHOP_DATA_DIR=str(self.root / "data"),
            SHOP_DBT_PROJECT_DIR=str(ROOT / "dbt_project"),
            DBT_PROFILES_DIR=str(ROOT / "dbt_project"),
            SHOP_SOURCE="inbox",
            SHOP_TASK_RETRIES="0",
            SHOP_PSEUDONYM_KEY=self.pseudonym_key,  # a secret of the deployment, as compose requires
            MLFLOW_TRACKING_URI=self.mlflow_url,
            MLFLOW_UV_AUTO_DETECT="false",
            MLFLOW_LOG_UV_FILES="false",
            DO_NOT_TRACK="1",
            AIRFLOW_HOME=str(self.root / "airflow"),
            AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM="4",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=self.database_uri("airflow"),
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.api_url}/execution/",
            AIRFLOW__API_AUTH__JWT_SECRET=self.jwt_secret,
            AIRFLOW__CORE__FERNET_KEY=self.fernet_key,
            AIRFLOW__COSMOS__ENABLE_TELEMETRY="False",
            AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="120",
            # The test reads the REST API without logging in; compose keeps Airflow's login.
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        )
        return env

    def run(self, *args: str, timeout: float = 900, **extra_env: str) -> subprocess.CompletedProcess:
        """A one-off command (an init step, the CLI) with the topology's environment; fails with its output."""
        env = {**self.env(), **extra_env}
        done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        """Start a long-running service (default: with the topology's environment), logging to logs/NAME.log."""
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "w") as log:
            self.processes[name] = subprocess.Popen(
                args,
                env=env or self.env(),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,  # a killed test run leaves no services behind
            )

    def wait_for(self, what: str, check, timeout: float = 180, every: float = 2):
        """Poll `check` until it returns something truthy; a service that died fails at once, with its log."""
        deadline = time.monotonic() + timeout
        while True:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise AssertionError(f"{name} exited {proc.returncode} while waiting for {what}:\n{self.log(name)}")
            try:
                result = check()
            except Exception:  # not up yet
                result = None
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{self.all_logs()}")
            time.sleep(every)

    def log(self, name: str, lines: int = 40) -> str:
        return tail(self.logs / f"{name}.log", lines)

    def all_logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{self.log(name, 25)}" for name in self.processes)

    def start_services(self) -> None:
        """MLflow's server, Airflow's metadata database and pool, then its API server, scheduler and DAG processor."""
        (self.root / "mlflow-artifacts").mkdir(parents=True, exist_ok=True)
        self.spawn(
            "mlflow",
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            self.database_uri("mlflow"),
            "--artifacts-destination",
            str(self.root / "mlflow-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.mlflow_port),
            "--workers",
            "1",
        )
        self.run(str(BIN / "airflow"), "db", "migrate", timeout=600)
        self.run(str(BIN / "airflow"), "pools", "set", "warehouse", "1", "Tasks that open the DuckDB warehouse")
        self.spawn(
            "api-server", str(BIN / "airflow"), "api-server", "--host", "127.0.0.1", "--port", str(self.api_port)
        )
        self.spawn("scheduler", str(BIN / "airflow"), "scheduler")
        self.spawn("dag-processor", str(BIN / "airflow"), "dag-processor")
        self.wait_for("the MLflow server", lambda: urllib.request.urlopen(f"{self.mlflow_url}/health", timeout=5))
        self.wait_for("a healthy scheduler and DAG processor", self.healthy, timeout=240)

    def healthy(self) -> bool:
        health = get_json(f"{self.api_url}/api/v2/monitor/health")
        return all(
            health.get(part, {}).get("status") == "healthy" for part in ("metadatabase", "scheduler", "dag_processor")
        )

    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._postgres is not None:
            self._postgres.cleanup()
