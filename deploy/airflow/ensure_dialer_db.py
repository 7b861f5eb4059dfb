"""Create the dialer role and database if missing (airflow-init; the postgres superuser from .env).

Runs on every init, so an existing postgres volume from before the dialer database existed is fixed too.
"""

from __future__ import annotations

import os
import time

import psycopg2
from psycopg2 import sql


def main() -> None:
    name, user, password = (os.environ[k] for k in ("DIALER_DB_NAME", "DIALER_DB_USER", "DIALER_DB_PASSWORD"))
    for attempt in range(30):
        try:
            conn = psycopg2.connect(
                host="postgres", dbname="airflow",
                user=os.environ["POSTGRES_USER"], password=os.environ["POSTGRES_PASSWORD"],
            )
            break
        except psycopg2.OperationalError:
            if attempt == 29:
                raise
            time.sleep(2)
    conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,))
        if cur.fetchone() is None:
            cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(user)), (password,))
            print(f"created role {user}")
        else:
            cur.execute(sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD %s").format(sql.Identifier(user)), (password,))
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cur.fetchone() is None:
            cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(user)))
            print(f"created database {name}")
    conn.close()


if __name__ == "__main__":
    main()
