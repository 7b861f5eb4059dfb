"""The hook as Airflow sees it: the genesys_cloud connection type, its form, and test_connection."""

from __future__ import annotations

import json
import os

import pytest

from genesys_dialer.genesys.auth import endpoints
from genesys_dialer.genesys.hook import GenesysHook


def test_connection_type_is_registered_with_its_form():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-genesys-dialer" in manager.providers
    with pytest.warns(Warning):  # ProvidersManager.hooks is deprecated in 3.3 but still what the UI reads
        info = manager.hooks["genesys_cloud"]
    assert info.hook_class_name == "genesys_dialer.genesys.hook.GenesysHook"
    assert info.connection_id_attribute_name == "genesys_conn_id"
    assert info.connection_testable
    behaviour = manager.field_behaviours["genesys_cloud"]
    assert behaviour["relabeling"] == {"host": "Region or base URL", "login": "Client ID", "password": "Client Secret"}
    hook_behaviour = GenesysHook.get_ui_field_behaviour()
    assert behaviour == {key.replace("-", "_"): value for key, value in hook_behaviour.items()}


@pytest.mark.parametrize(
    ("host", "api", "token"),
    [
        ("mypurecloud.ie", "https://api.mypurecloud.ie", "https://login.mypurecloud.ie/oauth/token"),
        ("api.usw2.pure.cloud", "https://api.usw2.pure.cloud", "https://login.usw2.pure.cloud/oauth/token"),
        ("http://127.0.0.1:8765/", "http://127.0.0.1:8765", "http://127.0.0.1:8765/oauth/token"),
    ],
)
def test_region_or_base_url_gives_the_api_and_login_hosts(host, api, token):
    assert endpoints(host) == (api, token)


def test_test_connection_against_the_emulator(emulator):
    ok, message = GenesysHook().test_connection()
    assert ok, message
    routes = [r["route"] for r in emulator.requests_log()]
    assert routes[:2] == ["POST /oauth/token", "GET /api/v2/outbound/campaigns"]


def test_test_connection_with_a_wrong_secret_says_so_without_the_secret(emulator, monkeypatch):
    conn = json.loads(os.environ["AIRFLOW_CONN_GENESYS_DEFAULT"])
    wrong = "definitely-wrong-secret-value"
    monkeypatch.setenv("AIRFLOW_CONN_GENESYS_BAD", json.dumps({**conn, "password": wrong}))
    ok, message = GenesysHook("genesys_bad").test_connection()
    assert not ok
    assert "genesys_bad" in message and "401" in message and "invalid_client" in message
    assert wrong not in message
