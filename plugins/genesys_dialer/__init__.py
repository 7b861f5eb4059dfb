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
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {
                        "host": "Region or base URL",
                        "login": "Client ID",
                        "password": "Client Secret",
                    },
                    "placeholders": {
                        "host": "mypurecloud.ie (or http://genesys-emulator:8765)",
                        "login": "OAuth client id (client credentials grant)",
                        "password": "OAuth client secret",
                        "extra": '{"timeout": [5, 30], "breaker_open_seconds": 30} (tuning only, never secrets)',
                    },
                },
            }
        ],
    }
