"""The campaign pipeline end to end: real PostgreSQL, real Airflow (dag.test), the emulator over HTTP."""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from pipeline_helpers import (
    check_delivery,
    contact_posts,
    e164,
    expected_batch,
    expected_reasons,
    ledger,
    posts_per_contact,
    queue_entries,
    run_dag,
    run_xcoms,
    task_states,
    valid_e164,
)
from support import CAMPAIGN_ID, CONTACT_LIST_ID, EMULATOR_CLIENT_SECRET, TEST_CAMPAIGN

from genesys_devkit.demo_data import contact_rows, insert_contacts, insert_dial_history
from genesys_dialer.pacing.strategies import (
    AnswerHistory,
    HistoryBucket,
    PacingEvidence,
    RealizedAbandons,
    plan_pacing,
)

pytestmark = pytest.mark.usefixtures("airflow_db")

BATCH = TEST_CAMPAIGN["batch_size"]
SEGMENT = TEST_CAMPAIGN["segment_size"]
PER_REQUEST = TEST_CAMPAIGN["contacts_per_request"]


def _seed(db, count=400, **kwargs):
    insert_contacts(db, contact_rows(count, **kwargs))


def test_one_run_loads_exactly_the_eligible_contacts_and_applies_pacing(db, emulator):
    _seed(db)
    now = datetime.now(UTC)
    insert_dial_history(db, CAMPAIGN_ID, end=now, days=7, per_day=200, answer_rate=0.22)

    dag_run = run_dag()

    states = task_states(dag_run)
    assert str(dag_run.state) == "success", states
    claim = expected_batch(db, BATCH)
    assert len(claim) == BATCH
    reasons = expected_reasons(db, [cid for cid, _ in claim])
    sendable = {cid: e164(raw) for cid, raw in claim if reasons[cid] is None}
    assert 0 < len(sendable) < BATCH  # the demo mix has do-not-call, missing and malformed numbers in the batch
    assert {"suppressed", "missing_phone", "invalid_phone"} <= set(reasons.values())

    # Through the real API: the list holds exactly the sendable contacts, each sent once and queued once, with its
    # segment.
    stored = emulator.contacts()
    ids = [c["id"] for c in stored]
    assert {int(i) for i in ids} == set(sendable)
    assert posts_per_contact(emulator.requests_log()) == Counter(ids), "a contact was POSTed twice (or never)"
    assert queue_entries(emulator) == Counter(ids), "a contact entered the dialing queue twice (or never)"
    rows = ledger(db, dag_run.run_id)
    for contact in stored:
        cid = int(contact["id"])
        status, _, segment_index, _ = rows[cid]
        assert status == "dispatched"
        assert contact["data"]["phone"] == sendable[cid]
        assert contact["data"]["segment"].endswith(f"-s{segment_index:03d}")
        assert contact["contactListId"] == CONTACT_LIST_ID

    # The ledger agrees: every contact of the batch is dispatched, or skipped with the reason it was held back.
    assert set(rows) == {cid for cid, _ in claim}
    skipped = {cid: reason for cid, (status, reason, _, _) in rows.items() if status == "skipped"}
    assert skipped == {cid: reason for cid, reason in reasons.items() if reason}

    # Segments are mapped task instances, one per slice of at most segment_size sendable contacts; the contacts
    # held back are in no segment (-1).
    mapped = sorted(i for (task_id, i) in states if task_id == "create_segment")
    assert mapped == list(range(math.ceil(len(sendable) / SEGMENT)))
    assert Counter(seg for _, _, seg, _ in rows.values() if seg >= 0) == Counter(
        {i: min(SEGMENT, len(sendable) - i * SEGMENT) for i in mapped}
    )
    assert all(seg == -1 for cid, (_, _, seg, _) in rows.items() if cid in skipped)

    # One request per contacts_per_request contacts of a segment, none larger.
    posts = contact_posts(emulator.requests_log())
    assert all(p["contactCount"] <= PER_REQUEST for p in posts)
    assert sum(p["contactCount"] for p in posts) == len(sendable)
    per_segment = Counter(seg for cid, (_, _, seg, _) in rows.items() if cid in sendable)
    assert len(posts) == sum(math.ceil(n / PER_REQUEST) for n in per_segment.values())

    # The campaign's pacing equals what the strategy computes from the same 7-day window, day by day.
    end = dag_run.data_interval_end
    days = db.execute(
        "SELECT floor(extract(epoch FROM (%s - created_at)) / 86400)::int, count(*), "
        "count(*) FILTER (WHERE answered), count(*) FILTER (WHERE abandoned) FROM dial_history "
        "WHERE created_at >= %s - interval '7 days' AND created_at < %s GROUP BY 1 ORDER BY 1",
        [end, end, end],
    ).fetchall()
    attempts, answers = sum(d[1] for d in days), sum(d[2] for d in days)
    from pipeline_helpers import campaign_config

    realized = db.execute(
        "SELECT count(*) FILTER (WHERE answered), count(*) FILTER (WHERE abandoned) FROM dial_history "
        "WHERE created_at >= %s - interval '30 days' AND created_at < %s", [end, end]).fetchone()
    realized_24h = db.execute(
        "SELECT count(*) FILTER (WHERE answered), count(*) FILTER (WHERE abandoned) FROM dial_history "
        "WHERE created_at >= %s - interval '24 hours' AND created_at < %s", [end, end]).fetchone()
    campaign = emulator.campaign()
    plan = plan_pacing(
        AnswerHistory(tuple(HistoryBucket(*d) for d in days)), campaign_config(), current_abandon_rate=3.0,
        evidence=PacingEvidence(
            realized_30d=RealizedAbandons(*realized), realized_24h=RealizedAbandons(*realized_24h),
            no_answer_timeout=campaign["noAnswerTimeout"], dialing_mode=campaign["dialingMode"],
        ),
    )
    assert campaign["maxCallsPerAgentDecimal"] == plan.decision.max_calls_per_agent
    assert campaign["maxCallsPerAgent"] == int(plan.decision.max_calls_per_agent)
    assert campaign["outboundLineCount"] == plan.decision.outbound_line_count
    assert campaign["abandonRate"] == plan.decision.abandon_rate
    recorded = db.execute(
        "SELECT attempts, answers, outbound_line_count, applied FROM pacing_decisions WHERE run_id = %s",
        [dag_run.run_id],
    ).fetchone()
    assert recorded == (attempts, answers, plan.decision.outbound_line_count, True)

    # The run log holds the report, and it matches the ledger.
    outcome, claimed, dispatched, skipped_n, report = db.execute(
        "SELECT outcome, claimed, dispatched, skipped, report FROM run_log WHERE run_id = %s", [dag_run.run_id]
    ).fetchone()
    assert (outcome, claimed, dispatched, skipped_n) == ("success", BATCH, len(sendable), len(skipped))
    assert report["ledger"]["skip_reasons"] == dict(Counter(skipped.values()))


def test_rerun_sends_nothing_new_and_next_run_takes_a_disjoint_batch(db, emulator):
    _seed(db, count=700)
    first_date = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    first = run_dag(logical_date=first_date)
    assert str(first.state) == "success"
    posts_after_first = len(contact_posts(emulator.requests_log()))
    first_ledger = ledger(db, first.run_id)

    # Same logical date = the same run cleared and run again (what "Clear" in the UI does).
    again = run_dag(logical_date=first_date)
    assert again.run_id == first.run_id
    assert str(again.state) == "success"
    assert len(contact_posts(emulator.requests_log())) == posts_after_first, "a re-run sent contacts again"
    assert ledger(db, first.run_id) == first_ledger

    second = run_dag(logical_date=first_date + timedelta(minutes=15))
    assert str(second.state) == "success"
    second_ledger = ledger(db, second.run_id)
    assert len(second_ledger) == BATCH
    assert not set(first_ledger) & set(second_ledger), "two runs claimed the same contact"
    assert min(second_ledger) > max(first_ledger)  # keyset order: the next batch follows the first
    delivery = check_delivery(db, emulator, campaign_id=CAMPAIGN_ID)  # ledger = list, each queued once
    assert delivery.claimed == 2 * BATCH and delivery.max_posts_per_contact == 1


def test_past_interval_uses_its_own_answer_rate_window_and_creation_cutoff(db, emulator):
    now = datetime.now(UTC).replace(microsecond=0)
    past_end = now - timedelta(days=20)
    # Old contacts existed at the past interval; new ones were created after it.
    insert_contacts(db, contact_rows(150, seed=1, created_at=past_end - timedelta(days=2)))
    insert_contacts(db, contact_rows(150, seed=2, created_at=now - timedelta(hours=1)))
    # Answer rate 0.10 in the 7 days before the past interval, 0.40 recently.
    insert_dial_history(db, CAMPAIGN_ID, end=past_end, days=7, per_day=300, answer_rate=0.10, seed=3)
    insert_dial_history(db, CAMPAIGN_ID, end=now, days=7, per_day=300, answer_rate=0.40, seed=4)

    # A manual run for a past logical date is live unless told otherwise; use it to prove the cutoff.
    dry = run_dag(logical_date=past_end - timedelta(minutes=15), conf={"dry_run": True})
    assert str(dry.state) == "success"
    window_end, attempts, answers, dry_flag, applied = db.execute(
        "SELECT window_end, attempts, answers, dry_run, applied FROM pacing_decisions WHERE run_id = %s",
        [dry.run_id],
    ).fetchone()
    assert window_end == dry.data_interval_end
    in_window = db.execute(
        "SELECT count(*) FROM dial_history WHERE created_at >= %s - interval '7 days' AND created_at < %s",
        [window_end, window_end],
    ).fetchone()[0]
    assert attempts == in_window > 1500
    assert 0.07 < answers / attempts < 0.13  # the past window's rate, not today's 0.40
    assert dry_flag is True and applied is False
    assert ledger(db) == {}, "a dry run claimed contacts"
    assert emulator.contacts() == []
    writes = [r["route"] for r in emulator.requests_log() if r["method"] in ("POST", "PATCH", "PUT", "DELETE")]
    assert set(writes) <= {"POST /oauth/token", "POST /api/v2/outbound/contactlists/{contactListId}/contacts/search"}

    live = run_dag(logical_date=past_end - timedelta(minutes=15), conf={"dry_run": False})
    assert str(live.state) == "success"
    claimed = ledger(db, live.run_id)
    created = dict(db.execute("SELECT id, created_at FROM contacts").fetchall())
    assert claimed and all(created[cid] < live.data_interval_end for cid in claimed)
    assert set(claimed) == {cid for cid, _ in expected_batch(db, BATCH, live.data_interval_end)}


def _task_logs(capfd, caplog) -> str:
    """Everything the run logged: dag.test() prints task logs to stdout (structlog), plus stdlib records."""
    out, err = capfd.readouterr()
    return "\n".join([out, err, caplog.text])


def test_unknown_campaign_fails_naming_it_and_claims_nothing(db, emulator, caplog, capfd):
    _seed(db, count=50)
    caplog.set_level("INFO")

    dag_run = run_dag(key="ghost")

    assert str(dag_run.state) == "failed"
    states = task_states(dag_run)
    assert states[("resolve_campaign", -1)] == "failed"
    assert states[("fetch_contact_batch", -1)] == "upstream_failed"
    assert db.execute("SELECT count(*) FROM dispatch_ledger").fetchone()[0] == 0
    lookups = [r for r in emulator.requests_log() if r["route"] == "GET /api/v2/outbound/campaigns/{campaignId}"]
    assert lookups and lookups[-1]["status"] == 404
    failure = [line for line in _task_logs(capfd, caplog).splitlines()
               if "00000000-0000-4000-8000-00000000dead" in line and "contextId=" in line]
    assert failure, "the failure does not name the campaign and Genesys' contextId"
    outcome = db.execute("SELECT outcome, claimed FROM run_log WHERE run_id = %s", [dag_run.run_id]).fetchone()
    assert outcome == ("failed", 0)


def test_secrets_tokens_and_phone_numbers_stay_out_of_logs_xcoms_and_run_log(db, emulator, caplog, capfd):
    _seed(db, count=120)
    caplog.set_level("DEBUG")
    dag_run = run_dag()
    assert str(dag_run.state) == "success"

    from genesys_dialer.genesys.auth import token_cache

    tokens = [t.access_token for t in token_cache.values()]
    assert tokens
    phones = [r[0] for r in db.execute("SELECT phone_number FROM contacts WHERE phone_number <> ''").fetchall()]
    e164 = [p for p in (valid_e164(raw) for raw in phones) if p]
    forbidden = [EMULATOR_CLIENT_SECRET, *tokens, *e164, *[p for p in phones if len(p.strip()) >= 10]]

    logs = _task_logs(capfd, caplog)
    xcoms = json.dumps(run_xcoms(dag_run), default=str)
    run_log = json.dumps(db.execute("SELECT report FROM run_log").fetchall(), default=str)
    for haystack, where in ((logs, "task logs"), (xcoms, "XComs"), (run_log, "run log")):
        leaked = [value for value in forbidden if value and value in haystack]
        assert not leaked, f"{len(leaked)} secret/token/phone values found in {where}"
    assert "Run report" in logs  # the scan looked at the real task logs


def test_batch_size_param_of_a_manual_trigger_limits_the_claim(db, emulator):
    _seed(db, count=120)
    dag_run = run_dag(conf={"batch_size": 30})
    assert str(dag_run.state) == "success"
    rows = ledger(db, dag_run.run_id)
    assert len(rows) == 30
    assert set(rows) == {cid for cid, _ in expected_batch(db, 30)}
    # one segment of sendable contacts; the contacts held back are in none
    assert {seg for status, _, seg, _ in rows.values() if status != "skipped"} == {0}
    assert {seg for status, _, seg, _ in rows.values() if status == "skipped"} <= {-1}
