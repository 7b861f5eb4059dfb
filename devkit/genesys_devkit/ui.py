"""``make ui``: Airflow's UI on two demo campaigns, with the emulator playing Genesys Cloud, until Ctrl-C.

What starts: PostgreSQL databases for the contacts and for Airflow's metadata (on ``$DIALER_DATABASE_URL``, the
local server, or an embedded one), the emulator with two seeded campaigns, demo contacts and dial history, and
Airflow's api-server, scheduler (LocalExecutor) and dag-processor as separate processes, like a deployment. One
run of each campaign DAG is triggered so the grid has something to show. Ctrl-C (SIGINT) or SIGTERM stops every
process this started, by pid, and drops the databases it created unless ``--keep``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, TextIO

import requests

from genesys_devkit.local import (
    EMULATOR_CLIENT_ID,
    RENEWALS,
    WINBACK,
    DemoCampaign,
    PostgresServer,
    airflow_cli,
    airflow_environment,
    seed_dialer_database,
    seed_emulator,
    sqlalchemy_url,
    unique_name,
    write_dags_folder,
)
from genesys_devkit.progress import Steps, seconds

CAMPAIGNS = [RENEWALS, WINBACK]
AIRFLOW_PROCESSES = (
    ("api-server", ["api-server", "--host", "127.0.0.1", "--port", "{port}"]),
    ("scheduler", ["scheduler"]),
    ("dag-processor", ["dag-processor"]),
)
USER = "admin"


def free_port(preferred: int) -> int:
    """``preferred`` if nothing listens there (0: any free port)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    """Everything ``make ui`` runs; ``start()`` brings it up, ``stop()`` takes down what it started."""

    def __init__(self, *, port: int = 8080, keep: bool = False, contacts: int = 20_000,
                 out: TextIO | None = None) -> None:
        self.requested_port = port
        self.keep = keep
        self.contacts = contacts
        self.steps = Steps(6, out)
        self.workdir = Path(tempfile.mkdtemp(prefix="genesys-dialer-ui-"))
        self.logs = self.workdir / "logs"
        self.logs.mkdir()
        self.password = secrets.token_urlsafe(9)
        self.server: PostgresServer | None = None
        self.emulator: Any = None
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._exit = contextlib.ExitStack()
        self.port = 0
        self.runs: dict[str, str] = {}  # dag_id -> the run triggered at start
        self._token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- start --------------------------------------------------------------------------------------------
    def start(self) -> Stack:
        steps = self.steps
        with steps.step("PostgreSQL: databases for the contacts and for Airflow's metadata"):
            self.server = PostgresServer.find(self.workdir, keep=self.keep)
            dialer = unique_name("genesys_dialer_ui")
            metadata = unique_name("genesys_dialer_ui_airflow")
            dialer_url = self.server.create_database(dialer)
            metadata_url = self.server.create_database(metadata)
        steps.detail(f"{self.server.description}; databases {dialer} and {metadata}")
        from genesys_emulator import EmulatorServer

        secret = uuid.uuid4().hex
        with steps.step("Genesys Cloud emulator: starting, with two predictive campaigns and their contact lists"):
            emulator = self.emulator = self._exit.enter_context(
                EmulatorServer(port=0, client_id=EMULATOR_CLIENT_ID, client_secret=secret)
            )
            seed_emulator(emulator.base_url, CAMPAIGNS)
        steps.detail(f"{emulator.base_url}: " + ", ".join(repr(c.name) for c in CAMPAIGNS))
        with steps.step(f"Seeding {self.contacts:,} contacts and 7 days of dial history per campaign"):
            seed_dialer_database(dialer_url, CAMPAIGNS, self.contacts)
        with steps.step("Airflow: AIRFLOW_HOME, `airflow db migrate` (PostgreSQL), the genesys_api pool, a login"):
            self.port = free_port(self.requested_port)
            self.env = self._airflow_env(dialer_url, metadata_url, emulator.base_url, secret)
            airflow_cli(self.env, self.logs / "setup.log", "db", "migrate")
            airflow_cli(self.env, self.logs / "setup.log", "pools", "set", "genesys_api", "5",
                        "Genesys Cloud API calls")
        if self.port != self.requested_port and self.requested_port:
            steps.detail(f"port {self.requested_port} is taken: using {self.port}")
        with steps.step("Starting Airflow's api-server, scheduler and dag-processor; waiting for the DAGs"):
            for name, args in AIRFLOW_PROCESSES:
                self._spawn(name, [a.format(port=self.port) for a in args])
            self._wait(self._api_up, 180, "the API server to answer")
            self._wait(self._dags_listed, 240, "the dag-processor to parse the campaign DAGs")
        with steps.step("Triggering one run of each campaign DAG"):
            for campaign in CAMPAIGNS:
                self.runs[campaign.dag_id] = self.trigger(campaign)
        return self

    def _airflow_env(self, dialer_url: str, metadata_url: str, emulator_url: str, secret: str) -> dict[str, str]:
        home = self.workdir / "airflow"
        home.mkdir()
        passwords = home / "passwords.json"
        passwords.write_text(json.dumps({USER: self.password}))
        dags = write_dags_folder(self.workdir / "dags", CAMPAIGNS, schedule=None, batch_size=5000,
                                 segment_size=1000, agents=20)
        return airflow_environment(
            home, dags, sqlalchemy_url(metadata_url), dialer_url, emulator_url, secret,
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM="8",  # LocalExecutor worker processes (32 by default)
            AIRFLOW__CORE__FERNET_KEY=base64.urlsafe_b64encode(os.urandom(32)).decode(),
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{USER}:admin",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
            AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
            AIRFLOW__API__PORT=str(self.port),
            AIRFLOW__API__BASE_URL=self.url,
            AIRFLOW__API__WORKERS="1",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.url}/execution/",
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="10",
            AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL="10",
        )

    def _spawn(self, name: str, args: list[str]) -> None:
        out = (self.logs / f"{name}.log").open("wb")
        # Its own session: Ctrl-C reaches this process only, which stops the children in order.
        process = subprocess.Popen([sys.executable, "-m", "airflow", *args], env=self.env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        self.processes.append((name, process))

    def _wait(self, ready: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            for name, process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited {process.returncode}: see {self.logs / (name + '.log')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}: see {self.logs}")
            time.sleep(1)

    # -- the REST API, as the UI uses it ---------------------------------------------------------------------
    def api(self, method: str, path: str, body: Any = None) -> Any:
        if self._token is None:
            response = requests.post(f"{self.url}/auth/token", json={"username": USER, "password": self.password},
                                     timeout=10)
            response.raise_for_status()
            self._token = response.json()["access_token"]
        response = requests.request(method, f"{self.url}/api/v2/{path}", json=body, timeout=20,
                                    headers={"Authorization": f"Bearer {self._token}"})
        response.raise_for_status()
        return response.json() if response.content else None

    def _api_up(self) -> bool:
        try:
            return requests.get(f"{self.url}/api/v2/monitor/health", timeout=2).ok
        except requests.RequestException:
            return False

    def _dags_listed(self) -> bool:
        listed = self.api("GET", "dags?dag_id_pattern=genesys_predictive_")
        return {d["dag_id"] for d in listed["dags"]} >= {c.dag_id for c in CAMPAIGNS}

    def trigger(self, campaign: DemoCampaign) -> str:
        self.api("PATCH", f"dags/{campaign.dag_id}", {"is_paused": False})
        run = self.api("POST", f"dags/{campaign.dag_id}/dagRuns", {"logical_date": None, "conf": {}})
        return run["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}")["state"]

    # -- while it runs --------------------------------------------------------------------------------------
    def print_welcome(self) -> None:
        say = self.steps.say
        say()
        say(f"Airflow UI: {self.url}   login: {USER} / {self.password}")
        for dag_id, run_id in self.runs.items():
            say(f"  {dag_id}: {self.url}/dags/{dag_id}/runs/{run_id}/tasks/create_segment/mapped")
        say(f"Logs: {self.logs}/(api-server|scheduler|dag-processor|setup).log; task logs under "
            f"{self.workdir / 'airflow' / 'logs'}")
        say("Trigger more runs from the UI (Params: batch_size, dry_run). Ctrl-C stops everything"
            + (" and keeps the databases." if self.keep else " and drops the databases (KEEP=1 keeps them)."))

    def serve(self, stop: threading.Event) -> None:
        """Report each triggered run as it finishes; watch the processes; return when ``stop`` is set."""
        pending = dict(self.runs)
        while not stop.wait(2.0):
            for name, process in self.processes:
                if process.poll() is not None:
                    self.steps.say(f"{name} exited {process.returncode}: see {self.logs / (name + '.log')}")
                    return
            for dag_id, run_id in list(pending.items()):
                with contextlib.suppress(requests.RequestException):
                    state = self.run_state(dag_id, run_id)
                    if state in ("success", "failed"):
                        self.steps.say(f"run {run_id} of {dag_id}: {state}")
                        del pending[dag_id]

    # -- stop -----------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop every process this started (by pid, newest first), the emulator, then the databases."""
        started = time.monotonic()
        stopped = [name for name, running in (("Airflow", self.processes), ("the emulator", self.emulator)) if running]
        databases = list(self.server.created) if self.server else []
        for _, process in reversed(self.processes):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)  # its group: the api-server's and executor's workers
        for _, process in reversed(self.processes):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # a worker the leader left behind
        self._exit.close()
        if self.server is not None:
            self.server.close(keep=self.keep)
        if not self.keep:
            shutil.rmtree(self.workdir / "pgdata", ignore_errors=True)  # an embedded server's, stopped above
        if not stopped and not databases:
            return
        done = [f"stopped {' and '.join(stopped)}"] if stopped else []
        if databases:
            done.append("kept the databases" if self.keep else "dropped the databases")
        summary = "; ".join(done)
        self.steps.say(f"{summary[0].upper()}{summary[1:]} ({seconds(time.monotonic() - started)}). "
                       f"Logs stay in {self.logs}")
        if self.keep and self.server is not None:
            for database in databases:
                for line in self.server.how_to_open(database):
                    self.steps.say(f"  {line}")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="genesys-dialer-ui", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080, help="the UI's port; 0: any free one (default: 8080, "
                        "or a free one when 8080 is taken)")
    parser.add_argument("--keep", action="store_true", help="keep the databases (and an embedded server)")
    parser.add_argument("--contacts", type=int, default=20_000, help="contacts to seed (default: %(default)s)")
    args = parser.parse_args(argv)

    def interrupt(*_: Any) -> None:
        raise KeyboardInterrupt

    # While starting, Ctrl-C or SIGTERM interrupts the start (and stops what already runs); once up, they end
    # the wait.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupt)
    stack = Stack(port=args.port, keep=args.keep, contacts=args.contacts)
    stack.steps.say("make ui: Airflow with the Genesys Cloud dialer feed, the emulator and demo data")
    stop = threading.Event()
    code = 0
    try:
        stack.start()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        stack.print_welcome()
        stack.serve(stop)
        if not stop.is_set():
            code = 1  # a process died
    except KeyboardInterrupt:
        stack.steps.say("\ninterrupted")
        code = 130
    except Exception as err:
        stack.steps.say(f"make ui failed: {err}")
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        stack.stop()
    return code

if __name__ == "__main__":
    sys.exit(main())
