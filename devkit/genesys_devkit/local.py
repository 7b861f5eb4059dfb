"""The parts ``make demo`` and ``make ui`` run on this machine: PostgreSQL, the emulator, a DAGs folder, Airflow.

PostgreSQL: ``$DIALER_DATABASE_URL`` (a server where databases may be created and dropped), else the local
server on 127.0.0.1:5432 if it lets the ``postgres`` user in, else an embedded one (the ``pgserver`` package)
in the work directory. Every database is created with a unique name and dropped afterwards unless kept.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import requests
import yaml

from genesys_devkit.demo_data import (
    DEMO_DNC_LIST_ID,
    contact_rows,
    emulator_seed,
    insert_contacts,
    insert_dial_history,
)

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
# The DAG file a user puts in their DAGs folder ("airflow" must appear in it: Airflow's safe mode skips files
# that mention neither "airflow" nor "dag").
DAG_FILE = (
    "from genesys_dialer.dags.factory import campaign_dags  # an Airflow DAG file\n"
    "\n"
    "globals().update(campaign_dags(__file__))\n"
)
EMULATOR_CLIENT_ID = "devkit-client"


@dataclass(frozen=True)
class DemoCampaign:
    key: str
    campaign_id: str
    contact_list_id: str
    name: str
    answer_rate: float  # of the seeded dial history

    @property
    def dag_id(self) -> str:
        return f"genesys_predictive_{self.key}"


RENEWALS = DemoCampaign("demo_renewals", "3b1f1a36-5a8e-4d7c-9a52-7f1d2c0e6a01",
                        "8c2d4e6f-1a3b-4c5d-9e7f-0a1b2c3d4e5f", "Demo renewals", 0.18)
WINBACK = DemoCampaign("demo_winback", "4c2e2b47-6b9f-4e8d-8b63-8a2e3d1f7b12",
                       "9d3e5f70-2b4c-4d6e-8f80-1b2c3d4e5f60", "Demo win-back", 0.11)


def with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


class PostgresServer:
    """A PostgreSQL server this tool may create databases on, and the databases it created."""

    def __init__(self, url: str, description: str, embedded: Any = None) -> None:
        self.url = url
        self.description = description
        self.embedded = embedded
        self.created: list[str] = []

    @classmethod
    def find(cls, workdir: Path, *, keep: bool) -> PostgresServer:
        named = os.environ.get("DIALER_DATABASE_URL")
        if named:
            return cls(named, f"the server of $DIALER_DATABASE_URL ({urlsplit(named).hostname or 'local socket'})")
        try:
            with psycopg.connect(LOCAL_SERVER, connect_timeout=2):
                return cls(LOCAL_SERVER, "the local server on 127.0.0.1:5432")
        except psycopg.Error:
            pass
        with warnings.catch_warnings():  # platformdirs' note that XDG_RUNTIME_DIR is unset: not the user's concern
            warnings.simplefilter("ignore")
            import pgserver

            # Kept: the server outlives this process (how to stop it is printed); else it stops with it.
            server = pgserver.get_server(str(workdir / "pgdata"), cleanup_mode=None if keep else "stop")
        return cls(server.get_uri(), f"an embedded server (pgserver) in {workdir / 'pgdata'}", server)

    def database_url(self, database: str) -> str:
        return with_database(self.url, database)

    def create_database(self, database: str) -> str:
        with psycopg.connect(self.url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{database}"')
        self.created.append(database)
        return self.database_url(database)

    def drop_databases(self) -> None:
        if not self.created:
            return
        with psycopg.connect(self.url, autocommit=True) as admin:
            for database in reversed(self.created):
                admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        self.created.clear()

    def close(self, *, keep: bool) -> None:
        """Drop the databases this tool created (unless kept); stop an embedded server (unless kept)."""
        try:
            if not keep:
                self.drop_databases()
        finally:
            if self.embedded is not None and not keep:
                import logging

                logging.getLogger("pgserver").setLevel(logging.WARNING)
                self.embedded.cleanup()

    def how_to_open(self, database: str) -> list[str]:
        """What to type to look at a kept database, and to get rid of it."""
        url = self.database_url(database)
        if self.embedded is None:
            return [f"psql '{url}'", f"drop it: psql '{self.url}' -c 'DROP DATABASE \"{database}\"'"]
        from pgserver._commands import POSTGRES_BIN_PATH

        stop = f"import pgserver; pgserver.get_server('{self.embedded.pgdata}', cleanup_mode='stop').cleanup()"
        return [
            f"{POSTGRES_BIN_PATH / 'psql'} '{url}'",
            f'stop the embedded server: {sys.executable} -c "{stop}"',
        ]


def seed_dialer_database(url: str, campaigns: list[DemoCampaign], contacts: int) -> None:
    """The project's schema, ``contacts`` rows with the flaws real lists have, 7 days of dial history each."""
    from genesys_dialer.ledger.schema import apply_schema

    with psycopg.connect(url) as conn:
        apply_schema(conn)
        insert_contacts(conn, contact_rows(contacts))
        for campaign in campaigns:
            insert_dial_history(conn, campaign.campaign_id, end=datetime.now(UTC), days=7, per_day=1500,
                                answer_rate=campaign.answer_rate)


def seed_emulator(base_url: str, campaigns: list[DemoCampaign]) -> None:
    seed: dict[str, list[Any]] = {}
    for campaign in campaigns:
        one = emulator_seed(campaign.campaign_id, campaign.contact_list_id)
        one["campaigns"][0]["name"] = campaign.name
        one["contactLists"][0]["name"] = f"{campaign.name} list"
        for kind, entities in one.items():
            known = {entity["id"] for entity in seed.setdefault(kind, [])}
            seed[kind] += [entity for entity in entities if entity["id"] not in known]  # shared DNC lists once
    requests.post(f"{base_url}/__emulator__/seed", json=seed, timeout=10).raise_for_status()


def write_dags_folder(folder: Path, campaigns: list[DemoCampaign], **fields: Any) -> Path:
    """The two-line DAG file and a campaigns.yaml beside it, as a user's DAGs folder would hold them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "genesys_predictive.py").write_text(DAG_FILE)
    # Set up as docs/compliance.md asks: each contact's time zone written to the column the list's phone column
    # reads it from (callableTimeColumn), opt-outs added to the campaign's internal DNC list.
    entries = [{"key": c.key, "campaign_id": c.campaign_id, "contact_list_id": c.contact_list_id,
                "list_timezone_column": "timezone", "dnc_list_id": DEMO_DNC_LIST_ID,
                # The demo seeds dial history to pace on; the loop on Genesys' own outcomes is make bench's.
                "pacing_source": "dial_history", **fields} for c in campaigns]
    (folder / "campaigns.yaml").write_text(yaml.safe_dump({"campaigns": entries}, sort_keys=False))
    return folder


def airflow_environment(home: Path, dags_folder: Path, metadata_url: str, dialer_url: str, emulator_url: str,
                        client_secret: str, **settings: str) -> dict[str, str]:
    """This process's environment without the caller's Airflow settings, plus the stack's own."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW_", "AIRFLOW__", "GENESYS_DIALER_")) and k != "PYTHONPATH"}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
        "AIRFLOW_CONN_DIALER_POSTGRES": dialer_url,
        "AIRFLOW_CONN_GENESYS_DEFAULT": json.dumps({
            "conn_type": "genesys_cloud", "host": emulator_url, "login": EMULATOR_CLIENT_ID,
            "password": client_secret,
        }),
        **settings,
    })
    return env


def sqlalchemy_url(libpq_url: str) -> str:
    """Airflow's metadata URL for a PostgreSQL server URL (the psycopg 3 driver the package already needs)."""
    return libpq_url.replace("postgresql://", "postgresql+psycopg://", 1)


def airflow_cli(env: dict[str, str], log: Path, *args: str, timeout: float = 600) -> None:
    """``airflow <args>`` with its output appended to ``log``; a failure names the command and the log."""
    with log.open("a") as out:
        out.write(f"\n$ airflow {' '.join(args)}\n")
        out.flush()
        result = subprocess.run([sys.executable, "-m", "airflow", *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"`airflow {' '.join(args)}` exited {result.returncode}: see {log}")
