"""The hook as Airflow sees it: the genesys_cloud connection type, its form, and test_connection."""

from __future__ import annotations

import json
import os

import pytest

from genesys_dialer.exceptions import ConfigError
from genesys_dialer.genesys.auth import endpoints
from genesys_dialer.genesys.hook import GenesysHook


def test_connection_type_is_registered_with_its_form():
    """Declared once, in the provider info: the form's labels and the tuning extras (conn-fields); the hook no
    longer carries the deprecated get_ui_field_behaviour (Airflow warns about it since 3.2)."""
    from airflow.providers_manager import ProvidersManager

    from genesys_dialer import get_provider_info

    manager = ProvidersManager()
    assert "airflow-genesys-dialer" in manager.providers
    with pytest.warns(Warning):  # ProvidersManager.hooks is deprecated in 3.3 but still what the UI reads
        info = manager.hooks["genesys_cloud"]
    assert info.hook_class_name == "genesys_dialer.genesys.hook.GenesysHook"
    assert info.connection_id_attribute_name == "genesys_conn_id"
    assert info.connection_testable
    assert "get_ui_field_behaviour" not in GenesysHook.__dict__
    assert "get_connection_form_widgets" not in GenesysHook.__dict__
    behaviour = manager.field_behaviours["genesys_cloud"]
    assert behaviour["hidden_fields"] == ["schema"]  # the port is shown: see test_browser.py
    assert behaviour["relabeling"] == {"host": "Region or base URL", "login": "Client ID", "password": "Client Secret"}
    (declared,) = get_provider_info()["connection-types"]
    widgets = {name.removeprefix("extra__genesys_cloud__"): widget for name, widget in
               manager.connection_form_widgets.items() if name.startswith("extra__genesys_cloud__")}
    assert set(widgets) == set(declared["conn-fields"]) == {
        "timeout", "max_attempts", "max_breaker_wait", "breaker_failure_threshold", "breaker_open_seconds",
        "breaker_half_open_max", "breaker_probe_lease_seconds"}
    assert widgets["timeout"].field["schema"]["title"] == "Timeout (s)"
    assert not any(widget.is_sensitive for widget in widgets.values())  # tuning only, never secrets


def test_every_tuning_field_left_empty_in_the_form_means_its_default(monkeypatch):
    """The UI form stores an empty field as null in the extra: the hook takes it as unset."""
    from genesys_dialer import get_provider_info

    (declared,) = get_provider_info()["connection-types"]
    extra = dict.fromkeys(declared["conn-fields"])
    monkeypatch.setenv("AIRFLOW_CONN_GENESYS_FORM", json.dumps(
        {"conn_type": "genesys_cloud", "host": "mypurecloud.ie", "login": "a", "password": "b", "extra": extra}))
    hook = GenesysHook("genesys_form")
    assert (hook.timeout, hook.max_attempts, hook.max_breaker_wait) == ((5.0, 30.0), 5, 10.0)
    assert (hook.breaker.settings.failure_threshold, hook.breaker.settings.open_seconds) == (3, 30.0)


@pytest.mark.parametrize(
    ("host", "port", "api", "token"),
    [
        ("mypurecloud.ie", None, "https://api.mypurecloud.ie", "https://login.mypurecloud.ie/oauth/token"),
        ("mypurecloud.ie", 443, "https://api.mypurecloud.ie", "https://login.mypurecloud.ie/oauth/token"),
        ("mypurecloud.ie", 8443, "https://api.mypurecloud.ie:8443", "https://login.mypurecloud.ie:8443/oauth/token"),
        ("api.usw2.pure.cloud", None, "https://api.usw2.pure.cloud", "https://login.usw2.pure.cloud/oauth/token"),
        ("http://127.0.0.1:8765/", None, "http://127.0.0.1:8765", "http://127.0.0.1:8765/oauth/token"),
        ("http://127.0.0.1:8765", 8765, "http://127.0.0.1:8765", "http://127.0.0.1:8765/oauth/token"),
        ("http://127.0.0.1", 8765, "http://127.0.0.1:8765", "http://127.0.0.1:8765/oauth/token"),
    ],
)
def test_region_or_base_url_gives_the_api_and_login_hosts(host, port, api, token):
    assert endpoints(host, port) == (api, token)


def test_a_port_that_contradicts_the_base_url_is_named(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_GENESYS_PORTS", json.dumps(
        {"conn_type": "genesys_cloud", "host": "http://127.0.0.1:8765", "port": 9000, "login": "a", "password": "b"}))
    with pytest.raises(ConfigError, match=r"connection 'genesys_ports': host 'http://127\.0\.0\.1:8765' names port "
                                          r"8765 but the port field says 9000"):
        _ = GenesysHook("genesys_ports").api_base


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
