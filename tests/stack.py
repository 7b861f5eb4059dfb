"""A real Airflow deployment for the executor tests: api-server, scheduler, dag-processor and, under the
CeleryExecutor, two Celery workers, each its own process as in production.

The executor is chosen per stack (``local`` or ``celery``); everything else is shared with the session
(metadata DB, AIRFLOW_HOME, the emulator connection). Celery uses the machine's Redis (or the broker in
``TEST_CELERY_BROKER_URL``) as broker and the session's metadata database as result backend. Parallel
sessions never see each other's tasks: every Redis key of this session carries its own prefix (kombu's
``global_keyprefix``) and its tasks go to a queue named after the session (``[operators] default_queue``,
set for the whole session in ``support``).

Processes are stopped only by the pids this module started (and, after a kill, the children recorded for
them), never by name.
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import IO, Any

from support import AIRFLOW_URL, SESSION, TMP, VENV_BIN, airflow, free_port, serialized_dag_ids, wait_for

EXECUTORS = ("local", "celery")
# The manual-only campaign DAGs of the executor tests, unpaused when a stack starts.
MANUAL_EXECUTOR_DAGS = ("genesys_predictive_xrun", "genesys_predictive_xfault")
CELERY_WORKERS = 2
CELERY_CONCURRENCY = 3  # per worker: 6 slots for the 5-slot genesys_api pool
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"


def broker_url() -> str:
    return os.environ.get("TEST_CELERY_BROKER_URL") or DEFAULT_BROKER_URL


def _broker_reachable(url: str) -> str | None:
    """None if the broker answers, else why not (the fixture fails with it: no silent skip)."""
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
        return None
    except Exception as exc:  # kombu raises transport-specific errors
        return f"{type(exc).__name__}: {exc}"


def _forget_broker_state() -> None:
    """Leave nothing of this session in the broker: its Redis keys (queue, bindings, unacknowledged messages of
    killed workers), or on RabbitMQ its durable queue and exchange (both named after the session)."""
    queue = os.environ["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]
    if broker_url().startswith(("redis://", "rediss://")):
        import redis

        client = redis.Redis.from_url(broker_url())
        try:
            keys = list(client.scan_iter(match=f"{SESSION}:*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
    elif broker_url().startswith(("amqp://", "pyamqp://")):
        from kombu import Connection

        with Connection(broker_url(), connect_timeout=3) as conn:
            conn.default_channel.queue_delete(queue)
            conn.default_channel.exchange_delete(queue)


def stack_env(executor: str, port: int) -> dict[str, str]:
    """The environment of every process of a stack (and of the test's own ``airflow`` CLI calls)."""
    env = {
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
        "AIRFLOW__API__WORKERS": "1",
        # A killed worker's task instance is failed (and retried) after this, not after 5 minutes.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        # A metadata-DB session left idle in a transaction (a killed scheduler whose socket its orphaned
        # LocalExecutor workers still hold) is ended by PostgreSQL, releasing its dag_run locks: the same
        # setting as docker-compose.yaml (docs/deployment.md, "A killed scheduler").
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "genesys_dialer.metadata_db.CONNECT_ARGS",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC": "genesys_dialer.metadata_db.CONNECT_ARGS_ASYNC",
    }
    if os.environ.get("TEST_WITHOUT_METADATA_IDLE_TIMEOUT"):  # to reproduce the wedge it prevents
        for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC"):
            del env[key]
    if executor == "local":
        env["AIRFLOW__CORE__EXECUTOR"] = "LocalExecutor"
    elif executor == "celery":
        env.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CELERY__BROKER_URL": broker_url(),
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + AIRFLOW_URL.replace(
                    "postgresql://", "postgresql+psycopg://", 1),
                # Every Redis key of this session under its own prefix (ignored by other transports, where
                # the session's own queue name keeps sessions apart).
                "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": f"{SESSION}:",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(CELERY_CONCURRENCY),
            }
        )
    else:
        raise ValueError(f"unknown executor {executor!r}; one of {EXECUTORS}")
    return env


class AirflowStack:
    """The processes of one Airflow deployment; ``with AirflowStack("celery") as stack: ...``."""

    def __init__(self, executor: str) -> None:
        self.executor = executor
        self.port = free_port()
        self.env = stack_env(executor, self.port)
        self.logs = TMP / f"stack_logs_{executor}"
        self.logs.mkdir(exist_ok=True)
        self.task_logs = TMP / "airflow_home" / "logs"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._outputs: list[IO[str]] = []
        self._saved_env: dict[str, str | None] = {}
        self._orphans: list[Any] = []  # psutil.Process of children left behind by a killed process

    def __getitem__(self, key: str) -> Any:
        """``stack["task_logs"]``, ``stack["port"]``, ``stack["logs"]``: the fixture's former dict shape."""
        return getattr(self, key)

    # -- lifecycle ---------------------------------------------------------------------------------------
    def __enter__(self) -> AirflowStack:
        if self.executor == "celery" and (why := _broker_reachable(broker_url())):
            raise RuntimeError(
                f"the Celery stack needs a broker at {broker_url()} ({why}). Start Redis (see .ci/run) or "
                "set TEST_CELERY_BROKER_URL; `pytest -m 'not celery'` leaves the Celery runs out.")
        # The test's own `airflow` CLI calls (trigger, unpause) talk to this stack: same environment.
        self._saved_env = {key: os.environ.get(key) for key in self.env}
        os.environ.update(self.env)
        try:
            self._start("api-server", ["api-server", "--port", str(self.port), "--host", "127.0.0.1"])
            self.start_scheduler()
            self._start("dag-processor", ["dag-processor"])
            for index in range(CELERY_WORKERS if self.executor == "celery" else 0):
                self._start(f"worker-{index}", self._worker_args(index))
            wait_for(self._api_up, 120, "the API server")
            wait_for(lambda: serialized_dag_ids() >= set(MANUAL_EXECUTOR_DAGS), 180,
                     "the dag-processor to serialize the campaign DAGs")
            for name in self.worker_names:
                wait_for(lambda name=name: " ready." in self.log(name), 120, f"Celery {name} to be ready")
            for dag_id in MANUAL_EXECUTOR_DAGS:
                airflow("dags", "unpause", dag_id)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for name, process in self.processes.items():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._kill_tree(process.pid, name)
        self.reap_orphans()
        if self.executor == "celery":
            _forget_broker_state()
        for out in self._outputs:
            out.close()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    # -- processes ---------------------------------------------------------------------------------------
    def _start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        out = open(self.logs / f"{name}.log", "a")  # noqa: SIM115 - closed in stop()
        self._outputs.append(out)
        process = subprocess.Popen(
            [str(VENV_BIN / "airflow"), *args], stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, **self.env}, start_new_session=True,
        )
        self.processes[name] = process
        return process

    def _worker_args(self, index: int) -> list[str]:
        return [
            "celery", "worker", "--queues", os.environ["AIRFLOW__OPERATORS__DEFAULT_QUEUE"],
            "--concurrency", str(CELERY_CONCURRENCY), "--celery-hostname", f"{SESSION}_w{index}@%h",
            "--pid", str(TMP / f"celery-worker-{index}.pid"), "--skip-serve-logs",
            "--without-mingle", "--without-gossip",
        ]

    @property
    def worker_names(self) -> list[str]:
        return [name for name in self.processes if name.startswith("worker-")]

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _api_up(self) -> bool:
        import requests

        try:
            return requests.get(f"http://127.0.0.1:{self.port}/api/v2/monitor/health", timeout=2).ok
        except requests.RequestException:
            return False

    def start_scheduler(self) -> subprocess.Popen[bytes]:
        return self._start("scheduler", ["scheduler"])

    def kill_scheduler(self) -> list[int]:
        """SIGKILL the scheduler process alone, as an OOM kill or a node loss would: its children (the
        LocalExecutor's workers) live on as orphans. Returns their pids; they are stopped with the stack."""
        return self._kill(self.processes["scheduler"], children_too=False)

    def kill_worker(self, name: str) -> list[int]:
        """SIGKILL a Celery worker and every process under it (pool processes and their task processes)."""
        return self._kill(self.processes[name], children_too=True)

    def _kill(self, process: subprocess.Popen[bytes], *, children_too: bool) -> list[int]:
        import psutil

        children = psutil.Process(process.pid).children(recursive=True)
        victims = [psutil.Process(process.pid), *(children if children_too else [])]
        for victim in victims:
            victim.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        psutil.wait_procs(victims[1:], timeout=30)
        if not children_too:
            self._orphans += children
        return [child.pid for child in children]

    def _kill_tree(self, pid: int, name: str) -> None:
        import psutil

        try:
            root = psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for proc in tree:
            proc.kill()
        psutil.wait_procs(tree, timeout=30)
        print(f"{name} (pid {pid}) did not stop on SIGTERM within 30 s: killed")

    def reap_orphans(self) -> None:
        """Stop the children a killed process left behind (psutil checks each is still the same process)."""
        import psutil

        alive = [p for p in self._orphans if p.is_running()]
        for proc in alive:
            proc.terminate()
        _, still = psutil.wait_procs(alive, timeout=10)
        for proc in still:
            proc.kill()
        self._orphans = []

    def broker_backlog(self) -> dict[str, Any] | None:
        """What the broker holds for this session (Redis only; kombu keeps a queue as a list and delivered but
        unacknowledged messages in a hash, under the session's key prefix): the number of messages waiting on
        the session's queue, and the log path (dag/run/task/map index/try) of each unacknowledged workload."""
        if self.executor != "celery" or not broker_url().startswith(("redis://", "rediss://")):
            return None
        import base64
        import json

        import redis

        client = redis.Redis.from_url(broker_url())
        try:
            queue = os.environ["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]
            unacked = []
            for raw in client.hvals(f"{SESSION}:unacked"):
                message = json.loads(raw)[0]
                args = json.loads(base64.b64decode(message["body"]))[0]
                unacked.append(json.loads(args[0])["log_path"])
            return {"queued": client.llen(f"{SESSION}:{queue}"), "unacked": sorted(unacked)}
        finally:
            client.close()

    def running_task_processes(self) -> dict[str, Any]:
        """Task runner processes (title ``airflow worker -- <task instance id>``) by task instance id."""
        import psutil

        found = {}
        for proc in psutil.process_iter(["cmdline"]):
            words = " ".join(proc.info["cmdline"] or []).split()  # a set title may keep empty argv slots
            if words[:3] == ["airflow", "worker", "--"] and len(words) == 4:
                found[words[3]] = proc
        return found

    def owner_of(self, proc: Any) -> str | None:
        """Which of this stack's processes ``proc`` runs under (e.g. ``worker-1``), if any."""
        import psutil

        pids = {process.pid: name for name, process in self.processes.items()}
        try:
            for parent in proc.parents():
                if parent.pid in pids:
                    return pids[parent.pid]
        except psutil.NoSuchProcess:
            return None
        return None

