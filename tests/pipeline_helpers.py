"""Helpers shared by the pipeline tests: run a campaign DAG in-process and read what it did."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from support import CAMPAIGN_ID, CONFIG_PATH

from genesys_dialer.contacts import normalize_phone


def campaign_config(key: str = "itest") -> Any:
    from genesys_dialer.config import load_campaigns

    return next(c for c in load_campaigns(CONFIG_PATH) if c.key == key)


def run_dag(*, logical_date: datetime | None = None, conf: dict[str, Any] | None = None, key: str = "itest") -> Any:
    """One DAG run through ``dag.test()`` (in-process); returns the DagRun."""
    from genesys_dialer.dag_builder import build_campaign_dag

    dag = build_campaign_dag(campaign_config(key))
    kwargs: dict[str, Any] = {"run_conf": conf or {}}
    if logical_date is not None:
        # The run id derives from run_after: the same date twice is the same run, cleared and re-run.
        kwargs["logical_date"] = kwargs["run_after"] = logical_date
    return dag.test(**kwargs)


def task_states(dag_run: Any) -> dict[tuple[str, int], str]:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).all()
        return {(ti.task_id, ti.map_index): str(ti.state) for ti in tis}


def run_xcoms(dag_run: Any) -> list[Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).all()
        return [(row.task_id, row.key, row.value) for row in rows]


def ledger(db: Any, run_id: str | None = None) -> dict[int, tuple[str, str | None, int, str]]:
    """contact_id -> (status, skip_reason, segment_index, run_id)."""
    sql = "SELECT contact_id, status, skip_reason, segment_index, run_id FROM dispatch_ledger WHERE campaign_id = %s"
    params: list[Any] = [CAMPAIGN_ID]
    if run_id:
        sql += " AND run_id = %s"
        params.append(run_id)
    rows = db.execute(sql, params).fetchall()
    db.commit()
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


def expected_claim(db: Any, batch_size: int, created_before: datetime | None = None) -> list[tuple[int, str | None]]:
    """Independently of the package's SQL: the first eligible contacts by id, with their raw phone."""
    sql = (
        "SELECT id, phone_number FROM contacts WHERE status = 'active' AND suppression_status <> 'do_not_call'"
    )
    params: list[Any] = []
    if created_before is not None:
        sql += " AND created_at < %s"
        params.append(created_before)
    sql += " ORDER BY id LIMIT %s"
    params.append(batch_size)
    rows = db.execute(sql, params).fetchall()
    db.commit()
    return [(r[0], r[1]) for r in rows]


def valid_e164(raw: str | None) -> str | None:
    return normalize_phone(raw, "US")[0]


def contact_posts(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in log if r["route"] == "POST /api/v2/outbound/contactlists/{contactListId}/contacts"]


def segments_for(batch: int, segment_size: int) -> int:
    return math.ceil(batch / segment_size)
