"""Shared fixtures: a real PostgreSQL, a real Airflow metadata DB, and the Genesys emulator on loopback.

The environment (databases, AIRFLOW_HOME, connections) is decided in ``support``, imported first so it is
in place before anything imports Airflow. The databases themselves are created lazily by fixtures: pure
tests pay nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from support import (
    AIRFLOW_DB,
    AIRFLOW_URL,
    CAMPAIGN_ID,
    CONTACT_LIST_ID,
    DIALER_DB,
    DIALER_URL,
    EMULATOR_CLIENT_ID,
    EMULATOR_CLIENT_SECRET,
    TMP,
    VENV_BIN,
    XFAULT_CAMPAIGN_ID,
    XRUN_CAMPAIGN_ID,
    Emulator,
    _admin_execute,
    airflow,
    free_port,
    serialized_dag_ids,
    wait_for,
)


@pytest.fixture(scope="session")
def dialer_db() -> Iterator[str]:
    """The session's contacts database with the project's schema applied."""
    import psycopg

    from genesys_dialer.ledger.schema import apply_schema

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
            "TRUNCATE contacts, dial_history, dispatch_ledger, pacing_decisions, run_log, campaign_outcomes "
            "RESTART IDENTITY"
        )
        conn.commit()
        yield conn


@pytest.fixture(scope="session")
def airflow_db(dialer_db: str) -> Iterator[str]:
    """A migrated Airflow metadata database with the ``genesys_api`` pool."""
    _admin_execute(f'CREATE DATABASE "{AIRFLOW_DB}"')
    airflow("db", "migrate")
    airflow("pools", "set", "genesys_api", "5", "Genesys Cloud API calls (the seed's 5 workers)")
    yield AIRFLOW_URL
    from airflow import settings

    settings.dispose_orm()  # close this process's sessions and pooled connections before dropping the DB
    _admin_execute(f'DROP DATABASE IF EXISTS "{AIRFLOW_DB}" WITH (FORCE)')


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[Any]:
    from genesys_emulator import EmulatorServer

    with EmulatorServer(
        port=0, client_id=EMULATOR_CLIENT_ID, client_secret=EMULATOR_CLIENT_SECRET, rate_limit_per_minute=300
    ) as server:
        os.environ["AIRFLOW_CONN_GENESYS_DEFAULT"] = json.dumps(
            {
                "conn_type": "genesys_cloud",
                "host": server.base_url,
                "login": EMULATOR_CLIENT_ID,
                "password": EMULATOR_CLIENT_SECRET,
                # Short timeouts (connect, read) so latency-past-timeout cases cost seconds, not minutes.
                "extra": {"timeout": [3, 5]},
            }
        )
        yield server


@pytest.fixture
def emulator(emulator_server: Any) -> Emulator:
    """The emulator, reset and seeded with the test campaign and its contact list."""
    from genesys_devkit.demo_data import emulator_seed
    from genesys_dialer.genesys import auth

    handle = Emulator(emulator_server.base_url)
    handle.reset()
    seed = emulator_seed(CAMPAIGN_ID, CONTACT_LIST_ID)
    test_campaign = seed["campaigns"][0]
    seed["campaigns"] += [{**test_campaign, "id": other} for other in (XRUN_CAMPAIGN_ID, XFAULT_CAMPAIGN_ID)]
    handle.seed(seed)
    auth.token_cache.clear()
    return handle


MANUAL_EXECUTOR_DAGS = ("genesys_predictive_xrun", "genesys_predictive_xfault")


@pytest.fixture(scope="session")
def airflow_stack(airflow_db: str, emulator_server: Any) -> Iterator[dict[str, Any]]:
    """api-server, scheduler and dag-processor as separate processes (LocalExecutor), like a deployment.

    Task processes talk to the API server for XComs, Variables and connections, as in production. The
    manual-only test DAGs are unpaused; scheduled ones are unpaused by the test that wants their runs.
    """
    import requests

    port = free_port()
    os.environ.update(
        {
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW__API__WORKERS": "1",
            # A killed worker's task instance is failed (and retried) after this, not after 5 minutes.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        }
    )
    logs = TMP / "stack_logs"
    logs.mkdir(exist_ok=True)
    processes = []
    for name, args in (
        ("api-server", ["api-server", "--port", str(port), "--host", "127.0.0.1"]),
        ("scheduler", ["scheduler"]),
        ("dag-processor", ["dag-processor"]),
    ):
        out = open(logs / f"{name}.log", "w")  # noqa: SIM115 - closed after the process stops
        process = subprocess.Popen(
            [str(VENV_BIN / "airflow"), *args], stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy(),
            start_new_session=True,
        )
        processes.append((process, out))

    def api_up() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2).ok
        except requests.RequestException:
            return False

    try:
        wait_for(api_up, 120, "the API server")
        wait_for(lambda: serialized_dag_ids() >= set(MANUAL_EXECUTOR_DAGS), 180,
                 "the dag-processor to serialize the campaign DAGs")
        for dag_id in MANUAL_EXECUTOR_DAGS:
            airflow("dags", "unpause", dag_id)
        yield {"port": port, "logs": logs, "task_logs": TMP / "airflow_home" / "logs"}
    finally:
        for process, _ in processes:
            process.terminate()
        for process, out in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
            out.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("KEEP_TEST_TMP"):  # keep AIRFLOW_HOME, task logs and the stack's logs for a post-mortem
        print(f"\ntest files kept in {TMP}")
        return
    shutil.rmtree(TMP, ignore_errors=True)
