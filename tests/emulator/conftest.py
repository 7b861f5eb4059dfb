"""Fixtures for the Genesys emulator suite: one server per module, state reset before every test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from genesys_emulator import EmulatorServer

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret"
OUTBOUND = "/api/v2/outbound"


class Api:
    """A thin ``requests`` client bound to one emulator and one bearer token."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.base_url + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("DELETE", path, **kwargs)

    def admin(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.call(method, "/__emulator__" + path, **kwargs)


def fetch_token(base_url: str, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET) -> str:
    resp = requests.post(
        f"{base_url}/oauth/token",
        auth=(client_id, client_secret),
        data={"grant_type": "client_credentials"},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


def make_server(**overrides: Any) -> EmulatorServer:
    options: dict[str, Any] = {
        "port": 0,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "rate_limit_per_minute": 0,
    }
    options.update(overrides)
    return EmulatorServer(**options)


@pytest.fixture(scope="module")
def emu_server() -> Iterator[EmulatorServer]:
    with make_server() as emu:
        yield emu


@pytest.fixture
def emu(emu_server: EmulatorServer) -> EmulatorServer:
    emu_server.reset()
    return emu_server


@pytest.fixture
def api(emu: EmulatorServer) -> Iterator[Api]:
    client = Api(emu.base_url, fetch_token(emu.base_url))
    yield client
    client.session.close()


def _contact_list_body(name: str = "leads", columns: list[str] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "columnNames": columns or ["phone", "first_name", "age", "state"],
        "phoneColumns": [{"columnName": "phone", "type": "cell"}],
    }


@pytest.fixture
def contact_list(api: Api) -> dict[str, Any]:
    resp = api.post(f"{OUTBOUND}/contactlists", json=_contact_list_body())
    assert resp.status_code == 200, resp.text
    return resp.json()


def _contacts(n: int, start: int = 0, **extra: str) -> list[dict[str, Any]]:
    return [
        {"id": f"c{i}", "data": {"phone": f"+1317555{i:04d}", "first_name": f"N{i}", **extra}, "callable": True}
        for i in range(start, start + n)
    ]


SEED = {
    "contactLists": [
        {
            "id": "list-1",
            "name": "Seeded leads",
            "columnNames": ["phone", "first_name", "age"],
            "phoneColumns": [{"columnName": "phone", "type": "cell"}],
        }
    ],
    "campaigns": [
        {
            "id": "camp-1",
            "name": "Seeded campaign",
            "contactList": {"id": "list-1"},
            "dialingMode": "predictive",
            "abandonRate": 3,
            "outboundLineCount": 20,
            "maxCallsPerAgent": 3,
            "alwaysRunning": True,
            "campaignStatus": "on",
        }
    ],
    "dncLists": [{"id": "dnc-1", "name": "Internal DNC"}],
}


@pytest.fixture
def seeded(api: Api) -> dict[str, Any]:
    resp = api.admin("POST", "/seed", json=SEED)
    assert resp.status_code == 200, resp.text
    return SEED


@pytest.fixture
def make_contacts() -> Any:
    """``make_contacts(n, start=0, **extra_columns)`` -> contacts with ids ``c<start>..``."""
    return _contacts


@pytest.fixture
def contact_list_body() -> Any:
    """``contact_list_body(name="leads", columns=None)`` -> a valid ContactList POST body."""
    return _contact_list_body


@pytest.fixture
def credentials() -> tuple[str, str]:
    return CLIENT_ID, CLIENT_SECRET


@pytest.fixture
def server_factory() -> Iterator[Any]:
    """``server_factory(**options)`` -> a started emulator (port 0), stopped after the test."""
    started: list[EmulatorServer] = []

    def factory(**overrides: Any) -> EmulatorServer:
        server = make_server(**overrides).start()
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def token_for() -> Any:
    """``token_for(base_url)`` -> a fresh bearer token from the emulator's /oauth/token."""
    return fetch_token


@pytest.fixture
def api_for() -> Iterator[Any]:
    """``api_for(server)`` -> an authenticated :class:`Api` for another emulator instance."""
    clients: list[Api] = []

    def factory(server: EmulatorServer) -> Api:
        client = Api(server.base_url, fetch_token(server.base_url))
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.session.close()
