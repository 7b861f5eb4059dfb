"""A scheduler killed mid-run must not wedge the campaign (LocalExecutor).

The LocalExecutor's worker processes are forked from the scheduler and inherit its metadata-database socket.
SIGKILL the scheduler while its session is inside a transaction holding ``dag_run`` row locks, and PostgreSQL
never sees that session end: the orphaned workers keep the socket open, the session stays "idle in
transaction" with its locks, the restarted scheduler skips the locked run (``SKIP LOCKED``), and with
``max_active_runs=1`` no later run of the campaign starts. The stack sets PostgreSQL's
``idle_in_transaction_session_timeout`` on every metadata connection (``genesys_dialer.metadata_db``, as in
docker-compose.yaml): the orphaned session is ended after it and the campaign moves on by itself.

The kill is aimed, not left to chance: the scheduler is frozen (SIGSTOP) until its session holds a
``dag_run`` lock, idle in a transaction, on a socket one of its children shares; then it is killed. Run with
``TEST_WITHOUT_METADATA_IDLE_TIMEOUT=1`` to watch the wedge: the test then fails at the bound, naming the
orphaned session still open.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from pipeline_helpers import dag_runs, finished_run
from support import AIRFLOW_URL, CONTACT_LIST_ID, CONTACTS_ROUTE, XRUN_CAMPAIGN_ID, airflow, wait_for

from genesys_devkit.demo_data import contact_rows, insert_contacts, insert_dial_history
from genesys_dialer.metadata_db import IDLE_IN_TRANSACTION_TIMEOUT_MS

pytestmark = [pytest.mark.executor, pytest.mark.only_executor("local"), pytest.mark.usefixtures("airflow_db")]

DAG_ID = "genesys_predictive_xrun"
IDLE_TIMEOUT_S = IDLE_IN_TRANSACTION_TIMEOUT_MS / 1000
# From the kill to the next run's start: the orphaned session's timeout, then a scheduler restart and a
# scheduling loop or two, with room for a loaded 2-core machine. A wedge lasts until the orphans die: forever.
NEXT_RUN_BOUND_S = IDLE_TIMEOUT_S + 120

LOCK_HOLDERS_SQL = """
SELECT a.pid, a.client_port FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
WHERE a.datname = current_database() AND a.state = 'idle in transaction'
  AND l.locktype = 'relation' AND l.relation = 'dag_run'::regclass AND l.mode = 'RowShareLock' AND l.granted
"""


def _metadata(sql: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(AIRFLOW_URL, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def _shared_lock_holder(scheduler_pid: int) -> tuple[int, int] | None:
    """(backend pid, client port) of a session idle in a transaction with dag_run locked, whose socket the
    frozen scheduler shares with one of its children; None if there is none right now."""
    import psutil

    holders = _metadata(LOCK_HOLDERS_SQL)
    if not holders:
        return None
    scheduler = psutil.Process(scheduler_pid)
    own = {c.laddr.port for c in scheduler.net_connections(kind="tcp") if c.laddr}
    inherited: set[int] = set()
    for child in scheduler.children(recursive=True):
        try:
            inherited |= {c.laddr.port for c in child.net_connections(kind="tcp") if c.laddr}
        except psutil.NoSuchProcess:
            continue
    return next(((pid, port) for pid, port in holders if port in own & inherited), None)


def _kill_scheduler_holding_locks(stack: Any, timeout: float = 120) -> tuple[int, int]:
    """Freeze the scheduler repeatedly until it holds the wedge's precondition, then SIGKILL it."""
    pid = stack.processes["scheduler"].pid
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        os.kill(pid, signal.SIGSTOP)
        holder = _shared_lock_holder(pid)
        if holder:
            stack.kill_scheduler()  # SIGKILL ends a stopped process too
            return holder
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError(f"the scheduler never held dag_run locks on a socket its workers share in {timeout} s")


def test_a_killed_scheduler_does_not_wedge_the_campaign(db, emulator, airflow_stack):
    stack = airflow_stack
    insert_contacts(db, contact_rows(700, seed=41))
    insert_dial_history(db, XRUN_CAMPAIGN_ID, end=datetime.now(UTC), days=3, per_day=50, answer_rate=0.2)
    emulator.fault(route=CONTACTS_ROUTE, latencyMs=2500)
    first = f"manual__schedkill_a_{int(time.time())}"
    airflow("dags", "trigger", DAG_ID, "--run-id", first)
    wait_for(lambda: any(str(r.state) == "running" for r in dag_runs(DAG_ID) if r.run_id == first), 120,
             "the first run to start", 0.5)

    try:
        backend, _ = _kill_scheduler_holding_locks(stack)
        killed_at = time.monotonic()
        # The second run is asked for at once; the scheduler comes back at once (compose: restart: always).
        second = f"manual__schedkill_b_{int(time.time())}"
        airflow("dags", "trigger", DAG_ID, "--run-id", second)
        stack.start_scheduler()
        emulator.admin("DELETE", "faults")

        # PostgreSQL ends the orphaned session after the timeout, whoever still holds its socket; only then can
        # the first run finish and the next one start.
        released: list[float] = []

        def second_started() -> Any:
            if not released and not _metadata("SELECT 1 FROM pg_stat_activity WHERE pid = %s", backend):
                released.append(time.monotonic() - killed_at)
            run = next((r for r in dag_runs(DAG_ID) if r.run_id == second), None)
            return run if run is not None and run.start_date is not None else None

        try:
            wait_for(second_started, NEXT_RUN_BOUND_S, f"the next run to start within {NEXT_RUN_BOUND_S:.0f} s", 1)
        except AssertionError as err:
            state = "ended" if released else "still open, idle in transaction"
            raise AssertionError(f"{err}: the campaign is wedged (orphaned session {backend}: {state})") from None
        started_s = time.monotonic() - killed_at
        wait_for(lambda: second_started() and released, max(1.0, IDLE_TIMEOUT_S + 15 - started_s),
                 f"the orphaned session {backend} to end at the idle timeout", 1)
        released_s = released[0]
        assert str(wait_for(lambda: finished_run(DAG_ID, first), 300, "the first run to finish", 2).state) == "success"
        assert str(wait_for(lambda: finished_run(DAG_ID, second), 300, "the next run to finish", 2).state) == "success"
    finally:
        stack.reap_orphans()  # the killed scheduler's workers, by the pids recorded at the kill

    # Nothing lost, nothing twice: both runs' dispatched contacts are in the list, once.
    dispatched = db.execute(
        "SELECT genesys_contact_id FROM dispatch_ledger WHERE run_id = ANY(%s) AND status = 'dispatched'",
        [[first, second]]).fetchall()
    pending = db.execute("SELECT count(*) FROM dispatch_ledger WHERE run_id = ANY(%s) AND status IN "
                         "('claimed', 'failed')", [[first, second]]).fetchone()[0]
    db.commit()
    stored = [c["id"] for c in emulator.contacts(CONTACT_LIST_ID)]
    assert sorted(stored) == sorted(cid for (cid,) in dispatched) and pending == 0
    # No metadata session is left idle in a transaction for longer than the timeout.
    stale = _metadata("SELECT pid, now() - state_change FROM pg_stat_activity WHERE datname = current_database() "
                      "AND state = 'idle in transaction' AND now() - state_change > make_interval(secs => %s)",
                      IDLE_TIMEOUT_S)
    assert stale == [], stale
    print(f"\nFIGURES scheduler_kill: orphaned session ended {released_s:.1f} s after the kill, next run started "
          f"{started_s:.1f} s after it (timeout {IDLE_TIMEOUT_S:.0f} s)")
