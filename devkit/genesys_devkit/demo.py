"""``make demo``: the main job on embedded defaults, start to finish, leaving nothing behind.

PostgreSQL: ``$DIALER_DATABASE_URL`` (a server where a throwaway database may be created), else an
embedded throwaway server (``pgserver``). Genesys Cloud: the emulator, in this process. Airflow: a
temporary AIRFLOW_HOME with a SQLite metadata database; the run goes through ``dag.test()``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DEMO_CAMPAIGN_ID = "3b1f1a36-5a8e-4d7c-9a52-7f1d2c0e6a01"
DEMO_LIST_ID = "8c2d4e6f-1a3b-4c5d-9e7f-0a1b2c3d4e5f"
REPO = Path(__file__).resolve().parents[2]


def _database_url(workdir: Path) -> tuple[str, object | None]:
    named = os.environ.get("DIALER_DATABASE_URL")
    if named:
        return named, None
    import pgserver

    server = pgserver.get_server(str(workdir / "pgdata"), cleanup_mode="stop")
    return server.get_uri(), server


def _with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def _say(message: str = "") -> None:
    print(message, flush=True)


def run_demo(*, contacts: int, batch_size: int) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="genesys_dialer_demo_"))
    server_url, embedded = _database_url(workdir)
    database = f"genesys_dialer_demo_{uuid.uuid4().hex[:8]}"
    dialer_url = _with_database(server_url, database)
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    try:
        return _run(workdir, dialer_url, contacts=contacts, batch_size=batch_size)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        if embedded is not None:
            logging.getLogger("pgserver").setLevel(logging.WARNING)  # keep the summary the last thing printed
            embedded.cleanup()  # type: ignore[attr-defined]
        shutil.rmtree(workdir, ignore_errors=True)


def _run(workdir: Path, dialer_url: str, *, contacts: int, batch_size: int) -> int:
    import psycopg
    import yaml

    from genesys_devkit.demo_data import contact_rows, emulator_seed, insert_contacts, insert_dial_history
    from genesys_dialer.ledger.schema import apply_schema
    from genesys_emulator import EmulatorServer

    client_id, client_secret = "demo-client", uuid.uuid4().hex
    config_path = workdir / "campaigns.yaml"
    config_path.write_text(yaml.safe_dump({"campaigns": [{
        "key": "demo_renewals", "campaign_id": DEMO_CAMPAIGN_ID, "batch_size": batch_size,
        "segment_size": 1000, "agents": 20, "description": "make demo",
        "pacing_source": "dial_history",  # the demo seeds dial history; the Genesys-outcome loop: make bench
    }]}))
    with EmulatorServer(port=0, client_id=client_id, client_secret=client_secret) as emulator:
        os.environ.update({
            "AIRFLOW_HOME": str(workdir / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{workdir / 'airflow.db'}",
            "GENESYS_DIALER_CONFIG": str(config_path),
            "AIRFLOW_CONN_DIALER_POSTGRES": dialer_url,
            "AIRFLOW_CONN_GENESYS_DEFAULT": json.dumps({
                "conn_type": "genesys_cloud", "host": emulator.base_url, "login": client_id,
                "password": client_secret,
            }),
        })
        _say(f"== Genesys Cloud emulator on {emulator.base_url}")
        import requests

        requests.post(f"{emulator.base_url}/__emulator__/seed", json=emulator_seed(DEMO_CAMPAIGN_ID, DEMO_LIST_ID),
                      timeout=10).raise_for_status()

        _say(f"== Seeding PostgreSQL: {contacts} contacts (inactive, do-not-call, missing and malformed "
             "numbers among them) and 7 days of dial history")
        with psycopg.connect(dialer_url) as conn:
            apply_schema(conn)
            insert_contacts(conn, contact_rows(contacts))
            insert_dial_history(conn, DEMO_CAMPAIGN_ID, end=datetime.now(UTC), days=7, per_day=1500,
                                answer_rate=0.18)

        _say("== Preparing Airflow (temporary AIRFLOW_HOME, SQLite metadata)")
        airflow = [sys.executable, "-m", "airflow"]
        subprocess.run([*airflow, "db", "migrate"], check=True, capture_output=True)
        subprocess.run([*airflow, "pools", "set", "genesys_api", "5", "Genesys Cloud API calls"], check=True,
                       capture_output=True)

        _say("== Running one DAG run of genesys_predictive_demo_renewals (task logs follow)")
        from genesys_dialer.config import load_campaigns
        from genesys_dialer.dags.builder import build_campaign_dag
        from genesys_dialer.genesys.hook import GenesysHook

        dag = build_campaign_dag(load_campaigns(config_path)[0])
        dag_run = dag.test()

        with psycopg.connect(dialer_url) as conn:
            row = conn.execute("SELECT report FROM run_log WHERE run_id = %s", [dag_run.run_id]).fetchone()
        in_list = sum(1 for _ in GenesysHook().search_contacts(DEMO_LIST_ID))  # through the API, as a user would
        _say()
        _say("=" * 78)
        _say(f"Run {dag_run.run_id}: {dag_run.state}")
        if row:
            report = row[0]
            _say(json.dumps({k: report[k] for k in ("outcome", "claim", "ledger", "requests", "decision")},
                            indent=2, default=str))
        _say(f"Contacts now in the emulator's contact list {DEMO_LIST_ID}: {in_list}")
        _say("Where to look next:")
        _say("  * the summarize task's log above: the run report, line by line")
        _say("  * tables dispatch_ledger, pacing_decisions and run_log (include/sql/schema.sql)")
        _say("  * README.md: point the connection genesys_default at a real org, and run `make test`")
        _say("=" * 78)
        return 0 if str(dag_run.state) == "success" else 1


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="genesys-dialer-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=5_000)
    args = parser.parse_args(argv)
    return run_demo(contacts=args.contacts, batch_size=args.batch_size)


if __name__ == "__main__":
    sys.exit(main())
