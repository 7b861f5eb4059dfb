"""Phone numbers normalized once per contact and region, in PostgreSQL beside the user's contacts table.

``contact_phones`` holds, for each contact and default region, the E.164 form (or why there is none), the
number's type, region and time zone as libphonenumber sees them, and the contacts row's ``updated_at`` it was
computed from. The claim and the send-time check compare numbers there, in SQL with an index, so a number
written ``(317) 555-0100`` and ``+1 317-555-0100`` is one number, whichever contact carries it.

The table is kept current incrementally: a walk of ``contacts`` in ``(updated_at, id)`` order, in bounded chunks,
parsing only rows whose ``updated_at`` moved; ``contact_phones_progress`` records where it stands per region, so
a walk interrupted by its budget (or a killed task) resumes where it stopped, and one that caught up starts
again a look-back before the time the last complete walk started (rows committed late by long transactions
carry an older ``updated_at``; transactions are assumed to commit within the look-back). Suppression by
number is only sound once every contact is normalized, so a claim waits until the walk has caught up.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
import psycopg
from phonenumbers import timezone as phone_timezones

from genesys_dialer.compliance import reasons
from genesys_dialer.exceptions import ComplianceError
from genesys_dialer.queries import load_sql

log = logging.getLogger(__name__)

CHUNK_ROWS = 5000
# libphonenumber's number types that may be a mobile phone: consent rules for mobiles apply to them. US and
# Canadian numbers are FIXED_LINE_OR_MOBILE (the numbering plan does not tell), so they count.
MAYBE_MOBILE_TYPES = ("mobile", "fixed_line_or_mobile", "personal_number", "pager", "unknown")
_UNKNOWN_ZONE = "Etc/Unknown"


@dataclass(frozen=True)
class PhoneFacts:
    """What libphonenumber says about one raw number, for one default region."""

    e164: str | None
    problem: str | None  # missing_phone / invalid_phone, when e164 is None
    number_type: str | None = None  # "fixed_line_or_mobile", "mobile", ...
    number_region: str | None = None  # the region the number belongs to ("US", "GB")
    time_zone: str | None = None  # IANA zone, when the number maps to exactly one


def describe_phone(raw: str | None, region: str) -> PhoneFacts:
    """Parse ``raw`` with ``region`` as the default for numbers written without ``+country``."""
    if raw is None or not raw.strip():
        return PhoneFacts(None, reasons.MISSING_PHONE)
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return PhoneFacts(None, reasons.INVALID_PHONE)
    if not phonenumbers.is_valid_number(parsed):
        return PhoneFacts(None, reasons.INVALID_PHONE)
    # A number may map to several zones (a toll-free number to every zone of its plan): then it has none of
    # its own, and the time zone comes from a column or a postal code, or the contact is held back.
    zones = [z for z in phone_timezones.time_zones_for_number(parsed) if z != _UNKNOWN_ZONE]
    return PhoneFacts(
        e164=phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164),
        problem=None,
        number_type=phonenumbers.PhoneNumberType.to_string(phonenumbers.number_type(parsed)).lower(),
        number_region=phonenumbers.region_code_for_number(parsed),
        time_zone=zones[0] if len(zones) == 1 else None,
    )


@dataclass(frozen=True)
class RefreshResult:
    scanned: int  # contacts rows looked at
    normalized: int  # rows (re)parsed and written
    caught_up: bool  # every row changed before the refresh started is normalized
    seconds: float


def _upsert(conn: Any, region: str, rows: list[tuple[int, str | None, datetime]]) -> int:
    """Normalize ``(contact_id, phone_number, updated_at)`` rows and write them; no commit."""
    if not rows:
        return 0
    rows = sorted(rows)  # one lock order for concurrent writers of overlapping rows
    facts = [describe_phone(raw, region) for _, raw, _ in rows]
    params = {
        "region": region,
        "contact_ids": [r[0] for r in rows],
        "e164": [f.e164 for f in facts],
        "problems": [f.problem for f in facts],
        "number_types": [f.number_type for f in facts],
        "number_regions": [f.number_region for f in facts],
        "time_zones": [f.time_zone for f in facts],
        "source_updated_at": [r[2] for r in rows],
    }
    with conn.cursor() as cur:
        cur.execute(load_sql("phones_upsert"), params)
    return len(rows)


def refresh_phones(
    conn: Any, region: str, *, max_rows: int, lookback: timedelta, chunk: int = CHUNK_ROWS
) -> RefreshResult:
    """Bring ``contact_phones`` for ``region`` up to date with ``contacts``, parsing at most ``max_rows`` numbers.

    Walks ``contacts`` in ``(updated_at, id)`` order from where the last walk stopped (or, when it had caught up,
    from ``lookback`` before that walk started), a chunk per transaction that also records the progress,
    so an interrupted walk loses nothing. A first pass over that window in one statement finds where its first
    stale row is: a window of up-to-date rows (every row, in the hour after an import) is caught up without
    reading it out chunk by chunk, and the chunks start at the first stale row's ``updated_at``. Holds a session
    advisory lock per region for the walk.
    """
    started = time.monotonic()
    scanned = normalized = 0
    caught_up = False
    params = {"region": region}
    with conn.cursor() as cur:
        cur.execute(load_sql("phones_lock"), params)
        try:
            cur.execute(load_sql("phones_progress"), params)
            resume_at, resume_id, was_caught_up, last_walk_started, walk_started = cur.fetchone()
            conn.commit()
            if resume_at is None:
                after_at, after_id = "-infinity", 0
            elif was_caught_up:
                # The last walk saw every row committed when it started. A row it missed was committed later by a
                # transaction that began earlier (updated_at is its start): no earlier than ``lookback`` before.
                after_at, after_id = last_walk_started - lookback, 0
            else:
                after_at, after_id = resume_at, resume_id  # an interrupted walk resumes where it stopped
            after_at, after_id, scanned, caught_up = _first_pass(conn, cur, region, after_at, after_id)
            if caught_up:  # every row of the window is up to date: nothing to read out chunk by chunk
                _record_progress(cur, region, after_at, after_id, caught_up=True, walk_started=walk_started)
            conn.commit()
            walked = 0  # rows read chunk by chunk: what max_rows bounds
            while not caught_up and normalized < max_rows and walked < max_rows * 10:
                cur.execute(load_sql("phones_changed"), {
                    "region": region, "after_updated_at": after_at, "after_id": after_id, "limit": chunk})
                page = cur.fetchall()
                stale: list[tuple[int, str | None, datetime]] = []
                taken = 0
                for cid, raw, updated, is_stale in page:
                    if is_stale:
                        if normalized + len(stale) >= max_rows:
                            break
                        stale.append((cid, raw, updated))
                    taken += 1
                caught_up = taken == len(page) < chunk
                normalized += _upsert(conn, region, stale)
                scanned += taken
                walked += taken
                if taken:
                    after_id, after_at = page[taken - 1][0], page[taken - 1][2]
                if taken or caught_up:
                    _record_progress(cur, region, after_at, after_id, caught_up=caught_up, walk_started=walk_started)
                conn.commit()
        finally:
            conn.rollback()
            cur.execute(load_sql("phones_unlock"), params)
            conn.commit()
    result = RefreshResult(scanned, normalized, caught_up, time.monotonic() - started)
    if normalized or not caught_up:
        log.info(
            "Phone numbers (region %s): %d contacts rows scanned, %d normalized in %.1f s%s",
            region, scanned, normalized, result.seconds, "" if caught_up else "; NOT caught up yet",
        )
    return result


def _first_pass(
    conn: Any, cur: Any, region: str, after_at: datetime | str, after_id: int
) -> tuple[datetime | str, int, int, bool]:
    """Where the walk's chunks start: ``(after_at, after_id, rows found up to date before it, caught_up)``.

    phones_first_stale.sql checks the whole window in one statement. No stale row: caught up where the cursor is.
    Else the chunks start just before the first stale row's updated_at, all rows of that updated_at included (a
    stale row among others of one import is not passed), unless that is the cursor's own. A first pass cut off
    (a tight statement_timeout on a large window) leaves the cursor as it is: the chunks, short statements each,
    read the whole window, as they always could, instead of the task failing.
    """
    cursor = {"region": region, "after_updated_at": after_at, "after_id": after_id}
    try:
        cur.execute(load_sql("phones_first_stale"), cursor)
        window_rows, first_stale_at, unordered_id = cur.fetchone()
    except psycopg.errors.QueryCanceled as err:
        conn.rollback()  # the walk's advisory lock is the session's: it is kept
        log.warning("Phone numbers (region %s): the first pass over the walk's window was cancelled (%s); reading "
                    "the window chunk by chunk instead", region, str(err).strip())
        return after_at, after_id, 0, False
    if unordered_id is not None:
        raise infinite_updated_at(unordered_id)
    if first_stale_at is None:
        return after_at, after_id, int(window_rows), True
    start_at = first_stale_at - timedelta(microseconds=1)
    if after_at != "-infinity" and (start_at, 0) <= (after_at, after_id):
        return after_at, after_id, 0, False
    cur.execute(load_sql("phones_window_before"), {**cursor, "first_stale_at": first_stale_at})
    return start_at, 0, int(cur.fetchone()[0]), False


def _record_progress(
    cur: Any, region: str, after_at: datetime | str, after_id: int, *, caught_up: bool, walk_started: datetime
) -> None:
    cur.execute(load_sql("phones_record_progress"), {
        "region": region, "resume_updated_at": after_at, "resume_id": after_id, "caught_up": caught_up,
        "walk_started_at": walk_started})


def normalize_stale(conn: Any, region: str, query: Any, params: dict[str, Any]) -> int:
    """Normalize the rows ``query`` returns as ``(contact_id, phone_number, updated_at)``; no commit.

    For the few rows a claim or a segment finds stale (changed since the last refresh): they are fixed in the
    same transaction that then classifies them.
    """
    with conn.cursor() as cur:
        cur.execute(query, params)
        rows = cur.fetchall()
    # The query returns NULL for an infinite updated_at (Python holds no such time; only a writer that bypassed
    # the schema's trigger can leave one): refused, as the walk refuses it.
    unordered = [cid for cid, _, updated in rows if updated is None]
    if unordered:
        raise infinite_updated_at(min(unordered))
    return _upsert(conn, region, rows)


def infinite_updated_at(contact_id: int) -> ComplianceError:
    """The error for a contacts row whose updated_at is 'infinity' or '-infinity'."""
    return ComplianceError(
        f"contacts.updated_at of contact {contact_id} is infinite: phone numbers are normalized in updated_at "
        "order, and this row has no place in it. Nothing is claimed or sent until it holds a real time (the "
        "time the row last changed, or now())."
    )
