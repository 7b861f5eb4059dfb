"""Real runs under a real executor: api-server + scheduler + dag-processor, LocalExecutor, Postgres metadata.

``dag.test()`` runs tasks in-process, where the ORM is not blocked: a green dag.test does not prove the DAG
runs on a real worker. These tests do: task processes talk to the API server for XComs, Variables and
connections, exactly as in production.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pipeline_helpers import contact_posts, dag_runs, finished_run, task_instances, task_logs, valid_e164
from support import (
    BACKFILL_CAMPAIGN_ID,
    BACKFILL_LIST_ID,
    CONTACT_LIST_ID,
    CONTACTS_ROUTE,
    XRUN_CAMPAIGN_ID,
    airflow,
    wait_for,
)

from genesys_devkit.demo_data import contact_rows, emulator_seed, insert_contacts, insert_dial_history

pytestmark = [pytest.mark.executor, pytest.mark.usefixtures("airflow_db")]

BACKFILL_DAG_ID = "genesys_predictive_xbackfill"


def _backfills_completed() -> bool:
    """The scheduler marks a backfill completed a moment after its last run; a new one waits for that."""
    from airflow.models.backfill import Backfill
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.query(Backfill).filter(Backfill.completed_at.is_(None)).count() == 0


def _max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    best = current = 0
    for _, delta in events:
        current += delta
        best = max(best, current)
    return best


def test_triggered_run_on_local_executor_maps_segments_in_parallel(db, emulator, airflow_stack):
    insert_contacts(db, contact_rows(360, seed=21))
    insert_dial_history(db, XRUN_CAMPAIGN_ID, end=datetime.now(UTC), days=7, per_day=100, answer_rate=0.2)
    # Slow Genesys down a little so that parallel segments are visible as overlapping task runs.
    emulator.fault(route=CONTACTS_ROUTE, latencyMs=1500)

    run_id = f"manual__executor_{int(time.time())}"
    airflow("dags", "trigger", "genesys_predictive_xrun", "--run-id", run_id)
    dag_run = wait_for(lambda: finished_run("genesys_predictive_xrun", run_id), 300, "the triggered run to finish", 2)

    tis = task_instances("genesys_predictive_xrun", run_id)
    assert str(dag_run.state) == "success", {(t.task_id, t.map_index): str(t.state) for t in tis}
    segments = [t for t in tis if t.task_id == "create_segment"]
    assert len(segments) == 5  # 300 contacts / 60 per segment
    assert all(str(t.state) == "success" for t in segments)
    assert all(t.rendered_map_index and t.rendered_map_index.endswith(f"-s{t.map_index:03d}") for t in segments)
    overlap = _max_overlap([(t.start_date, t.end_date) for t in segments])
    assert 2 <= overlap <= 5, f"mapped segments did not run in parallel within the pool (overlap {overlap})"

    claimed = dict(db.execute(
        "SELECT l.contact_id, c.phone_number FROM dispatch_ledger l JOIN contacts c ON c.id = l.contact_id "
        "WHERE l.run_id = %s", [run_id]).fetchall())
    assert len(claimed) == 300
    sendable = {cid for cid, raw in claimed.items() if valid_e164(raw)}
    stored = [int(c["id"]) for c in emulator.contacts(CONTACT_LIST_ID)]
    assert sorted(stored) == sorted(sendable)
    assert sum(p["contactCount"] for p in contact_posts(emulator.requests_log())) == len(sendable)
    report_logs = task_logs(airflow_stack["task_logs"], run_id, "summarize")  # asserts there is one
    assert all("Run report" in text for text in report_logs.values()), list(report_logs)
    # The campaign paces from Genesys outcomes: a real worker synced them (nothing dialed yet: the newest days,
    # stored as empty buckets) and, with no dials to go on, paced progressive.
    synced = db.execute("SELECT count(*), sum(attempts) FROM campaign_outcomes WHERE campaign_id = %s",
                        [XRUN_CAMPAIGN_ID]).fetchone()
    assert synced == (6 * 96, 0)
    ratio, details = db.execute("SELECT max_calls_per_agent, details FROM pacing_decisions WHERE run_id = %s",
                                [run_id]).fetchone()
    assert ratio == 1.0 and details["pacing_source"] == "genesys"


def test_backfill_is_a_dry_run_by_default_and_takes_no_contact_created_after_its_interval(
    db, emulator, airflow_stack
):
    emulator.seed(emulator_seed(BACKFILL_CAMPAIGN_ID, BACKFILL_LIST_ID))
    # A scheduled DAG: unpausing it lets the scheduler start today's run too (catchup is off).
    airflow("dags", "unpause", BACKFILL_DAG_ID)
    try:
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start = today - timedelta(days=6)
        insert_contacts(db, contact_rows(60, seed=31, created_at=start - timedelta(days=1)))
        insert_contacts(db, contact_rows(60, seed=32, created_at=today - timedelta(hours=12)))
        insert_dial_history(db, BACKFILL_CAMPAIGN_ID, end=today, days=14, per_day=50, answer_rate=0.3)

        def backfill(conf: dict[str, Any] | None, from_date: datetime, to_date: datetime) -> list[Any]:
            args = ["backfill", "create", "--dag-id", BACKFILL_DAG_ID,
                    "--from-date", from_date.isoformat(), "--to-date", to_date.isoformat()]
            if conf is not None:
                args += ["--dag-run-conf", json.dumps(conf)]
            before = {r.run_id for r in dag_runs(BACKFILL_DAG_ID)}
            airflow(*args)

            def done() -> list[Any] | None:
                runs = [r for r in dag_runs(BACKFILL_DAG_ID)
                        if r.run_id not in before and str(r.run_type).endswith("backfill")]
                finished = runs and all(str(r.state) in ("success", "failed") for r in runs)
                return runs if finished and _backfills_completed() else None

            return wait_for(done, 400, "the backfill runs to finish", 3)

        # Three past days, no conf: dry runs that rebuild pacing history and send nothing.
        dry_runs = backfill(None, start, start + timedelta(days=2))
        assert len(dry_runs) == 3 and all(str(r.state) == "success" for r in dry_runs)
        decisions = db.execute(
            "SELECT run_id, window_end, attempts, dry_run, applied FROM pacing_decisions WHERE campaign_id = %s",
            [BACKFILL_CAMPAIGN_ID]).fetchall()
        by_run = {row[0]: row[1:] for row in decisions}
        for run in dry_runs:
            window_end, attempts, dry, applied = by_run[run.run_id]
            assert window_end == run.data_interval_end
            assert dry is True and applied is False
            expected = db.execute(
                "SELECT count(*) FROM dial_history WHERE campaign_id = %s AND created_at >= %s - interval '7 days' "
                "AND created_at < %s", [BACKFILL_CAMPAIGN_ID, window_end, window_end]).fetchone()[0]
            assert attempts == expected
        backfill_ids = [r.run_id for r in dry_runs]
        assert db.execute("SELECT count(*) FROM dispatch_ledger WHERE run_id = ANY(%s)",
                          [backfill_ids]).fetchone()[0] == 0
        # (Unpausing the DAG let the scheduler start today's scheduled run: its contacts are in the list, so
        # look for the backfill runs' segment labels rather than an empty list.)
        labels = {c["data"]["segment"].split("-s")[0] for c in emulator.contacts(BACKFILL_LIST_ID)}
        assert not labels & {r.data_interval_end.strftime("%Y%m%dT%H%M") for r in dry_runs}

        # Started with dry_run=false, a backfill sends, but only contacts that existed in its interval.
        live_runs = backfill({"dry_run": False}, start + timedelta(days=3), start + timedelta(days=3))
        assert len(live_runs) == 1 and str(live_runs[0].state) == "success"
        run = live_runs[0]
        rows = db.execute(
            "SELECT c.created_at FROM dispatch_ledger l JOIN contacts c ON c.id = l.contact_id WHERE l.run_id = %s",
            [run.run_id]).fetchall()
        assert rows and all(created < run.data_interval_end for (created,) in rows)
        label = run.data_interval_end.strftime("%Y%m%dT%H%M")
        sent = [c for c in emulator.contacts(BACKFILL_LIST_ID) if c["data"]["segment"].startswith(label)]
        dispatched = db.execute("SELECT count(*) FROM dispatch_ledger WHERE run_id = %s AND status = 'dispatched'",
                                [run.run_id]).fetchone()[0]
        assert len(sent) == dispatched > 0
    finally:
        # Paused again whatever happened, and its scheduled run finished before the next test empties the tables.
        airflow("dags", "pause", BACKFILL_DAG_ID)
        wait_for(lambda: all(str(r.state) in ("success", "failed") for r in dag_runs(BACKFILL_DAG_ID)),
                 300, "the scheduled run to finish before the next test empties the tables", 3)
