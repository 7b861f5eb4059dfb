"""Numbers normalized once per contact and region (contact_phones), incrementally, on a real PostgreSQL; and the
claim's decisions that rest on them (other regions, a row changed since its normalization, a claim refused)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from support import write_as_of_earlier

from genesys_dialer.compliance.eligibility import Eligibility
from genesys_dialer.compliance.phones import PhoneFacts, describe_phone, refresh_phones
from genesys_dialer.exceptions import ComplianceError
from genesys_dialer.ledger.claims import ClaimRequest, claim_batch, iter_segment_pages, take_segment

HOUR = timedelta(minutes=60)


@pytest.mark.parametrize(
    ("raw", "region", "facts"),
    [
        ("(317) 555-0100", "US", PhoneFacts("+13175550100", None, "fixed_line_or_mobile", "US", "America/New_York")),
        ("+1 317-555-0100", "US", PhoneFacts("+13175550100", None, "fixed_line_or_mobile", "US", "America/New_York")),
        ("  317.555.0100 ", "GB", PhoneFacts(None, "invalid_phone")),
        ("0044 20 7946 0018", "GB", PhoneFacts("+442079460018", None, "fixed_line", "GB", "Europe/London")),
        ("020 7946 0018", "GB", PhoneFacts("+442079460018", None, "fixed_line", "GB", "Europe/London")),
        ("0044 20 7946 0018", "US", PhoneFacts(None, "invalid_phone")),  # the US international prefix is 011
        ("011 44 20 7946 0018", "US", PhoneFacts("+442079460018", None, "fixed_line", "GB", "Europe/London")),
        ("+44 7400 123456", "US", PhoneFacts("+447400123456", None, "mobile", "GB", None)),  # UK mobiles: no zone
        ("+1 800 225 5288", "US", PhoneFacts("+18002255288", None, "toll_free", "US", None)),  # every zone: none
        ("555-CALL-NOW", "US", PhoneFacts(None, "invalid_phone")),
        ("", "US", PhoneFacts(None, "missing_phone")),
        (None, "US", PhoneFacts(None, "missing_phone")),
    ],
)
def test_numbers_in_any_spelling_are_one_e164_number(raw: str | None, region: str, facts: PhoneFacts) -> None:
    assert describe_phone(raw, region) == facts


def _add(db: Any, phones: list[str | None], **columns: Any) -> list[int]:
    ids = []
    for phone in phones:
        ids.append(db.execute(
            "INSERT INTO contacts (phone_number, status, suppression_status, created_at) VALUES (%s, %s, %s, "
            "now() - interval '1 day') RETURNING id",
            [phone, columns.get("status", "active"), columns.get("suppression", "none")]).fetchone()[0])
    db.commit()
    return ids


def _phones(db: Any, region: str = "US") -> dict[int, tuple[str | None, str | None]]:
    rows = db.execute("SELECT contact_id, e164, problem FROM contact_phones WHERE region = %s", [region]).fetchall()
    db.commit()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_normalization_is_incremental_bounded_and_per_region(db: Any, dialer_db: str) -> None:
    ids = _add(db, [f"(317) 555-{i:04d}" for i in range(100, 112)] + ["n/a", None])
    with psycopg.connect(dialer_db) as conn:
        first = refresh_phones(conn, "US", max_rows=9, lookback=HOUR, chunk=4)
        assert (first.scanned, first.normalized, first.caught_up) == (9, 9, False)
        rest = refresh_phones(conn, "US", max_rows=100, lookback=HOUR, chunk=4)
        assert rest.caught_up and rest.normalized == 5  # re-reads the look-back window, parses only what is new
        assert _phones(db) == {**{cid: (f"+1317555{100 + i:04d}", None) for i, cid in enumerate(ids[:12])},
                               ids[12]: (None, "invalid_phone"), ids[13]: (None, "missing_phone")}
        # A changed row (its updated_at moved) is normalized again; nothing else is parsed.
        db.execute("UPDATE contacts SET phone_number = '+44 20 7946 0018', updated_at = now() WHERE id = %s",
                   [ids[0]])
        db.commit()
        again = refresh_phones(conn, "US", max_rows=100, lookback=HOUR)
        assert (again.normalized, again.caught_up) == (1, True)
        assert _phones(db)[ids[0]] == ("+442079460018", None)
        # Another region is its own normalization.
        gb = refresh_phones(conn, "GB", max_rows=100, lookback=HOUR)
        assert gb.normalized == 14 and _phones(db, "GB")[ids[1]] == (None, "invalid_phone")


def test_a_row_committed_late_with_an_older_updated_at_is_found_by_the_look_back(db: Any, dialer_db: str) -> None:
    _add(db, ["(317) 555-0100"])
    with psycopg.connect(dialer_db) as conn:
        assert refresh_phones(conn, "US", max_rows=100, lookback=HOUR).caught_up
        # A transaction that began 10 minutes ago commits now: its row's updated_at is older than the walk.
        (late,), = write_as_of_earlier(db, "INSERT INTO contacts (phone_number, updated_at) VALUES ('(317) 555-0101', "
                                       "now() - interval '10 minutes') RETURNING id")
        assert refresh_phones(conn, "US", max_rows=100, lookback=HOUR).normalized == 1
        assert late in _phones(db)


def test_a_caught_up_walk_does_not_read_old_rows_again(db: Any, dialer_db: str) -> None:
    """A table loaded long ago (one updated_at for every row) is walked once; later walks read only what is
    newer than a look-back before the last complete walk began."""
    ids = _add(db, [f"(317) 555-{i:04d}" for i in range(100, 120)])
    write_as_of_earlier(db, "UPDATE contacts SET updated_at = now() - interval '3 days'")
    with psycopg.connect(dialer_db) as conn:
        assert refresh_phones(conn, "US", max_rows=100, lookback=HOUR).scanned == 20
        assert refresh_phones(conn, "US", max_rows=100, lookback=HOUR).scanned == 0
        db.execute("UPDATE contacts SET phone_number = '(317) 555-0199', updated_at = now() WHERE id = %s", [ids[3]])
        db.commit()
        again = refresh_phones(conn, "US", max_rows=100, lookback=HOUR)
        assert (again.scanned, again.normalized) == (1, 1)


def test_a_walk_over_up_to_date_rows_still_finds_every_stale_one_in_its_window(db: Any, dialer_db: str) -> None:
    """A walk's first pass lets it skip the up-to-date start of its window (phones_first_stale.sql). It must not
    skip a stale row: one whose normalized row is gone from an import that shares one updated_at with rows that
    are up to date, one committed late with an older updated_at than rows already normalized, one changed since."""
    first = _add(db, [f"(317) 555-{i:04d}" for i in range(200, 210)])
    second = _add(db, [f"(317) 555-{i:04d}" for i in range(210, 220)])
    backdate = "UPDATE contacts SET updated_at = now() - make_interval(mins => %s) WHERE id = ANY(%s)"
    write_as_of_earlier(db, backdate, [40, first])
    write_as_of_earlier(db, backdate, [30, second])

    def late_row(phone: str, minutes_ago: int) -> int:
        (row,) = write_as_of_earlier(db, "INSERT INTO contacts (phone_number, updated_at) VALUES (%s, now() - "
                                     "make_interval(mins => %s)) RETURNING id", [phone, minutes_ago])
        return row[0]

    def stale_rows() -> int:
        count = db.execute("SELECT count(*) FROM contacts c LEFT JOIN contact_phones p ON p.contact_id = c.id "
                           "AND p.region = 'US' WHERE p.source_updated_at IS DISTINCT FROM c.updated_at").fetchone()[0]
        db.commit()
        return count

    with psycopg.connect(dialer_db) as conn:
        assert refresh_phones(conn, "US", max_rows=100, lookback=HOUR).normalized == 20
        fresh = refresh_phones(conn, "US", max_rows=100, lookback=HOUR)
        assert (fresh.scanned, fresh.normalized, fresh.caught_up) == (20, 0, True)  # the look-back window

        db.execute("DELETE FROM contact_phones WHERE contact_id = %s", [second[4]])
        db.execute("UPDATE contacts SET phone_number = '(317) 555-0301' WHERE id = %s", [first[2]])  # moves to now
        db.commit()
        late = late_row("(317) 555-0300", 20)
        walk = refresh_phones(conn, "US", max_rows=100, lookback=HOUR)
        # 9 rows of the first import skipped as up to date, then the second import, the late row, the changed one.
        assert (walk.scanned, walk.normalized, walk.caught_up) == (21, 3, True)
        assert stale_rows() == 0

        later = late_row("(317) 555-0302", 25)  # older than the late row, newer than both imports
        again = refresh_phones(conn, "US", max_rows=100, lookback=HOUR)
        assert (again.scanned, again.normalized, again.caught_up) == (22, 1, True)
        assert stale_rows() == 0

    phones = _phones(db)
    assert phones[second[4]] == ("+13175550214", None)
    assert phones[first[2]] == ("+13175550301", None)
    assert phones[late] == ("+13175550300", None)
    assert phones[later] == ("+13175550302", None)


def test_a_first_pass_cut_off_by_the_statement_timeout_leaves_the_walk_to_its_chunks(
    db: Any, dialer_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first pass is one statement over the whole window; with a tight statement_timeout on a large window the
    server cancels it. The walk then reads the window chunk by chunk (short statements) instead of failing. The
    first pass is replaced by one that outlasts the timeout (pg_sleep): a window large enough to do so for real
    would make the chunks' own timing flaky."""
    from genesys_dialer.compliance import phones

    ids = _add(db, ["(317) 555-0400", "(317) 555-0401", None])
    real_sql = phones.load_sql
    monkeypatch.setattr(phones, "load_sql", lambda name: (
        "SELECT 0::bigint, NULL::timestamptz FROM pg_sleep(5)" if name == "phones_first_stale" else real_sql(name)))
    with psycopg.connect(dialer_db) as conn:
        conn.execute("SET statement_timeout = '300ms'")
        conn.commit()
        walk = refresh_phones(conn, "US", max_rows=100, lookback=HOUR)

    assert (walk.scanned, walk.normalized, walk.caught_up) == (3, 3, True)
    assert _phones(db) == {ids[0]: ("+13175550400", None), ids[1]: ("+13175550401", None),
                           ids[2]: (None, "missing_phone")}


def test_updated_at_is_when_the_row_last_changed_here_whatever_the_writer_says(db: Any) -> None:
    """The schema's trigger: a row inserted or changed with an updated_at in the past (a loader copying the CRM's
    own time), in the future, none, or an infinite one gets now(); an UPDATE that changes nothing keeps the
    row's time."""
    rows = {
        "crm_time": "now() - interval '3 days'", "none": "NULL", "infinity": "'infinity'",
        "minus_infinity": "'-infinity'", "now": "now()", "tomorrow": "now() + interval '1 day'",
    }
    ids = {name: db.execute(f"INSERT INTO contacts (phone_number, updated_at) VALUES ('317 555 0100', {value}) "
                            "RETURNING id").fetchone()[0] for name, value in rows.items()}
    stamps = dict(db.execute("SELECT c.id, c.updated_at - now() FROM contacts c").fetchall())
    db.commit()
    assert {name: stamps[cid] for name, cid in ids.items()} == {
        "crm_time": timedelta(0), "none": timedelta(0), "infinity": timedelta(0), "minus_infinity": timedelta(0),
        "now": timedelta(0), "tomorrow": timedelta(0)}

    changed, untouched = ids["crm_time"], ids["now"]
    write_as_of_earlier(db, "UPDATE contacts SET updated_at = now() - interval '2 days' WHERE id = ANY(%s)",
                        [[changed, untouched]])
    before = db.execute("SELECT updated_at FROM contacts WHERE id = %s", [untouched]).fetchone()[0]
    db.execute("UPDATE contacts SET suppression_status = 'do_not_call', updated_at = now() - interval '1 day' "
               "WHERE id = %s", [changed])  # an opt-out synced with the CRM's time of it
    db.execute("UPDATE contacts SET phone_number = phone_number WHERE id = %s", [untouched])  # changes nothing
    stamps = dict(db.execute("SELECT c.id, c.updated_at - now() FROM contacts c").fetchall())
    after = db.execute("SELECT updated_at FROM contacts WHERE id = %s", [untouched]).fetchone()[0]
    db.commit()
    assert stamps[changed] == timedelta(0) and after == before < datetime.now(UTC) - timedelta(days=1)

    # A CRM sync as an upsert that leaves updated_at to the trigger: the unchanged row keeps its time, the one
    # whose flag changed gets now(), whatever time the sync proposed.
    sync = ("INSERT INTO contacts (id, phone_number, suppression_status, updated_at) VALUES (%s, '317 555 0100', "
            "'none', now() - interval '5 days'), (%s, '317 555 0100', 'none', now() - interval '5 days') "
            "ON CONFLICT (id) DO UPDATE SET phone_number = EXCLUDED.phone_number, "
            "suppression_status = EXCLUDED.suppression_status")
    db.execute(sync, [untouched, changed])
    stamps = dict(db.execute("SELECT c.id, c.updated_at - now() FROM contacts c").fetchall())
    after_sync = db.execute("SELECT updated_at FROM contacts WHERE id = %s", [untouched]).fetchone()[0]
    db.commit()
    assert stamps[changed] == timedelta(0) and after_sync == before


def test_a_number_enters_the_dnc_table_now_whatever_date_the_loader_gives_it(db: Any) -> None:
    """dnc_numbers.added_at is what the withdrawal's incremental check follows: an insert with another date (the
    registry's own) gets now(), and a snapshot date refreshed in place changes nothing."""
    db.execute("INSERT INTO dnc_numbers (phone_e164, source, registry_snapshot_date, added_at) VALUES "
               "('+13175550100', 'national_registry', current_date - 20, current_date - 20), "
               "('+13175550101', 'internal', NULL, 'infinity'), ('+13175550102', 'internal', NULL, NULL), "
               "('+13175550103', 'internal', NULL, now() + interval '1 hour')")
    ages = dict(db.execute("SELECT phone_e164, added_at - now() FROM dnc_numbers").fetchall())
    db.commit()
    assert ages == {"+13175550100": timedelta(0), "+13175550101": timedelta(0), "+13175550102": timedelta(0),
                    "+13175550103": timedelta(0)}
    before = db.execute("SELECT added_at FROM dnc_numbers WHERE phone_e164 = '+13175550100'").fetchone()[0]
    db.commit()
    db.execute("UPDATE dnc_numbers SET registry_snapshot_date = current_date WHERE phone_e164 = '+13175550100'")
    db.commit()
    assert db.execute("SELECT added_at FROM dnc_numbers WHERE phone_e164 = '+13175550100'").fetchone()[0] == before
    db.commit()


def test_a_contact_whose_updated_at_is_infinite_stops_the_walk_and_says_which(db: Any, dialer_db: str) -> None:
    """'infinity' is a valid timestamptz but has no place in the walk's (updated_at, id) order. Only a writer that
    bypassed the schema's trigger can leave one: the walk refuses, naming the table, the column and the contact,
    and nothing downstream may claim on numbers left unchecked."""
    ids = _add(db, ["(317) 555-0500"])
    with psycopg.connect(dialer_db) as conn:
        assert refresh_phones(conn, "US", max_rows=100, lookback=HOUR).caught_up
        ((odd,),) = write_as_of_earlier(db, "INSERT INTO contacts (phone_number, updated_at) VALUES "
                                        "('(317) 555-0501', 'infinity') RETURNING id")
        with pytest.raises(ComplianceError, match=rf"contacts\.updated_at of contact {odd} is infinite"):
            refresh_phones(conn, "US", max_rows=100, lookback=HOUR)
        # The walk's lock is released: once the row holds a real time, the next walk normalizes it.
        db.execute("UPDATE contacts SET updated_at = now() WHERE id = %s", [odd])
        db.commit()
        walk = refresh_phones(conn, "US", max_rows=100, lookback=HOUR)
    assert (walk.normalized, walk.caught_up) == (1, True)
    assert _phones(db) == {ids[0]: ("+13175550500", None), odd: ("+13175550501", None)}


def test_a_candidate_whose_updated_at_is_minus_infinity_stops_the_claim_and_says_which(
    db: Any, dialer_db: str
) -> None:
    """'-infinity' sorts before every walk's window: the walk never meets the row, and the claim, normalizing its
    candidates, does. It refuses the same way (it used to fail on psycopg's "timestamp too small"), and claims
    nothing; once the row holds a real time, the claim takes both contacts."""
    _add(db, ["(317) 555-0600"])
    rules = Eligibility(campaign_id="c-inf")
    with psycopg.connect(dialer_db) as conn:
        assert refresh_phones(conn, "US", max_rows=100, lookback=HOUR).caught_up
        ((odd,),) = write_as_of_earlier(
            db, "INSERT INTO contacts (phone_number, status, suppression_status, created_at, updated_at) VALUES "
                "('(317) 555-0601', 'active', 'none', now() - interval '1 day', '-infinity') RETURNING id")
        assert refresh_phones(conn, "US", max_rows=100, lookback=HOUR).caught_up
        with pytest.raises(ComplianceError, match=rf"contacts\.updated_at of contact {odd} is infinite"):
            claim_batch(conn, _request("inf-1", rules), dry_run=False)
        conn.rollback()
        assert _reasons(db, "inf-1") == {}
        db.execute("UPDATE contacts SET updated_at = now() WHERE id = %s", [odd])
        db.commit()
        assert refresh_phones(conn, "US", max_rows=100, lookback=HOUR).normalized == 1
        claimed = claim_batch(conn, _request("inf-2", rules), dry_run=False)
    assert claimed.contacts == 2 and _reasons(db, "inf-2")[odd] is None

    # Made infinite after its claim: the send-time check, normalizing the segment's changed rows, refuses too.
    write_as_of_earlier(db, "UPDATE contacts SET updated_at = '-infinity' WHERE id = %s", [odd])
    with psycopg.connect(dialer_db) as conn:
        fence, _ = take_segment(conn, campaign_id="c-inf", run_id="inf-2", segment_index=0)
        pages = iter_segment_pages(conn, campaign_id="c-inf", run_id="inf-2", segment_index=0, fence=fence,
                                   page_size=10, eligibility=rules)
        with pytest.raises(ComplianceError, match=rf"contacts\.updated_at of contact {odd} is infinite"):
            next(pages)


def test_flags_padded_with_any_unicode_space_or_invisible_character_still_count(db: Any, dialer_db: str) -> None:
    """A do-not-call flag padded with an ideographic or typographic space, a zero-width space or a byte-order mark
    (what exports and copy-paste leave behind) is a do-not-call flag: SQL and the config's values trim the same
    set, every character of it."""
    from genesys_dialer.config import FLAG_PADDING, normalize_value

    assert {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()} <= set(FLAG_PADDING)
    spellings = [f"{pad}Do_Not_Call{pad}" for pad in FLAG_PADDING]
    in_sql = db.execute("SELECT array_agg(genesys_dialer_norm(v) ORDER BY n) FROM unnest(%s::text[]) "
                        "WITH ORDINALITY AS u(v, n)", [spellings]).fetchone()[0]
    db.commit()
    assert in_sql == [normalize_value(v) for v in spellings] == ["do_not_call"] * len(FLAG_PADDING)

    ids = _add(db, ["(317) 555-0700"], suppression="\u3000DO_NOT_CALL")  # suppressed
    ids += _add(db, ["+1 317 555 0700"])  # its number: suppressed through the other contact
    ids += _add(db, ["(317) 555-0701"], suppression="\ufeffdo_not_call\u200b")  # suppressed
    ids += _add(db, ["(317) 555-0702"], status="\u2003Active\u00a0")  # callable
    ids += _add(db, ["(317) 555-0703"], status="\u202fInactive")  # not in the audience: never claimed
    rules = Eligibility(campaign_id="c-pad", suppression_values=("\u2003DO_NOT_CALL",))
    with psycopg.connect(dialer_db) as conn:
        assert refresh_phones(conn, "US", max_rows=100, lookback=HOUR).caught_up
        claim_batch(conn, _request("pad-1", rules), dry_run=False)
    assert _reasons(db, "pad-1") == {ids[0]: "suppressed", ids[1]: "suppressed_number", ids[2]: "suppressed",
                                     ids[3]: None}


def test_a_suppression_flag_written_with_other_separators_still_suppresses(db: Any, dialer_db: str) -> None:
    """'Do Not Call', 'do-not-call', '(DO_NOT_CALL!)' or a zero-width space inside the value: a CRM or a hand-made
    export writes the flag its own way, and each is the configured do_not_call. SQL and the config's values drop
    the same characters, every one of them; a value that only looks alike ('do_not_call_back') does not
    suppress, and neither does 'none'."""
    from genesys_dialer.config import FLAG_PADDING, FLAG_SEPARATORS, flag_key

    spellings = [f"do{c}NOT{c}call" for c in FLAG_PADDING + FLAG_SEPARATORS]
    in_sql = db.execute("SELECT array_agg(genesys_dialer_flag_key(v) ORDER BY n) FROM unnest(%s::text[]) "
                        "WITH ORDINALITY AS u(v, n)", [spellings]).fetchone()[0]
    db.commit()
    assert in_sql == [flag_key(v) for v in spellings] == ["donotcall"] * len(spellings)

    ids = _add(db, ["(317) 555-0800"], suppression="Do Not Call")
    ids += _add(db, ["(317) 555-0801"], suppression="do-not-call")
    ids += _add(db, ["(317) 555-0802"], suppression=" DO.NOT.CALL")
    ids += _add(db, ["(317) 555-0803"], suppression="do\u200bnot\u200bcall")
    ids += _add(db, ["(317) 555-0804"], suppression="Do\u2013Not\u2013Call", status="closed")  # inactive
    ids += _add(db, ["+1 317 555 0804"])  # its number: suppressed through the inactive contact above
    ids += _add(db, ["(317) 555-0805"], suppression="OPTED OUT")  # a configured value written another way
    ids += _add(db, ["(317) 555-0806"], suppression="do_not_call_back")
    ids += _add(db, ["(317) 555-0807"], suppression="none")
    ids += _add(db, ["(317) 555-0808"], suppression="(DO_NOT_CALL!)")
    rules = Eligibility(campaign_id="c-sep", suppression_values=("do_not_call", "opted-out"))
    with psycopg.connect(dialer_db) as conn:
        assert refresh_phones(conn, "US", max_rows=100, lookback=HOUR).caught_up
        claim_batch(conn, _request("sep-1", rules), dry_run=False)
    assert _reasons(db, "sep-1") == {
        ids[0]: "suppressed", ids[1]: "suppressed", ids[2]: "suppressed", ids[3]: "suppressed",
        ids[5]: "suppressed_number", ids[6]: "suppressed", ids[7]: None, ids[8]: None, ids[9]: "suppressed"}


def test_the_reason_vocabulary_matches_the_sql() -> None:
    """The reasons the SQL can write are the documented vocabulary; opt-out reasons are what withdraws."""
    import re

    from genesys_dialer.compliance import reasons
    from genesys_dialer.queries import load_sql

    def written(name: str) -> set[str]:
        return set(re.findall(r"THEN '([a-z_]+)'", load_sql(name)))

    assert written("opt_out_reason") == set(reasons.OPT_OUT_REASONS)
    assert written("opt_out_reason") | written("withdraw_reason") == set(reasons.WITHDRAWAL_REASONS)
    claim_reasons = written("opt_out_reason") | written("hold_reason") | {"missing_phone", "invalid_phone"}
    assert claim_reasons | {"duplicate_number"} <= reasons.ALL_REASONS
    assert reasons.FINAL_REASONS.isdisjoint(reasons.DATA_REASONS)


def _request(run_id: str, eligibility: Eligibility, batch: int = 50) -> ClaimRequest:
    return ClaimRequest(
        campaign_id=eligibility.campaign_id, campaign_key="k", run_id=run_id, batch_size=batch, segment_size=20,
        created_before=datetime.now(UTC), lease_minutes=60, contact_id_prefix="", phone_region=eligibility.region,
        label_prefix="20260101T0000", eligibility=eligibility,
    )


def _reasons(db: Any, run_id: str) -> dict[int, str | None]:
    rows = db.execute("SELECT contact_id, skip_reason FROM dispatch_ledger WHERE run_id = %s", [run_id]).fetchall()
    db.commit()
    return dict(rows)


def test_a_uk_campaign_sees_one_number_in_its_national_and_international_spellings(db: Any, dialer_db: str) -> None:
    ids = _add(db, ["020 7946 0018", "0044 20 7946 0018", "+44 (0)20 7946 0019", "07400 123456"])
    _add(db, ["+44 20 7946 0019"], suppression="Do_Not_Call ")
    rules = Eligibility(campaign_id="uk", region="GB")
    with psycopg.connect(dialer_db) as conn:
        assert refresh_phones(conn, "GB", max_rows=100, lookback=HOUR).caught_up
        result = claim_batch(conn, _request("uk-1", rules), dry_run=False)
    assert _reasons(db, "uk-1") == {ids[0]: None, ids[1]: "duplicate_number", ids[2]: "suppressed_number",
                                   ids[3]: None, ids[3] + 1: "suppressed"}
    assert result.contacts == 2 and result.held_back == {
        "duplicate_number": 1, "suppressed_number": 1, "suppressed": 1}


def test_the_claim_normalizes_a_row_changed_since_the_refresh(db: Any, dialer_db: str) -> None:
    """Numbers are checked as they are now, not as the last refresh saw them: a contact's row that changed (or
    arrived) after the refresh is normalized in the claim's own transaction."""
    ids = _add(db, ["(317) 555-0100", "(317) 555-0101"])
    rules = Eligibility(campaign_id="c-now")
    with psycopg.connect(dialer_db) as conn:
        assert refresh_phones(conn, "US", max_rows=100, lookback=HOUR).caught_up
        db.execute("UPDATE contacts SET phone_number = '(317) 555-0199', updated_at = now() WHERE id = %s", [ids[1]])
        late = _add(db, ["(317) 555-0199"], suppression="do_not_call")
        claim_batch(conn, _request("now-1", rules), dry_run=False)
    assert _reasons(db, "now-1") == {ids[0]: None, ids[1]: "suppressed_number", late[0]: "suppressed"}


def test_a_claim_is_refused_while_numbers_are_not_all_normalized(db: Any, emulator: Any, airflow_db: str) -> None:
    """Suppression by number on a half-normalized table would miss numbers: the run claims nothing, says why,
    and is red; the next one (the rest normalized) claims."""
    from genesys_dialer.config import CampaignConfig
    from genesys_dialer.dags import tasks
    from genesys_dialer.dags.run import RunInfo, RunMode

    _add(db, [f"(317) 555-{i:04d}" for i in range(100, 130)])
    campaign = CampaignConfig(key="slow", campaign_id="c-slow", normalize_max_rows_per_run=10)
    now = datetime.now(UTC)
    info = RunInfo(run_id="slow-1", run_type="manual", requested="live", batch_size=20, data_interval_start=now,
                   data_interval_end=now, started_at=now)
    live = RunMode(dry_run=False, reason="dry_run=live was asked for")
    segments, claim = tasks.fetch_contact_batch(campaign, info, live)
    assert segments == [] and claim["contacts"] == 0
    assert "not all normalized" in claim["blocked"][0] and "genesys-dialer normalize" in claim["blocked"][0]
    assert db.execute("SELECT count(*) FROM dispatch_ledger").fetchone()[0] == 0
    db.commit()
    report = tasks.summarize(campaign, info, resolved={"contact_list_id": "x"}, claim=claim, segments=[],
                             segment_results=[], ratio=None, pacing_result=None, withdrawal_result={})
    assert report.outcome == "failed" and any("claimed nothing" in w for w in report.warnings)
    tasks.fetch_contact_batch(campaign, RunInfo(**{**info.__dict__, "run_id": "slow-2"}), live)  # scans 10 more
    segments, claim = tasks.fetch_contact_batch(campaign, RunInfo(**{**info.__dict__, "run_id": "slow-3"}), live)
    assert claim["blocked"] == [] and claim["contacts"] == 20
