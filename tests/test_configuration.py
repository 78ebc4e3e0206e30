"""docs/configuration.md against the code: every variable read is documented, with the default the code uses."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from ml.config import PROJECT_ROOT, Settings, settings

DOC = PROJECT_ROOT / "docs" / "configuration.md"
# Where the code reads settings: the package, the DAG, and dbt's env_var() calls.
SOURCES = [*PROJECT_ROOT.glob("ml/**/*.py"), *PROJECT_ROOT.glob("dags/*.py"), *PROJECT_ROOT.glob("dbt_project/*.yml")]


def documented() -> dict[str, str]:
    rows = re.findall(r"^\| `((?:SHOP|MLFLOW)_[A-Z_]+)` \| `([^`]*)` \|", DOC.read_text(), flags=re.M)
    return dict(rows)


def read_in_code() -> set[str]:
    names = set()
    for path in SOURCES:
        names |= set(re.findall(r"\b(SHOP_[A-Z][A-Z_]*[A-Z])\b", path.read_text()))
    return names


def test_every_variable_the_code_reads_is_documented_once():
    rows = re.findall(r"^\| `((?:SHOP|MLFLOW)_[A-Z_]+)` \|", DOC.read_text(), flags=re.M)
    assert len(rows) == len(set(rows)), "a variable is documented twice"
    assert set(documented()) == set(rows), "every row gives its default in backticks (`unset` when there is none)"
    assert read_in_code() - set(rows) == set(), "read by the code, missing from docs/configuration.md"
    assert set(rows) - read_in_code() - {"MLFLOW_TRACKING_URI"} == set(), "documented, read nowhere"


def test_documented_defaults_are_the_settings_defaults(monkeypatch):
    import os

    for name in [n for n in os.environ if n.startswith("SHOP_") or n == "MLFLOW_TRACKING_URI"]:
        monkeypatch.delenv(name)
    defaults = settings()
    docs = documented()
    checked = 0
    for field in fields(Settings):
        name = f"SHOP_{field.name.upper()}"
        if name not in docs:
            continue
        value, doc = getattr(defaults, field.name), docs[name]
        if doc == "unset":
            assert value is None, name
        elif isinstance(value, Path):
            assert value == (PROJECT_ROOT / doc).resolve(), name
        elif isinstance(value, bool):
            assert str(value).lower() == doc, f"{name}: the code's default is {value!r}, the docs say {doc!r}"
        elif isinstance(value, tuple):  # a comma-separated list
            assert ",".join(value) == doc, f"{name}: the code's default is {value!r}, the docs say {doc!r}"
        elif isinstance(value, int | float):
            assert float(doc) == value, f"{name}: the code's default is {value!r}, the docs say {doc!r}"
        else:
            assert value == doc, f"{name}: the code's default is {value!r}, the docs say {doc!r}"
        checked += 1
    assert checked >= 30
    assert defaults.mlflow_dir == PROJECT_ROOT / docs["SHOP_MLFLOW_DIR"]
    assert defaults.mlflow_tracking_uri == f"sqlite:///{PROJECT_ROOT / 'mlflow' / 'mlflow.db'}"


def test_defaults_read_outside_settings_match_the_docs():
    """The DAG's retries, dbt's memory limit and the bench's shop: read where they are used."""
    docs = documented()
    code = "\n".join(path.read_text() for path in SOURCES)
    outside = {name for name in docs if name.startswith("SHOP_") and name.lower()[5:] not in Settings.__annotations__}
    # Read without a default: a secret (no default by design), and what the pipeline itself sets for each dbt call.
    no_default = {"SHOP_PSEUDONYM_KEY", "SHOP_DBT_DAY_VARS", "SHOP_DBT_SOURCES_WITH_FILES"}
    assert {docs[name] for name in no_default} == {"unset"}
    read_otherwise = {"SHOP_MLFLOW_DIR", "SHOP_ACTOR", "SHOP_BENCH_DIR", "SHOP_BENCH_REUSE", "SHOP_BENCH_SKIP"}
    for name in outside - read_otherwise - no_default:
        found = re.findall(rf"""(?:get|env_var)\(\s*["']{name}["'],\s*["']([^"']*)["']""", code)
        assert found and set(found) == {docs[name]}, f"{name}: the code says {found}, the docs {docs[name]!r}"


def test_dbt_gets_every_shared_window_and_setting_from_python_and_its_defaults_agree(monkeypatch):
    """dbt_project.yml's vars are what `dbt` by hand uses; every pipeline run passes Python's (ml.warehouse.builds)."""
    import os

    import yaml

    from ml.config import COUPON_WINDOW_DAYS, LABEL_HORIZON_DAYS
    from ml.warehouse.builds import as_of_vars

    for name in [n for n in os.environ if n.startswith("SHOP_")]:
        monkeypatch.delenv(name)
    dbt_defaults = yaml.safe_load((PROJECT_ROOT / "dbt_project" / "dbt_project.yml").read_text())["vars"]
    passed = as_of_vars(None)
    assert passed["label_horizon_days"] == LABEL_HORIZON_DAYS and passed["coupon_window_days"] == COUPON_WINDOW_DAYS
    assert {name: dbt_defaults[name] for name in passed} == passed
