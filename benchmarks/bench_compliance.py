"""Benchmark the compliance side of a run at scale on a real PostgreSQL: normalizing every number, a claim with
suppression by number, the check right before sending, and the search for opt-outs among delivered contacts.

Run: ``.venv/bin/python benchmarks/bench_compliance.py [--contacts 1000000] [--delivered 500000]
[--server postgresql://postgres@127.0.0.1:5432/postgres]``

It creates a throwaway database on the server, loads ``--contacts`` contacts in SQL (real US area codes,
four spellings, 5 % do-not-call, 8 % inactive, 2 % without a number, every 50th number shared with another
contact), records the last ``--delivered`` eligible ones (by id) as delivered for the campaign, and times each
step. The database is dropped at the end. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg

from genesys_dialer.compliance import withdrawal
from genesys_dialer.compliance.eligibility import Eligibility
from genesys_dialer.compliance.phones import refresh_phones
from genesys_dialer.ledger.claims import ClaimRequest, claim_batch, iter_segment_pages, take_segment
from genesys_dialer.ledger.schema import apply_schema

LOAD = """
INSERT INTO contacts (phone_number, status, suppression_status, created_at, updated_at)
SELECT CASE
           WHEN g %% 50 = 0 THEN NULL
           ELSE (ARRAY['+1', '(', '1-', ''])[1 + g %% 4]
                || (ARRAY['212', '312', '415', '617', '713', '206', '305', '404', '503', '702'])
                       [1 + (n / 8000000) %% 10]
                || (ARRAY['', ') ', '-', ''])[1 + g %% 4]
                || (200 + (n / 10000) %% 800)::text || (ARRAY['', '-', '-', ''])[1 + g %% 4]
                || lpad((n %% 10000)::text, 4, '0')
       END,
       CASE WHEN g %% 100 < 8 THEN 'inactive' ELSE 'active' END,
       CASE WHEN g %% 100 BETWEEN 8 AND 12 THEN ' Do_Not_Call' ELSE 'none' END,
       now() - interval '2 days', now() - interval '1 day'
FROM generate_series(1, %(contacts)s) AS g
CROSS JOIN LATERAL (SELECT CASE WHEN g %% 50 = 1 THEN g - 1 ELSE g END::bigint AS n) AS k
"""
DELIVER = """
INSERT INTO dispatch_ledger (campaign_id, contact_id, genesys_contact_id, campaign_key, run_id, segment_index,
                             status, phone_e164, dispatched_at, attempts)
SELECT %(campaign_id)s, p.contact_id, p.contact_id::text, 'bench', 'history', 0, 'dispatched', p.e164, now(), 1
FROM contact_phones p JOIN contacts c ON c.id = p.contact_id
WHERE p.region = 'US' AND p.e164 IS NOT NULL AND c.status = 'active' AND c.suppression_status = 'none'
ORDER BY c.id DESC LIMIT %(delivered)s
ON CONFLICT DO NOTHING
"""


def timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, round(time.perf_counter() - started, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--delivered", type=int, default=500_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    name = f"gdbench_{uuid.uuid4().hex[:8]}"
    url = urlunsplit(urlsplit(args.server)._replace(path=f"/{name}"))
    with psycopg.connect(args.server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    out: dict[str, object] = {"contacts": args.contacts, "delivered": args.delivered, "batch": args.batch}
    try:
        with psycopg.connect(url) as conn:
            apply_schema(conn)
            # A table loaded a day ago: the load keeps its updated_at (the schema's trigger would set now()).
            conn.execute("SET LOCAL session_replication_role = replica")
            _, out["load_s"] = timed(conn.execute, LOAD, {"contacts": args.contacts})
            conn.commit()
            conn.execute("ANALYZE contacts")
            refresh, out["normalize_s"] = timed(refresh_phones, conn, "US", max_rows=10**9,
                                                lookback=timedelta(minutes=60))
            out["normalize_per_s"] = round(refresh.normalized / out["normalize_s"])
            _, out["refresh_caught_up_s"] = timed(refresh_phones, conn, "US", max_rows=10**9,
                                                  lookback=timedelta(minutes=60))
            campaign_id = "bench"
            conn.execute(DELIVER, {"campaign_id": campaign_id, "contacts": args.contacts,
                                   "delivered": args.delivered})
            conn.commit()
            conn.execute("ANALYZE")
            rules = Eligibility(campaign_id=campaign_id)
            request = ClaimRequest(
                campaign_id=campaign_id, campaign_key="bench", run_id="bench-1", batch_size=args.batch,
                segment_size=1000, created_before=datetime.now(UTC), lease_minutes=60, contact_id_prefix="",
                phone_region="US", label_prefix="bench", eligibility=rules,
            )
            result, out["claim_s"] = timed(claim_batch, conn, request, dry_run=False)
            out["claim_held_back"] = result.held_back
            out["claimed"] = result.contacts

            fence, _ = take_segment(conn, campaign_id=campaign_id, run_id="bench-1", segment_index=0,
                                    first_try=True)

            def check_segment() -> int:
                return sum(len(page) for page in iter_segment_pages(
                    conn, campaign_id=campaign_id, run_id="bench-1", segment_index=0, fence=fence, page_size=1000,
                    eligibility=rules))

            out["segment_checked"], out["segment_check_s"] = timed(check_segment)
            conn.execute("UPDATE contacts SET suppression_status = 'do_not_call', updated_at = now() WHERE id IN "
                         "(SELECT contact_id FROM dispatch_ledger WHERE run_id = 'history' ORDER BY contact_id "
                         "LIMIT 1000)")
            conn.commit()
            hour = timedelta(minutes=60)
            out["withdraw_found_first"], out["withdraw_first_check_s"] = timed(
                withdrawal.preview, conn, rules, lookback=hour)
            # What a run does after a complete check: only what changed since is looked at.
            conn.execute("INSERT INTO withdrawal_checks (campaign_id, started_at, rules) VALUES (%s, now(), %s)",
                         [campaign_id, rules.fingerprint()])
            conn.commit()
            conn.execute("UPDATE contacts SET suppression_status = 'do_not_call', updated_at = now() WHERE id IN "
                         "(SELECT contact_id FROM dispatch_ledger WHERE run_id = 'history' ORDER BY contact_id DESC "
                         "LIMIT 100)")
            conn.commit()
            out["withdraw_found_next"], out["withdraw_next_check_s"] = timed(
                withdrawal.preview, conn, rules, lookback=hour)
    finally:
        with psycopg.connect(args.server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
