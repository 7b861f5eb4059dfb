"""``genesys-dialer``: operate the feed (apply the schema, re-queue skips, normalize numbers, load DNC numbers)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any


@contextmanager
def _connect(args: argparse.Namespace) -> Iterator[Any]:
    """The database: ``--dsn`` (a libpq URL) or the Airflow connection ``--conn-id``."""
    if args.dsn:
        import psycopg

        with psycopg.connect(args.dsn) as conn:
            yield conn
    else:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        with closing(PostgresHook(postgres_conn_id=args.conn_id).get_conn()) as conn:
            yield conn


def _where(args: argparse.Namespace) -> str:
    return "the given DSN" if args.dsn else f"connection {args.conn_id}"


def _campaign(args: argparse.Namespace) -> Any:
    """The campaign ``--campaign KEY`` of the config file (``--config``, else $GENESYS_DIALER_CONFIG)."""
    import os

    from genesys_dialer.config import CONFIG_ENV_VAR, load_campaigns
    from genesys_dialer.exceptions import ConfigError

    path = args.config or os.environ.get(CONFIG_ENV_VAR)
    if not path:
        raise ConfigError(f"name the campaign config file with --config or ${CONFIG_ENV_VAR}")
    campaigns = {c.key: c for c in load_campaigns(path)}
    if args.campaign not in campaigns:
        raise ConfigError(f"{path}: no campaign with key {args.campaign!r} (keys: {sorted(campaigns)})")
    return campaigns[args.campaign]


def _apply_schema(args: argparse.Namespace) -> int:
    from genesys_dialer.ledger.schema import apply_schema

    with _connect(args) as conn:
        apply_schema(conn)
    print(f"Schema applied ({_where(args)}).")
    return 0


def _requeue(args: argparse.Namespace) -> int:
    from genesys_dialer.compliance import reasons
    from genesys_dialer.queries import run_sql

    if args.reason in reasons.FINAL_REASONS:
        print(
            f"refused: {args.reason!r} is a suppression reason; a contact held back for it is never re-queued "
            "(docs/compliance.md says how an operator who verified consent can release one)", file=sys.stderr,
        )
        return 2
    if args.reason not in reasons.DATA_REASONS:
        print(f"unknown reason {args.reason!r}; data reasons: {', '.join(sorted(reasons.DATA_REASONS))}",
              file=sys.stderr)
        return 2
    campaign = _campaign(args)
    with _connect(args) as conn:
        count = run_sql(conn, "requeue_skips", {"campaign_id": campaign.campaign_id, "reason": args.reason})
    print(f"Re-queued {count} contacts of campaign {campaign.key} skipped for {args.reason}: the next run claims "
          "them again and checks them in full.")
    return 0


def _normalize(args: argparse.Namespace) -> int:
    from genesys_dialer.compliance.phones import refresh_phones

    region = args.region or _campaign(args).phone_region
    with _connect(args) as conn:
        result = refresh_phones(conn, region, max_rows=args.max_rows, lookback=timedelta(minutes=args.lookback))
    state = "caught up" if result.caught_up else "NOT caught up (run it again)"
    print(f"Region {region}: {result.scanned} contacts rows scanned, {result.normalized} numbers normalized in "
          f"{result.seconds:.1f} s; {state}.")
    return 0 if result.caught_up else 1


def _dnc_import(args: argparse.Namespace) -> int:
    from genesys_dialer.compliance.phones import describe_phone
    from genesys_dialer.queries import run_sql

    numbers: set[str] = set()
    bad_lines: list[int] = []
    with open(args.file, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            raw = line.split(",")[0].strip()
            if not raw or raw.startswith("#"):
                continue
            facts = describe_phone(raw, args.region)
            if facts.e164:
                numbers.add(facts.e164)
            else:
                bad_lines.append(line_number)
    with _connect(args) as conn:
        written = run_sql(conn, "dnc_upsert", {
            "numbers": sorted(numbers), "source": args.source, "snapshot_date": args.snapshot_date,
        })
    print(f"{Path(args.file).name}: {written} numbers written to dnc_numbers (source {args.source}"
          f"{', snapshot ' + args.snapshot_date.isoformat() if args.snapshot_date else ''}).")
    if bad_lines:
        shown = ", ".join(map(str, bad_lines[:20])) + (" ..." if len(bad_lines) > 20 else "")
        print(f"{len(bad_lines)} lines are not valid numbers for region {args.region} and were not loaded: "
              f"lines {shown}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="genesys-dialer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.add_argument("--conn-id", default="dialer_postgres", help="Airflow connection id (default: %(default)s)")
        cmd.add_argument("--dsn", help="a libpq URL instead of an Airflow connection")
        cmd.set_defaults(func=func)
        return cmd

    command("apply-schema", "create or update the project's tables (idempotent)", _apply_schema)

    requeue = command(
        "requeue", "claim a campaign's contacts skipped for a data reason again in its next run", _requeue
    )
    requeue.add_argument("--campaign", required=True, help="the campaign's key in the config file")
    requeue.add_argument("--reason", required=True, help="a data reason: invalid_phone, unknown_timezone, ...")
    requeue.add_argument("--config", help="the campaign config file (default: $GENESYS_DIALER_CONFIG)")

    normalize = command(
        "normalize", "normalize contacts' phone numbers now (before a first run on a large table)", _normalize
    )
    which = normalize.add_mutually_exclusive_group(required=True)
    which.add_argument("--region", help="default region, e.g. US")
    which.add_argument("--campaign", help="use this campaign's phone_region")
    normalize.add_argument("--config", help="the campaign config file (default: $GENESYS_DIALER_CONFIG)")
    normalize.add_argument("--max-rows", type=int, default=100_000_000, help="stop after this many rows")
    normalize.add_argument("--lookback", type=int, default=60, help="minutes re-read for late commits")

    dnc = command("dnc-import", "load do-not-call numbers (one per line) into dnc_numbers", _dnc_import)
    dnc.add_argument("file", help="text or CSV file, the number in the first column")
    dnc.add_argument("--source", default="internal", help="e.g. internal, national_registry (default: %(default)s)")
    dnc.add_argument("--snapshot-date", type=date.fromisoformat, help="date the registry snapshot was taken")
    dnc.add_argument("--region", default="US", help="region for numbers without +country (default: %(default)s)")

    args = parser.parse_args(argv)
    from genesys_dialer.exceptions import ConfigError

    try:
        return args.func(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
