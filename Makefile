# The e-commerce behaviour warehouse. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

ROOT := $(abspath .)
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(ROOT)/.tools/bin/uv)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
AIRFLOW := $(VENV)/bin/airflow
DBT := $(VENV)/bin/dbt

export UV_PYTHON_DOWNLOADS := never
# Airflow standalone starts its components by the bare name `airflow`: the project's environment comes first.
export PATH := $(VENV)/bin:$(PATH)
export AIRFLOW_HOME ?= $(ROOT)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(ROOT)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN ?= sqlite:///$(AIRFLOW_HOME)/airflow.db
export AIRFLOW__COSMOS__ENABLE_TELEMETRY := False
export AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT := 120
export DO_NOT_TRACK := 1
export MLFLOW_UV_AUTO_DETECT := false
export MLFLOW_LOG_UV_FILES := false
export SHOP_DBT_PROJECT_DIR := $(ROOT)/dbt_project
export DBT_PROFILES_DIR := $(ROOT)/dbt_project
MLFLOW_PORT ?= 5000
AIRFLOW_PORT ?= 8080
DBT_DOCS_PORT ?= 8081
LAST_DAYS ?= 3

.PHONY: help setup setup-spark run test test-faults test-deploy test-spark lint format bench bench-spark bench-drift airflow airflow-init mlflow dbt-docs dbt-parse clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(UV):
	@echo "uv not found: installing it into .tools/"
	$(PYTHON) -m pip install --quiet --target $(ROOT)/.tools/lib uv
	@mkdir -p $(ROOT)/.tools/bin && ln -sf $(ROOT)/.tools/lib/bin/uv $(ROOT)/.tools/bin/uv

# --compile-bytecode: every dbt, Airflow and MLflow process imports from .pyc files (about 20 s once here),
# even where PYTHONDONTWRITEBYTECODE keeps Python from caching them (then each process compiled its imports:
# 6 s of a 12 s scoring task at 200k users).
$(VENV)/.synced: pyproject.toml uv.lock Makefile | $(UV)
	$(UV) sync --locked --compile-bytecode --python $(PYTHON)
	@touch $@

setup: $(VENV)/.synced dbt-parse ## Install uv if missing, then the locked environment; parse the dbt project

dbt-parse: $(VENV)/.synced ## Write dbt_project/target/manifest.json (the DAG renders dbt models from it)
	@cd dbt_project && $(DBT) parse --quiet --profile shop_warehouse --target local  # as the pipeline calls dbt: one parse

airflow-init: setup ## Create the Airflow metadata database and the single-slot warehouse pool
	@mkdir -p $(AIRFLOW_HOME)
	@$(AIRFLOW) db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || (tail -20 $(AIRFLOW_HOME)/db-migrate.log; exit 1)
	@$(AIRFLOW) pools set warehouse 1 "Tasks that open the DuckDB warehouse (one writer at a time)" > /dev/null

run: airflow-init ## Simulate the default shop, build history, run the DAG for the last 3 days, print a summary
	@start=$$(date +%s); \
	$(PY) -m ml simulate && \
	days=$$($(PY) -m ml history --keep-last $(LAST_DAYS)) && \
	for day in $$days; do \
		echo "== shop_daily for $$day"; \
		SHOP_TASK_RETRIES=0 SHOP_SOURCE=simulate $(AIRFLOW) dags test shop_daily -c "{\"run_date\": \"$$day\"}" \
			> $(AIRFLOW_HOME)/dags-test-$$day.log 2>&1 \
			|| { tail -40 $(AIRFLOW_HOME)/dags-test-$$day.log; echo "DAG run for $$day failed; log: $(AIRFLOW_HOME)/dags-test-$$day.log"; exit 1; }; \
	done && \
	$(PY) -m ml summary && echo "make run took $$(( $$(date +%s) - start ))s"

# Two pytest workers, one test file at a time each (a module fixture is built once): most tests wait on one dbt,
# Airflow or XGBoost process at a time, so two cores nearly halve the wall time.
TEST_WORKERS ?= 2
test: setup ## Run the test suite (real dbt, DuckDB, MLflow and Airflow runs on small shops, own Airflow home)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25

# The Spark engine's environment is its own (.venv-spark): `make setup` syncs .venv exactly, which would remove the
# spark group's packages from it each time.
SPARK_VENV := $(ROOT)/.venv-spark
$(SPARK_VENV)/.synced: pyproject.toml uv.lock Makefile | $(UV)
	UV_PROJECT_ENVIRONMENT=$(SPARK_VENV) $(UV) sync --locked --compile-bytecode --group spark --python $(PYTHON)
	@touch $@

setup-spark: $(SPARK_VENV)/.synced ## The Spark engine (SHOP_ENGINE=spark): pyspark and dbt-spark in .venv-spark; checks Java 17+
	@version=$$(java -version 2>&1 | awk -F'"' '/version/ {print $$2}' | cut -d. -f1); \
	if [ -z "$$version" ] || [ "$$version" -lt 17 ]; then \
		echo "Spark needs Java 17 or newer (found: $${version:-no java}). Debian/Ubuntu: apt-get install openjdk-17-jre-headless;" \
			"elsewhere a JDK 17+ from your package manager, with JAVA_HOME set or java on PATH"; exit 1; fi

test-spark: setup-spark ## The same dbt project on Spark local mode and on DuckDB, compared row for row (docs/spark.md)
	$(SPARK_VENV)/bin/python -m pytest -m spark tests/spark --durations=5

test-faults: setup ## SIGKILL ingest, publish, history, land-day, a dbt build, score and targeting at 34 seeded points; each rerun must equal an uninterrupted run
	$(PY) -m pytest -m faults tests/faults

test-deploy: setup ## The production topology on this machine: Postgres, MLflow server, Airflow scheduler and API server; one scheduled day
	$(PY) -m pytest -m deploy tests/deploy

lint: setup ## ruff check and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup ## ruff fix and format
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: airflow-init ## Benchmarks on a simulated shop (SHOP_BENCH_USERS, SHOP_BENCH_DAYS): history, days 60/180/last, Airflow day, training
	$(PY) -m ml.bench

bench-spark: setup-spark ## A day on Spark local mode (1 and 2 cores) against DuckDB on one shop (SHOP_BENCH_SPARK_USERS x SHOP_BENCH_SPARK_DAYS, default 200k x 110)
	$(SPARK_VENV)/bin/python -m ml.bench.spark

bench-drift: setup ## The monitor against an injected drift: days to alert, AUC with and without retraining on alerts
	$(PY) -m ml.bench.drift

airflow: airflow-init ## Start Airflow standalone on :$(AIRFLOW_PORT) with the DAG and pool ready
	@echo "Airflow UI: http://localhost:$(AIRFLOW_PORT)  (user 'admin'; password in $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated)"
	AIRFLOW__API__PORT=$(AIRFLOW_PORT) $(AIRFLOW) standalone

mlflow: setup ## Open the MLflow UI on the local tracking store (http://localhost:$(MLFLOW_PORT))
	@mkdir -p mlflow/artifacts
	$(VENV)/bin/mlflow server --backend-store-uri sqlite:///$(ROOT)/mlflow/mlflow.db \
		--default-artifact-root $(ROOT)/mlflow/artifacts --host 127.0.0.1 --port $(MLFLOW_PORT)

dbt-docs: setup ## Generate and serve the dbt docs (http://localhost:$(DBT_DOCS_PORT))
	cd dbt_project && $(DBT) docs generate && $(DBT) docs serve --port $(DBT_DOCS_PORT) --no-browser

clean: ## Remove generated data, the Airflow home and dbt build output (keeps the environment)
	rm -rf data .airflow .airflow-test dbt_project/target dbt_project/logs mlflow/mlflow.db mlflow/artifacts
