"""Shared fixtures: small simulated shops built once per session with the real pipeline.

Every test points the pipeline at its own folder through the same environment variables a user
would set (SHOP_DATA_DIR, SHOP_MLFLOW_DIR), so nothing touches ./data or ./mlflow.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# `make test` runs two pytest workers (pytest-xdist); each keeps its own Airflow database, Cosmos cache and
# dbt project folder (dbt writes target/ and logs/ inside the project), so neither reads the other's files.
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
# Airflow reads its configuration when first imported: set it before any test imports airflow.
# Tests keep their own Airflow home and database, so the UI of `make airflow` shows only real runs.
TEST_AIRFLOW_HOME = ROOT / ".airflow-test" / (WORKER or "main")
os.environ["AIRFLOW_HOME"] = str(TEST_AIRFLOW_HOME)
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{TEST_AIRFLOW_HOME / 'airflow.db'}"
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ["AIRFLOW__COSMOS__ENABLE_TELEMETRY"] = "False"
os.environ["DO_NOT_TRACK"] = "true"
os.environ["MLFLOW_UV_AUTO_DETECT"] = "false"
os.environ["MLFLOW_LOG_UV_FILES"] = "false"
os.environ["SHOP_TASK_RETRIES"] = "0"
for _name in [n for n in os.environ if n.startswith("SHOP_") and n != "SHOP_TASK_RETRIES"] + ["MLFLOW_TRACKING_URI"]:
    os.environ.pop(_name, None)
# Most tests train XGBoost and the logistic model only (every DAG and loop test needs a champion, not four): the
# random forest and the network cost each training about 10 s of fitting and logging on the test shop. The
# trained shop, which the registry, scoring and monitoring tests read, trains all four families.
os.environ["SHOP_MODEL_FLAVOURS"] = "xgboost,logistic"
if WORKER:
    _worker_dir = Path(tempfile.mkdtemp(prefix=f"shop-tests-{WORKER}-"))
    atexit.register(shutil.rmtree, _worker_dir, True)
    shutil.copytree(ROOT / "dbt_project", _worker_dir / "dbt_project", ignore=shutil.ignore_patterns("logs"))
    os.environ["SHOP_DBT_PROJECT_DIR"] = os.environ["DBT_PROFILES_DIR"] = str(_worker_dir / "dbt_project")
    os.environ["AIRFLOW__COSMOS__CACHE_DIR"] = str(_worker_dir / "cosmos")

# Airflow puts the DAG folder on sys.path when it parses DAGs; tests that load a DagBag need the same.
sys.path.insert(0, str(ROOT / "dags"))

SMALL_SHOP = {"seed": 7, "users": 1500, "days": 120, "start": date(2026, 1, 1)}


@dataclass(frozen=True)
class Shop:
    root: Path
    remaining_days: list[date]

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def warehouse(self) -> Path:
        return self.data / "warehouse.duckdb"


def altered_project(folder: Path, model: str, old: str, new: str) -> Path:
    """A copy of the dbt project in `folder` whose `model` (a path under models/) has `old` replaced by `new`."""
    project = folder / "dbt_project"
    shutil.copytree(ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs"))
    path = project / "models" / model
    honest = path.read_text()
    assert old in honest, f"{model} no longer holds {old!r}"
    path.write_text(honest.replace(old, new))
    return project


def point_env_at(mp: pytest.MonkeyPatch, root: Path) -> None:
    mp.setenv("SHOP_DATA_DIR", str(root / "data"))
    mp.setenv("SHOP_MLFLOW_DIR", str(root / "mlflow"))


def copy_shop(shop: Shop, target: Path) -> Shop:
    shutil.copytree(shop.root, target)
    return Shop(target, shop.remaining_days)


@pytest.fixture(autouse=True)
def _restore_environment():
    """Put os.environ back after every test.

    Cosmos copies the dbt env vars (SHOP_LANDING_DIR, SHOP_WAREHOUSE_PATH, ...) into os.environ for its
    OpenLineage parsing and never removes them. A real task runs in its own process, but dag.test() runs
    every task in the test process, so without this a DAG test would point later tests at its shop.
    """
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session", autouse=True)
def _dbt_in_the_test_process():
    """The tests' dbt builds run inside the test process (ml.warehouse.dbt_runner.dbt_in_this_process), as
    Airflow's tasks run theirs: each saves a process start and dbt's imports (about 2.5 s; a few hundred builds a
    run). The CLI's own path, a dbt process per build, is run by the tests that start `python -m ml` (the own-data
    walkthrough, the operations and kill tests)."""
    from ml.warehouse.dbt_runner import dbt_in_this_process

    with dbt_in_this_process():
        yield


def _shop_once(name: str, tmp_path_factory, build: Callable[[Path], list[date]]) -> Shop:
    """A session shop built once per test run: under `make test`'s two workers the first to ask builds it (under a
    file lock) and the other reuses it. Tests read a session shop and write to their own copy (shop_copy); the
    one thing a copy writes back is MLflow artifacts, into new run folders of the shop's absolute artifact root."""
    if not WORKER:
        root = tmp_path_factory.mktemp(name)
        return Shop(root, build(root))
    root = tmp_path_factory.getbasetemp().parent / name  # the run's folder, shared by its workers
    built = root.with_suffix(".days.json")
    with open(f"{root}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or if this worker dies
        if not built.exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            days = json.dumps([str(day) for day in build(root)])
            built.with_suffix(".tmp").write_text(days)
            built.with_suffix(".tmp").rename(built)  # whole or absent, even if this worker dies
    return Shop(root, [date.fromisoformat(day) for day in json.loads(built.read_text())])


@pytest.fixture(scope="session")
def built_shop(tmp_path_factory) -> Shop:
    """A 1,500-user, 120-day shop: simulated, landed and built except its last 3 days."""

    def build(root: Path) -> list[date]:
        from ml.sim.run import simulate
        from ml.sim.shop import ShopSpec
        from ml.warehouse.history import build_history

        with pytest.MonkeyPatch.context() as mp:
            point_env_at(mp, root)
            simulate(ShopSpec(**SMALL_SHOP))
            return build_history(keep_last=3)

    return _shop_once("built_shop", tmp_path_factory, build)


@pytest.fixture(scope="session")
def trained_shop(built_shop, tmp_path_factory) -> Shop:
    """The built shop with both models trained in every family, registered and gated."""

    def build(root: Path) -> list[date]:
        from ml.config import MODEL_FLAVOURS
        from ml.propensity.train import train_all

        shutil.rmtree(root)
        copy_shop(built_shop, root)
        with pytest.MonkeyPatch.context() as mp:
            point_env_at(mp, root)
            mp.setenv("SHOP_MODEL_FLAVOURS", ",".join(MODEL_FLAVOURS))
            train_all()
        return built_shop.remaining_days

    return _shop_once("trained_shop", tmp_path_factory, build)


@pytest.fixture
def shop_copy(tmp_path, monkeypatch):
    """Copy a session shop into this test's folder and point the pipeline at the copy."""

    def make(shop: Shop) -> Shop:
        from ml.registry.tracking import configure_mlflow

        copy = copy_shop(shop, tmp_path / "shop")
        point_env_at(monkeypatch, copy.root)
        configure_mlflow()  # MLflow keeps its tracking URI process-wide: re-point it at the copy
        return copy

    return make


@pytest.fixture
def empty_env(tmp_path, monkeypatch) -> Path:
    from ml.registry.tracking import configure_mlflow

    point_env_at(monkeypatch, tmp_path)
    configure_mlflow()
    return tmp_path


@pytest.fixture(scope="session")
def airflow_db():
    """The Airflow metadata database and the warehouse pool (what `make airflow-init` creates)."""
    airflow = str(Path(sys.executable).parent / "airflow")
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run([airflow, "db", "migrate"], check=True, capture_output=True)
    subprocess.run([airflow, "pools", "set", "warehouse", "1", "warehouse writers"], check=True, capture_output=True)
    return home


# The longest test files, longest first (measured with --durations): each pytest worker takes the next whole file
# (`make test` turns off xdist's own order, by number of tests), so starting these first keeps one worker from
# ending with a long file while the other has finished.
LONGEST_FIRST = [
    "tests/e2e/test_closed_loop.py",
    "tests/dags/test_dag_runs.py",
    # Each worker starts with two files: the closed loop's second is a short one, the other worker takes the rest.
    "tests/test_layers.py",
    "tests/dbt/test_incremental.py",
    "tests/ml/test_monitoring.py",
    "tests/e2e/test_own_data.py",
    "tests/dags/test_dag_quarantine.py",
    "tests/ml/test_train_registry.py",
    "tests/dbt/test_features.py",
    "tests/dbt/test_point_in_time.py",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: within a file, and among the rest, the collection order stays
