"""Airflow DAG file: one DAG per campaign in $GENESYS_DIALER_CONFIG, else campaigns.yaml beside this file."""

from genesys_dialer.dags.factory import campaign_dags

globals().update(campaign_dags(__file__))
