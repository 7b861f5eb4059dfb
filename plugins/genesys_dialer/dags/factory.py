"""The DAG entry point: one DAG per campaign of the config file, for a two-line file in a DAGs folder::

    from genesys_dialer.dags.factory import campaign_dags
    globals().update(campaign_dags(__file__))  # airflow DAG file

Parsing reads one YAML file and touches no database, Variable or network.
"""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import DAG

from genesys_dialer.config import default_config_path, load_campaigns
from genesys_dialer.dags.builder import build_campaign_dag


def campaign_dags(dag_file: str | Path) -> dict[str, DAG]:
    """The DAGs of ``$GENESYS_DIALER_CONFIG``, else of ``campaigns.yaml`` beside ``dag_file``, by dag_id."""
    config_path = default_config_path(Path(dag_file).resolve().parent)
    return {campaign.dag_id: build_campaign_dag(campaign) for campaign in load_campaigns(config_path)}
