"""docker-compose.yml, checked as far as a machine without a Docker engine allows (part of `make test`).

The file is validated against the Compose specification (the compose-spec parser), then for what the
spec cannot see: start order, one image built from the lock alone, secrets required, checked first and
documented, no password written anywhere, init commands that the CLI accepts. `make test-deploy` runs the
same topology for real, without containers.
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
SECRETS = set(COMPOSE["x-secret-names"])
# Files that hold connection strings or make the database roles: none may carry a password.
CONFIG_FILES = [
    ROOT / "docker-compose.yml",
    ROOT / ".env.example",
    *(ROOT / "mlflow" / name for name in ("README.md", "basic_auth.ini", "init-databases.sh")),
]


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
    assert {"AIRFLOW_DB_PASSWORD", "MLFLOW_DB_PASSWORD", "MLFLOW_ADMIN_PASSWORD", "AIRFLOW_VIEWER_PASSWORD"} <= required
    documented = set(re.findall(r"^#?\s*(\w+)=", (ROOT / ".env.example").read_text(), flags=re.M))
    assert required <= documented, required - documented


def test_the_services_share_one_secret_and_the_analysts_data_is_on_the_host():
    airflow = [s for n, s in SERVICES.items() if n.startswith("airflow-")]
    assert len({s["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"] for s in airflow}) == 1
    for name in ("shop-init", "airflow-scheduler"):
        assert "./data:/opt/shop/data" in SERVICES[name]["volumes"], name


def test_the_init_commands_are_ones_the_cli_accepts():
    from ml.__main__ import build_parser

    commands = {
        "shop-init": SERVICES["shop-init"]["command"],
        "check-secrets": SERVICES["check-secrets"]["command"],
        "mlflow-accounts": SERVICES["mlflow-accounts"]["command"],
        "airflow-init": SERVICES["airflow-init"]["command"].split("&&")[-1].strip().rstrip('"'),
    }
    expected = {"shop-init": "bootstrap", "check-secrets": "check-secrets"}
    expected |= {"mlflow-accounts": "accounts", "airflow-init": "accounts"}
    for service, command in commands.items():
        argv = shlex.split(command)
        assert argv[:3] == ["python", "-m", "ml"], service
        assert build_parser().parse_args(argv[3:]).command == expected[service], service


def interpolate(text: str, env: dict[str, str]) -> str:
    """What compose does with `${NAME:?message}`, `${NAME:-default}` and `${NAME}`: refuses a missing required one."""

    def value(match: re.Match) -> str:
        name, form, rest = match.group(1), match.group(2) or "", match.group(3) or ""
        if env.get(name):
            return env[name]
        if form == ":?":
            raise ValueError(f"required variable {name} is missing a value: {rest}")
        return rest if form == ":-" else ""

    return re.sub(r"\$\{(\w+)(:\?|:-)?([^}]*)\}", value, text)


def secrets_check_of(text: str, env: dict[str, str]) -> list[str]:
    """Compose's first step on `text` with `env` as .env: the refusals of its `check-secrets` command."""
    from ml.deploy.secret_check import secret_problems

    service = yaml.safe_load(interpolate(text, env))["services"]["check-secrets"]
    return secret_problems(shlex.split(service["command"])[4:], service["environment"])


def random_secrets() -> dict[str, str]:
    import secrets

    return {name: secrets.token_urlsafe(32) for name in SECRETS}


def test_every_secret_is_required_and_none_has_a_default():
    assert len(SECRETS) >= 15
    references = re.findall(r"\$\{(\w+)([^}]*)\}", COMPOSE_TEXT)
    secret_like = {name for name, _ in references if re.search(r"PASSWORD|SECRET|_KEY$", name)}
    assert secret_like <= SECRETS, secret_like - SECRETS  # every secret goes through the check
    for name, rest in references:
        if name in SECRETS:
            assert rest.startswith(":?"), f"${{{name}{rest}}}: a secret is required, never defaulted"
    assert not re.search(r"\$\{\w*(PASSWORD|SECRET|KEY)\w*:?-", COMPOSE_TEXT)


def test_no_connection_string_or_init_file_carries_a_password():
    # scheme://user:password@host: only a user may stand before the @ (the password comes from PGPASSWORD).
    password_in_uri = re.compile(r"\w+://[^/\s:@]+:[^@\s/]*@")
    assert password_in_uri.search("postgresql+psycopg2://airflow:airflow@postgres:5432/airflow")
    assert not password_in_uri.search("postgresql+psycopg2://airflow@postgres:5432/airflow")
    for path in CONFIG_FILES:
        # As compose reads it: a password interpolated into a connection string counts too.
        text = interpolate(path.read_text(), random_secrets()) if path.suffix == ".yml" else path.read_text()
        assert not password_in_uri.search(text), path.name
        assert not re.search(r"PASSWORD\s+'", text, flags=re.I), f"{path.name} writes a role's password literally"


def test_the_secrets_check_runs_first_on_every_secret():
    argv = shlex.split(SERVICES["check-secrets"]["command"])
    assert argv[:4] == ["python", "-m", "ml", "check-secrets"] and set(argv[4:]) == SECRETS
    assert set(SERVICES["check-secrets"]["environment"]) == SECRETS
    assert "depends_on" not in SERVICES["check-secrets"]

    def waits_for_the_check(name: str) -> bool:
        after = set(SERVICES[name].get("depends_on") or {})
        return "check-secrets" in after or any(waits_for_the_check(other) for other in after)

    assert all(waits_for_the_check(name) for name in SERVICES if name != "check-secrets")


def test_compose_with_a_default_or_short_secret_is_refused_naming_it():
    assert secrets_check_of(COMPOSE_TEXT, random_secrets()) == []
    for value, why in [("airflow", "7 characters"), ("change-me-change-me", "well-known default")]:
        problems = secrets_check_of(COMPOSE_TEXT, {**random_secrets(), "AIRFLOW_DB_PASSWORD": value})
        assert len(problems) == 1 and problems[0].startswith("AIRFLOW_DB_PASSWORD: ") and why in problems[0]
        assert value not in problems[0]  # never echoed
    with pytest.raises(ValueError, match="MLFLOW_ADMIN_PASSWORD"):
        interpolate(COMPOSE_TEXT, {k: v for k, v in random_secrets().items() if k != "MLFLOW_ADMIN_PASSWORD"})


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (None, "not set"),
        ("", "not set"),
        ("short-secret", "12 characters; at least 16"),
        ("Password1234567890", "well-known default"),
        ("postgrespostgres", "well-known default"),
        ("abababababababababab", "different characters"),
    ],
)
def test_the_check_secrets_command_refuses_a_bad_secret_in_one_line_naming_it(monkeypatch, capsys, value, why):
    from ml.__main__ import main

    monkeypatch.setenv("GOOD_SECRET", "hK2vQ9-xT4pLm8Zr_Wc3Nd")
    if value is None:
        monkeypatch.delenv("BAD_SECRET", raising=False)
    else:
        monkeypatch.setenv("BAD_SECRET", value)
    assert main(["check-secrets", "GOOD_SECRET", "BAD_SECRET"]) != 0
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1, err
    assert err.startswith("error: BAD_SECRET: ") and why in err and "GOOD_SECRET" not in err, err
    assert main(["check-secrets", "GOOD_SECRET"]) == 0
