"""``genesys-dialer``: apply the schema, run the demo."""

from __future__ import annotations

import argparse
import sys


def _apply_schema(args: argparse.Namespace) -> int:
    from genesys_dialer.schema import apply_schema

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


def _demo(args: argparse.Namespace) -> int:
    from genesys_dialer.demo import run_demo

    return run_demo(contacts=args.contacts, batch_size=args.batch_size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="genesys-dialer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    schema = sub.add_parser("apply-schema", help="create or update the project's tables (idempotent)")
    schema.add_argument("--conn-id", default="dialer_postgres", help="Airflow connection id (default: %(default)s)")
    schema.add_argument("--dsn", help="a libpq URL instead of an Airflow connection")
    schema.set_defaults(func=_apply_schema)
    demo = sub.add_parser("demo", help="seed a throwaway database and the emulator, run one DAG run")
    demo.add_argument("--contacts", type=int, default=20_000)
    demo.add_argument("--batch-size", type=int, default=5_000)
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
