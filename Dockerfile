# The Airflow image for the Genesys dialer: the official image (pinned) + this project installed as a package
# (genesys_dialer plugin code, the genesys-dialer CLI, the Genesys emulator) + the DAGs and campaign config.
FROM apache/airflow:3.3.2-python3.11

# Only what the package build needs: keeps .venv, .git and tests out of the image layer.
COPY --chown=airflow:0 pyproject.toml README.md /opt/airflow/src/
COPY --chown=airflow:0 plugins/ /opt/airflow/src/plugins/
COPY --chown=airflow:0 genesys_emulator/ /opt/airflow/src/genesys_emulator/
COPY --chown=airflow:0 include/ /opt/airflow/src/include/

# Pin Airflow itself so pip cannot move it while resolving the project's dependencies.
RUN pip install --no-cache-dir "apache-airflow==3.3.2" /opt/airflow/src

# DAG files and the campaign config (dags/campaigns.yaml, read through GENESYS_DIALER_CONFIG).
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
# airflow-init's scripts (also bind-mounted by docker-compose.yaml so edits need no rebuild).
COPY --chown=airflow:0 deploy/airflow/ /opt/airflow/deploy/airflow/

ENV GENESYS_DIALER_CONFIG=/opt/airflow/dags/campaigns.yaml
