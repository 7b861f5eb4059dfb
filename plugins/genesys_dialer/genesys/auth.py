"""OAuth client credentials for Genesys Cloud: where the token comes from, how long it lives, who shares it.

Genesys serves tokens from ``login.<region>`` and the API from ``api.<region>``; a token lives for the OAuth
client's configured lifetime (300 s to 48 h) and the official SDK never renews one. Tokens are cached in this
process and shared with other workers through a Variable (see :class:`GenesysHook.get_token`); a cached token
is used only by a connection with the same token URL, client id and client secret (its fingerprint): after the
secret changes, the next request fetches a token with the new one, and a wrong secret fails at once with
``invalid_client`` instead of riding on a token the old secret got.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from genesys_dialer.genesys.errors import (
    TRANSIENT_STATUSES,
    GenesysApiError,
    GenesysAuthError,
    GenesysClientError,
    GenesysResponseError,
    GenesysServerError,
    GenesysTransientError,
    clean_text,
    content_type,
    json_or_none,
    retry_after_seconds,
)

log = logging.getLogger(__name__)

TOKEN_ENDPOINT = "/oauth/token"
TOKEN_REFRESH_MARGIN_SECONDS = 60.0
# Genesys' shortest configurable token lifetime: assumed when a token response has no usable expires_in.
FALLBACK_TOKEN_LIFETIME_SECONDS = 300.0


@dataclass(frozen=True)
class ConnectionInfo:
    """What a ``genesys_cloud`` connection says: where to send requests, and as which OAuth client."""

    api_base: str
    token_url: str
    client_id: str
    client_secret: str
    extra: Mapping[str, Any]

    @property
    def fingerprint(self) -> str:
        """Identifies the credentials a token was issued for (token URL, client id and secret) without revealing
        them: an HMAC-SHA256 keyed by the client secret. The secret itself is never stored or logged."""
        message = f"genesys-dialer token cache|{self.token_url}|{self.client_id}".encode()
        return hmac.new(self.client_secret.encode(), message, hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class CachedToken:
    access_token: str
    expires_at: float
    fingerprint: str

    def usable(self, now: float, fingerprint: str) -> bool:
        return self.fingerprint == fingerprint and now < self.expires_at


# Tokens shared by every hook of this process, keyed by connection id.
token_cache: dict[str, CachedToken] = {}
token_lock = threading.Lock()


def endpoints(host: str, port: int | None = None) -> tuple[str, str]:
    """(API base URL, token URL) for a region name or an explicit base URL, and an optional port.

    A region's hosts are ``api.<region>`` and ``login.<region>`` on 443 (another port is added to both); a base
    URL (the emulator: token and API on one server) takes the port unless it names one itself, which must agree.
    """
    host = host.strip().rstrip("/")
    if "://" in host:
        parts = urlsplit(host)
        try:
            url_port = parts.port
        except ValueError:
            raise ValueError(f"host {host!r} has an invalid port") from None
        if port and url_port and port != url_port:
            raise ValueError(f"host {host!r} names port {url_port} but the port field says {port}")
        if port and not url_port:
            host = urlunsplit(parts._replace(netloc=f"{parts.netloc}:{port}"))
        return host, f"{host}{TOKEN_ENDPOINT}"
    region = host.removeprefix("api.").removeprefix("login.")
    suffix = f":{port}" if port and port != 443 else ""
    return f"https://api.{region}{suffix}", f"https://login.{region}{suffix}{TOKEN_ENDPOINT}"


def mask_secret(secret: str) -> None:
    """Register a secret with Airflow's log masker (task logs and the supervisor's)."""
    try:
        from airflow.sdk.log import mask_secret as airflow_mask_secret

        airflow_mask_secret(secret)
    except Exception:  # masking is best effort outside a task
        log.debug("could not register a secret with the log masker")


def basic_authorization(info: ConnectionInfo) -> str:
    """The token request's ``Authorization`` header value: Basic base64(client_id:client_secret)."""
    mask_secret(info.client_secret)
    basic = base64.b64encode(f"{info.client_id}:{info.client_secret}".encode()).decode()
    mask_secret(basic)
    return f"Basic {basic}"


def token_from_response(response: requests.Response, conn_id: str, fingerprint: str) -> CachedToken:
    """The token a ``POST /oauth/token`` answered with, or the classified error it answered instead."""
    context_id = response.headers.get("ININ-Correlation-Id")
    status = response.status_code
    if status != 200:
        body = json_or_none(response)
        description = ""
        if isinstance(body, dict):
            description = f": {clean_text(body.get('error'))} {clean_text(body.get('error_description'))}".rstrip()
        elif response.content:
            description = f": non-JSON answer ({content_type(response)})"
        if status in (400, 401, 403):
            error_cls: type[GenesysApiError] = GenesysAuthError
        elif status in TRANSIENT_STATUSES:
            error_cls = GenesysTransientError
        else:
            error_cls = GenesysServerError if status >= 500 else GenesysClientError
        raise error_cls(
            f"OAuth client-credentials grant refused for connection {conn_id!r}{description}",
            status=status,
            context_id=context_id,
            method="POST",
            endpoint=TOKEN_ENDPOINT,
            retry_after=retry_after_seconds(response.headers.get("Retry-After"), status),
        )
    body = json_or_none(response)
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str) or not body["access_token"]:
        raise GenesysResponseError(
            f"OAuth token response has no access_token ({content_type(response)})",
            status=200, context_id=context_id, method="POST", endpoint=TOKEN_ENDPOINT,
        )
    mask_secret(body["access_token"])
    try:
        expires_in = float(body.get("expires_in"))
        if expires_in <= 0:
            raise ValueError
    except (TypeError, ValueError):
        log.warning("OAuth token response has no usable expires_in; assuming %.0f s", FALLBACK_TOKEN_LIFETIME_SECONDS)
        expires_in = FALLBACK_TOKEN_LIFETIME_SECONDS
    # Refresh 60 s early; for very short lifetimes (test orgs) a quarter of the lifetime instead.
    margin = min(TOKEN_REFRESH_MARGIN_SECONDS, expires_in / 4)
    log.info("Fetched a Genesys Cloud access token (valid %.0f s)", expires_in)
    return CachedToken(body["access_token"], time.time() + expires_in - margin, fingerprint)
