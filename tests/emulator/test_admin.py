"""Admin API: request log, reset, seed (API and --seed file), dialing queue, stats/dial helpers, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import requests

from genesys_emulator import EmulatorServer

OUTBOUND = "/api/v2/outbound"
ROOT = Path(__file__).resolve().parents[2]


def test_request_log_contents(api, contact_list, make_contacts) -> None:
    list_id = contact_list["id"]
    api.admin("DELETE", "/requests")
    api.post(f"{OUTBOUND}/contactlists/{list_id}/contacts?priority=true", json=make_contacts(7))
    api.patch(f"{OUTBOUND}/campaigns/missing", json={"outboundLineCount": 2})
    log = api.admin("GET", "/requests").json()
    assert [e["route"] for e in log] == [
        "POST /api/v2/outbound/contactlists/{contactListId}/contacts",
        "PATCH /api/v2/outbound/campaigns/{campaignId}",
    ]
    first, second = log
    assert first["method"] == "POST" and first["path"] == f"{OUTBOUND}/contactlists/{list_id}/contacts"
    assert first["status"] == 200 and first["contactCount"] == 7 and first["queryString"] == "priority=true"
    assert second["status"] == 404 and second["contactCount"] == 0
    assert second["seq"] == first["seq"] + 1 and first["time"].endswith("Z")
    text = json.dumps(log)
    assert "+1317555" not in text and "Bearer" not in text  # no bodies, phone numbers or tokens


def test_token_call_is_logged(emu, credentials) -> None:
    requests.post(f"{emu.base_url}/oauth/token", auth=credentials, data={"grant_type": "client_credentials"}, timeout=5)
    log = requests.get(f"{emu.base_url}/__emulator__/requests", timeout=5).json()
    assert log[-1]["route"] == "POST /oauth/token" and log[-1]["status"] == 200
    assert log[-1]["queryString"] == ""


def test_reset_clears_everything(api, contact_list) -> None:
    api.admin("POST", "/faults", json={"route": "*", "sequence": [503]})
    assert api.admin("POST", "/reset").status_code == 204
    assert api.admin("GET", "/faults").json() == []
    assert api.admin("GET", "/requests").json() == []
    resp = api.get(f"{OUTBOUND}/contactlists")
    assert resp.status_code == 401  # issued tokens were forgotten too


def test_seed_keeps_ids_and_fills_defaults(api, seeded) -> None:
    campaign = api.get(f"{OUTBOUND}/campaigns/camp-1").json()
    assert campaign["contactList"] == {
        "id": "list-1",
        "name": "Seeded leads",
        "selfUri": f"{OUTBOUND}/contactlists/list-1",
    }
    assert campaign["version"] == 1 and campaign["campaignStatus"] == "on"
    assert campaign["maxCallsPerAgent"] == 3 and campaign["maxCallsPerAgentDecimal"] == 3.0
    assert campaign["queue"]["id"] and campaign["phoneColumns"] == [{"columnName": "phone", "type": "cell"}]
    assert api.get(f"{OUTBOUND}/dnclists/dnc-1").json()["dncSourceType"] == "rds"
    bad = api.admin("POST", "/seed", json={"campaigns": [{"id": "x", "name": "x", "contactList": {"id": "nope"}}]})
    assert bad.status_code == 400 and bad.json()["details"][0]["fieldName"] == "contactList.id"


def test_seed_file_at_startup(tmp_path, credentials) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"contactLists": [{"id": "f-1", "name": "From file", "columnNames": ["phone"]}]}))
    with EmulatorServer(port=0, client_id=credentials[0], client_secret=credentials[1], seed=str(seed)) as emu:
        assert emu.store.get_contact_list("f-1")["name"] == "From file"


def test_queue_priority_and_do_not_queue(api, contact_list, make_contacts) -> None:
    list_id = contact_list["id"]
    url = f"{OUTBOUND}/contactlists/{list_id}/contacts"

    def queue() -> list[str]:
        return api.admin("GET", f"/contactlists/{list_id}/queue").json()["queue"]

    api.post(url, json=make_contacts(3))
    assert queue() == ["c0", "c1", "c2"]
    api.post(url, params={"priority": "true"}, json=make_contacts(2, start=3))
    assert queue() == ["c3", "c4", "c0", "c1", "c2"]
    api.post(url, params={"doNotQueue": "true"}, json=make_contacts(1, start=0, first_name="changed"))
    assert queue() == ["c3", "c4", "c0", "c1", "c2"]  # updated, position kept
    api.post(url, params={"doNotQueue": "true"}, json=make_contacts(1, start=9))
    assert "c9" not in queue()  # new contact, not queued
    api.post(url, json=make_contacts(1, start=0))
    assert queue() == ["c3", "c4", "c1", "c2", "c0"]  # re-queued at the back
    api.post(url, json=[{"id": "c1", "data": {"phone": "1"}, "callable": False}])
    assert "c1" not in queue()
    api.delete(f"{url}/c2")
    assert queue() == ["c3", "c4", "c0"]
    search = api.post(f"{url}/search", json={"pageSize": 100}).json()
    assert [c["id"] for c in search["entities"]] == ["c0", "c1", "c3", "c4", "c9"]  # insertion order


def test_dial_progress_and_stats_override(api, seeded, make_contacts) -> None:
    api.post(
        f"{OUTBOUND}/contactlists/list-1/contacts",
        json=[{"id": c["id"], "data": {"phone": c["data"]["phone"]}} for c in make_contacts(4)],
    )
    dialed = api.admin("POST", "/campaigns/camp-1/dial", json={"count": 3}).json()["dialed"]
    assert dialed == ["c0", "c1", "c2"]
    progress = api.get(f"{OUTBOUND}/campaigns/camp-1/progress").json()
    assert progress["numberOfContactsCalled"] == 3 and progress["totalNumberOfContacts"] == 4
    assert progress["percentage"] == 75
    api.admin("PUT", "/campaigns/camp-1/stats", json={"idleAgents": 4, "contactRate": {"connects": 2}})
    stats = api.get(f"{OUTBOUND}/campaigns/camp-1/stats").json()
    assert stats["idleAgents"] == 4 and stats["contactRate"] == {"attempts": 3, "connects": 2, "connectRatio": 0.0}


def test_config_patch(api) -> None:
    resp = api.admin("PATCH", "/config", json={"rateLimitPerMinute": 1})
    assert resp.status_code == 200 and resp.json()["rate_limit_per_minute"] == 1
    api.get(f"{OUTBOUND}/campaigns")
    assert api.get(f"{OUTBOUND}/campaigns").status_code == 429
    assert api.admin("PATCH", "/config", json={"nope": 1}).status_code == 400
    api.admin("PATCH", "/config", json={"rateLimitPerMinute": 0})


def test_cli_prints_ready_line_and_reads_env(credentials) -> None:
    env = {**os.environ, "GENESYS_EMULATOR_CLIENT_SECRET": "from-env", "GENESYS_EMULATOR_PORT": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "genesys_emulator", "--client-id", "cli-id", "--token-ttl", "600"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("genesys-emulator listening on http://127.0.0.1:")
        base = line.rsplit(" ", 1)[-1]
        resp = requests.post(
            f"{base}/oauth/token", auth=("cli-id", "from-env"), data={"grant_type": "client_credentials"}, timeout=5
        )
        assert resp.status_code == 200 and resp.json()["expires_in"] == 600
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0



def test_queue_history_counts_every_entry_into_the_dialing_queue(api, contact_list, make_contacts) -> None:
    """A re-post without doNotQueue re-queues a contact: the history shows it, so a test can forbid it."""
    list_id = contact_list["id"]
    contact = make_contacts(1)
    url = f"{OUTBOUND}/contactlists/{list_id}/contacts"
    assert api.post(url, json=contact).status_code == 200
    assert api.post(f"{url}?doNotQueue=true", json=contact).status_code == 200
    cid = contact[0]["id"]
    assert api.admin("GET", f"/contactlists/{list_id}/queue/history").json() == {
        "entries": {cid: 1}, "dialed": {}, "skipped": {}}
    assert api.post(url, json=contact).status_code == 200
    assert api.admin("GET", f"/contactlists/{list_id}/queue/history").json()["entries"] == {cid: 2}


def test_config_never_returns_a_secret(api, emu, credentials) -> None:
    """The admin API shows that a secret is set, never its value (GET and PATCH alike)."""
    shown = api.admin("GET", "/config").json()
    assert shown["client_secret"] == "REDACTED" and shown["admin_token"] is None
    assert credentials[1] not in json.dumps(shown)
    patched = api.admin("PATCH", "/config", json={"clientSecret": "rotated-secret"})
    assert patched.status_code == 200 and patched.json()["client_secret"] == "REDACTED"
    assert "rotated-secret" not in patched.text
    # The new secret is in force (it was applied, only not echoed).
    assert requests.post(f"{emu.base_url}/oauth/token", auth=(credentials[0], "rotated-secret"),
                         data={"grant_type": "client_credentials"}, timeout=5).status_code == 200
    api.admin("PATCH", "/config", json={"clientSecret": credentials[1]})


def test_admin_token_guards_every_admin_call_but_health(server_factory, credentials) -> None:
    emu = server_factory(admin_token="admin-tok-123")
    admin = f"{emu.base_url}/__emulator__"
    assert requests.get(f"{admin}/health", timeout=5).status_code == 200
    for method, path in (("GET", "/config"), ("GET", "/requests"), ("POST", "/reset"), ("GET", "/faults")):
        missing = requests.request(method, admin + path, timeout=5)
        wrong = requests.request(method, admin + path, headers={"Authorization": "Bearer nope"}, timeout=5)
        assert missing.status_code == wrong.status_code == 401, (method, path)
        assert missing.json()["code"] == "bad.credentials"
    ok = {"Authorization": "Bearer admin-tok-123"}
    shown = requests.get(f"{admin}/config", headers=ok, timeout=5).json()
    assert shown["admin_token"] == shown["client_secret"] == "REDACTED"
    assert "admin-tok-123" not in json.dumps(shown)
    # Set at startup only: the admin API cannot change (or clear) it.
    refused = requests.patch(f"{admin}/config", headers=ok, json={"adminToken": None}, timeout=5)
    assert refused.status_code == 400 and refused.json()["details"][0]["fieldName"] == "adminToken"
    assert requests.get(f"{admin}/requests", timeout=5).status_code == 401
    # The Genesys API itself is unaffected: its OAuth client credentials are what it checks.
    assert requests.post(f"{emu.base_url}/oauth/token", auth=credentials, data={"grant_type": "client_credentials"},
                         timeout=5).status_code == 200


def test_binds_to_loopback_by_default(credentials) -> None:
    from genesys_emulator.__main__ import build_parser
    from genesys_emulator.config import EmulatorConfig

    with EmulatorServer(port=0, client_id=credentials[0], client_secret=credentials[1]) as emu:
        assert emu._httpd is not None and emu._httpd.server_address[0] == "127.0.0.1"
    assert build_parser(EmulatorConfig()).parse_args([]).host == "127.0.0.1"


def test_cli_takes_the_admin_token_from_the_environment_and_never_prints_it(credentials) -> None:
    env = {**os.environ, "GENESYS_EMULATOR_ADMIN_TOKEN": "env-admin-tok", "GENESYS_EMULATOR_PORT": "0",
           "GENESYS_EMULATOR_CLIENT_SECRET": "env-client-secret"}
    help_text = subprocess.run([sys.executable, "-m", "genesys_emulator", "--help"], cwd=ROOT, env=env,
                               capture_output=True, text=True, check=True).stdout
    assert "env-admin-tok" not in help_text and "env-client-secret" not in help_text
    proc = subprocess.Popen([sys.executable, "-m", "genesys_emulator"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert "env-admin-tok" not in line
        base = line.rsplit(" ", 1)[-1]
        assert requests.get(f"{base}/__emulator__/config", timeout=5).status_code == 401
        ok = requests.get(f"{base}/__emulator__/config", headers={"Authorization": "Bearer env-admin-tok"}, timeout=5)
        assert ok.status_code == 200 and ok.json()["admin_token"] == "REDACTED"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
