"""What a whole DAG run puts on the wire: the exact StatsD datagrams of real runs (dag.test, emulator, PostgreSQL).

tests/test_metrics.py proves each metrics function in isolation; these tests prove the wiring: that a run emits
every metric the dashboards and alerts rely on, with counts equal to the ledger, the emulator's request log and
the recorded pacing decision, including on failures and breaker transitions, and nothing secret.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pipeline_helpers import ledger, phone_forms, run_dag, segments_for, task_states
from support import (
    CAMPAIGN_ID,
    CONTACTS_ROUTE,
    EMULATOR_CLIENT_SECRET,
    GENESYS_CONN_ID,
    TEST_CAMPAIGN,
    Emulator,
    clear_shared_state,
)
from test_metrics import CATALOGUE, OURS, PREFIX, STATSD_TYPE, Line, load_rules, map_line, parse_line

from genesys_devkit.demo_data import contact_rows, insert_contacts, insert_dial_history
from genesys_dialer import metrics
from genesys_dialer.genesys import auth
from genesys_dialer.genesys.breaker import BreakerSettings

pytestmark = pytest.mark.usefixtures("airflow_db")

CONN = GENESYS_CONN_ID
# Emulator route -> the hook's endpoint key (docs/metrics.md, "Endpoint keys").
ENDPOINT_OF_ROUTE = {
    "POST /oauth/token": "token",
    "GET /api/v2/outbound/campaigns/{campaignId}": "campaign_get",
    "PATCH /api/v2/outbound/campaigns/{campaignId}": "campaign_patch",
    "GET /api/v2/outbound/contactlists/{contactListId}": "contactlist_get",
    CONTACTS_ROUTE: "contacts_add",
    "POST /api/v2/outbound/contactlists/{contactListId}/contacts/search": "contacts_search",
}
C = f"campaign_id={CAMPAIGN_ID}"


# --------------------------------------------------------------------------------------------- the listener


class UdpSink:
    """A real StatsD listener on loopback; a thread drains the socket so no datagram is lost to a full buffer."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port: int = self.sock.getsockname()[1]
        self._datagrams: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._last = time.monotonic()
        self._thread = threading.Thread(target=self._drain, name="statsd-sink", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self._datagrams.extend(data.decode("utf-8", "replace").split("\n"))
                self._last = time.monotonic()

    def take(self, quiet: float = 0.5) -> list[str]:
        """Every datagram since the last call, once nothing new arrived for ``quiet`` seconds."""
        deadline = time.monotonic() + 10
        while time.monotonic() - self._last < quiet and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._lock:
            got, self._datagrams = self._datagrams, []
        return got

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def _reset_airflow_stats() -> None:
    """Airflow builds its own StatsD client lazily too; drop it so it is rebuilt from the restored config."""
    import importlib

    for name in ("airflow._shared.observability.metrics.stats", "airflow.sdk._shared.observability.metrics.stats"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "_backend"):
            module._backend = None


@pytest.fixture
def statsd(monkeypatch: pytest.MonkeyPatch) -> Iterator[UdpSink]:
    """metrics.py pointed at the sink through Airflow's [metrics] env overrides; silent again afterwards."""
    sink = UdpSink()
    for key, value in {"STATSD_ON": "True", "STATSD_HOST": "127.0.0.1", "STATSD_PORT": str(sink.port),
                       "STATSD_PREFIX": PREFIX}.items():
        monkeypatch.setenv(f"AIRFLOW__METRICS__{key}", value)
    metrics._reset()
    try:
        yield sink
    finally:
        monkeypatch.setenv("AIRFLOW__METRICS__STATSD_ON", "False")
        metrics._reset()
        _reset_airflow_stats()
        sink.close()


@pytest.fixture
def shared_state() -> Iterator[None]:
    """A closed breaker and no cached token before and after: both live in Variables shared by every test."""
    clear_shared_state()
    try:
        yield
    finally:
        clear_shared_state()


# ------------------------------------------------------------------------------------------------- helpers


def _ours(datagrams: list[str]) -> list[Line]:
    return [parse_line(raw) for raw in datagrams if raw.startswith(OURS)]


def _tags(line: Line) -> str:
    return ",".join(f"{k}={v}" for k, v in line.tags.items())


def _counts(lines: list[Line], name: str) -> Counter[str]:
    """A counter's total per tag set (``k=v,...``)."""
    totals: Counter[str] = Counter()
    for line in lines:
        if line.name == f"{PREFIX}.{name}":
            assert line.type == "c", line.raw
            totals[_tags(line)] += int(line.value)
    return totals


def _values(lines: list[Line], name: str, statsd_type: str) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {}
    for line in lines:
        if line.name == f"{PREFIX}.{name}":
            assert line.type == statsd_type, line.raw
            found.setdefault(_tags(line), []).append(float(line.value))
    return found


def _assert_clean(datagrams: list[str], forbidden: set[str]) -> None:
    """No phone number, secret or token anywhere on the wire (tags nor names)."""
    assert forbidden and all(len(s) >= 7 for s in forbidden)
    for raw in datagrams:
        leaked = [s for s in forbidden if s in raw]
        assert not leaked, f"{raw!r} leaks {leaked}"
        head = raw.rsplit(":", 1)[0]
        assert not re.search(r"\d{7,}", head), f"{raw!r}: a long digit run in a name or tag"


def _assert_mapped(lines: list[Line]) -> None:
    """Each line hits exactly one statsd-exporter rule, producing the catalogue's name, type and labels."""
    rules = load_rules()
    for line in lines:
        rule, name, labels = map_line(rules, line)
        assert not rule.drops and name in CATALOGUE, line.raw
        kind, label_names = CATALOGUE[name]
        assert STATSD_TYPE[kind] == line.type and frozenset(labels) == label_names, line.raw


def _forbidden(db: Any) -> set[str]:
    """Every contact's number (raw, digits and E.164), the client secret and every token this process used."""
    phones = phone_forms(db)
    tokens = {t.access_token for t in auth.token_cache.values()}
    assert tokens, "no token was used: the leak check would be vacuous"
    return phones | tokens | {EMULATOR_CLIENT_SECRET}


def _api_expectations(emulator: Emulator) -> tuple[Counter[str], Counter[str], int]:
    """From the emulator's own log: responses per (endpoint, method, class), latencies per endpoint, API calls."""
    responses: Counter[str] = Counter()
    latencies: Counter[str] = Counter()
    api_calls = 0
    for entry in emulator.requests_log():
        endpoint = ENDPOINT_OF_ROUTE[entry["route"]]
        status_class = "no_response" if entry["dropped"] else f"{entry['status'] // 100}xx"
        responses[f"endpoint={endpoint},method={entry['method']},status_class={status_class}"] += 1
        latencies[f"endpoint={endpoint}"] += 1
        api_calls += endpoint != "token"
    return responses, latencies, api_calls


def _seed(db: Any) -> None:
    insert_contacts(db, contact_rows(400))
    insert_dial_history(db, CAMPAIGN_ID, end=datetime.now(UTC), days=7, per_day=200, answer_rate=0.22)


def _run(statsd: UdpSink) -> tuple[Any, list[str], float, float]:
    statsd.take(quiet=0.2)  # nothing from set-up may count
    started = time.time()
    dag_run = run_dag()
    finished = time.time()
    return dag_run, statsd.take(), started, finished


# ------------------------------------------------------------------------------------------------- the runs


@pytest.mark.usefixtures("shared_state")
def test_successful_run_emits_every_metric_with_counts_from_the_ledger(
    db: Any, emulator: Emulator, statsd: UdpSink
) -> None:
    _seed(db)
    dag_run, datagrams, started, finished = _run(statsd)
    assert str(dag_run.state) == "success", task_states(dag_run)
    lines = _ours(datagrams)
    _assert_clean(datagrams, _forbidden(db))
    _assert_mapped(lines)

    rows = ledger(db, dag_run.run_id)
    in_segments = [seg for _, _, seg, _ in rows.values() if seg >= 0]  # -1: held back by the claim
    segments = sorted(set(in_segments))
    assert len(segments) == segments_for(len(in_segments), TEST_CAMPAIGN["segment_size"]) == 4
    dispatched = sum(1 for status, *_ in rows.values() if status == "dispatched")
    skipped = Counter(reason for status, reason, _, _ in rows.values() if status == "skipped")
    assert dispatched and skipped and dispatched + sum(skipped.values()) == len(rows) == 250

    assert _counts(lines, "genesys.segment.created") == {C: len(segments)}
    assert [line.value for line in lines if line.name.endswith(".segment.created")] == ["1"] * len(segments)
    assert _counts(lines, "genesys.segment.failed") == {}
    contacts = _counts(lines, "genesys.contacts")
    expected = {f"{C},outcome=claimed,reason=none": len(in_segments),
                f"{C},outcome=dispatched,reason=none": dispatched}
    expected |= {f"{C},outcome=skipped,reason={reason}": n for reason, n in skipped.items()}
    assert +contacts == expected  # "+" drops zero totals (a segment with nothing to skip sends no line)
    # The share of the batch held back, and the threshold the skip alert compares it with.
    assert _values(lines, "genesys.run.skipped_share", "g") == {C: [pytest.approx(sum(skipped.values()) / 250)]}
    assert _values(lines, "genesys.run.skipped_share_threshold", "g") == {C: [0.5]}

    # The API metrics agree with what the emulator saw, request by request.
    responses, latencies, api_calls = _api_expectations(emulator)
    assert set(responses) >= {f"endpoint={e},method={m},status_class=2xx" for e, m in (
        ("token", "POST"), ("campaign_get", "GET"), ("contactlist_get", "GET"), ("campaign_patch", "PATCH"),
        ("contacts_add", "POST"))}
    assert _counts(lines, "genesys.api.responses") == responses
    latency = _values(lines, "genesys.api.latency", "ms")
    assert Counter({k: len(v) for k, v in latency.items()}) == latencies
    assert all(0 <= ms < (finished - started) * 1000 for values in latency.values() for ms in values)
    throttled = sum(n for key, n in responses.items() if key.endswith("4xx"))  # only 429s can be 4xx here
    assert sum(_counts(lines, "genesys.api.throttled").values()) == throttled
    assert sum(_counts(lines, "genesys.api.retries").values()) == throttled
    assert _counts(lines, "genesys.token.refreshes") == {f"conn_id={CONN}": 1}

    # Every request first asked the (closed) breaker, which reports its state; nothing transitioned.
    assert _values(lines, "genesys.circuit_breaker.state", "g") == {f"conn_id={CONN}": [0.0] * api_calls}
    assert _counts(lines, "genesys.circuit_breaker.transitions") == {}

    # Pacing gauges are the recorded decision.
    recorded = db.execute(
        "SELECT pacing_answer_rate, dial_ratio, max_calls_per_agent, outbound_line_count, applied "
        "FROM pacing_decisions WHERE run_id = %s", [dag_run.run_id],
    ).fetchone()
    db.commit()
    assert recorded is not None and recorded[4] is True
    gauges = ("answer_rate", "dial_ratio", "max_calls_per_agent", "outbound_line_count")
    for name, value in zip(gauges, recorded[:4], strict=True):
        assert _values(lines, f"genesys.pacing.{name}", "g") == {C: [pytest.approx(float(value), rel=1e-9)]}, name

    # The run: duration as the report computed it, timestamps of now, the cron's interval.
    report = db.execute("SELECT outcome, report FROM run_log WHERE run_id = %s", [dag_run.run_id]).fetchone()
    db.commit()
    assert report[0] == "success"
    assert isinstance(report[1], dict), "run_log.report is JSONB"
    duration = report[1]["duration_seconds"]
    assert _values(lines, "genesys.run.duration", "ms") == {
        f"{C},outcome=success": [pytest.approx(duration * 1000, abs=0.01)]}
    for name in ("last_finish", "last_success"):
        (stamp,) = _values(lines, f"genesys.run.{name}", "g")[C]
        assert started <= stamp <= finished, name
    assert _values(lines, "genesys.run.schedule_interval", "g") == {C: [900.0]}  # "*/15 * * * *"

    emitted = {line.name.removeprefix(f"{PREFIX}.") for line in lines}
    assert emitted == {
        "genesys.segment.created", "genesys.contacts", "genesys.api.latency", "genesys.api.responses",
        "genesys.token.refreshes", "genesys.circuit_breaker.state", "genesys.pacing.answer_rate",
        "genesys.pacing.dial_ratio", "genesys.pacing.max_calls_per_agent", "genesys.pacing.outbound_line_count",
        "genesys.run.duration", "genesys.run.last_finish", "genesys.run.last_success",
        "genesys.run.schedule_interval", "genesys.run.skipped_share", "genesys.run.skipped_share_threshold",
    } | ({"genesys.api.throttled", "genesys.api.retries"} if throttled else set())



@pytest.mark.usefixtures("shared_state")
def test_failing_run_emits_segment_failures_and_the_breaker_opening_at_its_threshold(
    db: Any, emulator: Emulator, statsd: UdpSink
) -> None:
    """One contact POST succeeds, then every one gets a 500 (not retried): three failures open the breaker."""
    _seed(db)
    emulator.fault(route=CONTACTS_ROUTE, sequence=[200] + [500] * 20)
    dag_run, datagrams, started, finished = _run(statsd)
    assert str(dag_run.state) == "failed"
    lines = _ours(datagrams)
    _assert_clean(datagrams, _forbidden(db))
    _assert_mapped(lines)

    states = task_states(dag_run)
    created = [i for (task, i), state in states.items() if task == "create_segment" and state == "success"]
    failed = [i for (task, i), state in states.items() if task == "create_segment" and state == "failed"]
    assert len(created) + len(failed) == 4 and len(failed) >= 3  # 250 less those held back, 60 a segment
    threshold = BreakerSettings().failure_threshold  # the hook's default (3): the connection tunes nothing
    assert _counts(lines, "genesys.segment.created") == ({C: len(created)} if created else {})
    assert _counts(lines, "genesys.segment.failed") == {
        f"{C},error_type=server": threshold, f"{C},error_type=circuit_open": len(failed) - threshold}

    rows = ledger(db, dag_run.run_id)
    failed_sends = sum(1 for status, *_ in rows.values() if status == "failed")  # in a POST that failed
    contacts = _counts(lines, "genesys.contacts")
    assert contacts[f"{C},outcome=claimed,reason=none"] == sum(1 for *_, seg, _ in rows.values() if seg >= 0)
    assert len(rows) == 250
    assert contacts[f"{C},outcome=failed,reason=none"] == failed_sends > 0

    # The API metrics agree with the emulator: the one 2xx POST, then exactly `threshold` 500s, nothing retried.
    responses, latencies, api_calls = _api_expectations(emulator)
    assert responses["endpoint=contacts_add,method=POST,status_class=5xx"] == threshold
    assert _counts(lines, "genesys.api.responses") == responses
    assert Counter({k: len(v) for k, v in _values(lines, "genesys.api.latency", "ms").items()}) == latencies
    assert _counts(lines, "genesys.api.retries") == {} and _counts(lines, "genesys.api.throttled") == {}
    assert _counts(lines, "genesys.token.refreshes") == {f"conn_id={CONN}": 1}

    # closed -> open exactly once, right after the response that made `threshold` consecutive failures.
    transitions = [i for i, line in enumerate(lines) if line.name.endswith(".circuit_breaker.transitions")]
    server_errors = [i for i, line in enumerate(lines)
                     if line.name.endswith(".api.responses") and line.tags["status_class"] == "5xx"]
    assert _counts(lines, "genesys.circuit_breaker.transitions") == {
        f"conn_id={CONN},from_state=closed,to_state=open": 1}
    assert transitions == [server_errors[threshold - 1] + 1]
    after = [line.raw.rsplit(".", 1)[-1] for line in lines[transitions[0]: transitions[0] + 5]]
    assert after[:3] == [
        f"transitions,conn_id={CONN},from_state=closed,to_state=open:1|c",
        f"state,conn_id={CONN}:1|g", f"state,conn_id={CONN}:1|g",
    ]
    # Then the contacts of the POST that failed (one request's worth at most), then the segment failure.
    failed_chunk = re.fullmatch(rf"contacts,{C},outcome=failed,reason=none:(\d+)\|c", after[3])
    assert failed_chunk and 1 <= int(failed_chunk.group(1)) <= TEST_CAMPAIGN["contacts_per_request"]
    assert after[4] == f"failed,{C},error_type=server:1|c"
    # The gauge: 0 on every request sent while closed, then 1 (the transition, and every refused request).
    gauge = _values(lines, "genesys.circuit_breaker.state", "g")[f"conn_id={CONN}"]
    refused = len(failed) - threshold + (states[("apply_pacing", -1)] == "failed")
    assert gauge == [0.0] * api_calls + [1.0] * (2 + refused)

    recorded = db.execute(
        "SELECT outcome, report FROM run_log WHERE run_id = %s", [dag_run.run_id]).fetchone()
    db.commit()
    outcome = recorded[0]
    assert outcome in ("partial", "failed")
    assert list(_values(lines, "genesys.run.duration", "ms")) == [f"{C},outcome={outcome}"]
    (stamp,) = _values(lines, "genesys.run.last_finish", "g")[C]
    assert started <= stamp <= finished
    assert _values(lines, "genesys.run.last_success", "g") == {}, "a failed run must not reset the staleness clock"

    # Every claimed contact is counted as its ledger row changes: dispatched and skipped equal the ledger,
    # and failed equals the contacts of the POSTs that failed (the ledger's failed rows).
    dispatched = sum(1 for status, *_ in rows.values() if status == "dispatched")
    skipped = sum(1 for status, *_ in rows.values() if status == "skipped")
    failed_rows = sum(1 for status, *_ in rows.values() if status == "failed")
    counted = {outcome: sum(n for key, n in contacts.items() if f"outcome={outcome}," in key)
               for outcome in ("dispatched", "skipped", "failed")}
    assert counted == {"dispatched": dispatched, "skipped": skipped, "failed": failed_rows}


@pytest.mark.usefixtures("shared_state")
def test_503s_are_retried_until_the_breaker_opens(db: Any, emulator: Emulator, statsd: UdpSink) -> None:
    """A 503 is retried (Retry-After: 0 keeps this fast); the third consecutive one opens the breaker, which
    stops the retries before the hook's max_attempts (5) would: every segment fails as circuit_open."""
    _seed(db)
    emulator.fault(route=CONTACTS_ROUTE, sequence=[503] * 20, retryAfter=0)
    dag_run, datagrams, _, _ = _run(statsd)
    assert str(dag_run.state) == "failed"
    lines = _ours(datagrams)
    _assert_clean(datagrams, _forbidden(db))
    _assert_mapped(lines)

    threshold = BreakerSettings().failure_threshold
    responses, _, api_calls = _api_expectations(emulator)
    assert responses["endpoint=contacts_add,method=POST,status_class=5xx"] == threshold
    assert _counts(lines, "genesys.api.responses") == responses
    # Each 503 schedules a retry; the third retry is refused by the breaker that response just opened.
    assert _counts(lines, "genesys.api.retries") == {"endpoint=contacts_add,reason=503": threshold}
    assert _counts(lines, "genesys.api.throttled") == {}
    assert _counts(lines, "genesys.circuit_breaker.transitions") == {
        f"conn_id={CONN},from_state=closed,to_state=open": 1}
    rows = ledger(db, dag_run.run_id)
    segments = len({seg for *_, seg, _ in rows.values() if seg >= 0})
    assert _counts(lines, "genesys.segment.failed") == {f"{C},error_type=circuit_open": segments}
    assert _counts(lines, "genesys.segment.created") == {}
    failed_sends = sum(1 for status, *_ in rows.values() if status == "failed")
    assert _counts(lines, "genesys.contacts")[f"{C},outcome=failed,reason=none"] == failed_sends > 0
    refused = segments + (task_states(dag_run)[("apply_pacing", -1)] == "failed")
    gauge = _values(lines, "genesys.circuit_breaker.state", "g")[f"conn_id={CONN}"]
    assert gauge == [0.0] * api_calls + [1.0] * (2 + refused)


@pytest.mark.usefixtures("shared_state")
def test_a_dry_run_moves_no_metric_that_says_the_campaign_is_fed(db: Any, emulator: Emulator, statsd: UdpSink) -> None:
    """A dry run finishes (last_finish, duration with outcome dry_run) but feeds nothing: no last_success, no
    contacts claimed or dispatched, no segments, no pacing gauges. So the staleness alerts still fire when only
    dry runs happen (deploy/prometheus/alerts_test.yml, "dry runs do not feed a campaign")."""
    _seed(db)
    statsd.take(quiet=0.2)
    dag_run = run_dag(conf={"dry_run": "dry"})
    lines = _ours(statsd.take())
    assert str(dag_run.state) == "success", task_states(dag_run)
    _assert_mapped(lines)
    emitted = {line.name.removeprefix(f"{PREFIX}.") for line in lines}
    assert "genesys.run.last_finish" in emitted
    assert set(_values(lines, "genesys.run.duration", "ms")) == {f"{C},outcome=dry_run"}
    assert not emitted & {
        "genesys.run.last_success", "genesys.contacts", "genesys.segment.created", "genesys.segment.failed",
        "genesys.pacing.answer_rate", "genesys.pacing.dial_ratio", "genesys.pacing.max_calls_per_agent",
        "genesys.pacing.outbound_line_count",
    }
