"""Contacts: claiming a run's batch in the dispatch ledger, validating numbers, building Genesys contacts.

The ledger is the single source of truth for "what went where": a contact is claimed for a campaign once
(primary key), a run re-dispatches only its own undelivered claim, and memory never grows with the
batch: segments are read page by page in keyset order.

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
from datetime import datetime
from typing import Any

import phonenumbers

from genesys_dialer.ledger.sql import load_sql, run_sql

log = logging.getLogger(__name__)

SKIP_MISSING_PHONE = "missing_phone"
SKIP_INVALID_PHONE = "invalid_phone"
SKIP_NO_LONGER_ELIGIBLE = "no_longer_eligible"


def normalize_phone(raw: str | None, region: str) -> tuple[str | None, str | None]:
    """(E.164 number, None) for a valid number, else (None, skip reason). Uses libphonenumber's rules."""
    if raw is None or not raw.strip():
        return None, SKIP_MISSING_PHONE
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None, SKIP_INVALID_PHONE
    if not phonenumbers.is_valid_number(parsed):
        return None, SKIP_INVALID_PHONE
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), None


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


@dataclass(frozen=True)
class ClaimResult:
    segments: list[SegmentDescriptor]
    claimed_now: int
    adopted: int
    reused: bool  # True when the run had claimed before (a cleared, re-run run)

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

    ``lock=False`` skips the campaign's advisory lock: claims stay correct without it (tests prove it with
    concurrent claimants); the lock only keeps concurrent runs' batches full and contiguous.
    """
    params = asdict(request)
    claimed_now = adopted = 0
    with conn.cursor() as cur:
        if lock:
            cur.execute(load_sql("lock_campaign"), params)
        cur.execute(load_sql("run_segments"), params)
        rows = cur.fetchall()
        reused = bool(rows)
        if not reused:
            params["fence"] = next_fence(conn)
            cur.execute(load_sql("adopt_claims"), params)
            adopted = len(cur.fetchall())
            cur.execute(load_sql("claim_batch"), {**params, "offset": adopted,
                                                  "limit": max(request.batch_size - adopted, 0)})
            claimed_now = adopted + int(cur.fetchone()[0])
            cur.execute(load_sql("run_segments"), params)
            rows = cur.fetchall()
    would_skip: dict[int, Counter[str]] = {}
    if dry_run:
        # A server-side cursor streams the (uncommitted) claim's numbers: memory stays flat with the batch.
        with conn.cursor(name="genesys_dialer_preview") as stream:
            stream.itersize = 1000
            stream.execute(load_sql("preview_phones"), params)
            for segment_index, phone in stream:
                _, reason = normalize_phone(phone, request.phone_region)
                if reason:
                    would_skip.setdefault(segment_index, Counter())[reason] += 1
        conn.rollback()
    else:
        conn.commit()
    segments = [
        SegmentDescriptor(
            index=index,
            label=segment_label(request.label_prefix, index),
            contacts=count,
            pending=pending,
            would_skip=dict(would_skip.get(index, {})),
        )
        for index, count, pending in rows
    ]
    return ClaimResult(segments, claimed_now, adopted, reused)


def take_segment(conn: Any, *, campaign_id: str, run_id: str, segment_index: int) -> tuple[int, int]:
    """Take a segment's undelivered rows for this try: (its new fence, how many rows it now owns)."""
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


@dataclass(frozen=True)
class PendingContact:
    contact_id: int
    genesys_contact_id: str
    phone_number: str | None
    eligible: bool


def iter_segment_pages(
    conn: Any, *, campaign_id: str, run_id: str, segment_index: int, fence: int, page_size: int
) -> Iterator[list[PendingContact]]:
    """The segment's undelivered contacts that this try owns and that are not in doubt, one keyset page at a
    time (memory bounded by page_size).

    Each page is a fresh query, so the caller may update and commit between pages.
    """
    after = 0
    while True:
        with conn.cursor() as cur:
            cur.execute(
                load_sql("segment_page"),
                {
                    "campaign_id": campaign_id,
                    "run_id": run_id,
                    "segment_index": segment_index,
                    "fence": fence,
                    "after_contact_id": after,
                    "page_size": page_size,
                },
            )
            page = [PendingContact(*row) for row in cur.fetchall()]
        conn.commit()
        if not page:
            return
        yield page
        after = page[-1].contact_id


def mark(conn: Any, sql_name: str, *, campaign_id: str, fence: int, contact_ids: list[int], **extra: Any) -> int:
    """Update the rows this try owns (mark_dispatched / mark_skipped / mark_failed / mark_in_doubt /
    clear_doubt), commit, and return how many it still owned."""
    if not contact_ids:
        return 0
    return run_sql(conn, sql_name, {"campaign_id": campaign_id, "fence": fence, "contact_ids": contact_ids, **extra})


def mark_sending(conn: Any, *, campaign_id: str, fence: int, contact_ids: list[int]) -> set[int]:
    """Mark contacts in doubt before their request is sent (committed); return those this try still owns."""
    if not contact_ids:
        return set()
    with conn.cursor() as cur:
        cur.execute(load_sql("mark_sending"), {"campaign_id": campaign_id, "fence": fence, "contact_ids": contact_ids})
        owned = {int(r[0]) for r in cur.fetchall()}
    conn.commit()
    return owned


def genesys_contact(
    pending: PendingContact, e164: str, *, contact_list_id: str, phone_column: str, segment_column: str,
    segment: str,
) -> dict[str, Any]:
    """The DialerContact body: our stable id (a re-send upserts), the number and the segment column."""
    return {
        "id": pending.genesys_contact_id,
        "contactListId": contact_list_id,
        "data": {phone_column: e164, segment_column: segment},
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
        "in_doubt": in_doubt_count,
        "skip_reasons": dict(skip_reasons),
    }
