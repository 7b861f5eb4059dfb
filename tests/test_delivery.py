"""Exactly once where it matters: a contact Genesys may already hold is read back, never blindly sent again.

Real PostgreSQL, real Airflow (``dag.test``), the emulator over HTTP. Every test asserts from the emulator (how many
POSTs carried each contact id; how often each contact entered the dialing queue) and the ledger: 0 lost, 0 queued
twice, ledger = list. The real-executor cases (SIGKILL, outages, the combined case) are in test_resilience.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pipeline_helpers import (
    breaker_generations,
    check_delivery,
    contact_posts,
    ledger,
    posts_per_contact,
    queue_entries,
    run_dag,
    run_xcoms,
    valid_e164,
)
from support import CAMPAIGN_ID, CONTACT_LIST_ID, CONTACTS_ROUTE, clear_shared_state

from genesys_devkit.demo_data import contact_rows, insert_contacts
from genesys_dialer.genesys.hook import GenesysHook
from genesys_dialer.genesys.state import MemoryStateStore

pytestmark = pytest.mark.usefixtures("airflow_db")

BULK_ROUTE = "POST /api/v2/outbound/contactlists/{contactListId}/contacts/bulk"


def _segment_results(dag_run) -> list[dict]:
    return [v for task, key, v in run_xcoms(dag_run) if task == "create_segment" and key == "return_value"]


def _report(db, run_id: str) -> dict:
    report = db.execute("SELECT report FROM run_log WHERE run_id = %s", [run_id]).fetchone()[0]
    db.commit()
    return report


def test_answers_lost_after_genesys_applied_the_post_are_read_back_not_resent(db, emulator):
    """40 % of contact POSTs are applied and then their connection drops (seeded)."""
    clear_shared_state()
    insert_contacts(db, contact_rows(400, seed=51))
    emulator.fault(route=CONTACTS_ROUTE, dropProbability=0.4, seed=3)

    dag_run = run_dag()

    assert str(dag_run.state) == "success"
    log = emulator.requests_log()
    dropped = [e for e in contact_posts(log) if e["dropped"]]
    assert len(dropped) >= 2  # the seed drops some of the ~10 POSTs
    delivery = check_delivery(db, emulator, campaign_id=CAMPAIGN_ID)
    assert delivery.max_posts_per_contact == 1, "a contact whose answer was lost was sent again"
    assert delivery.max_queue_entries == 1
    # Each lost answer was settled by a read-back that found the contacts: dispatched without a second POST.
    reads = [e for e in log if e["route"] == BULK_ROUTE]
    assert len(reads) == len(dropped) and all(e["status"] == 200 for e in reads)
    assert sum(r["confirmed"] for r in _segment_results(dag_run)) == sum(e["contactCount"] for e in dropped)
    assert breaker_generations() == [], "lost answers of applied requests opened the breaker"
    report = _report(db, dag_run.run_id)
    assert report["requests"]["unanswered"] == len(dropped)
    assert report["requests"]["requests"] == len(log)  # every request, from the request log in PostgreSQL


def test_a_post_answered_after_the_read_timeout_is_found_once_it_settles(db, emulator):
    """Genesys applies every contacts POST 6.5 s after receiving it; the client gives up after 5 s."""
    clear_shared_state()
    insert_contacts(db, contact_rows(80, seed=52))
    emulator.fault(route=CONTACTS_ROUTE, latencyMs=6500)

    dag_run = run_dag(conf={"batch_size": 50})  # one segment, two POSTs

    assert str(dag_run.state) == "success"
    log = emulator.requests_log()
    posts = contact_posts(log)
    assert len(posts) == 2 and all(e["status"] == 200 for e in posts)  # applied late, never re-sent
    delivery = check_delivery(db, emulator, campaign_id=CAMPAIGN_ID)
    assert delivery.max_posts_per_contact == 1 and delivery.dispatched == sum(e["contactCount"] for e in posts)
    # First read-back (right after the timeout): not there yet. Second, once the POST settled: there.
    reads = [e for e in log if e["route"] == BULK_ROUTE]
    assert len(reads) == 4
    report = _report(db, dag_run.run_id)
    assert report["requests"]["unanswered"] == 2 and report["ledger"]["in_doubt"] == 0


def test_an_adopted_claim_whose_owner_may_have_sent_is_read_back_before_anything_is_sent(db, emulator):
    """Run A dies with a request in flight (which Genesys applied); run B adopts A's claim after the lease."""
    clear_shared_state()
    insert_contacts(db, contact_rows(300, seed=53))
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    emulator.fault(route=CONTACTS_ROUTE, probabilities={"403": 1.0})
    first = run_dag(logical_date=start)
    assert str(first.state) == "failed"  # nothing delivered: 403 is not retried
    emulator.admin("DELETE", "faults")

    # What a SIGKILL after sending leaves behind: contacts marked in doubt, their POST applied by Genesys.
    rows = db.execute(
        "SELECT l.contact_id, l.genesys_contact_id, c.phone_number FROM dispatch_ledger l JOIN contacts c "
        "ON c.id = l.contact_id WHERE l.run_id = %s AND l.segment_index = 1 ORDER BY l.contact_id",
        [first.run_id]).fetchall()
    in_flight = [(cid, gid, valid_e164(phone)) for cid, gid, phone in rows if valid_e164(phone)][:20]
    db.execute("UPDATE dispatch_ledger SET sending_at = now() WHERE contact_id = ANY(%s)",
               [[cid for cid, _, _ in in_flight]])
    db.execute("UPDATE dispatch_ledger SET claimed_at = now() - interval '2 hours', "
               "heartbeat_at = now() - interval '2 hours'")
    db.commit()
    GenesysHook(state_store=MemoryStateStore()).add_contacts(CONTACT_LIST_ID, [
        {"id": gid, "contactListId": CONTACT_LIST_ID, "data": {"phone": e164, "segment": "run-a"}, "callable": True}
        for _, gid, e164 in in_flight])
    before = len(emulator.requests_log())
    pending_in_a = {cid for cid, row in ledger(db, first.run_id).items() if row[0] in ("claimed", "failed")}

    second = run_dag(logical_date=start + timedelta(minutes=15))

    assert str(second.state) == "success"
    adopted = ledger(db, second.run_id)
    assert pending_in_a and pending_in_a <= set(adopted), "B adopted every contact A left unsent"
    b_posts = posts_per_contact(emulator.requests_log()[before:])
    assert not {gid for _, gid, _ in in_flight} & set(b_posts), "B sent a contact A's request had delivered"
    assert all(adopted[cid][0] == "dispatched" for cid, _, _ in in_flight)
    delivery = check_delivery(db, emulator, campaign_id=CAMPAIGN_ID)
    assert delivery.in_doubt == 0 and delivery.max_queue_entries == 1
    assert queue_entries(emulator)[in_flight[0][1]] == 1


def test_the_report_counts_the_requests_of_failed_tries(db, emulator):
    """Every contact POST is refused (403): the segments fail and push no XCom; the report still counts them."""
    clear_shared_state()
    insert_contacts(db, contact_rows(200, seed=54))
    emulator.fault(route=CONTACTS_ROUTE, probabilities={"403": 1.0})

    dag_run = run_dag()

    assert str(dag_run.state) == "failed"
    assert _segment_results(dag_run) == []  # no failed try pushed a result: an XCom-based count would see 0
    log = emulator.requests_log()
    report = _report(db, dag_run.run_id)
    requests = report["requests"]
    assert requests["requests"] == len(log)
    assert requests["errors"] == sum(1 for e in log if (e["status"] or 0) >= 400) == len(contact_posts(log))
    assert requests["token_refreshes"] == sum(1 for e in log if e["route"] == "POST /oauth/token")
    segments = report["segments_total"]
    assert requests["task_tries"] == 2 + segments  # resolve_campaign, apply_pacing, one try per segment
    assert report["ledger"]["pending"] == report["ledger"]["claimed"] - report["ledger"]["skipped"]


def test_an_open_breaker_reschedules_tasks_instead_of_using_their_tries(db, emulator):
    """The shared breaker was opened (by another DAG's outage) just before the run: its tasks wait it out by
    rescheduling themselves (UP_FOR_RESCHEDULE keeps the try number), and nothing reaches Genesys while open."""
    import time

    from airflow.models import Variable
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session
    from pipeline_helpers import check_breaker_windows, task_instances
    from support import BREAKER_KEY, IWAIT_CAMPAIGN_ID

    clear_shared_state()
    insert_contacts(db, contact_rows(120, seed=55))
    Variable.set(BREAKER_KEY, {"opened_at": time.time(), "reason": "another DAG's outage", "by": "test"},
                 serialize_json=True)

    dag_run = run_dag(key="iwait")

    assert str(dag_run.state) == "success"
    tis = task_instances(dag_run.dag_id, dag_run.run_id)
    assert {ti.try_number for ti in tis} == {1}, "waiting out the breaker used a try"
    with create_session() as session:
        rescheduled = {ti.task_id for ti in tis if session.query(TaskReschedule).filter(
            TaskReschedule.ti_id == ti.id).count()}
    assert "resolve_campaign" in rescheduled
    window = check_breaker_windows(emulator.requests_log(), open_seconds=30, probe_allowance=6)
    assert window["requests_while_open"] == 0
    check_delivery(db, emulator, campaign_id=IWAIT_CAMPAIGN_ID)


def test_past_breaker_wait_minutes_an_open_breaker_ends_the_try():
    from pipeline_helpers import campaign_config

    from genesys_dialer.dags.tasks import breaker_reschedule
    from genesys_dialer.genesys.errors import GenesysCircuitOpenError

    campaign = campaign_config().model_copy(update={"breaker_wait_minutes": 5})
    err = GenesysCircuitOpenError("open", retry_after=20)
    assert breaker_reschedule(campaign.model_copy(update={"breaker_wait_minutes": 0}), err, None) is None
    now = datetime.now(UTC)
    when = breaker_reschedule(campaign, err, None)
    assert when is not None and 19 <= (when - now).total_seconds() <= 22
    assert breaker_reschedule(campaign, err, now - timedelta(minutes=4)) is not None
    assert breaker_reschedule(campaign, err, now - timedelta(minutes=6)) is None  # the retry policy takes over


def test_a_2xx_whose_body_cannot_be_read_leaves_its_contacts_in_doubt_not_failed(db, dialer_db, emulator):
    """Genesys applied the POST (2xx) but a proxy mangled the body: "failed" would let a retry queue them again."""
    import psycopg
    import requests

    from genesys_dialer.dags.delivery import SegmentDelivery
    from genesys_dialer.genesys.errors import GenesysResponseError
    from genesys_dialer.ledger.claims import ClaimRequest, claim_batch, take_segment

    class MangledSession(requests.Session):
        def request(self, method, url, *args, **kwargs):  # type: ignore[override]
            response = super().request(method, url, *args, **kwargs)
            if method == "POST" and url.endswith("/contacts") and response.ok:
                response._content, response.headers["Content-Type"] = b"<html>gateway</html>", "text/html"
            return response

    insert_contacts(db, contact_rows(40, seed=56))
    request = ClaimRequest(campaign_id="camp-x", campaign_key="x", run_id="run-x", batch_size=10, segment_size=10,
                           created_before=datetime.now(UTC), lease_minutes=60, contact_id_prefix="",
                           phone_region="US", label_prefix="20260101T0000")
    hook = GenesysHook(state_store=MemoryStateStore())
    hook._session = MangledSession()
    with psycopg.connect(dialer_db) as conn:
        claim_batch(conn, request, dry_run=False)
        fence, _ = take_segment(conn, campaign_id="camp-x", run_id="run-x", segment_index=0)
        ids = [r[0] for r in conn.execute(
            "SELECT contact_id FROM dispatch_ledger WHERE status = 'claimed' ORDER BY 1").fetchall()]
        delivery = SegmentDelivery(conn=conn, hook=hook, campaign_id="camp-x", run_id="run-x", segment_index=0,
                                   label="s0", contact_list_id=CONTACT_LIST_ID, fence=fence)
        batch = [(cid, {"id": str(cid), "contactListId": CONTACT_LIST_ID,
                        "data": {"phone": "+13175550100", "segment": "s0"}, "callable": True}) for cid in ids]
        with pytest.raises(GenesysResponseError, match="expected JSON, got text/html"):
            delivery.send(batch)
    rows = db.execute("SELECT status, sending_at IS NOT NULL FROM dispatch_ledger WHERE status <> 'skipped'"
                      ).fetchall()  # the claim's held-back contacts are not sent
    db.commit()
    assert rows and all(row == ("failed", True) for row in rows), "applied contacts were not left in doubt"
    assert len(emulator.contacts()) == len(ids)  # Genesys does hold them: a read-back will say so


def test_a_streaming_segment_that_fails_half_way_resends_only_its_undelivered_part(db, emulator):
    """segment_size auto: the batch is one segment streaming 10 POSTs of 25; Genesys refuses the 5th (500) and
    the try ends. Clearing the run sends only what that try did not deliver: every contact applied once."""
    from pipeline_helpers import campaign_config

    from genesys_dialer.dags.builder import build_campaign_dag

    clear_shared_state()
    insert_contacts(db, contact_rows(300, seed=57))
    campaign = campaign_config().model_copy(update={"segment_size": "auto"})
    assert campaign.segment_size_for(campaign.batch_size) == 250  # 10 requests: one segment, not ten tasks
    emulator.fault(route=CONTACTS_ROUTE, sequence=[200, 200, 200, 200, 500])
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    dag = build_campaign_dag(campaign)

    first = dag.test(logical_date=when, run_after=when)

    assert str(first.state) == "failed"
    first_posts = contact_posts(emulator.requests_log())
    assert [e["status"] for e in first_posts] == [200, 200, 200, 200, 500]  # the try stopped at the failure
    delivered_first = {c for e in first_posts[:4] for c in e["contactIds"]}
    assert len(delivered_first) == 100
    segments = {r[0] for r in db.execute(
        "SELECT DISTINCT segment_index FROM dispatch_ledger WHERE run_id = %s AND segment_index >= 0",
        [first.run_id]).fetchall()}
    db.commit()
    assert segments == {0}

    again = dag.test(logical_date=when, run_after=when)  # the same run, cleared

    assert again.run_id == first.run_id and str(again.state) == "success"
    second_posts = contact_posts(emulator.requests_log())[len(first_posts):]
    resent = {c for e in second_posts for c in e["contactIds"]}
    assert not resent & delivered_first, "a contact the failed try delivered was sent again"
    refused = set(first_posts[4]["contactIds"])
    assert refused <= resent  # the refused request's contacts were not applied: sent again, once
    delivery = check_delivery(db, emulator, campaign_id=CAMPAIGN_ID)
    assert delivery.dispatched == len(delivered_first | resent) and delivery.max_queue_entries == 1
    assert max(posts_per_contact(emulator.requests_log(), applied=True).values()) == 1
    # One XCom row per task result (multiple_outputs=False), not one more per key of the returned dict.
    keys = {(task, key) for task, key, _ in run_xcoms(again)}
    assert {key for task, key in keys if task in ("create_segment", "resolve_campaign", "summarize")} \
        == {"return_value"}, keys
