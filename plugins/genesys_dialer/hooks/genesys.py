"""GenesysHook: OAuth client credentials, retries and the shared circuit breaker for Genesys Cloud.

Why not ``HttpHook``: Genesys serves the token from ``login.<region>`` and the API from ``api.<region>``,
``HttpHook`` sends unknown connection extras as HTTP headers, looks the connection up and builds a new
session on every call, and its tenacity retry cannot honour ``Retry-After``. This hook keeps HttpHook's
conventions (``conn_name_attr``, ``get_conn`` returning a ``requests.Session``, ``test_connection``) and
adds what Genesys needs.

Connection (type ``genesys_cloud``): ``host`` is a region (``mypurecloud.ie``) or a base URL
(``http://127.0.0.1:8765``, for the emulator: token and API on one port); ``login`` is the OAuth client
id, ``password`` the client secret. Nothing secret lives in ``extra``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import quote

import requests
from airflow.sdk import BaseHook

from genesys_dialer import metrics
from genesys_dialer.breaker import BreakerSettings, CircuitBreaker, Permit
from genesys_dialer.exceptions import (
    GenesysApiError,
    GenesysAuthError,
    GenesysCircuitOpenError,
    GenesysClientError,
    GenesysNotFoundError,
    GenesysResponseError,
    GenesysServerError,
    GenesysTransientError,
)
from genesys_dialer.state import StateStore, default_store

log = logging.getLogger(__name__)

OUTBOUND = "/api/v2/outbound"
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
# Genesys' .NET SDK waits 3 s when a 429/503 carries no Retry-After.
DEFAULT_RETRY_AFTER_SECONDS = 3.0
TOKEN_REFRESH_MARGIN_SECONDS = 60.0


@dataclass(frozen=True)
class CachedToken:
    access_token: str
    expires_at: float
    fingerprint: str

    def usable(self, now: float, fingerprint: str) -> bool:
        return self.fingerprint == fingerprint and now < self.expires_at


# Tokens shared by every hook of this process, keyed by connection id.
_token_cache: dict[str, CachedToken] = {}
_token_lock = threading.Lock()


@dataclass
class RequestStats:
    """What this hook did, for the run report: requests sent, retries, token refreshes."""

    requests: int = 0
    retries: int = 0
    token_refreshes: int = 0
    throttled: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _endpoints(host: str) -> tuple[str, str]:
    """(API base URL, token URL) for a region name or an explicit base URL."""
    host = host.strip().rstrip("/")
    if "://" in host:
        return host, f"{host}/oauth/token"
    region = host.removeprefix("api.").removeprefix("login.")
    return f"https://api.{region}", f"https://login.{region}/oauth/token"


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
        timeout: tuple[float, float] = (5.0, 30.0),
        max_attempts: int = 5,
        backoff_base: float = 1.0,
        backoff_cap: float = 30.0,
        max_breaker_wait: float = 0.0,
        breaker_settings: BreakerSettings | None = None,
        state_store: StateStore | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        self.genesys_conn_id = genesys_conn_id
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_breaker_wait = max_breaker_wait
        self._state_store = state_store
        self.breaker = CircuitBreaker(genesys_conn_id, breaker_settings, state_store)
        self.stats = RequestStats()
        self._sleep = sleep
        self._session: requests.Session | None = None

    # -- Airflow connection plumbing ---------------------------------------------------------------
    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden-fields": ["schema", "port", "extra"],
            "relabeling": {"host": "Region or base URL", "login": "Client ID", "password": "Client Secret"},
            "placeholders": {
                "host": "mypurecloud.ie (or http://genesys-emulator:8765)",
                "login": "OAuth client id (client credentials grant)",
                "password": "OAuth client secret",
            },
        }

    @cached_property
    def _credentials(self) -> tuple[str, str, str, str]:
        """(api base, token url, client id, client secret), looked up once per hook."""
        conn = self.get_connection(self.genesys_conn_id)
        if not conn.host:
            raise GenesysApiError(
                f"connection {self.genesys_conn_id!r} has no host: set a region (mypurecloud.ie) or base URL"
            )
        if not conn.login or not conn.password:
            raise GenesysApiError(
                f"connection {self.genesys_conn_id!r} needs the OAuth client id (login) and secret (password)"
            )
        api_base, token_url = _endpoints(conn.host)
        return api_base, token_url, conn.login, conn.password

    @property
    def api_base(self) -> str:
        return self._credentials[0]

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
        except GenesysApiError as err:
            return False, str(err)
        return True, "Token issued and outbound campaigns readable."

    # -- OAuth -------------------------------------------------------------------------------------
    @property
    def _fingerprint(self) -> str:
        _, token_url, client_id, _ = self._credentials
        return hashlib.sha256(f"{token_url}|{client_id}".encode()).hexdigest()[:16]

    @property
    def _token_variable(self) -> str:
        # "token" in the key makes Airflow mask the value in logs and the UI.
        return f"genesys_access_token__{self.genesys_conn_id}"

    @property
    def state_store(self) -> StateStore:
        if self._state_store is None:
            self._state_store = default_store()
        return self._state_store

    def get_token(self, *, force_refresh: bool = False) -> str:
        """A bearer token: from this process, else the shared Variable, else a new one from OAuth."""
        now = time.time()
        fingerprint = self._fingerprint
        with _token_lock:
            cached = _token_cache.get(self.genesys_conn_id)
            if not force_refresh and cached and cached.usable(now, fingerprint):
                return cached.access_token
            if not force_refresh:
                shared = self._read_shared_token()
                if shared and shared.usable(now, fingerprint):
                    _token_cache[self.genesys_conn_id] = shared
                    return shared.access_token
            token = self._fetch_token(fingerprint)
            _token_cache[self.genesys_conn_id] = token
            self._write_shared_token(token)
            return token.access_token

    def invalidate_token(self) -> None:
        with _token_lock:
            _token_cache.pop(self.genesys_conn_id, None)

    def _read_shared_token(self) -> CachedToken | None:
        try:
            record = self.state_store.get(self._token_variable)
        except Exception as err:  # the cache is an optimisation; never fail a run on it
            log.warning("Could not read the shared token cache (%s); fetching a new token", type(err).__name__)
            return None
        if not record:
            return None
        try:
            return CachedToken(record["access_token"], float(record["expires_at"]), record["fingerprint"])
        except (KeyError, TypeError, ValueError):
            return None

    def _write_shared_token(self, token: CachedToken) -> None:
        try:
            self.state_store.set(self._token_variable, token.__dict__)
        except Exception as err:
            log.warning("Could not write the shared token cache (%s)", type(err).__name__)

    def _fetch_token(self, fingerprint: str) -> CachedToken:
        _, token_url, client_id, client_secret = self._credentials
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        started = time.monotonic()
        try:
            response = self.get_conn().post(
                token_url,
                data={"grant_type": "client_credentials"},
                headers={"Authorization": f"Basic {basic}"},
                timeout=self.timeout,
            )
        except requests.RequestException as err:
            metrics.api_request("token", "POST", None, time.monotonic() - started)
            raise GenesysTransientError(
                f"OAuth token request failed: {type(err).__name__}", method="POST", endpoint="/oauth/token"
            ) from None
        metrics.api_request("token", "POST", response.status_code, time.monotonic() - started)
        self.stats.requests += 1
        if response.status_code != 200:
            body = _json_or_none(response)
            description = ""
            if isinstance(body, dict):
                description = f": {body.get('error')} {body.get('error_description') or ''}".rstrip()
            error_cls = GenesysAuthError if response.status_code in (400, 401, 403) else GenesysTransientError
            raise error_cls(
                f"OAuth client-credentials grant refused for connection {self.genesys_conn_id!r}{description}",
                status=response.status_code,
                context_id=response.headers.get("ININ-Correlation-Id"),
                method="POST",
                endpoint="/oauth/token",
            )
        body = _json_or_none(response)
        if not isinstance(body, dict) or not body.get("access_token"):
            raise GenesysResponseError(
                "OAuth token response has no access_token", status=200, method="POST", endpoint="/oauth/token"
            )
        try:
            expires_in = float(body.get("expires_in", 0))
        except (TypeError, ValueError):
            expires_in = 0.0
        # Refresh 60 s early; for very short lifetimes (test orgs) a quarter of the lifetime instead.
        margin = min(TOKEN_REFRESH_MARGIN_SECONDS, expires_in / 4)
        self.stats.token_refreshes += 1
        metrics.token_refresh(self.genesys_conn_id)
        log.info("Fetched a Genesys Cloud access token (valid %.0f s)", expires_in)
        return CachedToken(body["access_token"], time.time() + expires_in - margin, fingerprint)

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
        while True:
            attempt += 1
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
            except (requests.ConnectionError, requests.Timeout) as err:
                metrics.api_request(endpoint, method, None, time.monotonic() - started)
                self.stats.requests += 1
                reason = "timeout" if isinstance(err, requests.Timeout) else "connection"
                self.breaker.record_failure(permit, reason)
                error = GenesysTransientError(
                    f"Genesys Cloud request failed: {type(err).__name__}", method=method, endpoint=path
                )
                self._retry_or_raise(error, attempt, endpoint, reason, None)
                continue
            metrics.api_request(endpoint, method, response.status_code, time.monotonic() - started)
            self.stats.requests += 1
            status = response.status_code
            if status < 400:
                self.breaker.record_success(permit)
                return self._parse(response, method, path)
            error = _classify(response, method, path)
            if status == 401 and not refreshed_after_401:
                # The cached token may have expired or been revoked: refresh once, then repeat.
                refreshed_after_401 = True
                self.breaker.record_success(permit)  # the service answered; not an outage
                log.info("401 from %s %s: refreshing the access token once", method, endpoint)
                self.invalidate_token()
                self.get_token(force_refresh=True)
                attempt -= 1
                continue
            if isinstance(error, (GenesysTransientError, GenesysServerError)):
                self.breaker.record_failure(permit, str(status))
            else:
                self.breaker.record_success(permit)
            if status == 429:
                self.stats.throttled += 1
            if isinstance(error, GenesysTransientError):
                self._retry_or_raise(error, attempt, endpoint, str(status), error.retry_after)
                continue
            raise error

    def _acquire_permit(self) -> Permit:
        try:
            return self.breaker.acquire()
        except GenesysCircuitOpenError as err:
            wait = err.retry_after or 0.0
            if wait > self.max_breaker_wait:
                raise
            log.info("Circuit breaker open: waiting %.1f s for it to half-open", wait)
            self._sleep(wait)
            return self.breaker.acquire()

    def _retry_or_raise(
        self, error: GenesysTransientError, attempt: int, endpoint: str, reason: str, retry_after: float | None
    ) -> None:
        if attempt >= self.max_attempts:
            raise GenesysTransientError(
                f"gave up after {attempt} attempts: {error.args[0]}",
                status=error.status,
                code=error.code,
                context_id=error.context_id,
                retry_after=retry_after,
            ) from None
        delay = self._backoff(attempt, retry_after)
        self.stats.retries += 1
        metrics.api_retry(endpoint, reason)
        log.warning(
            "Retrying %s after %s (attempt %d of %d, contextId=%s) in %.1f s",
            endpoint, reason, attempt, self.max_attempts, error.context_id, delay,
        )
        self._sleep(delay)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Retry-After when Genesys gives one; else capped exponential backoff with full jitter."""
        if retry_after is not None:
            return min(retry_after, self.backoff_cap * 4)
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    @staticmethod
    def _parse(response: requests.Response, method: str, path: str) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        body = _json_or_none(response)
        if body is None:
            raise GenesysResponseError(
                f"expected JSON, got {response.headers.get('Content-Type', 'no content type')}",
                status=response.status_code,
                context_id=response.headers.get("ININ-Correlation-Id"),
                method=method,
                endpoint=path,
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
            yield from body.get("entities") or []
            if page >= int(body.get("pageCount") or 0):
                return
            page += 1

    @staticmethod
    def _expect_dict(body: Any, what: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise GenesysResponseError(f"expected a {what} object, got {type(body).__name__}")
        return body


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _classify(response: requests.Response, method: str, path: str) -> GenesysApiError:
    """Turn an error response into the exception class that tells callers what to do about it."""
    status = response.status_code
    body = _json_or_none(response)
    body = body if isinstance(body, dict) else {}
    context_id = body.get("contextId") or response.headers.get("ININ-Correlation-Id")
    code = body.get("code")
    message = str(body.get("message") or response.reason or "no message")[:300]
    if not body and response.content:
        message = f"non-JSON error body ({response.headers.get('Content-Type', 'unknown type')})"
    details = body.get("details") or []
    fields = [d.get("fieldName") for d in details if isinstance(d, dict) and d.get("fieldName")]
    if fields:
        message += f" [fields: {', '.join(map(str, fields))}]"
    retry_after = None
    if status in (429, 503):
        retry_after = _retry_after(response.headers.get("Retry-After"), status)
    kwargs = dict(status=status, code=code, context_id=context_id, method=method, endpoint=path)
    if status in TRANSIENT_STATUSES:
        return GenesysTransientError(message, retry_after=retry_after, **kwargs)
    if status in (401, 403):
        hint = "check the OAuth client's credentials" if status == 401 else "the OAuth client's role lacks a permission"
        return GenesysAuthError(f"{message} ({hint})", **kwargs)
    if status == 404:
        return GenesysNotFoundError(message, **kwargs)
    if status >= 500:
        return GenesysServerError(message, **kwargs)
    return GenesysClientError(message, **kwargs)


def _retry_after(value: str | None, status: int) -> float | None:
    if value is None:
        return DEFAULT_RETRY_AFTER_SECONDS if status == 429 else None
    try:
        return max(0.0, float(value))
    except ValueError:
        return DEFAULT_RETRY_AFTER_SECONDS
