"""Apply the project's schema (``include/sql/schema.sql``): idempotent, never drops a user's data."""

from __future__ import annotations

from typing import Any

from genesys_dialer.sql import load_sql


def apply_schema(conn: Any) -> None:
    # One advisory lock so two init containers (or test sessions) applying it at once do not collide.
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtextextended('genesys_dialer:schema', 0))")
        cur.execute(load_sql("schema"))
    conn.commit()
