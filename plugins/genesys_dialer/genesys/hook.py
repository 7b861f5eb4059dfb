"""GenesysHook: OAuth client credentials, retries and the shared circuit breaker for Genesys Cloud.

Why not ``HttpHook`` (decided for issue 14, recorded here): HttpHook puts the connection's login and password on
every request as Basic auth, but Genesys wants them only on ``POST login.<region>/oauth/token`` and a Bearer
token on ``api.<region>``; it sends unknown connection extras as HTTP headers (this connection's extras are
tuning, and must never leave the process); it looks the connection up and builds a new session on every call;
and its tenacity retry neither honours ``Retry-After`` nor knows that a contacts POST whose answer was lost must
not be repeated. Building on it would mean overriding ``get_conn``, ``run`` and the retry, keeping nothing but
the connection lookup: no code removed. This hook keeps HttpHook's conventions (``conn_name_attr``,
``get_conn`` returning a ``requests.Session``, ``test_connection``) and adds what Genesys needs.

Connection (type ``genesys_cloud``): ``host`` is a region (``mypurecloud.ie``) or a base URL
(``http://127.0.0.1:8765``, for the emulator: token and API on one port); ``port`` is optional (443 for a
region; a base URL's port); ``login`` is the OAuth client id, ``password`` the client secret. Nothing secret
lives in ``extra``; it holds optional tuning (the form's "Extra Fields"), never sent anywhere: ``timeout``
(seconds, or ``[connect, read]``), ``max_attempts``, ``max_breaker_wait``, ``outcome_settle_seconds``, and the
breaker's ``breaker_failure_threshold``, ``breaker_open_seconds``, ``breaker_half_open_max``,
``breaker_probe_lease_seconds``. Constructor arguments win over extras.

What a call does (docs/resilience.md has the why and the measured behaviour):

* transient failures (429, 502, 503, 504, dropped connections, timeouts, broken bodies) are retried up to
  ``max_attempts`` times with capped exponential backoff and jitter; a 429 (or a 503 that has one) waits
  its ``Retry-After``; a ``Retry-After`` longer than ``max_retry_after`` ends the call with a
  GenesysTransientError carrying it, so the task retry waits instead of holding a worker slot;
* except when the request must not be repeated blindly (a contacts POST re-queues its contacts for dialing):
  then a timeout, a dropped connection or a broken body after the request may have been sent ends the call
  with GenesysOutcomeUnknownError, and the caller reads the list back before sending anything again. A
  connection that could not be opened sent nothing and is retried as usual;
* non-transient answers (400, 403, 404, 409, 413, 500...) raise a classified error at once;
* a 401 refreshes the token once (re-using a token another worker already refreshed) and repeats the call
  under the same breaker permit, confirmed again after the refresh; a second 401 raises GenesysAuthError;
* every attempt asks the shared circuit breaker after any wait for the rate budget, and again after a token
  read or fetch, so that no request leaves on a permit older than that wait; while it is open nothing is sent
  (no token is fetched either) and the call ends with GenesysCircuitOpenError (or waits, up to
  ``max_breaker_wait``, for a half-open probe slot). A request
  without an answer whose outcome is unknown is no evidence of an outage until the caller finds it was lost
  (:meth:`GenesysHook.record_lost_request`);
* every attempt (token requests included) is reported to ``on_request``, which the tasks use to write the
  run's request log in PostgreSQL.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from airflow.sdk import BaseHook
from urllib3.exceptions import NewConnectionError

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
from genesys_dialer.genesys.budget import (
    DEFAULT_REQUESTS_PER_MINUTE,
    Bucket,
    PostgresBudget,
    RateBudget,
    client_key,
)
from genesys_dialer.genesys.errors import (
    GenesysApiError,
    GenesysCircuitOpenError,
    GenesysClientError,
    GenesysOutcomeUnknownError,
    GenesysResponseError,
    GenesysServerError,
    GenesysTransientError,
    classify_response,
    content_type,
    json_or_none,
    network_error_text,
)
from genesys_dialer.genesys.state import StateStore, default_store

log = logging.getLogger(__name__)

OUTBOUND = "/api/v2/outbound"
MAX_CONTACT_IDS_PER_DELETE = 1000
ANALYTICS = "/api/v2/analytics"
DEFAULT_TIMEOUT = (5.0, 30.0)
# How long a hook may trust a closed breaker it read (extra breaker_cache_seconds), when its rate budget mirrors
# the breakers' openings in PostgreSQL: each request then checks that count (a local query) instead of reading the
# Variable through the API server, and an opening is seen at once; this only bounds how long an opening whose
# mirror write failed can go unseen. Without a mirror the default is 0: trusted blindly, a cached reading let a
# POST reach a failing Genesys 0.6 s after another worker opened the breaker (measured, CeleryExecutor, 1.5 s).
DEFAULT_BREAKER_CACHE_SECONDS = 2.0
# Raised while building a request, before anything is sent: a bug or a bad host, not an outage.
_UNSENDABLE = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidHeader,
    requests.exceptions.URLRequired,
    requests.exceptions.InvalidJSONError,
)


# The SDK declares no cap on the ids of one POST .../contacts/bulk; the emulator enforces 1000, as for a
# contacts POST. A read-back never asks for more ids than one contacts POST carried.
BULK_IDS_PER_REQUEST = 1000


@dataclass(frozen=True)
class RequestRecord:
    """One attempt of one call, as the run's request log stores it (no ids, bodies or tokens)."""

    endpoint: str
    method: str
    status: int | None  # None: no HTTP answer
    failure: str | None  # "timeout" / "connection" when there was no answer
    attempt: int  # 1: the call's first attempt; more: a retry inside the hook
    items: int  # contacts (or ids) in the request body
    elapsed_seconds: float


def _not_sent(err: requests.RequestException) -> bool:
    """True when the request certainly never reached Genesys (no connection, or the TLS handshake failed)."""
    if isinstance(err, (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError)):
        return True
    cause = err.args[0] if err.args else None
    return isinstance(cause, NewConnectionError) or isinstance(getattr(cause, "reason", None), NewConnectionError)


@dataclass
class RequestStats:
    """What this hook did, for the run report: requests sent, retries, token refreshes."""

    requests: int = 0
    retries: int = 0
    token_refreshes: int = 0
    throttled: int = 0
    budget_wait_seconds: float = 0.0  # waited for the OAuth client's shared rate budget

    def as_dict(self) -> dict[str, int | float]:
        out: dict[str, int | float] = asdict(self)
        waited = out.pop("budget_wait_seconds")
        if waited:  # only a hook with a rate budget waits
            out["budget_wait_seconds"] = round(waited, 1)
        return out


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
    """Talks to the Genesys Cloud platform API (outbound endpoints) with one OAuth client.

    :param genesys_conn_id: the ``genesys_cloud`` connection: region or base URL, client id, client secret.
    :param timeout: seconds, or (connect, read) seconds, per request; default the extra's ``timeout``, else 5/30.
    :param max_attempts: tries per call for transient failures; default the extra's ``max_attempts``, else 5.
    :param backoff_base: seconds of the first backoff; each retry doubles it (with jitter), up to ``backoff_cap``.
    :param backoff_cap: the longest backoff between two tries, in seconds.
    :param max_retry_after: the longest ``Retry-After`` waited inside the call; a longer one ends the call with
        a GenesysTransientError carrying it, so the task retry waits instead of holding a worker slot.
    :param max_breaker_wait: seconds one call may wait for a half-open probe slot of the circuit breaker;
        default the extra's ``max_breaker_wait``, else 10.
    :param breaker_settings: the breaker's thresholds; default from the connection's ``breaker_*`` extras.
    :param state_store: where the breaker and the token cache share state; default Airflow Variables.
    :param sleep: how to wait (tests pass a fake clock).
    :param budget: the shared rate budget every request takes a token from first (genesys.budget; the DAG's
        tasks pass the dialer database's), at the connection extra ``requests_per_minute`` (default 300,
        Genesys' per-client limit; 0: unpaced); None: no pacing.
    """

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
        on_request: Callable[[RequestRecord], None] | None = None,
        budget: RateBudget | None = None,
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
        self.on_request = on_request
        self.budget = budget

    # -- Airflow connection plumbing ---------------------------------------------------------------
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
        try:
            api_base, token_url = endpoints(conn.host, conn.port)
        except ValueError as err:
            raise ConfigError(f"connection {self.genesys_conn_id!r}: {err}") from None
        return ConnectionInfo(api_base, token_url, conn.login, conn.password, extra if isinstance(extra, dict) else {})

    @property
    def api_base(self) -> str:
        """``https://api.<region>`` (or the base URL of the connection's host), without a trailing slash.

        :raises ConfigError: the connection has no host, client id or secret.
        """
        return self._connection.api_base

    @cached_property
    def timeout(self) -> tuple[float, float]:
        """(connect, read) seconds: the constructor's, else the connection extra's, else 5 / 30.

        :raises ConfigError: the value is not seconds or a [connect, read] pair of positive seconds.
        """
        if self._timeout_arg is not None:
            return _timeout_from(self._timeout_arg, self.genesys_conn_id)
        value = self._connection.extra.get("timeout")
        return DEFAULT_TIMEOUT if value is None else _timeout_from(value, self.genesys_conn_id)

    @cached_property
    def max_attempts(self) -> int:
        """Tries per call for transient failures: the constructor's, else the extra's, else 5.

        :raises ConfigError: the extra is not an integer of at least 1.
        """
        return int(self._setting(self._max_attempts_arg, "max_attempts", 5, minimum=1, cast=int))

    @cached_property
    def max_breaker_wait(self) -> float:
        """How long one call may wait in the task for the breaker (a half-open probe slot) before giving up.

        :raises ConfigError: the extra is not a finite number of at least 0.
        """
        return self._setting(self._max_breaker_wait_arg, "max_breaker_wait", 10.0, minimum=0, cast=float)

    @cached_property
    def outcome_settle_seconds(self) -> float:
        """How long after it was sent a request without an answer may still be applied by Genesys.

        Genesys documents no server-side deadline; the default, twice the client's connect + read timeout,
        assumes none outlives that. A contact whose request had no answer is sent again only if a read-back
        after this long does not find it (docs/resilience.md).
        """
        return self._setting(None, "outcome_settle_seconds", 2 * sum(self.timeout), minimum=0, cast=float)

    def _setting(self, arg: float | None, key: str, default: float, *, minimum: float,
                 cast: type[int] | type[float]) -> float:
        if arg is not None:
            return cast(arg)
        raw = self._connection.extra.get(key)
        if raw is None:  # absent, or left empty in the UI form
            raw = default
        kind = "an integer" if cast is int else "a number"
        try:
            value = cast(raw)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"connection {self.genesys_conn_id!r}: extra {key!r} must be {kind}") from None
        if not math.isfinite(value) or value < minimum:  # a NaN wait would never end
            raise ConfigError(f"connection {self.genesys_conn_id!r}: extra {key!r} must be at least {minimum}")
        return value

    @cached_property
    def requests_per_minute(self) -> float:
        """The OAuth client's request budget: the extra ``requests_per_minute``, else 300 (Genesys' default
        per-client limit); 0 turns pacing off.

        :raises ConfigError: the extra is not a number of at least 0.
        """
        return self._setting(None, "requests_per_minute", DEFAULT_REQUESTS_PER_MINUTE, minimum=0, cast=float)

    @cached_property
    def bucket(self) -> Bucket | None:
        """This client's bucket in the shared budget (None when unpaced)."""
        if self.budget is None or not self.requests_per_minute:
            return None
        info = self._connection
        return Bucket(client_key(info.token_url, info.client_id), self.requests_per_minute)

    def _take_budget(self) -> None:
        bucket = self.bucket
        if bucket is None or self.budget is None:
            return
        waited = self.budget.take(bucket, self._sleep)
        self.stats.budget_wait_seconds += waited

    @cached_property
    def breaker(self) -> CircuitBreaker:
        """The connection's breaker; its probe lease outlives one request's connect + read timeout.

        Shared by every hook (and worker) on the same connection id through the state store.

        :raises ConfigError: a ``breaker_*`` extra is out of range.
        """
        # A budget shared across processes mirrors the breakers' openings (genesys.budget); a process-local one
        # cannot see another worker's opening, so it is no mirror.
        mirror = self.budget if isinstance(self.budget, PostgresBudget) else None
        if self._breaker_settings_arg is not None:
            settings = self._breaker_settings_arg
        else:
            try:
                settings = BreakerSettings.from_extra(
                    self._connection.extra,
                    BreakerSettings(probe_lease_seconds=sum(self.timeout) + 10.0,
                                    cache_seconds=DEFAULT_BREAKER_CACHE_SECONDS if mirror else 0.0),
                )
            except ValueError as err:
                raise ConfigError(f"connection {self.genesys_conn_id!r}: {err}") from None
        return CircuitBreaker(self.genesys_conn_id, settings, self._state_store, sleep=self._sleep, openings=mirror)

    def get_conn(self) -> requests.Session:
        """A keep-alive session reused for every call of this hook (auth is added per request).

        :return: a ``requests.Session`` sending ``Accept: application/json`` and this package's User-Agent;
            no credentials are stored on it.
        """
        if self._session is None:
            session = requests.Session()
            session.headers.update(
                {"Accept": "application/json", "User-Agent": "airflow-genesys-dialer/0.1"}
            )
            self._session = session
        return self._session

    def test_connection(self) -> tuple[bool, str]:
        """The UI's *Test* button: fetch a new token, then ``GET /api/v2/outbound/campaigns?pageSize=1``.

        :return: (True, a short confirmation), or (False, the classified error: status, code, contextId and a
            hint, never the secret).
        """
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
        """Where the breaker and the token cache keep shared state (Airflow Variables unless one was given)."""
        if self._state_store is None:
            self._state_store = default_store()
        return self._state_store

    def get_token(self, *, force_refresh: bool = False, rejected: str | None = None) -> str:
        """A bearer token: from this process, else the shared Variable, else a new one from OAuth.

        A new one is ``POST <login host>/oauth/token`` with ``grant_type=client_credentials`` and HTTP Basic auth
        (client id and secret); it is cached in this process and in the ``genesys_access_token__<conn id>``
        Variable (masked in logs) until shortly (60 s) before it expires.

        :param force_refresh: fetch a new token whatever is cached.
        :param rejected: a token Genesys just answered 401 to: a different, unexpired shared token (another
            worker refreshed first) is used instead of fetching yet another one.
        :return: the access token.
        :raises GenesysAuthError: the token endpoint refused the client (400/401/403: wrong id or secret,
            disabled client).
        :raises GenesysTransientError: the token endpoint could not be reached, or answered 429/502/503/504.
        :raises GenesysServerError: it answered another 5xx; GenesysClientError: another 4xx.
        :raises GenesysResponseError: the token endpoint's answer is not a token.
        :raises ConfigError: the connection lacks a host, client id or secret.
        """
        now = time.time()
        fingerprint = self._connection.fingerprint
        with token_lock:
            if not force_refresh and (token := self._token_in_process(rejected)) is not None:
                return token
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

    def _token_in_process(self, rejected: str | None = None) -> str | None:
        """This process's cached token if it is still usable and not ``rejected`` (no round trip), else None."""
        cached = token_cache.get(self.genesys_conn_id)  # one dict read: no lock needed to look
        if cached and cached.usable(time.time(), self._connection.fingerprint) and cached.access_token != rejected:
            return cached.access_token
        return None

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
            failure = "timeout" if isinstance(err, requests.Timeout) else "connection"
            self._count_request("token", "POST", None, started, failure=failure)
            raise GenesysTransientError(
                f"OAuth token request to {urlsplit(info.token_url).netloc} failed: {network_error_text(err)}",
                method="POST", endpoint=TOKEN_ENDPOINT,
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
        repeatable: bool = True,
    ) -> Any:
        """Send one API call with retries, token refresh and the breaker; return the parsed JSON body.

        Sends ``method`` to ``<api_base><path>`` with ``Authorization: Bearer <token>``. Transient failures
        (429, 502, 503, 504, timeouts, dropped connections) are retried up to ``max_attempts`` times, honouring
        ``Retry-After``; a 401 refreshes the token once and repeats the call; each try first asks the breaker.

        :param method: the HTTP method.
        :param path: the path below the API host, e.g. ``/api/v2/outbound/campaigns/<id>`` (ids URL-quoted).
        :param endpoint: a short, fixed key for logs and metrics (never an id or a URL with ids in it).
        :param params: query parameters.
        :param json: the JSON body.
        :param repeatable: False for a request that must not be repeated blindly: one that may have been sent
            but got no answer ends with GenesysOutcomeUnknownError instead of a retry (answered errors such as
            429 or 503 are still retried: Genesys said it did not apply them).
        :return: the parsed JSON body, or None for 204 / an empty body.
        :raises GenesysOutcomeUnknownError: ``repeatable=False`` and the request may have been applied.
        :raises GenesysCircuitOpenError: the breaker is open (nothing was sent); retry after it half-opens.
        :raises GenesysTransientError: still failing after ``max_attempts``, or a ``Retry-After`` longer than
            ``max_retry_after`` (carried in ``retry_after``).
        :raises GenesysAuthError: 401 again after a refresh, or 403 (names the missing permission if Genesys does).
        :raises GenesysNotFoundError: 404.
        :raises GenesysServerError: 500 (not repeated here; the breaker counts it).
        :raises GenesysClientError: 400, 409, 413 and other 4xx, or a request that could not be built.
        :raises GenesysResponseError: a success status whose body is not JSON.
        """
        url = f"{self.api_base}{path}"
        items = len(json) if isinstance(json, list) else 0
        refreshed_after_401 = False
        attempt = 0
        last_failure: str | None = None  # this call's, for an error that would otherwise only say "breaker open"
        permit: Permit | None = None  # held until its outcome is recorded; None once it is
        try:
            while True:
                attempt += 1
                # The rate budget may wait: wait first, then ask the breaker, so that no request leaves on a
                # permit taken before another worker opened the breaker during the wait.
                self._take_budget()
                if permit is not None and not self.breaker.still_holds(permit):
                    self.breaker.release(permit)  # kept across a 401's refresh, during which the breaker opened
                    permit = None
                if permit is None:
                    permit = self._permit(last_failure)
                token = self._token_in_process()
                if token is None:
                    # Reading the shared token or fetching a new one takes a round trip or more (a second, under
                    # latency): ask the breaker again after it, so that the request does not leave on a permit
                    # older than that wait. An open breaker has answered first, without a token fetch.
                    token = self.get_token()
                    if not self.breaker.still_holds(permit):
                        self.breaker.release(permit)
                        permit = None  # released: not again if asking anew raises
                        permit = self._permit(last_failure)
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
                    reason = "timeout" if isinstance(err, requests.Timeout) else "connection"
                    self._count_request(endpoint, method, None, started, failure=reason, attempt=attempt,
                                        items=items)
                    last_failure = f"request to {urlsplit(url).netloc} failed: {network_error_text(err)}"
                    if not repeatable and not _not_sent(err):
                        # Genesys may have applied it: no evidence of an outage (yet), and not to be repeated.
                        self.breaker.release(permit)
                        permit = None
                        raise GenesysOutcomeUnknownError(
                            f"no answer to a request that may have been applied ({last_failure}); not repeated "
                            "blindly", reason=reason, method=method, endpoint=path,
                        ) from None
                    self.breaker.record_failure(permit, f"{reason}: {last_failure}")
                    permit = None
                    error = GenesysTransientError(f"Genesys Cloud {last_failure}", method=method, endpoint=path)
                    self._retry_or_raise(error, attempt, method, endpoint, reason, None)
                    continue
                self._count_request(endpoint, method, response.status_code, started, attempt=attempt, items=items)
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
                    # half-open probe keeps its slot; a 401 says nothing about Genesys' health). The refresh may
                    # wait, so the permit is confirmed again before the repeat (still closed, or still the
                    # half-open generation).
                    refreshed_after_401 = True
                    log.info("401 from %s %s (contextId=%s): refreshing the access token once",
                             method, endpoint, error.context_id)
                    self.get_token(rejected=token)
                    attempt -= 1
                    continue
                if status in (401, 403, 429):
                    self.breaker.release(permit)  # neither an outage nor proof of health
                elif isinstance(error, (GenesysTransientError, GenesysServerError)):
                    last_failure = f"HTTP {status} from {urlsplit(url).netloc}: {error.message}"
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

    def _count_request(self, endpoint: str, method: str, status: int | None, started: float, *,
                       failure: str | None = None, attempt: int = 1, items: int = 0) -> None:
        elapsed = time.monotonic() - started
        metrics.api_request(endpoint, method, status, elapsed)
        self.stats.requests += 1
        if self.on_request is not None:
            try:
                self.on_request(RequestRecord(endpoint, method, status, failure, attempt, items, elapsed))
            except Exception as err:  # the request log is for the report; never fail a call on it
                log.warning("Could not record a request in the request log (%s)", type(err).__name__)

    def record_lost_request(self, reason: str) -> None:
        """A request without an answer turned out not to have been applied: now it counts as a failure."""
        self.breaker.record_failure(Permit(), f"lost request ({reason})")

    def _permit(self, last_failure: str | None) -> Permit:
        """The breaker's leave to send; its refusal names this call's last failure, if there was one."""
        try:
            return self._acquire_permit()
        except GenesysCircuitOpenError as err:
            if last_failure is None:
                raise
            raise GenesysCircuitOpenError(f"{err.message}; this call's last failure: {last_failure}",
                                          retry_after=err.retry_after) from None

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
            "Retrying %s %s after %s (attempt %d of %d, contextId=%s) in %.1f s: %s",
            method, endpoint, reason, attempt, self.max_attempts, error.context_id, delay, error.message,
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
        """``GET /api/v2/outbound/campaigns/{campaign_id}``.

        :return: the campaign (the SDK's ``Campaign``: ``dialingMode``, ``contactList``, ``abandonRate``, ...).
        :raises GenesysNotFoundError: the org has no such campaign; other errors as :meth:`request`.
        """
        return self._expect_dict(
            self.request("GET", f"{OUTBOUND}/campaigns/{quote(campaign_id)}", endpoint="campaign_get"),
            "campaign",
        )

    def patch_campaign(self, campaign_id: str, body: dict[str, Any]) -> None:
        """``PATCH /api/v2/outbound/campaigns/{campaign_id}`` with ``body`` (e.g. ``maxCallsPerAgent``,
        ``outboundLineCount``, ``abandonRate``); Genesys answers 204.

        :raises GenesysClientError: Genesys refused a value (400) or a concurrent change (409); others as
            :meth:`request`.
        """
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
        """``GET /api/v2/outbound/contactlists/{contact_list_id}``.

        :return: the contact list (the SDK's ``ContactList``: ``columnNames``, ``phoneColumns``, ...).
        :raises GenesysNotFoundError: the org has no such list; other errors as :meth:`request`.
        """
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
        """Upsert contacts: ``POST /api/v2/outbound/contactlists/{contact_list_id}/contacts``.

        Each contact carries its own stable ``id``, so a re-sent POST updates instead of duplicating. At most
        1000 contacts per call (Genesys' limit). Never repeated blindly: with ``do_not_queue=False`` every applied
        POST queues its contacts for dialing again, so a POST without an answer raises
        GenesysOutcomeUnknownError and the caller reads the list back (:meth:`present_contact_ids`).

        :param contacts: the SDK's ``WritableDialerContact`` objects (``id``, ``contactListId``, ``data``).
        :param priority: ``priority`` query flag: put them at the front of the dialing queue.
        :param clear_system_data: ``clearSystemData``: forget the dialer's history of re-sent contacts.
        :param do_not_queue: ``doNotQueue``: store without queueing for dialing.
        :return: the stored contacts as Genesys returns them.
        :raises ValueError: a contact has no ``id`` (nothing is sent).
        :raises GenesysOutcomeUnknownError: no answer; Genesys may or may not hold the contacts.
        :raises GenesysClientError: 400 (a bad column or value) or 413 (too many or too large); others as
            :meth:`request`.
        :raises GenesysResponseError: the answer is not the array of stored contacts.
        """
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
            repeatable=False,
        )
        if not isinstance(result, list):
            raise GenesysResponseError("expected the array of stored contacts", endpoint="contacts_add")
        return result

    def delete_contacts(self, contact_list_id: str, contact_ids: list[str]) -> str | None:
        """Remove contacts from a contact list (``DELETE .../contacts?contactIds=a,b``); unknown ids are ignored.

        The withdrawal of delivered contacts that opted out. Genesys deletes only contacts no campaign is using
        at that moment (the SDK's note), so callers check with :meth:`get_contacts`. Returns the response's
        contextId, for the ledger. The SDK states no cap on ids per call; at most
        ``MAX_CONTACT_IDS_PER_DELETE`` keeps the URL short.
        """
        if not contact_ids or len(contact_ids) > MAX_CONTACT_IDS_PER_DELETE:
            raise ValueError(f"delete 1 to {MAX_CONTACT_IDS_PER_DELETE} contacts per call, not {len(contact_ids)}")
        with self._context_ids() as seen:
            self.request(
                "DELETE",
                f"{OUTBOUND}/contactlists/{quote(contact_list_id)}/contacts",
                params={"contactIds": ",".join(contact_ids)},
                endpoint="contacts_delete",
            )
        return seen[-1] if seen else None

    def get_contacts(self, contact_list_id: str, contact_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The contacts of a list with these ids that exist: ``POST .../contacts/bulk``, a read (retried like any).

        :param contact_ids: Genesys contact ids; asked ``BULK_IDS_PER_REQUEST`` at a time.
        :return: the contacts found (ids Genesys does not hold are left out).
        :raises GenesysResponseError: an answer that is not an array of contacts; others as :meth:`request`.
        """
        wanted = list(dict.fromkeys(contact_ids))
        found: list[dict[str, Any]] = []
        for start in range(0, len(wanted), BULK_IDS_PER_REQUEST):
            chunk = wanted[start:start + BULK_IDS_PER_REQUEST]
            body = self.request(
                "POST",
                f"{OUTBOUND}/contactlists/{quote(contact_list_id)}/contacts/bulk",
                json=chunk,
                endpoint="contacts_bulk_get",
            )
            if not isinstance(body, list):
                raise GenesysResponseError("expected the array of contacts found", method="POST",
                                           endpoint="contacts_bulk_get")
            asked = set(chunk)
            found += [c for c in body if isinstance(c, dict) and c.get("id") in asked]
        return found

    def present_contact_ids(self, contact_list_id: str, contact_ids: Iterable[str]) -> set[str]:
        """Which of ``contact_ids`` the list holds: the read-back that settles a request without an answer."""
        return {c["id"] for c in self.get_contacts(contact_list_id, contact_ids)}

    def add_dnc_numbers(self, dnc_list_id: str, phone_numbers: list[str]) -> str | None:
        """Add numbers to an internal DNC list (``PATCH /dnclists/{id}/phonenumbers``, action ``Add``).

        Numbers on a DNC list attached to a campaign are skipped by its dialer. Returns the contextId.
        """
        if not phone_numbers:
            raise ValueError("no phone numbers to add")
        with self._context_ids() as seen:
            self.request(
                "PATCH",
                f"{OUTBOUND}/dnclists/{quote(dnc_list_id)}/phonenumbers",
                json={"action": "Add", "phoneNumbers": list(phone_numbers)},
                endpoint="dnc_numbers_patch",
            )
        return seen[-1] if seen else None

    @contextmanager
    def _context_ids(self) -> Iterator[list[str]]:
        """Genesys' contextId (``ININ-Correlation-Id``) of each response received inside the block, in order:
        the last is that of the call that returned. Read from the session's response hook, so the request path
        itself stays as it is."""
        seen: list[str] = []

        def record(response: requests.Response, *args: Any, **kwargs: Any) -> None:
            context_id = response.headers.get("ININ-Correlation-Id")
            if context_id:
                seen.append(context_id)

        hooks = self.get_conn().hooks["response"]
        hooks.append(record)
        try:
            yield seen
        finally:
            hooks.remove(record)

    def search_contacts(self, contact_list_id: str, page_size: int = 100) -> Iterable[dict[str, Any]]:
        """Every contact of a list: ``POST .../contactlists/{contact_list_id}/contacts/search``, page by page.

        :param page_size: contacts per request (the API's maximum is 100).
        :return: an iterator over the contacts (one request per page, as the iteration goes).
        :raises GenesysResponseError: a page without an ``entities`` list and an integer ``pageCount``; others
            as :meth:`request`.
        """
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
