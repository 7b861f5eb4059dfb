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
import re
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support import CAMPAIGN_ID, EMULATOR_CLIENT_SECRET, Emulator, airflow, wait_for

from genesys_dialer.demo_data import contact_rows, insert_contacts, insert_dial_history

pytestmark = [pytest.mark.executor, pytest.mark.usefixtures("airflow_db")]

DAG_ID = "genesys_predictive_xfault"
CONN = "genesys_default"
CONTACTS_ROUTE = "POST /api/v2/outbound/contactlists/{contactListId}/contacts"
BREAKER_KEY = f"genesys_breaker__{CONN}"
OPEN_SECONDS = 30.0
HALF_OPEN_MAX = 3
FIGURES: dict[str, dict[str, Any]] = {}


# -- helpers -----------------------------------------------------------------------------------------------
def _variables(prefix: str) -> dict[str, Any]:
    from airflow.models import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(Variable).filter(Variable.key.startswith(prefix)).all()
        return {row.key: row.val for row in rows}


def _clear_shared_state() -> None:
    """Breaker facts and the token cache live in the session's metadata DB across tests: start clean."""
    from airflow.models import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        for prefix in (BREAKER_KEY, f"genesys_access_token__{CONN}"):
            session.query(Variable).filter(Variable.key.startswith(prefix)).delete(synchronize_session=False)


def _breaker_facts() -> tuple[float | None, float | None]:
    """(opened_at, closed_at of that opening) from the breaker's Variables."""
    values = _variables(BREAKER_KEY)
    opened = json.loads(values[BREAKER_KEY]).get("opened_at") if BREAKER_KEY in values else None
    closed = json.loads(values.get(f"{BREAKER_KEY}__closed") or "{}")
    return opened, (closed.get("closed_at") if closed.get("gen") == opened else None)


def _task_instances(run_id: str) -> list[Any]:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=DAG_ID, run_id=run_id).all()
        session.expunge_all()
        return tis


def _run_state(run_id: str) -> str | None:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter_by(dag_id=DAG_ID, run_id=run_id).one_or_none()
        return None if run is None else str(run.state)


def _finished(run_id: str) -> str | None:
    state = _run_state(run_id)
    return state if state in ("success", "failed") else None


def _stamp(entry: dict[str, Any]) -> float:
    """When Genesys received the request (a request held by injected latency answers much later)."""
    return datetime.fromisoformat(entry["receivedAt"].replace("Z", "+00:00")).timestamp()


def _trigger(name: str) -> str:
    run_id = f"manual__resilience_{name}_{int(time.time())}"
    airflow("dags", "trigger", DAG_ID, "--run-id", run_id)
    return run_id


def _setup(db: Any, seed: int) -> None:
    _clear_shared_state()
    insert_contacts(db, contact_rows(320, seed=seed))
    insert_dial_history(db, CAMPAIGN_ID, end=datetime.now(UTC), days=3, per_day=50, answer_rate=0.2)


def _ledger(db: Any, run_id: str) -> dict[str, str]:
    rows = db.execute("SELECT genesys_contact_id, status FROM dispatch_ledger WHERE run_id = %s", [run_id]).fetchall()
    db.commit()
    return dict(rows)


def check_exactly_once(db: Any, emulator: Emulator, run_id: str, *, expect_outcome: str = "success") -> dict[str, int]:
    """Contact list == dispatched ledger rows, once each; the run log agrees with the ledger."""
    ledger = _ledger(db, run_id)
    assert len(ledger) == 240, "the run claimed its batch"
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
    assert (claimed, n_dispatched, n_pending) == (240, len(dispatched), len(pending))
    assert skipped == sum(1 for s in ledger.values() if s == "skipped")
    assert failed == sum(1 for s in ledger.values() if s == "failed")
    report = report if isinstance(report, dict) else json.loads(report)
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
    return sorted(ti.try_number for ti in _task_instances(run_id) if ti.task_id == "create_segment")


def _figures(case: str, run_id: str, log: list[dict[str, Any]], started: float, **extra: Any) -> None:
    api = [e for e in log if (e["path"] or "").startswith("/api/v2/")]
    statuses: dict[str, int] = {}
    for e in log:
        key = "dropped" if e["dropped"] else str(e["status"])
        statuses[key] = statuses.get(key, 0) + 1
    FIGURES[case] = {
        "api_requests": len(api), "contact_posts": sum(1 for e in api if e["route"] == CONTACTS_ROUTE),
        "token_requests": sum(1 for e in log if e["route"] == "POST /oauth/token"), "statuses": statuses,
        "segment_tries": _segment_tries(run_id), "wall_s": round(time.monotonic() - started, 1), **extra,
    }
    print(f"\nFIGURES {case}: {json.dumps(FIGURES[case], sort_keys=True)}")


def _run_case(case: str, db: Any, emulator: Emulator, *, seed: int) -> tuple[str, float]:
    _setup(db, seed)
    started = time.monotonic()
    run_id = _trigger(case)
    return run_id, started


def _wait(run_id: str, timeout: float = 240) -> str:
    try:
        return wait_for(lambda: _finished(run_id), timeout, f"run {run_id} to finish", 2)
    except AssertionError as err:
        states = {(t.task_id, t.map_index): (str(t.state), t.try_number) for t in _task_instances(run_id)}
        raise AssertionError(f"{err}; task instances: {states}") from None


# -- the matrix --------------------------------------------------------------------------------------------
def test_429_storm_with_retry_after(db, emulator, airflow_stack):
    emulator.fault(route=CONTACTS_ROUTE, sequence=[429] * 6, retryAfter=2)
    run_id, started = _run_case("429_storm", db, emulator, seed=101)
    assert _wait(run_id) == "success"
    log = emulator.requests_log()
    counts = check_exactly_once(db, emulator, run_id)
    assert sum(1 for e in log if e["status"] == 429) == 6
    assert counts["throttled"] == 6 and counts["retries"] >= 6
    assert _segment_tries(run_id) == [1, 1, 1, 1], "Retry-After was honoured inside the task"
    _figures("429_storm", run_id, log, started, **check_breaker_window(log), **counts)
    assert FIGURES["429_storm"]["breaker"] == "never opened"  # throttling is not an outage


def test_503_burst_is_retried_with_backoff(db, emulator, airflow_stack):
    emulator.fault(route=CONTACTS_ROUTE, sequence=[503, 503])
    run_id, started = _run_case("503_burst", db, emulator, seed=102)
    assert _wait(run_id) == "success"
    log = emulator.requests_log()
    counts = check_exactly_once(db, emulator, run_id)
    assert sum(1 for e in log if e["status"] == 503) == 2 and counts["retries"] >= 2
    assert _segment_tries(run_id) == [1, 1, 1, 1]
    _figures("503_burst", run_id, log, started, **check_breaker_window(log), **counts)


def test_500s_are_not_retried_by_the_hook_and_the_task_retry_sends_the_segment(db, emulator, airflow_stack):
    emulator.fault(route=CONTACTS_ROUTE, sequence=[500, 500])
    run_id, started = _run_case("500s", db, emulator, seed=103)
    assert _wait(run_id) == "success"
    log = emulator.requests_log()
    counts = check_exactly_once(db, emulator, run_id)
    posts = [e for e in log if e["route"] == CONTACTS_ROUTE]
    assert sum(1 for e in posts if e["status"] == 500) == 2
    tries = _segment_tries(run_id)
    assert tries.count(2) == 2 and tries.count(1) == 2, "each 500 failed its task once; the retry sent it"
    _figures("500s", run_id, log, started, **check_breaker_window(log), **counts)


def test_connection_dropped_after_the_request_was_applied(db, emulator, airflow_stack):
    emulator.fault(route=CONTACTS_ROUTE, dropAfterApply=2)
    run_id, started = _run_case("dropped_after_apply", db, emulator, seed=104)
    assert _wait(run_id) == "success"
    log = emulator.requests_log()
    counts = check_exactly_once(db, emulator, run_id)
    dropped = [e for e in log if e["dropped"]]
    assert len(dropped) == 2 and all(e["contactCount"] > 0 for e in dropped)
    # The dropped POSTs were applied AND re-sent: more contacts were posted than are stored, none twice.
    posted = sum(e["contactCount"] for e in log if e["route"] == CONTACTS_ROUTE and e["status"] == 200)
    assert posted == counts["dispatched"] + sum(e["contactCount"] for e in dropped)
    _figures("dropped_after_apply", run_id, log, started, **check_breaker_window(log), **counts)


def test_token_expiring_mid_run_is_refreshed_once_per_worker(db, emulator, airflow_stack):
    emulator.fault(route=CONTACTS_ROUTE, latencyMs=1200)
    run_id, started = _run_case("token_expiry", db, emulator, seed=105)
    wait_for(lambda: sum(1 for e in emulator.requests_log() if e["route"] == CONTACTS_ROUTE) >= 2, 120,
             "the first contact POSTs", 0.5)
    emulator.admin("POST", "tokens/expire")
    assert _wait(run_id) == "success"
    log = emulator.requests_log()
    counts = check_exactly_once(db, emulator, run_id)
    unauthorized = [e for e in log if e["status"] == 401]
    assert unauthorized, "no call met the expired token"
    assert _segment_tries(run_id) == [1, 1, 1, 1]
    _figures("token_expiry", run_id, log, started, **check_breaker_window(log), **counts,
             unauthorized=len(unauthorized))


def test_latency_past_the_client_timeout(db, emulator, airflow_stack):
    """A POST held past the read timeout is applied by Genesys anyway: the retry must upsert, not duplicate."""
    conn = json.loads(os.environ["AIRFLOW_CONN_GENESYS_DEFAULT"])
    timeout = (conn.get("extra") or {}).get("timeout")
    assert timeout is not None, "tests/conftest.py gives the emulator connection a short 'timeout' extra"
    read_timeout = float(timeout[1] if isinstance(timeout, list) else timeout)
    emulator.fault(route=CONTACTS_ROUTE, latencyMs=int((read_timeout + 1.5) * 1000))
    run_id, started = _run_case("latency_timeout", db, emulator, seed=106)
    # Hold the first POSTs past the timeout, then let Genesys be fast again.
    wait_for(lambda: any(f["matchedCalls"] >= 1 for f in emulator.admin("GET", "faults")), 120,
             "a contact POST to be held", 0.25)
    time.sleep(0.5)  # let the other segments' first POSTs arrive into the held window too
    emulator.admin("DELETE", "faults")
    assert _wait(run_id, 300) == "success"
    log = emulator.requests_log()
    counts = check_exactly_once(db, emulator, run_id)
    slow = [e for e in log if e["route"] == CONTACTS_ROUTE and e["contactCount"] and e["status"] == 200]
    assert len(slow) > counts["dispatched"] // 25, "the timed-out POSTs were applied and re-sent"
    _figures("latency_timeout", run_id, log, started, **check_breaker_window(log), **counts,
             read_timeout_s=read_timeout)


def test_worker_killed_mid_segment_then_run_cleared_and_rerun(db, emulator, airflow_stack):
    import psutil

    emulator.fault(route=CONTACTS_ROUTE, latencyMs=4000)
    run_id, started = _run_case("sigkill", db, emulator, seed=107)

    def victim() -> Any:
        if not any(f["matchedCalls"] >= 1 for f in emulator.admin("GET", "faults")):
            return None  # wait until a POST is held by the emulator
        running = [t for t in _task_instances(run_id) if t.task_id == "create_segment" and str(t.state) == "running"]
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
    first = _wait(run_id, 300)
    # Whatever the first outcome (the killed try is retried, or the run failed), clear and re-run the run.
    from airflow.models import TaskInstance
    from airflow.models.taskinstance import clear_task_instances
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=DAG_ID, run_id=run_id).all()
        clear_task_instances(tis, session)
    wait_for(lambda: _run_state(run_id) not in ("success", "failed"), 60, "the cleared run to restart", 1)
    assert _wait(run_id, 300) == "success"
    log = emulator.requests_log()
    counts = check_exactly_once(db, emulator, run_id)
    _figures("sigkill", run_id, log, started, **check_breaker_window(log), **counts, first_outcome=first,
             killed_map_index=ti.map_index)


def test_full_outage_opens_the_breaker_and_the_run_recovers(db, emulator, airflow_stack):
    emulator.fault(route=CONTACTS_ROUTE, probabilities={"503": 1.0})
    run_id, started = _run_case("outage", db, emulator, seed=108)
    wait_for(lambda: _breaker_facts()[0], 180, "the breaker to open", 0.5)
    emulator.admin("DELETE", "faults")
    assert _wait(run_id, 300) == "success"
    log = emulator.requests_log()
    counts = check_exactly_once(db, emulator, run_id)
    window = check_breaker_window(log)
    assert window["breaker"] == "opened and closed"
    tries = _segment_tries(run_id)
    assert max(tries) >= 2, "segments ended retryably while the breaker was open"
    failures = [_stamp(e) for e in log if e["status"] == 503]
    _figures("outage", run_id, log, started, **window, **counts,
             outage_s=round(max(failures) - min(failures), 1), failed_requests=len(failures))
    # The task logs say why: the breaker's transitions and the circuit-open retries, nothing dropped.
    logs = _task_log_text(airflow_stack, run_id, "create_segment")
    assert "closed -> open" in logs and "half_open -> closed" in logs
    assert "circuit breaker open, nothing sent" in logs
    # ...and so does the run report: every segment was delivered, on a task retry.
    report = db.execute("SELECT report FROM run_log WHERE run_id = %s", [run_id]).fetchone()[0]
    db.commit()
    assert report["segments_retried"] == sum(1 for t in tries if t >= 2) > 0
    assert "on a task retry (circuit breaker open" in _task_log_text(airflow_stack, run_id, "summarize")


def test_a_failing_run_leaks_no_token_secret_or_phone_number(db, emulator, airflow_stack):
    """403 on every contact POST: the run fails; its logs, XComs and run log carry nothing secret."""
    emulator.fault(route=CONTACTS_ROUTE, probabilities={"403": 1.0})
    run_id, started = _run_case("forbidden", db, emulator, seed=109)
    assert _wait(run_id) == "failed"
    log = emulator.requests_log()
    counts = check_exactly_once(db, emulator, run_id, expect_outcome="failed")  # nothing got through
    assert counts["pending"] > 0 and _segment_tries(run_id) == [1, 1, 1, 1], "auth errors are not retried"
    token = json.loads(_variables(f"genesys_access_token__{CONN}")[f"genesys_access_token__{CONN}"])["access_token"]
    phones = set()
    for (raw,) in db.execute("SELECT phone_number FROM contacts WHERE phone_number IS NOT NULL").fetchall():
        digits = re.sub(r"\D", "", raw)
        if len(digits) >= 7:
            phones |= {raw.strip(), digits[-10:]}
    db.commit()
    texts = _task_log_text(airflow_stack, run_id, None)
    assert "HTTP 403" in texts and "lacks a permission" in texts
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        xcoms = json.dumps([r.value for r in session.query(XComModel).filter_by(dag_id=DAG_ID, run_id=run_id)],
                           default=str)
    run_log = json.dumps(db.execute("SELECT * FROM run_log WHERE run_id = %s", [run_id]).fetchall(), default=str)
    db.commit()
    for where, text in (("task logs", texts), ("XComs", xcoms), ("run log", run_log)):
        assert token not in text and EMULATOR_CLIENT_SECRET not in text, where
        leaked = [p for p in phones if p in text]
        assert not leaked, f"{where} contain phone numbers: {leaked[:3]}"
    _figures("forbidden", run_id, log, started, **counts)


def _task_log_text(stack: dict[str, Any], run_id: str, task_id: str | None) -> str:
    root = Path(stack["task_logs"])
    pattern = f"**/run_id={run_id}/task_id={task_id}/**/*" if task_id else f"**/run_id={run_id}/**/*"
    files = [p for p in root.glob(pattern) if p.is_file()]
    assert files, f"no task logs for {run_id} {task_id}"
    return "\n".join(p.read_text(errors="replace") for p in files)


@pytest.fixture(scope="module", autouse=True)
def _write_figures() -> Any:
    yield
    if FIGURES:
        out = Path(os.environ.get("RESILIENCE_FIGURES", "")) if os.environ.get("RESILIENCE_FIGURES") else None
        if out:
            out.write_text(json.dumps(FIGURES, indent=2, sort_keys=True))

