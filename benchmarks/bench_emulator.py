"""Benchmark the Genesys emulator: contact ingest rate over loopback and memory per million contacts.

Run: ``.venv/bin/python benchmarks/bench_emulator.py [--contacts 200000] [--batch 1000]``

The server runs in its own process (``python -m genesys_emulator``), so the figure is what one server
thread on one core sustains; the client pre-encodes every request body and reuses one keep-alive
``requests.Session``. Memory is measured twice: the RSS growth of the server process during the HTTP run,
and ``tracemalloc`` over a direct in-process ``Store`` ingest (no HTTP), both scaled to one million contacts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import tracemalloc

import requests

from genesys_emulator.config import EmulatorConfig
from genesys_emulator.store import Store

COLUMNS = ["lead_id", "phone", "first_name", "last_name", "time_zone", "priority"]


def make_batch(start: int, size: int) -> list[dict[str, object]]:
    """Contacts shaped like the DAGs' payload: stable caller-chosen id, six string columns."""
    return [
        {
            "id": f"lead-{n:010d}",
            "data": {
                "lead_id": str(n),
                "phone": f"+1317{n % 10_000_000:07d}",
                "first_name": f"First{n % 997}",
                "last_name": f"Lastname{n % 7919}",
                "time_zone": "America/Indiana/Indianapolis",
                "priority": str(n % 10),
            },
            "callable": True,
        }
        for n in range(start, start + size)
    ]


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("VmRSS not found")


def http_run(total: int, batch: int) -> tuple[float, float, int]:
    """Return (contacts/s, MiB of server RSS growth per million contacts, requests sent)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "genesys_emulator", "--port", "0", "--rate-limit-per-minute", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        base = line.rsplit(" ", 1)[-1]
        session = requests.Session()
        token = session.post(
            f"{base}/oauth/token",
            auth=("emulator-client", "emulator-secret"),
            data={"grant_type": "client_credentials"},
            timeout=10,
        ).json()["access_token"]
        session.headers.update({"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        list_ids = [
            session.post(
                f"{base}/api/v2/outbound/contactlists",
                json={
                    "name": name,
                    "columnNames": COLUMNS,
                    "phoneColumns": [{"columnName": "phone", "type": "cell"}],
                },
                timeout=10,
            ).json()["id"]
            for name in ("bench", "warm-up")
        ]
        url = f"{base}/api/v2/outbound/contactlists/{list_ids[0]}/contacts"
        bodies = [json.dumps(make_batch(i, batch)).encode() for i in range(0, total, batch)]
        warm = session.post(
            f"{base}/api/v2/outbound/contactlists/{list_ids[1]}/contacts",
            data=json.dumps(make_batch(0, batch)).encode(),
            timeout=30,
        )
        warm.raise_for_status()
        rss_before = rss_kib(proc.pid)
        started = time.perf_counter()
        for body in bodies:
            resp = session.post(url, data=body, timeout=30)
            if resp.status_code != 200:
                raise RuntimeError(f"ingest failed: {resp.status_code} {resp.text[:200]}")
            _ = resp.content
        elapsed = time.perf_counter() - started
        rss_after = rss_kib(proc.pid)
        sent = len(bodies) * batch
        return sent / elapsed, (rss_after - rss_before) / 1024 * 1_000_000 / sent, len(bodies)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def tracemalloc_run(total: int, batch: int) -> float:
    """MiB allocated by the store per million contacts (no HTTP, JSON-decoded input like the server's)."""
    store = Store(EmulatorConfig())
    list_id = store.create_contact_list(
        {"name": "mem", "columnNames": COLUMNS, "phoneColumns": [{"columnName": "phone", "type": "cell"}]}
    )["id"]
    bodies = [json.dumps(make_batch(i, batch)) for i in range(0, total, batch)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for body in bodies:
        store.upsert_contacts(list_id, json.loads(body))
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / 2**20 * 1_000_000 / total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=200_000, help="contacts to ingest over HTTP")
    parser.add_argument("--batch", type=int, default=1000, help="contacts per POST")
    parser.add_argument("--mem-contacts", type=int, default=200_000, help="contacts for the tracemalloc run")
    args = parser.parse_args()
    rate, rss_per_million, requests_sent = http_run(args.contacts, args.batch)
    print(f"ingest rate: {rate:,.0f} contacts/s ({requests_sent} POSTs of {args.batch}, keep-alive, loopback)")
    print(f"server RSS growth: {rss_per_million:,.0f} MiB per million contacts (measured over {args.contacts:,})")
    traced = tracemalloc_run(args.mem_contacts, args.batch)
    print(f"store memory (tracemalloc): {traced:,.0f} MiB per million contacts ({len(COLUMNS)} columns)")
    print(f"cpu count: {os.cpu_count()}, python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
