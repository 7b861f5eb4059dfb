"""The task retry policy: which Genesys errors a task retry can fix, and after how long.

Errors a retry of the same task cannot fix fail at once; throttling, outages and an open breaker retry (the
claim stays in the ledger, so nothing is dropped while they wait), after what the error says when it says
it: the seconds until the breaker half-opens, or a long 429 Retry-After.
"""

from __future__ import annotations

from datetime import timedelta
from random import uniform
from typing import Any

from airflow.sdk.definitions.retry_policy import ExceptionRetryPolicy, RetryAction, RetryDecision, RetryRule

from genesys_dialer.genesys.errors import GenesysTransientError


class GenesysRetryPolicy(ExceptionRetryPolicy):
    """An ExceptionRetryPolicy whose retry delay honours what the error says about the future.

    A GenesysTransientError carrying ``retry_after`` (a long 429 Retry-After, or the seconds until the
    circuit breaker half-opens) retries after that long (plus up to 10 % jitter) instead of the task's delay:
    retrying sooner would only find the breaker still open and burn a try.
    """

    def evaluate(
        self, exception: BaseException, try_number: int, max_tries: int, context: Any = None
    ) -> RetryDecision:
        decision = super().evaluate(exception, try_number, max_tries, context)
        if (decision.action != RetryAction.RETRY or not isinstance(exception, GenesysTransientError)
                or not exception.retry_after):
            return decision
        seconds = exception.retry_after * uniform(1.0, 1.1) + 0.5
        return RetryDecision(
            action=RetryAction.RETRY,
            retry_delay=timedelta(seconds=seconds),
            reason=f"{decision.reason} (retry in {seconds:.0f} s, as Genesys / the breaker said)",
        )


_EXC = "genesys_dialer.genesys.errors."

RETRY_POLICY: ExceptionRetryPolicy = GenesysRetryPolicy(
    rules=[
        RetryRule(
            exception=f"{_EXC}GenesysCircuitOpenError",
            action=RetryAction.RETRY,
            reason="circuit breaker open: nothing was sent; the segment is retried once it half-opens",
        ),
        RetryRule(
            exception=f"{_EXC}GenesysOutcomeUnknownError",
            action=RetryAction.RETRY,
            reason="Genesys did not answer a request that may have been applied: the retry reads the contact list "
            "back before sending any of its contacts again",
        ),
        RetryRule(
            exception=f"{_EXC}GenesysTransientError",
            action=RetryAction.RETRY,
            reason="Genesys throttled or was unavailable after the hook's own retries",
        ),
        RetryRule(
            exception=f"{_EXC}GenesysServerError",
            action=RetryAction.RETRY,
            reason="HTTP 500: not retried blindly by the hook; the idempotent segment is re-sent after the "
            "task's retry delay (the breaker counts 500s)",
        ),
        RetryRule(
            exception=[
                f"{_EXC}GenesysAuthError",
                f"{_EXC}GenesysNotFoundError",
                f"{_EXC}GenesysClientError",
                f"{_EXC}GenesysResponseError",
                "genesys_dialer.exceptions.ConfigError",
            ],
            action=RetryAction.FAIL,
            reason="the request itself is wrong: retrying cannot help",
        ),
    ]
)


def will_retry(error: BaseException, try_number: int, max_tries: int) -> bool:
    """Whether Airflow retries the task after ``error`` ends this try: a try is left (as the execution API
    decides) and the retry policy does not fail the error at once."""
    if max_tries <= 0 or try_number > max_tries:
        return False
    return RETRY_POLICY.evaluate(error, try_number, max_tries).action != RetryAction.FAIL
