"""Helpers shared by the pipeline tests: run a campaign DAG (in-process or on the executor) and read what it did."""

from __future__ import annotations

import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from support import CAMPAIGN_ID, CONFIG_PATH, CONTACTS_ROUTE

from genesys_dialer.ledger.claims import normalize_phone


def campaign_config(key: str = "itest") -> Any:
    from genesys_dialer.config import load_config

    return next(c for c in load_config(CONFIG_PATH).campaigns if c.key == key)


def run_dag(*, logical_date: datetime | None = None, conf: dict[str, Any] | None = None, key: str = "itest") -> Any:
    """One DAG run through ``dag.test()`` (in-process); returns the DagRun."""
    from genesys_dialer.dags.builder import build_campaign_dag

    dag = build_campaign_dag(campaign_config(key))
    kwargs: dict[str, Any] = {"run_conf": conf or {}}
    if logical_date is not None:
        # The run id derives from run_after: the same date twice is the same run, cleared and re-run.
        kwargs["logical_date"] = kwargs["run_after"] = logical_date
    return dag.test(**kwargs)


def dag_runs(dag_id: str) -> list[Any]:
    """Every DagRun of ``dag_id``, detached from the session."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == dag_id).all()
        session.expunge_all()
        return runs


def finished_run(dag_id: str, run_id: str) -> Any:
    """The DagRun (detached) once it succeeded or failed; None while it runs, or if there is no such run."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter_by(dag_id=dag_id, run_id=run_id).one_or_none()
        session.expunge_all()
    return run if run is not None and str(run.state) in ("success", "failed") else None


def task_instances(dag_id: str, run_id: str) -> list[Any]:
    """The run's TaskInstances, detached from the session."""
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id).all()
        session.expunge_all()
        return tis


def task_states(dag_run: Any) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): str(ti.state) for ti in task_instances(dag_run.dag_id, dag_run.run_id)}


def xcoms(dag_id: str, run_id: str) -> list[tuple[str, str, Any]]:
    """(task_id, key, value) of every XCom the run pushed."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter_by(dag_id=dag_id, run_id=run_id).all()
        return [(row.task_id, row.key, row.value) for row in rows]


def run_xcoms(dag_run: Any) -> list[Any]:
    return xcoms(dag_run.dag_id, dag_run.run_id)


def task_logs(root: Path | str, run_id: str, task_id: str | None = None) -> dict[Path, str]:
    """The run's task log files (of ``task_id``, else of every task; every try) under the executor's log root."""
    pattern = f"**/run_id={run_id}/task_id={task_id}/**/*" if task_id else f"**/run_id={run_id}/**/*"
    files = sorted(p for p in Path(root).glob(pattern) if p.is_file())
    assert files, f"no task logs for {run_id} {task_id}"
    return {p: p.read_text(errors="replace") for p in files}


def task_log_text(root: Path | str, run_id: str, task_id: str | None = None) -> str:
    return "\n".join(task_logs(root, run_id, task_id).values())


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


def phone_forms(db: Any) -> set[str]:
    """Every contact's phone number in each form a leak could take: as stored (stripped), its digits (all, and
    the last 10) and, when valid, its E.164 form with and without the "+". Numbers of under 7 digits are left
    out (too short to find without false alarms); every form returned has at least 7 characters."""
    forms: set[str] = set()
    for (raw,) in db.execute("SELECT phone_number FROM contacts WHERE phone_number IS NOT NULL").fetchall():
        digits = re.sub(r"\D", "", raw)
        if len(digits) >= 7:
            forms |= {raw.strip(), digits, digits[-10:]}
        if e164 := valid_e164(raw):
            forms |= {e164, e164.lstrip("+")}
    db.commit()
    return forms


def contact_posts(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The contact POSTs of an emulator request log."""
    return [r for r in log if r["route"] == CONTACTS_ROUTE]


def segments_for(batch: int, segment_size: int) -> int:
    return math.ceil(batch / segment_size)
