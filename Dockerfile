# The Airflow image for the Genesys dialer: the official image (pinned) + this project installed as a package
# (genesys_dialer plugin code and the genesys-dialer CLI, pinned by requirements.lock) + the DAGs and config.
FROM apache/airflow:3.3.2-python3.11

# Only what the package build needs: keeps .venv, .git and tests out of the image layer.
COPY --chown=airflow:0 pyproject.toml README.md requirements.lock /opt/airflow/src/
COPY --chown=airflow:0 plugins/ /opt/airflow/src/plugins/
COPY --chown=airflow:0 include/ /opt/airflow/src/include/

# The versions the suite last passed with (requirements.lock), Airflow itself pinned to the base image's.
RUN pip install --no-cache-dir -c /opt/airflow/src/requirements.lock "apache-airflow==3.3.2" /opt/airflow/src

# DAG files and the campaign config (dags/campaigns.yaml, read through GENESYS_DIALER_CONFIG).
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
# airflow-init's scripts (also bind-mounted by docker-compose.yaml so edits need no rebuild).
COPY --chown=airflow:0 deploy/airflow/ /opt/airflow/deploy/airflow/

ENV GENESYS_DIALER_CONFIG=/opt/airflow/dags/campaigns.yaml
