"""Apply the project's schema (``include/sql/schema.sql``): idempotent, never drops a user's data."""

from __future__ import annotations

from typing import Any

from genesys_dialer.queries import load_sql


def apply_schema(conn: Any) -> None:
    with conn.cursor() as cur:
        cur.execute(load_sql("schema"))
    conn.commit()
