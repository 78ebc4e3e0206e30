"""The production topology of docker-compose.yml on one machine, without Docker.

Compose's secrets check runs first, on a random value for every secret compose names. PostgreSQL
(pgserver's server binaries, on a Unix socket) gets its roles and databases from the same
mlflow/init-databases.sh that compose mounts, and then wants every role's password but the superuser's; an
MLflow tracking server with its basic-auth app runs over two of the databases, Airflow's API server,
scheduler and DAG processor (LocalExecutor, FAB logins) over the third. The accounts of ml/deploy/ are
made as compose makes them. Every service is a real process in its own process group with its own log;
`stop()` ends them all, Postgres last.
"""

from __future__ import annotations

import base64
import configparser
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ml.deploy import airflow_accounts, mlflow_accounts
from ml.warehouse.dbt_runner import die_with_parent

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, data: dict | None, method: str | None, headers: dict | None) -> urllib.request.Request:
    body = None if data is None else json.dumps(data).encode()
    headers = {"Content-Type": "application/json", **(headers or {})}
    return urllib.request.Request(url, data=body, headers=headers, method=method)


def get_json(
    url: str, data: dict | None = None, timeout: float = 10, method: str | None = None, headers: dict | None = None
) -> dict:
    with urllib.request.urlopen(_request(url, data, method, headers), timeout=timeout) as response:
        text = response.read()
        return json.loads(text) if text else {}


def http_status(url: str, data: dict | None = None, method: str | None = None, headers: dict | None = None) -> int:
    """The HTTP status of a request: a refusal (4xx) is an answer here, not an exception."""
    try:
        with urllib.request.urlopen(_request(url, data, method, headers), timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as refused:
        return refused.code


def basic_auth(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def _secret(name: str) -> str:
    """A value as .env.example says to make it (the Fernet key has its own format)."""
    if name == "AIRFLOW_FERNET_KEY":
        from cryptography.fernet import Fernet

        return Fernet.generate_key().decode()
    return secrets.token_urlsafe(32)


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
    # Every secret compose requires, by its .env name.
    secret_values: dict[str, str] = field(default_factory=lambda: {n: _secret(n) for n in COMPOSE["x-secret-names"]})
    _postgres: object = None
    _tokens: dict[str, str] = field(default_factory=dict)

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def check_secrets(self) -> None:
        """Compose's first step: its `check-secrets` command on the secrets, by their .env names."""
        argv = [sys.executable, *shlex.split(COMPOSE["services"]["check-secrets"]["command"])[1:]]
        done = subprocess.run(argv, env={**os.environ, **self.secret_values}, cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, f"check-secrets exited {done.returncode}: {done.stderr}"

    def start_postgres(self) -> str:
        """Postgres as compose's init script leaves it, then with passwords required; returns its socket folder."""
        import pgserver

        self.check_secrets()
        pgdata = self.root / "pgdata"
        pgdata.mkdir(parents=True, exist_ok=True)
        self._postgres = pgserver.get_server(pgdata, cleanup_mode="stop")
        self.socket_dir = str(self._postgres.get_postmaster_info().socket_dir)
        psql_dir = Path(pgserver.__file__).parent / "pginstall" / "bin"
        init = subprocess.run(
            ["bash", str(ROOT / "mlflow" / "init-databases.sh")],
            env={
                "PATH": f"{psql_dir}{os.pathsep}{os.environ['PATH']}",
                "PGHOST": self.socket_dir,
                "POSTGRES_USER": "postgres",
                **{name: self.secret_values[name] for name in ("AIRFLOW_DB_PASSWORD", "MLFLOW_DB_PASSWORD")},
            },
            capture_output=True,
            text=True,
        )
        assert init.returncode == 0, f"init-databases.sh exited {init.returncode}:\n{init.stdout}\n{init.stderr}"
        # pgserver trusts every local login; from now on only its own superuser is trusted, as in the image.
        (pgdata / "pg_hba.conf").write_text("local all postgres trust\nlocal all all scram-sha-256\n")
        self._postgres.psql("select pg_reload_conf();")
        return self.socket_dir

    def database_uri(self, user: str, database: str | None = None) -> str:
        # As in compose: no password in the string; each service's PGPASSWORD holds its role's.
        return f"postgresql+psycopg2://{user}@/{database or user}?host={self.socket_dir}"

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
            SHOP_PSEUDONYM_KEY=self.secret_values["SHOP_PSEUDONYM_KEY"],  # a secret of the deployment, as in compose
            MLFLOW_TRACKING_URI=self.mlflow_url,
            # As compose's tasks: MLflow's pipeline account.
            MLFLOW_TRACKING_USERNAME="pipeline",
            MLFLOW_TRACKING_PASSWORD=self.secret_values["MLFLOW_PIPELINE_PASSWORD"],
            MLFLOW_UV_AUTO_DETECT="false",
            MLFLOW_LOG_UV_FILES="false",
            DO_NOT_TRACK="1",
            AIRFLOW_HOME=str(self.root / "airflow"),
            AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM="4",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=self.database_uri("airflow"),
            PGPASSWORD=self.secret_values["AIRFLOW_DB_PASSWORD"],
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.api_url}/execution/",
            AIRFLOW__API_AUTH__JWT_SECRET=self.secret_values["AIRFLOW_JWT_SECRET"],
            AIRFLOW__CORE__FERNET_KEY=self.secret_values["AIRFLOW_FERNET_KEY"],
            AIRFLOW__CORE__AUTH_MANAGER=COMPOSE["x-shop-env"]["AIRFLOW__CORE__AUTH_MANAGER"],
            AIRFLOW__API__SECRET_KEY=self.secret_values["AIRFLOW_SECRET_KEY"],
            AIRFLOW__COSMOS__ENABLE_TELEMETRY="False",
            AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="120",
        )
        return env

    def mlflow_server_env(self) -> dict[str, str]:
        """Compose's mlflow service: the basic-auth app, its admin and key, its own database role."""
        config = configparser.ConfigParser()
        config.read(ROOT / "mlflow" / "basic_auth.ini")
        config["mlflow"]["database_uri"] = self.database_uri("mlflow", "mlflow_auth")
        with open(self.root / "basic_auth.ini", "w") as out:
            config.write(out)
        env = {k: v for k, v in self.env().items() if k not in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
        return {
            **env,
            "MLFLOW_AUTH_CONFIG_PATH": str(self.root / "basic_auth.ini"),
            "MLFLOW_AUTH_ADMIN_PASSWORD": self.secret_values["MLFLOW_ADMIN_PASSWORD"],
            "MLFLOW_FLASK_SERVER_SECRET_KEY": self.secret_values["MLFLOW_SECRET_KEY"],
            "PGPASSWORD": self.secret_values["MLFLOW_DB_PASSWORD"],
        }

    def mlflow_login(self, username: str) -> dict[str, str]:
        """The environment that makes MLflow's client (and `python -m ml`) act as one of its accounts."""
        secret = "MLFLOW_ADMIN_PASSWORD" if username == "admin" else mlflow_accounts.ACCOUNTS[username][0]
        return {"MLFLOW_TRACKING_USERNAME": username, "MLFLOW_TRACKING_PASSWORD": self.secret_values[secret]}

    def mlflow_headers(self, username: str) -> dict[str, str]:
        login = self.mlflow_login(username)
        return basic_auth(login["MLFLOW_TRACKING_USERNAME"], login["MLFLOW_TRACKING_PASSWORD"])

    def airflow_headers(self, username: str) -> dict[str, str]:
        """A bearer token of an Airflow account (its API takes no other login), fetched once."""
        if username not in self._tokens:
            password = self.secret_values[airflow_accounts.ACCOUNTS[username][0]]
            token = get_json(f"{self.api_url}/auth/token", {"username": username, "password": password})
            self._tokens[username] = token["access_token"]
        return {"Authorization": f"Bearer {self._tokens[username]}"}

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
            "--app-name",
            "basic-auth",
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
            env=self.mlflow_server_env(),
        )
        self.run(str(BIN / "airflow"), "db", "migrate", timeout=600)
        self.run(str(BIN / "airflow"), "pools", "set", "warehouse", "1", "Tasks that open the DuckDB warehouse")
        self.run(sys.executable, "-m", "ml", "accounts", "airflow", **self.secret_values)
        self.spawn(
            "api-server", str(BIN / "airflow"), "api-server", "--host", "127.0.0.1", "--port", str(self.api_port)
        )
        self.spawn("scheduler", str(BIN / "airflow"), "scheduler")
        self.spawn("dag-processor", str(BIN / "airflow"), "dag-processor")
        self.wait_for("the MLflow server", lambda: urllib.request.urlopen(f"{self.mlflow_url}/health", timeout=5))
        self.run(sys.executable, "-m", "ml", "accounts", "mlflow", **self.secret_values, **self.mlflow_login("admin"))
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
