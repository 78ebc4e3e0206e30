#!/bin/bash
# Separate databases (and roles) for Airflow's and MLflow's metadata, never shared, and one for MLflow's
# accounts. Postgres' image runs this once, on an empty volume, with the container's environment: the role
# passwords come from the secrets (.env), never from this file. `make test-deploy` runs it the same way.
set -eo pipefail
: "${AIRFLOW_DB_PASSWORD:?set AIRFLOW_DB_PASSWORD}" "${MLFLOW_DB_PASSWORD:?set MLFLOW_DB_PASSWORD}"
# \getenv keeps the passwords off every command line; psql quotes them as literals (:'name').
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres <<'SQL'
\getenv airflow_password AIRFLOW_DB_PASSWORD
\getenv mlflow_password MLFLOW_DB_PASSWORD
CREATE USER airflow WITH PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow;
CREATE USER mlflow WITH PASSWORD :'mlflow_password';
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE mlflow_auth OWNER mlflow;
SQL
