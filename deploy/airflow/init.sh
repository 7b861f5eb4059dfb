#!/usr/bin/env bash
# airflow-init: what the other Airflow services need before they start. Every step is idempotent, so
# `docker compose up airflow-init` may be re-run after an upgrade.
set -euo pipefail

echo "== airflow db migrate + admin user (the image's entrypoint: _AIRFLOW_DB_MIGRATE, _AIRFLOW_WWW_USER_CREATE)"
/entrypoint airflow version

echo "== dialer role and database"
python /opt/airflow/deploy/airflow/ensure_dialer_db.py

echo "== pool genesys_api (create_segment's concurrency against the Genesys Cloud API)"
airflow pools set genesys_api 5 "Genesys Cloud API calls: create_segment and other rate-limited requests"

echo "== dialer schema (connection dialer_postgres from AIRFLOW_CONN_DIALER_POSTGRES)"
genesys-dialer apply-schema

echo "== connections come from the environment (AIRFLOW_CONN_GENESYS_DEFAULT, AIRFLOW_CONN_DIALER_POSTGRES)"
airflow connections get genesys_default -o json >/dev/null \
  || { echo "AIRFLOW_CONN_GENESYS_DEFAULT is missing or invalid (see .env.example)" >&2; exit 1; }
echo "airflow-init done"
