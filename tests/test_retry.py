"""The task retry policy: what a task retry can fix, and after how long."""

from __future__ import annotations

from airflow.sdk.definitions.retry_policy import RetryAction

from genesys_dialer.exceptions import ConfigError
from genesys_dialer.genesys.errors import (
    GenesysAuthError,
    GenesysCircuitOpenError,
    GenesysClientError,
    GenesysNotFoundError,
    GenesysServerError,
    GenesysTransientError,
)
from genesys_dialer.genesys.retry import RETRY_POLICY


def test_an_open_breaker_retries_when_it_half_opens():
    decision = RETRY_POLICY.evaluate(GenesysCircuitOpenError("open", retry_after=20), 1, 4)
    assert decision.action is RetryAction.RETRY
    assert 20 <= decision.retry_delay.total_seconds() <= 22.5


def test_a_long_retry_after_is_honoured_and_plain_transients_use_the_task_delay():
    throttled = RETRY_POLICY.evaluate(GenesysTransientError("429", status=429, retry_after=120), 1, 4)
    assert throttled.action is RetryAction.RETRY and throttled.retry_delay.total_seconds() >= 120
    unavailable = RETRY_POLICY.evaluate(GenesysTransientError("503", status=503), 1, 4)
    assert unavailable.action is RetryAction.RETRY and unavailable.retry_delay is None
    server = RETRY_POLICY.evaluate(GenesysServerError("500", status=500), 1, 4)
    assert server.action is RetryAction.RETRY and server.retry_delay is None


def test_errors_a_retry_cannot_fix_fail_at_once():
    for error in (GenesysAuthError("403", status=403), GenesysNotFoundError("404", status=404),
                  GenesysClientError("400", status=400), ConfigError("bad config")):
        assert RETRY_POLICY.evaluate(error, 1, 4).action is RetryAction.FAIL, type(error).__name__
