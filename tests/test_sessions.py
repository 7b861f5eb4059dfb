"""The dialer's PostgreSQL sessions: time limits, and nothing a killed or hung task leaves blocks the next run.

Real PostgreSQL, real processes: a claimer that holds the campaign's claim lock inside its transaction is
SIGKILLed (the kernel closes its socket) or SIGSTOPped (a hung task: socket open, transaction open) and the next
claim is timed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from urllib.parse import quote

import psycopg
import pytest
from support import wait_for

from genesys_devkit.demo_data import ContactMix, contact_rows, insert_contacts
from genesys_dialer.genesys.budget import close_all as close_budget_connections
from genesys_dialer.ledger.claims import ClaimRequest, claim_batch
from genesys_dialer.ledger.session import (
    APPLICATION_NAME,
    DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT,
    DEFAULT_STATEMENT_TIMEOUT,
    apply_session_limits,
    dialer_session,
)
from genesys_dialer.queries import load_sql


def _conn_uri(dialer_db: str, options: str | None = None) -> str:
    return dialer_db + (f"?options={quote(options)}" if options else "")


def _request(run_id: str) -> ClaimRequest:
    return ClaimRequest(
        campaign_id="camp-s", campaign_key="k", run_id=run_id, batch_size=20, segment_size=10,
        created_before=datetime.now(UTC), lease_minutes=60, contact_id_prefix="", phone_region="US",
        label_prefix="20260101T0000",
    )


def test_sessions_get_the_default_limits_unless_the_connection_sets_them(dialer_db, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_DIALER_PLAIN", _conn_uri(dialer_db))
    with dialer_session("dialer_plain") as conn:
        settings = conn.execute("SELECT current_setting('statement_timeout'), "
                                "current_setting('idle_in_transaction_session_timeout'), "
                                "current_setting('application_name')").fetchone()
    assert settings == (DEFAULT_STATEMENT_TIMEOUT, DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT, APPLICATION_NAME)

    monkeypatch.setenv("AIRFLOW_CONN_DIALER_TUNED", _conn_uri(
        dialer_db, "-c statement_timeout=42s -c idle_in_transaction_session_timeout=7s"))
    with dialer_session("dialer_tuned") as conn:
        assert apply_session_limits(conn) == ("42s", "7s")  # the connection's own options win


CLEAN = ContactMix(inactive=0, do_not_call=0, missing_phone=0, malformed_phone=0)

HOLD_THE_CLAIM_LOCK = """
import sys, time
from genesys_dialer.ledger.session import dialer_session
from genesys_dialer.queries import load_sql

with dialer_session("dialer_victim") as conn:
    conn.execute(load_sql("lock_campaign"), {"campaign_id": "camp-s"})  # a claim in progress, lock held
    print("locked", flush=True)
    time.sleep(600)  # killed or stopped by the test before this ends
"""


def _lock_holder(dialer_db: str, idle_timeout: str) -> subprocess.Popen[str]:
    env = {**os.environ, "AIRFLOW_CONN_DIALER_VICTIM": _conn_uri(
        dialer_db, f"-c idle_in_transaction_session_timeout={idle_timeout}")}
    proc = subprocess.Popen([sys.executable, "-c", HOLD_THE_CLAIM_LOCK], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def _timed_claim(dialer_db: str, run_id: str) -> tuple[float, int]:
    with psycopg.connect(dialer_db) as conn:
        started = time.monotonic()
        result = claim_batch(conn, _request(run_id), dry_run=False)
        return time.monotonic() - started, result.contacts


@pytest.mark.parametrize("how", ["SIGKILL", "SIGSTOP"])
def test_a_task_killed_or_hung_inside_a_claim_does_not_block_the_next_claim(db, dialer_db, how):
    insert_contacts(db, contact_rows(60, seed=41, mix=CLEAN))  # every contact claimable: 20 of 20 claimed
    close_budget_connections()  # this process's rate-budget session (earlier tests' hooks) is not the holder's
    unobstructed, claimed = _timed_claim(dialer_db, "before")  # what a claim takes on this machine right now
    assert claimed == 20
    holder = _lock_holder(dialer_db, idle_timeout="3s")
    try:
        os.kill(holder.pid, getattr(signal, how))
        waited, claimed = _timed_claim(dialer_db, f"after-{how}")
        assert claimed == 20
        if how == "SIGKILL":
            # Its socket closed with it: no wait for the 3 s idle timeout.
            assert waited < unobstructed + 2, f"the dead task's lock outlived it by {waited - unobstructed:.1f} s"
        else:
            # A hung task's session sits idle in its transaction until the server ends it (3 s here).
            assert 2 <= waited < 15 + unobstructed, f"waited {waited:.1f} s"
            wait_for(lambda: _dialer_sessions(db) == 0, 10, "the server to end the hung task's session")
    finally:
        holder.kill()
        holder.wait()


def _dialer_sessions(db) -> int:
    """Sessions of this database opened by dialer_session (the holder's; the test's own connections set no
    application name)."""
    count = db.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND datname = "
                       "current_database()", [APPLICATION_NAME]).fetchone()[0]
    db.commit()
    return count


def test_a_statement_blocked_past_statement_timeout_fails_instead_of_hanging(db, dialer_db, monkeypatch):
    holder = _lock_holder(dialer_db, idle_timeout="60s")
    try:
        os.kill(holder.pid, signal.SIGSTOP)
        monkeypatch.setenv("AIRFLOW_CONN_DIALER_IMPATIENT", _conn_uri(dialer_db, "-c statement_timeout=1500ms"))
        started = time.monotonic()
        with dialer_session("dialer_impatient") as conn, pytest.raises(psycopg.errors.QueryCanceled,
                                                                        match="statement timeout"):
            conn.execute(load_sql("lock_campaign"), {"campaign_id": "camp-s"})
        assert time.monotonic() - started < 10
    finally:
        holder.kill()
        holder.wait()
