"""The emu, driven by the official Genesys Python SDK: every response must deserialize into its model.

The SDK derives the login URL from the API host by replacing ``//api.`` with ``//login.``; an emulator host
such as ``http://127.0.0.1:PORT`` has no ``api.`` label, so the token request goes to the same server.
"""

from __future__ import annotations

from typing import Any

import PureCloudPlatformClientV2 as gc
import pytest
from PureCloudPlatformClientV2.rest import ApiException

from genesys_emulator import EmulatorServer

OUTDATED = "outdated_sdk_version"


def assert_current(model: Any) -> None:
    """No enum field may have been mapped to the SDK's 'unknown value' marker."""

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{path}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]")
        else:
            assert value != OUTDATED, f"{path} came back as {OUTDATED}"

    items = model if isinstance(model, list) else [model]
    for item in items:
        walk(item.to_dict(), type(item).__name__)


@pytest.fixture
def outbound(emu: EmulatorServer, credentials: tuple[str, str]) -> gc.OutboundApi:
    client = gc.ApiClient(host=emu.base_url)
    assert client.get_conf_url("login", client.host) == emu.base_url
    client.get_client_credentials_token(*credentials)
    return gc.OutboundApi(client)


def make_list(outbound: gc.OutboundApi) -> gc.ContactList:
    body = gc.ContactList()
    body.name = "sdk leads"
    body.column_names = ["phone", "first_name", "age"]
    column = gc.ContactPhoneNumberColumn()
    column.column_name = "phone"
    column.type = "cell"
    body.phone_columns = [column]
    created = outbound.post_outbound_contactlists(body)
    assert isinstance(created, gc.ContactList)
    assert_current(created)
    return created


def predicate(column: str, operator: str, value: str | None = None, **range_: Any) -> gc.ContactListFilterPredicate:
    pred = gc.ContactListFilterPredicate()
    pred.column = column
    pred.column_type = "numeric" if column == "age" else "alphabetic"
    pred.operator = operator
    pred.value = value
    pred.inverted = False
    if range_:
        rng = gc.ContactListFilterRange()
        for key, val in range_.items():
            setattr(rng, key, val)
        pred.range = rng
    return pred


def make_filter(list_id: str, predicates: list[gc.ContactListFilterPredicate]) -> gc.ContactListFilter:
    clause = gc.ContactListFilterClause()
    clause.filter_type = "AND"
    clause.predicates = predicates
    flt = gc.ContactListFilter()
    flt.name = "adults"
    flt.contact_list = gc.DomainEntityRef()
    flt.contact_list.id = list_id
    flt.source_type = "ContactList"
    flt.filter_type = "AND"
    flt.clauses = [clause]
    return flt


def test_contact_list_contacts_search_bulk(outbound: gc.OutboundApi) -> None:
    created = make_list(outbound)
    assert created.version == 1 and created.column_names == ["phone", "first_name", "age"]
    assert created.phone_columns[0].column_name == "phone"

    listing = outbound.get_outbound_contactlists(page_size=10)
    assert isinstance(listing, gc.ContactListEntityListing) and listing.total == 1
    assert_current(listing)
    fetched = outbound.get_outbound_contactlist(created.id)
    assert fetched.name == "sdk leads"

    batch = []
    for i in range(30):
        contact = gc.WritableDialerContact()
        contact.id = f"lead-{i}"
        contact.contact_list_id = created.id
        contact.data = {"phone": f"+1317555{i:04d}", "first_name": f"N{i}", "age": str(20 + i)}
        contact.callable = True
        batch.append(contact)
    stored = outbound.post_outbound_contactlist_contacts(created.id, batch, priority=False, do_not_queue=False)
    assert [c.id for c in stored] == [f"lead-{i}" for i in range(30)]
    assert all(isinstance(c, gc.DialerContact) for c in stored)
    assert_current(stored)

    request = gc.ContactListingRequest()
    request.page_number = 2
    request.page_size = 10
    page = outbound.post_outbound_contactlist_contacts_search(created.id, request)
    assert isinstance(page, gc.ContactListingResponse)
    assert page.total == 30 and page.page_count == 3
    assert [c.id for c in page.entities] == [f"lead-{i}" for i in range(10, 20)]
    assert page.entities[0].data["age"] == "30"
    assert_current(page)

    bulk = outbound.post_outbound_contactlist_contacts_bulk(created.id, ["lead-3", "missing", "lead-7"])
    assert [c.id for c in bulk] == ["lead-3", "lead-7"]
    one = outbound.get_outbound_contactlist_contact(created.id, "lead-3")
    assert one.data["first_name"] == "N3" and one.callable is True


def test_contact_list_filter_valid_and_rejected(outbound: gc.OutboundApi) -> None:
    created = make_list(outbound)
    batch = []
    for i, age in enumerate(["15", "18", "40", "70"]):
        contact = gc.WritableDialerContact()
        contact.id = f"p{i}"
        contact.data = {"phone": f"+1{i}", "age": age}
        batch.append(contact)
    outbound.post_outbound_contactlist_contacts(created.id, batch)

    flt = outbound.post_outbound_contactlistfilters(
        make_filter(
            created.id, [predicate("age", "BETWEEN", min="18", max="65", min_inclusive=True, max_inclusive=True)]
        )
    )
    assert isinstance(flt, gc.ContactListFilter) and flt.version == 1
    assert flt.clauses[0].predicates[0].operator == "BETWEEN"
    assert_current(flt)
    assert_current(outbound.get_outbound_contactlistfilters())

    request = gc.ContactListingRequest()
    request.contact_list_filter_id = flt.id
    request.page_size = 100
    hits = outbound.post_outbound_contactlist_contacts_search(created.id, request)
    assert sorted(c.id for c in hits.entities) == ["p1", "p2"]

    with pytest.raises(ApiException) as missing_range:
        outbound.post_outbound_contactlistfilters(make_filter(created.id, [predicate("age", "BETWEEN")]))
    assert missing_range.value.status == 400
    assert "range" in missing_range.value.body

    with pytest.raises(ApiException) as too_many:
        outbound.post_outbound_contactlistfilters(
            make_filter(created.id, [predicate("age", "GREATER_THAN", str(i)) for i in range(11)])
        )
    assert too_many.value.status == 400


def seed_campaign(emu: EmulatorServer) -> None:
    emu.store.seed(
        {
            "contactLists": [{"id": "list-1", "name": "L", "columnNames": ["phone", "name"]}],
            "dncLists": [{"id": "dnc-1", "name": "Internal"}],
            "campaigns": [
                {
                    "id": "camp-1",
                    "name": "Predictive",
                    "contactList": {"id": "list-1"},
                    "dialingMode": "predictive",
                    "abandonRate": 3,
                    "maxCallsPerAgent": 2,
                    "alwaysRunning": True,
                    "campaignStatus": "on",
                    "dncLists": [{"id": "dnc-1"}],
                }
            ],
        }
    )


def test_campaign_get_patch_put_stats_progress(emu: EmulatorServer, outbound: gc.OutboundApi) -> None:
    seed_campaign(emu)
    campaign = outbound.get_outbound_campaign("camp-1")
    assert isinstance(campaign, gc.Campaign)
    assert_current(campaign)
    assert campaign.dialing_mode == "predictive" and campaign.campaign_status == "on"
    assert campaign.contact_list.id == "list-1" and campaign.max_calls_per_agent == 2
    assert campaign.dnc_lists[0].id == "dnc-1" and campaign.always_running is True
    assert_current(outbound.get_outbound_campaigns())

    patch = gc.CampaignPatchRequest()
    patch.max_calls_per_agent = 2.5
    patch.outbound_line_count = 30
    patch.abandon_rate = 4.0
    assert outbound.patch_outbound_campaign("camp-1", patch) is None
    patched = outbound.get_outbound_campaign("camp-1")
    assert patched.version == campaign.version + 1
    assert patched.max_calls_per_agent_decimal == 2.5 and patched.outbound_line_count == 30

    bad = gc.CampaignPatchRequest()
    bad.max_calls_per_agent = 16.0
    with pytest.raises(ApiException) as too_high:
        outbound.patch_outbound_campaign("camp-1", bad)
    assert too_high.value.status == 400 and "maxCallsPerAgent" in too_high.value.body

    patched.caller_name = "Acme"
    updated = outbound.put_outbound_campaign("camp-1", patched)
    assert updated.version == patched.version + 1 and updated.caller_name == "Acme"
    assert_current(updated)
    with pytest.raises(ApiException) as stale:
        outbound.put_outbound_campaign("camp-1", patched)  # still carries the old version
    assert stale.value.status == 409
    assert "version number of the modified resource must match" in stale.value.body

    stats = outbound.get_outbound_campaign_stats("camp-1")
    assert isinstance(stats, gc.CampaignStats) and stats.contact_rate.attempts == 0
    assert_current(stats)
    progress = outbound.get_outbound_campaign_progress("camp-1")
    assert isinstance(progress, gc.CampaignProgress) and progress.campaign.id == "camp-1"
    assert_current(progress)


def test_dnc_lists_and_numbers(emu: EmulatorServer, outbound: gc.OutboundApi) -> None:
    create = gc.DncListCreate()
    create.name = "Internal DNC"
    create.dnc_source_type = "rds"
    create.contact_method = "Phone"
    dnc = outbound.post_outbound_dnclists(create)
    assert isinstance(dnc, gc.DncList) and dnc.dnc_source_type == "rds"
    assert_current(dnc)
    outbound.post_outbound_dnclist_phonenumbers(dnc.id, ["+13175550100", "+13175550101"])
    remove = gc.DncPatchPhoneNumbersRequest()
    remove.action = "Remove"
    remove.phone_numbers = ["+13175550100"]
    outbound.patch_outbound_dnclist_phonenumbers(dnc.id, remove)
    assert outbound.get_outbound_dnclist(dnc.id).size == 1
    assert_current(outbound.get_outbound_dnclists())
    assert set(emu.store.dnc_numbers_of(dnc.id)) == {"+13175550101"}


def test_unknown_ids_are_404_and_expired_token_is_401(emu: EmulatorServer, outbound: gc.OutboundApi) -> None:
    with pytest.raises(ApiException) as missing:
        outbound.get_outbound_campaign("nope")
    assert missing.value.status == 404 and '"not.found"' in missing.value.body
    emu.expire_tokens()
    with pytest.raises(ApiException) as expired:
        outbound.get_outbound_contactlists()
    assert expired.value.status == 401 and "bad.credentials" in expired.value.body
