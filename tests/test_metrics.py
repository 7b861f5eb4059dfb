"""metrics.py on the wire, and the statsd-exporter / Prometheus / Grafana files that consume it.

Proved on real parts: the UDP datagrams (a real socket on loopback, configured through Airflow's own
``[metrics]`` settings) and the Prometheus rules (promtool). Checked statically: the exporter mapping (a
small re-implementation of its glob matching) and the Grafana dashboard's queries.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from genesys_dialer import metrics
from genesys_dialer.genesys import errors as exceptions

REPO = Path(__file__).resolve().parents[1]
MAPPING = REPO / "deploy" / "statsd" / "mapping.yml"
PROM_DIR = REPO / "deploy" / "prometheus"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "genesys_dialer.json"
PREFIX = "airflow"
OURS = f"{PREFIX}.{metrics.NAMESPACE}."

# The intended Prometheus catalogue: name -> (type, label names). The first four are the seed's.
CATALOGUE: dict[str, tuple[str, frozenset[str]]] = {
    "genesys_segment_created_total": ("counter", frozenset({"campaign_id"})),
    "genesys_segment_failed_total": ("counter", frozenset({"campaign_id", "error_type"})),
    "genesys_api_latency_seconds": ("histogram", frozenset({"endpoint"})),
    "genesys_circuit_breaker_state": ("gauge", frozenset({"conn_id"})),
    "genesys_circuit_breaker_transitions_total": ("counter", frozenset({"conn_id", "from_state", "to_state"})),
    "genesys_api_responses_total": ("counter", frozenset({"endpoint", "method", "status_class"})),
    "genesys_api_throttled_total": ("counter", frozenset({"endpoint"})),
    "genesys_api_retries_total": ("counter", frozenset({"endpoint", "reason"})),
    "genesys_token_refreshes_total": ("counter", frozenset({"conn_id"})),
    "genesys_contacts_total": ("counter", frozenset({"campaign_id", "outcome", "reason"})),
    "genesys_pacing_answer_rate": ("gauge", frozenset({"campaign_id"})),
    "genesys_pacing_dial_ratio": ("gauge", frozenset({"campaign_id"})),
    "genesys_pacing_max_calls_per_agent": ("gauge", frozenset({"campaign_id"})),
    "genesys_pacing_outbound_line_count": ("gauge", frozenset({"campaign_id"})),
    "genesys_run_duration_seconds": ("histogram", frozenset({"campaign_id", "outcome"})),
    "genesys_run_last_finish_timestamp_seconds": ("gauge", frozenset({"campaign_id"})),
    "genesys_run_last_success_timestamp_seconds": ("gauge", frozenset({"campaign_id"})),
    "genesys_run_schedule_interval_seconds": ("gauge", frozenset({"campaign_id"})),
    "genesys_run_skipped_share": ("gauge", frozenset({"campaign_id"})),
    "genesys_run_skipped_share_threshold": ("gauge", frozenset({"campaign_id"})),
}
STATSD_TYPE = {"counter": "c", "gauge": "g", "histogram": "ms"}

CAMPAIGN = "5d9a3f0e-8b7c-4e21-9f3a-2c1b0d4e6f70"
CONN = "genesys_default"


# ------------------------------------------------------------------------------------------- UDP listener


@dataclass
class Line:
    """One StatsD line in statsd-exporter's InfluxDB tag format: ``name,k=v,...:value|type``."""

    raw: str
    name: str
    tags: dict[str, str]
    value: str
    type: str


LINE_RE = re.compile(r"^(?P<head>[^:|]+):(?P<value>-?[0-9.eE+-]+)\|(?P<type>c|g|ms|h|d)$")


def parse_line(raw: str) -> Line:
    match = LINE_RE.match(raw)
    assert match, f"not a StatsD line: {raw!r}"
    name, *pairs = match["head"].split(",")
    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        assert sep and key and value, f"bad tag {pair!r} in {raw!r}"
        tags[key] = value
    return Line(raw, name, tags, match["value"], match["type"])


@dataclass
class Receiver:
    sock: socket.socket
    port: int
    lines: list[Line] = field(default_factory=list)

    def collect(self, quiet: float = 0.3) -> list[Line]:
        """Everything metrics.py sent since the last call (Airflow's own metrics are ignored)."""
        got: list[Line] = []
        self.sock.settimeout(quiet)
        while True:
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                break
            for raw in data.decode("ascii").split("\n"):
                if raw.startswith(OURS):
                    got.append(parse_line(raw))
        self.lines.extend(got)
        return got

    def raw(self) -> list[str]:
        return [line.raw for line in self.collect()]


def _configure(monkeypatch: pytest.MonkeyPatch, **settings: str) -> None:
    """Point Airflow's [metrics] section (and so metrics.py) somewhere, through the env overrides."""
    for key, value in settings.items():
        monkeypatch.setenv(f"AIRFLOW__METRICS__{key.upper()}", value)
    metrics._reset()


@pytest.fixture
def statsd(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    _configure(monkeypatch, statsd_on="True", statsd_host="127.0.0.1", statsd_port=str(port),
               statsd_prefix=PREFIX)
    try:
        yield Receiver(sock, port)
    finally:
        sock.close()
        metrics._reset()


# ---------------------------------------------------------------------------------------- exact datagrams


def test_settings_come_from_airflow_metrics_section(statsd: Receiver) -> None:
    """The values metrics.py uses are the ones Airflow's own config parser reports."""
    from airflow.sdk.configuration import conf

    settings = metrics._EMITTER.settings()
    assert settings.enabled is conf.getboolean("metrics", "statsd_on") is True
    assert (settings.host, settings.port, settings.prefix) == (
        conf.get("metrics", "statsd_host"), conf.getint("metrics", "statsd_port"), conf.get("metrics", "statsd_prefix")
    ) == ("127.0.0.1", statsd.port, PREFIX)


def test_api_request(statsd: Receiver) -> None:
    metrics.api_request("campaign_get", "GET", 200, 0.1234)
    assert statsd.raw() == [
        "airflow.genesys.api.latency,endpoint=campaign_get:123.400000|ms",
        "airflow.genesys.api.responses,endpoint=campaign_get,method=GET,status_class=2xx:1|c",
    ]
    metrics.api_request("contacts_add", "post", 429, 0.05)
    assert statsd.raw() == [
        "airflow.genesys.api.latency,endpoint=contacts_add:50.000000|ms",
        "airflow.genesys.api.responses,endpoint=contacts_add,method=POST,status_class=4xx:1|c",
        "airflow.genesys.api.throttled,endpoint=contacts_add:1|c",
    ]
    metrics.api_request("token", "POST", None, 10.0)
    assert statsd.raw() == [
        "airflow.genesys.api.latency,endpoint=token:10000.000000|ms",
        "airflow.genesys.api.responses,endpoint=token,method=POST,status_class=no_response:1|c",
    ]


def test_retry_and_token(statsd: Receiver) -> None:
    metrics.api_retry("contacts_add", "429")
    metrics.api_retry("campaign_patch", "timeout")
    metrics.token_refresh(CONN)
    assert statsd.raw() == [
        "airflow.genesys.api.retries,endpoint=contacts_add,reason=429:1|c",
        "airflow.genesys.api.retries,endpoint=campaign_patch,reason=timeout:1|c",
        "airflow.genesys.token.refreshes,conn_id=genesys_default:1|c",
    ]


def test_breaker(statsd: Receiver) -> None:
    metrics.breaker_state(CONN, "closed")
    metrics.breaker_state(CONN, "open")
    metrics.breaker_state(CONN, "half-open")
    metrics.breaker_state(CONN, "melted")  # unknown: nothing
    metrics.breaker_transition(CONN, "closed", "open")
    assert statsd.raw() == [
        "airflow.genesys.circuit_breaker.state,conn_id=genesys_default:0|g",
        "airflow.genesys.circuit_breaker.state,conn_id=genesys_default:1|g",
        "airflow.genesys.circuit_breaker.state,conn_id=genesys_default:2|g",
        "airflow.genesys.circuit_breaker.transitions,conn_id=genesys_default,from_state=closed,to_state=open:1|c",
        "airflow.genesys.circuit_breaker.state,conn_id=genesys_default:1|g",
    ]


def test_segments_and_contacts(statsd: Receiver) -> None:
    metrics.segment_created(CAMPAIGN)
    metrics.segment_failed(CAMPAIGN, "throttled")
    metrics.contacts(CAMPAIGN, "claimed", 250)
    metrics.contacts(CAMPAIGN, "skipped", 3, "invalid_phone")
    metrics.contacts(CAMPAIGN, "dispatched", 0)
    metrics.contacts(CAMPAIGN, "failed", -2)  # negative: nothing
    c = f"campaign_id={CAMPAIGN}"
    assert statsd.raw() == [
        f"airflow.genesys.segment.created,{c}:1|c",
        f"airflow.genesys.segment.failed,{c},error_type=throttled:1|c",
        f"airflow.genesys.contacts,{c},outcome=claimed,reason=none:250|c",
        f"airflow.genesys.contacts,{c},outcome=skipped,reason=invalid_phone:3|c",
        f"airflow.genesys.contacts,{c},outcome=dispatched,reason=none:0|c",
    ]


def test_held_back_and_withdrawn_contacts_and_the_skip_share(statsd: Receiver) -> None:
    """Every compliance reason is a bounded label; the run's skip share and its threshold are gauges in 0..1."""
    from genesys_dialer.compliance import reasons

    for reason in sorted(reasons.ALL_REASONS):
        metrics.contacts(CAMPAIGN, "skipped", 2, reason)
    metrics.contacts(CAMPAIGN, "withdrawn", 1, reasons.SUPPRESSED)
    metrics.run_skipped_share(CAMPAIGN, 0.125, 0.5)
    metrics.run_skipped_share(CAMPAIGN, 1.5, float("nan"))  # clamped; a NaN threshold is not sent
    c = f"campaign_id={CAMPAIGN}"
    assert statsd.raw() == [
        *(f"airflow.genesys.contacts,{c},outcome=skipped,reason={r}:2|c" for r in sorted(reasons.ALL_REASONS)),
        f"airflow.genesys.contacts,{c},outcome=withdrawn,reason=suppressed:1|c",
        f"airflow.genesys.run.skipped_share,{c}:0.125|g",
        f"airflow.genesys.run.skipped_share_threshold,{c}:0.5|g",
        f"airflow.genesys.run.skipped_share,{c}:1.0|g",
    ]


def test_pacing(statsd: Receiver) -> None:
    metrics.pacing(CAMPAIGN, 0.23, 1.85, 2.5, 40)
    metrics.pacing(CAMPAIGN, float("nan"), 1.0, 1.0, 1)  # a NaN answer rate is skipped, the rest is sent
    c = f"campaign_id={CAMPAIGN}"
    assert statsd.raw() == [
        f"airflow.genesys.pacing.answer_rate,{c}:0.23|g",
        f"airflow.genesys.pacing.dial_ratio,{c}:1.85|g",
        f"airflow.genesys.pacing.max_calls_per_agent,{c}:2.5|g",
        f"airflow.genesys.pacing.outbound_line_count,{c}:40.0|g",
        f"airflow.genesys.pacing.dial_ratio,{c}:1.0|g",
        f"airflow.genesys.pacing.max_calls_per_agent,{c}:1.0|g",
        f"airflow.genesys.pacing.outbound_line_count,{c}:1.0|g",
    ]


def test_run_finished(statsd: Receiver) -> None:
    before = time.time()
    metrics.run_finished(CAMPAIGN, "success", 42.5)
    metrics.run_finished(CAMPAIGN, "failed", 3.0)
    metrics.run_finished(CAMPAIGN, "dry_run", 5.0)  # a run, but it fed nothing: no last_success
    metrics.schedule_interval(CAMPAIGN, 900)
    after = time.time()
    lines = statsd.collect()
    c = f"campaign_id={CAMPAIGN}"
    assert [line.raw for line in lines if line.name.endswith(".duration")] == [
        f"airflow.genesys.run.duration,{c},outcome=success:42500.000000|ms",
        f"airflow.genesys.run.duration,{c},outcome=failed:3000.000000|ms",
        f"airflow.genesys.run.duration,{c},outcome=dry_run:5000.000000|ms",
    ]
    stamps = [(line.name, float(line.value)) for line in lines if line.name.endswith(("_finish", "_success"))]
    assert [name for name, _ in stamps] == [
        "airflow.genesys.run.last_finish", "airflow.genesys.run.last_success", "airflow.genesys.run.last_finish",
        "airflow.genesys.run.last_finish",
    ]
    assert all(before <= value <= after for _, value in stamps)
    assert lines[-1].raw == f"airflow.genesys.run.schedule_interval,{c}:900.0|g"


# ------------------------------------------------------------------------------- every function, every way


def exercise_everything() -> None:
    """Every public function with normal, odd and hostile arguments."""
    for endpoint in ("token", "campaign_get", "campaign_patch", "contactlist_get", "contacts_add",
                     "contacts_search", "/api/v2/outbound/campaigns/123/segments"):
        for status in (200, 201, 302, 401, 429, 503, None, 999):
            metrics.api_request(endpoint, "GET", status, 0.2)
        metrics.api_request(endpoint, "BREW", 200, float("inf"))
    for reason in ("429", "503", "timeout", "connection", "+1 (555) 123-4567", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x"):
        metrics.api_retry("contacts_add", reason)
    for conn in (CONN, "genesys,eu=1:x|y", "élan", "+44 20 7946 0958", ""):
        metrics.token_refresh(conn)
        metrics.breaker_state(conn, "open")
        metrics.breaker_transition(conn, "half_open", "closed")
    for campaign in (CAMPAIGN, "spring_renewals", "+15551234567", "a" * 200, "x,y=z"):
        metrics.segment_created(campaign)
        for error_type in ("throttled", "auth", "server", "Traceback (most recent call last)", "contact 0123456789"):
            metrics.segment_failed(campaign, error_type)
        for outcome, reason in (("claimed", None), ("dispatched", None), ("skipped", "dnc"),
                                ("skipped", "invalid_phone"), ("failed", None), ("skipped", "+33612345678"),
                                ("withdrawn", "suppressed_number"), ("withdrawn", "0123456789")):
            metrics.contacts(campaign, outcome, 7, reason)
        metrics.run_skipped_share(campaign, 0.25, 0.5)
        metrics.pacing(campaign, 0.2, 1.5, 3.0, 30)
        for outcome in ("success", "partial", "failed", "dry_run"):
            metrics.run_finished(campaign, outcome, 12.0)
        metrics.schedule_interval(campaign, 900)


# Tag values must be a vocabulary slug, a 3-digit status, a status class, or a campaign/connection id.
TAG_VALUE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
FORBIDDEN = ("555", "7946", "0123456789", "eyJ", "Bearer", "Traceback", "/api/", "612345678")
# The digits of the phone numbers above: a value may hold "555" by chance (a timestamp did), not one of these.
PHONE_DIGITS = ("5551234567", "2079460958", "0123456789", "33612345678")


def test_every_metric_keeps_one_tag_key_set_and_no_forbidden_content(statsd: Receiver) -> None:
    exercise_everything()
    lines = statsd.collect()
    assert lines
    keys_by_name: dict[str, set[tuple[str, ...]]] = {}
    for line in lines:
        keys_by_name.setdefault(line.name, set()).add(tuple(line.tags))
        assert re.fullmatch(r"[A-Za-z0-9_.\-/]{1,250}", line.name), line.raw
        for value in line.tags.values():
            assert TAG_VALUE_RE.match(value), line.raw
        named = [line.name, *line.tags, *line.tags.values()]  # the value is a number (parse_line checks)
        for bad in FORBIDDEN:
            assert not any(bad in part for part in named), line.raw
        for digits in PHONE_DIGITS:
            assert digits not in line.value, line.raw
    inconsistent = {name: keys for name, keys in keys_by_name.items() if len(keys) != 1}
    assert not inconsistent, f"tag keys differ between emissions: {inconsistent}"


# ------------------------------------------------------------------------------------ off, broken, unresolvable


def _listener() -> tuple[socket.socket, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.3)
    return sock, sock.getsockname()[1]


def _nothing_arrives(sock: socket.socket) -> bool:
    try:
        while True:
            if sock.recv(65535).decode("ascii").startswith(OURS):
                return False
    except TimeoutError:
        return True


def test_statsd_off_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    sock, port = _listener()
    try:
        _configure(monkeypatch, statsd_on="False", statsd_host="127.0.0.1", statsd_port=str(port))
        exercise_everything()
        assert _nothing_arrives(sock)
        assert metrics._EMITTER._client is None
        started = time.perf_counter()
        for _ in range(10_000):
            metrics.segment_created(CAMPAIGN)
        assert time.perf_counter() - started < 1.0, "a disabled metric call must be cheap"
    finally:
        sock.close()
        metrics._reset()


def test_unresolvable_host_is_silent_then_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unlike Airflow's client, a host that does not resolve yet does not disable the process for good."""
    sock, port = _listener()
    try:
        _configure(monkeypatch, statsd_on="True", statsd_host="statsd-exporter.invalid", statsd_port=str(port))
        exercise_everything()  # must not raise
        assert _nothing_arrives(sock)

        # The name starts resolving (to our listener): after the retry delay, metrics flow again.
        real = socket.getaddrinfo

        def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
            return real("127.0.0.1" if host == "statsd-exporter.invalid" else host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", resolve)
        metrics.segment_created(CAMPAIGN)
        assert _nothing_arrives(sock), "still inside the retry delay"
        monkeypatch.setattr(metrics, "_RETRY_SECONDS", 0.0)
        metrics._EMITTER._retry_after = 0.0
        metrics.segment_created(CAMPAIGN)
        assert sock.recv(65535).decode("ascii") == f"airflow.genesys.segment.created,campaign_id={CAMPAIGN}:1|c"
    finally:
        sock.close()
        metrics._reset()


def test_a_failing_client_never_reaches_task_code(statsd: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    metrics.segment_created(CAMPAIGN)  # builds the client
    statsd.collect()

    def boom(*args: Any, **kwargs: Any) -> None:
        raise OSError("network is down")

    client = metrics._EMITTER._client
    for method in ("incr", "gauge", "timing"):
        monkeypatch.setattr(client, method, boom)
    exercise_everything()
    metrics.pacing(None, "x", None, object(), "many")  # type: ignore[arg-type]
    assert statsd.collect() == []


def test_unparsable_port_and_broken_config_disable_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    _configure(monkeypatch, statsd_on="True", statsd_port="not-a-port")
    try:
        exercise_everything()  # must not raise
    finally:
        metrics._reset()


# ------------------------------------------------------------------------------------- statsd-exporter mapping


@dataclass
class Rule:
    index: int
    spec: dict[str, Any]
    regex: re.Pattern[str]
    is_glob: bool

    @property
    def drops(self) -> bool:
        return self.spec.get("action") == "drop"

    def matches(self, name: str, statsd_type: str) -> re.Match[str] | None:
        wanted = self.spec.get("match_metric_type")
        if wanted and wanted != {"c": "counter", "g": "gauge"}.get(statsd_type, "observer"):
            return None
        return self.regex.fullmatch(name) if self.is_glob else self.regex.search(name)


# statsd-exporter's validation of glob rules: every component is "*" or a name (no partial wildcards).
_COMPONENT = r"[a-zA-Z_](?:-?[a-zA-Z0-9_])+"
GLOB_LINE_RE = re.compile(rf"(?:\*|{_COMPONENT})(?:\.\*|\.{_COMPONENT})*")


def load_rules() -> list[Rule]:
    """statsd-exporter's rules: glob (``*`` = one dot-separated component) or regex (Go, unanchored)."""
    rules = []
    for index, spec in enumerate(yaml.safe_load(MAPPING.read_text())["mappings"]):
        if spec.get("match_type", "glob") == "glob":
            assert GLOB_LINE_RE.fullmatch(spec["match"]), f"statsd-exporter rejects glob {spec['match']!r}"
            pattern = "".join("([^.]*)" if ch == "*" else re.escape(ch) for ch in spec["match"])
            rules.append(Rule(index, spec, re.compile(pattern), True))
        else:
            rules.append(Rule(index, spec, re.compile(spec["match"]), False))
    return rules


def expand(template: str, match: re.Match[str]) -> str:
    return re.sub(r"\$\{?(\d+)\}?", lambda m: match.group(int(m.group(1))), template)


def map_line(rules: list[Rule], line: Line) -> tuple[Rule, str, dict[str, str]]:
    """The one rule that maps this line, the Prometheus name and labels it produces."""
    hits = [(rule, m) for rule in rules if (m := rule.matches(line.name, line.type))]
    assert len(hits) == 1, f"{line.raw}: matched by {[rule.spec['match'] for rule, _ in hits]}"
    rule, match = hits[0]
    labels = dict(line.tags)
    labels.update({key: expand(str(value), match) for key, value in (rule.spec.get("labels") or {}).items()})
    name = expand(rule.spec["name"], match)
    return rule, name, labels


def produced_names(rules: list[Rule]) -> dict[str, str]:
    """Prometheus names the mapping can produce -> type; histograms and summaries add their series."""
    names: dict[str, str] = {}
    for rule in rules:
        if rule.drops or "$" in rule.spec["name"]:
            continue
        base = rule.spec["name"]
        names[base] = rule.spec.get("observer_type", "untyped")
        if rule.spec.get("observer_type") == "histogram" or rule.spec.get("match_metric_type") == "observer":
            for suffix in ("_bucket", "_sum", "_count"):
                names[base + suffix] = "histogram-series"
        if not rule.spec.get("match_metric_type"):  # Airflow timers: summaries by default
            for suffix in ("_sum", "_count"):
                names[base + suffix] = "summary-series"
    return names


def test_every_emitted_line_maps_to_the_intended_prometheus_metric(statsd: Receiver) -> None:
    rules = load_rules()
    exercise_everything()
    seen: dict[str, set[frozenset[str]]] = {}
    used_rules = set()
    for line in statsd.collect():
        rule, name, labels = map_line(rules, line)
        assert rule.is_glob and not rule.drops, line.raw
        used_rules.add(rule.index)
        assert name in CATALOGUE, f"{line.raw} -> {name}: not in the catalogue"
        kind, label_names = CATALOGUE[name]
        assert STATSD_TYPE[kind] == line.type, line.raw
        assert frozenset(labels) == label_names, f"{line.raw} -> {name}{sorted(labels)}"
        assert re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", name)
        if kind == "histogram":
            assert rule.spec["observer_type"] == "histogram"
            assert rule.spec["histogram_options"]["buckets"] == sorted(rule.spec["histogram_options"]["buckets"])
        seen.setdefault(name, set()).add(frozenset(labels))
    assert set(seen) == set(CATALOGUE), f"never emitted: {set(CATALOGUE) - set(seen)}"
    assert all(len(label_sets) == 1 for label_sets in seen.values())
    ours = {rule.index for rule in rules if rule.spec["match"].startswith(OURS)}
    assert ours == used_rules, "mapping rules for lines metrics.py never sends"
    latency = next(rule for rule in rules if rule.spec.get("name") == "genesys_api_latency_seconds")
    buckets = latency.spec["histogram_options"]["buckets"]
    assert buckets[0] <= 0.025 and buckets[-1] >= 30


def test_seed_metric_names_are_kept() -> None:
    names = produced_names(load_rules())
    for seed in ("genesys_segment_created_total", "genesys_segment_failed_total", "genesys_api_latency_seconds",
                 "genesys_circuit_breaker_state"):
        assert seed in names


HELM_LEGACY_EXAMPLES = {
    # Airflow 3 legacy names -> (Prometheus name, labels), as the Helm chart's rules map them.
    "airflow.dag.genesys_predictive_demo.create_segment.duration": (
        "airflow_task_duration", {"dag_id": "genesys_predictive_demo", "task_id": "create_segment"}),
    "airflow.pool.open_slots.genesys_api": ("airflow_pool_open_slots", {"pool": "genesys_api"}),
    "airflow.pool.running_slots.genesys_api": ("airflow_pool_running_slots", {"pool": "genesys_api"}),
    "airflow.pool.starving_tasks.genesys_api": ("airflow_pool_starving_tasks", {"pool": "genesys_api"}),
    "airflow.dagrun.duration.success.genesys_predictive_demo": (
        "airflow_dagrun_duration", {"dag_id": "genesys_predictive_demo"}),
    "airflow.ti.finish.genesys_predictive_demo.create_segment.failed": (
        "airflow_ti_finish", {"dag_id": "genesys_predictive_demo", "task_id": "create_segment", "state": "failed"}),
    "airflow.executor.open_slots.CeleryExecutor": ("airflow_executor_open_slots", {"executor": "CeleryExecutor"}),
    "airflow.operator_successes_PythonOperator": ("airflow_operator_successes", {"operator": "PythonOperator"}),
}


@pytest.mark.parametrize("name", sorted(HELM_LEGACY_EXAMPLES))
def test_airflow_legacy_names_follow_the_helm_mappings(name: str) -> None:
    rules = load_rules()
    statsd_type = "ms" if name.endswith("duration") or ".duration." in name else "g"
    hits = [(rule, m) for rule in rules if (m := rule.matches(name, statsd_type))]
    assert hits, name
    rule, match = hits[0]  # first match wins
    labels = {key: expand(str(value), match) for key, value in (rule.spec.get("labels") or {}).items()}
    assert (rule.spec["name"], labels) == HELM_LEGACY_EXAMPLES[name]


def _exporter_default_name(statsd_name: str) -> str:
    """statsd-exporter's name for an unmapped metric: invalid characters become underscores."""
    name = re.sub(r"[^a-zA-Z0-9_]", "_", statsd_name)
    return "_" + name if name[0].isdigit() else name


def test_airflow_new_names_never_collide_with_mapped_names() -> None:
    """Airflow 3 sends both names; a tag-less new name landing on a mapped name would poison it."""
    import airflow._shared.observability.metrics as registry_pkg

    registry = yaml.safe_load((Path(registry_pkg.__file__).parent / "metrics_template.yaml").read_text())
    rules = load_rules()
    mapped = set(produced_names(rules))
    checked, colliding = 0, []
    for entry in registry["metrics"]:
        if entry.get("legacy_name", "-") == "-":
            continue
        statsd_name = f"{PREFIX}.{entry['name']}"
        statsd_type = {"counter": "c", "gauge": "g"}.get(entry.get("type"), "ms")
        hits = [rule for rule in rules if rule.matches(statsd_name, statsd_type)]
        target = (None if hits[0].drops else hits[0].spec["name"]) if hits else _exporter_default_name(statsd_name)
        if target in mapped:
            colliding.append(statsd_name)
        checked += 1
    assert checked > 20
    assert not colliding, f"these need a drop rule in {MAPPING.name}: {colliding}"


# ------------------------------------------------------------------------------- dashboard and alert queries

PROMQL_WORDS = {"and", "or", "unless", "bool", "by", "without", "on", "ignoring", "group_left", "group_right",
                "offset", "inf", "nan"}


def promql_metrics(expr: str) -> dict[str, set[str]]:
    """Metric names in a PromQL expression -> label names used in its selectors."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"#[^\n]*", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\boffset\s+\d+[smhdwy]", "", text)
    found: dict[str, set[str]] = {}
    for match in re.finditer(r"(?<![\w:.$])([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^}]*\})?\s*(\()?", text):
        name, selector, call = match.groups()
        if call or name in PROMQL_WORDS:
            continue
        labels = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", selector or ""))
        found.setdefault(name, set()).update(labels)
    return found


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        text = query.get("query") if isinstance(query, dict) else query
        inner = re.match(r"label_values\((.*),\s*\w+\)$", text or "")
        exprs.append(inner.group(1) if inner else text)
    return exprs


def alert_exprs() -> list[str]:
    groups = yaml.safe_load((PROM_DIR / "alerts.yml").read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def _base(name: str) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in CATALOGUE:
            return name[: -len(suffix)]
    return name


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_queries_only_use_metrics_the_mapping_produces(source: str) -> None:
    exprs = dashboard_exprs() if source == "dashboard" else alert_exprs()
    produced = produced_names(load_rules())
    used: dict[str, set[str]] = {}
    for expr in exprs:
        for name, labels in promql_metrics(expr).items():
            used.setdefault(name, set()).update(labels)
    assert used, "no metric found: the PromQL scanner is broken"
    unknown = sorted(name for name in used if name not in produced)
    assert not unknown, f"{source} queries metrics the mapping never produces: {unknown}"
    for name, labels in used.items():
        base = _base(name)
        if base in CATALOGUE:
            allowed = set(CATALOGUE[base][1]) | ({"le"} if name.endswith("_bucket") else set())
            assert labels <= allowed, f"{source}: {name} has no label(s) {labels - allowed}"


def test_dashboard_has_one_row_per_concern() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    rows = [panel["title"] for panel in dashboard["panels"] if panel["type"] == "row"]
    assert rows == ["Throughput", "Failures", "Latency", "Breaker", "Pacing"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    datasource_uid = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"][0]["uid"]
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == datasource_uid
            assert panel["targets"]


# ------------------------------------------------------------------------------------------------- promtool


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: `sudo .ci/apt-install --no-install-recommends prometheus` (as .ci/run does)")
    return path


@pytest.mark.parametrize(
    "args",
    [("check", "config", "prometheus.yml"), ("check", "rules", "alerts.yml"), ("test", "rules", "alerts_test.yml")],
    ids=lambda args: " ".join(args[:2]),
)
def test_promtool(args: tuple[str, ...]) -> None:
    result = subprocess.run([_promtool(), *args], cwd=PROM_DIR, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_would_catch_a_broken_alert(tmp_path: Path) -> None:
    """The unit tests are not vacuous: a rule with the wrong threshold fails them."""
    broken = (PROM_DIR / "alerts.yml").read_text().replace("== 1\n", "== 2\n")
    (tmp_path / "alerts.yml").write_text(broken)
    shutil.copy(PROM_DIR / "alerts_test.yml", tmp_path / "alerts_test.yml")
    result = subprocess.run([_promtool(), "test", "rules", "alerts_test.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "GenesysCircuitBreakerOpen" in result.stdout + result.stderr



@pytest.mark.parametrize(("error", "label"), [
    (exceptions.GenesysCircuitOpenError("open"), "circuit_open"),
    (exceptions.GenesysTransientError("slow down", status=429), "throttled"),
    (exceptions.GenesysTransientError("down", status=503), "unavailable"),
    (exceptions.GenesysAuthError("no", status=403), "auth"),
    (exceptions.GenesysNotFoundError("gone", status=404), "not_found"),
    (exceptions.GenesysClientError("bad", status=400), "client"),
    (exceptions.GenesysServerError("oops", status=500), "server"),
    (exceptions.GenesysResponseError("html"), "bad_response"),
])
def test_each_error_class_names_its_segment_failure_label(error, label):
    assert error.error_type == label
    assert metrics._vocab(error.error_type) == label  # passes the label filter unchanged
