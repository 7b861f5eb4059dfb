"""``make demo``: one DAG run of a demo campaign on throwaway parts, told one line per step.

PostgreSQL: ``$DIALER_DATABASE_URL``, else the local server, else an embedded one (genesys_devkit.local).
Genesys Cloud: the emulator, in this process. Airflow: a temporary AIRFLOW_HOME with SQLite metadata and a
DAGs folder holding the two-line DAG file and a campaigns.yaml, as a user's would. The run is
``airflow dags test`` in a child process whose output (Airflow's own logs and every task's log) goes to a file;
this process follows the run's task instances, prints each as it finishes, then the run report from run_log.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from genesys_devkit.local import (
    EMULATOR_CLIENT_ID,
    RENEWALS,
    DemoCampaign,
    PostgresServer,
    airflow_cli,
    airflow_environment,
    seed_dialer_database,
    seed_emulator,
    unique_name,
    write_dags_folder,
)
from genesys_devkit.progress import Steps, seconds

FINISHED = {"success", "failed", "skipped", "upstream_failed", "removed"}


def run_demo(*, contacts: int, batch_size: int, keep: bool) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="genesys-dialer-demo-"))
    log = workdir / "airflow.log"
    steps = Steps(6)
    steps.say("make demo: one run of the Genesys Cloud dialer feed, against the emulator and a throwaway database")
    campaign = RENEWALS
    database = unique_name("genesys_dialer_demo")
    server: PostgresServer | None = None
    succeeded = False
    try:
        with steps.step("PostgreSQL: finding a server and creating the demo database"):
            server = PostgresServer.find(workdir, keep=keep)
            dialer_url = server.create_database(database)
        steps.detail(f"{server.description}; database {database}")
        with contextlib.ExitStack() as stack:
            from genesys_emulator import EmulatorServer

            secret = uuid.uuid4().hex
            with steps.step("Genesys Cloud emulator: starting, with one predictive campaign and its contact list"):
                emulator = stack.enter_context(
                    EmulatorServer(port=0, client_id=EMULATOR_CLIENT_ID, client_secret=secret)
                )
                seed_emulator(emulator.base_url, [campaign])
            steps.detail(f"{emulator.base_url}: campaign {campaign.name!r} ({campaign.campaign_id})")
            with steps.step(f"Seeding {contacts:,} contacts (with the flaws real lists have) and 7 days of "
                            "dial history"):
                seed_dialer_database(dialer_url, [campaign], contacts)
            with steps.step("Airflow: a temporary AIRFLOW_HOME, `airflow db migrate` (SQLite) and the genesys_api "
                            "pool"):
                dags = write_dags_folder(workdir / "dags", [campaign], batch_size=batch_size, segment_size=1000,
                                         agents=20, schedule=None)
                env = airflow_environment(
                    workdir / "airflow", dags, f"sqlite:///{workdir / 'airflow.db'}", dialer_url,
                    emulator.base_url, secret,
                )
                os.environ.clear()
                os.environ.update(env)  # this process reads the run's task instances and the contact list
                _log_to(log)
                airflow_cli(env, log, "db", "migrate")
                airflow_cli(env, log, "pools", "set", "genesys_api", "5", "Genesys Cloud API calls")
            with steps.step(f"One run of {campaign.dag_id} (`airflow dags test`), its tasks as they finish",
                            block=True):
                run = follow_run(campaign, env, log, steps)
            succeeded = run["state"] == "success"
            steps.heading("The run report (the summarize task's log and run_log.report)")
            for line in report_lines(dialer_url, run["run_id"]):
                steps.detail(line)
            steps.detail(f"contacts now in the emulator's contact list: {count_contacts(campaign):,} "
                         "(read back through the API, as a user would)")
    except Exception as err:  # a clear line, not a traceback: the log has the rest
        steps.say(f"make demo failed: {err}")
        if log.exists():
            steps.say(f"Airflow's logs: {log}")
        return 1
    finally:
        if server is not None:
            server.close(keep=keep)
        if not keep:
            _tidy(workdir, keep=log)
            if not log.exists():
                workdir.rmdir()
    steps.say(f"Airflow's own logs (db migrate, the run, every task's log): {log}")
    if keep and server is not None:
        steps.say(f"Kept the Airflow home (AIRFLOW_HOME={workdir / 'airflow'}) and the database {database} "
                  "(tables contacts, dispatch_ledger, pacing_decisions, run_log):")
        for line in server.how_to_open(database):
            steps.say(f"  {line}")
    else:
        steps.say(f"The database {database} was dropped; `make demo KEEP=1` keeps it and says how to open it.")
    steps.say("Next: `make ui` shows such runs in the Airflow UI; README.md says how to point the feed at a "
              "real Genesys Cloud org.")
    return 0 if succeeded else 1


def follow_run(campaign: DemoCampaign, env: dict[str, str], log: Path, steps: Steps) -> dict[str, Any]:
    """Run ``airflow dags test`` in a child process; print each task instance once it finishes."""
    with log.open("a") as out:
        out.write(f"\n$ airflow dags test {campaign.dag_id}\n")
        out.flush()
        child = subprocess.Popen([sys.executable, "-m", "airflow", "dags", "test", campaign.dag_id], env=env,
                                 stdout=out, stderr=subprocess.STDOUT)
        printed: set[tuple[str, int]] = set()
        try:
            while child.poll() is None:
                _print_finished(campaign.dag_id, printed, steps)
                time.sleep(0.5)
        finally:
            if child.poll() is None:  # interrupted: stop the run with us
                child.terminate()
                child.wait(30)
    _print_finished(campaign.dag_id, printed, steps)
    run = _dag_run(campaign.dag_id)
    if run is None:
        raise RuntimeError(f"`airflow dags test` exited {child.returncode} without a run: see {log}")
    if run["state"] != "success":  # a success is the report's first lines
        steps.detail(f"run {run['run_id']}: {run['state']}")
    return run


def _print_finished(dag_id: str, printed: set[tuple[str, int]], steps: Steps) -> None:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy.exc import OperationalError

    try:
        with create_session() as session:
            rows = session.query(TaskInstance).filter(TaskInstance.dag_id == dag_id).all()
            finished = [
                (ti.end_date, ti.task_id, ti.map_index, ti.rendered_map_index, str(ti.state), ti.duration)
                for ti in rows if str(ti.state) in FINISHED and (ti.task_id, ti.map_index) not in printed
            ]
    except OperationalError:  # SQLite busy while the run writes: look again next time
        return
    for _, task_id, map_index, label, state, duration in sorted(finished, key=lambda r: (r[0] is None, r[0])):
        printed.add((task_id, map_index))
        name = task_id if map_index < 0 else f"{task_id} {label or map_index}"
        took = seconds(duration) if duration is not None else ""
        steps.detail(f"{name:<54} {state:<8} {took}")  # fits "create_segment <end>-s000 (1,000,000 contacts)"


def _dag_run(dag_id: str) -> dict[str, Any] | None:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).first()
        return None if run is None else {"run_id": run.run_id, "state": str(run.state)}


def report_lines(dialer_url: str, run_id: str) -> list[str]:
    import psycopg

    from genesys_dialer.dags.report import RunReport

    with psycopg.connect(dialer_url) as conn:
        row = conn.execute("SELECT report FROM run_log WHERE run_id = %s", [run_id]).fetchone()
    if not row:
        return ["no report in run_log: summarize did not run (see the log)"]
    report = row[0] if isinstance(row[0], dict) else json.loads(row[0])
    return RunReport.from_dict(report).lines()


def count_contacts(campaign: DemoCampaign) -> int:
    from genesys_dialer.genesys.hook import GenesysHook

    return sum(1 for _ in GenesysHook().search_contacts(campaign.contact_list_id))


def _log_to(log: Path) -> None:
    """This process's own Airflow and hook logging goes to the log file too, not between the progress lines."""
    import logging

    import airflow  # noqa: F401 - configures logging; replace its console handlers afterwards

    handler = logging.FileHandler(log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers = [handler]


def _tidy(workdir: Path, *, keep: Path) -> None:
    """Remove the work directory but the log file."""
    for path in workdir.iterdir():
        if path != keep:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="genesys-dialer-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=20_000, help="contacts to seed (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=5_000, help="contacts the run claims (default: %(default)s)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the demo database (and an embedded server) and print how to open it")
    args = parser.parse_args(argv)
    return run_demo(contacts=args.contacts, batch_size=args.batch_size, keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
