"""Shared fixtures: a real PostgreSQL, a real Airflow metadata DB, and the Genesys emulator on loopback.

The environment (databases, AIRFLOW_HOME, connections) is decided in ``support``, imported first so it is
in place before anything imports Airflow. The databases themselves are created lazily by fixtures: pure
tests pay nothing.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from stack import AirflowStack
from support import (
    AIRFLOW_DB,
    AIRFLOW_URL,
    CAMPAIGN_ID,
    CONTACT_LIST_ID,
    DIALER_DB,
    DIALER_URL,
    EMULATOR_CLIENT_ID,
    EMULATOR_CLIENT_SECRET,
    IWAIT_CAMPAIGN_ID,
    TMP,
    XFAULT_CAMPAIGN_ID,
    XRUN_CAMPAIGN_ID,
    Emulator,
    _admin_execute,
    airflow,
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
            "TRUNCATE contacts, dial_history, dispatch_ledger, pacing_decisions, run_log, contact_phones, dnc_numbers, "
            "contact_phones_progress, withdrawal_checks, campaign_outcomes "
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
    seed["campaigns"] += [{**test_campaign, "id": other}
                          for other in (XRUN_CAMPAIGN_ID, XFAULT_CAMPAIGN_ID, IWAIT_CAMPAIGN_ID)]
    handle.seed(seed)
    auth.token_cache.clear()
    return handle


@pytest.fixture(
    scope="session",
    params=[pytest.param("local", id="local"), pytest.param("celery", id="celery", marks=pytest.mark.celery)],
)
def airflow_stack(request: pytest.FixtureRequest, airflow_db: str, emulator_server: Any) -> Iterator[AirflowStack]:
    """A real deployment: api-server, scheduler and dag-processor as separate processes, under the
    LocalExecutor and (a second instance, after the first is stopped) the CeleryExecutor with two workers.

    Every test that takes this fixture runs under both executors (ids ``[local]`` and ``[celery]``; ``-m
    "not celery"`` leaves the Celery runs out). A test for one executor only is marked
    ``@pytest.mark.only_executor("celery")``: its other instance is deselected (not skipped), so that the
    tests of one executor still share one stack. Task processes talk to the
    API server for XComs, Variables and connections, as in production. The manual-only test DAGs are
    unpaused; scheduled ones are unpaused by the test that wants their runs.
    """
    with AirflowStack(request.param) as stack:
        yield stack


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("KEEP_TEST_TMP"):  # keep AIRFLOW_HOME, task logs and the stack's logs for a post-mortem
        print(f"\ntest files kept in {TMP}")
        return
    shutil.rmtree(TMP, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the instances of ``only_executor`` tests whose ``airflow_stack`` is another executor, then run the
    real-scheduler tests (marker ``executor``) last, in their files' order (and pytest's grouping by stack).

    Once the session's scheduler runs, it also settles the state of running dag.test() runs of paused DAGs, and
    doing so concurrently with dag.test() on the same mapped task instances can deadlock in PostgreSQL, which
    kills the scheduler and every later executor test with it. With the executor tests last, no dag.test() run
    is in flight while the scheduler runs.

    Under pytest-xdist (``make test``: ``-n 2 --dist loadgroup``) the tests of the session's deployment
    (``airflow_stack``) and the others are two groups, each run whole by one worker: the deployment's tests
    share it, and no dag.test() run shares a worker, hence a metadata database, with its scheduler. Each worker
    has its own databases, AIRFLOW_HOME and ports (support.SESSION holds the worker's pid). The tests that start
    their own stack (``make ui``) run in the other group, which balances the two workers' times.
    """
    keep, drop = [], []
    for item in items:
        marker = item.get_closest_marker("only_executor")
        executor = getattr(getattr(item, "callspec", None), "params", {}).get("airflow_stack")
        (drop if marker and executor not in marker.args else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    items.sort(key=lambda item: item.get_closest_marker("executor") is not None)  # stable: order kept otherwise
    for item in items:
        item.add_marker(pytest.mark.xdist_group("airflow_stack" if "airflow_stack" in item.fixturenames else "other"))
