"""One request budget per OAuth client, shared through PostgreSQL by every hook, process and campaign.

Real PostgreSQL (the session's dialer database), the emulator over HTTP with its per-client rate limiter on
(a 10 s window allowing 50 requests: Genesys' 300 a minute, sped up), hooks on separate threads each with its
own budget connection (as separate worker processes would be). What is asserted comes from the emulator's
request log: how many 429s, and when the requests arrived.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from support import SERVER_URL, SESSION, CountingStore, _admin_execute, _with_database

from genesys_dialer.genesys import auth
from genesys_dialer.genesys.breaker import BreakerSettings, CircuitBreaker
from genesys_dialer.genesys.budget import (
    BUDGET_SHARE,
    Bucket,
    MemoryBudget,
    PostgresBudget,
    client_key,
    close_all,
)
from genesys_dialer.genesys.errors import GenesysCircuitOpenError
from genesys_dialer.genesys.hook import GenesysHook
from genesys_dialer.genesys.state import MemoryStateStore

CLIENTS = {"budget-a": "secret-a", "budget-b": "secret-b"}
LIMIT_PER_MINUTE = 300
WINDOW = 10.0  # the emulator allows 50 requests per 10 s window: 300 a minute
PACED_PER_MINUTE = 270  # the connections' requests_per_minute: under the limit by more than the window's jitter
CAMPAIGNS_ROUTE = "GET /api/v2/outbound/campaigns"


@pytest.fixture
def limited_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from genesys_emulator import EmulatorServer

    (first, first_secret), (second, second_secret) = CLIENTS.items()
    with EmulatorServer(port=0, client_id=first, client_secret=first_secret,
                        extra_clients=f"{second}:{second_secret}", rate_limit_per_minute=LIMIT_PER_MINUTE,
                        rate_limit_scope="client", rate_limit_window_seconds=WINDOW) as server:
        for conn_id, (client, secret) in zip(("budget_a", "budget_b"), CLIENTS.items(), strict=True):
            monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({
                "conn_type": "genesys_cloud", "host": server.base_url, "login": client, "password": secret,
                "extra": {"requests_per_minute": PACED_PER_MINUTE, "timeout": [3, 10]},
            }))
        auth.token_cache.clear()
        yield server
    close_all()


@pytest.fixture
def budget_table(dialer_db: str) -> str:
    with psycopg.connect(dialer_db, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS genesys_rate_budget, genesys_breaker_openings")  # created on first use
    return dialer_db


def _budget(url: str, name: str) -> PostgresBudget:
    return PostgresBudget(lambda: psycopg.connect(url), name=name)


def _hammer(conn_id: str, count: int, budget: PostgresBudget | None) -> GenesysHook:
    hook = GenesysHook(conn_id, state_store=MemoryStateStore(), budget=budget, max_attempts=1,
                       breaker_settings=BreakerSettings(failure_threshold=1000))
    for _ in range(count):
        with contextlib.suppress(Exception):  # a 429 (max_attempts 1): counted from the emulator's log
            hook.request("GET", "/api/v2/outbound/campaigns", params={"pageSize": 1}, endpoint="campaign_list")
    return hook


def _run_parallel(jobs: list[tuple[str, int, PostgresBudget | None]]) -> float:
    threads = [threading.Thread(target=_hammer, args=job) for job in jobs]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return time.monotonic() - started


def _calls(server: Any) -> list[dict[str, Any]]:
    return [e for e in server.requests_log() if e["route"] == CAMPAIGNS_ROUTE]


def test_reservations_from_separate_connections_queue_on_one_bucket(budget_table):
    """Four connections take 15 tokens each at 6,000 a minute: every slot is distinct, spaced one interval."""
    bucket = Bucket(client_key("http://x/oauth/token", "id"), 6000)
    slots: list[float] = []
    lock = threading.Lock()

    def take(name: str) -> None:
        budget = _budget(budget_table, name)
        for _ in range(15):
            reservation = budget.reserve(bucket)
            with lock:
                slots.append(reservation.slot)

    threads = [threading.Thread(target=take, args=(f"reserve-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    close_all()
    slots.sort()
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert len(slots) == 60
    # Each slot exactly one interval after the previous one, whichever connection reserved it.
    assert min(gaps) >= bucket.interval * 0.999, min(gaps)
    with psycopg.connect(budget_table) as conn:
        rows = conn.execute("SELECT client_key, requests_per_minute FROM genesys_rate_budget").fetchall()
    assert rows == [(bucket.key, 6000.0)]  # one row per client, keyed by a hash (no client id, no secret)


def test_unpaced_hooks_of_one_client_bounce_off_its_limit(limited_emulator):
    """The control: 60 requests of one client from two workers in a 10 s window that allows 50."""
    _run_parallel([("budget_a", 30, None), ("budget_a", 30, None)])
    statuses = [e["status"] for e in _calls(limited_emulator)]
    assert statuses.count(429) >= 10


def test_hooks_sharing_a_client_pace_to_its_budget_without_a_429(limited_emulator, budget_table):
    """The same 60 requests, each hook with its own budget connection: spaced to 270 a minute, no 429."""
    elapsed = _run_parallel([("budget_a", 30, _budget(budget_table, "w1")),
                             ("budget_a", 30, _budget(budget_table, "w2"))])
    calls = _calls(limited_emulator)
    assert len(calls) == 60 and all(e["status"] == 200 for e in calls), [e["status"] for e in calls]
    interval = 60 / (PACED_PER_MINUTE * BUDGET_SHARE)
    assert elapsed >= 59 * interval * 0.95  # paced, not merely lucky


def test_two_oauth_clients_have_a_budget_each_and_double_the_ceiling(limited_emulator, budget_table):
    """30 requests on each of two clients, in parallel: no 429, done in the time one client needs for 30."""
    elapsed = _run_parallel([("budget_a", 30, _budget(budget_table, "a")),
                             ("budget_b", 30, _budget(budget_table, "b"))])
    calls = _calls(limited_emulator)
    assert len(calls) == 60 and all(e["status"] == 200 for e in calls)
    interval = 60 / (PACED_PER_MINUTE * BUDGET_SHARE)
    assert 29 * interval * 0.95 <= elapsed < 45 * interval  # one client's 60 requests take 59 intervals
    with psycopg.connect(budget_table) as conn:
        keys = conn.execute("SELECT count(*) FROM genesys_rate_budget").fetchone()[0]
    assert keys == 2


def test_an_unreachable_budget_lets_requests_through(limited_emulator, caplog):
    """The budget's database is down: requests still go out (the hook's 429 handling bounds them), and a
    warning says they are unpaced."""
    budget = PostgresBudget(lambda: psycopg.connect("postgresql://postgres@127.0.0.1:1/none", connect_timeout=1),
                            name="unreachable")
    _hammer("budget_a", 3, budget)
    assert [e["status"] for e in _calls(limited_emulator)] == [200, 200, 200]
    assert "Rate budget unavailable" in caplog.text


# -- the breakers' openings, mirrored in the budget's database -------------------------------------------------
def test_a_closed_breaker_is_trusted_only_while_the_mirror_counts_no_new_opening(budget_table):
    """Two workers (budget connections of their own): the task reads the breaker's Variable once for many
    requests, yet the other worker's opening stops its very next request, long before cache_seconds ends."""
    store = CountingStore()
    task = CircuitBreaker("mirrored", BreakerSettings(failure_threshold=1, cache_seconds=60), store,
                          openings=_budget(budget_table, "task"))
    other = CircuitBreaker("mirrored", BreakerSettings(failure_threshold=1), store,
                           openings=_budget(budget_table, "other"))
    for _ in range(50):
        task.acquire()
    assert store.reads == 1
    other.record_failure(other.acquire(), "503")  # opens it (threshold 1)
    with pytest.raises(GenesysCircuitOpenError, match="is open"):
        task.acquire()
    with psycopg.connect(budget_table) as conn:
        assert conn.execute("SELECT openings FROM genesys_breaker_openings WHERE breaker = %s",
                            [task.key]).fetchone() == (1,)


def test_an_unreadable_mirror_means_reading_the_variable_before_every_request(budget_table):
    store = CountingStore()
    down = PostgresBudget(lambda: psycopg.connect("postgresql://postgres@127.0.0.1:1/none", connect_timeout=1),
                          name="mirror-down")
    task = CircuitBreaker("unmirrored", BreakerSettings(cache_seconds=60), store, openings=down)
    for _ in range(3):
        task.acquire()
    assert store.reads == 3


def test_the_hook_trusts_a_closed_breaker_only_with_a_shared_mirror(budget_table, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_MIRROR_CHECK", json.dumps({"conn_type": "genesys_cloud",
                                                                "host": "http://127.0.0.1:9", "login": "a",
                                                                "password": "b"}))
    shared = GenesysHook("mirror_check", state_store=MemoryStateStore(), budget=_budget(budget_table, "hook"))
    local = GenesysHook("mirror_check", state_store=MemoryStateStore(), budget=MemoryBudget())
    assert shared.breaker.settings.cache_seconds == 2.0 and shared.breaker.openings is shared.budget
    assert local.breaker.settings.cache_seconds == 0.0 and local.breaker.openings is None


@pytest.fixture
def two_more_databases(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A second dialer database and a budget database, as Airflow connections ``other_dialer`` and ``budget_pg``
    (created empty: the budget creates its tables on first use)."""
    names = {"other_dialer": f"{SESSION}_other_dialer", "budget_pg": f"{SESSION}_budget"}
    urls = {}
    for conn_id, database in names.items():
        _admin_execute(f'DROP DATABASE IF EXISTS "{database}"')
        _admin_execute(f'CREATE DATABASE "{database}"')
        urls[conn_id] = _with_database(SERVER_URL, database)
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", urls[conn_id])
    yield urls
    close_all()
    for database in names.values():
        _admin_execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _campaign_budget(key: str, **fields: Any) -> PostgresBudget:
    """The budget a campaign's task hooks get (dags.tasks.genesys_hook), for a campaign with these fields."""
    from genesys_dialer.config import CampaignConfig
    from genesys_dialer.dags.tasks import genesys_hook

    campaign = CampaignConfig(key=key, campaign_id=f"id-{key}", genesys_conn_id="budget_a", **fields)
    budget = genesys_hook(campaign).budget
    assert isinstance(budget, PostgresBudget)
    return budget


def _buckets(url: str) -> int | None:
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass('genesys_rate_budget')").fetchone()[0] is None:
            return None
        return conn.execute("SELECT count(*) FROM genesys_rate_budget").fetchone()[0]


def test_campaigns_on_two_dialer_databases_pace_one_client_together_through_one_budget_database(
        limited_emulator, budget_table, two_more_databases):
    """Two campaigns on different dialer databases send through one OAuth client. Each keeping its budget in its
    own database, they pace the client twice over and meet 429s; with budget_postgres_conn_id naming one database
    (as set in the config's defaults), their 60 requests queue on one bucket there: no 429."""
    apart = [_campaign_budget("a"), _campaign_budget("b", postgres_conn_id="other_dialer")]
    _run_parallel([("budget_a", 30, apart[0]), ("budget_a", 30, apart[1])])
    statuses = [e["status"] for e in _calls(limited_emulator)]
    assert statuses.count(429) >= 5, statuses  # the control: two buckets for one client
    assert _buckets(budget_table) == 1 and _buckets(two_more_databases["other_dialer"]) == 1

    limited_emulator.rate_limiter.reset()  # a fresh window of the client's limit
    limited_emulator.clear_requests_log()
    shared = {"budget_postgres_conn_id": "budget_pg"}
    together = [_campaign_budget("a", **shared), _campaign_budget("b", postgres_conn_id="other_dialer", **shared)]
    elapsed = _run_parallel([("budget_a", 30, together[0]), ("budget_a", 30, together[1])])
    calls = _calls(limited_emulator)
    assert len(calls) == 60 and all(e["status"] == 200 for e in calls), [e["status"] for e in calls]
    assert elapsed >= 59 * 60 / (PACED_PER_MINUTE * BUDGET_SHARE) * 0.95
    assert _buckets(two_more_databases["budget_pg"]) == 1
