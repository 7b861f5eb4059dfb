"""``make demo`` as a user meets it: a line per step with its duration, the tasks as they finish, the report,
Airflow's logs in a file whose path is printed, and (kept) a database the printed command opens."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import psycopg
import pytest
from support import SERVER_URL, VENV_BIN

SCREEN = 40  # lines: a terminal's screen, report included


@pytest.mark.timeout(600)
def test_make_demo_tells_the_run_step_by_step_and_keeps_the_database_when_asked(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "GENESYS_DIALER"))}
    env.update(DIALER_DATABASE_URL=SERVER_URL, TMPDIR=str(tmp_path))
    result = subprocess.run(
        [str(VENV_BIN / "genesys-dialer-demo"), "--contacts", "3000", "--batch-size", "2000", "--keep"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=540,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr[-3000:]
    lines = out.splitlines()
    assert len(lines) <= SCREEN, out
    assert result.stderr == "", result.stderr  # nothing of Airflow's on the terminal

    steps = [line for line in lines if re.match(r"\[\d/6\]", line)]
    assert [s[:5] for s in steps] == [f"[{i}/6]" for i in range(1, 7)], steps
    for step in steps[:4]:
        assert re.search(r" \.\.\. \d+(\.\d)? s$", step), step  # each with how long it took
    assert "db migrate" in steps[3]

    # create_segment's instances by their labels: "<interval end>-s<index> (<contacts> contacts)"
    task_line = re.compile(r"\s+(\S+(?: \d{8}T\d{4}-s\d{3} \([\d,]+ contacts\))?)\s+(success|failed)\s")
    tasks = {m[1]: m[2] for line in lines if (m := task_line.match(line))}
    segments = sorted(name for name in tasks if name.startswith("create_segment "))
    assert [re.search(r"-(s\d{3}) \(([\d,]+) contacts\)", name).groups() for name in segments] == [
        ("s000", "1,000"), ("s001", "790")]  # 2000 claimed, 210 of them held back, 1000 a segment
    assert set(tasks) == {"resolve_campaign", "withdraw_opt_outs", "sync_outcomes", "fetch_contact_batch",
                          "compute_dial_ratio", "apply_pacing", "summarize", *segments}
    assert set(tasks.values()) == {"success"}

    assert "      outcome: success" in lines
    assert any(line.startswith("      claimed 2000 contacts") for line in lines)
    assert any(line.startswith("      pacing (model) paced on answer rate") for line in lines)

    log = Path(re.search(r"Airflow's own logs \(.*\): (\S+)", out)[1])
    text = log.read_text()
    assert "airflow db migrate" in text and "Run report" in text  # the summarize task's own log is in there

    kept_url = re.search(r"^  psql '(\S+)'$", out, re.M)[1]
    database = kept_url.rsplit("/", 1)[1]
    try:
        with psycopg.connect(kept_url) as conn:
            assert conn.execute("SELECT outcome, claimed FROM run_log").fetchall() == [("success", 2000)]
    finally:
        with psycopg.connect(SERVER_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
