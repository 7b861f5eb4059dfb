"""The hook's credentials and reachability: a cached token belongs to the secret it was issued for, and an
unreachable Genesys is named (host and underlying error), not only reported as "circuit breaker open".

Real HTTP throughout: an emulator of its own whose client secret the test rotates (as an admin would in
Genesys), the shared test emulator with dropped connections, and a port nothing listens on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support import CAMPAIGN_ID, CAMPAIGN_ROUTE, free_port
from test_hook import Clock

from genesys_dialer.genesys import auth
from genesys_dialer.genesys.auth import CachedToken
from genesys_dialer.genesys.breaker import OPEN, BreakerSettings
from genesys_dialer.genesys.errors import GenesysAuthError, GenesysCircuitOpenError, GenesysTransientError
from genesys_dialer.genesys.hook import OUTBOUND, GenesysHook
from genesys_dialer.genesys.state import MemoryStateStore

CLIENT_ID = "rotating-client"
OLD_SECRET = "old-secret-4f1c9a"
NEW_SECRET = "new-secret-8b2e77"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rotating() -> Iterator[Any]:
    """An emulator of its own, so its accepted client secret can change without touching other tests."""
    from genesys_emulator import EmulatorServer

    auth.token_cache.clear()
    with EmulatorServer(port=0, client_id=CLIENT_ID, client_secret=OLD_SECRET, rate_limit_per_minute=0) as server:
        yield server
    auth.token_cache.clear()


def make_hook(clock: Clock, conn_id: str = "genesys_default", *, state_store: MemoryStateStore | None = None,
              **kwargs: Any) -> GenesysHook:
    """A hook whose waiting is instant; ``state_store`` is the shared Variable store (a fresh one if not given)."""
    hook = GenesysHook(conn_id, state_store=state_store or MemoryStateStore(), sleep=clock.sleep,
                       breaker_settings=BreakerSettings(probe_settle_seconds=0), **kwargs)
    hook.breaker._clock = clock
    return hook


def _point(monkeypatch: pytest.MonkeyPatch, conn_id: str, host: str, secret: str) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(
        {"conn_type": "genesys_cloud", "host": host, "login": CLIENT_ID, "password": secret}))


def _list_campaigns(hook: GenesysHook) -> Any:
    return hook.request("GET", f"{OUTBOUND}/campaigns", params={"pageSize": 1}, endpoint="campaign_list")


def _routes(server: Any) -> list[tuple[str, int]]:
    return [(r["route"], r["status"]) for r in server.requests_log()]


def test_after_the_secret_changes_the_next_request_uses_a_token_of_the_new_secret(rotating, clock, monkeypatch):
    store = MemoryStateStore()  # the Variable every worker shares
    _point(monkeypatch, "genesys_rotating", rotating.base_url, OLD_SECRET)
    first = make_hook(clock, "genesys_rotating", state_store=store)
    _list_campaigns(first)
    old_token = auth.token_cache["genesys_rotating"].access_token

    # An admin resets the client secret in Genesys and updates the Airflow connection.
    rotating.config.client_secret = NEW_SECRET
    _point(monkeypatch, "genesys_rotating", rotating.base_url, NEW_SECRET)
    second = make_hook(clock, "genesys_rotating", state_store=store)
    _list_campaigns(second)

    assert second.stats.token_refreshes == 1, "the token the old secret got was reused"
    new_token = auth.token_cache["genesys_rotating"].access_token
    assert new_token != old_token
    assert store.get(second._token_variable)["access_token"] == new_token  # what other workers now pick up
    assert _routes(rotating) == [("POST /oauth/token", 200), ("GET /api/v2/outbound/campaigns", 200)] * 2
    stored = json.dumps(store.get(second._token_variable))
    assert OLD_SECRET not in stored and NEW_SECRET not in stored

    # A worker whose process cache is empty reads the shared record: it matches the new secret only.
    auth.token_cache.clear()
    third = make_hook(clock, "genesys_rotating", state_store=store)
    _list_campaigns(third)
    assert third.stats.token_refreshes == 0


def test_a_wrong_secret_fails_at_once_with_invalid_client_while_a_token_is_cached(rotating, clock, monkeypatch):
    store = MemoryStateStore()
    _point(monkeypatch, "genesys_rotating", rotating.base_url, OLD_SECRET)
    _list_campaigns(make_hook(clock, "genesys_rotating", state_store=store))
    assert store.get("genesys_access_token__genesys_rotating"), "a valid token is cached and shared"

    wrong = "typo-in-the-secret"
    _point(monkeypatch, "genesys_rotating", rotating.base_url, wrong)
    hook = make_hook(clock, "genesys_rotating", state_store=store)
    with pytest.raises(GenesysAuthError) as info:
        _list_campaigns(hook)
    message = str(info.value)
    assert "invalid_client" in message and "genesys_rotating" in message and wrong not in message
    # At once: one refused token request, no API call on the old secret's token, no retry, no sleeping.
    assert _routes(rotating)[2:] == [("POST /oauth/token", 401)]
    assert clock.sleeps == []


def test_an_unreachable_host_is_named_with_the_underlying_error(clock, monkeypatch):
    """Nothing listens on the port: the token request fails naming host:port and "Connection refused"."""
    port = free_port()
    _point(monkeypatch, "genesys_down", f"http://127.0.0.1:{port}", OLD_SECRET)
    hook = make_hook(clock, "genesys_down")
    with pytest.raises(GenesysTransientError) as info:
        hook.get_campaign(CAMPAIGN_ID)
    message = str(info.value)
    assert f"OAuth token request to 127.0.0.1:{port} failed" in message
    assert "ConnectionRefusedError" in message and "Connection refused" in message


def test_when_the_breaker_opens_on_an_unreachable_api_the_error_still_names_host_and_cause(clock, monkeypatch):
    """A token is cached (Genesys was up), then the API host goes away: connection refused three times opens
    the breaker. The call's error, and the next task's, say where and why, not only "circuit breaker open"."""
    port = free_port()
    _point(monkeypatch, "genesys_gone", f"http://127.0.0.1:{port}", OLD_SECRET)
    hook = make_hook(clock, "genesys_gone", max_breaker_wait=0)
    fingerprint = hook._connection.fingerprint
    auth.token_cache["genesys_gone"] = CachedToken("still-valid-token", time.time() + 3600, fingerprint)
    with pytest.raises(GenesysCircuitOpenError) as info:
        hook.get_campaign(CAMPAIGN_ID)
    assert hook.breaker.state() == OPEN and hook.stats.requests == 3  # the third failure opened it
    message = str(info.value)
    assert "circuit breaker for connection 'genesys_gone' is open" in message
    assert f"request to 127.0.0.1:{port} failed" in message and "Connection refused" in message

    other = make_hook(clock, "genesys_gone", state_store=hook.breaker.store, max_breaker_wait=0)
    with pytest.raises(GenesysCircuitOpenError) as info:
        other.get_campaign(CAMPAIGN_ID)  # another task: nothing sent, and still told why
    assert f"127.0.0.1:{port}" in str(info.value) and "Connection refused" in str(info.value)


def test_dropped_connections_at_the_emulator_name_its_host_and_the_disconnect(emulator, clock, caplog):
    # A read (repeatable: a contacts POST without an answer is never repeated, tests/test_hook.py) whose
    # connection Genesys drops each time: retried, then the breaker opens, every message naming host and cause.
    emulator.fault(route=CAMPAIGN_ROUTE, dropAfterApply=10)
    hook = make_hook(clock, max_breaker_wait=0)
    with caplog.at_level("WARNING", logger="genesys_dialer.genesys.hook"), \
            pytest.raises(GenesysCircuitOpenError) as info:
        hook.get_campaign(CAMPAIGN_ID)
    host = emulator.base_url.removeprefix("http://")
    assert f"request to {host} failed: ConnectionError" in str(info.value)
    assert "RemoteDisconnected" in str(info.value)
    retries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Retrying")]
    assert len(retries) == 3 and all(host in line and "RemoteDisconnected" in line for line in retries)
