"""A ledger mark probes each id by its primary key whatever the statistics say (include/sql/mark_plan.sql).

A segment marks every page of contacts twice (``sending`` before its request, ``dispatched`` after): a plan that
scans the campaign's ledger rows once per id turns a 20 ms mark into seconds and the feed into a trickle. Each
statistics state the ledger goes through in real life is checked: never analyzed (a new campaign's first claim),
analyzed while still empty, and analyzed fresh. The plan is read from PostgreSQL's own EXPLAIN, and the work a
mark did from its buffer counts, so no timing can flake.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from support import SERVER_URL, _admin_execute, _with_database

from genesys_dialer.ledger import claims
from genesys_dialer.ledger.schema import apply_schema
from genesys_dialer.queries import load_sql

CAMPAIGN, OTHER = "c-marks", "c-other"
SEGMENT = 10_000  # the campaign's claimed rows in the segment being sent
FENCE = 7
PAGE = 1_000
# (SQL, extra parameters, the status the page's rows are in before it, as the segment's code sequence has them)
MARKS = {
    "mark_sending": ({}, None),
    "mark_dispatched": ({}, "sending"),
    "mark_failed": ({"error": "HTTP 503"}, "sending"),
    "mark_in_doubt": ({"error": "timeout"}, "sending"),
    "clear_doubt": ({}, "sending"),
    "mark_skipped": ({"reason": "suppressed"}, None),
}


def _fill(conn: Any) -> None:
    """The campaign's segment of claimed rows, and as many rows of another campaign."""
    for campaign, fence in ((CAMPAIGN, FENCE), (OTHER, 1)):
        conn.execute(
            """
            INSERT INTO dispatch_ledger (campaign_id, contact_id, genesys_contact_id, campaign_key, run_id,
                                         segment_index, status, fence)
            SELECT %s, g, 'g' || g, 'k', 'run-1', 0, 'claimed', %s FROM generate_series(1, %s) AS g
            """,
            [campaign, fence, SEGMENT],
        )


@pytest.fixture(params=["never analyzed", "analyzed empty", "analyzed fresh"])
def ledger(request: pytest.FixtureRequest) -> Iterator[psycopg.Connection]:
    """A database of its own, so that its statistics are exactly the state named."""
    name = f"gd_test_marks_{request.param.replace(' ', '_')}"
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin_execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(_with_database(SERVER_URL, name)) as conn:
            apply_schema(conn)
            conn.execute("ALTER TABLE dispatch_ledger SET (autovacuum_enabled = false)")  # keep the state named
            if request.param == "analyzed empty":
                conn.execute("ANALYZE dispatch_ledger")
            _fill(conn)
            if request.param == "analyzed fresh":
                conn.execute("ANALYZE dispatch_ledger")
            conn.commit()
            yield conn
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _page() -> list[int]:
    return list(range(SEGMENT - PAGE + 1, SEGMENT + 1))  # the segment's last page: the farthest from its start


def _explain(conn: Any, name: str, extra: dict[str, Any], *, analyze: bool) -> dict[str, Any]:
    params = {"campaign_id": CAMPAIGN, "fence": FENCE, "contact_ids": _page(), **extra}
    with conn.cursor() as cur:
        cur.execute(load_sql("mark_plan"))
        options = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
        cur.execute(f"EXPLAIN ({options}) {claims.mark_sql(name)}", params)
        (raw,) = cur.fetchone()
    conn.rollback()
    return (raw if isinstance(raw, list) else json.loads(raw))[0]


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def _prepare(conn: Any, before: str | None) -> None:
    if before == "sending":
        owned = claims.mark_sending(conn, campaign_id=CAMPAIGN, fence=FENCE, contact_ids=_page())
        assert len(owned) == PAGE


@pytest.mark.parametrize("name", sorted(MARKS))
def test_a_mark_reads_only_its_page_rows_by_key(ledger: Any, name: str) -> None:
    extra, before = MARKS[name]
    _prepare(ledger, before)
    plan = _explain(ledger, name, extra, analyze=True)
    ledger_nodes = [n for n in _nodes(plan["Plan"]) if n.get("Relation Name") == "dispatch_ledger"]
    kinds = sorted((n["Node Type"], n.get("Index Name")) for n in ledger_nodes)
    # The Update node itself, one primary-key probe and one TID fetch per id: never a scan of the ledger.
    assert kinds == [("Index Scan", "dispatch_ledger_pkey"), ("ModifyTable", None), ("Tid Scan", None)], kinds
    probe = next(n for n in ledger_nodes if n["Node Type"] == "Index Scan")
    assert "contact_id = u.contact_id" in probe["Index Cond"], probe["Index Cond"]
    assert probe["Actual Loops"] == PAGE and probe["Actual Rows"] == 1
    # The page's rows and their index entries, not the segment's 10,000 or the ledger's 20,000 rows.
    touched = plan["Plan"]["Shared Hit Blocks"] + plan["Plan"]["Shared Read Blocks"]
    assert touched < 25 * PAGE, touched


@pytest.mark.parametrize("name", sorted(MARKS))
def test_a_mark_updates_the_page_rows_this_try_owns_and_no_other(ledger: Any, name: str) -> None:
    extra, before = MARKS[name]
    _prepare(ledger, before)
    page = _page()
    # Two rows of the page were taken by a newer try (another fence); one was already delivered.
    ledger.execute("UPDATE dispatch_ledger SET fence = %s WHERE campaign_id = %s AND contact_id = ANY(%s)",
                   [FENCE + 1, CAMPAIGN, page[:2]])
    ledger.execute("UPDATE dispatch_ledger SET status = 'dispatched' WHERE campaign_id = %s AND contact_id = %s",
                   [CAMPAIGN, page[2]])
    ledger.commit()
    if name == "mark_sending":
        marked = len(claims.mark_sending(ledger, campaign_id=CAMPAIGN, fence=FENCE, contact_ids=page))
    else:
        marked = claims.mark(ledger, name, campaign_id=CAMPAIGN, fence=FENCE, contact_ids=page, **extra)
    assert marked == PAGE - 3
    changed = ledger.execute(
        "SELECT campaign_id, count(*) FROM dispatch_ledger WHERE updated_at = (SELECT max(updated_at) FROM "
        "dispatch_ledger) GROUP BY campaign_id").fetchall()
    assert changed == [(CAMPAIGN, PAGE - 3)]
