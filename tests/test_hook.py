"""GenesysHook against the in-process emulator: retries, Retry-After, token refresh, classification.

Fast: the hook's sleep is a recorder (no real waiting) and its state lives in a fresh in-memory store, so
no Variables and no Airflow stack are involved. What is asserted comes from the emulator's request log and
contact list, not from the hook's own word.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import threading
import time
from typing import Any

import pytest
import requests
from airflow.sdk.definitions.retry_policy import RetryAction
from support import CAMPAIGN_ID, CONTACT_LIST_ID, CONTACTS_ROUTE, EMULATOR_CLIENT_SECRET, Emulator, free_port

from genesys_dialer.exceptions import ConfigError
from genesys_dialer.genesys.auth import ConnectionInfo
from genesys_dialer.genesys.breaker import CLOSED, HALF_OPEN, OPEN, BreakerSettings
from genesys_dialer.genesys.errors import (
    GenesysAuthError,
    GenesysCircuitOpenError,
    GenesysClientError,
    GenesysNotFoundError,
    GenesysOutcomeUnknownError,
    GenesysResponseError,
    GenesysServerError,
    GenesysTransientError,
    classify_response,
    retry_after_seconds,
)
from genesys_dialer.genesys.hook import GenesysHook
from genesys_dialer.genesys.retry import RETRY_POLICY
from genesys_dialer.genesys.state import MemoryStateStore

PHONE = "+13175550123"


class Clock:
    """A fake clock for the breaker; ``sleep`` advances it, so waiting is instant and exact."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(autouse=True)
def _no_cached_token() -> None:
    """Tokens are cached per process and connection id: start every test without one."""
    from genesys_dialer.genesys import auth

    auth.token_cache.clear()


def make_hook(clock: Clock, conn_id: str = "genesys_default", **kwargs: Any) -> GenesysHook:
    kwargs.setdefault("breaker_settings", BreakerSettings(probe_settle_seconds=0))
    hook = GenesysHook(conn_id, state_store=MemoryStateStore(), sleep=clock.sleep, **kwargs)
    hook.breaker._clock = clock
    return hook


def fake_hook(clock: Clock, responses: list[Any], **kwargs: Any) -> tuple[GenesysHook, Any]:
    """A hook answered by canned responses, with a connection of its own (no Airflow connection lookup)."""
    hook = make_hook(clock, **kwargs)
    hook.__dict__["_connection"] = ConnectionInfo("http://x", "http://x/oauth/token", "id", "s", {})
    session = FakeSession(responses)
    hook._session = session  # type: ignore[assignment]
    return hook, session


def contacts(n: int, start: int = 1) -> list[dict[str, Any]]:
    return [{"id": f"c{i}", "contactListId": CONTACT_LIST_ID, "data": {"phone": PHONE, "segment": "s"},
             "callable": True} for i in range(start, start + n)]


def api_log(emulator: Emulator, route: str = CONTACTS_ROUTE) -> list[dict[str, Any]]:
    return [r for r in emulator.requests_log() if r["route"] == route]


def test_429_storm_waits_retry_after_and_logs_status_attempt_and_context_id(emulator, clock, caplog):
    emulator.fault(route=CONTACTS_ROUTE, sequence=[429, 429, 429], retryAfter=2)
    hook = make_hook(clock)
    with caplog.at_level(logging.WARNING, logger="genesys_dialer.genesys.hook"):
        stored = hook.add_contacts(CONTACT_LIST_ID, contacts(5))
    assert len(stored) == 5
    posts = api_log(emulator)
    assert [p["status"] for p in posts] == [429, 429, 429, 200]
    assert len(clock.sleeps) == 3 and all(2.0 <= s <= 2.2 for s in clock.sleeps)  # Retry-After + jitter
    assert hook.stats.as_dict() == {"requests": 5, "retries": 3, "token_refreshes": 1, "throttled": 3}
    retries = [r.getMessage() for r in caplog.records if "Retrying" in r.getMessage()]
    assert len(retries) == 3
    for attempt, (line, post) in enumerate(zip(retries, posts[:3], strict=True), start=1):
        assert f"attempt {attempt} of 5" in line and "429" in line and post["correlationId"] in line
    assert hook.breaker.state() == CLOSED  # throttling is not an outage


def test_503_honours_retry_after_when_present_and_backs_off_exponentially_otherwise(emulator, clock):
    emulator.fault(route=CONTACTS_ROUTE, sequence=[503], retryAfter=4)
    hook = make_hook(clock)
    hook.add_contacts(CONTACT_LIST_ID, contacts(1))
    assert 4.0 <= clock.sleeps[0] <= 4.4

    emulator.fault(route=CONTACTS_ROUTE, sequence=[502, 504])
    clock.sleeps.clear()
    hook = make_hook(clock, backoff_base=1.0, breaker_settings=BreakerSettings(failure_threshold=10))
    hook.add_contacts(CONTACT_LIST_ID, contacts(1))
    assert 0.5 <= clock.sleeps[0] <= 1.0 and 1.0 <= clock.sleeps[1] <= 2.0


def test_transient_errors_give_up_after_max_attempts_with_a_classified_error(emulator, clock):
    emulator.fault(route=CONTACTS_ROUTE, sequence=[503] * 3)
    hook = make_hook(clock, max_attempts=3, breaker_settings=BreakerSettings(failure_threshold=10))
    with pytest.raises(GenesysTransientError, match=r"gave up after 3 attempts.*HTTP 503.*contextId=") as info:
        hook.add_contacts(CONTACT_LIST_ID, contacts(1))
    assert info.value.status == 503 and info.value.transient
    assert str(info.value).count("HTTP 503") == 1 and str(info.value).count("contextId=") == 1
    assert len(api_log(emulator)) == 3 and emulator.contacts() == []


def test_a_long_retry_after_ends_the_call_so_the_task_retry_waits_instead(emulator, clock):
    emulator.fault(route=CONTACTS_ROUTE, sequence=[429], retryAfter=120)
    hook = make_hook(clock, max_retry_after=60)
    with pytest.raises(GenesysTransientError) as info:
        hook.add_contacts(CONTACT_LIST_ID, contacts(1))
    assert info.value.retry_after == 120 and clock.sleeps == []


@pytest.mark.parametrize(
    ("status", "error", "method"),
    [(500, GenesysServerError, "POST"), (400, GenesysClientError, "POST"), (413, GenesysClientError, "POST"),
     (404, GenesysNotFoundError, "POST"), (403, GenesysAuthError, "POST"), (409, GenesysClientError, "PATCH")],
)
def test_non_transient_errors_are_not_retried(emulator, clock, status, error, method):
    route = CONTACTS_ROUTE if method == "POST" else "PATCH /api/v2/outbound/campaigns/{campaignId}"
    emulator.fault(route=route, sequence=[status])
    hook = make_hook(clock)
    with pytest.raises(error, match=f"HTTP {status}") as info:
        if method == "POST":
            hook.add_contacts(CONTACT_LIST_ID, contacts(1))
        else:
            hook.patch_campaign(CAMPAIGN_ID, {"outboundLineCount": 12})
    assert not info.value.transient and info.value.context_id
    assert len(api_log(emulator, route)) == 1 and clock.sleeps == []
    # A 500 counts towards the breaker (Genesys' advice); a client error proves Genesys is up.
    assert hook.breaker._streak == (1 if status == 500 else 0)


def test_401_refreshes_the_token_once_and_repeats_the_call(emulator, clock):
    hook = make_hook(clock)
    hook.get_campaign(CAMPAIGN_ID)
    assert emulator.admin("POST", "tokens/expire")["expired"] >= 1
    assert hook.get_campaign(CAMPAIGN_ID)["id"] == CAMPAIGN_ID
    routes = [(r["route"], r["status"]) for r in emulator.requests_log()]
    assert routes[-3:] == [("GET /api/v2/outbound/campaigns/{campaignId}", 401), ("POST /oauth/token", 200),
                           ("GET /api/v2/outbound/campaigns/{campaignId}", 200)]
    assert hook.stats.token_refreshes == 2 and hook.stats.retries == 0


def test_a_second_401_fails_clearly_and_a_403_names_the_missing_permission(emulator, clock):
    emulator.fault(route="GET /api/v2/outbound/campaigns/{campaignId}", sequence=[401, 401])
    hook = make_hook(clock)
    with pytest.raises(GenesysAuthError, match="401 again after a token refresh: check the OAuth client"):
        hook.get_campaign(CAMPAIGN_ID)
    assert [r["status"] for r in emulator.requests_log() if r["route"] != "POST /oauth/token"] == [401, 401]

    response = fake_response(403, {"message": "Unable to perform the requested action. You are missing the "
                                               "following permission(s): [outbound:contact:add]",
                                    "code": "missing.permissions", "status": 403, "contextId": "ctx-403",
                                    "messageParams": {"permissions": "outbound:contact:add"}})
    error = classify_response(response, "POST", "/api/v2/outbound/contactlists/x/contacts")
    assert isinstance(error, GenesysAuthError)
    assert "missing permission outbound:contact:add" in str(error) and "contextId=ctx-403" in str(error)


def test_a_wrong_secret_is_an_auth_error_without_the_secret(emulator, clock, monkeypatch):
    conn = json.loads(os.environ["AIRFLOW_CONN_GENESYS_DEFAULT"])
    wrong = "wrong-secret-value-123"
    monkeypatch.setenv("AIRFLOW_CONN_GENESYS_WRONG", json.dumps({**conn, "password": wrong}))
    with pytest.raises(GenesysAuthError) as info:
        make_hook(clock, "genesys_wrong").get_campaign(CAMPAIGN_ID)
    assert "invalid_client" in str(info.value) and wrong not in str(info.value)


def test_a_contacts_post_without_an_answer_is_not_repeated_and_the_list_tells_what_happened(emulator, clock):
    """The emulator stores the contacts, then closes the connection: re-sending would queue them again."""
    emulator.fault(route=CONTACTS_ROUTE, dropAfterApply=1)
    records = []
    hook = make_hook(clock, on_request=records.append)
    with pytest.raises(GenesysOutcomeUnknownError, match="may have been applied") as info:
        hook.add_contacts(CONTACT_LIST_ID, contacts(10))
    assert info.value.reason == "connection" and info.value.transient
    posts = api_log(emulator)
    assert [(p["dropped"], p["contactCount"]) for p in posts] == [(True, 10)], "the POST was sent once"
    assert emulator.admin("GET", f"contactlists/{CONTACT_LIST_ID}/queue/history")["entries"] == {
        f"c{i}": 1 for i in range(1, 11)}
    assert hook.stats.retries == 0 and clock.sleeps == []
    assert hook.breaker._streak == 0, "a lost answer is no evidence of an outage"
    # The read-back (a read: retried like any other) says which ids the list holds.
    asked = [f"c{i}" for i in range(1, 13)]
    assert hook.present_contact_ids(CONTACT_LIST_ID, asked) == {f"c{i}" for i in range(1, 11)}
    assert [(r.endpoint, r.status, r.failure, r.items) for r in records if r.endpoint != "token"] == [
        ("contacts_add", None, "connection", 10), ("contacts_bulk_get", 200, None, 12)]

    # A read that loses its answer is simply repeated.
    emulator.fault(route="POST /api/v2/outbound/contactlists/{contactListId}/contacts/bulk", dropAfterApply=1)
    assert hook.present_contact_ids(CONTACT_LIST_ID, asked[:3]) == {"c1", "c2", "c3"}
    assert hook.stats.retries == 1


def test_a_post_that_never_reached_genesys_is_retried(clock, monkeypatch):
    """No connection could be opened: nothing was sent, so the hook's retry is safe even for contacts."""
    monkeypatch.setenv("AIRFLOW_CONN_GENESYS_CLOSED", json.dumps(
        {"conn_type": "genesys_cloud", "host": f"http://127.0.0.1:{free_port()}", "login": "a", "password": "b"}))
    hook = make_hook(clock, "genesys_closed", max_attempts=2, breaker_settings=BreakerSettings(failure_threshold=5))
    hook.get_token = lambda **_: "token"  # type: ignore[method-assign]
    with pytest.raises(GenesysTransientError, match="gave up after 2 attempts") as info:
        hook.add_contacts(CONTACT_LIST_ID, contacts(1))
    assert not isinstance(info.value, GenesysOutcomeUnknownError)
    assert hook.breaker._streak == 2  # a refused connection is an outage signal


def test_latency_past_the_read_timeout_leaves_the_outcome_unknown_and_genesys_applies_it_late(
    emulator, clock, monkeypatch
):
    conn = json.loads(os.environ["AIRFLOW_CONN_GENESYS_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_CONN_GENESYS_FAST", json.dumps({**conn, "extra": {"timeout": [2, 0.3]}}))
    emulator.fault(route=CONTACTS_ROUTE, latencyMs=700)
    hook = make_hook(clock, "genesys_fast", max_attempts=2, breaker_settings=BreakerSettings(failure_threshold=5))
    assert hook.timeout == (2.0, 0.3) and hook.outcome_settle_seconds == 4.6  # 2 x (connect + read)
    unknown = r"may have been applied \(request to \S+ failed: ReadTimeout"
    with pytest.raises(GenesysOutcomeUnknownError, match=unknown) as info:
        hook.add_contacts(CONTACT_LIST_ID, contacts(4))
    assert info.value.reason == "timeout" and str(info.value).count("POST /api/v2/outbound") == 1
    time.sleep(0.6)  # the held request is applied (and logged) after the client gave up on it
    assert len(api_log(emulator)) == 1
    assert hook.present_contact_ids(CONTACT_LIST_ID, ["c1", "c2", "c3", "c4"]) == {"c1", "c2", "c3", "c4"}


@pytest.mark.parametrize("extra", [{"timeout": "soon"}, {"timeout": [1, 2, 3]}, {"breaker_open_seconds": "x"},
                                   {"max_attempts": 0}])
def test_bad_connection_extras_fail_clearly(clock, monkeypatch, extra):
    monkeypatch.setenv("AIRFLOW_CONN_GENESYS_ODD", json.dumps(
        {"conn_type": "genesys_cloud", "host": "http://127.0.0.1:9", "login": "a", "password": "b", "extra": extra}))
    hook = GenesysHook("genesys_odd", state_store=MemoryStateStore())
    with pytest.raises(ConfigError, match="genesys_odd"):
        _ = hook.timeout, hook.max_attempts, hook.breaker


def test_breaker_opens_after_three_failures_and_then_sends_nothing_until_half_open(emulator, clock):
    emulator.fault(route=CONTACTS_ROUTE, sequence=[503, 503, 503])
    hook = make_hook(clock, max_breaker_wait=0)
    with pytest.raises(GenesysCircuitOpenError) as info:
        hook.add_contacts(CONTACT_LIST_ID, contacts(3))
    assert hook.breaker.state() == OPEN and 25 <= info.value.retry_after <= 30
    sent = len(emulator.requests_log())
    other = GenesysHook(state_store=hook.breaker.store, sleep=clock.sleep,
                        breaker_settings=BreakerSettings(probe_settle_seconds=0))
    other.breaker._clock = clock
    with pytest.raises(GenesysCircuitOpenError, match="is open"):
        other.add_contacts(CONTACT_LIST_ID, contacts(3))
    assert len(emulator.requests_log()) == sent  # nothing went out while open

    clock.now += 30
    for start in (1, 4, 7):  # three probes close it
        other.add_contacts(CONTACT_LIST_ID, contacts(3, start))
    assert other.breaker.state() == CLOSED
    assert len(emulator.contacts()) == 9


def test_waits_in_the_task_for_an_almost_half_open_breaker(emulator, clock):
    hook = make_hook(clock, max_breaker_wait=10)
    hook.breaker.store.set(hook.breaker.key, {"opened_at": clock.now - 25, "reason": "test"})
    hook.add_contacts(CONTACT_LIST_ID, contacts(1))  # waits ~5 s, then probes
    assert 5 <= sum(clock.sleeps) <= 6.5
    assert hook.breaker.state() == HALF_OPEN  # one of three probes succeeded


def test_a_401_during_a_probe_keeps_its_slot(emulator, clock):
    hook = make_hook(clock)
    hook.get_campaign(CAMPAIGN_ID)
    hook.breaker.store.set(hook.breaker.key, {"opened_at": clock.now - 31, "reason": "test"})
    emulator.admin("POST", "tokens/expire")
    hook.get_campaign(CAMPAIGN_ID)
    probes = [hook.breaker.store.get(hook.breaker._probe_key(i)) for i in range(3)]
    assert [bool(p and p["ok"]) for p in probes].count(True) == 1
    assert sum(1 for p in probes if p) == 1  # the repeated call did not take a second probe slot


def open_during(hook: GenesysHook, clock: Clock, seconds: float, after: Any = None) -> threading.Thread:
    """Another worker opens the breaker ``seconds`` from now (real time), or that long after ``after()`` holds,
    while this hook waits for a token."""
    def reopen() -> None:
        deadline = time.monotonic() + 30
        while after is not None and not after() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(seconds)
        hook.breaker.store.set(hook.breaker.key, {"opened_at": clock.now, "reason": "another worker's failures"})

    thread = threading.Thread(target=reopen)
    thread.start()
    return thread


def test_a_slow_token_fetch_comes_before_the_breaker_so_nothing_leaves_once_it_opened(emulator, clock):
    emulator.fault(route="POST /oauth/token", latencyMs=1500)
    hook = make_hook(clock, max_breaker_wait=0)
    opener = open_during(hook, clock, 0.3)
    with pytest.raises(GenesysCircuitOpenError, match="is open"):
        hook.get_campaign(CAMPAIGN_ID)
    opener.join()
    assert [r["route"] for r in emulator.requests_log()] == ["POST /oauth/token"]  # the API never saw it


def test_an_open_breaker_refuses_before_any_token_is_fetched(emulator, clock):
    """A new task during an outage: the open breaker answers (the task reschedules, no try spent) without a
    round trip to the login endpoint, which may be down too."""
    hook = make_hook(clock, max_breaker_wait=0)
    hook.breaker.store.set(hook.breaker.key, {"opened_at": clock.now, "reason": "outage"})
    with pytest.raises(GenesysCircuitOpenError, match="is open"):
        hook.get_campaign(CAMPAIGN_ID)
    assert emulator.requests_log() == []


def test_a_probe_whose_breaker_reopened_during_its_401_refresh_is_not_repeated(emulator, clock):
    hook = make_hook(clock, max_breaker_wait=0)
    hook.get_token()
    half_open(hook, clock)
    emulator.admin("POST", "tokens/expire")
    emulator.fault(route="POST /oauth/token", latencyMs=1500)
    def answered() -> bool:
        return any(r["status"] == 401 for r in emulator.requests_log())

    opener = open_during(hook, clock, 0.1, after=answered)  # after the 401 answered, while the refresh waits
    with pytest.raises(GenesysCircuitOpenError, match="is open"):
        hook.get_campaign(CAMPAIGN_ID)
    opener.join()
    routes = [r["route"] for r in emulator.requests_log()]
    assert routes.count("GET /api/v2/outbound/campaigns/{campaignId}") == 1, routes  # the 401, not its repeat
    assert all(not lease or lease["expires_at"] <= clock.now for lease in probe_leases(hook))  # slot freed


# -- malformed responses ----------------------------------------------------------------------------------
def fake_response(status: int, body: Any = None, *, raw: bytes | None = None, content_type: str = "application/json",
                  headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    response.headers.update({"Content-Type": content_type, **(headers or {})})
    response.reason = "Reason"
    return response


class FakeSession:
    """Stands in for requests.Session: a token, then the scripted API responses."""

    def __init__(self, responses: list[requests.Response]) -> None:
        self.responses = responses
        self.headers: dict[str, str] = {}

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:
        return fake_response(200, {"access_token": "tok-secret-xyz", "expires_in": 3600})

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        response = self.responses.pop(0)
        if isinstance(response, BaseException):
            raise response
        return response


HTML = b"<html><body><h1>502 Bad Gateway</h1>nginx</body></html>"


@pytest.mark.parametrize(
    ("responses", "error", "message"),
    [
        ([fake_response(200, raw=HTML, content_type="text/html")], GenesysResponseError,
         "expected JSON, got text/html"),
        ([fake_response(200, raw=b'{"id": "trunc')], GenesysResponseError, "expected JSON"),
        ([fake_response(200, ["not", "a", "campaign"])], GenesysResponseError, "expected a campaign object"),
        ([fake_response(502, raw=HTML, content_type="text/html")] * 2, GenesysTransientError,
         r"non-JSON error body \(text/html; a proxy"),
        ([fake_response(403, raw=HTML, content_type="text/html")], GenesysAuthError, "non-JSON error body"),
        ([fake_response(400, {"message": f"Invalid number {PHONE}", "details": "oops"})], GenesysClientError,
         "Invalid number <number>"),
    ],
)
def test_malformed_responses_give_a_clear_error(clock, responses, error, message):
    hook, _ = fake_hook(clock, list(responses), max_attempts=2)
    with pytest.raises(error, match=message) as info:
        hook.get_campaign(CAMPAIGN_ID)
    assert PHONE not in str(info.value) and "tok-secret-xyz" not in str(info.value)


def test_malformed_token_and_listing_responses(clock):
    hook, session = fake_hook(clock, [fake_response(200, {"entities": [], "pageCount": "many"})])
    session.post = lambda *a, **k: fake_response(200, {"token_type": "bearer"})  # type: ignore[method-assign]
    with pytest.raises(GenesysResponseError, match="no access_token"):
        hook.get_campaign(CAMPAIGN_ID)
    session.post = FakeSession([]).post  # type: ignore[method-assign]
    with pytest.raises(GenesysResponseError, match="integer pageCount"):
        list(hook.search_contacts(CONTACT_LIST_ID))


def test_errors_never_carry_the_token_or_the_secret(emulator, clock):
    emulator.fault(route=CONTACTS_ROUTE, sequence=[400, 500])
    hook = make_hook(clock)
    token = hook.get_token()
    messages = []
    for _ in range(2):
        with pytest.raises(Exception) as info:
            hook.add_contacts(CONTACT_LIST_ID, contacts(2))
        messages.append(str(info.value))
    assert all(token not in m and EMULATOR_CLIENT_SECRET not in m and PHONE not in m for m in messages)


# -- the breaker permit on every exit path ---------------------------------------------------------------
def half_open(hook: GenesysHook, clock: Clock) -> None:
    hook.breaker.store.set(hook.breaker.key, {"opened_at": clock.now - 31, "reason": "test"})


def probe_leases(hook: GenesysHook) -> list[dict[str, Any] | None]:
    return [hook.breaker.store.get(hook.breaker._probe_key(i)) for i in range(hook.breaker.settings.half_open_max)]


def refuse_token(*args: Any, **kwargs: Any) -> requests.Response:
    raise requests.ConnectionError("login endpoint down")


@pytest.mark.parametrize("after_401", [False, True])
def test_a_token_endpoint_failure_while_half_open_does_not_hold_the_probe_slot(clock, after_401):
    """One probe slot: were it leaked, the next call would find it taken (max_breaker_wait=0) for a minute."""
    one_probe = BreakerSettings(half_open_max=1, probe_settle_seconds=0)
    hook, session = fake_hook(clock, [fake_response(401, {"message": "expired"})] if after_401 else [],
                              breaker_settings=one_probe, max_breaker_wait=0)
    if after_401:
        hook.get_token()  # the token the 401 rejects; the refresh then fails
    session.post = refuse_token  # type: ignore[method-assign]
    half_open(hook, clock)
    with pytest.raises(GenesysTransientError, match="OAuth token request to x failed: ConnectionError: login endpoint"):
        hook.get_campaign(CAMPAIGN_ID)
    assert session.responses == []
    assert hook.breaker.state() == HALF_OPEN  # the login endpoint's failure says nothing about the API
    assert all(not lease or lease["expires_at"] <= clock.now for lease in probe_leases(hook))
    session.post = FakeSession([]).post  # type: ignore[method-assign]
    session.responses.append(fake_response(200, {"id": CAMPAIGN_ID}))
    assert hook.get_campaign(CAMPAIGN_ID)["id"] == CAMPAIGN_ID  # the probe slot was free
    assert hook.breaker.state() == CLOSED


@pytest.mark.parametrize("error", [requests.exceptions.ChunkedEncodingError("cut"),
                                   requests.exceptions.ContentDecodingError("garbled")])
def test_a_broken_body_is_a_retried_transient_failure(clock, error):
    hook, session = fake_hook(clock, [error, fake_response(200, {"id": CAMPAIGN_ID})])
    assert hook.get_campaign(CAMPAIGN_ID)["id"] == CAMPAIGN_ID
    assert session.responses == [] and hook.stats.retries == 1 and len(clock.sleeps) == 1

    hook, session = fake_hook(clock, [error])
    half_open(hook, clock)
    with pytest.raises(GenesysCircuitOpenError, match="half-open probe failed: connection"):
        hook.get_campaign(CAMPAIGN_ID)  # the failed probe re-opened the breaker: the retry is not sent
    assert hook.breaker.state() == OPEN and session.responses == []


def test_a_request_that_cannot_be_built_fails_at_once_and_frees_its_probe_slot(clock):
    hook, session = fake_hook(clock, [requests.exceptions.InvalidJSONError("Decimal is not JSON serializable")])
    half_open(hook, clock)
    with pytest.raises(GenesysClientError, match="could not build the request: InvalidJSONError"):
        hook.patch_campaign(CAMPAIGN_ID, {"outboundLineCount": 12})
    assert session.responses == [] and clock.sleeps == [] and hook.stats.retries == 0
    assert hook.breaker.state() == HALF_OPEN and hook.breaker._streak == 0  # not an outage
    assert all(not lease or lease["expires_at"] <= clock.now for lease in probe_leases(hook))
    assert RETRY_POLICY.evaluate(GenesysClientError("x"), 1, 4).action is RetryAction.FAIL


# -- Retry-After and settings ------------------------------------------------------------------------------
def test_retry_after_takes_seconds_or_an_http_date_and_falls_back_on_nonsense():
    assert retry_after_seconds("7", 429) == 7.0 and retry_after_seconds(None, 429) == 3.0
    assert retry_after_seconds(None, 503) is None
    assert retry_after_seconds("7", 502) is None
    in_30s = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= retry_after_seconds(in_30s, 503) <= 30  # type: ignore[operator]
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 429) == 0.0  # already past
    for nonsense in ("inf", "nan", "-5", "soon", "Wed, 21 Oct 9999999999 07:28:00 GMT"):
        assert retry_after_seconds(nonsense, 429) == 3.0, nonsense
    huge = retry_after_seconds("9" * 30, 429)
    assert huge is not None and huge <= 6 * 3600
    error = GenesysTransientError("429", status=429, retry_after=huge)
    assert RETRY_POLICY.evaluate(error, 1, 4).retry_delay.total_seconds() >= huge  # no OverflowError


def test_max_breaker_wait_from_the_extra_keeps_its_fraction(monkeypatch):
    def hook_with(extra: dict[str, Any]) -> GenesysHook:
        monkeypatch.setenv("AIRFLOW_CONN_GENESYS_ODD", json.dumps(
            {"conn_type": "genesys_cloud", "host": "http://127.0.0.1:9", "login": "a", "password": "b",
             "extra": extra}))
        return GenesysHook("genesys_odd", state_store=MemoryStateStore())

    assert hook_with({"max_breaker_wait": 2.5}).max_breaker_wait == 2.5
    assert hook_with({}).max_breaker_wait == 10.0
    for bad in ("soon", -1, "nan"):
        with pytest.raises(ConfigError, match="max_breaker_wait"):
            _ = hook_with({"max_breaker_wait": bad}).max_breaker_wait
