"""StatsD metrics for the pipeline (statsd-exporter turns them into the seed's Prometheus names).

Every emission in the package goes through these functions, so the wire format (names, tags, prefix) is
decided here and only here; ``deploy/statsd/mapping.yml`` maps each line to its Prometheus name.

Wire format: InfluxDB-style tags, ``<prefix>.genesys.<name>,<k>=<v>,...:<value>|<type>``, sent with the plain
``statsd`` package, e.g. ``airflow.genesys.segment.created,campaign_id=abc:1|c``. statsd-exporter parses
those tags into labels (``--statsd.parse-influxdb-tags`` is on by default).

Why the plain ``statsd`` package and not ``airflow.sdk.observability.stats``:

* Airflow's StatsD client drops tags unless ``[metrics] statsd_influxdb_enabled`` is on, and that switch also
  re-formats Airflow's OWN metrics: its tagged "new" names (``airflow.task.duration,dag_id=..,task_id=..``)
  then land on the same Prometheus names as the Helm chart's mappings of the legacy names
  (``airflow_task_duration{dag_id,task_id}``) and double count. We leave it off and format tags ourselves.
* Airflow's client is built once per process; if the StatsD host does not resolve at that moment (a worker
  that starts before the exporter container) the process sends nothing for good. Here the host is resolved
  lazily, a failure is retried after ``_RETRY_SECONDS``, and the address is re-resolved every
  ``_RESOLVE_TTL_SECONDS`` so a restarted exporter with a new IP is found again.
* We still read Airflow's own ``[metrics]`` settings (``statsd_on``, ``statsd_host``, ``statsd_port``,
  ``statsd_prefix``, ``statsd_ipv6``), so one setting serves Airflow and this module.

Rules every function keeps: it never raises into task code; it is a cheap no-op when ``statsd_on`` is off;
every emission of one metric carries the same tag keys (statsd-exporter drops samples whose label set differs
from the first one it saw); tag values are bounded vocabularies or ids of campaigns/connections, never contact
ids, run ids, phone numbers or tokens (free-form values outside the vocabulary pattern become ``other``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)

BREAKER_STATE_VALUES = {"closed": 0, "open": 1, "half_open": 2}

# Metric names (after the configured prefix). deploy/statsd/mapping.yml has one rule per name.
NAMESPACE = "genesys"
SEGMENT_CREATED = "genesys.segment.created"
SEGMENT_FAILED = "genesys.segment.failed"
API_LATENCY = "genesys.api.latency"
API_RESPONSES = "genesys.api.responses"
API_THROTTLED = "genesys.api.throttled"
API_RETRIES = "genesys.api.retries"
TOKEN_REFRESHES = "genesys.token.refreshes"
BREAKER_STATE = "genesys.circuit_breaker.state"
BREAKER_TRANSITIONS = "genesys.circuit_breaker.transitions"
CONTACTS = "genesys.contacts"
PACING_ANSWER_RATE = "genesys.pacing.answer_rate"
PACING_DIAL_RATIO = "genesys.pacing.dial_ratio"
PACING_MAX_CALLS_PER_AGENT = "genesys.pacing.max_calls_per_agent"
PACING_OUTBOUND_LINE_COUNT = "genesys.pacing.outbound_line_count"
RUN_DURATION = "genesys.run.duration"
RUN_LAST_FINISH = "genesys.run.last_finish"
RUN_LAST_SUCCESS = "genesys.run.last_success"
RUN_SCHEDULE_INTERVAL = "genesys.run.schedule_interval"
RUN_SKIPPED_SHARE = "genesys.run.skipped_share"
RUN_SKIPPED_SHARE_THRESHOLD = "genesys.run.skipped_share_threshold"

# Run outcomes that count as "the campaign was fed" for the staleness alert. Not dry_run: a dry run feeds
# nothing, so a campaign that only has dry runs must still look stale.
SUCCESS_OUTCOMES = frozenset({"success"})
HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
OTHER = "other"
NONE = "none"

_RETRY_SECONDS = 30.0  # after a failed resolution, stay quiet this long before trying again
_RESOLVE_TTL_SECONDS = 300.0  # re-resolve the exporter's address this often

# A vocabulary value: lowercase slug without long digit runs, or a 3-digit HTTP status (retry reasons).
# Phone numbers, tokens, URLs and ids fail this pattern and are replaced by "other".
_VOCAB_RE = re.compile(r"^(?:(?![a-z0-9_]*[0-9]{4})[a-z][a-z0-9_]{0,39}|[1-5][0-9]{2})$")
# Ids we do label by (campaign, connection): UUIDs and slugs. Anything else is squashed to these characters.
_ID_UNSAFE_RE = re.compile(r"[^A-Za-z0-9_-]")
# Something that looks like a phone number (7+ digits, optional +, separators) never becomes a label.
_PHONE_RE = re.compile(r"^\+?[\d\s().-]{7,}$")
_MAX_ID_LEN = 64

F = TypeVar("F", bound=Callable[..., None])


@dataclass(frozen=True)
class _Settings:
    enabled: bool
    host: str = "localhost"
    port: int = 8125
    prefix: str | None = "airflow"
    ipv6: bool = False


class _Emitter:
    """Lazily built, self-healing StatsD client: resolution failures never disable the process for good."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settings: _Settings | None = None
        self._client: Any = None
        self._resolved_at = 0.0
        self._retry_after = 0.0

    def reset(self) -> None:
        """Forget settings and client (after fork, or when a test changes the configuration)."""
        with self._lock:
            self._close()
            self._settings = None
            self._resolved_at = 0.0
            self._retry_after = 0.0

    def _close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
        self._client = None

    def settings(self) -> _Settings:
        if self._settings is None:
            self._settings = _read_settings()
        return self._settings

    def client(self) -> Any:
        """The StatsClient, or None when statsd is off or the host does not resolve (yet)."""
        settings = self.settings()
        if not settings.enabled:
            return None
        now = time.monotonic()
        client = self._client
        if client is not None and now - self._resolved_at < _RESOLVE_TTL_SECONDS:
            return client
        if client is None and now < self._retry_after:
            return None
        with self._lock:
            if self._client is not None and now - self._resolved_at < _RESOLVE_TTL_SECONDS:
                return self._client
            try:
                from statsd import StatsClient

                new_client = StatsClient(
                    host=settings.host, port=settings.port, prefix=settings.prefix, ipv6=settings.ipv6
                )
            except (OSError, UnicodeError) as err:  # socket.gaierror is an OSError
                if self._client is None:
                    log.warning(
                        "StatsD host %r does not resolve (%s); metrics are skipped, retrying in %.0f s",
                        settings.host, err, _RETRY_SECONDS,
                    )
                    self._retry_after = now + _RETRY_SECONDS
                    return None
                # Keep the address we had: a DNS blip must not stop metrics that still reach the exporter.
                self._resolved_at = now
                return self._client
            self._close()
            self._client = new_client
            self._resolved_at = now
            return new_client


_EMITTER = _Emitter()
os.register_at_fork(after_in_child=_EMITTER.reset)


def _read_settings() -> _Settings:
    """Airflow's ``[metrics]`` section: Task SDK parser first (workers), then core's, then the env vars."""
    def sdk_conf() -> Any:
        from airflow.sdk.configuration import conf

        return conf

    def core_conf() -> Any:
        from airflow.configuration import conf

        return conf

    for get in (sdk_conf, core_conf):
        try:
            conf = get()
            if not conf.getboolean("metrics", "statsd_on", fallback=False):
                return _Settings(enabled=False)
            return _Settings(
                enabled=True,
                host=conf.get("metrics", "statsd_host", fallback="localhost"),
                port=conf.getint("metrics", "statsd_port", fallback=8125),
                prefix=conf.get("metrics", "statsd_prefix", fallback="airflow") or None,
                ipv6=conf.getboolean("metrics", "statsd_ipv6", fallback=False),
            )
        except Exception as err:
            log.debug("reading [metrics] through %s failed: %s", get.__name__, err)
    return _settings_from_env(os.environ)


def _settings_from_env(env: Mapping[str, str]) -> _Settings:
    """Same keys as Airflow's env overrides, for processes where no Airflow config parser can load."""

    def flag(key: str, default: bool) -> bool:
        value = env.get(f"AIRFLOW__METRICS__{key}")
        return default if value is None else value.strip().lower() in {"true", "1", "t", "yes", "y", "on"}

    if not flag("STATSD_ON", False):
        return _Settings(enabled=False)
    try:
        port = int(env.get("AIRFLOW__METRICS__STATSD_PORT", "8125"))
    except ValueError:
        return _Settings(enabled=False)
    return _Settings(
        enabled=True,
        host=env.get("AIRFLOW__METRICS__STATSD_HOST", "localhost"),
        port=port,
        prefix=env.get("AIRFLOW__METRICS__STATSD_PREFIX", "airflow") or None,
        ipv6=flag("STATSD_IPV6", False),
    )


def _reset() -> None:
    """Drop the cached configuration and client; the next call reads ``[metrics]`` again (tests, forks)."""
    _EMITTER.reset()


def _metric(fn: F) -> F:
    """A public metric: does nothing while StatsD is off, and is best effort (a failure is logged at debug
    level and never reaches the task)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            if _enabled():
                fn(*args, **kwargs)
        except Exception as err:
            log.debug("metric %s not emitted: %s", fn.__name__, err)

    return wrapper  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------- tag values


def _vocab(value: object) -> str:
    """A bounded-vocabulary label value (endpoint, outcome, reason, error_type, state)."""
    if value is None:
        return NONE
    text = str(value).strip().lower().replace("-", "_").replace(" ", "_")
    return text if _VOCAB_RE.match(text) else OTHER


def _ident(value: object) -> str:
    """A campaign or connection id label: safe characters only, never something shaped like a phone number."""
    text = str(value).strip() if value is not None else ""
    if not text:
        return "unknown"
    if _PHONE_RE.match(text):
        return "redacted"
    return _ID_UNSAFE_RE.sub("_", text)[:_MAX_ID_LEN]


def _status_class(status: int | None) -> str:
    if status is None:
        return "no_response"
    try:
        code = int(status)
    except (TypeError, ValueError):
        return OTHER
    return f"{code // 100}xx" if 100 <= code <= 599 else OTHER


def _method(method: object) -> str:
    text = str(method or "").strip().upper()
    return text if text in HTTP_METHODS else "OTHER"


def _finite(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _stat(name: str, tags: Mapping[str, str]) -> str:
    return name + "".join(f",{key}={value}" for key, value in tags.items())


def _incr(name: str, tags: Mapping[str, str], count: int = 1) -> None:
    client = _EMITTER.client()
    if client is not None:
        client.incr(_stat(name, tags), count)


def _gauge(name: str, tags: Mapping[str, str], value: float) -> None:
    client = _EMITTER.client()
    if client is not None and value >= 0:  # a negative StatsD gauge would be read as a delta
        client.gauge(_stat(name, tags), value)


def _timing_ms(name: str, tags: Mapping[str, str], seconds: float) -> None:
    client = _EMITTER.client()
    if client is not None:
        client.timing(_stat(name, tags), max(seconds, 0.0) * 1000.0)


def _enabled() -> bool:
    return _EMITTER.settings().enabled


# ------------------------------------------------------------------------------------------ public interface


@_metric
def api_request(endpoint: str, method: str, status: int | None, seconds: float) -> None:
    """One HTTP exchange with Genesys Cloud (status None: no response: timeout or dropped connection)."""
    key = _vocab(endpoint)
    elapsed = _finite(seconds)
    if elapsed is not None:
        _timing_ms(API_LATENCY, {"endpoint": key}, elapsed)
    _incr(API_RESPONSES, {"endpoint": key, "method": _method(method), "status_class": _status_class(status)})
    if status == 429:
        _incr(API_THROTTLED, {"endpoint": key})


@_metric
def api_retry(endpoint: str, reason: str) -> None:
    """A request is retried; reason is the status ("429", "503") or "timeout" / "connection"."""
    _incr(API_RETRIES, {"endpoint": _vocab(endpoint), "reason": _vocab(reason)})


@_metric
def token_refresh(conn_id: str) -> None:
    """A new OAuth token was fetched from the login host."""
    _incr(TOKEN_REFRESHES, {"conn_id": _ident(conn_id)})


@_metric
def breaker_state(conn_id: str, state: str) -> None:
    """The shared circuit breaker's state (closed, open, half_open) as seen by this process."""
    value = BREAKER_STATE_VALUES.get(_vocab(state))
    if value is None:
        log.debug("unknown breaker state %r not emitted", state)
        return
    _gauge(BREAKER_STATE, {"conn_id": _ident(conn_id)}, value)


@_metric
def breaker_transition(conn_id: str, from_state: str, to_state: str) -> None:
    """A breaker transition this process caused (also sets the state gauge: the new state is known)."""
    to_key = _vocab(to_state)
    _incr(
        BREAKER_TRANSITIONS,
        {"conn_id": _ident(conn_id), "from_state": _vocab(from_state), "to_state": to_key},
    )
    if to_key in BREAKER_STATE_VALUES:
        _gauge(BREAKER_STATE, {"conn_id": _ident(conn_id)}, BREAKER_STATE_VALUES[to_key])


@_metric
def segment_created(campaign_id: str) -> None:
    """A segment (one mapped task's slice of the batch) reached the contact list."""
    _incr(SEGMENT_CREATED, {"campaign_id": _ident(campaign_id)})


@_metric
def segment_failed(campaign_id: str, error_type: str) -> None:
    """A segment could not be delivered; error_type is a small fixed vocabulary (throttled, auth, ...)."""
    _incr(SEGMENT_FAILED, {"campaign_id": _ident(campaign_id), "error_type": _vocab(error_type)})


@_metric
def contacts(campaign_id: str, outcome: str, count: int, reason: str | None = None) -> None:
    """Contacts claimed / dispatched / skipped (held back, with reason) / failed / withdrawn (with reason);
    reason is "none" when not given. Reasons are genesys_dialer.compliance.reasons' bounded vocabulary."""
    try:
        amount = int(count)
    except (TypeError, ValueError):
        return
    if amount < 0:
        return
    tags = {"campaign_id": _ident(campaign_id), "outcome": _vocab(outcome), "reason": _vocab(reason)}
    _incr(CONTACTS, tags, amount)


@_metric
def pacing(campaign_id: str, answer_rate: float, dial_ratio: float, max_calls_per_agent: float,
           outbound_line_count: int) -> None:
    """The pacing a run computed (gauges: the last run's values are the campaign's current pacing)."""
    tags = {"campaign_id": _ident(campaign_id)}
    for name, raw in (
        (PACING_ANSWER_RATE, answer_rate),
        (PACING_DIAL_RATIO, dial_ratio),
        (PACING_MAX_CALLS_PER_AGENT, max_calls_per_agent),
        (PACING_OUTBOUND_LINE_COUNT, outbound_line_count),
    ):
        value = _finite(raw)
        if value is not None:
            _gauge(name, tags, value)


@_metric
def run_finished(campaign_id: str, outcome: str, duration_seconds: float) -> None:
    """A DAG run's summary task finished; outcome is success, partial, failed or dry_run.

    Besides the duration it sets last-finish / last-success timestamp gauges: "no successful run for two
    schedule intervals" is an alert on ``time() - last_success``, which a counter could not express. A dry run
    moves last-finish only: it is a run, but it fed the campaign nothing.
    """
    campaign = _ident(campaign_id)
    outcome_key = _vocab(outcome)
    elapsed = _finite(duration_seconds)
    if elapsed is not None:
        _timing_ms(RUN_DURATION, {"campaign_id": campaign, "outcome": outcome_key}, elapsed)
    now = time.time()
    _gauge(RUN_LAST_FINISH, {"campaign_id": campaign}, now)
    if outcome_key in SUCCESS_OUTCOMES:
        _gauge(RUN_LAST_SUCCESS, {"campaign_id": campaign}, now)


@_metric
def schedule_interval(campaign_id: str, seconds: float) -> None:
    """The campaign's schedule interval, so the staleness alert can allow two intervals per campaign.

    Optional: without it the alert assumes the default schedule (15 minutes).
    """
    value = _finite(seconds)
    if value is not None and value > 0:
        _gauge(RUN_SCHEDULE_INTERVAL, {"campaign_id": _ident(campaign_id)}, value)


@_metric
def run_skipped_share(campaign_id: str, share: float, threshold: float) -> None:
    """The share (0..1) of the last run's batch held back with a reason, and the campaign's alert threshold.

    Gauges: "one run skipped more than its threshold" is a comparison of the two, per campaign.
    """
    tags = {"campaign_id": _ident(campaign_id)}
    for name, raw in ((RUN_SKIPPED_SHARE, share), (RUN_SKIPPED_SHARE_THRESHOLD, threshold)):
        value = _finite(raw)
        if value is not None:
            _gauge(name, tags, min(max(value, 0.0), 1.0))
