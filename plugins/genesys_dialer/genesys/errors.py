"""What can go wrong talking to Genesys Cloud, classified so callers and retry policies know what to do.

Every error carries what Genesys support asks for (status, code, contextId) and never a token, secret or phone
number: messages end up in task logs. :func:`classify_response` turns an error response into its class.
"""

from __future__ import annotations

import re
from typing import Any

import requests
from urllib3.exceptions import InvalidHeader
from urllib3.util import Retry

from genesys_dialer.exceptions import GenesysDialerError

TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
# Genesys' .NET SDK waits 3 s when a 429/503 carries no Retry-After.
DEFAULT_RETRY_AFTER_SECONDS = 3.0
# Something that looks like a phone number inside a message Genesys wrote (it may echo a cell value).
_PHONE_IN_TEXT = re.compile(r"\+?\d[\d ().-]{5,}\d")
_PERMISSION = re.compile(r"\b[a-zA-Z]+:[a-zA-Z]+:[a-zA-Z*]+\b")
# Parses delta-seconds and HTTP-dates, rejects "inf" and fractions, caps at urllib3's 6 h.
_RETRY_AFTER = Retry()


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


class GenesysOutcomeUnknownError(GenesysTransientError):
    """A request that must not be repeated blindly got no answer (timeout, dropped connection, broken body):
    Genesys may or may not have applied it. The hook does not retry it; the caller finds out (for contacts: by
    reading the list back) before sending any of it again."""

    error_type = "outcome_unknown"  # type: ignore[assignment]

    def __init__(self, message: str, *, reason: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.reason = reason  # "timeout" or "connection"


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


def json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def content_type(response: requests.Response) -> str:
    return (response.headers.get("Content-Type") or "no content type").split(";")[0].strip()[:60]


def clean_text(value: Any, limit: int = 300) -> str:
    """Text Genesys (or a proxy) wrote, fit for a log line: bounded, one line, no phone-number-like runs."""
    if value is None:
        return ""
    text = " ".join(str(value).split())[:limit]
    return _PHONE_IN_TEXT.sub("<number>", text)


def network_error_text(err: BaseException) -> str:
    """What went wrong under a failed request, for the error message: the exception and its root cause, e.g.
    ``ConnectionError: ConnectionRefusedError: [Errno 111] Connection refused`` (the socket's own words, not
    urllib3's wrapper text, which repeats the URL)."""
    root, seen = err, {id(err)}
    while True:
        reason = getattr(root, "reason", None)
        candidates = [root.args[0] if root.args else None, reason, root.__cause__, root.__context__]
        deeper = next((c for c in candidates if isinstance(c, BaseException) and id(c) not in seen), None)
        if deeper is None:
            break
        seen.add(id(deeper))
        root = deeper
    text = f"{type(err).__name__}: {clean_text(root) or 'no details'}"
    return text if root is err else f"{type(err).__name__}: {type(root).__name__}: {clean_text(root)}"


def _missing_permissions(body: dict[str, Any]) -> list[str]:
    """Permission names (``outbound:contact:add``) Genesys named in a 403 body, if any."""
    found: list[str] = []
    params = body.get("messageParams")
    candidates = [body.get("message"), body.get("messageWithParams")]
    if isinstance(params, dict):
        candidates += [v for v in params.values() if isinstance(v, (str, list))]
    for candidate in candidates:
        items = candidate if isinstance(candidate, list) else [candidate]
        for item in items:
            if isinstance(item, str):
                found += [p for p in _PERMISSION.findall(item) if p not in found]
    return found


def classify_response(response: requests.Response, method: str, path: str) -> GenesysApiError:
    """Turn an error response into the exception class that tells callers what to do about it."""
    status = response.status_code
    raw = json_or_none(response)
    body: dict[str, Any] = raw if isinstance(raw, dict) else {}
    context_id = str(body.get("contextId") or response.headers.get("ININ-Correlation-Id") or "")[:80] or None
    code = clean_text(body.get("code"), 80) or None
    if body:
        message = clean_text(body.get("message") or response.reason or "no message")
    elif response.content:
        message = f"non-JSON error body ({content_type(response)}; a proxy or gateway page?)"
    else:
        message = clean_text(response.reason) or "no message"
    details = body.get("details") if isinstance(body.get("details"), list) else []
    fields = [clean_text(d.get("fieldName"), 80) for d in details if isinstance(d, dict) and d.get("fieldName")]
    if fields:
        message += f" [fields: {', '.join(fields)}]"
    retry_after = retry_after_seconds(response.headers.get("Retry-After"), status)
    kwargs: dict[str, Any] = dict(status=status, code=code, context_id=context_id, method=method, endpoint=path)
    if status in TRANSIENT_STATUSES:
        return GenesysTransientError(message, retry_after=retry_after, **kwargs)
    if status == 401:
        return GenesysAuthError(
            f"{message} (401 again after a token refresh: check the OAuth client's id and secret, and that "
            "the client is not disabled)", **kwargs,
        )
    if status == 403:
        missing = _missing_permissions(body)
        hint = (f"the OAuth client's role is missing permission {', '.join(missing)}" if missing
                else "the OAuth client's role lacks a permission (outbound:contact:add, outbound:campaign:edit...)")
        return GenesysAuthError(f"{message} ({hint})", **kwargs)
    if status == 404:
        return GenesysNotFoundError(message, **kwargs)
    if status >= 500:
        return GenesysServerError(f"{message} (Genesys advises no blind retry of a 500)", **kwargs)
    if status == 409:
        message += " (a conflicting change; re-read the resource before changing it again)"
    elif status == 413:
        message += " (request body too large; send fewer contacts per request)"
    return GenesysClientError(message, **kwargs)


def retry_after_seconds(value: str | None, status: int) -> float | None:
    """Seconds to wait: the header on 429/503; 3 s for a 429 without one (Genesys' own SDK default)."""
    if status not in (429, 503):
        return None
    if value is None:
        return DEFAULT_RETRY_AFTER_SECONDS if status == 429 else None
    try:
        return float(_RETRY_AFTER.parse_retry_after(value))
    except (InvalidHeader, ValueError, OverflowError):  # "inf", "soon", a date in year 10^10: use the default
        return DEFAULT_RETRY_AFTER_SECONDS
