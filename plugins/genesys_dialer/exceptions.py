"""Errors the package raises, classified so retry policies can tell transient from permanent."""

from __future__ import annotations


class GenesysDialerError(Exception):
    """Base class for every error this package raises on purpose."""


class ConfigError(GenesysDialerError, ValueError):
    """The campaign config file is missing or invalid; the message names file, campaign and field."""


class GenesysApiError(GenesysDialerError):
    """A Genesys Cloud call failed. Carries what Genesys support asks for: status, code and contextId.

    Never put a token, secret or phone number in the message: it ends up in task logs.
    """

    transient = False
    # The ``error_type`` label of the segment-failure metric: a small, fixed vocabulary.
    error_type = "other"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        context_id: str | None = None,
        method: str | None = None,
        endpoint: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = message  # without the details below, so a wrapping error does not repeat them
        self.status = status
        self.code = code
        self.context_id = context_id
        self.method = method
        self.endpoint = endpoint
        self.retry_after = retry_after
        parts = [f"{method} {endpoint}" if method else None, f"HTTP {status}" if status else None]
        parts += [f"code={code}" if code else None, f"contextId={context_id}" if context_id else None]
        where = ", ".join(p for p in parts if p)
        super().__init__(f"{message} ({where})" if where else message)


class GenesysTransientError(GenesysApiError):
    """429, 502, 503, 504, timeouts and dropped connections: worth retrying later."""

    transient = True

    @property  # type: ignore[override]
    def error_type(self) -> str:
        return "throttled" if self.status == 429 else "unavailable"


class GenesysCircuitOpenError(GenesysTransientError):
    """The shared circuit breaker is open: nothing was sent; retry after it half-opens."""

    error_type = "circuit_open"  # type: ignore[assignment]


class GenesysAuthError(GenesysApiError):
    """401 after a token refresh, or 403: the OAuth client's credentials or permissions are wrong."""

    error_type = "auth"


class GenesysNotFoundError(GenesysApiError):
    """404: a campaign, contact list or other entity id that the org does not have."""

    error_type = "not_found"


class GenesysClientError(GenesysApiError):
    """400, 409, 413 and other 4xx: the request itself is wrong; retrying the same request cannot help."""

    error_type = "client"


class GenesysServerError(GenesysApiError):
    """500: Genesys advises against blind retries: the hook does not repeat it, the breaker counts it, and the
    task is retried after its normal (exponential) delay."""

    error_type = "server"


class GenesysResponseError(GenesysApiError):
    """A response that is not the JSON Genesys documents (a proxy's HTML page, a truncated body...)."""

    error_type = "bad_response"
