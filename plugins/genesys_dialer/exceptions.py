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


class GenesysCircuitOpenError(GenesysTransientError):
    """The shared circuit breaker is open: nothing was sent; retry after it half-opens."""


class GenesysAuthError(GenesysApiError):
    """401 after a token refresh, or 403: the OAuth client's credentials or permissions are wrong."""


class GenesysNotFoundError(GenesysApiError):
    """404: a campaign, contact list or other entity id that the org does not have."""


class GenesysClientError(GenesysApiError):
    """400, 409, 413 and other 4xx: the request itself is wrong; retrying the same request cannot help."""


class GenesysServerError(GenesysApiError):
    """500: Genesys advises against blind retries; the breaker counts it and the task fails."""


class GenesysResponseError(GenesysApiError):
    """A response that is not the JSON Genesys documents (a proxy's HTML page, a truncated body...)."""


def _retry_policy_base() -> type:
    from airflow.sdk.definitions.retry_policy import ExceptionRetryPolicy

    return ExceptionRetryPolicy


class GenesysRetryPolicy(_retry_policy_base()):  # type: ignore[misc]
    """An ExceptionRetryPolicy whose retry delay honours what the error says about the future.

    A GenesysTransientError carrying ``retry_after`` (a long 429 Retry-After, or the seconds until the
    circuit breaker half-opens) retries after that long (plus up to 10 % jitter) instead of the rule's or
    the task's delay: retrying sooner would only find the breaker still open and burn a try.
    """

    def evaluate(self, exception: BaseException, try_number: int, max_tries: int, context: object = None) -> object:
        from datetime import timedelta
        from random import uniform

        from airflow.sdk.definitions.retry_policy import RetryAction, RetryDecision

        decision = super().evaluate(exception, try_number, max_tries, context)
        retry_after = getattr(exception, "retry_after", None)
        if decision.action != RetryAction.RETRY or not isinstance(exception, GenesysTransientError) or not retry_after:
            return decision
        seconds = float(retry_after) * uniform(1.0, 1.1) + 0.5
        if decision.retry_delay is not None:
            seconds = max(seconds, decision.retry_delay.total_seconds()) if not isinstance(
                exception, GenesysCircuitOpenError) else seconds
        return RetryDecision(
            action=RetryAction.RETRY, retry_delay=timedelta(seconds=seconds),
            reason=f"{decision.reason} (retry in {seconds:.0f} s, as Genesys / the breaker said)",
        )
