"""Plain-HTTP checks of OAuth, bearer tokens, limits, rate limiting and error shapes."""

from __future__ import annotations

import uuid
from typing import Any

import requests

OUTBOUND = "/api/v2/outbound"


def assert_genesys_error(resp: requests.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert {"message", "code", "status", "contextId", "details", "errors"} <= body.keys()
    assert body["status"] == status
    assert body["contextId"] == resp.headers["ININ-Correlation-Id"]
    uuid.UUID(body["contextId"])
    if code:
        assert body["code"] == code
    return body


def test_token_success_shape(emu, credentials) -> None:
    resp = requests.post(
        f"{emu.base_url}/oauth/token", auth=credentials, data={"grant_type": "client_credentials"}, timeout=5
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 86399 and body["access_token"]


def test_token_errors(emu, credentials) -> None:
    url = f"{emu.base_url}/oauth/token"
    form = {"grant_type": "client_credentials"}
    wrong = requests.post(url, auth=(credentials[0], "nope"), data=form, timeout=5)
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert "error_description" in wrong.json()
    missing = requests.post(url, data=form, timeout=5)
    assert missing.status_code == 401 and missing.json()["error"] == "invalid_client"
    in_body = requests.post(url, data={**form, "client_id": credentials[0], "client_secret": credentials[1]}, timeout=5)
    assert in_body.status_code == 401  # the secret belongs in the Basic header, not the form
    grant = requests.post(url, auth=credentials, data={"grant_type": "password"}, timeout=5)
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"


def test_api_requires_valid_unexpired_token(emu, api) -> None:
    anonymous = requests.get(f"{emu.base_url}{OUTBOUND}/campaigns", timeout=5)
    assert_genesys_error(anonymous, 401, "bad.credentials")
    bogus = requests.get(f"{emu.base_url}{OUTBOUND}/campaigns", headers={"Authorization": "Bearer bogus"}, timeout=5)
    assert_genesys_error(bogus, 401, "bad.credentials")
    assert api.get(f"{OUTBOUND}/campaigns").status_code == 200
    assert api.admin("POST", "/tokens/expire").json() == {"expired": 1}
    assert_genesys_error(api.get(f"{OUTBOUND}/campaigns"), 401, "bad.credentials")


def test_token_ttl_expiry(server_factory, token_for) -> None:
    emu = server_factory(token_ttl=0)
    token = token_for(emu.base_url)
    resp = requests.get(f"{emu.base_url}{OUTBOUND}/campaigns", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert_genesys_error(resp, 401, "bad.credentials")


def test_success_carries_correlation_and_rate_headers(server_factory, api_for) -> None:
    api = api_for(server_factory(rate_limit_per_minute=300))
    resp = api.get(f"{OUTBOUND}/contactlists")
    assert resp.status_code == 200
    uuid.UUID(resp.headers["ININ-Correlation-Id"])
    assert resp.headers["inin-ratelimit-allowed"] == "300"
    assert resp.headers["inin-ratelimit-count"] == "1"
    assert 1 <= int(resp.headers["inin-ratelimit-reset"]) <= 60
    assert resp.json() == {
        "entities": [],
        "pageSize": 25,
        "pageNumber": 1,
        "total": 0,
        "pageCount": 0,
        "firstUri": f"{OUTBOUND}/contactlists?pageSize=25&pageNumber=1",
        "selfUri": f"{OUTBOUND}/contactlists?pageSize=25&pageNumber=1",
        "lastUri": f"{OUTBOUND}/contactlists?pageSize=25&pageNumber=1",
    }


def test_rate_limit_429_with_retry_after(server_factory, api_for, token_for) -> None:
    emu = server_factory(rate_limit_per_minute=3)
    api = api_for(emu)
    for _ in range(3):
        assert api.get(f"{OUTBOUND}/campaigns").status_code == 200
    limited = api.get(f"{OUTBOUND}/campaigns")
    assert_genesys_error(limited, 429, "too.many.requests.retry.after")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    other = requests.get(
        f"{emu.base_url}{OUTBOUND}/campaigns",
        headers={"Authorization": f"Bearer {token_for(emu.base_url)}"},
        timeout=5,
    )
    assert other.status_code == 200  # the limit is per token


def test_body_over_limit_is_413(api, contact_list) -> None:
    big = [{"id": f"x{i}", "data": {"phone": "1" * 500}} for i in range(1100)]
    resp = api.post(f"{OUTBOUND}/contactlists/{contact_list['id']}/contacts", json=big)
    assert_genesys_error(resp, 413, "request.too.large")
    assert api.get(f"{OUTBOUND}/contactlists/{contact_list['id']}").status_code == 200  # connection reusable


def test_more_than_1000_contacts_is_400(api, contact_list, make_contacts) -> None:
    resp = api.post(f"{OUTBOUND}/contactlists/{contact_list['id']}/contacts", json=make_contacts(1001))
    body = assert_genesys_error(resp, 400)
    assert "1000" in body["message"]
    ok = api.post(f"{OUTBOUND}/contactlists/{contact_list['id']}/contacts", json=make_contacts(1000))
    assert ok.status_code == 200 and len(ok.json()) == 1000


def test_unknown_data_column_is_400_naming_it(api, contact_list, make_contacts) -> None:
    batch = make_contacts(3)
    batch[2]["data"]["favourite_colour"] = "blue"
    resp = api.post(f"{OUTBOUND}/contactlists/{contact_list['id']}/contacts", json=batch)
    body = assert_genesys_error(resp, 400)
    assert body["details"][0]["fieldName"] == "[2].data.favourite_colour"
    search = api.post(f"{OUTBOUND}/contactlists/{contact_list['id']}/contacts/search", json={})
    assert search.json()["total"] == 0  # all-or-nothing: nothing from the rejected batch was stored


def test_list_limits(api, contact_list_body) -> None:
    too_many = api.post(f"{OUTBOUND}/contactlists", json=contact_list_body(columns=[f"c{i}" for i in range(51)]))
    assert assert_genesys_error(too_many, 400)["details"][0]["fieldName"] == "columnNames"
    long_name = api.post(f"{OUTBOUND}/contactlists", json=contact_list_body(columns=["phone", "x" * 129]))
    assert assert_genesys_error(long_name, 400)["details"][0]["fieldName"] == "columnNames[1]"
    unknown = api.post(f"{OUTBOUND}/contactlists", json={**contact_list_body(), "colour": "red"})
    assert assert_genesys_error(unknown, 400)["details"][0]["fieldName"] == "colour"


def test_cell_length_and_list_size_limits(server_factory, api_for, contact_list_body) -> None:
    api = api_for(server_factory(max_contacts_per_list=5))
    list_id = api.post(f"{OUTBOUND}/contactlists", json=contact_list_body()).json()["id"]
    url = f"{OUTBOUND}/contactlists/{list_id}/contacts"
    long_cell = api.post(url, json=[{"id": "a", "data": {"phone": "1" * 513}}])
    assert assert_genesys_error(long_cell, 400)["details"][0]["fieldName"] == "[0].data.phone"
    assert api.post(url, json=[{"id": f"k{i}", "data": {"phone": "1"}} for i in range(5)]).status_code == 200
    assert api.post(url, json=[{"id": "k0", "data": {"phone": "2"}}]).status_code == 200  # update: no growth
    assert_genesys_error(api.post(url, json=[{"id": "k9", "data": {"phone": "1"}}]), 400)


def test_search_page_size_limit(api, contact_list) -> None:
    resp = api.post(f"{OUTBOUND}/contactlists/{contact_list['id']}/contacts/search", json={"pageSize": 101})
    assert assert_genesys_error(resp, 400)["details"][0]["fieldName"] == "pageSize"


def test_unknown_route_and_method(api) -> None:
    assert_genesys_error(api.get(f"{OUTBOUND}/campaigns/x/segments"), 404, "not.found")
    assert_genesys_error(api.post(f"{OUTBOUND}/campaigns/x/segments", json={}), 404)
    assert_genesys_error(api.delete(f"{OUTBOUND}/dnclists/x/phonenumbers"), 405)
    assert_genesys_error(api.get(f"{OUTBOUND}/contactlists/nope"), 404, "not.found")


def test_invalid_json_and_content_type(api, contact_list) -> None:
    url = f"{OUTBOUND}/contactlists/{contact_list['id']}/contacts"
    bad = api.post(url, data=b"[{", headers={"Content-Type": "application/json"})
    assert assert_genesys_error(bad, 400)["details"][0]["fieldName"] == "body"
    form = api.post(url, data={"a": "b"})
    assert_genesys_error(form, 415)


def test_contact_list_put_requires_current_version(api, contact_list) -> None:
    url = f"{OUTBOUND}/contactlists/{contact_list['id']}"
    body = {**contact_list, "columnNames": [*contact_list["columnNames"], "zip"]}
    updated = api.put(url, json=body)
    assert updated.status_code == 200 and updated.json()["version"] == 2
    stale = api.put(url, json=body)
    err = assert_genesys_error(stale, 409)
    assert err["message"].startswith("The version number of the modified resource must match")
