"""GenesysHook: OAuth client credentials, retries and the shared circuit breaker for Genesys Cloud.

Why not ``HttpHook``: Genesys serves the token from ``login.<region>`` and the API from ``api.<region>``,
``HttpHook`` sends unknown connection extras as HTTP headers, looks the connection up and builds a new
session on every call, and its tenacity retry cannot honour ``Retry-After``. This hook keeps HttpHook's
conventions (``conn_name_attr``, ``get_conn`` returning a ``requests.Session``, ``test_connection``) and
adds what Genesys needs.

Connection (type ``genesys_cloud``): ``host`` is a region (``mypurecloud.ie``) or a base URL
(``http://127.0.0.1:8765``, for the emulator: token and API on one port); ``login`` is the OAuth client
id, ``password`` the client secret. Nothing secret lives in ``extra``; it holds optional tuning, never sent
anywhere: ``timeout`` (seconds, or ``[connect, read]``), ``max_attempts``, ``max_breaker_wait``, and the
breaker's ``breaker_failure_threshold``, ``breaker_open_seconds``, ``breaker_half_open_max``,
``breaker_probe_lease_seconds``. Constructor arguments win over extras.

What a call does (docs/resilience.md has the why and the measured behaviour):

* transient failures (429, 502, 503, 504, dropped connections, timeouts, broken bodies) are retried up to
  ``max_attempts`` times with capped exponential backoff and jitter; a 429 (or a 503 that has one) waits
  its ``Retry-After``; a ``Retry-After`` longer than ``max_retry_after`` ends the call with a
  GenesysTransientError carrying it, so the task retry waits instead of holding a worker slot;
* non-transient answers (400, 403, 404, 409, 413, 500...) raise a classified error at once;
* a 401 refreshes the token once (re-using a token another worker already refreshed) and repeats the call
  under the same breaker permit; a second 401 raises GenesysAuthError;
* every attempt first asks the shared circuit breaker; while it is open nothing is sent and the call ends
  with GenesysCircuitOpenError (or waits, up to ``max_breaker_wait``, for a half-open probe slot).
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any
from urllib.parse import quote

import requests
from airflow.sdk import BaseHook

from genesys_dialer import metrics
from genesys_dialer.exceptions import ConfigError
from genesys_dialer.genesys.auth import (
    TOKEN_ENDPOINT,
    CachedToken,
    ConnectionInfo,
    basic_authorization,
    endpoints,
    mask_secret,
    token_cache,
    token_from_response,
    token_lock,
)
from genesys_dialer.genesys.breaker import BreakerSettings, CircuitBreaker, Permit
from genesys_dialer.genesys.errors import (
    GenesysApiError,
    GenesysCircuitOpenError,
    GenesysClientError,
    GenesysResponseError,
    GenesysServerError,
    GenesysTransientError,
    classify_response,
    content_type,
    json_or_none,
)
from genesys_dialer.genesys.state import StateStore, default_store

log = logging.getLogger(__name__)

OUTBOUND = "/api/v2/outbound"
ANALYTICS = "/api/v2/analytics"
DEFAULT_TIMEOUT = (5.0, 30.0)
# Raised while building a request, before anything is sent: a bug or a bad host, not an outage.
_UNSENDABLE = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidHeader,
    requests.exceptions.URLRequired,
    requests.exceptions.InvalidJSONError,
)


@dataclass
class RequestStats:
    """What this hook did, for the run report: requests sent, retries, token refreshes."""

    requests: int = 0
    retries: int = 0
    token_refreshes: int = 0
    throttled: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _timeout_from(value: Any, conn_id: str) -> tuple[float, float]:
    """``5`` or ``[3, 30]`` (connect, read seconds) from a connection extra."""
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            pair = (float(value), float(value))
        elif isinstance(value, (list, tuple)) and len(value) == 2:
            pair = (float(value[0]), float(value[1]))
        else:
            raise ValueError
        if min(pair) <= 0:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(
            f"connection {conn_id!r}: extra 'timeout' must be seconds or [connect, read] seconds, got {value!r}"
        ) from None
    return pair


class GenesysHook(BaseHook):
    """Talks to the Genesys Cloud platform API (outbound endpoints) with one OAuth client."""

    conn_name_attr = "genesys_conn_id"
    default_conn_name = "genesys_default"
    conn_type = "genesys_cloud"
    hook_name = "Genesys Cloud"

    def __init__(
        self,
        genesys_conn_id: str = default_conn_name,
        *,
        timeout: float | tuple[float, float] | None = None,
        max_attempts: int | None = None,
        backoff_base: float = 1.0,
        backoff_cap: float = 30.0,
        max_retry_after: float = 60.0,
        max_breaker_wait: float | None = None,
        breaker_settings: BreakerSettings | None = None,
        state_store: StateStore | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        self.genesys_conn_id = genesys_conn_id
        self._timeout_arg = timeout
        self._max_attempts_arg = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_after = max_retry_after
        self._max_breaker_wait_arg = max_breaker_wait
        self._breaker_settings_arg = breaker_settings
        self._state_store = state_store
        self.stats = RequestStats()
        self._sleep = sleep
        self._session: requests.Session | None = None

    # -- Airflow connection plumbing ---------------------------------------------------------------
    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden-fields": ["schema", "port"],
            "relabeling": {"host": "Region or base URL", "login": "Client ID", "password": "Client Secret"},
            "placeholders": {
                "host": "mypurecloud.ie (or http://genesys-emulator:8765)",
                "login": "OAuth client id (client credentials grant)",
                "password": "OAuth client secret",
                "extra": '{"timeout": [5, 30], "breaker_open_seconds": 30} (tuning only, never secrets)',
            },
        }

    @cached_property
    def _connection(self) -> ConnectionInfo:
        """The connection, looked up once per hook."""
        conn = self.get_connection(self.genesys_conn_id)
        if not conn.host:
            raise ConfigError(
                f"connection {self.genesys_conn_id!r} has no host: set a region (mypurecloud.ie) or base URL"
            )
        if not conn.login or not conn.password:
            raise ConfigError(
                f"connection {self.genesys_conn_id!r} needs the OAuth client id (login) and secret (password)"
            )
        try:
            extra = conn.extra_dejson or {}
        except Exception:
            extra = {}
        api_base, token_url = endpoints(conn.host)
        return ConnectionInfo(api_base, token_url, conn.login, conn.password, extra if isinstance(extra, dict) else {})

    @property
    def api_base(self) -> str:
        return self._connection.api_base

    @cached_property
    def timeout(self) -> tuple[float, float]:
        """(connect, read) seconds: the constructor's, else the connection extra's, else 5 / 30."""
        if self._timeout_arg is not None:
            return _timeout_from(self._timeout_arg, self.genesys_conn_id)
        value = self._connection.extra.get("timeout")
        return DEFAULT_TIMEOUT if value is None else _timeout_from(value, self.genesys_conn_id)

    @cached_property
    def max_attempts(self) -> int:
        return int(self._setting(self._max_attempts_arg, "max_attempts", 5, minimum=1, cast=int))

    @cached_property
    def max_breaker_wait(self) -> float:
        """How long one call may wait in the task for the breaker (a half-open probe slot) before giving up."""
        return self._setting(self._max_breaker_wait_arg, "max_breaker_wait", 10.0, minimum=0, cast=float)

    def _setting(self, arg: float | None, key: str, default: float, *, minimum: float,
                 cast: type[int] | type[float]) -> float:
        if arg is not None:
            return cast(arg)
        raw = self._connection.extra.get(key, default)
        kind = "an integer" if cast is int else "a number"
        try:
            value = cast(raw)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"connection {self.genesys_conn_id!r}: extra {key!r} must be {kind}") from None
        if not math.isfinite(value) or value < minimum:  # a NaN wait would never end
            raise ConfigError(f"connection {self.genesys_conn_id!r}: extra {key!r} must be at least {minimum}")
        return value

    @cached_property
    def breaker(self) -> CircuitBreaker:
        """The connection's breaker; its probe lease outlives one request's connect + read timeout."""
        if self._breaker_settings_arg is not None:
            settings = self._breaker_settings_arg
        else:
            try:
                settings = BreakerSettings.from_extra(
                    self._connection.extra,
                    BreakerSettings(probe_lease_seconds=sum(self.timeout) + 10.0),
                )
            except ValueError as err:
                raise ConfigError(f"connection {self.genesys_conn_id!r}: {err}") from None
        return CircuitBreaker(self.genesys_conn_id, settings, self._state_store, sleep=self._sleep)

    def get_conn(self) -> requests.Session:
        """A keep-alive session reused for every call of this hook (auth is added per request)."""
        if self._session is None:
            session = requests.Session()
            session.headers.update(
                {"Accept": "application/json", "User-Agent": "airflow-genesys-dialer/0.1"}
            )
            self._session = session
        return self._session

    def test_connection(self) -> tuple[bool, str]:
        try:
            self.get_token(force_refresh=True)
            self.request("GET", f"{OUTBOUND}/campaigns", params={"pageSize": 1}, endpoint="campaign_list")
        except (GenesysApiError, ConfigError) as err:
            return False, str(err)
        return True, "Token issued and outbound campaigns readable."

    # -- OAuth -------------------------------------------------------------------------------------
    @property
    def _token_variable(self) -> str:
        # "token" in the key makes Airflow mask the value in logs and the UI.
        return f"genesys_access_token__{self.genesys_conn_id}"

    @property
    def state_store(self) -> StateStore:
        if self._state_store is None:
            self._state_store = default_store()
        return self._state_store

    def get_token(self, *, force_refresh: bool = False, rejected: str | None = None) -> str:
        """A bearer token: from this process, else the shared Variable, else a new one from OAuth.

        ``rejected`` is a token Genesys just answered 401 to: a different, unexpired shared token (another
        worker refreshed first) is used instead of fetching yet another one.
        """
        now = time.time()
        fingerprint = self._connection.fingerprint
        with token_lock:
            cached = token_cache.get(self.genesys_conn_id)
            if not force_refresh and cached and cached.usable(now, fingerprint) and cached.access_token != rejected:
                return cached.access_token
            if not force_refresh:
                shared = self._read_shared_token()
                if shared and shared.usable(now, fingerprint) and shared.access_token != rejected:
                    mask_secret(shared.access_token)
                    token_cache[self.genesys_conn_id] = shared
                    return shared.access_token
            token = self._fetch_token(fingerprint)
            token_cache[self.genesys_conn_id] = token
            self._write_shared_token(token)
            return token.access_token

    def _read_shared_token(self) -> CachedToken | None:
        try:
            record = self.state_store.get(self._token_variable)
        except Exception as err:  # the cache is an optimisation; never fail a run on it
            log.warning("Could not read the shared token cache (%s); fetching a new token", type(err).__name__)
            return None
        if not record:
            return None
        try:
            return CachedToken(str(record["access_token"]), float(record["expires_at"]), str(record["fingerprint"]))
        except (KeyError, TypeError, ValueError):
            return None

    def _write_shared_token(self, token: CachedToken) -> None:
        try:
            self.state_store.set(self._token_variable, asdict(token))
        except Exception as err:
            log.warning("Could not write the shared token cache (%s)", type(err).__name__)

    def _fetch_token(self, fingerprint: str) -> CachedToken:
        info = self._connection
        started = time.monotonic()
        try:
            response = self.get_conn().post(
                info.token_url,
                data={"grant_type": "client_credentials"},
                headers={"Authorization": basic_authorization(info)},
                timeout=self.timeout,
            )
        except requests.RequestException as err:
            self._count_request("token", "POST", None, started)
            raise GenesysTransientError(
                f"OAuth token request failed: {type(err).__name__}", method="POST", endpoint=TOKEN_ENDPOINT
            ) from None
        self._count_request("token", "POST", response.status_code, started)
        token = token_from_response(response, self.genesys_conn_id, fingerprint)
        self.stats.token_refreshes += 1
        metrics.token_refresh(self.genesys_conn_id)
        return token

    # -- requests ----------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """Send one API call with retries, token refresh and the breaker; return the parsed JSON body.

        ``endpoint`` is a short, fixed key for logs and metrics (never an id or a URL with ids in it).
        """
        url = f"{self.api_base}{path}"
        refreshed_after_401 = False
        attempt = 0
        permit: Permit | None = None  # held until its outcome is recorded; None once it is
        try:
            while True:
                attempt += 1
                if permit is None:
                    permit = self._acquire_permit()
                token = self.get_token()
                started = time.monotonic()
                try:
                    response = self.get_conn().request(
                        method,
                        url,
                        params=params,
                        json=json,
                        headers={"Authorization": f"Bearer {token}"},
                        timeout=self.timeout,
                    )
                except _UNSENDABLE as err:
                    raise GenesysClientError(
                        f"could not build the request: {type(err).__name__}", method=method, endpoint=path
                    ) from None
                except requests.RequestException as err:  # dropped, timed out, or a garbled/truncated body
                    self._count_request(endpoint, method, None, started)
                    reason = "timeout" if isinstance(err, requests.Timeout) else "connection"
                    self.breaker.record_failure(permit, reason)
                    permit = None
                    error = GenesysTransientError(
                        f"Genesys Cloud request failed: {type(err).__name__}", method=method, endpoint=path
                    )
                    self._retry_or_raise(error, attempt, method, endpoint, reason, None)
                    continue
                self._count_request(endpoint, method, response.status_code, started)
                status = response.status_code
                if status < 400:
                    try:
                        body = self._parse(response, method, path)
                    except GenesysResponseError:
                        self.breaker.record_failure(permit, "bad_response")  # something in between is broken
                        permit = None
                        raise
                    self.breaker.record_success(permit)
                    return body
                error = classify_response(response, method, path)
                if status == 401 and not refreshed_after_401:
                    # The token expired or was revoked: refresh once and repeat under the same permit (a
                    # half-open probe keeps its slot; a 401 says nothing about Genesys' health).
                    refreshed_after_401 = True
                    log.info("401 from %s %s (contextId=%s): refreshing the access token once",
                             method, endpoint, error.context_id)
                    self.get_token(rejected=token)
                    attempt -= 1
                    continue
                if status in (401, 403, 429):
                    self.breaker.release(permit)  # neither an outage nor proof of health
                elif isinstance(error, (GenesysTransientError, GenesysServerError)):
                    self.breaker.record_failure(permit, str(status))
                else:
                    self.breaker.record_success(permit)  # Genesys answered: it is up, the request is wrong
                permit = None
                if status == 429:
                    self.stats.throttled += 1
                if isinstance(error, GenesysTransientError):
                    self._retry_or_raise(error, attempt, method, endpoint, str(status), error.retry_after)
                    continue
                raise error
        except BaseException:
            if permit is not None:  # nothing sent, or no outcome (token failure, task killed): free a probe slot
                self.breaker.release(permit)
            raise

    def _count_request(self, endpoint: str, method: str, status: int | None, started: float) -> None:
        metrics.api_request(endpoint, method, status, time.monotonic() - started)
        self.stats.requests += 1

    def _acquire_permit(self) -> Permit:
        """The breaker's leave to send; waits (bounded by max_breaker_wait) for a half-open probe slot."""
        waited = 0.0
        while True:
            try:
                return self.breaker.acquire()
            except GenesysCircuitOpenError as err:
                wait = (err.retry_after or 1.0) * random.uniform(1.0, 1.2)
                if waited + wait > self.max_breaker_wait:
                    raise
                log.info("Circuit breaker not closed: waiting %.1f s before asking again (nothing sent)", wait)
                self._sleep(wait)
                waited += wait

    def _retry_or_raise(
        self,
        error: GenesysTransientError,
        attempt: int,
        method: str,
        endpoint: str,
        reason: str,
        retry_after: float | None,
    ) -> None:
        give_up = attempt >= self.max_attempts
        if retry_after is not None and retry_after > self.max_retry_after:
            give_up = True  # the task retry waits Retry-After; no point holding a worker slot that long
        if give_up:
            raise GenesysTransientError(
                f"gave up after {attempt} attempt{'s' if attempt > 1 else ''}: {error.message}",
                status=error.status,
                code=error.code,
                context_id=error.context_id,
                method=error.method,
                endpoint=error.endpoint,
                retry_after=retry_after,
            ) from None
        delay = self._backoff(attempt, retry_after)
        self.stats.retries += 1
        metrics.api_retry(endpoint, reason)
        log.warning(
            "Retrying %s %s after %s (attempt %d of %d, contextId=%s) in %.1f s",
            method, endpoint, reason, attempt, self.max_attempts, error.context_id, delay,
        )
        self._sleep(delay)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Retry-After (plus up to 10 % jitter) when Genesys gives one; else capped exponential backoff."""
        if retry_after is not None:
            return retry_after + random.uniform(0, min(1.0, retry_after * 0.1))
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    @staticmethod
    def _parse(response: requests.Response, method: str, endpoint: str) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        body = json_or_none(response)
        if body is None:
            raise GenesysResponseError(
                f"expected JSON, got {content_type(response)} (a proxy or gateway page?)",
                status=response.status_code,
                context_id=response.headers.get("ININ-Correlation-Id"),
                method=method,
                endpoint=endpoint,
            )
        return body

    # -- the outbound API this package uses ------------------------------------------------------------
    def get_campaign(self, campaign_id: str) -> dict[str, Any]:
        return self._expect_dict(
            self.request("GET", f"{OUTBOUND}/campaigns/{quote(campaign_id)}", endpoint="campaign_get"),
            "campaign",
        )

    def patch_campaign(self, campaign_id: str, body: dict[str, Any]) -> None:
        self.request(
            "PATCH", f"{OUTBOUND}/campaigns/{quote(campaign_id)}", json=body, endpoint="campaign_patch"
        )

    def put_campaign(self, campaign_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace the whole campaign (``body`` carries its current ``version``; a stale one is a 409)."""
        return self._expect_dict(
            self.request("PUT", f"{OUTBOUND}/campaigns/{quote(campaign_id)}", json=body, endpoint="campaign_put"),
            "campaign",
        )

    def get_campaign_stats(self, campaign_id: str) -> dict[str, Any]:
        """The campaign's live dialer view (``CampaignStats``: idle agents, calls in flight, contact rate)."""
        return self._expect_dict(
            self.request("GET", f"{OUTBOUND}/campaigns/{quote(campaign_id)}/stats", endpoint="campaign_stats"),
            "campaign stats",
        )

    def query_conversation_aggregates(self, query: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/v2/analytics/conversations/aggregates/query`` (a ``ConversationAggregationQuery``)."""
        body = self._expect_dict(
            self.request(
                "POST", f"{ANALYTICS}/conversations/aggregates/query", json=query, endpoint="conversation_aggregates"
            ),
            "conversation aggregates",
        )
        if not isinstance(body.get("results", []), list):
            raise GenesysResponseError(
                "conversation aggregates without a results list", method="POST", endpoint="conversation_aggregates"
            )
        return body

    def get_contact_list(self, contact_list_id: str) -> dict[str, Any]:
        return self._expect_dict(
            self.request("GET", f"{OUTBOUND}/contactlists/{quote(contact_list_id)}", endpoint="contactlist_get"),
            "contact list",
        )

    def add_contacts(
        self,
        contact_list_id: str,
        contacts: list[dict[str, Any]],
        *,
        priority: bool = False,
        clear_system_data: bool = False,
        do_not_queue: bool = False,
    ) -> list[dict[str, Any]]:
        """Upsert contacts (each with its own stable ``id``, so a retried POST cannot duplicate)."""
        missing_ids = sum(1 for c in contacts if not c.get("id"))
        if missing_ids:
            raise ValueError(f"{missing_ids} contacts have no id: a retried POST would duplicate them")
        result = self.request(
            "POST",
            f"{OUTBOUND}/contactlists/{quote(contact_list_id)}/contacts",
            params={
                "priority": str(priority).lower(),
                "clearSystemData": str(clear_system_data).lower(),
                "doNotQueue": str(do_not_queue).lower(),
            },
            json=contacts,
            endpoint="contacts_add",
        )
        if not isinstance(result, list):
            raise GenesysResponseError("expected the array of stored contacts", endpoint="contacts_add")
        return result

    def search_contacts(self, contact_list_id: str, page_size: int = 100) -> Iterable[dict[str, Any]]:
        """Every contact of a list, page by page (the API's page size is at most 100)."""
        page = 1
        while True:
            body = self._expect_dict(
                self.request(
                    "POST",
                    f"{OUTBOUND}/contactlists/{quote(contact_list_id)}/contacts/search",
                    json={"pageNumber": page, "pageSize": page_size},
                    endpoint="contacts_search",
                ),
                "contact listing",
            )
            entities = body.get("entities") or []
            page_count = body.get("pageCount") or 0
            if not isinstance(entities, list) or not isinstance(page_count, int):
                raise GenesysResponseError(
                    "contact listing without an entities list and an integer pageCount",
                    method="POST", endpoint="contacts_search",
                )
            yield from (e for e in entities if isinstance(e, dict))
            if page >= page_count:
                return
            page += 1

    @staticmethod
    def _expect_dict(body: Any, what: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise GenesysResponseError(f"expected a {what} object, got {type(body).__name__}")
        return body
