"""Test support: the session environment, set before anything imports Airflow, and shared helpers.

PostgreSQL: ``TEST_DATABASE_URL`` (a server URL we may create databases on), else the local server on
127.0.0.1:5432 if reachable, else an embedded throwaway server (the ``pgserver`` package). Each pytest
session creates its own two databases (contacts and Airflow metadata) and drops them at the end, so
sessions can run side by side.

Airflow reads its configuration when first imported, so the environment is set here at import time,
before any test module imports it. The databases themselves are created lazily by fixtures: pure tests
pay nothing.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from genesys_dialer.genesys.state import MemoryStateStore

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
        # Tasks go to a queue of this session's own: under the CeleryExecutor (tests/stack.py) a parallel
        # session's workers never take them. The DAGs are serialized with it whichever executor runs them.
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": SESSION,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": AIRFLOW_URL.replace("postgresql://", "postgresql+psycopg://", 1),
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
        # One Fernet key for every process of the session (tests, api-server, workers): Variables written
        # encrypted by one process must decrypt in the others, whatever airflow.cfg says later.
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_CONN_DIALER_POSTGRES": DIALER_URL,
        # The UI's connection Test button (tests/test_browser.py), and no login page in the way.
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "GENESYS_DIALER_CONFIG": str(CONFIG_PATH),
    }
)
# Tests must not emit to a real StatsD unless they ask for it.
os.environ.setdefault("AIRFLOW__METRICS__STATSD_ON", "False")
# The pacing model's small matrix solves: OpenBLAS threads only contend for the shared cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

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
    # An open breaker ends the try at once (the metrics tests watch that path); the real-executor campaigns and
    # iwait wait it out by rescheduling, as deployed (the default, 60 minutes).
    "breaker_wait_minutes": 0,
    # The pipeline tests prove the claim/dispatch path against dial_history pacing; the Genesys-outcome loop has
    # its own tests (test_outcomes.py, test_closed_loop.py) and the real-executor run below.
    "pacing_source": "dial_history",
}
WAITS_OUT_THE_BREAKER = {"breaker_wait_minutes": 60}
# A campaign id Genesys does not know (bad-input tests).
GHOST_CAMPAIGN = {**TEST_CAMPAIGN, "key": "ghost", "campaign_id": "00000000-0000-4000-8000-00000000dead"}
# Real-executor campaigns: manual only, so the scheduler starts nothing the tests did not ask for. One DAG per
# Genesys campaign (the config refuses two entries for one campaign_id): each has its own campaign, all
# feeding the test contact list.
XRUN_CAMPAIGN_ID = "1c7e5b3a-9d2f-4e8a-b6c4-3f2a1e0d9c8b"
XFAULT_CAMPAIGN_ID = "2d8f6c4b-0e3a-4f9b-a7d5-4a3b2f1e0d9c"
XRUN_CAMPAIGN = {
    **TEST_CAMPAIGN, "key": "xrun", "campaign_id": XRUN_CAMPAIGN_ID, "contact_list_id": CONTACT_LIST_ID,
    "schedule": None, "batch_size": 300, "segment_size": 60, "pacing_source": "genesys", **WAITS_OUT_THE_BREAKER,
}
XFAULT_CAMPAIGN = {
    **TEST_CAMPAIGN, "key": "xfault", "campaign_id": XFAULT_CAMPAIGN_ID, "contact_list_id": CONTACT_LIST_ID,
    "schedule": None, "batch_size": 240, "segment_size": 60, "retries": 4, "retry_delay_seconds": 3,
    **WAITS_OUT_THE_BREAKER,
}
# dag.test runs of a campaign that waits out the breaker (manual only, paused: the scheduler never runs it).
IWAIT_CAMPAIGN_ID = "3e9a7d5c-1f4b-4a0c-b8e6-5b4c3a2f1e0d"
IWAIT_CAMPAIGN = {
    **TEST_CAMPAIGN, "key": "iwait", "campaign_id": IWAIT_CAMPAIGN_ID, "contact_list_id": CONTACT_LIST_ID,
    "schedule": None, **WAITS_OUT_THE_BREAKER,
}
BACKFILL_CAMPAIGN_ID = "7e4c2a10-3b5d-4f6e-8a9b-0c1d2e3f4a5b"
BACKFILL_LIST_ID = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
XBACKFILL_CAMPAIGN = {
    **TEST_CAMPAIGN, "key": "xbackfill", "campaign_id": BACKFILL_CAMPAIGN_ID, "schedule": "@daily",
    "batch_size": 40, "segment_size": 20,
}
# Catch-up: an hourly campaign with catchup on, started two hours before this session, so unpausing it makes
# the scheduler create the runs of the two past hours (catch-up runs: dry by default) and the current one.
CATCHUP_CAMPAIGN_ID = "6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d"
CATCHUP_LIST_ID = "5e4d3c2b-1a0f-4e9d-8c7b-6a5f4e3d2c1b"
CATCHUP_START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
XCATCHUP_CAMPAIGN = {
    **TEST_CAMPAIGN, "key": "xcatchup", "campaign_id": CATCHUP_CAMPAIGN_ID, "schedule": "@hourly", "catchup": True,
    "start_date": CATCHUP_START, "batch_size": 40, "segment_size": 20,
}
# A manual campaign whose connections a test points anywhere (AIRFLOW_CONN_GENESYS_PROBE, _DIALER_PROBE) and
# whose contact list it seeds as it needs: what a dry run does when the live run would fail; one task retry.
# (Never unpaused, so the real scheduler of the executor tests leaves its dag.test runs alone.)
PROBE_CAMPAIGN_ID = "4b2d9e61-7a3c-4f08-9d1e-5c6b7a8f9e0d"
PROBE_LIST_ID = "8c1f3a5e-2b4d-4e6f-a7b8-c9d0e1f2a3b4"
PROBE_CAMPAIGN = {
    **TEST_CAMPAIGN, "key": "probe", "campaign_id": PROBE_CAMPAIGN_ID, "contact_list_id": PROBE_LIST_ID,
    "schedule": None, "genesys_conn_id": "genesys_probe", "postgres_conn_id": "dialer_probe", "batch_size": 60,
    "segment_size": 30, "retries": 1, "retry_delay_seconds": 1,
}
# An invalid entry (segment_size 0): the other campaigns still load, and it becomes a CONFIG ERROR DAG.
BROKEN_CAMPAIGN = {"key": "broken", "campaign_id": "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d", "segment_size": 0,
                   "schedule": None}
# The closed loop (test_outcomes.py, test_closed_loop.py): paced from Genesys outcomes, dialed by the emulator.
LOOP_CAMPAIGN_ID = "3e5f7a9b-1c2d-4e6f-8a0b-2c4d6e8f0a1b"
LOOP_LIST_ID = "4f6a8b0c-2d3e-4f5a-9b1c-3d5e7f9a1b2c"
LOOP_CAMPAIGN = {
    **TEST_CAMPAIGN, "key": "loop", "campaign_id": LOOP_CAMPAIGN_ID, "schedule": None, "batch_size": 600,
    "segment_size": 300, "contacts_per_request": 300, "agents": 8, "max_outbound_lines": 200,
    "pacing_source": "genesys",
}
ALL_CAMPAIGNS = [TEST_CAMPAIGN, GHOST_CAMPAIGN, XRUN_CAMPAIGN, XFAULT_CAMPAIGN, XBACKFILL_CAMPAIGN, IWAIT_CAMPAIGN,
                 XCATCHUP_CAMPAIGN, PROBE_CAMPAIGN, LOOP_CAMPAIGN, BROKEN_CAMPAIGN]

# The connection the emulator fixture defines (AIRFLOW_CONN_GENESYS_DEFAULT), and the Variables its hooks share
# across processes and tests: the circuit breaker's facts and the cached access token.
GENESYS_CONN_ID = "genesys_default"
BREAKER_KEY = f"genesys_breaker__{GENESYS_CONN_ID}"
TOKEN_KEY = f"genesys_access_token__{GENESYS_CONN_ID}"
# The emulator's route template of the contact POSTs (its request log and fault rules name routes so).
CONTACTS_ROUTE = "POST /api/v2/outbound/contactlists/{contactListId}/contacts"
CAMPAIGN_ROUTE = "GET /api/v2/outbound/campaigns/{campaignId}"


def write_config(*campaigns: dict[str, Any]) -> Path:
    """Write the session's campaign config. Tests share ONE config (the dag-processor of the real-executor
    tests re-parses it), so it lists every test campaign; pass others only in a test of its own."""
    import yaml

    CONFIG_PATH.write_text(yaml.safe_dump({"defaults": {}, "campaigns": list(campaigns)}))
    return CONFIG_PATH


write_config(*ALL_CAMPAIGNS)


def _admin_execute(sql: str) -> None:
    import psycopg

    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(sql)


def airflow(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the ``airflow`` CLI of this virtualenv with the session's environment."""
    result = subprocess.run(
        [str(VENV_BIN / "airflow"), *args], capture_output=True, text=True, timeout=timeout, env=os.environ.copy()
    )
    if check and result.returncode != 0:
        raise AssertionError(f"airflow {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


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


def clear_shared_state() -> None:
    """A closed breaker and no cached token: delete the Variables the hooks share (they live in the session's
    metadata DB across tests) and this process's token cache."""
    from airflow.models import Variable
    from airflow.utils.session import create_session

    from genesys_dialer.genesys import auth

    with create_session() as session:
        for prefix in (BREAKER_KEY, TOKEN_KEY):
            session.query(Variable).filter(Variable.key.startswith(prefix)).delete(synchronize_session=False)
    auth.token_cache.clear()


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 1.0) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serialized_dag_ids() -> set[str]:
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        return {row[0] for row in session.query(SerializedDagModel.dag_id).all()}


class CountingStore(MemoryStateStore):
    """The shared Variables in memory, counting reads (in a task each one is an API-server round trip)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get(self, key: str) -> dict[str, Any] | None:
        self.reads += 1
        return super().get(key)


def quarter_with_time_to_run(needed: timedelta = timedelta(seconds=90)) -> datetime:
    """The start of the current quarter hour (UTC), once at least ``needed`` of it is left, waiting out the next
    boundary otherwise. A run whose interval ends there is of the latest interval (it reads the campaign's stats
    and applies its pacing) only until the wall clock passes the next quarter: a test of such runs that started
    just before a boundary failed so once (2 s before 07:15)."""
    import time

    from genesys_dialer.pacing.outcomes import BUCKET, floor_bucket

    now = datetime.now(UTC)
    left = floor_bucket(now) + BUCKET - now
    if left < needed:
        time.sleep(left.total_seconds() + 1)
    return floor_bucket(datetime.now(UTC))


def write_as_of_earlier(db: Any, sql: str, params: Any = None) -> Any:
    """Run ``sql`` on the contacts table with its updated_at trigger bypassed, and commit: the rows keep the
    updated_at the statement writes. How a transaction that began earlier and commits now would have written
    them (updated_at is its start), or a bulk load that disabled triggers long ago; the trigger itself sets
    now() for every other writer."""
    db.execute("SET LOCAL session_replication_role = replica")
    cur = db.execute(sql, params)
    rows = cur.fetchall() if cur.description else []
    db.commit()
    return rows
