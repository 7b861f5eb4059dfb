"""``make ui`` as a user meets it: it starts, prints a URL and a login, the grid page loads with the run's
labelled segments, and Ctrl-C stops every process it started and drops its databases."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from support import SERVER_URL, VENV_BIN

pytestmark = pytest.mark.executor  # a real api-server, scheduler and dag-processor

RENEWALS = "genesys_predictive_demo_renewals"
LABEL = re.compile(r"^\d{8}T\d{4}-s\d{3} \([\d,]+ contacts\)$")  # "20261130T1821-s002 (1,000 contacts)"


class Output:
    """The lines a child process prints, read in the background so waiting on one never blocks."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(process,), daemon=True).start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._queue.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if found := re.search(pattern, line):
                return found
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=1)
            except queue.Empty:
                continue
            self.lines.append(line)
            if found := re.search(pattern, line):
                return found
        raise AssertionError(f"no line matching {pattern!r} after {timeout:.0f} s:\n" + "\n".join(self.lines))

    def drain(self) -> str:
        while not self._queue.empty():
            self.lines.append(self._queue.get())
        return "\n".join(self.lines)


def _databases(names: list[str]) -> set[str]:
    import psycopg

    with psycopg.connect(SERVER_URL) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", [names]).fetchall()
    return {row[0] for row in rows}


@pytest.mark.timeout(900)
def test_make_ui_serves_the_grid_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "GENESYS_DIALER"))}
    env["DIALER_DATABASE_URL"] = SERVER_URL  # this session's server; the UI creates databases of its own
    env["TMPDIR"] = str(tmp_path)  # its work directory (logs, AIRFLOW_HOME) goes with the test's
    ui = subprocess.Popen(
        [str(VENV_BIN / "genesys-dialer-ui"), "--port", "0", "--contacts", "3000"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
    )
    out = Output(ui)
    descendants: list[psutil.Process] = []
    try:
        databases = out.wait_for(r"databases (\S+) and (\S+)$", 120).groups()
        welcome = out.wait_for(r"Airflow UI: (http://127\.0\.0\.1:\d+)\s+login: (\S+) / (\S+)", 420)
        url, user, password = welcome.groups()
        grid_path = out.wait_for(rf"{RENEWALS}: http://127\.0\.0\.1:\d+(/dags/{RENEWALS}/runs/\S+/mapped)", 5)[1]
        run_id = grid_path.split("/runs/")[1].split("/tasks/")[0]
        assert _databases(list(databases)) == set(databases)

        # The grid page (the UI's single-page app) answers over HTTP.
        page = requests.get(f"{url}{grid_path}", timeout=30)
        assert page.status_code == 200 and "<title>Airflow</title>" in page.text

        # The run it triggered finishes, and its segments carry their labels, as the grid shows them.
        out.wait_for(rf"run {re.escape(run_id)} of {RENEWALS}: success", 420)
        token = requests.post(f"{url}/auth/token", json={"username": user, "password": password}, timeout=10)
        assert token.status_code == 201
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        instances = requests.get(f"{url}/api/v2/dags/{RENEWALS}/dagRuns/{run_id}/taskInstances",
                                 params={"task_id": "create_segment"}, headers=headers, timeout=30).json()
        segments = sorted(ti["rendered_map_index"] for ti in instances["task_instances"])
        assert segments and all(LABEL.match(label) for label in segments), segments
        assert [label.split(" ")[0][-4:] for label in segments] == [f"s{i:03d}" for i in range(len(segments))]
        assert {ti["state"] for ti in instances["task_instances"]} == {"success"}

        # What a person sees: the page rendered by Chromium shows the labelled segments.
        from genesys_devkit.screenshot import capture

        picture = tmp_path / "grid.png"
        text = capture(url, user, password, grid_path, picture)
        assert all(label in text for label in segments)
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size > 20_000

        descendants = psutil.Process(ui.pid).children(recursive=True)
        assert len(descendants) >= 3  # api-server, scheduler, dag-processor and their workers
    finally:
        ui.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            code = ui.wait(timeout=120)
        except subprocess.TimeoutExpired:
            ui.kill()
            raise
    log = out.drain()
    assert code == 0, log
    assert "Stopped Airflow and the emulator; dropped the databases" in log
    _gone, alive = psutil.wait_procs(descendants, timeout=10)
    assert not alive, [p.pid for p in alive]
    assert _databases(list(databases)) == set()


def test_make_ui_says_what_failed_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """A server it cannot use: a clear line naming it, exit 1, no traceback."""
    env: dict[str, Any] = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "GENESYS_DIALER"))}
    env["DIALER_DATABASE_URL"] = "postgresql://postgres@127.0.0.1:1/postgres"
    env["TMPDIR"] = str(tmp_path)
    result = subprocess.run([str(VENV_BIN / "genesys-dialer-ui"), "--port", "0"], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 1
    assert "make ui failed:" in result.stdout and "127.0.0.1" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
