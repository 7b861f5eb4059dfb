"""Benchmark delivery at the Genesys rate limit, at the default settings, under a real Airflow deployment.

Run: ``.venv/bin/python benchmarks/bench_throughput.py [--contacts 1000000] [--small 10000] [--one-client-only]``

What runs: PostgreSQL databases of its own (``throughput_bench_*``, dropped at the end), the Genesys emulator with
its rate limiter on (300 requests a minute per OAuth client, fixed 60 s windows, at most 1,000 contacts per
request) and two OAuth clients, and Airflow 3 as deployed (api-server, scheduler with the LocalExecutor,
dag-processor; the ``genesys_api`` pool with its default 5 slots). Two campaigns are configured with the
defaults (``segment_size: auto``, ``contacts_per_request: 1000``, ...) except ``schedule: null`` and
``batch_size``; the second spreads its segments over two connections (``genesys_conn_ids``), one per client.

Runs, one after the other:

1. campaign ``tp_one``, ``batch_size`` = ``--small`` (10,000): the task RSS of a small batch;
2. campaign ``tp_one``, ``batch_size`` = ``--contacts``: one OAuth client, ceiling 300,000 contacts/min;
3. campaign ``tp_two``, the same contacts (another campaign claims them too), two clients: ceiling 600,000/min.

Printed for each: contacts delivered, the time from the first contact POST to the last and over the whole
create_segment phase (first segment's start to last one's end), contacts/s and their share of the ceiling, the
429 answers (from the emulator's log), the segments, and the peak RSS of the claim and segment tasks. The
contacts' numbers are normalized before Airflow starts (``genesys-dialer normalize``, as docs/operations.md
advises before a first run on a large table); the figures are about delivery. Before Airflow starts it also
times the phone walk each deciding task runs first, over the rows just imported (all within the look-back),
against the chunk-by-chunk reading of that window the walk did before it got its first pass.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import requests
import yaml

from genesys_devkit.demo_data import emulator_seed
from genesys_devkit.local import DAG_FILE, PostgresServer, airflow_cli, airflow_environment, sqlalchemy_url
from genesys_devkit.ui import AIRFLOW_PROCESSES, USER, Stack, free_port

OUT = Path(__file__).with_name("out") / "throughput.json"
LIMIT_PER_MINUTE = 300
CONTACTS_PER_REQUEST = 1000
MAX_BATCH = 1_000_000  # the config schema's largest batch_size (the runs set theirs in their conf)
CLIENTS = {"bench-client-a": uuid.uuid4().hex, "bench-client-b": uuid.uuid4().hex}
CAMPAIGNS = {
    "tp_one": ("6a1b2c3d-0000-4000-8000-00000000a001", "6a1b2c3d-0000-4000-8000-00000000b001"),
    "tp_two": ("6a1b2c3d-0000-4000-8000-00000000a002", "6a1b2c3d-0000-4000-8000-00000000b002"),
}
SECOND_CONN = "genesys_second"


def seed_contacts(url: str, count: int) -> float:
    """``count`` eligible contacts with distinct valid US numbers, created yesterday; then their numbers
    normalized as ``genesys-dialer normalize`` does. Returns the seconds normalization took."""
    from genesys_dialer.compliance.phones import refresh_phones
    from genesys_dialer.ledger.schema import apply_schema

    with psycopg.connect(url) as conn:
        apply_schema(conn)
        conn.execute(
            """
            INSERT INTO contacts (phone_number, status, suppression_status, first_name, last_name, created_at)
            SELECT '+1' || (ARRAY['212','312','415','617','713','206','305','404','503','702'])[1 + i %% 10]
                   || (200 + (i / 10 / 10000) %% 800)::text || lpad(((i / 10) %% 10000)::text, 4, '0'),
                   'active', 'none', 'Bench' || i, 'Contact', now() - interval '1 day'
            FROM generate_series(0, %s - 1) AS i
            """,
            [count],
        )
        conn.commit()
        conn.execute("ANALYZE contacts")
        conn.commit()
        started = time.monotonic()
        refresh_phones(conn, "US", max_rows=count * 2, lookback=timedelta(minutes=60))
        return time.monotonic() - started


def walk_figures(url: str) -> dict[str, float]:
    """The phone walk every deciding task runs first, just after the import (every row within the look-back):
    ``refresh_phones`` as the tasks run it, against the chunk-by-chunk reading of the whole window it replaced
    (``phones_changed.sql`` 5,000 rows at a time into Python, nothing to parse here). Medians of 3."""
    from genesys_dialer.compliance.phones import CHUNK_ROWS, refresh_phones
    from genesys_dialer.queries import load_sql

    def chunked(conn: Any) -> float:
        started = time.monotonic()
        cursor: dict[str, Any] = {"region": "US", "after_updated_at": "-infinity", "after_id": 0, "limit": CHUNK_ROWS}
        while True:
            page = conn.execute(load_sql("phones_changed"), cursor).fetchall()
            conn.commit()
            if len(page) < CHUNK_ROWS:
                return time.monotonic() - started
            cursor.update(after_id=page[-1][0], after_updated_at=page[-1][2])

    with psycopg.connect(url) as conn:
        walks = sorted(refresh_phones(conn, "US", max_rows=10**7, lookback=timedelta(minutes=60)).seconds
                       for _ in range(3))
        baseline = sorted(chunked(conn) for _ in range(3))
    return {"walk_s": round(walks[1], 2), "walk_chunked_s": round(baseline[1], 2)}


class BenchStack(Stack):
    """``make ui``'s stack (the same processes and settings), with the benchmark's campaigns and clients."""

    def __init__(self, contacts: int) -> None:
        super().__init__(port=0, keep=False, contacts=contacts, out=sys.stdout)

    def start(self) -> BenchStack:  # type: ignore[override]
        say = self.steps.say
        self.server = PostgresServer.find(self.workdir, keep=False)
        suffix = uuid.uuid4().hex[:8]
        dialer_url = self.server.create_database(f"throughput_bench_{suffix}")
        metadata_url = self.server.create_database(f"throughput_bench_airflow_{suffix}")
        self.dialer_url = dialer_url
        from genesys_emulator import EmulatorServer

        (first, first_secret), (second, second_secret) = CLIENTS.items()
        self.emulator = self._exit.enter_context(EmulatorServer(
            port=0, client_id=first, client_secret=first_secret, extra_clients=f"{second}:{second_secret}",
            rate_limit_per_minute=LIMIT_PER_MINUTE, enforce_limits=True, rate_limit_scope="client",
            max_contacts_per_request=CONTACTS_PER_REQUEST, max_contacts_per_list=max(1_000_000, self.contacts),
            log_contact_ids=False, request_log_size=200_000,
        ))
        seed: dict[str, list[Any]] = {}
        for campaign_id, list_id in CAMPAIGNS.values():
            for kind, entities in emulator_seed(campaign_id, list_id).items():
                known = {e["id"] for e in seed.setdefault(kind, [])}
                seed[kind] += [e for e in entities if e["id"] not in known]
        requests.post(f"{self.emulator.base_url}/__emulator__/seed", json=seed, timeout=30).raise_for_status()
        say(f"emulator {self.emulator.base_url}: {LIMIT_PER_MINUTE} requests/min per OAuth client (2 clients), "
            f"at most {CONTACTS_PER_REQUEST} contacts per request")
        started = time.monotonic()
        normalize = seed_contacts(dialer_url, self.contacts)
        say(f"seeded {self.contacts:,} contacts in {time.monotonic() - started:.0f} s "
            f"(normalizing their numbers: {normalize:.0f} s)")
        self.walk = walk_figures(dialer_url)
        say(f"phone walk over the {self.contacts:,} rows just imported (what each deciding task runs first): "
            f"{self.walk['walk_s']} s; reading the window chunk by chunk, as the walk did before: "
            f"{self.walk['walk_chunked_s']} s ({self.walk['walk_chunked_s'] / max(self.walk['walk_s'], 0.01):.1f}x)")
        self.port = free_port(0)
        self.env = self._bench_env(dialer_url, metadata_url)
        started = time.monotonic()
        airflow_cli(self.env, self.logs / "setup.log", "db", "migrate")
        airflow_cli(self.env, self.logs / "setup.log", "pools", "set", "genesys_api", "5", "Genesys Cloud API calls")
        for name, args in AIRFLOW_PROCESSES:
            self._spawn(name, [a.format(port=self.port) for a in args])
        self._wait(self._api_up, 240, "the API server to answer")
        self._wait(self._dags_listed, 300, "the dag-processor to parse the campaign DAGs")
        say(f"Airflow (LocalExecutor, pool genesys_api 5 slots) up in {time.monotonic() - started:.0f} s; "
            f"logs in {self.logs}")
        return self

    def _bench_env(self, dialer_url: str, metadata_url: str) -> dict[str, str]:
        import base64
        import os
        import secrets

        home = self.workdir / "airflow"
        home.mkdir()
        passwords = home / "passwords.json"
        passwords.write_text(json.dumps({USER: self.password}))
        dags = self.workdir / "dags"
        dags.mkdir()
        (dags / "genesys_predictive.py").write_text(DAG_FILE)
        entries = [
            {"key": key, "campaign_id": campaign_id, "contact_list_id": list_id, "schedule": None,
             "batch_size": min(self.contacts, MAX_BATCH), "list_timezone_column": "timezone",
             **({"genesys_conn_ids": ["genesys_default", SECOND_CONN]} if key == "tp_two" else {})}
            for key, (campaign_id, list_id) in CAMPAIGNS.items()
        ]
        (dags / "campaigns.yaml").write_text(yaml.safe_dump({"campaigns": entries}, sort_keys=False))
        (first, first_secret), (second, second_secret) = CLIENTS.items()
        env = airflow_environment(
            home, dags, sqlalchemy_url(metadata_url), dialer_url, self.emulator.base_url, first_secret,
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM="8",
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
        if os.environ.get("PYTHONPATH"):  # the Airflow processes run the code this process imports
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        env["AIRFLOW_CONN_GENESYS_DEFAULT"] = json.dumps({
            "conn_type": "genesys_cloud", "host": self.emulator.base_url, "login": first, "password": first_secret})
        env[f"AIRFLOW_CONN_{SECOND_CONN.upper()}"] = json.dumps({
            "conn_type": "genesys_cloud", "host": self.emulator.base_url, "login": second, "password": second_secret})
        return env

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """The REST API with patience: on a loaded machine the single api-server worker can take a while."""
        for attempt in range(1, 11):
            try:
                return super().api(method, path, body)
            except (requests.ConnectionError, requests.Timeout):
                if attempt == 10:
                    raise
                time.sleep(3)
        return None

    def _dags_listed(self) -> bool:
        listed = self.api("GET", "dags?dag_id_pattern=genesys_predictive_tp")
        return {d["dag_id"] for d in listed["dags"]} >= {f"genesys_predictive_{k}" for k in CAMPAIGNS}

    # -- one run ------------------------------------------------------------------------------------------
    def run(self, key: str, batch_size: int, clients: int) -> dict[str, Any]:
        dag_id = f"genesys_predictive_{key}"
        self.emulator.clear_requests_log()
        self.api("PATCH", f"dags/{dag_id}", {"is_paused": False})
        run = self.api("POST", f"dags/{dag_id}/dagRuns", {"logical_date": None, "conf": {"batch_size": batch_size}})
        run_id = run["dag_run_id"]
        deadline = time.monotonic() + 3600
        while (state := self.run_state(dag_id, run_id)) not in ("success", "failed"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{dag_id} {run_id} still {state} after an hour: see {self.logs}")
            time.sleep(3)
        dag_run = self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}")
        tis = self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")["task_instances"]
        segments = [t for t in tis if t["task_id"] == "create_segment"]
        results = [self._xcom(dag_id, run_id, "create_segment", t["map_index"]) for t in segments]
        claim = self._xcom(dag_id, run_id, "fetch_contact_batch", -1, key="claim") or {}
        log = self.emulator.requests_log()
        posts = [e for e in log if e["route"] and e["route"].endswith("/contacts") and e["method"] == "POST"]
        ok = [e for e in posts if e["status"] == 200]
        with psycopg.connect(self.dialer_url) as conn:
            dispatched = conn.execute(
                "SELECT count(*) FROM dispatch_ledger WHERE run_id = %s AND status = 'dispatched'", [run_id]
            ).fetchone()[0]
            # Wire time: each contact POST's round trip as the hook measured it (the run's request log).
            wire_ms, post_count = conn.execute(
                "SELECT coalesce(sum(elapsed_ms), 0), count(*) FROM request_log WHERE run_id = %s "
                "AND task_id = 'create_segment' AND endpoint = 'contacts_add'", [run_id]).fetchone()
        first_post, last_post = _stamp(min(e["receivedAt"] for e in ok)), _stamp(max(e["time"] for e in ok))
        seg_start = min(_stamp(t["start_date"]) for t in segments)
        seg_end = max(_stamp(t["end_date"]) for t in segments)
        ceiling = clients * LIMIT_PER_MINUTE * CONTACTS_PER_REQUEST / 60.0  # contacts/s
        post_window = (last_post - first_post).total_seconds()
        phase = (seg_end - seg_start).total_seconds()
        outcomes = [r or {} for r in results]
        budget_wait = sum((r.get("requests") or {}).get("budget_wait_seconds", 0) for r in outcomes)

        def beyond_the_wire(seconds: float) -> float | None:
            """Seconds per contact POST not spent on the wire or waiting for the budget."""
            return round((seconds - wire_ms / 1000 - budget_wait) / post_count, 3) if post_count else None

        figures = {
            "dag_id": dag_id, "run_state": dag_run["state"], "batch_size": batch_size, "clients": clients,
            "dispatched": dispatched, "contact_posts": len(posts), "status_429": sum(e["status"] == 429 for e in log),
            "segments": len(segments), "segment_labels": sorted(t.get("rendered_map_index") or "" for t in segments),
            "post_window_s": round(post_window, 1), "segment_phase_s": round(phase, 1),
            "run_s": round((_stamp(dag_run["end_date"]) - _stamp(dag_run["start_date"])).total_seconds(), 1),
            "contacts_per_s_posting": round(dispatched / post_window, 1) if post_window else None,
            "contacts_per_s_segments": round(dispatched / phase, 1) if phase else None,
            "ceiling_contacts_per_s": ceiling,
            "share_posting": round(dispatched / post_window / ceiling, 3) if post_window else None,
            "share_segments": round(dispatched / phase / ceiling, 3) if phase else None,
            "claim_rss_mib": claim.get("max_rss_mib"),
            "segment_rss_mib": max((r.get("max_rss_mib") or 0 for r in outcomes), default=None),
            "budget_wait_s": round(budget_wait, 1),
            "wire_s_per_request": round(wire_ms / 1000 / post_count, 3) if post_count else None,
            # Per request: the segment tasks' time not spent on the wire or waiting for the budget (task start,
            # DAG parse, XCom push, and the send loop's own work)...
            "overhead_s_per_request": beyond_the_wire(sum(t["duration"] or 0 for t in segments)),
            # ...and the send loop's alone: the ledger marks, page reads, the breaker and the request log.
            "loop_overhead_s_per_request": beyond_the_wire(sum(r.get("send_seconds") or 0 for r in outcomes)),
            "claim_task_s": next((t["duration"] for t in tis if t["task_id"] == "fetch_contact_batch"), None),
            # Where the run's time went: each task instance's queued, start and end, seconds from the run's start.
            "timeline": _timeline(_stamp(dag_run["start_date"]), tis),
        }
        print(_line(figures), flush=True)
        return figures

    def _xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int, key: str = "return_value") -> Any:
        with contextlib.suppress(requests.HTTPError):
            entry = self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
                                    f"?map_index={map_index}&deserialize=true")
            value = entry.get("value")
            if isinstance(value, str):
                with contextlib.suppress(ValueError):
                    value = json.loads(value)
            return value
        return None


def _timeline(run_start: datetime, tis: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def offset(value: str | None) -> float | None:
        return round((_stamp(value) - run_start).total_seconds(), 1) if value else None

    rows = [{"task": t["task_id"] + (f"[{t['map_index']}]" if t["map_index"] >= 0 else ""),
             "queued": offset(t.get("queued_when")), "start": offset(t["start_date"]), "end": offset(t["end_date"])}
            for t in tis]
    return sorted(rows, key=lambda r: (r["start"] is None, r["start"] or 0.0))


def _stamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _line(f: dict[str, Any]) -> str:
    share = f"{f['share_posting']:.1%}" if f["share_posting"] is not None else "n/a"
    share_seg = f"{f['share_segments']:.1%}" if f["share_segments"] is not None else "n/a"
    return (
        f"{f['dag_id']} batch {f['batch_size']:,} ({f['clients']} client(s), ceiling "
        f"{f['ceiling_contacts_per_s']:,.0f} contacts/s): {f['run_state']}, {f['dispatched']:,} dispatched in "
        f"{f['segments']} segments {f['segment_labels'][:2]}{'...' if f['segments'] > 2 else ''}\n"
        f"    posting (first POST -> last answer, {f['post_window_s']} s): {f['contacts_per_s_posting']} contacts/s "
        f"= {share} of the ceiling\n"
        f"    create_segment phase (first start -> last end, {f['segment_phase_s']} s): "
        f"{f['contacts_per_s_segments']} contacts/s = {share_seg}; whole run {f['run_s']} s "
        f"(claim task {f['claim_task_s']} s)\n"
        f"    per request: {f['wire_s_per_request']} s on the wire, {f['overhead_s_per_request']} s of task overhead "
        f"(segment task time - wire - budget wait), {f['loop_overhead_s_per_request']} s of it in the send loop\n"
        f"    429 answers: {f['status_429']}; contact POSTs {f['contact_posts']}; waited for the budget "
        f"{f['budget_wait_s']} s (all segments); peak RSS: claim task {f['claim_rss_mib']} MiB, "
        f"segment task {f['segment_rss_mib']} MiB\n"
        "    timeline (s from the run's start, queued/start/end): "
        + ", ".join(f"{t['task']} {t['queued']}/{t['start']}/{t['end']}" for t in f["timeline"])
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=1_000_000, help="the large batch (default 1,000,000)")
    parser.add_argument("--small", type=int, default=10_000, help="the small batch for the RSS comparison")
    parser.add_argument("--one-client-only", action="store_true", help="skip the two-client run")
    args = parser.parse_args()
    stack = BenchStack(args.contacts + args.small)
    started = time.monotonic()
    results: dict[str, Any] = {"contacts": args.contacts, "small": args.small, "runs": []}
    try:
        stack.start()
        results["phone_walk"] = stack.walk
        results["runs"].append(stack.run("tp_one", args.small, 1))
        results["runs"].append(stack.run("tp_one", args.contacts, 1))
        if not args.one_client_only:
            results["runs"].append(stack.run("tp_two", args.contacts, 2))
    finally:
        stack.stop()
    small, large = results["runs"][0], results["runs"][1]
    print(f"task RSS, {args.small:,} vs {args.contacts:,} contacts: claim {small['claim_rss_mib']} vs "
          f"{large['claim_rss_mib']} MiB, segment {small['segment_rss_mib']} vs {large['segment_rss_mib']} MiB")
    print(f"bench_throughput: {time.monotonic() - started:.0f} s in all; figures in {OUT}")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
