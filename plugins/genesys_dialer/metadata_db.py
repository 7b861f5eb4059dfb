"""Connect arguments for Airflow's own metadata database: no session stays idle in a transaction for long.

A scheduler killed (SIGKILL, OOM, node loss) while its metadata session holds ``dag_run`` row locks can wedge
a campaign: the LocalExecutor's worker processes were forked from the scheduler and still hold its database
socket, so PostgreSQL never sees the session end and keeps the locks, and with ``max_active_runs=1`` no later
run starts until those orphans die. PostgreSQL's ``idle_in_transaction_session_timeout`` ends such a session
(and releases its locks) after the timeout, whoever holds the socket. Airflow's own transactions are short, so
a minute of idleness inside one is never legitimate work.

Point every Airflow component at these dicts (docker-compose.yaml does)::

    AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS=genesys_dialer.metadata_db.CONNECT_ARGS
    AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC=genesys_dialer.metadata_db.CONNECT_ARGS_ASYNC

The sync engine uses psycopg or psycopg2 (libpq ``options``); the async engine Airflow derives from a
``postgresql`` URL uses asyncpg (``server_settings``). The same can be set on the server instead
(``ALTER DATABASE airflow SET idle_in_transaction_session_timeout = '60s'``), e.g. behind PgBouncer in
transaction mode, which does not pass startup options through.
"""

from __future__ import annotations

# Milliseconds a metadata session may sit idle inside an open transaction before PostgreSQL ends it.
IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000

CONNECT_ARGS: dict[str, str] = {"options": f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT_MS}"}
CONNECT_ARGS_ASYNC: dict[str, dict[str, str]] = {
    "server_settings": {"idle_in_transaction_session_timeout": str(IDLE_IN_TRANSACTION_TIMEOUT_MS)}
}
