"""Shared fixtures: a real PostgreSQL, a real Airflow metadata DB, and the Genesys emulator on loopback.

PostgreSQL: ``TEST_DATABASE_URL`` (a server URL we may create databases on), else the local server on
127.0.0.1:5432 if reachable, else an embedded throwaway server (the ``pgserver`` package). Each pytest
session creates its own two databases (contacts and Airflow metadata) and drops them at the end, so
sessions can run side by side.

Airflow reads its configuration when first imported, so the environment is set here at import time,
before any test module imports it. The databases themselves are created lazily by fixtures: pure tests
pay nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SESSION = f"gdtest_{os.getpid()}_{uuid.uuid4().hex[:6]}"
TMP = Path(tempfile.mkdtemp(prefix=f"{SESSION}_"))


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _server_url() -> str:
    """A libpq URL of a PostgreSQL server where this session may create databases."""
    if os.environ.get("TEST_DATABASE_URL"):
        return os.environ["TEST_DATABASE_URL"]
    if _port_open("127.0.0.1", 5432):
        return "postgresql://postgres@127.0.0.1:5432/postgres"
    import pgserver  # embedded fallback: a throwaway server in this session's temp dir

    server = pgserver.get_server(str(TMP / "pgdata"), cleanup_mode="stop")
    return server.get_uri()


def _with_database(url: str, database: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


SERVER_URL = _server_url()
DIALER_DB = f"{SESSION}_dialer"
AIRFLOW_DB = f"{SESSION}_airflow"
DIALER_URL = _with_database(SERVER_URL, DIALER_DB)
AIRFLOW_URL = _with_database(SERVER_URL, AIRFLOW_DB)
CONFIG_PATH = TMP / "campaigns.yaml"

os.environ.update(
    {
        "AIRFLOW_HOME": str(TMP / "airflow_home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": AIRFLOW_URL.replace("postgresql://", "postgresql+psycopg://", 1),
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_CONN_DIALER_POSTGRES": DIALER_URL,
        "GENESYS_DIALER_CONFIG": str(CONFIG_PATH),
    }
)
# Tests must not emit to a real StatsD unless they ask for it.
os.environ.setdefault("AIRFLOW__METRICS__STATSD_ON", "False")

EMULATOR_CLIENT_ID = "itest-client"
EMULATOR_CLIENT_SECRET = "itest-secret-do-not-log"
CAMPAIGN_ID = "5d9a3f0e-8b7c-4e21-9f3a-2c1b0d4e6f70"
CONTACT_LIST_ID = "a6e2b9c4-1d3f-4a5b-8c7d-9e0f1a2b3c4d"
CAMPAIGN_KEY = "itest"

TEST_CAMPAIGN: dict[str, Any] = {
    "key": CAMPAIGN_KEY,
    "campaign_id": CAMPAIGN_ID,
    "batch_size": 250,
    "segment_size": 60,
    "contacts_per_request": 25,
    "agents": 20,
    "retries": 0,
}


def write_config(*campaigns: dict[str, Any], defaults: dict[str, Any] | None = None) -> Path:
    import yaml

    CONFIG_PATH.write_text(yaml.safe_dump({"defaults": defaults or {}, "campaigns": list(campaigns)}))
    return CONFIG_PATH


write_config(TEST_CAMPAIGN)


def _admin_execute(sql: str) -> None:
    import psycopg

    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session")
def dialer_db() -> Iterator[str]:
    """The session's contacts database with the project's schema applied."""
    import psycopg

    from genesys_dialer.schema import apply_schema

    _admin_execute(f'CREATE DATABASE "{DIALER_DB}"')
    with psycopg.connect(DIALER_URL) as conn:
        apply_schema(conn)
    yield DIALER_URL
    _admin_execute(f'DROP DATABASE IF EXISTS "{DIALER_DB}" WITH (FORCE)')


@pytest.fixture
def db(dialer_db: str) -> Iterator[Any]:
    """A connection to an emptied contacts database."""
    import psycopg

    with psycopg.connect(dialer_db) as conn:
        conn.execute(
            "TRUNCATE contacts, dial_history, dispatch_ledger, pacing_decisions, run_log RESTART IDENTITY"
        )
        conn.commit()
        yield conn


def airflow(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the ``airflow`` CLI of this virtualenv with the session's environment."""
    return subprocess.run(
        [str(VENV_BIN / "airflow"), *args], capture_output=True, text=True, check=check, timeout=timeout,
        env=os.environ.copy(),
    )


@pytest.fixture(scope="session")
def airflow_db(dialer_db: str) -> Iterator[str]:
    """A migrated Airflow metadata database with the ``genesys_api`` pool."""
    _admin_execute(f'CREATE DATABASE "{AIRFLOW_DB}"')
    airflow("db", "migrate")
    airflow("pools", "set", "genesys_api", "5", "Genesys Cloud API calls (the seed's 5 workers)")
    yield AIRFLOW_URL
    _admin_execute(f'DROP DATABASE IF EXISTS "{AIRFLOW_DB}" WITH (FORCE)')


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[Any]:
    from genesys_emulator import EmulatorServer

    with EmulatorServer(
        port=0, client_id=EMULATOR_CLIENT_ID, client_secret=EMULATOR_CLIENT_SECRET, rate_limit_per_minute=0
    ) as server:
        os.environ["AIRFLOW_CONN_GENESYS_DEFAULT"] = json.dumps(
            {
                "conn_type": "genesys_cloud",
                "host": server.base_url,
                "login": EMULATOR_CLIENT_ID,
                "password": EMULATOR_CLIENT_SECRET,
            }
        )
        yield server


class Emulator:
    """Test-side handle on the emulator: its admin API and the real API, both over HTTP."""

    def __init__(self, base_url: str) -> None:
        import requests

        self.base_url = base_url
        self.http = requests.Session()

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(method, f"{self.base_url}/__emulator__/{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json() if response.content else None

    def reset(self) -> None:
        self.admin("POST", "reset")

    def seed(self, seed: dict[str, Any]) -> None:
        self.admin("POST", "seed", seed)

    def requests_log(self) -> list[dict[str, Any]]:
        return self.admin("GET", "requests")

    def fault(self, **rule: Any) -> None:
        self.admin("POST", "faults", rule)

    def token(self) -> str:
        response = self.http.post(
            f"{self.base_url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET),
            timeout=10,
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def api(self, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(
            method, f"{self.base_url}/api/v2/outbound/{path}", json=body, timeout=10,
            headers={"Authorization": f"Bearer {self.token()}"},
        )
        response.raise_for_status()
        return response.json()

    def campaign(self, campaign_id: str = CAMPAIGN_ID) -> dict[str, Any]:
        return self.api("GET", f"campaigns/{campaign_id}")

    def contacts(self, contact_list_id: str = CONTACT_LIST_ID) -> list[dict[str, Any]]:
        """Every contact of the list, read through the real search API as a user would."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self.api(
                "POST", f"contactlists/{contact_list_id}/contacts/search", {"pageNumber": page, "pageSize": 100}
            )
            found += body.get("entities") or []
            if page >= (body.get("pageCount") or 0):
                return found
            page += 1


@pytest.fixture
def emulator(emulator_server: Any) -> Emulator:
    """The emulator, reset and seeded with the test campaign and its contact list."""
    from genesys_dialer.demo_data import emulator_seed
    from genesys_dialer.hooks import genesys

    handle = Emulator(emulator_server.base_url)
    handle.reset()
    handle.seed(emulator_seed(CAMPAIGN_ID, CONTACT_LIST_ID))
    genesys._token_cache.clear()
    return handle


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(TMP, ignore_errors=True)
