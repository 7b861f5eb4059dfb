"""Real runs under a real executor: api-server + scheduler + dag-processor, Postgres metadata, under the
LocalExecutor and the CeleryExecutor (two workers) in turn (the ``airflow_stack`` fixture).

``dag.test()`` runs tasks in-process, where the ORM is not blocked: a green dag.test does not prove the DAG
runs on a real worker. These tests do: task processes talk to the API server for XComs, Variables and
connections, exactly as in production.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from pipeline_helpers import (
    contact_posts,
    dag_runs,
    expected_batch,
    expected_reasons,
    finished_run,
    segments_for,
    task_instances,
    task_log_text,
    task_logs,
)
from stack import EXECUTORS
from support import (
    BACKFILL_CAMPAIGN_ID,
    BACKFILL_LIST_ID,
    CATCHUP_CAMPAIGN_ID,
    CATCHUP_LIST_ID,
    CONTACT_LIST_ID,
    CONTACTS_ROUTE,
    XRUN_CAMPAIGN_ID,
    airflow,
    wait_for,
)

from genesys_devkit.demo_data import contact_rows, emulator_seed, insert_contacts, insert_dial_history

pytestmark = [pytest.mark.executor, pytest.mark.usefixtures("airflow_db")]

BACKFILL_DAG_ID = "genesys_predictive_xbackfill"
CATCHUP_DAG_ID = "genesys_predictive_xcatchup"
PATCH_ROUTE = "PATCH /api/v2/outbound/campaigns/{campaignId}"


def _patches(emulator: Any, campaign_id: str) -> int:
    """PATCHes of one campaign's pacing, from the emulator's request log."""
    return sum(1 for r in emulator.requests_log() if r["route"] == PATCH_ROUTE and campaign_id in r["path"])


def _states(dag_id: str, run_id: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for ti in task_instances(dag_id, run_id):
        found.setdefault(ti.task_id, set()).add(str(ti.state))
    return found


def _summarize_label(dag_id: str, run_id: str) -> str | None:
    return next(ti.rendered_map_index for ti in task_instances(dag_id, run_id) if ti.task_id == "summarize")


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


@pytest.mark.celery_core
def test_triggered_run_maps_segments_in_parallel_on_the_executor(db, emulator, airflow_stack):
    insert_contacts(db, contact_rows(360, seed=21))
    insert_dial_history(db, XRUN_CAMPAIGN_ID, end=datetime.now(UTC), days=7, per_day=100, answer_rate=0.2)
    # Slow Genesys down a little so that parallel segments are visible as overlapping task runs.
    emulator.fault(route=CONTACTS_ROUTE, latencyMs=1500)

    run_id = f"manual__executor_{int(time.time())}"
    airflow("dags", "trigger", "genesys_predictive_xrun", "--run-id", run_id)
    dag_run = wait_for(lambda: finished_run("genesys_predictive_xrun", run_id), 300, "the triggered run to finish", 2)

    tis = task_instances("genesys_predictive_xrun", run_id)
    assert str(dag_run.state) == "success", {(t.task_id, t.map_index): str(t.state) for t in tis}
    batch = [cid for cid, _ in expected_batch(db, 300)]
    reasons = expected_reasons(db, batch, campaign_id=XRUN_CAMPAIGN_ID)
    sendable = {cid for cid, reason in reasons.items() if reason is None}
    segments = [t for t in tis if t.task_id == "create_segment"]
    assert len(segments) == segments_for(len(sendable), 60) == 5  # the sendable part of 300, 60 a segment
    assert ("withdraw_opt_outs", -1) in {(t.task_id, t.map_index) for t in tis if str(t.state) == "success"}
    assert all(str(t.state) == "success" for t in segments)
    # Labelled with the segment and its size, e.g. "20261130T1821-s002 (60 contacts)".
    assert all(t.rendered_map_index and re.fullmatch(rf"\d{{8}}T\d{{4}}-s{t.map_index:03d} \([\d,]+ contacts\)",
                                                     t.rendered_map_index) for t in segments)
    overlap = _max_overlap([(t.start_date, t.end_date) for t in segments])
    assert 2 <= overlap <= 5, f"mapped segments did not run in parallel within the pool (overlap {overlap})"

    claimed = dict(db.execute(
        "SELECT l.contact_id, c.phone_number FROM dispatch_ledger l JOIN contacts c ON c.id = l.contact_id "
        "WHERE l.run_id = %s", [run_id]).fetchall())
    assert sorted(claimed) == sorted(batch)
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


def test_the_api_server_refuses_a_trigger_whose_mode_or_batch_is_not_valid(airflow_stack):
    """The Params live on the DAG, not on its tasks: the API server still checks a trigger's conf against them.
    An odd spelling of the mode, or a batch over the campaign's maximum, is refused with the Param's name, and
    no run is created: nothing to claim or send."""
    url = f"http://127.0.0.1:{airflow_stack['port']}"
    token = requests.get(f"{url}/auth/token", timeout=30)  # the session's deployment: every user is an admin
    assert token.status_code == 201, token.text
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    runs_url = f"{url}/api/v2/dags/genesys_predictive_xrun/dagRuns"
    before = requests.get(runs_url, headers=headers, timeout=30).json()["total_entries"]
    refused = [("dry_run", odd) for odd in ("LIVE", " live", "false", 0, 1, "")] + [("batch_size", 10**9)]
    for name, value in refused:
        response = requests.post(runs_url, json={"logical_date": None, "conf": {name: value}}, headers=headers,
                                 timeout=30)
        assert response.status_code == 400 and f"param {name}" in response.text, (value, response.text)
    assert requests.get(runs_url, headers=headers, timeout=30).json()["total_entries"] == before  # no run


def test_backfill_is_a_dry_run_by_default_and_takes_no_contact_created_after_its_interval(
    db, emulator, airflow_stack
):
    emulator.seed(emulator_seed(BACKFILL_CAMPAIGN_ID, BACKFILL_LIST_ID))
    # A scheduled DAG: unpausing it lets the scheduler start today's run too (catchup is off).
    airflow("dags", "unpause", BACKFILL_DAG_ID)
    try:
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        # Each executor's stack backfills its own days: the session's metadata DB keeps the other's runs, and a
        # backfill skips dates that already have one.
        earlier = 7 * EXECUTORS.index(airflow_stack.executor)
        start = today - timedelta(days=6 + earlier)
        insert_contacts(db, contact_rows(60, seed=31, created_at=start - timedelta(days=1)))
        insert_contacts(db, contact_rows(60, seed=32, created_at=today - timedelta(hours=12)))
        insert_dial_history(db, BACKFILL_CAMPAIGN_ID, end=today, days=14 + earlier, per_day=50, answer_rate=0.3)

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
        for run in dry_runs:  # visibly dry: nothing-sending tasks skipped, the summary labelled
            states = _states(BACKFILL_DAG_ID, run.run_id)
            assert states["apply_pacing"] == {"skipped"} and states["create_segment"] <= {"skipped"}
            assert _summarize_label(BACKFILL_DAG_ID, run.run_id) == "DRY RUN: dry_run"
        # (Unpausing the DAG let the scheduler start today's scheduled run: its contacts are in the list, so
        # look for the backfill runs' segment labels rather than an empty list.)
        labels = {c["data"]["segment"].split("-s")[0] for c in emulator.contacts(BACKFILL_LIST_ID)}
        assert not labels & {r.data_interval_end.strftime("%Y%m%dT%H%M") for r in dry_runs}

        # Started with dry_run=false (the old spelling of live), a backfill sends, but only contacts that existed
        # in its interval, and it never paces the campaign: its interval is not the latest.
        patches_before = _patches(emulator, BACKFILL_CAMPAIGN_ID)
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
        assert db.execute("SELECT dry_run, applied FROM pacing_decisions WHERE run_id = %s",
                          [run.run_id]).fetchone() == (False, False)
        assert _patches(emulator, BACKFILL_CAMPAIGN_ID) == patches_before
        assert _summarize_label(BACKFILL_DAG_ID, run.run_id) == "live: success"
        applied = db.execute("SELECT count(*) FROM pacing_decisions WHERE campaign_id = %s AND applied",
                             [BACKFILL_CAMPAIGN_ID]).fetchone()[0]
        assert applied == _patches(emulator, BACKFILL_CAMPAIGN_ID)  # only the scheduled run of today paced
    finally:
        # Paused again whatever happened, and its scheduled run finished before the next test empties the tables.
        airflow("dags", "pause", BACKFILL_DAG_ID)
        wait_for(lambda: all(str(r.state) in ("success", "failed") for r in dag_runs(BACKFILL_DAG_ID)),
                 300, "the scheduled run to finish before the next test empties the tables", 3)


def test_catch_up_runs_are_dry_and_only_the_latest_interval_sends_and_paces(db, emulator, airflow_stack):
    """catchup on, started two hours ago, hourly: unpausing creates the runs of the past hours (catch-up runs,
    dry by default: nothing claimed, sent or paced) and the current hour's run, which alone claims, sends and
    PATCHes the campaign's pacing."""
    emulator.seed(emulator_seed(CATCHUP_CAMPAIGN_ID, CATCHUP_LIST_ID))
    insert_contacts(db, contact_rows(60, seed=41, created_at=datetime.now(UTC) - timedelta(days=1)))
    insert_dial_history(db, CATCHUP_CAMPAIGN_ID, end=datetime.now(UTC), days=7, per_day=50, answer_rate=0.3)
    airflow("dags", "unpause", CATCHUP_DAG_ID)
    try:
        def caught_up() -> list[Any] | None:
            runs = dag_runs(CATCHUP_DAG_ID)
            latest = datetime.now(UTC) - timedelta(hours=1)
            done = all(str(r.state) in ("success", "failed") for r in runs)
            return runs if done and any(r.data_interval_end >= latest for r in runs) and len(runs) >= 3 else None

        runs = sorted(wait_for(caught_up, 400, "the catch-up runs and the current hour's run", 3),
                      key=lambda r: r.data_interval_end)
        assert all(str(r.state) == "success" and str(r.run_type).endswith("scheduled") for r in runs)
        decisions = dict(((row[0]), row[1:]) for row in db.execute(
            "SELECT run_id, dry_run, applied FROM pacing_decisions WHERE campaign_id = %s",
            [CATCHUP_CAMPAIGN_ID]).fetchall())
        claimed = dict(db.execute(
            "SELECT run_id, count(*) FROM dispatch_ledger WHERE campaign_id = %s GROUP BY run_id",
            [CATCHUP_CAMPAIGN_ID]).fetchall())
        # A run is a catch-up run when its interval ended more than one period (an hour) before it started.
        catch_up = [r for r in runs if r.start_date - r.data_interval_end > timedelta(hours=1)]
        current = [r for r in runs if r not in catch_up]
        assert len(catch_up) >= 2 and len(current) >= 1
        for run in catch_up:
            assert decisions[run.run_id] == (True, False) and run.run_id not in claimed
            assert _states(CATCHUP_DAG_ID, run.run_id)["apply_pacing"] == {"skipped"}
            assert _summarize_label(CATCHUP_DAG_ID, run.run_id) == "DRY RUN: dry_run"
        first_live = current[0]
        assert decisions[first_live.run_id] == (False, True) and claimed[first_live.run_id] > 0
        assert _summarize_label(CATCHUP_DAG_ID, first_live.run_id) == "live: success"
        assert _patches(emulator, CATCHUP_CAMPAIGN_ID) == sum(1 for r in current if decisions[r.run_id][1])
        stored = {int(c["id"]) for c in emulator.contacts(CATCHUP_LIST_ID)}
        sent = {row[0] for row in db.execute(
            "SELECT contact_id FROM dispatch_ledger WHERE campaign_id = %s AND status = 'dispatched'",
            [CATCHUP_CAMPAIGN_ID]).fetchall()}
        assert stored == sent and sent
        report = task_log_text(airflow_stack["task_logs"], catch_up[0].run_id, "summarize")
        assert "===== DRY RUN, nothing claimed or sent. Run report: campaign xcatchup" in report
        assert "auto: a catch-up run" in report
    finally:
        airflow("dags", "pause", CATCHUP_DAG_ID)
        wait_for(lambda: all(str(r.state) in ("success", "failed") for r in dag_runs(CATCHUP_DAG_ID)),
                 300, "the catch-up DAG's runs to finish before the next test empties the tables", 3)
