"""Feed Genesys Cloud predictive-dialer campaigns from PostgreSQL with Apache Airflow 3."""

from __future__ import annotations

__version__ = "0.1.0"


def get_provider_info() -> dict:
    """Provider metadata: registers the ``genesys_cloud`` connection type and its form in the Airflow UI."""
    return {
        "package-name": "airflow-genesys-dialer",
        "name": "Genesys Cloud predictive dialer feed",
        "description": "Hook and DAGs that load PostgreSQL contacts into Genesys Cloud outbound campaigns.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Genesys Cloud",
                "external-doc-url": "https://developer.genesys.cloud/",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "Genesys Cloud", "python-modules": ["genesys_dialer.genesys.hook"]}],
        "connection-types": [
            {
                "hook-class-name": "genesys_dialer.genesys.hook.GenesysHook",
                "hook-name": "Genesys Cloud",
                "connection-type": "genesys_cloud",
                # The form, declared once (Airflow 3.2+ reads it here without importing the hook). The port is
                # shown, not hidden: Airflow 3.3.2's UI tests a connection with `port: Number(port)`, so a
                # stored null port is sent as 0, which the API takes for another destination and refuses
                # ("The host or port to test differs from the stored connection"; fixed upstream after
                # 3.3.2). With the port filled in (443 for a region), the Test button works.
                "ui-field-behaviour": {
                    "hidden-fields": ["schema"],
                    "relabeling": {
                        "host": "Region or base URL",
                        "login": "Client ID",
                        "password": "Client Secret",
                    },
                    "placeholders": {
                        "host": "mypurecloud.ie (or http://genesys-emulator:8765)",
                        "port": "443 (a base URL's own port for the emulator); needed by the UI's Test button",
                        "login": "OAuth client id (client credentials grant)",
                        "password": "OAuth client secret",
                    },
                },
                # Optional tuning, stored in the connection's extra (never secrets); empty means the default.
                "conn-fields": {
                    "timeout": {
                        "label": "Timeout (s)",
                        "description": "Connect and read timeout of one request, in seconds (default: 5 to "
                        "connect, 30 to read; an extra of [connect, read] sets them apart).",
                        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
                    },
                    "max_attempts": {
                        "label": "Max attempts",
                        "description": "Tries of one request on 429/502/503/504, timeouts and dropped "
                        "connections (default 5).",
                        "schema": {"type": ["integer", "null"], "minimum": 1},
                    },
                    "max_breaker_wait": {
                        "label": "Max breaker wait (s)",
                        "description": "How long one call may wait in the task for a half-open probe slot "
                        "(default 10).",
                        "schema": {"type": ["number", "null"], "minimum": 0},
                    },
                    "breaker_failure_threshold": {
                        "label": "Breaker failure threshold",
                        "description": "Consecutive transient failures that open the circuit breaker (default 3).",
                        "schema": {"type": ["integer", "null"], "minimum": 1},
                    },
                    "breaker_open_seconds": {
                        "label": "Breaker open (s)",
                        "description": "How long the breaker stays open before probing (default 30).",
                        "schema": {"type": ["number", "null"], "minimum": 0},
                    },
                    "breaker_half_open_max": {
                        "label": "Breaker probes",
                        "description": "Half-open probe requests whose success closes the breaker (default 3).",
                        "schema": {"type": ["integer", "null"], "minimum": 1},
                    },
                    "breaker_probe_lease_seconds": {
                        "label": "Breaker probe lease (s)",
                        "description": "How long a probe slot is held by a worker that died mid-probe "
                        "(default: the timeouts + 10).",
                        "schema": {"type": ["number", "null"], "minimum": 0},
                    },
                },
            }
        ],
    }
