"""docker-compose.yml, checked as far as a machine without a Docker engine allows (part of `make test`).

The file is validated against the Compose specification (the compose-spec parser), then for what the
spec cannot see: start order, one image built from the lock alone, secrets documented, init commands
that the CLI accepts. `make test-deploy` runs the same topology for real, without containers.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)  # resolves the x- anchors and `<<` merges as compose does
SERVICES = COMPOSE["services"]
IMAGE = "shop-warehouse:local"


def test_the_file_follows_the_compose_specification():
    from compose_spec import PyCompose

    parsed = PyCompose.from_json(json.dumps(COMPOSE))
    assert set(parsed.service_names()) == set(SERVICES)


def test_the_validator_rejects_what_compose_would():
    from compose_spec import PyCompose

    broken = json.loads(json.dumps(COMPOSE))
    broken["services"]["airflow-scheduler"]["depends_on"]["mlflow"]["condition"] = "service_ready"
    with pytest.raises(ValueError, match="service_ready"):
        PyCompose.from_json(json.dumps(broken))


def test_every_dependency_exists_and_can_satisfy_its_condition():
    for name, service in SERVICES.items():
        for other, rule in (service.get("depends_on") or {}).items():
            assert other in SERVICES, f"{name} depends on unknown service {other}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[other], (
                    f"{name} waits for {other} to be healthy: it has no healthcheck"
                )
            if rule["condition"] == "service_completed_successfully":
                assert SERVICES[other].get("restart", "no") == "no", f"{other} is a one-off step: it must not restart"
    scheduler = SERVICES["airflow-scheduler"]["depends_on"]
    # The first scheduled day needs history, a migrated database, the tracking server and the execution API.
    assert {"shop-init", "airflow-init", "mlflow", "airflow-apiserver"} <= set(scheduler)
    long_running = [n for n, s in SERVICES.items() if s.get("restart") == "unless-stopped"]
    assert all("healthcheck" in SERVICES[n] for n in long_running), long_running


def test_one_image_built_from_the_lock_and_nothing_else():
    ours = {name: s for name, s in SERVICES.items() if name != "postgres"}
    assert {s["image"] for s in ours.values()} == {IMAGE}
    dockerfiles = {s["build"]["dockerfile_inline"] for s in ours.values()}
    assert len(dockerfiles) == 1
    dockerfile = dockerfiles.pop()
    installs = [line for line in dockerfile.splitlines() if re.search(r"\b(pip|uv)\b.*\b(install|sync|add)\b", line)]
    # uv itself (pinned), then exactly the locked environment: the image's Python packages equal uv.lock.
    assert installs[0].strip() == "RUN pip install --no-cache-dir uv==0.13.9", installs
    assert [line.strip() for line in installs[1:]] == ["RUN uv sync --locked --no-dev"], installs
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "data", ".airflow", "mlflow/mlflow.db", ".env"} <= set(ignored)  # never copied over the image's


def test_the_lock_holds_the_postgres_drivers_the_services_use():
    lock = (ROOT / "uv.lock").read_text()
    for package in ("psycopg2-binary", "asyncpg"):  # sync metadata access, and Airflow's async engine
        assert f'name = "{package}"' in lock


def test_every_required_secret_is_documented_in_env_example():
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE_TEXT))
    assert {"AIRFLOW_JWT_SECRET", "AIRFLOW_FERNET_KEY", "POSTGRES_PASSWORD", "SHOP_PSEUDONYM_KEY"} <= required
    documented = set(re.findall(r"^#?\s*(\w+)=", (ROOT / ".env.example").read_text(), flags=re.M))
    assert required <= documented, required - documented


def test_the_services_share_one_secret_and_the_analysts_data_is_on_the_host():
    airflow = [s for n, s in SERVICES.items() if n.startswith("airflow-")]
    assert len({s["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"] for s in airflow}) == 1
    for name in ("shop-init", "airflow-scheduler"):
        assert "./data:/opt/shop/data" in SERVICES[name]["volumes"], name


def test_the_init_command_is_one_the_cli_accepts():
    from ml.__main__ import build_parser

    argv = shlex.split(SERVICES["shop-init"]["command"])
    assert argv[:3] == ["python", "-m", "ml"]
    assert build_parser().parse_args(argv[3:]).command == "bootstrap"
