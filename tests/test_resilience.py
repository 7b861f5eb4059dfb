"""Fault matrix under a real executor: nothing lost, nothing sent twice, the breaker holds.

Every case is a real run of ``genesys_predictive_xfault`` (240 contacts, 4 mapped segments of 60, 25
contacts per request, retries 4 / 3 s) on the session's api-server + scheduler + LocalExecutor, with one
emulator fault. Every case asserts, from the emulator's request log and contact list, the ledger and the
run log (never the hook's own word):

* every contact the ledger says was dispatched is in the contact list exactly once, and nothing else is;
  nothing claimed is left unsent once the run succeeded;
* the run log agrees with the ledger;
* while the shared breaker (its facts read from the Variables) was open, Genesys saw no request, and in
  half-open no more than the probes.

Figures (requests, retries, tries, time to recover) are printed per case (``-s``) and kept in
docs/resilience.md.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pipeline_helpers import (
    contact_posts,
    finished_run,
    phone_forms,
    segments_for,
    task_instances,
    task_log_text,
    task_logs,
    xcoms,
)
from support import (
    BREAKER_KEY,
    CONTACT_LIST_ID,
    CONTACTS_ROUTE,
    EMULATOR_CLIENT_SECRET,
    TOKEN_KEY,
    XFAULT_CAMPAIGN,
    XFAULT_CAMPAIGN_ID,
    Emulator,
    airflow,
    clear_shared_state,
    wait_for,
)

from genesys_devkit.demo_data import contact_rows, insert_contacts, insert_dial_history
from genesys_dialer.genesys.breaker import BreakerSettings

pytestmark = [pytest.mark.executor, pytest.mark.usefixtures("airflow_db")]

DAG_ID = "genesys_predictive_xfault"
BATCH = XFAULT_CAMPAIGN["batch_size"]  # 240 contacts claimed per run...
SEGMENTS = segments_for(BATCH, XFAULT_CAMPAIGN["segment_size"])  # ...in 4 mapped create_segment instances
OPEN_SECONDS = BreakerSettings().open_seconds  # the hook's defaults: the emulator connection tunes nothing
HALF_OPEN_MAX = BreakerSettings().half_open_max
FIGURES: dict[str, dict[str, Any]] = {}


# -- helpers -----------------------------------------------------------------------------------------------
def _variables(prefix: str) -> dict[str, Any]:
    from airflow.models import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(Variable).filter(Variable.key.startswith(prefix)).all()
        return {row.key: row.val for row in rows}


def _breaker_facts() -> tuple[float | None, float | None]:
    """(opened_at, closed_at of that opening) from the breaker's Variables."""
    values = _variables(BREAKER_KEY)
    opened = json.loads(values[BREAKER_KEY]).get("opened_at") if BREAKER_KEY in values else None
    closed = json.loads(values.get(f"{BREAKER_KEY}__closed") or "{}")
    return opened, (closed.get("closed_at") if closed.get("gen") == opened else None)


def _stamp(entry: dict[str, Any]) -> float:
    """When Genesys received the request (a request held by injected latency answers much later)."""
    return datetime.fromisoformat(entry["receivedAt"].replace("Z", "+00:00")).timestamp()


def _trigger(name: str) -> str:
    run_id = f"manual__resilience_{name}_{int(time.time())}"
    airflow("dags", "trigger", DAG_ID, "--run-id", run_id)
    return run_id


def _setup(db: Any, seed: int) -> None:
    clear_shared_state()  # breaker facts and the shared token outlive tests in the metadata DB: start clean
    insert_contacts(db, contact_rows(320, seed=seed))
    insert_dial_history(db, XFAULT_CAMPAIGN_ID, end=datetime.now(UTC), days=3, per_day=50, answer_rate=0.2)


def _ledger(db: Any, run_id: str) -> dict[str, str]:
    rows = db.execute("SELECT genesys_contact_id, status FROM dispatch_ledger WHERE run_id = %s", [run_id]).fetchall()
    db.commit()
    return dict(rows)


def check_exactly_once(db: Any, emulator: Emulator, run_id: str, *, expect_outcome: str = "success") -> dict[str, int]:
    """Contact list == dispatched ledger rows, once each; the run log agrees with the ledger."""
    ledger = _ledger(db, run_id)
    assert len(ledger) == BATCH, "the run claimed its batch"
    stored = [c["id"] for c in emulator.contacts()]
    assert len(stored) == len(set(stored)), "a contact is in the list twice"
    dispatched = {cid for cid, status in ledger.items() if status == "dispatched"}
    assert set(stored) == dispatched
    pending = {cid for cid, status in ledger.items() if status in ("claimed", "failed")}
    if expect_outcome == "success":
        assert not pending, f"{len(pending)} claimed contacts were never sent"
    row = db.execute(
        "SELECT outcome, claimed, dispatched, skipped, failed, pending, report FROM run_log WHERE run_id = %s",
        [run_id]).fetchone()
    db.commit()
    assert row is not None, "no run report"
    outcome, claimed, n_dispatched, skipped, failed, n_pending, report = row
    assert outcome == expect_outcome
    assert (claimed, n_dispatched, n_pending) == (BATCH, len(dispatched), len(pending))
    assert skipped == sum(1 for s in ledger.values() if s == "skipped")
    assert failed == sum(1 for s in ledger.values() if s == "failed")
    assert isinstance(report, dict), "run_log.report is JSONB"
    return {"dispatched": len(dispatched), "pending": len(pending), **(report.get("requests") or {})}


def check_breaker_window(log: list[dict[str, Any]]) -> dict[str, Any]:
    """While open, Genesys saw nothing; in half-open, no more than the probes (2x in the documented race)."""
    opened, closed = _breaker_facts()
    if opened is None:
        return {"breaker": "never opened"}
    assert closed is not None, "the breaker opened and never closed again"
    api = [e for e in log if (e["path"] or "").startswith("/api/v2/")]
    # 0.5 s of slack: a request in flight when the breaker opened is logged when it completes.
    while_open = [e for e in api if opened + 0.5 < _stamp(e) < opened + OPEN_SECONDS]
    # A probe is logged before its success is recorded, so before closed_at.
    half_open = [e for e in api if opened + OPEN_SECONDS <= _stamp(e) <= closed]
    assert while_open == [], f"{len(while_open)} requests reached Genesys while the breaker was open"
    assert len(half_open) <= 2 * HALF_OPEN_MAX, f"{len(half_open)} requests in half-open: " + str(
        [(round(_stamp(e) - opened, 2), e["method"], e["status"]) for e in api if _stamp(e) >= opened - 1]
        + [("closed", round(closed - opened, 2))])
    return {"breaker": "opened and closed", "requests_while_open": 0, "probes": len(half_open),
            "recovered_after_s": round(closed - opened, 1)}


def _segment_tries(run_id: str) -> list[int]:
    return sorted(ti.try_number for ti in task_instances(DAG_ID, run_id) if ti.task_id == "create_segment")


@dataclass
class FaultRun:
    """One case's run: its id, when it was triggered, then what the emulator saw and the checked counts."""

    case: str
    run_id: str
    started: float
    log: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def _start(case: str, db: Any, emulator: Emulator, *, seed: int, fault: dict[str, Any]) -> FaultRun:
    """Inject ``fault`` on the contact POSTs, seed the database and trigger the case's run."""
    emulator.fault(route=CONTACTS_ROUTE, **fault)
    _setup(db, seed)
    started = time.monotonic()
    return FaultRun(case, _trigger(case), started)


def _wait(run_id: str, timeout: float = 240) -> str:
    try:
        return str(wait_for(lambda: finished_run(DAG_ID, run_id), timeout, f"run {run_id} to finish", 2).state)
    except AssertionError as err:
        states = {(t.task_id, t.map_index): (str(t.state), t.try_number) for t in task_instances(DAG_ID, run_id)}
        raise AssertionError(f"{err}; task instances: {states}") from None


def _finish(run: FaultRun, db: Any, emulator: Emulator, *, expect: str = "success", timeout: float = 240) -> FaultRun:
    """Wait for the run's ``expect``ed end, then read the emulator's log and check exactly-once delivery."""
    assert _wait(run.run_id, timeout) == expect
    run.log = emulator.requests_log()
    run.counts = check_exactly_once(db, emulator, run.run_id, expect_outcome=expect)
    return run


def _fault_run(case: str, db: Any, emulator: Emulator, *, seed: int, fault: dict[str, Any]) -> FaultRun:
    """A case with nothing to do while it runs: fault, run to success, exactly once."""
    return _finish(_start(case, db, emulator, seed=seed, fault=fault), db, emulator)


def _figures(run: FaultRun, window: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """Record (and print) the case's figures, with the breaker window checked (unless already checked)."""
    window = check_breaker_window(run.log) if window is None else window
    api = [e for e in run.log if (e["path"] or "").startswith("/api/v2/")]
    statuses: dict[str, int] = {}
    for e in run.log:
        key = "dropped" if e["dropped"] else str(e["status"])
        statuses[key] = statuses.get(key, 0) + 1
    FIGURES[run.case] = {
        "api_requests": len(api), "contact_posts": len(contact_posts(api)),
        "token_requests": sum(1 for e in run.log if e["route"] == "POST /oauth/token"), "statuses": statuses,
        "segment_tries": _segment_tries(run.run_id), "wall_s": round(time.monotonic() - run.started, 1),
        **window, **run.counts, **extra,
    }
    print(f"\nFIGURES {run.case}: {json.dumps(FIGURES[run.case], sort_keys=True)}")
    return FIGURES[run.case]


def _held_posts(emulator: Emulator) -> int:
    """Contact POSTs the emulator's fault rule has matched (a latency rule holds each as it arrives)."""
    return sum(f["matchedCalls"] for f in emulator.admin("GET", "faults"))


# -- the matrix --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("case", "seed", "fault", "status", "count"),
    [
        pytest.param("429_storm", 101, {"sequence": [429] * 6, "retryAfter": 2}, 429, 6, id="429_storm"),
        pytest.param("503_burst", 102, {"sequence": [503, 503]}, 503, 2, id="503_burst"),
    ],
)
def test_transient_bursts_are_retried_with_backoff_inside_the_task(
    db, emulator, airflow_stack, case, seed, fault, status, count
):
    """429s (honouring Retry-After) and 503s are retried by the hook: no task retry, and no outage either."""
    run = _fault_run(case, db, emulator, seed=seed, fault=fault)
    assert sum(1 for e in run.log if e["status"] == status) == count
    assert run.counts["retries"] >= count
    assert run.counts["throttled"] == (count if status == 429 else 0)
    assert _segment_tries(run.run_id) == [1] * SEGMENTS, "retried inside the task (Retry-After honoured)"
    assert _figures(run)["breaker"] == "never opened"  # throttling is not an outage, nor are 2 failures


def test_500s_are_not_retried_by_the_hook_and_the_task_retry_sends_the_segment(db, emulator, airflow_stack):
    run = _fault_run("500s", db, emulator, seed=103, fault={"sequence": [500, 500]})
    assert sum(1 for e in contact_posts(run.log) if e["status"] == 500) == 2
    tries = _segment_tries(run.run_id)
    assert tries.count(2) == 2 and tries.count(1) == 2, "each 500 failed its task once; the retry sent it"
    _figures(run)


def test_connection_dropped_after_the_request_was_applied(db, emulator, airflow_stack):
    run = _fault_run("dropped_after_apply", db, emulator, seed=104, fault={"dropAfterApply": 2})
    dropped = [e for e in run.log if e["dropped"]]
    assert len(dropped) == 2 and all(e["contactCount"] > 0 for e in dropped)
    # The dropped POSTs were applied AND re-sent: more contacts were posted than are stored, none twice.
    posted = sum(e["contactCount"] for e in contact_posts(run.log) if e["status"] == 200)
    assert posted == run.counts["dispatched"] + sum(e["contactCount"] for e in dropped)
    _figures(run)


@pytest.mark.celery_core
def test_token_expiring_mid_run_is_refreshed_once_per_worker(db, emulator, airflow_stack):
    run = _start("token_expiry", db, emulator, seed=105, fault={"latencyMs": 1200})
    wait_for(lambda: len(contact_posts(emulator.requests_log())) >= 2, 120, "the first contact POSTs", 0.5)
    expired_at = time.time()
    emulator.admin("POST", "tokens/expire")
    _finish(run, db, emulator)
    unauthorized = [e for e in run.log if e["status"] == 401]
    assert unauthorized, "no call met the expired token"
    assert _segment_tries(run.run_id) == [1] * SEGMENTS
    # Each worker refreshed once, on its first 401: one refresh logged per task process (one log file per
    # try), one per 401 in all. A worker whose 401 came after another's refresh re-used the shared token, so
    # Genesys saw between one and one-per-401 token requests after the expiry.
    refreshing = {path: text.count("refreshing the access token once")
                  for path, text in task_logs(airflow_stack["task_logs"], run.run_id).items()}
    assert max(refreshing.values()) == 1, f"a worker refreshed the token more than once: {refreshing}"
    assert sum(refreshing.values()) == len(unauthorized)
    new_tokens = [e for e in run.log if e["route"] == "POST /oauth/token" and _stamp(e) >= expired_at]
    assert 1 <= len(new_tokens) <= len(unauthorized), f"{len(new_tokens)} token requests for {len(unauthorized)} 401s"
    _figures(run, unauthorized=len(unauthorized), new_tokens=len(new_tokens))


def test_latency_past_the_client_timeout(db, emulator, airflow_stack):
    """A POST held past the read timeout is applied by Genesys anyway: the retry must upsert, not duplicate."""
    conn = json.loads(os.environ["AIRFLOW_CONN_GENESYS_DEFAULT"])
    timeout = (conn.get("extra") or {}).get("timeout")
    assert timeout is not None, "tests/conftest.py gives the emulator connection a short 'timeout' extra"
    read_timeout = float(timeout[1] if isinstance(timeout, list) else timeout)
    run = _start("latency_timeout", db, emulator, seed=106, fault={"latencyMs": int((read_timeout + 1.5) * 1000)})
    # Hold every segment's first POST past the timeout (a held POST's retry is held too, so this count is
    # reached even if a segment starts late), then let Genesys be fast again.
    wait_for(lambda: _held_posts(emulator) >= SEGMENTS, 120, f"{SEGMENTS} contact POSTs to be held", 0.25)
    emulator.admin("DELETE", "faults")
    _finish(run, db, emulator, timeout=300)
    slow = [e for e in contact_posts(run.log) if e["contactCount"] and e["status"] == 200]
    assert len(slow) > run.counts["dispatched"] // 25, "the timed-out POSTs were applied and re-sent"
    _figures(run, read_timeout_s=read_timeout)


@pytest.mark.celery_core
def test_worker_killed_mid_segment_then_run_cleared_and_rerun(db, emulator, airflow_stack):
    import psutil

    run = _start("sigkill", db, emulator, seed=107, fault={"latencyMs": 4000})

    def victim() -> Any:
        if not _held_posts(emulator):
            return None  # wait until a POST is held by the emulator
        running = [t for t in task_instances(DAG_ID, run.run_id)
                   if t.task_id == "create_segment" and str(t.state) == "running"]
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if "airflow worker --" not in cmdline:
                continue  # the task runner's title is "airflow worker -- <task instance id>"
            for t in running:
                if str(t.id) in cmdline:
                    return proc, t
        return None

    proc, ti = wait_for(victim, 120, "a create_segment task process with a POST in flight", 0.25)
    # Kill the task process as the kernel's OOM killer would. (Killing the LocalExecutor worker above it
    # instead can deadlock the scheduler on the executor's multiprocessing queue: an Airflow limitation.)
    os.kill(proc.pid, signal.SIGKILL)
    emulator.admin("DELETE", "faults")
    first = _wait(run.run_id, 300)
    # Whatever the first outcome (the killed try is retried, or the run failed), clear and re-run the run.
    from airflow.models import TaskInstance
    from airflow.models.taskinstance import clear_task_instances
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=DAG_ID, run_id=run.run_id).all()
        clear_task_instances(tis, session)
    wait_for(lambda: finished_run(DAG_ID, run.run_id) is None, 60, "the cleared run to restart", 1)
    _finish(run, db, emulator, timeout=300)
    _figures(run, first_outcome=first, killed_map_index=ti.map_index)


def _eventually(predicate: Any, timeout: float) -> bool:
    try:
        return bool(wait_for(predicate, timeout, "", 0.5))
    except AssertionError:
        return False


def _workloads_started(stack: Any) -> list[tuple[str, str, str]]:
    """(worker, task instance id, log path) of every workload a Celery worker started (from its log)."""
    import re

    pattern = re.compile(
        r"Executing workload in Celery: .*? log_path='([^']+)' ti=TaskInstance\w*\(id=UUID\('([0-9a-f-]+)'\)")
    return [(name, ti_id, path) for name in stack.worker_names for path, ti_id in pattern.findall(stack.log(name))]


@pytest.mark.celery_core
@pytest.mark.only_executor("celery")
def test_celery_worker_killed_mid_segment_the_run_completes_on_the_other_worker(db, emulator, airflow_stack):
    """SIGKILL one of the two Celery workers (and its pool and task processes) while a segment's POST is in
    flight: the scheduler fails the silent try after the heartbeat timeout, the retry runs on the surviving
    worker, the run succeeds with no manual clear, and no workload was started twice."""
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session

    stack = airflow_stack
    backlog_before = stack.broker_backlog()
    run = _start("celery_worker_kill", db, emulator, seed=110, fault={"latencyMs": 4000})

    def victim() -> Any:
        if not _held_posts(emulator):
            return None  # wait until a POST is held by the emulator
        running = {str(t.id) for t in task_instances(DAG_ID, run.run_id)
                   if t.task_id == "create_segment" and str(t.state) == "running"}
        for ti_id, proc in stack.running_task_processes().items():
            if ti_id in running and (worker := stack.owner_of(proc)):
                return worker, ti_id
        return None

    worker, _ = wait_for(victim, 120, "a create_segment task process with a POST in flight", 0.25)
    killed_at = time.monotonic()
    killed = stack.kill_worker(worker)
    assert len(killed) >= 2, f"{worker}: expected its pool and task processes among {killed}"
    # Every try running on that worker died with it (concurrency 3: perhaps another segment or apply_pacing):
    # the task instances still "running" whose workload that worker started.
    on_killed = {ti_id for name, ti_id, _ in _workloads_started(stack) if name == worker}
    victims = [t for t in task_instances(DAG_ID, run.run_id) if str(t.state) == "running" and str(t.id) in on_killed]
    emulator.admin("DELETE", "faults")
    _finish(run, db, emulator, timeout=300)  # success on its own: no clear, no restart of the worker

    survivor = next(name for name in stack.worker_names if name != worker)
    final = {(t.task_id, t.map_index): t for t in task_instances(DAG_ID, run.run_id)}
    workloads = _workloads_started(stack)
    started: dict[str, list[str]] = {}
    for name, ti_id, _ in workloads:
        started.setdefault(ti_id, []).append(name)
    with create_session() as session:
        history = session.query(TaskInstanceHistory).filter_by(dag_id=DAG_ID, run_id=run.run_id).all()
        earlier = {(h.task_id, h.map_index, h.try_number): str(h.state) for h in history}
    for ti in victims:
        what = f"{ti.task_id}[{ti.map_index}]"
        retried = final[(ti.task_id, ti.map_index)]
        assert retried.try_number == ti.try_number + 1, f"{what}: the killed try was retried once"
        assert earlier[(ti.task_id, ti.map_index, ti.try_number)] == "failed", f"{what}: the silent try failed"
        assert started.get(str(ti.id)) == [worker], f"{what}'s killed try: {started.get(str(ti.id))}"
        assert started.get(str(retried.id)) == [survivor], f"{what}: retried on the surviving worker"
    assert len(earlier) == len(victims), f"only the killed tries were retried: {earlier}"
    # Nothing re-queued by Celery: every try's workload was started once, by one worker.
    assert all(len(workers) == 1 for workers in started.values()), started
    if backlog_before is not None:  # Redis (the default broker): read its keys
        # The killed worker's deliveries (acks_late) stay unacknowledged in the broker, not back on the queue:
        # its killed tries, and perhaps a task that had reported success but whose Celery task had not yet
        # returned. Anything else unacknowledged (the survivor acks a moment after its last task reported
        # success: waited for) or queued would be a lost or re-queued message.
        killed_paths = {f"dag_id={DAG_ID}/run_id={run.run_id}/task_id={t.task_id}/"
                        + (f"map_index={t.map_index}/" if t.map_index >= 0 else "") + f"attempt={t.try_number}.log"
                        for t in victims}
        held_by_killed = {path for name, _, path in workloads if name == worker}

        def parked() -> set[str] | None:
            backlog = stack.broker_backlog()
            new = set(backlog["unacked"]) - set(backlog_before["unacked"])
            return new if backlog["queued"] == 0 and killed_paths <= new <= held_by_killed else None

        if not _eventually(parked, 30):
            raise AssertionError(f"broker holds {stack.broker_backlog()}; killed tries {sorted(killed_paths)}, "
                                 f"held by {worker}: {sorted(held_by_killed)}")
    queue = emulator.admin("GET", f"contactlists/{CONTACT_LIST_ID}/queue/history")
    _figures(run, killed_worker=worker, killed_tries=sorted(f"{t.task_id}[{t.map_index}]" for t in victims),
             recovered_after_s=round(time.monotonic() - killed_at, 1),
             queued_twice=sum(1 for n in queue["entries"].values() if n > 1))


@pytest.mark.celery_core
def test_full_outage_opens_the_breaker_and_the_run_recovers(db, emulator, airflow_stack):
    run = _start("outage", db, emulator, seed=108, fault={"probabilities": {"503": 1.0}})
    wait_for(lambda: _breaker_facts()[0], 180, "the breaker to open", 0.5)
    emulator.admin("DELETE", "faults")
    _finish(run, db, emulator, timeout=300)
    window = check_breaker_window(run.log)
    assert window["breaker"] == "opened and closed"
    tries = _segment_tries(run.run_id)
    assert max(tries) >= 2, "segments ended retryably while the breaker was open"
    failures = [_stamp(e) for e in run.log if e["status"] == 503]
    _figures(run, window, outage_s=round(max(failures) - min(failures), 1), failed_requests=len(failures))
    # The task logs say why: the breaker's transitions and the circuit-open retries, nothing dropped.
    logs = task_log_text(airflow_stack["task_logs"], run.run_id, "create_segment")
    assert "closed -> open" in logs and "half_open -> closed" in logs
    assert "circuit breaker open, nothing sent" in logs
    # ...and so does the run report: every segment was delivered, on a task retry.
    report = db.execute("SELECT report FROM run_log WHERE run_id = %s", [run.run_id]).fetchone()[0]
    db.commit()
    assert report["segments_retried"] == sum(1 for t in tries if t >= 2) > 0
    assert "on a task retry (circuit breaker open" in task_log_text(airflow_stack["task_logs"], run.run_id, "summarize")


def test_a_failing_run_leaks_no_token_secret_or_phone_number(db, emulator, airflow_stack):
    """403 on every contact POST: the run fails; its logs, XComs and run log carry nothing secret."""
    run = _start("forbidden", db, emulator, seed=109, fault={"probabilities": {"403": 1.0}})
    _finish(run, db, emulator, expect="failed")  # nothing got through
    assert run.counts["pending"] > 0 and _segment_tries(run.run_id) == [1] * SEGMENTS, "auth errors are not retried"
    token = json.loads(_variables(TOKEN_KEY)[TOKEN_KEY])["access_token"]
    phones = phone_forms(db)
    texts = task_log_text(airflow_stack["task_logs"], run.run_id)
    assert "HTTP 403" in texts and "lacks a permission" in texts
    run_xcoms = json.dumps(xcoms(DAG_ID, run.run_id), default=str)
    run_log = json.dumps(db.execute("SELECT * FROM run_log WHERE run_id = %s", [run.run_id]).fetchall(), default=str)
    db.commit()
    for where, text in (("task logs", texts), ("XComs", run_xcoms), ("run log", run_log)):
        assert token not in text and EMULATOR_CLIENT_SECRET not in text, where
        leaked = [p for p in phones if p in text]
        assert not leaked, f"{where} contain phone numbers: {leaked[:3]}"
    _figures(run)


@pytest.fixture(scope="module", autouse=True)
def _write_figures() -> Any:
    yield
    if FIGURES and (out := os.environ.get("RESILIENCE_FIGURES")):
        Path(out).write_text(json.dumps(FIGURES, indent=2, sort_keys=True))
