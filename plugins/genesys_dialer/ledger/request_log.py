"""The run's request log in PostgreSQL: every Genesys request of every task try, written as it happens.

The run report counts traffic from here, so retried and failed tries count too (their XComs are never pushed).
Each row is committed on its own: a task killed later keeps the requests it already made. A request whose task
is killed between the answer and the commit is the one that can go uncounted.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from genesys_dialer.queries import load_sql, run_sql

if TYPE_CHECKING:
    from genesys_dialer.genesys.hook import RequestRecord

log = logging.getLogger(__name__)


class RequestLog:
    """A ``GenesysHook(on_request=...)`` callback writing each request to ``request_log``.

    ``conn`` must be idle (no transaction of the caller's open) whenever the hook sends a request: each row is
    committed at once.
    """

    def __init__(self, conn: Any, *, campaign_id: str, run_id: str, task_id: str, map_index: int,
                 try_number: int) -> None:
        self.conn = conn
        self.row = {"campaign_id": campaign_id, "run_id": run_id, "task_id": task_id, "map_index": map_index,
                    "try_number": try_number}

    def __call__(self, record: RequestRecord) -> None:
        run_sql(self.conn, "record_request", {
            **self.row, "endpoint": record.endpoint, "method": record.method, "status": record.status,
            "failure": record.failure, "attempt": record.attempt, "items": record.items,
            "elapsed_ms": round(record.elapsed_seconds * 1000),
        })


def run_requests(conn: Any, *, campaign_id: str, run_id: str) -> dict[str, int]:
    """What the run's tasks sent to Genesys, in every try: requests, retries, 429s, token refreshes, failures."""
    with conn.cursor() as cur:
        cur.execute(load_sql("run_requests"), {"campaign_id": campaign_id, "run_id": run_id})
        row = cur.fetchone()
        names = [d.name for d in cur.description]
    conn.commit()
    return {name: int(value or 0) for name, value in zip(names, row, strict=True)}
