"""The dialer's PostgreSQL sessions: opened through the Airflow connection, with time limits on every session.

A task can be killed or hang at any point. What it leaves behind must not block the next run: no statement may
wait forever (``statement_timeout``) and no session may sit idle inside a transaction holding locks
(``idle_in_transaction_session_timeout``: the server ends it and rolls it back). The connection's own
``options`` extra (``"-c statement_timeout=30s"``) or the server's role/database settings win; the defaults
below apply only where neither sets a value.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any

from genesys_dialer.queries import load_sql

log = logging.getLogger(__name__)

# Long enough for a claim of the largest batch; short enough that a blocked task fails and says so.
DEFAULT_STATEMENT_TIMEOUT = "5min"
# The dialer never leaves a transaction open across a Genesys call; a session idle in one is a dead task's.
DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT = "1min"
APPLICATION_NAME = "genesys_dialer"


def apply_session_limits(conn: Any) -> tuple[str, str]:
    """Set the defaults where the connection and the server set nothing; return the effective values."""
    with conn.cursor() as cur:
        cur.execute(
            load_sql("session_limits"),
            {
                "statement_timeout": DEFAULT_STATEMENT_TIMEOUT,
                "idle_in_transaction_timeout": DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT,
                "application_name": APPLICATION_NAME,
            },
        )
        statement_timeout, idle_timeout, _ = cur.fetchone()
    conn.commit()  # set_config(..., false) is session-wide once its transaction commits
    return statement_timeout, idle_timeout


@contextmanager
def dialer_session(postgres_conn_id: str) -> Iterator[Any]:
    """A connection to the campaign's contacts database, with the session limits, closed when the block ends."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    with closing(PostgresHook(postgres_conn_id=postgres_conn_id).get_conn()) as conn:
        statement_timeout, idle_timeout = apply_session_limits(conn)
        log.debug("Dialer session: statement_timeout=%s idle_in_transaction_session_timeout=%s",
                  statement_timeout, idle_timeout)
        yield conn
