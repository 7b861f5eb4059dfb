"""``genesys-dialer``: operate the feed (apply the schema)."""

from __future__ import annotations

import argparse
import sys


def _apply_schema(args: argparse.Namespace) -> int:
    from genesys_dialer.ledger.schema import apply_schema

    if args.dsn:
        import psycopg

        with psycopg.connect(args.dsn) as conn:
            apply_schema(conn)
    else:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        conn = PostgresHook(postgres_conn_id=args.conn_id).get_conn()
        try:
            apply_schema(conn)
        finally:
            conn.close()
    print(f"Schema applied ({'the given DSN' if args.dsn else 'connection ' + args.conn_id}).")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="genesys-dialer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    schema = sub.add_parser("apply-schema", help="create or update the project's tables (idempotent)")
    schema.add_argument("--conn-id", default="dialer_postgres", help="Airflow connection id (default: %(default)s)")
    schema.add_argument("--dsn", help="a libpq URL instead of an Airflow connection")
    schema.set_defaults(func=_apply_schema)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
