"""dbt's unit tests, run as a person runs them (`dbt test --select test_type:unit`): the pipeline's own builds
leave them out (ml.warehouse.dbt_runner.dbt_env), so the tests run them here."""

from __future__ import annotations

import subprocess

from ml.config import settings
from ml.warehouse.dbt_runner import dbt_env, dbt_executable


def run_unit_tests(select: str = "test_type:unit") -> subprocess.CompletedProcess:
    """The unit tests `select` picks (default: all) of the project `SHOP_DBT_PROJECT_DIR` names, against the
    warehouse the environment points at: dbt reads the column types of the models they stand in for from it, so
    those models must exist there."""
    cfg = settings()
    env = dbt_env(cfg)
    assert env.pop("DBT_EXCLUDE_RESOURCE_TYPES") == "unit_test"
    return subprocess.run(
        [dbt_executable(), "test", "--select", select],
        env=env,
        cwd=cfg.dbt_project_dir,
        capture_output=True,
        text=True,
    )
