"""One request budget per Genesys OAuth client, shared by every task, campaign, process and machine using it.

Genesys limits each client-credentials client to ``requests_per_minute`` (300 by default; the reference's "Rate
limits" section). Each hook's own retries on 429 only bounce off that limit; here every request first takes a token
from a bucket kept in PostgreSQL (``genesys_rate_budget``, include/sql/budget_*.sql): the dialer database every
task already opens, or the one ``budget_postgres_conn_id`` names, which campaigns on several dialer databases that
use one OAuth client must share. The bucket is a GCRA reservation: one ``INSERT .. ON CONFLICT DO UPDATE`` per
request reserves the client's next slot and answers how long to wait for it, so concurrent senders queue on one row
and leave evenly spaced. The row is keyed by a hash of the token URL's host and the client id: two connections of
one client share a budget, the secret is never stored.

A budget paces at ``BUDGET_SHARE`` (98 %) of the limit: Genesys counts a request when it arrives, and the
emulator (like the ``inin-ratelimit-*`` headers) in fixed 60 s windows; spacing at 98 % leaves any window at
most 295 of 300 requests despite network jitter. If the budget's database cannot be used, requests go out
unpaced (a warning says so): the hook's 429 handling still bounds the load.

The same database mirrors how many times each circuit breaker opened (``genesys_breaker_openings``): a cheap
local read that tells a task whether a closed breaker it read a moment ago is still closed (genesys/breaker.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack, suppress
from dataclasses import dataclass
from typing import Any

from genesys_dialer.queries import load_sql

log = logging.getLogger(__name__)

DEFAULT_REQUESTS_PER_MINUTE = 300.0
BUDGET_SHARE = 0.98
UNDEFINED_TABLE = "42P01"


def client_key(token_url: str, client_id: str) -> str:
    """The bucket's key: a hash of the login host and the client id (no secret; nothing readable in the row)."""
    return hashlib.sha256(f"genesys-dialer budget|{token_url}|{client_id}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Bucket:
    key: str
    requests_per_minute: float

    @property
    def interval(self) -> float:
        return 60.0 / (self.requests_per_minute * BUDGET_SHARE)


@dataclass(frozen=True)
class Reservation:
    slot: float  # when the request may go out (epoch seconds, the budget's clock)
    wait: float  # seconds from now until then (<= 0: at once)


class RateBudget:
    """Where buckets live: :meth:`reserve` reserves the next slot of a bucket."""

    def reserve(self, bucket: Bucket) -> Reservation:  # pragma: no cover - protocol
        raise NotImplementedError

    def take(self, bucket: Bucket, sleep: Callable[[float], None] = time.sleep) -> float:
        """Wait for the next slot of ``bucket``; return how long this waited."""
        wait = self.reserve(bucket).wait
        if wait > 0:
            sleep(wait)
            return wait
        return 0.0


class MemoryBudget(RateBudget):
    """One process's buckets (tests, CLI tools)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def reserve(self, bucket: Bucket) -> Reservation:
        with self._lock:
            now = self._clock()
            slot = max(self._tat.get(bucket.key, now), now)
            self._tat[bucket.key] = slot + bucket.interval
            return Reservation(slot, slot - now)


# One budget connection per process and database, reused by every hook of the process (dag.test runs a whole
# DAG in one process; a worker runs one task per process). The ledger's own connection is never used: a take
# commits, and must not commit the caller's transaction.
_connections: dict[str, tuple[ExitStack, Any]] = {}
_connections_lock = threading.Lock()


class PostgresBudget(RateBudget):
    """Buckets in the ``genesys_rate_budget`` table, reached through ``connect`` (a context manager factory
    yielding a DB-API connection, e.g. the dialer session); ``name`` keys its one connection in this process."""

    def __init__(self, connect: Callable[[], AbstractContextManager[Any]], name: str) -> None:
        self._connect = connect
        self.name = name
        self._warned = False

    def reserve(self, bucket: Bucket) -> Reservation:
        params = {"client_key": bucket.key, "interval": bucket.interval,
                  "requests_per_minute": bucket.requests_per_minute}
        try:
            slot, wait = self._one_row("budget_take", params)
            return Reservation(float(slot), float(wait))
        except Exception as err:
            if not self._warned:
                self._warned = True
                log.warning("Rate budget unavailable (%s): requests go out unpaced; Genesys' 429 answers and "
                            "the hook's retries still bound them", type(err).__name__)
            return Reservation(time.time(), 0.0)

    # The breakers' openings mirror (genesys.breaker.OpeningsMirror): a count a task checks before trusting a
    # closed breaker it read a moment ago.
    def breaker_openings(self, breaker: str) -> int | None:
        """How many times ``breaker`` has opened (0: never), or None if it could not be read."""
        try:
            return int(self._one_row("breaker_openings", {"breaker": breaker})[0])
        except Exception:  # the breaker then reads its Variable before every request
            return None

    def record_breaker_opening(self, breaker: str) -> None:
        """Count an opening of ``breaker`` (after its Variable was written)."""
        try:
            self._one_row("record_breaker_opening", {"breaker": breaker})
        except Exception as err:  # tasks trusting a closed reading see the opening within their cache_seconds
            log.warning("Could not mirror the opening of breaker %s in the budget's database (%s)",
                        breaker, type(err).__name__)

    def _one_row(self, sql_name: str, params: dict[str, Any]) -> tuple[Any, ...]:
        """Run one statement on this process's budget connection and commit; its row. A broken connection is
        dropped (the next call opens another)."""
        with _connections_lock:
            try:
                return self._run(sql_name, params)
            except Exception:
                self._drop()
                raise

    def _run(self, sql_name: str, params: dict[str, Any]) -> tuple[Any, ...]:
        conn = self._conn()
        for attempt in (1, 2):
            try:
                with conn.cursor() as cur:
                    cur.execute(load_sql(sql_name), params)
                    row = cur.fetchone()
                conn.commit()
                return tuple(row)
            except Exception as err:
                conn.rollback()
                if attempt == 2 or _sqlstate(err) != UNDEFINED_TABLE:
                    raise
                with conn.cursor() as cur:  # first use in this database: create the tables, then run it again
                    cur.execute(load_sql("budget_schema"))
                conn.commit()
        raise AssertionError("unreachable")

    def _conn(self) -> Any:
        held = _connections.get(self.name)
        if held is not None and not getattr(held[1], "closed", False):
            return held[1]
        stack = ExitStack()
        conn = stack.enter_context(self._connect())
        _connections[self.name] = (stack, conn)
        return conn

    def _drop(self) -> None:
        held = _connections.pop(self.name, None)
        if held is not None:
            with contextlib.suppress(Exception):  # a broken connection: nothing to keep
                held[0].close()


def close_all() -> None:
    """Close this process's budget connections (tests, and the end of a CLI command)."""
    with _connections_lock:
        for stack, _ in list(_connections.values()):
            with suppress(Exception):
                stack.close()
        _connections.clear()


def _sqlstate(err: BaseException) -> str | None:
    return getattr(err, "sqlstate", None) or getattr(err, "pgcode", None)
