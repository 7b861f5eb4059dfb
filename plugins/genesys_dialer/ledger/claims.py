"""Contacts: claiming a run's batch in the dispatch ledger, checking eligibility, building Genesys contacts.

The ledger is the single source of truth for "what went where" and "why not": a contact is claimed for a
campaign once (primary key), a contact held back is recorded with its reason, a run re-dispatches only its own
undelivered claim, and memory never grows with the batch: segments are read page by page in keyset order.
Who may be sent is decided in SQL by one expression shared with the send-time check and the withdrawal
(genesys_dialer.compliance.eligibility).

Claims hold by construction, not by the campaign's advisory lock (kept as an optimisation): a fresh claim never
overwrites another run's row, adoption of an expired claim is a separate, explicit statement that locks and
re-checks each row, and every claim, adoption and segment try takes a new *fence* that every later mark must
present. Whoever lost a row (adopted by another run, superseded by a newer try) can no longer mark or send it.
Before a request is sent its contacts are marked *in doubt* (``sending_at``); see docs/resilience.md.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import psycopg

from genesys_dialer.compliance import reasons
from genesys_dialer.compliance.eligibility import Eligibility
from genesys_dialer.compliance.phones import describe_phone, normalize_stale, refresh_phones
from genesys_dialer.config import NORMALIZE_MAX_ROWS
from genesys_dialer.exceptions import ComplianceError
from genesys_dialer.queries import load_sql, run_sql

log = logging.getLogger(__name__)

SKIP_MISSING_PHONE = reasons.MISSING_PHONE
SKIP_INVALID_PHONE = reasons.INVALID_PHONE


def normalize_phone(raw: str | None, region: str) -> tuple[str | None, str | None]:
    """(E.164 number, None) for a valid number, else (None, skip reason). Uses libphonenumber's rules."""
    facts = describe_phone(raw, region)
    return facts.e164, facts.problem


@dataclass(frozen=True)
class SegmentDescriptor:
    """What a mapped ``create_segment`` instance receives: ids and counts, never contact rows."""

    index: int
    label: str
    contacts: int
    pending: int
    # Dry runs only: what validation found in the (rolled-back) claim.
    would_skip: dict[str, int] = field(default_factory=dict)

    def to_xcom(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ClaimRequest:
    campaign_id: str
    campaign_key: str
    run_id: str
    batch_size: int
    segment_size: int
    created_before: datetime
    lease_minutes: int
    contact_id_prefix: str
    phone_region: str
    label_prefix: str
    eligibility: Eligibility | None = None  # None: the defaults for campaign_id and phone_region
    # How far before the previous claim the late path looks for updated contacts (rows committed late with an
    # older updated_at; as compliance.phones' normalize look-back).
    late_lookback_minutes: int = 60

    def rules(self) -> Eligibility:
        return self.eligibility or Eligibility(campaign_id=self.campaign_id, region=self.phone_region)

    def params(self) -> dict[str, Any]:
        fields = {k: v for k, v in asdict(self).items() if k != "eligibility"}
        return {**fields, **self.rules().params()}


@dataclass(frozen=True)
class ClaimResult:
    segments: list[SegmentDescriptor]
    claimed_now: int
    adopted: int
    reused: bool  # True when the run had claimed before (a cleared, re-run run)
    retried: int = 0  # earlier skips claimed again (their contact changed, or they were re-queued)
    held_back: dict[str, int] = field(default_factory=dict)  # skipped by the claim, by reason

    @property
    def contacts(self) -> int:
        return sum(s.contacts for s in self.segments)


def segment_label(prefix: str, index: int) -> str:
    return f"{prefix}-s{index:03d}"


def next_fence(conn: Any) -> int:
    """A new fencing token (not committed on its own: sequences are not transactional)."""
    with conn.cursor() as cur:
        cur.execute(load_sql("next_fence"))
        return int(cur.fetchone()[0])


def claim_batch(conn: Any, request: ClaimRequest, *, dry_run: bool, lock: bool = True) -> ClaimResult:
    """Claim (or, for a re-run, find) the run's batch; in a dry run, compute it and roll it back.

    The batch is at most ``batch_size`` contacts: first the expired claims of other runs it adopts, then
    candidates each claimed into a segment or recorded as skipped with the reason it is held back. Numbers must
    be normalized (compliance.phones.refresh_phones) first: candidates whose row changed since are normalized
    here, in the claim's transaction. ``lock=False`` skips the campaign's advisory lock: claims stay correct
    without it (tests prove it with concurrent claimants); the lock only keeps concurrent runs' batches full
    and contiguous.
    """
    rules = request.rules()
    params = request.params()
    claimed_now = adopted = retried = 0
    held_back: Counter[str] = Counter()
    with conn.cursor() as cur:
        if lock:
            cur.execute(load_sql("lock_campaign"), params)
        cur.execute(load_sql("run_segments"), params)
        rows = cur.fetchall()
        reused = bool(rows)
        if not reused:
            cur.execute(load_sql("claim_plan"))  # JIT off too
            cur.execute(load_sql("status_values"))
            params["scan_statuses"] = rules.scan_statuses([value for (value,) in cur.fetchall()])
            params["fence"] = next_fence(conn)
            cur.execute(load_sql("adopt_claims"), params)
            adopted = len(cur.fetchall())
            params.update(offset=adopted, limit=max(request.batch_size - adopted, 0))
            _resume_from(cur, params)
            cur.execute(load_sql("claim_window"), params)
            cur.execute(load_sql("claim_candidates"), params)
            cur.execute(load_sql("analyze_claim_candidates"))
            normalize_stale(conn, rules.region, load_sql("claim_stale_phones"), params)
            for source, status, reason, count in _write_claim(conn, cur, rules, params):
                if status == "skipped":
                    held_back[reason] += count
                elif source == 1:
                    retried += count
                else:
                    claimed_now += count
            cur.execute(load_sql("claim_marks_advance"), params)
            cur.execute(load_sql("claim_window_advance"), params)
            cur.execute(load_sql("run_segments"), params)
            rows = cur.fetchall()
    if dry_run:
        conn.rollback()
    else:
        conn.commit()
    segments = [
        SegmentDescriptor(
            index=index,
            label=segment_label(request.label_prefix, index),
            contacts=count,
            pending=pending,
        )
        for index, count, pending in rows
        if index >= 0  # segment -1: contacts the claim held back
    ]
    return ClaimResult(segments, claimed_now, adopted, reused, retried, dict(held_back))


ON_CONFLICT = "ON CONFLICT (campaign_id, contact_id) DO NOTHING"


def _write_claim(conn: Any, cur: Any, rules: Eligibility, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Run claim_batch.sql: first as a plain INSERT in a savepoint, then, only if a concurrent claimant inserted
    one of its contacts first (unique violation: nothing of the attempt is kept), as written, ON CONFLICT DO
    NOTHING leaving that contact to the other claimant.

    Under the campaign's lock no other claimant can insert the campaign's rows, so the first attempt is the one
    that runs; it spares each row the speculative insertion ON CONFLICT costs (measured: about 20 ms of a 10,000
    contact claim).
    """
    query = rules.render("claim_batch")
    text = query.as_string(conn)
    if text.count(ON_CONFLICT) != 1:
        raise RuntimeError(f"claim_batch.sql: the fresh contacts' INSERT must end with {ON_CONFLICT}")
    try:
        with conn.transaction():
            cur.execute(text.replace(ON_CONFLICT, ""), params)
            return cur.fetchall()
    except psycopg.errors.UniqueViolation:
        log.info("A concurrent claimant took some of this claim's contacts first: claiming the rest")
    cur.execute(query, params)
    return cur.fetchall()


def _resume_from(cur: Any, params: dict[str, Any]) -> None:
    """Where the claim resumes: each scanned status value's mark and the late path's window (claim_candidates.sql
    says why no contact is skipped)."""
    cur.execute(load_sql("claim_marks"), params)
    marks = cur.fetchall()
    params["mark_statuses"] = [status for status, _ in marks]
    params["mark_ids"] = [int(after_id) for _, after_id in marks]
    cur.execute(load_sql("claim_window_state"), params)
    since, caught_up, top = cur.fetchone()
    params.update(late_since=since, skips_caught_up=bool(caught_up), window_top=int(top))


@dataclass(frozen=True)
class PendingContact:
    contact_id: int
    genesys_contact_id: str
    e164: str | None  # the number to send, normalized from the contact's row as it is now
    reason: str | None  # why it may not be sent now (compliance.reasons), None if it may
    time_zone: str | None = None  # IANA zone from the configured column or the number
    postal_code: str | None = None
    claimed_e164: str | None = None  # the number the ledger recorded at the claim


def take_segment(conn: Any, *, campaign_id: str, run_id: str, segment_index: int,
                 first_try: bool = False) -> tuple[int, int]:
    """Take a segment's undelivered rows for this try: (its fence, how many rows it now owns).

    A new fence cuts off an earlier try of the segment that may still run. A first try has no earlier try: its
    rows' fence, given by the claim or adoption that put them in this run (which cut off their earlier owners),
    is already its own, and rewriting every row would cost the segment seconds before its first request (250,000
    rows: 12 to 38 s with four segments starting together). Airflow never runs one try twice at once, and a try
    rescheduled while the breaker is open ends before it runs again, keeping its try number. Rows that carry
    several fences (some adopted later) are taken as for any other try.
    """
    if first_try:
        with conn.cursor() as cur:
            cur.execute(load_sql("segment_fences"), {"campaign_id": campaign_id, "run_id": run_id,
                                                     "segment_index": segment_index})
            count, lowest, highest = cur.fetchone()
        conn.commit()
        if count and lowest == highest:
            return int(lowest), int(count)
    fence = next_fence(conn)
    count = run_sql(conn, "take_segment", {"campaign_id": campaign_id, "run_id": run_id,
                                            "segment_index": segment_index, "fence": fence})
    return fence, count


@dataclass(frozen=True)
class InDoubt:
    """A contact whose last request's outcome is unknown; ``settles_in``: seconds until it cannot apply any more."""

    contact_id: int
    genesys_contact_id: str
    settles_in: float


def in_doubt(conn: Any, *, campaign_id: str, run_id: str, segment_index: int, fence: int,
             settle_seconds: float) -> list[InDoubt]:
    """The segment try's contacts in doubt (bounded by the segment's size)."""
    with conn.cursor() as cur:
        cur.execute(load_sql("segment_in_doubt"), {
            "campaign_id": campaign_id, "run_id": run_id, "segment_index": segment_index, "fence": fence,
            "settle_seconds": settle_seconds,
        })
        rows = [InDoubt(int(r[0]), str(r[1]), float(r[2])) for r in cur.fetchall()]
    conn.commit()
    return rows


def iter_segment_pages(
    conn: Any, *, campaign_id: str, run_id: str, segment_index: int, fence: int, page_size: int,
    eligibility: Eligibility | None = None, normalize_max_rows: int = NORMALIZE_MAX_ROWS,
) -> Iterator[list[PendingContact]]:
    """The segment's undelivered contacts that this try owns and that are not in doubt, one keyset page at a
    time (memory bounded by page_size), each checked again for eligibility right before it is sent.

    Each page is a fresh query, so the caller may update and commit between pages. Before each page, the numbers
    of contacts changed since the last walk are normalized (at most ``normalize_max_rows``; more raises
    ComplianceError): a segment streams for minutes, and a do-not-call contact written meanwhile suppresses its
    number through this page's contacts only once it is normalized. The walk's look-back (late commits) is left
    to the task's first walk and the next run's: this one reads only rows changed since the last walk began
    (about 1 ms when none did). The page's own contacts whose row changed are normalized too.
    """
    rules = eligibility or Eligibility(campaign_id=campaign_id)
    query = rules.render("segment_page")
    after = 0
    while True:
        if not refresh_phones(conn, rules.region, max_rows=normalize_max_rows, lookback=timedelta(0)).caught_up:
            raise ComplianceError(
                f"segment {segment_index} of run {run_id}: phone numbers changed faster than they are normalized "
                f"(region {rules.region}); the rest of the segment is not sent, its contacts stay claimed for a retry"
            )
        params = {
            **rules.params(),
            "run_id": run_id,
            "segment_index": segment_index,
            "fence": fence,
            "after_contact_id": after,
            "page_size": page_size,
        }
        with conn.cursor() as cur:
            cur.execute(load_sql("no_jit"))
            cur.execute(query, params)
            page = [PendingContact(*row) for row in cur.fetchall()]
            if any(p.reason == reasons.PHONE_NOT_NORMALIZED for p in page):
                stale = {**params, "through_contact_id": page[-1].contact_id}
                normalize_stale(conn, rules.region, load_sql("segment_stale_phones"), stale)
                cur.execute(query, params)
                page = [PendingContact(*row) for row in cur.fetchall()]
        conn.commit()
        if not page:
            return
        yield page
        after = page[-1].contact_id


def mark(conn: Any, sql_name: str, *, campaign_id: str, fence: int, contact_ids: list[int], **extra: Any) -> int:
    """Update the rows this try owns (mark_dispatched / mark_skipped / mark_failed / mark_in_doubt /
    clear_doubt), commit, and return how many it still owned. One primary-key probe per id (mark_plan.sql)."""
    if not contact_ids:
        return 0
    params = {"campaign_id": campaign_id, "fence": fence, "contact_ids": sorted(set(contact_ids)), **extra}
    count, _ = _marked(conn, sql_name, params)
    return count


def mark_sending(conn: Any, *, campaign_id: str, fence: int, contact_ids: list[int]) -> set[int]:
    """Mark contacts in doubt before their request is sent (committed); return those this try still owns."""
    if not contact_ids:
        return set()
    params = {"campaign_id": campaign_id, "fence": fence, "contact_ids": sorted(set(contact_ids))}
    _, rows = _marked(conn, "mark_sending", params)
    return {int(r[0]) for r in rows}


@cache
def mark_sql(name: str) -> str:
    """A mark's statement (``include/sql/<name>.sql``) with its ``{page_rows}`` line filled in from
    mark_page_rows.sql, the probe every mark shares."""
    page_rows = "\n".join(line for line in load_sql("mark_page_rows").splitlines() if not line.startswith("--"))
    lines = load_sql(name).splitlines()
    if lines.count("{page_rows}") != 1:
        raise RuntimeError(f"{name}.sql: a mark names its rows with one {{page_rows}} line")
    return "\n".join(page_rows if line == "{page_rows}" else line for line in lines) + "\n"


def _marked(conn: Any, sql_name: str, params: dict[str, Any]) -> tuple[int, list[tuple[Any, ...]]]:
    """Run mark_plan.sql, the mark and the COMMIT in one pipelined round trip (three on a loaded machine cost
    a scheduling delay each): the rows the mark updated, and those it returned (RETURNING), read after the commit.

    A mark that fails leaves the transaction aborted, as it would without the pipeline: nothing is committed.
    """
    with conn.cursor() as cur:
        with conn.pipeline():
            cur.execute(load_sql("mark_plan"))
            cur.execute(mark_sql(sql_name), params)
            conn.commit()
        return cur.rowcount, (cur.fetchall() if cur.description else [])


def record_numbers(conn: Any, *, campaign_id: str, fence: int, page: list[PendingContact]) -> int:
    """Record in the ledger the number each contact of ``page`` is sent with, where it changed since the claim."""
    changed = [p for p in page if p.e164 and p.e164 != p.claimed_e164]
    if not changed:
        return 0
    return run_sql(conn, "record_numbers", {
        "campaign_id": campaign_id, "fence": fence,
        "contact_ids": [p.contact_id for p in changed], "numbers": [p.e164 for p in changed],
    })


def genesys_contact(
    pending: PendingContact, e164: str, *, contact_list_id: str, phone_column: str, segment_column: str,
    segment: str, timezone_column: str | None = None, postal_code_column: str | None = None,
) -> dict[str, Any]:
    """The DialerContact body: our stable id (a re-send upserts), the number and the segment column, and the
    time zone / postal code in the list columns the campaign's callable time set reads them from."""
    data = {phone_column: e164, segment_column: segment}
    if timezone_column and pending.time_zone:
        data[timezone_column] = pending.time_zone
    if postal_code_column and pending.postal_code:
        data[postal_code_column] = pending.postal_code
    return {
        "id": pending.genesys_contact_id,
        "contactListId": contact_list_id,
        "data": data,
        "callable": True,
    }


def ledger_summary(conn: Any, *, campaign_id: str, run_id: str) -> dict[str, Any]:
    """Counts of the run's ledger rows by status, skips by reason, and contacts in doubt."""
    with conn.cursor() as cur:
        cur.execute(load_sql("run_ledger_summary"), {"campaign_id": campaign_id, "run_id": run_id})
        rows = cur.fetchall()
    conn.commit()
    by_status: Counter[str] = Counter()
    skip_reasons: Counter[str] = Counter()
    in_doubt_count = 0
    for status, reason, count, doubtful in rows:
        by_status[status] += count
        in_doubt_count += doubtful
        if status == "skipped":
            skip_reasons[reason or "unknown"] += count
    return {
        "claimed": sum(by_status.values()),
        "dispatched": by_status["dispatched"],
        "skipped": by_status["skipped"],
        "failed": by_status["failed"],
        "pending": by_status["claimed"] + by_status["failed"],
        "skip_reasons": dict(skip_reasons),
        "in_doubt": in_doubt_count,
    }
