"""Helpers shared by the pipeline tests: run a campaign DAG (in-process or on the executor) and read what it did."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from support import BREAKER_KEY, CAMPAIGN_ID, CONFIG_PATH, CONTACT_LIST_ID, CONTACTS_ROUTE

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


# The rules the package applies, restated here independently of its SQL (defaults of the campaign config).
CALLABLE_STATUSES = {"active"}
INACTIVE_STATUSES = {"inactive", "closed"}
SUPPRESSION_VALUES = {"do_not_call"}


def norm(value: str | None) -> str:
    return (value or "").strip().lower()


def e164(raw: str | None, region: str = "US") -> str | None:
    """The number in E.164 with libphonenumber directly (not through the package), None if it is not valid."""
    import phonenumbers

    if raw is None or not raw.strip():
        return None
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def number_region(number: str) -> str | None:
    import phonenumbers

    return phonenumbers.region_code_for_number(phonenumbers.parse(number))


def single_time_zone(number: str) -> str | None:
    import phonenumbers
    from phonenumbers import timezone

    zones = [z for z in timezone.time_zones_for_number(phonenumbers.parse(number)) if z != "Etc/Unknown"]
    return zones[0] if len(zones) == 1 else None


def expected_batch(db: Any, batch_size: int, created_before: datetime | None = None) -> list[tuple[int, str | None]]:
    """Independently of the package's SQL: the claim's candidates (the first contacts by id that are not
    inactive, created before the cutoff), with their raw phone."""
    sql = "SELECT id, phone_number, status FROM contacts"
    params: list[Any] = []
    if created_before is not None:
        sql += " WHERE created_at < %s"
        params.append(created_before)
    rows = db.execute(sql + " ORDER BY id", params).fetchall()
    db.commit()
    return [(r[0], r[1]) for r in rows if norm(r[2]) not in INACTIVE_STATUSES][:batch_size]


def expected_claim(db: Any, batch_size: int, created_before: datetime | None = None) -> list[tuple[int, str | None]]:
    return expected_batch(db, batch_size, created_before)


def expected_reasons(db: Any, ids: list[int], *, campaign_id: str = CAMPAIGN_ID) -> dict[int, str | None]:
    """Independently of the package's SQL: why each contact of a fresh batch (in claim order) is held back,
    None for those that are sent. Suppression is by number across every contact; a number already claimed or
    delivered for the campaign (or earlier in the batch) is a duplicate."""
    contacts = {
        r[0]: (r[1], norm(r[2]), norm(r[3]))
        for r in db.execute("SELECT id, phone_number, status, suppression_status FROM contacts").fetchall()
    }
    dnc = {r[0] for r in db.execute("SELECT phone_e164 FROM dnc_numbers").fetchall()}
    taken = {r[0] for r in db.execute(
        "SELECT phone_e164 FROM dispatch_ledger WHERE campaign_id = %s AND phone_e164 IS NOT NULL "
        "AND status IN ('claimed', 'failed', 'dispatched') AND NOT contact_id = ANY(%s)", [campaign_id, ids],
    ).fetchall()}
    db.commit()
    suppressed_by: dict[str, set[int]] = {}
    for cid, (raw, _, suppression) in contacts.items():
        if suppression in SUPPRESSION_VALUES and (number := e164(raw)):
            suppressed_by.setdefault(number, set()).add(cid)
    reasons: dict[int, str | None] = {}
    for cid in ids:
        raw, status, suppression = contacts[cid]
        number = e164(raw)
        if suppression in SUPPRESSION_VALUES:
            reason = "suppressed"
        elif status in INACTIVE_STATUSES:
            reason = "inactive"
        elif status not in CALLABLE_STATUSES:
            reason = "unknown_status"
        elif number in dnc:
            reason = "dnc_number"
        elif suppressed_by.get(number, set()) - {cid}:
            reason = "suppressed_number"
        elif number is None:
            reason = "missing_phone" if raw is None or not raw.strip() else "invalid_phone"
        elif number in taken:
            reason = "duplicate_number"
        elif number_region(number) in ("US", "CA") and not single_time_zone(number):
            reason = "unknown_timezone"  # US / Canadian numbers need a time zone by default
        else:
            reason = None
            taken.add(number)
        reasons[cid] = reason
    return reasons


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


# -- exactly once: what every fault case asserts ---------------------------------------------------------------
def posts_per_contact(log: list[dict[str, Any]], *, applied: bool = False) -> Counter[str]:
    """How many contact POSTs carried each contact id (the emulator's request log). ``applied``: only those that
    Genesys applied (a 2xx, whether or not its answer reached the client)."""
    counts: Counter[str] = Counter()
    for entry in contact_posts(log):
        if applied and not 200 <= (entry["status"] or 0) < 300:
            continue
        counts.update(i for i in entry["contactIds"] or [] if i)
    return counts


def queue_entries(emulator: Any, contact_list_id: str = CONTACT_LIST_ID) -> Counter[str]:
    """How many times each contact id entered the dialing queue (a contact queued twice is dialed twice)."""
    history = emulator.admin("GET", f"contactlists/{contact_list_id}/queue/history")
    return Counter(history["entries"])


@dataclass(frozen=True)
class Delivery:
    """What the checks counted, for the figures."""

    claimed: int
    dispatched: int
    skipped: int
    pending: int
    in_doubt: int
    contact_posts: int
    max_posts_per_contact: int
    max_queue_entries: int


def check_delivery(db: Any, emulator: Any, *, campaign_id: str, run_ids: list[str] | None = None,
                   contact_list_id: str = CONTACT_LIST_ID, all_sent: bool = True) -> Delivery:
    """0 lost, 0 queued twice, ledger = list, from the ledger and the emulator (never the hook's own word).

    * ledger = list: the contact list holds exactly the contacts the ledger says were dispatched;
    * 0 queued twice: no contact entered the dialing queue twice, no contact was applied by two POSTs;
    * 0 lost (``all_sent``): every claimed contact is dispatched or skipped with a reason, none left in doubt.
    """
    sql = "SELECT genesys_contact_id, status, sending_at IS NOT NULL FROM dispatch_ledger WHERE campaign_id = %s"
    params: list[Any] = [campaign_id]
    if run_ids is not None:
        sql += " AND run_id = ANY(%s)"
        params.append(run_ids)
    rows = db.execute(sql, params).fetchall()
    db.commit()
    status = {cid: st for cid, st, _ in rows}
    dispatched = {cid for cid, st in status.items() if st == "dispatched"}
    pending = {cid for cid, st in status.items() if st in ("claimed", "failed")}
    in_doubt = {cid for cid, _, doubtful in rows if doubtful}
    listed = {c["id"] for c in emulator.contacts(contact_list_id)}
    assert listed == dispatched, (
        f"ledger != list: {len(listed - dispatched)} in the list but not dispatched, "
        f"{len(dispatched - listed)} dispatched but not in the list")
    log = emulator.requests_log()
    applied = posts_per_contact(log, applied=True)
    twice = {cid: n for cid, n in applied.items() if n > 1}
    assert not twice, f"{len(twice)} contacts were applied by more than one POST, e.g. {list(twice.items())[:3]}"
    entries = queue_entries(emulator, contact_list_id)
    requeued = {cid: n for cid, n in entries.items() if n > 1}
    assert not requeued, f"{len(requeued)} contacts entered the dialing queue twice, e.g. {list(requeued.items())[:3]}"
    assert set(entries) == listed, "a contact in the list never entered the queue, or one not in it did"
    if all_sent:
        assert not pending, f"{len(pending)} claimed contacts were never sent ({len(in_doubt)} in doubt)"
    posts = posts_per_contact(log)
    return Delivery(
        claimed=len(status), dispatched=len(dispatched), skipped=sum(1 for st in status.values() if st == "skipped"),
        pending=len(pending), in_doubt=len(in_doubt), contact_posts=len(contact_posts(log)),
        max_posts_per_contact=max(posts.values(), default=0), max_queue_entries=max(entries.values(), default=0),
    )


# -- the shared circuit breaker, from its Variables ---------------------------------------------------------------
def variables(prefix: str) -> dict[str, Any]:
    """The metadata DB's Variables whose key starts with ``prefix`` (decrypted)."""
    from airflow.models import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(Variable).filter(Variable.key.startswith(prefix)).all()
        return {row.key: row.val for row in rows}


def breaker_generations(key: str = BREAKER_KEY) -> list[tuple[float, float | None]]:
    """Every opening of the breaker, oldest first: (opened_at, when that generation ended), where it ended at the
    next opening, or at its close; None for the last one if it never closed."""
    values = variables(key)
    if key not in values:
        return []
    record = json.loads(values[key])
    current = float(record["opened_at"])
    # Racing writers can land an older opening last: the one stored is what every writer goes by from then on.
    openings = [*sorted({float(t) for t in record.get("history") or [] if float(t) < current}), current]
    closed = json.loads(values.get(f"{key}__closed") or "{}")
    last_end = closed.get("closed_at") if closed.get("gen") == openings[-1] else None
    ends: list[float | None] = [*openings[1:], last_end]
    return list(zip(openings, ends, strict=True))


def received_at(entry: dict[str, Any]) -> float:
    """When Genesys received the request (a request held by injected latency answers much later)."""
    return datetime.fromisoformat(entry["receivedAt"].replace("Z", "+00:00")).timestamp()


def check_breaker_windows(log: list[dict[str, Any]], *, open_seconds: float, probe_allowance: int) -> dict[str, Any]:
    """For every opening: no API request reached Genesys while it was open, and at most ``probe_allowance``
    while it was half-open. 0.5 s of slack: a request in flight when it opened is logged as it arrives."""
    generations = breaker_generations()
    if not generations:
        return {"breaker": "never opened"}
    assert generations[-1][1] is not None, "the breaker opened and never closed again"
    api = [e for e in log if (e["path"] or "").startswith("/api/v2/")]
    probes = []
    for opened, ended in generations:
        assert ended is not None
        while_open = [e for e in api if opened + 0.5 < received_at(e) < min(opened + open_seconds, ended)]
        assert while_open == [], f"{len(while_open)} requests reached Genesys while the breaker was open: " + str(
            [(round(received_at(e) - opened, 2), e["method"], e["route"], e["status"]) for e in while_open]
            + [("openings", [round(t - opened, 2) for t, _ in generations])])
        half_open = [e for e in api if opened + open_seconds <= received_at(e) <= ended]
        assert len(half_open) <= probe_allowance, f"{len(half_open)} requests in half-open: " + str(
            [(round(received_at(e) - opened, 2), e["method"], e["status"]) for e in half_open])
        probes.append(len(half_open))
    first, (last_opened, closed) = generations[0][0], generations[-1]
    return {"breaker": f"opened {len(generations)}x and closed", "requests_while_open": 0, "probes": probes,
            "recovered_after_s": round((closed or last_opened) - first, 1)}
