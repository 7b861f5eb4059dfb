"""Claiming in the dispatch ledger on a real PostgreSQL: no double claims, adoption, idempotent schema."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from pipeline_helpers import expected_batch, expected_reasons
from support import write_as_of_earlier

from genesys_devkit.demo_data import ContactMix, contact_rows, insert_contacts
from genesys_dialer.compliance.phones import refresh_phones
from genesys_dialer.ledger.claims import (
    SKIP_INVALID_PHONE,
    SKIP_MISSING_PHONE,
    ClaimRequest,
    claim_batch,
    normalize_phone,
)
from genesys_dialer.ledger.schema import apply_schema


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(415) 555-2671", "US", ("+14155552671", None)),
        ("+1 212 736 5000", "US", ("+12127365000", None)),
        ("020 7946 0018", "GB", ("+442079460018", None)),
        ("+44 20 7946 0018", "US", ("+442079460018", None)),
        (None, "US", (None, SKIP_MISSING_PHONE)),
        ("   ", "US", (None, SKIP_MISSING_PHONE)),
        ("n/a", "US", (None, SKIP_INVALID_PHONE)),
        ("12345", "US", (None, SKIP_INVALID_PHONE)),
        ("+1 (000) 000-0000", "US", (None, SKIP_INVALID_PHONE)),
    ],
)
def test_numbers_are_validated_and_formatted_by_libphonenumber(raw, region, expected):
    assert normalize_phone(raw, region) == expected


CLEAN = ContactMix(inactive=0, do_not_call=0, missing_phone=0, malformed_phone=0)


def refresh(conn) -> None:
    """Normalize every contact's number (the tasks do this before they claim)."""
    assert refresh_phones(conn, "US", max_rows=10**6, lookback=timedelta(minutes=60)).caught_up


def _request(run_id: str, batch: int = 100, *, lease: int = 60, created_before=None) -> ClaimRequest:
    return ClaimRequest(
        campaign_id="camp-1", campaign_key="k", run_id=run_id, batch_size=batch, segment_size=30,
        created_before=created_before or datetime.now(UTC), lease_minutes=lease, contact_id_prefix="",
        phone_region="US", label_prefix="20260101T0000",
    )


def test_overlapping_claims_never_take_the_same_contact(db, dialer_db):
    insert_contacts(db, contact_rows(1000, seed=5))
    results: dict[str, object] = {}
    barrier = threading.Barrier(4)

    with psycopg.connect(dialer_db) as conn:
        refresh(conn)

    def claim(run_id: str) -> None:
        with psycopg.connect(dialer_db) as conn:
            barrier.wait()
            results[run_id] = claim_batch(conn, _request(run_id, 150), dry_run=False)

    threads = [threading.Thread(target=claim, args=(f"run-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    rows = db.execute("SELECT run_id, contact_id FROM dispatch_ledger").fetchall()
    by_run: dict[str, set[int]] = {}
    for run_id, contact_id in rows:
        by_run.setdefault(run_id, set()).add(contact_id)
    assert sorted(len(ids) for ids in by_run.values()) == [150, 150, 150, 150]
    all_ids = [cid for ids in by_run.values() for cid in ids]
    assert len(all_ids) == len(set(all_ids)) == 600
    # the batches are the first 600 contacts that are not inactive (those held back are recorded, with reasons)
    assert sorted(all_ids) == [cid for cid, _ in expected_batch(db, 600)]


def test_a_rerun_finds_its_own_claim_and_a_dry_run_writes_nothing(db, dialer_db):
    insert_contacts(db, contact_rows(200, seed=6))
    batch = [cid for cid, _ in expected_batch(db, 70)]
    expected = Counter(r for r in expected_reasons(db, batch, campaign_id="camp-1").values() if r)
    sendable = 70 - sum(expected.values())
    assert expected and 30 < sendable < 70
    with psycopg.connect(dialer_db) as conn:
        refresh(conn)
        preview = claim_batch(conn, _request("dry", 70), dry_run=True)
        assert preview.contacts == sendable and preview.held_back == dict(expected)
        assert [s.contacts for s in preview.segments] == [min(30, sendable - i) for i in range(0, sendable, 30)]
        assert db.execute("SELECT count(*) FROM dispatch_ledger").fetchone()[0] == 0
        first = claim_batch(conn, _request("run-a", 70), dry_run=False)
        again = claim_batch(conn, _request("run-a", 70), dry_run=False)
    assert not first.reused and again.reused
    assert first.held_back == dict(expected)
    assert [s.to_xcom() for s in first.segments] == [s.to_xcom() for s in again.segments]
    assert db.execute("SELECT count(*) FROM dispatch_ledger").fetchone()[0] == 70


def test_undelivered_claims_of_an_abandoned_run_are_adopted_after_their_lease(db, dialer_db):
    insert_contacts(db, contact_rows(100, seed=8, mix=CLEAN))  # every contact sendable: the claims are whole
    with psycopg.connect(dialer_db) as conn:
        refresh(conn)
        claim_batch(conn, _request("crashed", 20), dry_run=False)
        db.execute("UPDATE dispatch_ledger SET status = 'dispatched' WHERE contact_id IN "
                   "(SELECT contact_id FROM dispatch_ledger ORDER BY contact_id LIMIT 5)")
        db.commit()
        fresh = claim_batch(conn, _request("next", 20), dry_run=False)  # lease not expired: nothing adopted
        assert fresh.adopted == 0
        db.execute("UPDATE dispatch_ledger SET claimed_at = now() - interval '2 hours' WHERE run_id = 'crashed'")
        db.commit()
        later = claim_batch(conn, _request("later", 20), dry_run=False)
    assert later.adopted == 15
    statuses = dict(db.execute("SELECT run_id, count(*) FROM dispatch_ledger GROUP BY run_id").fetchall())
    assert statuses == {"crashed": 5, "next": 20, "later": 20}
    assert db.execute("SELECT count(*) FROM dispatch_ledger WHERE run_id = 'crashed' AND status <> 'dispatched'"
                      ).fetchone()[0] == 0


def test_contacts_created_after_the_interval_end_are_not_claimed(db, dialer_db):
    cutoff = datetime.now(UTC) - timedelta(days=3)
    insert_contacts(db, contact_rows(40, seed=9, created_at=cutoff - timedelta(hours=1)))
    insert_contacts(db, contact_rows(40, seed=10, created_at=cutoff + timedelta(hours=1)))
    with psycopg.connect(dialer_db) as conn:
        refresh(conn)
        result = claim_batch(conn, _request("past", 100, created_before=cutoff), dry_run=False)
    created = db.execute(
        "SELECT c.created_at FROM dispatch_ledger l JOIN contacts c ON c.id = l.contact_id").fetchall()
    assert result.contacts + sum(result.held_back.values()) == len(created) > 0
    assert all(at < cutoff for (at,) in created)


def test_applying_the_schema_twice_keeps_every_row(db, dialer_db):
    insert_contacts(db, contact_rows(10, seed=12))
    db.execute("INSERT INTO dial_history (campaign_id, answered) VALUES ('c', true)")
    db.commit()
    with psycopg.connect(dialer_db) as conn:
        apply_schema(conn)
        apply_schema(conn)
    assert db.execute("SELECT count(*) FROM contacts").fetchone()[0] == 10
    assert db.execute("SELECT count(*) FROM dial_history").fetchone()[0] == 1
    indexes = {r[0] for r in db.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'").fetchall()}
    assert {"contacts_status_id_idx", "dial_history_campaign_id_created_at_idx"} <= indexes


# -- claims that hold by construction (no advisory lock) ------------------------------------------------------
def _claims_by_run(db) -> dict[str, set[int]]:
    rows = db.execute("SELECT run_id, contact_id FROM dispatch_ledger").fetchall()
    db.commit()
    by_run: dict[str, set[int]] = {}
    for run_id, contact_id in rows:
        by_run.setdefault(run_id, set()).add(contact_id)
    return by_run


def _check_no_takeover(db, results: dict[str, int]) -> None:
    """Every claimant still holds exactly the ledger rows it was told it wrote (claimed or held back with a
    reason); no contact is held twice."""
    by_run = _claims_by_run(db)
    held = {run_id: len(by_run.get(run_id, set())) for run_id in results}
    assert held == results, "a claimant lost rows it had claimed to another claimant"
    all_ids = [cid for ids in by_run.values() for cid in ids]
    assert len(all_ids) == len(set(all_ids))


def test_concurrent_claimants_without_the_lock_never_take_over_a_live_claim(db, dialer_db):
    """Six threads claim at the same instant, five rounds, with the advisory lock off."""
    insert_contacts(db, contact_rows(1200, seed=31))
    short_batches = 0
    for round_number in range(5):
        db.execute("TRUNCATE dispatch_ledger")
        db.commit()
        barrier = threading.Barrier(6)
        results: dict[str, int] = {}

        def claim(run_id: str, barrier: threading.Barrier, results: dict[str, int]) -> None:
            with psycopg.connect(dialer_db) as conn:
                barrier.wait()
                result = claim_batch(conn, _request(run_id, 150), dry_run=False, lock=False)
                results[run_id] = result.contacts + sum(result.held_back.values())  # its ledger rows

        threads = [threading.Thread(target=claim, args=(f"r{round_number}-{i}", barrier, results))
                   for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(results) == 6
        _check_no_takeover(db, results)
        short_batches += sum(1 for n in results.values() if n < 150)
    # Without the lock concurrent claimants saw the same fresh contacts: the losers got short batches (the lock
    # would have kept them full), and none of them took a row from the winner.
    assert short_batches > 0, "the claimants never contended: the test did not test concurrency"


CLAIM_IN_A_PROCESS = """
import json, sys, time
from datetime import UTC, datetime
import psycopg
from genesys_dialer.ledger.claims import ClaimRequest, claim_batch

dsn, run_id, start_at = sys.argv[1], sys.argv[2], float(sys.argv[3])
request = ClaimRequest(campaign_id="camp-1", campaign_key="k", run_id=run_id, batch_size=150, segment_size=30,
                       created_before=datetime.now(UTC), lease_minutes=60, contact_id_prefix="", phone_region="US",
                       label_prefix="20260101T0000")
with psycopg.connect(dsn) as conn:
    conn.execute("SELECT 1")
    while time.time() < start_at:
        time.sleep(0.0005)
    result = claim_batch(conn, request, dry_run=False, lock=False)
print(json.dumps({"run_id": run_id, "contacts": result.contacts + sum(result.held_back.values())}))
"""


def test_concurrent_claimant_processes_without_the_lock_never_take_over_a_live_claim(db, dialer_db):
    import json
    import subprocess
    import sys
    import time

    insert_contacts(db, contact_rows(1000, seed=32))
    start_at = time.time() + 6  # every process connected and waiting when the clock strikes
    procs = [subprocess.Popen([sys.executable, "-c", CLAIM_IN_A_PROCESS, dialer_db, f"proc-{i}", str(start_at)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(5)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outputs]
    results = {r["run_id"]: r["contacts"] for r in (json.loads(out) for out, _ in outputs)}
    _check_no_takeover(db, results)
    assert 0 < sum(results.values()) <= 750


def test_expired_claims_are_adopted_once_across_concurrent_adopters_and_a_worked_claim_never(db, dialer_db):
    insert_contacts(db, contact_rows(300, seed=33))
    with psycopg.connect(dialer_db) as conn:
        claim_batch(conn, _request("crashed", 40), dry_run=False)
        claim_batch(conn, _request("working", 40), dry_run=False)
    # Both claims are older than the lease; the working run's segment task renewed its heartbeat a moment ago.
    db.execute("UPDATE dispatch_ledger SET claimed_at = now() - interval '2 hours'")
    db.execute("UPDATE dispatch_ledger SET heartbeat_at = now() - interval '1 minute' WHERE run_id = 'working'")
    db.commit()
    working_before = _claims_by_run(db)["working"]
    expired = db.execute("SELECT count(*) FROM dispatch_ledger WHERE run_id = 'crashed' AND status = 'claimed'"
                         ).fetchone()[0]  # the claim's held-back contacts (skipped, with a reason) stay its own
    db.commit()
    assert expired > 30  # more than one adopter's batch

    barrier = threading.Barrier(4)
    adopted: dict[str, int] = {}

    def adopt(run_id: str) -> None:
        with psycopg.connect(dialer_db) as conn:
            barrier.wait()
            adopted[run_id] = claim_batch(conn, _request(run_id, 30), dry_run=False, lock=False).adopted

    threads = [threading.Thread(target=adopt, args=(f"adopter-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    by_run = _claims_by_run(db)
    assert sum(adopted.values()) == expired, adopted  # every expired row adopted, by exactly one adopter
    assert db.execute("SELECT count(*) FROM dispatch_ledger WHERE run_id = 'crashed' AND status <> 'skipped'"
                      ).fetchone()[0] == 0
    assert by_run["working"] == working_before, "a claim being worked was adopted"


def _take(db_url: str, run_id: str, segment: int = 0) -> tuple[int, int]:
    from genesys_dialer.ledger.claims import take_segment

    with psycopg.connect(db_url) as conn:
        return take_segment(conn, campaign_id="camp-1", run_id=run_id, segment_index=segment)


def test_a_try_that_lost_its_rows_can_mark_and_send_none_and_their_doubt_survives_adoption(db, dialer_db):
    from genesys_dialer.ledger.claims import mark, mark_sending

    insert_contacts(db, contact_rows(100, seed=34, mix=CLEAN))  # every contact claimable: whole segments
    with psycopg.connect(dialer_db) as conn:
        claim_batch(conn, _request("old", 30), dry_run=False)
        first_try, owned = _take(dialer_db, "old")
        assert owned == 30
        ids = [r[0] for r in db.execute("SELECT contact_id FROM dispatch_ledger ORDER BY contact_id").fetchall()]
        db.commit()
        # The first try marks ten contacts in doubt (a request is on its way), then a newer try takes over.
        assert mark_sending(conn, campaign_id="camp-1", fence=first_try, contact_ids=ids[:10]) == set(ids[:10])
        second_try, _ = _take(dialer_db, "old")
        assert mark_sending(conn, campaign_id="camp-1", fence=first_try, contact_ids=ids[10:20]) == set()
        assert mark(conn, "mark_dispatched", campaign_id="camp-1", fence=first_try, contact_ids=ids[:10]) == 0
        # The run is abandoned; another run adopts its claim after the lease, in doubt marks and all.
        db.execute("UPDATE dispatch_ledger SET claimed_at = now() - interval '2 hours', "
                   "heartbeat_at = now() - interval '2 hours'")
        db.commit()
        assert claim_batch(conn, _request("adopter", 30), dry_run=False, lock=False).adopted == 30
        assert mark_sending(conn, campaign_id="camp-1", fence=second_try, contact_ids=ids[10:20]) == set()
    rows = dict(db.execute("SELECT contact_id, sending_at IS NOT NULL FROM dispatch_ledger "
                           "WHERE run_id = 'adopter'").fetchall())
    db.commit()
    assert len(rows) == 30
    assert {cid for cid, doubtful in rows.items() if doubtful} == set(ids[:10]), "the doubt was lost on adoption"


# -- the keyset from high-water marks: eligible contacts arrive exactly once ---------------------------------------
def _ledger_ids(db) -> list[int]:
    ids = [cid for (cid,) in db.execute(
        "SELECT contact_id FROM dispatch_ledger WHERE campaign_id = 'camp-1' ORDER BY contact_id").fetchall()]
    db.commit()
    return ids


def _mark(db, status: str = "active") -> int:
    row = db.execute("SELECT contact_id FROM claim_marks WHERE campaign_id = 'camp-1' AND status = %s",
                     (status,)).fetchone()
    db.commit()
    return row[0] if row else 0


def test_a_contact_that_becomes_callable_after_the_mark_passed_it_is_still_claimed(db, dialer_db):
    insert_contacts(db, contact_rows(120, seed=41, mix=CLEAN))
    db.execute("UPDATE contacts SET status = 'inactive' WHERE id IN (7, 8)")
    db.commit()
    with psycopg.connect(dialer_db) as conn:
        refresh(conn)
        first = claim_batch(conn, _request("first", 50), dry_run=False)
        assert first.contacts == 50 and 8 not in _ledger_ids(db)
        assert _mark(db) == 52  # the keyset passed contacts 7 and 8: they were inactive
        second = claim_batch(conn, _request("second", 50), dry_run=False)
        assert second.contacts == 50 and _mark(db) == 102
        # contact 7 becomes callable by a hand-written UPDATE that leaves updated_at alone: the schema's trigger
        # moves it, so the claim's late path sees the change
        before = db.execute("SELECT updated_at FROM contacts WHERE id = 7").fetchone()[0]
        db.execute("UPDATE contacts SET status = 'Active ' WHERE id = 7")
        assert db.execute("SELECT updated_at FROM contacts WHERE id = 7").fetchone()[0] > before
        db.commit()
        third = claim_batch(conn, _request("third", 50), dry_run=False)
        fourth = claim_batch(conn, _request("fourth", 50), dry_run=False)
    assert third.contacts == 19  # contact 7, then the last 18 above the mark
    assert fourth.contacts == 0
    rows = dict(db.execute("SELECT contact_id, run_id FROM dispatch_ledger").fetchall())
    assert rows[7] == "third" and 8 not in rows
    assert sorted(rows) == [i for i in range(1, 121) if i != 8]  # every callable contact, each once


def test_a_contact_the_keyset_passed_before_it_was_committed_is_claimed_by_the_next_run(db, dialer_db):
    """An id taken by a long transaction that commits after a claim scanned past it (ids are not commit order)."""
    insert_contacts(db, contact_rows(60, seed=42, mix=CLEAN))
    late = db.execute("SELECT phone_number, status, suppression_status, first_name, last_name, created_at "
                      "FROM contacts WHERE id = 10").fetchone()
    db.execute("DELETE FROM contacts WHERE id = 10")
    db.commit()
    with psycopg.connect(dialer_db) as conn:
        refresh(conn)
        claim_batch(conn, _request("before", 40), dry_run=False)
        assert _mark(db) == 41
        write_as_of_earlier(db, "INSERT INTO contacts (id, phone_number, status, suppression_status, first_name, "
                            "last_name, created_at, updated_at) VALUES (10, %s, %s, %s, %s, %s, %s, "
                            "now() - interval '20 minutes')", late)
        refresh(conn)
        after = claim_batch(conn, _request("after", 40), dry_run=False)
    assert after.contacts == 20  # contact 10 and the 19 above the mark
    assert _ledger_ids(db) == list(range(1, 61))


def test_the_mark_stops_below_a_contact_created_after_the_interval_end(db, dialer_db):
    cutoff = datetime.now(UTC) - timedelta(hours=2)
    insert_contacts(db, contact_rows(20, seed=43, mix=CLEAN, created_at=cutoff - timedelta(hours=1)))
    insert_contacts(db, contact_rows(5, seed=44, mix=CLEAN, created_at=cutoff + timedelta(hours=1)))
    insert_contacts(db, contact_rows(20, seed=45, mix=CLEAN, created_at=cutoff - timedelta(hours=1)))
    with psycopg.connect(dialer_db) as conn:
        refresh(conn)
        past = claim_batch(conn, _request("past", 100, created_before=cutoff), dry_run=False)
        assert past.contacts == 40 and _mark(db) == 20  # below contact 21, which was created after the cutoff
        now = claim_batch(conn, _request("now", 100), dry_run=False)
    assert now.contacts == 5 and _mark(db) == 25  # the highest id it wrote; 26-45 are passed in the ledger
    assert _ledger_ids(db) == list(range(1, 46))


def test_a_mark_whose_ledger_rows_are_gone_is_not_trusted(db, dialer_db):
    insert_contacts(db, contact_rows(30, seed=46, mix=CLEAN))
    with psycopg.connect(dialer_db) as conn:
        refresh(conn)
        claim_batch(conn, _request("first", 30), dry_run=False)
        assert _mark(db) == 30
        db.execute("DELETE FROM dispatch_ledger")  # a ledger reset by hand
        db.commit()
        again = claim_batch(conn, _request("again", 10), dry_run=False)
    assert again.contacts == 10 and _ledger_ids(db) == list(range(1, 11)) and _mark(db) == 10


def test_a_dry_run_moves_no_mark(db, dialer_db):
    insert_contacts(db, contact_rows(30, seed=47, mix=CLEAN))
    with psycopg.connect(dialer_db) as conn:
        refresh(conn)
        claim_batch(conn, _request("first", 10), dry_run=False)
        preview = claim_batch(conn, _request("dry", 10), dry_run=True)
        assert preview.contacts == 10 and _mark(db) == 10
        real = claim_batch(conn, _request("real", 10), dry_run=False)
    assert real.contacts == 10 and _ledger_ids(db) == list(range(1, 21))


def test_a_contact_another_claimant_wrote_first_is_left_to_it(db, dialer_db, monkeypatch):
    """The claim writes its rows with a plain INSERT first (claims._write_claim); a row another claimant committed
    after the candidates were chosen makes that attempt fail whole, and the claim is written again with ON CONFLICT
    DO NOTHING: the other claimant keeps its row and this claim takes the rest, each contact once."""
    from genesys_dialer.ledger import claims

    insert_contacts(db, contact_rows(60, seed=43, mix=CLEAN))
    db.commit()
    with psycopg.connect(dialer_db) as conn:
        refresh(conn)
    first = db.execute("SELECT min(id) FROM contacts").fetchone()[0]
    db.commit()
    original = claims.normalize_stale

    def normalize_then_lose_a_contact(*args, **kwargs):
        with psycopg.connect(dialer_db) as other:  # committed between the candidates and the ledger writes
            other.execute(
                "INSERT INTO dispatch_ledger (campaign_id, contact_id, genesys_contact_id, campaign_key, run_id, "
                "segment_index, status, fence) VALUES ('camp-1', %s, %s, 'k', 'other-claimant', 0, 'claimed', 1)",
                [first, str(first)])
        return original(*args, **kwargs)

    monkeypatch.setattr(claims, "normalize_stale", normalize_then_lose_a_contact)
    result = claim_batch(db, _request("mine", 40), dry_run=False)
    assert result.claimed_now == 39 and result.contacts == 39, result  # the batch is short by the lost contact
    rows = db.execute("SELECT contact_id, run_id FROM dispatch_ledger ORDER BY contact_id").fetchall()
    db.commit()
    assert rows[0] == (first, "other-claimant")
    assert Counter(run for _, run in rows) == {"mine": 39, "other-claimant": 1}
