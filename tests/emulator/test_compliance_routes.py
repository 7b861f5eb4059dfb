"""The routes a withdrawal uses and the dialer's DNC behaviour: bulk DELETE of contacts, the DNC list PATCH, a DNC
number skipped at dial time, a contact in a call kept by DELETE, and contact list time-zone settings. Over HTTP
and through the official SDK (its models are the contract)."""

from __future__ import annotations

from typing import Any

import PureCloudPlatformClientV2 as gc
import pytest
from PureCloudPlatformClientV2.rest import ApiException

from genesys_emulator import EmulatorServer

OUTBOUND = "/api/v2/outbound"
CONTACTS = f"{OUTBOUND}/contactlists/list-1/contacts"
DNC = f"{OUTBOUND}/dnclists/dnc-1/phonenumbers"


def _error(resp: Any, status: int, field: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["status"] == status and body["contextId"] == resp.headers["ININ-Correlation-Id"]
    assert body["details"][0]["fieldName"] == field, body
    return body


def _attach_dnc(api: Any) -> None:
    campaign = api.get(f"{OUTBOUND}/campaigns/camp-1").json()
    campaign["dncLists"] = [{"id": "dnc-1"}]
    assert api.put(f"{OUTBOUND}/campaigns/camp-1", json=campaign).status_code == 200


def _ids(api: Any) -> list[str]:
    return [c["id"] for c in api.post(f"{CONTACTS}/search", json={"pageSize": 100}).json()["entities"]]


def test_bulk_delete_takes_comma_separated_or_repeated_ids_up_to_its_cap(api, seeded, make_contacts) -> None:
    api.post(CONTACTS, json=make_contacts(6))
    assert api.delete(CONTACTS, params={"contactIds": "c0,c1,nope"}).status_code == 204  # unknown ids: ignored
    assert api.delete(CONTACTS, params=[("contactIds", "c2"), ("contactIds", "c3")]).status_code == 204
    assert _ids(api) == ["c4", "c5"]
    assert api.get(f"{CONTACTS}/c0").status_code == 404
    _error(api.delete(CONTACTS), 400, "contactIds")
    too_many = _error(api.delete(CONTACTS, params={"contactIds": ",".join(f"x{i}" for i in range(101))}), 400,
                      "contactIds")
    assert too_many["limit"]["value"] == 100 and too_many["details"][0]["errorCode"] == "too.many.contact.ids"
    assert _ids(api) == ["c4", "c5"]  # a refused request deletes nothing


def test_a_contact_in_a_call_is_kept_by_delete_until_the_call_ends(api, seeded, make_contacts) -> None:
    """The SDK: "Only contacts that are not in use by any campaign will be deleted"."""
    api.post(CONTACTS, json=make_contacts(3))
    dialed = api.admin("POST", "/campaigns/camp-1/dial", json={"count": 1, "holdCalls": True}).json()["dialed"]
    assert dialed == ["c0"]
    assert api.delete(CONTACTS, params={"contactIds": "c0,c1"}).status_code == 204
    assert _ids(api) == ["c0", "c2"]
    assert api.admin("POST", "/campaigns/camp-1/hangup").json() == {"ended": 1}
    assert api.delete(CONTACTS, params={"contactIds": "c0"}).status_code == 204
    assert _ids(api) == ["c2"]


def test_dnc_patch_validates_like_the_sdk_model(api, seeded) -> None:
    for body, field in [
        ({"action": "Add", "phoneNumbers": ["+13175550100"], "expirationDateTime": "tomorrow"}, "expirationDateTime"),
        ({"action": "Add", "phoneNumbers": ["+1317555"] * 1001}, "phoneNumbers"),
        ({"action": "Add", "phoneNumbers": "+13175550100"}, "phoneNumbers"),
        ({"action": "Add", "phoneNumbers": ["+13175550100"], "expires": "2030-01-01T00:00Z"}, "expires"),
        ({"action": "Block", "phoneNumbers": ["+13175550100"]}, "action"),
    ]:
        _error(api.patch(DNC, json=body), 400, field)
    assert api.patch(DNC, json={"action": "Add", "phoneNumbers": ["+13175550100"],
                                "expirationDateTime": "2030-01-01T00:00Z"}).status_code == 204
    _error(api.post(DNC, json=["+1317555"] * 1001), 400, "body")
    email = api.post(f"{OUTBOUND}/dnclists", json={"name": "mail", "contactMethod": "Email"}).json()
    _error(api.patch(f"{OUTBOUND}/dnclists/{email['id']}/phonenumbers",
                     json={"action": "Add", "phoneNumbers": ["+13175550100"]}), 400, "contactMethod")
    numbers = api.admin("GET", "/dnclists/dnc-1/phonenumbers").json()["phoneNumbers"]
    assert numbers == {"+13175550100": "2030-01-01T00:00Z"}


def test_a_number_on_an_attached_dnc_list_is_never_dialed(api, seeded, make_contacts) -> None:
    api.post(CONTACTS, json=make_contacts(4))  # +13175550000 .. +13175550003
    # On the DNC list but the list is not attached yet: dialed.
    assert api.patch(DNC, json={"action": "Add", "phoneNumbers": ["+13175550000"]}).status_code == 204
    assert api.admin("POST", "/campaigns/camp-1/dial", json={"count": 1}).json() == {"dialed": ["c0"], "skipped": {}}
    _attach_dnc(api)
    # Attached: the dialer passes the number over, whatever its spelling on the list, and records why.
    assert api.patch(DNC, json={"action": "Add", "phoneNumbers": ["1 (317) 555-0001"]}).status_code == 204
    # An entry that has expired no longer blocks.
    assert api.patch(DNC, json={"action": "Add", "phoneNumbers": ["+13175550002"],
                                "expirationDateTime": "2001-01-01T00:00Z"}).status_code == 204
    result = api.admin("POST", "/campaigns/camp-1/dial", json={"count": 5}).json()
    assert result == {"dialed": ["c2", "c3"], "skipped": {"c1": "ININ-OUTBOUND-ON-DO-NOT-CALL-LIST"}}
    history = api.admin("GET", "/contactlists/list-1/queue/history").json()
    assert history["skipped"] == {"c1": "ININ-OUTBOUND-ON-DO-NOT-CALL-LIST"}
    assert "c1" not in history["dialed"] and history["dialed"] == {"c0": 1, "c2": 1, "c3": 1}
    assert api.get(f"{OUTBOUND}/campaigns/camp-1/stats").json()["contactRate"]["attempts"] == 3


def test_contact_list_time_zone_settings(api, contact_list_body) -> None:
    lists = f"{OUTBOUND}/contactlists"
    body = contact_list_body(columns=["phone", "tz", "zip"])
    with_column = {**body, "phoneColumns": [{"columnName": "phone", "type": "cell", "callableTimeColumn": "tz"}]}
    created = api.post(lists, json=with_column)
    assert created.status_code == 200 and created.json()["phoneColumns"][0]["callableTimeColumn"] == "tz"
    unknown_column = [{"columnName": "phone", "type": "cell", "callableTimeColumn": "nope"}]
    _error(api.post(lists, json={**body, "phoneColumns": unknown_column}), 400, "phoneColumns[0].callableTimeColumn")
    _error(api.post(lists, json={**with_column, "automaticTimeZoneMapping": True}), 400,
           "phoneColumns[0].callableTimeColumn")
    _error(api.post(lists, json={**body, "zipCodeColumnName": "zip"}), 400, "zipCodeColumnName")
    _error(api.post(lists, json={**body, "automaticTimeZoneMapping": True, "zipCodeColumnName": "nope"}), 400,
           "zipCodeColumnName")
    _error(api.post(lists, json={**body, "phoneColumns": [{"columnName": "phone", "type": "cell", "zone": "x"}]}),
           400, "phoneColumns[0].zone")
    automatic = api.post(lists, json={**body, "automaticTimeZoneMapping": True, "zipCodeColumnName": "zip"})
    assert automatic.status_code == 200 and automatic.json()["zipCodeColumnName"] == "zip"


def test_posted_contact_column_time_zones_are_checked_against_the_model(api, contact_list) -> None:
    url = f"{OUTBOUND}/contactlists/{contact_list['id']}/contacts"
    contact = {"id": "z1", "data": {"phone": "+13175550100"}}
    ok = {"phone": {"timeZone": "America/Indiana/Indianapolis", "columnType": "PHONE"}}
    assert api.post(url, json=[{**contact, "contactColumnTimeZones": ok}]).status_code == 200
    for zones, field in [
        ({"phone": {"timeZone": "UTC", "columnType": "CITY"}}, "[0].contactColumnTimeZones.phone.columnType"),
        ({"fax": {"timeZone": "UTC"}}, "[0].contactColumnTimeZones.fax"),
        ({"phone": "UTC"}, "[0].contactColumnTimeZones.phone"),
        ({"phone": {"zone": "UTC"}}, "[0].contactColumnTimeZones.phone.zone"),
    ]:
        _error(api.post(url, json=[{**contact, "contactColumnTimeZones": zones}]), 400, field)


# ------------------------------------------------------------------------------------------- through the SDK


@pytest.fixture
def outbound(emu: EmulatorServer, credentials: tuple[str, str]) -> gc.OutboundApi:
    client = gc.ApiClient(host=emu.base_url)
    client.get_client_credentials_token(*credentials)
    return gc.OutboundApi(client)


def test_the_sdk_deletes_contacts_adds_dnc_numbers_and_reads_time_zone_settings(
    emu: EmulatorServer, api, seeded, make_contacts, outbound: gc.OutboundApi
) -> None:
    api.post(CONTACTS, json=make_contacts(3))
    outbound.delete_outbound_contactlist_contacts("list-1", ["c0", "c2"])
    assert [c.id for c in outbound.post_outbound_contactlist_contacts_bulk("list-1", ["c0", "c1", "c2"])] == ["c1"]
    with pytest.raises(ApiException) as refused:
        outbound.delete_outbound_contactlist_contacts("list-1", [f"x{i}" for i in range(101)])
    assert refused.value.status == 400 and "too.many.contact.ids" in refused.value.body

    add = gc.DncPatchPhoneNumbersRequest()
    add.action = "Add"
    add.phone_numbers = ["+13175550001"]
    add.expiration_date_time = "2030-06-01T12:00Z"
    outbound.patch_outbound_dnclist_phonenumbers("dnc-1", add)
    assert emu.store.dnc_numbers_of("dnc-1") == {"+13175550001": "2030-06-01T12:00Z"}

    body = gc.ContactList()
    body.name = "zoned"
    body.column_names = ["phone", "zip"]
    column = gc.ContactPhoneNumberColumn()
    column.column_name = "phone"
    column.type = "cell"
    body.phone_columns = [column]
    body.automatic_time_zone_mapping = True
    body.zip_code_column_name = "zip"
    created = outbound.post_outbound_contactlists(body)
    assert created.automatic_time_zone_mapping is True and created.zip_code_column_name == "zip"
    timed = gc.ContactList()
    timed.name = "timed"
    timed.column_names = ["phone", "tz"]
    tz_column = gc.ContactPhoneNumberColumn()
    tz_column.column_name = "phone"
    tz_column.type = "cell"
    tz_column.callable_time_column = "tz"
    timed.phone_columns = [tz_column]
    read = outbound.get_outbound_contactlist(outbound.post_outbound_contactlists(timed).id)
    assert read.phone_columns[0].callable_time_column == "tz"
