"""Fault injection: sequences, seeded probabilities, latency, dropped responses, rule management."""

from __future__ import annotations

import time

import pytest
import requests

OUTBOUND = "/api/v2/outbound"
CONTACTS_ROUTE = "POST /api/v2/outbound/contactlists/{contactListId}/contacts"
LISTS_ROUTE = "GET /api/v2/outbound/contactlists"


def add_fault(api, **rule) -> dict:
    resp = api.admin("POST", "/faults", json=rule)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_sequence_then_normal(api) -> None:
    add_fault(api, route=LISTS_ROUTE, sequence=[503, 429, 500, 502, 504, 200, 429], retryAfter=7)
    statuses = [api.get(f"{OUTBOUND}/contactlists") for _ in range(8)]
    assert [r.status_code for r in statuses] == [503, 429, 500, 502, 504, 200, 429, 200]
    assert statuses[0].headers["Retry-After"] == "7"
    assert statuses[1].headers["Retry-After"] == "7"
    assert statuses[1].json()["code"] == "too.many.requests.retry.after"
    assert statuses[0].json()["code"] == "service.unavailable"
    for resp in statuses[:5]:
        assert resp.json()["contextId"] == resp.headers["ININ-Correlation-Id"]
    assert "Retry-After" not in statuses[2].headers


def test_injected_429_default_retry_after(api) -> None:
    add_fault(api, route=LISTS_ROUTE, sequence=[429])
    assert api.get(f"{OUTBOUND}/contactlists").headers["Retry-After"] == "1"


def test_injected_error_does_not_apply_the_call(api, contact_list, make_contacts) -> None:
    add_fault(api, route=CONTACTS_ROUTE, sequence=[503])
    url = f"{OUTBOUND}/contactlists/{contact_list['id']}/contacts"
    assert api.post(url, json=make_contacts(5)).status_code == 503
    assert api.get(f"{OUTBOUND}/contactlists/{contact_list['id']}").json()["size"] == 0
    assert api.post(url, json=make_contacts(5)).status_code == 200


def test_probabilities_are_reproducible_with_seed(api) -> None:
    def run() -> list[int]:
        add_fault(api, route=LISTS_ROUTE, probabilities={"429": 0.3, "503": 0.2, "500": 0.0}, seed=42)
        return [api.get(f"{OUTBOUND}/contactlists").status_code for _ in range(40)]

    first, second = run(), run()
    assert first == second
    assert {429, 503, 200} <= set(first) and 500 not in first


def test_latency(api) -> None:
    add_fault(api, route=LISTS_ROUTE, latencyMs=250)
    started = time.perf_counter()
    assert api.get(f"{OUTBOUND}/contactlists").status_code == 200
    assert time.perf_counter() - started >= 0.25


def test_drop_after_apply_stores_contacts(api, contact_list, make_contacts) -> None:
    add_fault(api, route=CONTACTS_ROUTE, dropAfterApply=1)
    url = f"{OUTBOUND}/contactlists/{contact_list['id']}/contacts"
    with pytest.raises(requests.ConnectionError):
        api.post(url, json=make_contacts(10))
    stored = api.post(f"{OUTBOUND}/contactlists/{contact_list['id']}/contacts/bulk", json=["c0", "c9"])
    assert [c["id"] for c in stored.json()] == ["c0", "c9"]
    retry = api.post(url, json=make_contacts(10))  # the client's retry with the same ids is an update
    assert retry.status_code == 200
    assert api.get(f"{OUTBOUND}/contactlists/{contact_list['id']}").json()["size"] == 10
    log = api.admin("GET", "/requests", params={"route": CONTACTS_ROUTE}).json()
    assert [(e["status"], e["dropped"], e["contactCount"]) for e in log] == [(200, True, 10), (200, False, 10)]
    assert [e["contactIds"] for e in log] == [[f"c{i}" for i in range(10)]] * 2


def test_drop_probability_drops_a_seeded_share_of_applied_calls(api, contact_list, make_contacts) -> None:
    url = f"{OUTBOUND}/contactlists/{contact_list['id']}/contacts"

    def run() -> list[bool]:
        api.admin("DELETE", "/requests")
        add_fault(api, route=CONTACTS_ROUTE, dropProbability=0.3, seed=5)
        outcomes = []
        for _ in range(40):
            try:
                outcomes.append(api.post(url, json=make_contacts(2)).status_code == 200)
            except requests.ConnectionError:
                outcomes.append(False)
        return outcomes

    first, second = run(), run()
    assert first == second and 4 <= first.count(False) <= 20
    log = api.admin("GET", "/requests", params={"route": CONTACTS_ROUTE}).json()
    assert [not e["dropped"] for e in log] == second and all(e["status"] == 200 for e in log)
    assert api.admin("GET", "/faults").json()[0]["dropProbability"] == 0.3


def test_an_injected_error_logs_the_contact_ids_it_refused(api, contact_list, make_contacts) -> None:
    add_fault(api, route=CONTACTS_ROUTE, sequence=[503])
    assert api.post(f"{OUTBOUND}/contactlists/{contact_list['id']}/contacts", json=make_contacts(3)).status_code == 503
    (entry,) = api.admin("GET", "/requests", params={"route": CONTACTS_ROUTE}).json()
    assert (entry["status"], entry["contactCount"], entry["contactIds"]) == (503, 3, ["c0", "c1", "c2"])


def test_wildcard_and_specific_rules(api) -> None:
    add_fault(api, route="*", sequence=[503, 503])
    add_fault(api, route=LISTS_ROUTE, sequence=[500])
    assert api.get(f"{OUTBOUND}/contactlists").status_code == 500  # specific rule wins
    assert api.get(f"{OUTBOUND}/campaigns").status_code == 503
    assert api.get(f"{OUTBOUND}/dnclists").status_code == 503
    assert api.get(f"{OUTBOUND}/dnclists").status_code == 200
    rules = api.admin("GET", "/faults").json()
    assert {r["route"] for r in rules} == {"*", LISTS_ROUTE}
    add_fault(api, route=LISTS_ROUTE, sequence=[])  # replaces the previous rule for that route
    assert len(api.admin("GET", "/faults").json()) == 2
    assert api.admin("DELETE", "/faults").status_code == 204
    assert api.admin("GET", "/faults").json() == []


def test_token_route_fault(emu, credentials) -> None:
    requests.post(
        f"{emu.base_url}/__emulator__/faults", json={"route": "POST /oauth/token", "sequence": [503]}, timeout=5
    )
    url = f"{emu.base_url}/oauth/token"
    form = {"grant_type": "client_credentials"}
    assert requests.post(url, auth=credentials, data=form, timeout=5).status_code == 503
    assert requests.post(url, auth=credentials, data=form, timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"route": "GET /nope"}, "route"),
        ({"route": LISTS_ROUTE, "sequence": ["503"]}, "sequence"),
        ({"route": LISTS_ROUTE, "probabilities": {"429": 1.5}}, "probabilities.429"),
        ({"route": LISTS_ROUTE, "probabilities": {"429": 0.6, "503": 0.6}}, "probabilities"),
        ({"route": LISTS_ROUTE, "latencyMs": -1}, "latencyMs"),
        ({"route": LISTS_ROUTE, "dropProbability": 1.5}, "dropProbability"),
        ({"route": LISTS_ROUTE, "bogus": 1}, "bogus"),
    ],
)
def test_invalid_rules_rejected(api, rule, field) -> None:
    resp = api.admin("POST", "/faults", json=rule)
    assert resp.status_code == 400
    assert resp.json()["details"][0]["fieldName"] == field
