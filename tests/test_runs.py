"""Runs mean what they say: dry runs, old intervals, cleared runs (real DAG runs: dag.test, PostgreSQL, emulator).

* A dry run claims and sends nothing, shows it (its sending tasks end skipped, summarize's label and the report's
  first line say DRY RUN), and is red wherever the same live run would fail before sending.
* The ``dry_run`` Param takes auto / dry / live, and old confs' true / false / null keep their meaning.
* Only a run of the latest interval PATCHes the campaign's pacing; an old interval's run records it and says so;
  a cleared old run re-sends its own undelivered contacts and never re-paces.

Backfills and catch-up runs under the real scheduler are in tests/test_executor.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pipeline_helpers import (
    campaign_config,
    contact_posts,
    expected_claim,
    expected_reasons,
    ledger,
    run_dag,
    segments_for,
    task_instances,
    task_states,
)
from support import (
    CAMPAIGN_ID,
    CONTACTS_ROUTE,
    DIALER_DB,
    DIALER_URL,
    PROBE_CAMPAIGN_ID,
    PROBE_LIST_ID,
    TEST_CAMPAIGN,
    _admin_execute,
    _with_database,
    free_port,
)

from genesys_devkit.demo_data import contact_rows, emulator_seed, insert_contacts, insert_dial_history
from genesys_dialer.dags import tasks
from genesys_dialer.dags.run import DEFAULT_PERIOD, RunInfo, TaskTry, decide_mode, requested_mode

pytestmark = pytest.mark.usefixtures("airflow_db")

PATCH_ROUTE = "PATCH /api/v2/outbound/campaigns/{campaignId}"
WRITES = {CONTACTS_ROUTE, PATCH_ROUTE}


def _seed(db: Any, count: int = 300) -> None:
    insert_contacts(db, contact_rows(count, seed=5))
    insert_dial_history(db, CAMPAIGN_ID, end=datetime.now(UTC), days=7, per_day=200, answer_rate=0.22)


def _logs(capfd: Any, caplog: Any) -> str:
    """What the run logged: dag.test() prints task logs to stdout (structlog), plus stdlib records."""
    out, err = capfd.readouterr()
    return "\n".join([out, err, caplog.text])


def _writes(emulator: Any) -> list[str]:
    return [r["route"] for r in emulator.requests_log() if r["route"] in WRITES]


def _run_log(db: Any, run_id: str) -> tuple[str, bool, dict[str, Any]] | None:
    row = db.execute("SELECT outcome, dry_run, report FROM run_log WHERE run_id = %s", [run_id]).fetchone()
    db.commit()
    return row


def _summarize_label(dag_run: Any) -> str | None:
    (ti,) = [t for t in task_instances(dag_run.dag_id, dag_run.run_id) if t.task_id == "summarize"]
    return ti.rendered_map_index


# ------------------------------------------------------------------------------------------------ dry runs


def test_a_dry_run_claims_and_sends_nothing_and_shows_it(db, emulator, caplog, capfd):
    _seed(db)
    caplog.set_level("INFO")
    campaign_before = emulator.campaign()

    candidates = [cid for cid, _ in expected_claim(db, TEST_CAMPAIGN["batch_size"])]
    sendable = sum(1 for reason in expected_reasons(db, candidates).values() if reason is None)
    expected_segments = segments_for(sendable, TEST_CAMPAIGN["segment_size"])

    dag_run = run_dag(conf={"dry_run": "dry"})

    assert str(dag_run.state) == "success"
    states = task_states(dag_run)
    # The grid: the sending tasks are skipped (nothing sent), the rest succeeded.
    segments = [state for (task, _), state in states.items() if task == "create_segment"]
    assert len(segments) == expected_segments > 1 and set(segments) == {"skipped"}
    assert states[("apply_pacing", -1)] == "skipped"
    assert {states[(t, -1)] for t in ("resolve_campaign", "fetch_contact_batch", "compute_dial_ratio",
                                      "summarize")} == {"success"}
    assert _summarize_label(dag_run) == "DRY RUN: dry_run"
    # Nothing claimed, nothing sent, the campaign untouched.
    assert ledger(db) == {}
    assert _writes(emulator) == []
    assert emulator.campaign() == campaign_before
    # The report says so first, and what the live run would have done.
    logs = _logs(capfd, caplog)
    assert "===== DRY RUN, nothing claimed or sent. Run report: campaign itest" in logs
    assert "mode: DRY RUN (dry_run=dry was asked for)" in logs
    assert f"would claim {sendable} contacts in {expected_segments} segments" in logs
    assert "-> not applied: dry run" in logs
    outcome, dry, report = _run_log(db, dag_run.run_id)
    assert (outcome, dry, report["would_send"] > 0) == ("dry_run", True, True)
    applied = db.execute("SELECT dry_run, applied FROM pacing_decisions WHERE run_id = %s",
                         [dag_run.run_id]).fetchone()
    assert applied == (True, False)


@pytest.fixture
def probe(db, emulator, monkeypatch):
    """The probe campaign, by default healthy: its contact list has both columns, its connections work."""
    emulator.seed(emulator_seed(PROBE_CAMPAIGN_ID, PROBE_LIST_ID))
    conn = json.loads(__import__("os").environ["AIRFLOW_CONN_GENESYS_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_CONN_GENESYS_PROBE", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW_CONN_DIALER_PROBE", DIALER_URL)
    insert_contacts(db, contact_rows(80, seed=9))
    return conn


def _break(probe_conn, emulator, monkeypatch, what: str) -> str:
    """Make the probe campaign's live run fail before sending; return what the failure must name."""
    if what == "unknown campaign":
        emulator.reset()
        return PROBE_CAMPAIGN_ID
    if what == "unknown contact list":  # the campaign exists (with a list of its own); the configured list does not
        emulator.reset()
        emulator.seed(emulator_seed(PROBE_CAMPAIGN_ID, "0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a"))
        return PROBE_LIST_ID
    if what == "missing columns":
        emulator.reset()
        emulator.seed(emulator_seed(PROBE_CAMPAIGN_ID, PROBE_LIST_ID, segment_column="region"))
        return "has no column(s) ['segment']"
    if what == "bad credentials":
        monkeypatch.setenv("AIRFLOW_CONN_GENESYS_PROBE", json.dumps({**probe_conn, "password": "not-the-secret"}))
        return "invalid_client"
    if what == "unreachable database":
        monkeypatch.setenv("AIRFLOW_CONN_DIALER_PROBE", f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
        return "Connection refused"
    raise AssertionError(what)


@pytest.mark.parametrize("what", ["unknown campaign", "unknown contact list", "missing columns", "bad credentials",
                                  "unreachable database"])
def test_a_dry_run_is_red_wherever_the_live_run_would_fail_before_sending(
    db, emulator, probe, monkeypatch, caplog, capfd, what
):
    caplog.set_level("INFO")
    named = _break(probe, emulator, monkeypatch, what)

    dry = run_dag(key="probe", conf={"dry_run": "dry"})
    dry_logs = _logs(capfd, caplog)
    live = run_dag(key="probe", conf={"dry_run": "live"}, logical_date=datetime.now(UTC) + timedelta(seconds=1))
    live_logs = _logs(capfd, caplog)

    assert str(live.state) == "failed"  # the premise: the live run fails ...
    assert str(dry.state) == "failed", task_states(dry)  # ... so the dry run is red too
    assert named in dry_logs and named in live_logs
    assert db.execute("SELECT count(*) FROM dispatch_ledger").fetchone()[0] == 0
    db.commit()
    assert _writes(emulator) == []  # neither sent a contact or a PATCH
    states = task_states(dry)
    assert states[("summarize", -1)] == "failed"
    if what != "unreachable database":  # (with the database down, no report can be recorded)
        assert "dry run failed: the same live run would have failed before sending" in dry_logs
        assert _run_log(db, dry.run_id)[:2] == ("failed", True)
        assert _summarize_label(dry) == "DRY RUN: failed"


def test_a_database_without_the_packages_schema_turns_both_runs_red_and_says_how_to_apply_it(
    db, emulator, probe, monkeypatch, caplog, capfd
):
    """The package installed or upgraded without `genesys-dialer apply-schema` on the dialer database (here:
    only the user's contacts table). Whichever statement meets a missing table or function first, the dry and
    the live run fail before anything is claimed or sent, and the error names the command, not only PostgreSQL's
    "relation does not exist"."""
    import psycopg

    caplog.set_level("INFO")
    bare = f"{DIALER_DB}_bare"
    _admin_execute(f'DROP DATABASE IF EXISTS "{bare}" WITH (FORCE)')
    _admin_execute(f'CREATE DATABASE "{bare}"')
    try:
        with psycopg.connect(_with_database(DIALER_URL, bare)) as conn:
            conn.execute("CREATE TABLE contacts (id BIGSERIAL PRIMARY KEY, phone_number TEXT, status TEXT, "
                         "suppression_status TEXT, created_at TIMESTAMPTZ DEFAULT now() - interval '1 day', "
                         "updated_at TIMESTAMPTZ DEFAULT now())")
            conn.execute("INSERT INTO contacts (phone_number, status, suppression_status) "
                         "VALUES ('(317) 555-0100', 'active', 'none')")
        monkeypatch.setenv("AIRFLOW_CONN_DIALER_PROBE", _with_database(DIALER_URL, bare))
        dry = run_dag(key="probe", conf={"dry_run": "dry"})
        dry_logs = _logs(capfd, caplog)
        live = run_dag(key="probe", conf={"dry_run": "live"}, logical_date=datetime.now(UTC) + timedelta(seconds=1))
        live_logs = _logs(capfd, caplog)
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{bare}" WITH (FORCE)')
    assert (str(dry.state), str(live.state)) == ("failed", "failed"), (task_states(dry), task_states(live))
    for logs in (dry_logs, live_logs):
        assert "`genesys-dialer apply-schema --conn-id dialer_probe`" in logs
        assert "the dialer database (connection 'dialer_probe') has no table this package needs" in logs
    assert _writes(emulator) == []


def test_the_probe_campaign_is_healthy_by_default(db, emulator, probe):
    """The counterpart of the failures above: with nothing broken, the probe's dry run is green."""
    dag_run = run_dag(key="probe", conf={"dry_run": "dry"})
    assert str(dag_run.state) == "success", task_states(dag_run)


@pytest.mark.parametrize("conf", [{"dry_run": "sometimes"}, {"dry_run": "dry", "batch_size": 0}])
def test_a_dry_run_with_invalid_params_is_refused(db, emulator, conf):
    """Airflow validates the Params when the run is created (UI, API, CLI, dag.test): nothing runs."""
    from airflow.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        run_dag(conf=conf)
    assert db.execute("SELECT count(*) FROM run_log").fetchone()[0] == 0
    db.commit()
    assert _writes(emulator) == []


# ----------------------------------------------------------------------------------------- dry_run values


def test_dry_run_values_and_their_old_spellings():
    assert [requested_mode(v) for v in ("auto", "dry", "live", None, True, False)] == [
        "auto", "dry", "live", "auto", "dry", "live"]
    with pytest.raises(ValueError, match="dry_run='sometimes'"):
        requested_mode("sometimes")


@pytest.mark.parametrize(("conf", "dry"), [({"dry_run": True}, True), ({"dry_run": False}, False),
                                           ({"dry_run": None}, False), ({}, False)])
def test_old_confs_keep_their_meaning(db, emulator, conf, dry):
    insert_contacts(db, contact_rows(40, seed=3))
    dag_run = run_dag(conf=conf)
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert _run_log(db, dag_run.run_id)[1] is dry
    assert bool(ledger(db)) is not dry
    assert bool(_writes(emulator)) is not dry


def test_the_trigger_form_shows_three_named_choices_and_accepts_the_old_ones():
    from genesys_dialer.dags.builder import build_campaign_dag

    param = build_campaign_dag(campaign_config()).params.get_param("dry_run")
    assert param.value == "auto"
    assert param.schema["enum"][:3] == ["auto", "dry", "live"]
    labels = param.schema["values_display"]
    assert labels["auto"].startswith("auto: dry for backfills and catch-up runs")
    assert {labels[str(v).lower() if v is not None else "null"] for v in param.schema["enum"][3:]} == {
        "true (old spelling of dry)", "false (old spelling of live)", "empty (old spelling of auto)"}
    for value in ("auto", "dry", "live", True, False, None):
        param.resolve(value)  # validates
    with pytest.raises(Exception, match="is not one of"):
        param.resolve("yes")


# -------------------------------------------------------------------------------------------- old intervals


def test_a_run_of_an_old_interval_sends_its_batch_but_not_its_pacing(db, emulator, caplog, capfd):
    _seed(db)
    caplog.set_level("INFO")
    before = emulator.campaign()
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)

    dag_run = run_dag(logical_date=past)  # a manual run for a past date: live by default, not the latest interval

    assert str(dag_run.state) == "success", task_states(dag_run)
    claimed = set(ledger(db, dag_run.run_id))
    assert claimed and claimed == {cid for cid, _ in expected_claim(db, TEST_CAMPAIGN["batch_size"], past)}
    assert _writes(emulator) and PATCH_ROUTE not in _writes(emulator)
    assert emulator.campaign() == before
    assert db.execute("SELECT dry_run, applied FROM pacing_decisions WHERE run_id = %s",
                      [dag_run.run_id]).fetchone() == (False, False)
    db.commit()
    logs = _logs(capfd, caplog)
    assert "-> not applied: old interval (it ended 120 min ago, more than one schedule period of 15 min" in logs
    assert _run_log(db, dag_run.run_id)[2]["pacing_not_applied"].startswith("old interval")
    assert task_states(dag_run)[("apply_pacing", -1)] == "success"


def test_a_cleared_old_run_resends_its_own_undelivered_contacts_and_never_repaces(db, emulator):
    _seed(db)
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    emulator.fault(route=CONTACTS_ROUTE, sequence=[200, 400, 400])  # two segments refused (a client error)
    first = run_dag(logical_date=past)
    assert str(first.state) == "failed"
    undelivered = {cid for cid, (status, *_) in ledger(db, first.run_id).items() if status in ("claimed", "failed")}
    assert undelivered

    emulator.admin("DELETE", "faults")
    posts_before = len(contact_posts(emulator.requests_log()))
    again = run_dag(logical_date=past)  # the same run, cleared

    assert again.run_id == first.run_id and str(again.state) == "success", task_states(again)
    rows = ledger(db, again.run_id)
    assert set(rows) == set(ledger(db, first.run_id)) == {  # nothing new claimed
        cid for cid, _ in expected_claim(db, TEST_CAMPAIGN["batch_size"], past)}
    assert {status for status, *_ in rows.values()} <= {"dispatched", "skipped"}
    resent = contact_posts(emulator.requests_log())[posts_before:]
    assert sum(p["contactCount"] for p in resent) == len(
        {cid for cid in undelivered if rows[cid][0] == "dispatched"})
    assert PATCH_ROUTE not in _writes(emulator)  # neither try paced the campaign


def _info(run_id: str, *, run_type: str, age: timedelta, requested: str = "auto") -> RunInfo:
    now = datetime.now(UTC)
    return RunInfo(run_id=run_id, run_type=run_type, requested=requested, batch_size=50, data_interval_start=None,
                   data_interval_end=now - age, started_at=now, period=DEFAULT_PERIOD)


def test_which_runs_are_dry_by_default():
    campaign = campaign_config()
    now = datetime.now(UTC)
    cases = {
        ("scheduled", timedelta(minutes=1)): False,  # on time
        ("scheduled", timedelta(minutes=16)): True,  # catch-up
        ("manual", timedelta(days=3)): False,  # a manual run for a past date sends (and does not pace)
        ("backfill", timedelta(days=3)): True,
        ("asset_triggered", timedelta(minutes=1)): False,
    }
    for (run_type, age), dry in cases.items():
        assert decide_mode(campaign, _info("r", run_type=run_type, age=age), now).dry_run is dry, run_type
    assert not decide_mode(campaign, _info("r", run_type="backfill", age=timedelta(days=3), requested="live"),
                           now).dry_run
    assert decide_mode(campaign, _info("r", run_type="scheduled", age=timedelta(0), requested="dry"), now).dry_run
    live_catchup = campaign.model_copy(update={"catchup_runs": "live"})
    assert not decide_mode(live_catchup, _info("r", run_type="scheduled", age=timedelta(hours=2)), now).dry_run


def test_an_old_scheduled_run_cleared_after_a_live_try_resends_instead_of_going_dry(db, emulator):
    """resolve_campaign decides the mode once per run: a scheduled run cleared after its interval became old
    would be dry by default, but one that claimed on a live try stays live to re-send what it claimed."""
    insert_contacts(db, contact_rows(60, seed=4))
    live = run_dag(conf={"dry_run": "live"})  # a live try that claimed
    assert ledger(db, live.run_id)
    campaign = campaign_config()

    task = TaskTry("resolve_campaign", -1, 1)
    cleared = tasks.resolve_campaign(campaign, _info(live.run_id, run_type="scheduled", age=timedelta(hours=1)),
                                     task)
    assert cleared["mode"]["dry_run"] is False
    assert cleared["mode"]["reason"].startswith("a cleared run re-sending its own undelivered contacts")

    never_claimed = tasks.resolve_campaign(campaign, _info("scheduled__never", run_type="scheduled",
                                                           age=timedelta(hours=1)), task)
    assert never_claimed["mode"]["dry_run"] is True and "catch-up" in never_claimed["mode"]["reason"]


# ------------------------------------------------------------------------------------- promises of a retry


def test_will_retry_follows_the_retry_policy_and_the_tries_left():
    from genesys_dialer.genesys.errors import GenesysClientError, GenesysServerError, GenesysTransientError
    from genesys_dialer.genesys.retry import will_retry

    assert will_retry(GenesysServerError("500"), 1, 3) and will_retry(GenesysTransientError("503"), 3, 3)
    assert not will_retry(GenesysTransientError("503"), 4, 3)  # the last try
    assert not will_retry(GenesysTransientError("503"), 1, 0)  # retries: 0
    assert not will_retry(GenesysClientError("400"), 1, 3)  # the policy fails it at once


def test_a_failing_segment_promises_a_retry_only_when_one_is_left(db, emulator, probe, caplog, capfd):
    insert_contacts(db, contact_rows(60, seed=6))
    caplog.set_level("INFO")
    emulator.fault(route=CONTACTS_ROUTE, sequence=[500])

    # retries: 0 (the itest campaign): nothing will retry the segment, and its log must not say otherwise.
    failed = run_dag()
    logs = _logs(capfd, caplog)
    assert str(failed.state) == "failed"
    assert "a retry of this task" not in logs.replace("no retry of this task", "")
    assert "stay claimed by this run and wait: no retry of this task is left for this error" in logs
    caplog.clear()

    # retries: 1 (the probe campaign): the 500 is retried by the task, as its log says, and the run recovers.
    emulator.fault(route=CONTACTS_ROUTE, sequence=[500])
    recovered = run_dag(key="probe")
    logs = _logs(capfd, caplog)
    assert str(recovered.state) == "success", task_states(recovered)
    assert "stay claimed by this run and are sent by a retry of this task (try 2 of 2)" in logs
