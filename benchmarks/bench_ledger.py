"""Benchmark the claim and the marks at 1M and 10M rows on a real PostgreSQL (issue 12's goals: claim 10k contacts
in < 100 ms from a 10M-row contacts table with a 10M-row ledger; mark 1,000 contacts in < 50 ms whatever the
statistics).

Run: ``.venv/bin/python benchmarks/bench_ledger.py [--sizes 1000000,10000000] [--batch 10000]
[--server postgresql://postgres@127.0.0.1:5432/postgres]`` (part of ``make bench``; 9 to 15 minutes on 2 busy
cores, most of it loading).

It creates ``gd_bench_ledger_<pid>`` (dropped at the end) with the project's schema and grows it to each size in
SQL: contacts (8 % inactive, every 20th status spelled ' Active'), the numbers of those not yet claimed already
normalized, and a ledger of the same size, most of it the campaign's history (every active contact up to 90 % of
the ids: dispatched, 3 % skipped, the last 60,000 claimed and not yet sent) and the rest another campaign's. The
campaign's marks and window are where its earlier claims would have left them. At each size it prints:

* the claim of ``--batch`` contacts: the whole ``claim_batch`` (adoption, candidates, eligibility, the ledger
  writes, the commit) as a run makes it (real: each run claims the next contacts and commits; the issue's
  figure) and as a dry run (rolled back, so every run computes the same contacts), where the real claim's time
  goes (median per statement, the rest: the commit and Python), the candidate selection alone, and the candidate
  selection of the SQL this replaced (the baseline: it rescans what the campaign claimed). The real claims' rows
  are deleted afterwards, and the marks and window put back;
* marking 1,000 contacts dispatched, with statistics taken when the ledger was empty or 10 times smaller
  ("stale") and after ANALYZE ("fresh"), with this SQL and the one it replaced (ids bound as a Python list);
* the plans (EXPLAIN ANALYZE) of the candidate selection and of a mark: the indexes they use.

Figures are medians of ``--runs`` runs; ratios are against the goals and against the baseline in the same run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import psycopg

from genesys_dialer.compliance.eligibility import Eligibility
from genesys_dialer.ledger import claims
from genesys_dialer.ledger.claims import ClaimRequest, claim_batch
from genesys_dialer.ledger.schema import apply_schema
from genesys_dialer.queries import load_sql

CAMPAIGN = "bench"
REAL_RUN_PREFIX = "bench-real-"
CLAIM_GOAL_MS = 100.0
MARK_GOAL_MS = 50.0
PENDING = 60_000  # the campaign's claimed, unsent rows (what the marks are timed on)
PENDING_FENCE = 7

# The tables' own indexes are dropped during a load and rebuilt after it by applying the schema again (it creates
# what is missing): much faster than maintaining them row by row.
BULK_TABLES = ("contacts", "contact_phones", "dispatch_ledger")

GROW_CONTACTS = """
INSERT INTO contacts (id, phone_number, status, suppression_status, created_at, updated_at)
SELECT g,
       '+1' || (ARRAY['212', '312', '415', '617', '713', '206', '305', '404', '503', '702'])[1 + (g / 8000000) %% 10]
            || (200 + (g / 10000) %% 800)::text || lpad((g %% 10000)::text, 4, '0'),
       CASE WHEN g %% 100 < 8 THEN 'inactive' WHEN g %% 20 = 9 THEN ' Active' ELSE 'active' END,
       'none', now() - interval '3 days', now() - interval '2 days'
FROM generate_series(%(start)s::bigint, %(stop)s::bigint) AS g
"""
GROW_PHONES = """
INSERT INTO contact_phones (contact_id, region, e164, number_type, number_region, time_zone, source_updated_at)
SELECT c.id, 'US', c.phone_number, 'FIXED_LINE_OR_MOBILE', 'US', 'America/New_York', c.updated_at
FROM contacts c WHERE c.id BETWEEN %(start)s::bigint AND %(stop)s::bigint
"""
# The campaign's history: every active contact with an id up to 90 % of the size (3 % of them skipped for a data
# reason, recorded after the contact's last change, so not retryable), and another campaign's rows to the size.
GROW_LEDGER = """
INSERT INTO dispatch_ledger (campaign_id, contact_id, genesys_contact_id, campaign_key, run_id, segment_index,
                             status, skip_reason, phone_e164, claimed_at, dispatched_at, updated_at, fence)
SELECT %(campaign)s, c.id, c.id::text, 'bench', 'history', 0,
       CASE WHEN c.id %% 100 BETWEEN 10 AND 12 THEN 'skipped' ELSE 'dispatched' END,
       CASE WHEN c.id %% 100 BETWEEN 10 AND 12 THEN 'unknown_timezone' END,
       c.phone_number, now() - interval '1 day', now() - interval '1 day', now() - interval '1 day', 1
FROM contacts c
WHERE c.id BETWEEN %(start)s::bigint AND %(stop)s::bigint AND genesys_dialer_norm(c.status) = 'active'
"""
GROW_OTHER = """
INSERT INTO dispatch_ledger (campaign_id, contact_id, genesys_contact_id, campaign_key, run_id, segment_index,
                             status, phone_e164, claimed_at, dispatched_at, fence)
SELECT 'other', g, g::text, 'other', 'history', 0, 'dispatched', NULL, now() - interval '1 day',
       now() - interval '1 day', 1
FROM generate_series(%(start)s::bigint, %(stop)s::bigint) AS g
"""
PENDING_ROWS = """
UPDATE dispatch_ledger SET status = 'claimed', dispatched_at = NULL, run_id = 'pending', fence = %(fence)s,
                           claimed_at = now(), skip_reason = NULL
WHERE campaign_id = %(campaign)s AND contact_id IN (
    SELECT contact_id FROM dispatch_ledger WHERE campaign_id = %(campaign)s ORDER BY contact_id DESC LIMIT %(n)s
)
"""
# Where the campaign's earlier claims left its marks and window (claim_marks_advance.sql, claim_window_advance.sql).
RESUME = """
INSERT INTO claim_marks (campaign_id, status, contact_id)
SELECT %(campaign)s, 'active', max(contact_id) FROM dispatch_ledger WHERE campaign_id = %(campaign)s
ON CONFLICT (campaign_id, status) DO UPDATE SET contact_id = excluded.contact_id;
"""
WINDOW = """
INSERT INTO claim_windows (campaign_id, since, skips_caught_up) VALUES (%(campaign)s, now() - interval '1 hour', true)
ON CONFLICT (campaign_id) DO UPDATE SET since = excluded.since, skips_caught_up = true
"""

# The SQL this replaced (git show 9abaafa:include/sql/claim_candidates.sql, mark_dispatched.sql): the baseline.
OLD_CANDIDATES = """
CREATE TEMPORARY TABLE claim_candidates ON COMMIT DROP AS
WITH retry AS (
    SELECT l.contact_id AS id, 1 AS source
    FROM dispatch_ledger l
    JOIN contacts c ON c.id = l.contact_id
    WHERE l.campaign_id = %(campaign_id)s
      AND l.status = 'skipped'
      AND l.skip_reason = ANY(%(retry_reasons)s)
      AND (c.updated_at > l.updated_at OR l.requeued_at > l.updated_at)
      AND c.created_at < %(created_before)s
    ORDER BY l.contact_id
    LIMIT %(limit)s
),
fresh AS (
    SELECT f.id, 2 AS source
    FROM unnest(%(scan_statuses)s::text[]) AS s(status)
    CROSS JOIN LATERAL (
        SELECT c.id
        FROM contacts c
        WHERE genesys_dialer_norm(c.status) = s.status
          AND c.created_at < %(created_before)s
          AND NOT EXISTS (
              SELECT 1 FROM dispatch_ledger l
              WHERE l.campaign_id = %(campaign_id)s AND l.contact_id = c.id
          )
        ORDER BY c.id
        LIMIT %(limit)s
    ) AS f
    ORDER BY f.id
    LIMIT %(limit)s
)
SELECT id, source
FROM (SELECT * FROM retry UNION ALL SELECT * FROM fresh) AS candidates
ORDER BY source, id
LIMIT %(limit)s
"""
OLD_MARK = """
UPDATE dispatch_ledger
SET status = 'dispatched', dispatched_at = now(), updated_at = now(), attempts = attempts + 1,
    last_error = NULL, sending_at = NULL
WHERE campaign_id = %(campaign_id)s AND contact_id = ANY(%(contact_ids)s) AND fence = %(fence)s
  AND status IN ('claimed', 'failed')
"""


class TimedCursor(psycopg.Cursor):
    """Records how long each statement took, by the name of its include/sql file (see statement_name)."""

    timings: ClassVar[list[tuple[str, float]]] = []

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return super().execute(query, params, **kwargs)
        finally:
            TimedCursor.timings.append((statement_name(query), time.perf_counter() - started))


CLAIM_SQL = ("lock_campaign", "run_segments", "claim_plan", "status_values", "next_fence", "adopt_claims",
             "claim_marks", "claim_window_state", "claim_window", "claim_candidates", "analyze_claim_candidates",
             "claim_stale_phones", "claim_marks_advance", "claim_window_advance")


def statement_name(query: Any) -> str:
    if not isinstance(query, str) or "INSERT INTO dispatch_ledger" in query:
        return "claim_batch"  # the eligibility template, composed or rendered (claims._write_claim)
    return next((name for name in CLAIM_SQL if load_sql(name) == query), query.split()[0].lower())


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def median_ms(samples: list[float]) -> float:
    return ms(statistics.median(samples))


class Bench:
    def __init__(self, url: str, batch: int, runs: int, old_timeout_s: int) -> None:
        self.url = url
        self.conn = psycopg.connect(url)
        self.batch = batch
        self.runs = runs
        self.old_timeout_s = old_timeout_s
        self.size = 0
        self.pending: list[int] = []  # claimed rows not yet used by a mark run
        self.rules = Eligibility(campaign_id=CAMPAIGN)

    # -- data ------------------------------------------------------------------------------------------------
    def grow(self, size: int) -> float:
        started = time.perf_counter()
        conn = self.conn
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SET synchronous_commit = off")
        # The campaign's history was loaded days ago: rows keep the updated_at written below (the schema's trigger
        # would set now()), as a bulk load with triggers disabled does.
        conn.execute("SET LOCAL session_replication_role = replica")
        indexes = conn.execute(
            "SELECT i.indexrelid::regclass::text FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid "
            "WHERE t.relname = ANY(%s) AND NOT i.indisprimary", [list(BULK_TABLES)]).fetchall()
        for (index,) in indexes:
            conn.execute(f"DROP INDEX {index}")
        start, history_stop = self.size + 1, int(size * 0.9)
        conn.execute(GROW_CONTACTS, {"start": start, "stop": size})
        # Numbers normalized for the contacts the claims below take (the rest are in the ledger already).
        conn.execute(GROW_PHONES, {"start": history_stop + 1, "stop": size})
        conn.execute("UPDATE dispatch_ledger SET status = 'dispatched', run_id = 'history' WHERE run_id = 'pending'")
        conn.execute(GROW_LEDGER, {"campaign": CAMPAIGN, "start": int(self.size * 0.9) + 1, "stop": history_stop})
        ours = conn.execute("SELECT count(*) FROM dispatch_ledger").fetchone()[0]
        other_start = 1 + (conn.execute("SELECT count(*) FROM dispatch_ledger WHERE campaign_id = 'other'"
                                        ).fetchone()[0])
        conn.execute(GROW_OTHER, {"start": other_start, "stop": other_start + (size - ours) - 1})
        conn.execute(PENDING_ROWS, {"campaign": CAMPAIGN, "fence": PENDING_FENCE, "n": PENDING})
        conn.execute(RESUME, {"campaign": CAMPAIGN})
        conn.execute(WINDOW, {"campaign": CAMPAIGN})
        conn.commit()
        apply_schema(conn)  # rebuilds the dropped indexes
        conn.execute("RESET synchronous_commit")
        conn.commit()
        with psycopg.connect(self.url, autocommit=True) as maintenance:  # not the ledger: its statistics go stale
            for table in ("contacts", "contact_phones", "claim_marks", "claim_windows"):
                maintenance.execute(f"VACUUM (ANALYZE) {table}")
        self.pending = [cid for (cid,) in conn.execute(
            "SELECT contact_id FROM dispatch_ledger WHERE campaign_id = %s AND status = 'claimed' ORDER BY 1",
            [CAMPAIGN]).fetchall()]
        conn.commit()
        self.size = size
        return time.perf_counter() - started

    def ledger_rows(self) -> int:
        count = self.conn.execute("SELECT count(*) FROM dispatch_ledger").fetchone()[0]
        self.conn.commit()
        return count

    # -- claim -----------------------------------------------------------------------------------------------
    def request(self) -> ClaimRequest:
        return ClaimRequest(
            campaign_id=CAMPAIGN, campaign_key="bench", run_id=f"bench-{self.size}", batch_size=self.batch,
            segment_size=1000, created_before=datetime.now(UTC), lease_minutes=60, contact_id_prefix="",
            phone_region="US", label_prefix="bench", eligibility=self.rules,
        )

    def claim_params(self) -> dict[str, Any]:
        params = self.request().params()
        params.update(scan_statuses=self.rules.scan_statuses(["active", "inactive"]), fence=0, offset=0,
                      limit=self.batch)
        return params

    def claim(self) -> tuple[float, int]:
        """A dry claim (rolled back): every run computes the same contacts."""
        started = time.perf_counter()
        result = claim_batch(self.conn, self.request(), dry_run=True)
        return time.perf_counter() - started, result.contacts

    def real_claims(self, runs: int) -> tuple[list[float], int, dict[str, float]]:
        """Claims as a run makes them (committed), each of the next contacts: their durations, the contacts the
        first one claimed, and the median time of each statement ("other": the commit and Python)."""
        durations: list[float] = []
        per_statement: dict[str, list[float]] = {}
        contacts = 0
        with psycopg.connect(self.url, cursor_factory=TimedCursor) as conn:
            for index in range(runs):
                request = dataclasses.replace(self.request(), run_id=f"{REAL_RUN_PREFIX}{self.size}-{index}")
                TimedCursor.timings = []
                started = time.perf_counter()
                result = claim_batch(conn, request, dry_run=False)
                durations.append(time.perf_counter() - started)
                assert result.claimed_now == result.contacts > 0 and not result.reused, result
                contacts = contacts or result.contacts
                totals: dict[str, float] = {}
                for name, seconds in TimedCursor.timings:
                    totals[name] = totals.get(name, 0.0) + seconds
                totals["other"] = durations[-1] - sum(totals.values())
                for name, seconds in totals.items():
                    per_statement.setdefault(name, []).append(seconds)
        return durations, contacts, {name: median_ms(values) for name, values in per_statement.items()}

    def forget_real_claims(self) -> None:
        """Delete the real claims' rows and put the marks and the window back, as grow() left them."""
        with self.conn.cursor() as cur:
            cur.execute("DELETE FROM dispatch_ledger WHERE campaign_id = %s AND run_id LIKE %s",
                        [CAMPAIGN, REAL_RUN_PREFIX + "%"])
            cur.execute(RESUME, {"campaign": CAMPAIGN})
            cur.execute(WINDOW, {"campaign": CAMPAIGN})
        self.conn.commit()

    def candidates(self, *, explain: bool = False) -> tuple[float, int, list[str]]:
        """The new candidate selection (marks, window, candidates), rolled back; with ``explain``, the plans of
        the adoption (nothing has expired) and of these."""
        params = self.claim_params()
        plan: list[str] = []
        started = time.perf_counter()
        with self.conn.cursor() as cur:
            cur.execute(load_sql("claim_plan"))
            prefix = "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " if explain else ""
            if explain:
                cur.execute(prefix + load_sql("adopt_claims"), params)
                plan += [f"adopt_claims: {line}" for (line,) in cur.fetchall()]
            claims._resume_from(cur, params)
            for name in ("claim_window", "claim_candidates"):
                cur.execute(prefix + load_sql(name), params)
                if explain:
                    plan += [f"{name}: {line}" for (line,) in cur.fetchall()]
            elapsed = time.perf_counter() - started
            count = cur.execute("SELECT count(*) FROM claim_candidates").fetchone()[0]
        self.conn.rollback()
        return elapsed, count, plan

    def old_candidates(self) -> tuple[float | None, int]:
        params = self.claim_params()
        with self.conn.cursor() as cur:
            cur.execute(load_sql("no_jit"))
            cur.execute(f"SET LOCAL statement_timeout = '{self.old_timeout_s}s'")
            started = time.perf_counter()
            try:
                cur.execute(OLD_CANDIDATES, params)
            except psycopg.errors.QueryCanceled:
                self.conn.rollback()
                return None, 0
            elapsed = time.perf_counter() - started
            count = cur.execute("SELECT count(*) FROM claim_candidates").fetchone()[0]
        self.conn.rollback()
        return elapsed, count

    # -- marks -----------------------------------------------------------------------------------------------
    def take_ids(self) -> list[int]:
        ids, self.pending = self.pending[:1000], self.pending[1000:]
        assert len(ids) == 1000, "out of claimed rows to mark"
        return ids

    def mark(self) -> float:
        ids = self.take_ids()
        started = time.perf_counter()
        marked = claims.mark(self.conn, "mark_dispatched", campaign_id=CAMPAIGN, fence=PENDING_FENCE,
                             contact_ids=ids)
        elapsed = time.perf_counter() - started
        assert marked == 1000, marked
        return elapsed

    def old_mark(self) -> float | None:
        ids = self.take_ids()
        with self.conn.cursor() as cur:
            cur.execute(f"SET LOCAL statement_timeout = '{self.old_timeout_s}s'")
            started = time.perf_counter()
            try:
                cur.execute(OLD_MARK, {"campaign_id": CAMPAIGN, "fence": PENDING_FENCE, "contact_ids": ids})
            except psycopg.errors.QueryCanceled:
                self.conn.rollback()
                return None
            elapsed = time.perf_counter() - started
        self.conn.commit()
        return elapsed

    def mark_plan(self) -> list[str]:
        ids = self.take_ids()
        with self.conn.cursor() as cur:
            cur.execute(load_sql("mark_plan"))
            cur.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + claims.mark_sql("mark_dispatched"),
                        {"campaign_id": CAMPAIGN, "fence": PENDING_FENCE, "contact_ids": ids})
            plan = [f"mark_dispatched: {line}" for (line,) in cur.fetchall()]
        self.conn.rollback()
        return plan

    def marks(self, label: str) -> dict[str, Any]:
        new = [self.mark() for _ in range(self.runs)]
        old = [self.old_mark() for _ in range(2)]
        old_ms = [ms(s) for s in old if s is not None]
        return {
            f"mark_1000_{label}_ms": median_ms(new),
            f"mark_1000_{label}_max_ms": ms(max(new)),
            f"mark_1000_{label}_baseline_ms": (statistics.median(old_ms) if old_ms
                                              else f">{self.old_timeout_s * 1000} (cancelled)"),
        }

    def close(self) -> None:
        self.conn.close()


def stale_ledger_statistics(conn: Any) -> None:
    """Statistics as an empty (or 10 times smaller) ledger had them: autovacuum off, so nothing refreshes them."""
    conn.execute("ALTER TABLE dispatch_ledger SET (autovacuum_enabled = false)")
    conn.commit()


def report_plan(lines: list[str]) -> dict[str, Any]:
    """The indexes the plans use, and whether any big table is read whole."""
    bitmap = "Bitmap Index Scan on "
    used = sorted({line.split(" using ")[1].split()[0] for line in lines if " using " in line}
                  | {line.split(bitmap)[1].split()[0] for line in lines if bitmap in line})
    seq = sorted({line.split("Seq Scan on ")[1].split()[0] for line in lines if "Seq Scan on " in line}
                 & set(BULK_TABLES))  # the claim's temporary tables hold only the batch
    return {"indexes_used": used, "tables_read_whole": seq}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000000,10000000", help="contacts (and ledger rows) at each step")
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--old-timeout", type=int, default=30, help="seconds before a baseline query is cancelled")
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--plans", action="store_true", help="print the whole plans")
    args = parser.parse_args()
    name = f"gd_bench_ledger_{os.getpid()}"
    url = urlunsplit(urlsplit(args.server)._replace(path=f"/{name}"))
    with psycopg.connect(args.server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    started = time.perf_counter()
    try:
        with psycopg.connect(url) as conn:
            apply_schema(conn)
            conn.execute("ANALYZE")  # statistics of empty tables: what the first marks below plan with
            conn.commit()
            stale_ledger_statistics(conn)
        bench = Bench(url, args.batch, args.runs, args.old_timeout)
        try:
            for size in (int(s) for s in args.sizes.split(",")):
                out: dict[str, Any] = {"contacts": size}
                out["load_s"] = round(bench.grow(size), 1)
                out["ledger_rows"] = bench.ledger_rows()
                out.update(bench.marks("stale_stats"))
                bench.conn.execute("ANALYZE dispatch_ledger")
                bench.conn.commit()
                out.update(bench.marks("fresh_stats"))
                real, real_contacts, real_statements = bench.real_claims(args.runs)
                out["claim_batch_real_ms"] = median_ms(real)
                out["claim_batch_real_max_ms"] = ms(max(real))
                out["claim_batch_real_contacts"] = real_contacts
                claim_runs = [bench.claim() for _ in range(args.runs)]
                bench.forget_real_claims()
                out["claim_batch_dry_ms"] = median_ms([s for s, _ in claim_runs])
                out["claim_batch_dry_contacts"] = claim_runs[0][1]
                picks = [bench.candidates() for _ in range(args.runs)]
                out["candidates_ms"] = median_ms([s for s, _, _ in picks])
                out["candidates"] = picks[0][1]
                old, old_count = bench.old_candidates()
                out["candidates_baseline_ms"] = (ms(old) if old is not None
                                                 else f">{args.old_timeout * 1000} (cancelled)")
                out["claim_goal_ratio"] = round(out["claim_batch_real_ms"] / CLAIM_GOAL_MS, 2)
                out["claim_goal_ratio_dry"] = round(out["claim_batch_dry_ms"] / CLAIM_GOAL_MS, 2)
                out["candidates_goal_ratio"] = round(out["candidates_ms"] / CLAIM_GOAL_MS, 2)
                out["mark_goal_ratio_stale"] = round(out["mark_1000_stale_stats_ms"] / MARK_GOAL_MS, 2)
                out["mark_goal_ratio_fresh"] = round(out["mark_1000_fresh_stats_ms"] / MARK_GOAL_MS, 2)
                if old is not None:
                    out["candidates_speedup_vs_baseline"] = round(old / statistics.median(s for s, _, _ in picks))
                    assert old_count == out["candidates"], (old_count, out["candidates"])
                plan = bench.candidates(explain=True)[2] + bench.mark_plan()
                out.update(report_plan(plan))
                for key, value in out.items():
                    print(f"{size:>10,} rows  {key:<34} {value}", flush=True)
                for statement, value in sorted(real_statements.items(), key=lambda item: -item[1]):
                    print(f"{size:>10,} rows  claim_real_stmt_ms  {statement:<26} {value}", flush=True)
                scans = (" using ", "Seq Scan on ", "Bitmap Index Scan on ")
                for line in plan if args.plans else [p for p in plan if any(scan in p for scan in scans)]:
                    print(f"{size:>10,} rows  plan  {line}", flush=True)
                bench.conn.execute("ALTER TABLE dispatch_ledger SET (autovacuum_enabled = false)")
                bench.conn.commit()
        finally:
            bench.close()
    finally:
        with psycopg.connect(args.server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"bench_ledger: {round(time.perf_counter() - started)} s", flush=True)


if __name__ == "__main__":
    main()
