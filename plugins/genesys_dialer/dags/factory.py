"""The DAG entry point: one DAG per campaign of the config file, for a two-line file in a DAGs folder::

    from genesys_dialer.dags.factory import campaign_dags
    globals().update(campaign_dags(__file__))  # airflow DAG file

Parsing reads one YAML file and touches no database, Variable or network. An invalid campaign entry does not
take the valid ones down: it becomes a DAG of its own (under the campaign's dag_id when its key is usable) that
claims and sends nothing and fails at once, naming file, campaign and field. (An import error would not do:
Airflow marks every DAG of a file with an import error stale, the valid ones included.)
"""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import DAG

from genesys_dialer.config import default_config_path, load_config
from genesys_dialer.dags.builder import build_campaign_dag, build_config_error_dag


def campaign_dags(dag_file: str | Path) -> dict[str, DAG]:
    """The DAGs of ``$GENESYS_DIALER_CONFIG``, else of ``campaigns.yaml`` beside ``dag_file``, by dag_id."""
    config = load_config(default_config_path(Path(dag_file).resolve().parent))
    dags = {campaign.dag_id: build_campaign_dag(campaign) for campaign in config.campaigns}
    dags.update({entry.dag_id: build_config_error_dag(entry) for entry in config.invalid})
    return dags
