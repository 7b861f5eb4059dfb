"""Contacts, filters (validation and every operator), campaigns and DNC over plain HTTP."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genesys_emulator.filters import compile_filter, validate_clauses

OUTBOUND = "/api/v2/outbound"
COLUMNS = ["phone", "first_name", "age", "state"]


def pred(column: str, operator: str, value: str | None = None, ctype: str = "alphabetic", **extra) -> dict:
    out = {"column": column, "columnType": ctype, "operator": operator, "inverted": False, **extra}
    if value is not None:
        out["value"] = value
    return out


def flt(list_id: str, *predicates: dict, filter_type: str = "AND") -> dict:
    return {
        "name": "f",
        "contactList": {"id": list_id},
        "filterType": "AND",
        "clauses": [{"filterType": filter_type, "predicates": list(predicates)}],
    }


@pytest.fixture
def people(api, contact_list) -> str:
    rows = [
        ("p0", "Ann", "15", "IN", "2024-01-05"),
        ("p1", "Bob", "18", "OH", "2024-03-01"),
        ("p2", "Cara", "40", "IN", "2023-12-31"),
        ("p3", "Dan", "70", "KY", "2024-06-30"),
    ]
    list_id = contact_list["id"]
    body = {**contact_list, "columnNames": [*COLUMNS, "since"]}
    assert api.put(f"{OUTBOUND}/contactlists/{list_id}", json=body).status_code == 200
    contacts = [
        {"id": i, "data": {"phone": f"+1{n}", "first_name": f, "age": a, "state": s, "since": d}}
        for n, (i, f, a, s, d) in enumerate(rows)
    ]
    assert api.post(f"{OUTBOUND}/contactlists/{list_id}/contacts", json=contacts).status_code == 200
    return list_id


def ids_matching(api, list_id: str, *predicates: dict, filter_type: str = "AND") -> list[str]:
    created = api.post(f"{OUTBOUND}/contactlistfilters", json=flt(list_id, *predicates, filter_type=filter_type))
    assert created.status_code == 200, created.text
    body = {"contactListFilterId": created.json()["id"], "pageSize": 100}
    return [
        c["id"] for c in api.post(f"{OUTBOUND}/contactlists/{list_id}/contacts/search", json=body).json()["entities"]
    ]


@pytest.mark.parametrize(
    ("predicate", "expected"),
    [
        (pred("state", "EQUALS", "IN"), ["p0", "p2"]),
        (pred("age", "LESS_THAN", "18", "numeric"), ["p0"]),
        (pred("age", "LESS_THAN_EQUALS", "18", "numeric"), ["p0", "p1"]),
        (pred("age", "GREATER_THAN", "18", "numeric"), ["p2", "p3"]),
        (pred("age", "GREATER_THAN_EQUALS", "40", "numeric"), ["p2", "p3"]),
        (pred("first_name", "CONTAINS", "a"), ["p0", "p2", "p3"]),
        (pred("first_name", "BEGINS_WITH", "b"), ["p1"]),
        (pred("first_name", "ENDS_WITH", "n"), ["p0", "p3"]),
        (pred("since", "BEFORE", "2024-01-01"), ["p2"]),
        (pred("since", "AFTER", "02-01-2024"), ["p1", "p3"]),
        (pred("age", "BETWEEN", ctype="numeric", range={"min": "18", "max": "40"}), ["p1", "p2"]),
        (
            pred("age", "BETWEEN", ctype="numeric", range={"min": "18", "max": "40", "minInclusive": False}),
            ["p2"],
        ),
        (pred("state", "IN", range={"inSet": ["OH", "KY"]}), ["p1", "p3"]),
        (pred("state", "EQUALS", "IN", inverted=True), ["p1", "p3"]),
    ],
)
def test_filter_operators(api, people, predicate, expected) -> None:
    assert ids_matching(api, people, predicate) == expected


def test_or_clause_and_criteria_search(api, people) -> None:
    either = ids_matching(api, people, pred("state", "EQUALS", "OH"), pred("state", "EQUALS", "KY"), filter_type="OR")
    assert either == ["p1", "p3"]
    criteria = {"filterType": "AND", "clauses": [{"filterType": "AND", "predicates": [pred("state", "EQUALS", "IN")]}]}
    resp = api.post(f"{OUTBOUND}/contactlists/{people}/contacts/search", json={"criteria": criteria})
    assert [c["id"] for c in resp.json()["entities"]] == ["p0", "p2"]
    sort = [{"fieldName": "age", "direction": "DESC", "numeric": True}]
    resp = api.post(f"{OUTBOUND}/contactlists/{people}/contacts/search", json={"contactSorts": sort})
    assert [c["id"] for c in resp.json()["entities"]] == ["p3", "p2", "p1", "p0"]


@pytest.mark.parametrize(
    ("predicates", "field"),
    [
        ([pred("age", "BETWEEN", ctype="numeric")], "clauses[0].predicates[0].range"),
        ([pred("state", "IN", range={"min": "a"})], "clauses[0].predicates[0].range.inSet"),
        ([pred("nope", "EQUALS", "x")], "clauses[0].predicates[0].column"),
        ([pred("state", "LIKE", "x")], "clauses[0].predicates[0].operator"),
        ([pred("age", "EQUALS", "x", "numeric")], "clauses[0].predicates[0].value"),
        ([pred("state", "EQUALS", "x", "date")], "clauses[0].predicates[0].columnType"),
        ([pred("state", "EQUALS")], "clauses[0].predicates[0].value"),
        ([pred("state", "EQUALS", str(i)) for i in range(11)], "predicates"),
    ],
)
def test_invalid_filters_rejected(api, contact_list, predicates, field) -> None:
    resp = api.post(f"{OUTBOUND}/contactlistfilters", json=flt(contact_list["id"], *predicates))
    assert resp.status_code == 400
    assert resp.json()["details"][0]["fieldName"] == field


def test_ten_predicates_accepted_and_filter_crud(api, contact_list) -> None:
    body = flt(contact_list["id"], *[pred("state", "EQUALS", str(i)) for i in range(10)])
    created = api.post(f"{OUTBOUND}/contactlistfilters", json=body).json()
    url = f"{OUTBOUND}/contactlistfilters/{created['id']}"
    assert api.get(url).json()["clauses"] == created["clauses"]
    assert api.put(url, json={**created, "name": "renamed"}).json()["version"] == 2
    assert api.put(url, json={**created, "name": "again"}).status_code == 409
    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404


@settings(max_examples=60, deadline=None, database=None)
@given(
    values=st.lists(st.one_of(st.integers(-50, 150).map(str), st.sampled_from(["", "x", "1e2"])), max_size=20),
    op=st.sampled_from(["EQUALS", "LESS_THAN", "LESS_THAN_EQUALS", "GREATER_THAN", "GREATER_THAN_EQUALS"]),
    ref=st.integers(-50, 150),
)
def test_numeric_comparison_matches_python(values, op, ref) -> None:
    clauses = validate_clauses(
        [{"filterType": "AND", "predicates": [pred("age", op, str(ref), "numeric")]}], ["age"], 10
    )
    match = compile_filter("AND", clauses, ["age"])
    compare = {
        "EQUALS": float.__eq__,
        "LESS_THAN": float.__lt__,
        "LESS_THAN_EQUALS": float.__le__,
        "GREATER_THAN": float.__gt__,
        "GREATER_THAN_EQUALS": float.__ge__,
    }[op]
    for v in values:
        try:
            expected = compare(float(v), float(ref))
        except ValueError:
            expected = False
        assert match((v,)) is expected


def test_contact_get_put_delete_and_bulk_delete(api, contact_list, make_contacts) -> None:
    base = f"{OUTBOUND}/contactlists/{contact_list['id']}/contacts"
    api.post(base, json=make_contacts(4))
    one = api.get(f"{base}/c1").json()
    assert one["data"] == {"phone": "+13175550001", "first_name": "N1"} and one["contactListId"] == contact_list["id"]
    updated = api.put(f"{base}/c1", json={"id": "c1", "data": {"phone": "+1999"}, "callable": True}).json()
    assert updated["data"] == {"phone": "+1999"}
    assert api.put(f"{base}/c1", json={"data": {"bad": "x"}}).status_code == 400
    assert api.delete(f"{base}/c1").status_code == 204
    assert api.get(f"{base}/c1").status_code == 404
    assert api.delete(base, params={"contactIds": "c0,c2"}).status_code == 204
    assert [c["id"] for c in api.post(f"{base}/search", json={}).json()["entities"]] == ["c3"]
    generated = api.post(base, json=[{"data": {"phone": "+1"}}]).json()[0]["id"]
    assert len(generated) == 36  # uuid for contacts posted without an id


def test_campaign_create_and_patch_validation(api, seeded) -> None:
    body = {
        "name": "New",
        "contactList": {"id": "list-1"},
        "queue": {"id": "q-1"},
        "dialingMode": "power",
        "abandonRate": 5,
        "phoneColumns": [{"columnName": "phone", "type": "cell"}],
    }
    created = api.post(f"{OUTBOUND}/campaigns", json=body)
    assert created.status_code == 200 and created.json()["campaignStatus"] == "off"
    assert api.post(f"{OUTBOUND}/campaigns", json={**body, "dialingMode": "robot"}).status_code == 400
    no_rate = {k: v for k, v in body.items() if k != "abandonRate"}
    assert api.post(f"{OUTBOUND}/campaigns", json=no_rate).json()["details"][0]["fieldName"] == "abandonRate"

    url = f"{OUTBOUND}/campaigns/camp-1"
    for patch, field in [
        ({"maxCallsPerAgent": 0}, "maxCallsPerAgent"),
        ({"maxCallsPerAgent": 15.5}, "maxCallsPerAgent"),
        ({"abandonRate": 101}, "abandonRate"),
        ({"abandonRate": -1}, "abandonRate"),
        ({"outboundLineCount": 0}, "outboundLineCount"),
        ({"maxContactsPerAgent": 3}, "maxContactsPerAgent"),
        ({"dialRules": {}}, "dialRules"),
    ]:
        resp = api.patch(url, json=patch)
        assert resp.status_code == 400, patch
        assert resp.json()["details"][0]["fieldName"] == field
    assert api.get(url).json()["version"] == 1  # rejected patches change nothing
    assert api.patch(url, json={"maxCallsPerAgent": 15}).status_code == 204
    assert api.get(url).json()["maxCallsPerAgent"] == 15
    assert api.post(f"{url}/stop").status_code == 204
    assert api.get(url).json()["campaignStatus"] == "off"


def test_dnc_patch_validation(api, seeded) -> None:
    url = f"{OUTBOUND}/dnclists/dnc-1/phonenumbers"
    assert api.patch(url, json={"action": "Delete", "phoneNumbers": ["1"]}).status_code == 400
    assert api.patch(url, json={"action": "Add", "phoneNumbers": []}).status_code == 400
    assert (
        api.patch(
            url, json={"action": "Add", "phoneNumbers": ["+1"], "expirationDateTime": "2030-01-01T00:00:00Z"}
        ).status_code
        == 204
    )
    assert api.post(url, json=["+2", "+3"]).status_code == 204
    numbers = api.admin("GET", "/dnclists/dnc-1/phonenumbers").json()["phoneNumbers"]
    assert numbers == {"+1": "2030-01-01T00:00:00Z", "+2": None, "+3": None}
    assert api.post(f"{OUTBOUND}/dnclists/nope/phonenumbers", json=["+1"]).status_code == 404
