"""Runs dbt, the only writer of the warehouse (ml.warehouse.publish makes the analysts' snapshot of it).

dbt runs as a subprocess with the project's environment: every path is passed explicitly and
absolute, so a build does the same thing from the CLI, `make`, a test or an Airflow task.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

from ml.config import Settings, settings
from ml.errors import DbtError

_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


# The vars that change from day to day. dbt reparses the whole project whenever its --vars change (about 2 s
# at every day's first call), so these travel in one environment variable instead, read by the
# date_var macro when the SQL runs (macros/checked_vars.sql); the vars on the command line stay the same
# from day to day and the parse is reused. `dbt --vars '{as_of_start: ...}'` by hand still wins.
DAY_VARS = ("as_of_start", "as_of_end", "reprocess_from", "reprocess_to", "history_as_of_end")
DAY_VARS_ENV = "SHOP_DBT_DAY_VARS"
# Named on every call (dbt_env), as Cosmos names them for the DAG's tasks: dbt reparses the project when they change.
DBT_PROFILE, DBT_TARGET = "shop_warehouse", "local"


def dbt_target(cfg: Settings) -> str:
    """The profile's target (dbt_project/profiles.yml) for SHOP_ENGINE: DuckDB's, or SHOP_SPARK_TARGET's."""
    return cfg.spark_target if cfg.engine == "spark" else DBT_TARGET


# The sources a build may find without files (macros/optional_sources.sql: source_files), each with its files. Spark
# SQL cannot list files: dbt learns which have some from SHOP_DBT_SOURCES_WITH_FILES (DuckDB globs them itself).
OPTIONAL_SOURCES = {
    "landing.users": lambda cfg: cfg.landing_dir.glob("users/*.parquet"),
    "landing.products": lambda cfg: cfg.landing_dir.glob("products/*.parquet"),
    "landing.coupon_sends": lambda cfg: cfg.landing_dir.glob("coupon_sends/*/*.parquet"),
    "ml.score_reasons": lambda cfg: cfg.reasons_dir.glob("*/*.parquet"),
    "ml.model_monitoring": lambda cfg: cfg.monitoring_dir.glob("*/*.parquet"),
    "ml.clusters": lambda cfg: cfg.clusters_dir.glob("*/*.parquet"),
    "ml.cluster_profiles": lambda cfg: cfg.cluster_profiles_dir.glob("*/*.parquet"),
    "ml.segment_forecasts": lambda cfg: cfg.forecasts_dir.glob("*/*.parquet"),
}


def dbt_env(
    cfg: Settings | None = None, dbt_vars: dict[str, object] | None = None, keep_open: bool = False
) -> dict[str, str]:
    """The environment of a dbt call: the project's paths, and the day vars of `dbt_vars` (none: an empty set,
    so a value left in the caller's environment never reaches a build).

    `keep_open`: dbt opens the warehouse once for the whole call instead of once per model and test (each open
    reads the catalog, each close checkpoints: a quarter of a small daily build). Only for a call that closes it
    after itself: `run_dbt`'s process exits, `run_dbt_in_process` closes it, and every DAG task closes it right
    after its work, before its success is reported (`close_dbt_warehouse`), so the next task can open the
    warehouse (read-only, in the same `dag.test` process or in another).
    """
    cfg = cfg or settings()
    env = dict(os.environ)
    env.update(
        {
            "SHOP_WAREHOUSE_PATH": str(cfg.warehouse_path),
            "SHOP_LANDING_DIR": str(cfg.landing_dir),
            "SHOP_SCORES_DIR": str(cfg.scores_dir),
            "SHOP_TARGETS_DIR": str(cfg.targets_dir),
            "SHOP_REASONS_DIR": str(cfg.reasons_dir),
            "SHOP_MONITORING_DIR": str(cfg.monitoring_dir),
            "SHOP_CLUSTERS_DIR": str(cfg.clusters_dir),
            "SHOP_CLUSTER_PROFILES_DIR": str(cfg.cluster_profiles_dir),
            "SHOP_FORECASTS_DIR": str(cfg.forecasts_dir),
            "SHOP_EVALUATIONS_DIR": str(cfg.evaluations_dir),
            "SHOP_AUDIT_DIR": str(cfg.audit_dir),
            "DBT_PROFILES_DIR": str(cfg.dbt_project_dir),
            # dbt's partial-parse check hashes the profile and target named on the command line (or here) with
            # the vars: named the same way as the DAG's Cosmos tasks name them, every call reuses one parse.
            "DBT_PROFILE": DBT_PROFILE,
            "DBT_TARGET": dbt_target(cfg),
            "SHOP_SPARK_WAREHOUSE_DIR": str(cfg.spark_dir / "warehouse"),
            "SHOP_SPARK_METASTORE_DIR": str(cfg.spark_dir / "metastore"),
            "DBT_PROJECT_DIR": str(cfg.dbt_project_dir),
            "DO_NOT_TRACK": "1",
            "DBT_USE_COLORS": "false",
            # A test runs when its models are built (or are upstream of what is built): a test that
            # joins features to targeting must not run in a features-only build.
            "DBT_INDIRECT_SELECTION": "buildable",
            # Unit tests check the SQL on fixed rows: nothing in them changes from day to day, so the daily and
            # history builds leave them out (a fifth of the small test shop's history build); `make test` runs them all
            # (tests/e2e/test_closed_loop.py), and so does a `dbt build` by hand.
            "DBT_EXCLUDE_RESOURCE_TYPES": "unit_test",
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "SHOP_DBT_KEEP_OPEN": str(keep_open).lower(),
            "SHOP_DBT_SOURCES_WITH_FILES": ",".join(
                name for name, files in OPTIONAL_SOURCES.items() if cfg.engine == "spark" and next(files(cfg), None)
            ),
            DAY_VARS_ENV: json.dumps({k: str(v) for k, v in (dbt_vars or {}).items() if k in DAY_VARS}, sort_keys=True),
        }
    )
    return env


def dbt_executable() -> str:
    candidate = Path(sys.executable).parent / "dbt"
    return str(candidate) if candidate.exists() else "dbt"


def run_dbt(
    args: list[str], dbt_vars: dict[str, object] | None = None, cfg: Settings | None = None, echo: bool = True
) -> str:
    """Run `dbt ARGS` in the project; raise DbtError with the failing part of the log.

    `echo`: stream dbt's output to stderr as it comes (off for `dbt ls`, whose output is data).
    """
    if _IN_THIS_PROCESS and echo:
        return run_dbt_in_process(args, dbt_vars, cfg)
    cfg = cfg or settings()
    command = [dbt_executable(), *_dbt_arguments(args, dbt_vars, cfg)]
    # Stream dbt's log as it goes (a long build shows its progress), keep it for the error message.
    lines: list[str] = []
    with subprocess.Popen(
        command,
        env=dbt_env(cfg, dbt_vars, keep_open=True),
        cwd=cfg.dbt_project_dir,
        # dbt reads nothing from stdin: it never inherits the caller's (in a pytest-xdist worker, its channel).
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=die_with_parent,
    ) as process:
        try:
            for line in process.stdout:
                if echo:
                    print(line, end="", file=sys.stderr, flush=True)
                lines.append(line.rstrip("\n"))
        except BaseException:  # Ctrl-C, SIGTERM (ml.cli), an Airflow task being stopped: stop dbt too
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
            raise
    if process.returncode != 0:
        raise _dbt_failure(args, f"exit {process.returncode}", lines)
    return "\n".join(lines)


def _dbt_arguments(args: list[str], dbt_vars: dict[str, object] | None, cfg: Settings) -> list[str]:
    """`args` for the project, with the vars but the day's (dbt_env); the warehouse's folder made (dbt-duckdb
    does not create it)."""
    cfg.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    command = [*args, "--project-dir", str(cfg.dbt_project_dir)]
    steady = {key: value for key, value in (dbt_vars or {}).items() if key not in DAY_VARS}
    if steady:
        command += ["--vars", json.dumps(steady, default=str, sort_keys=True)]
    return command


_EXIT_NOISE = re.compile(r"^(nanobind: |\s*- leaked |\s*- \.\.\. skipped remainder|See https://nanobind)")


def _dbt_failure(args: list[str], how: str, lines: list[str]) -> DbtError:
    """The error for a failed dbt command: its failing lines, then the end of its log."""
    # DuckDB's Python binding can print reference-leak reports as the process exits; they would push dbt's
    # own message out of the tail.
    lines = [line for line in lines if not _EXIT_NOISE.match(line)]
    failing = [line for line in lines if "ERROR" in line or "FAIL" in line or "Error" in line]
    tail = "\n".join(failing[-15:] + ["..."] + lines[-15:])
    return DbtError(f"dbt {' '.join(args)} failed ({how}):\n{tail}")


_IN_THIS_PROCESS: list[bool] = []


@contextmanager
def dbt_in_this_process() -> Iterator[None]:
    """Run the block's dbt builds inside this process (dbt's programmatic runner) instead of one process each.

    For a long series of builds (the closed loop: three a day): each saves a process start and dbt's imports,
    about 2-3 s. Airflow tasks do the same through Cosmos.
    """
    _IN_THIS_PROCESS.append(True)
    try:
        yield
    finally:
        _IN_THIS_PROCESS.pop()


def run_dbt_in_process(args: list[str], dbt_vars: dict[str, object] | None = None, cfg: Settings | None = None) -> str:
    """`dbt ARGS` in this process through dbt's programmatic runner; raise DbtError as `run_dbt` does.

    For Airflow tasks: Cosmos runs the model tasks the same way, so the worker has dbt loaded already, and this
    saves starting a process and importing dbt again (about 4 s of an 8 s check at 200k users). The project's
    environment is set for the call and restored after it.
    """
    from dbt.cli.main import dbtRunner

    cfg = cfg or settings()
    command = _dbt_arguments(args, dbt_vars, cfg)
    lines: list[str] = []

    def keep(event) -> None:  # dbt's log lines at info and above, for the error message and the task log
        if event.info.level in ("info", "warn", "error"):
            lines.append(event.info.msg)

    env = {key: value for key, value in dbt_env(cfg, dbt_vars, keep_open=True).items() if os.environ.get(key) != value}
    saved = {key: os.environ.get(key) for key in env}
    cwd = os.getcwd()
    os.environ.update(env)
    os.chdir(cfg.dbt_project_dir)
    try:
        with redirect_stdout(sys.stderr):  # dbt prints its log: stdout carries a command's results (`ml loop`)
            result = dbtRunner(callbacks=[keep]).invoke(command)
    finally:
        try:
            close_dbt_warehouse()
        finally:  # the caller's directory and environment come back whatever closing did
            os.chdir(cwd)
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    if not result.success:
        raise _dbt_failure(args, f"in process: {result.exception}" if result.exception else "in process", lines)
    return "\n".join(lines)


def close_dbt_warehouse() -> None:
    """Close the warehouse a `keep_open` call left open in this process (dbt-duckdb keeps one per process), so
    the next step can open it in another mode, and another process can open it at all. Nothing to do (and
    nothing imported) in a process that never ran dbt."""
    if "dbt.adapters.duckdb.connections" not in sys.modules:
        return
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    try:
        environment = DuckDBConnectionManager.env()
    except Exception:  # dbt failed before it opened the warehouse: nothing to close
        return
    try:
        environment.close()
    finally:  # dbt opens a fresh one next time, even if this one failed to close
        DuckDBConnectionManager.close_all_connections()


def die_with_parent() -> None:
    """In a child process (preexec_fn): get SIGTERM when the process that started it dies, even by SIGKILL.

    Linux only (PR_SET_PDEATHSIG); libc is loaded at import, so nothing is imported between fork and exec.
    """
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
