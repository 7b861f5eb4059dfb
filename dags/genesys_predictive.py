"""Airflow DAG file: one DAG per campaign in the campaign config ($GENESYS_DIALER_CONFIG or campaigns.yaml here).

Kept thin on purpose: parsing reads one YAML file and touches no database, Variable or network.
(The words "airflow" and "dag" in this file also let Airflow's safe-mode DAG discovery pick it up.)
"""

from pathlib import Path

from genesys_dialer.config import default_config_path, load_campaigns
from genesys_dialer.dag_builder import build_campaign_dag

for _campaign in load_campaigns(default_config_path(Path(__file__).parent)):
    globals()[_campaign.dag_id] = build_campaign_dag(_campaign)
