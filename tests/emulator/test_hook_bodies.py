"""The project's own request bodies, checked against the official SDK's models (PureCloudPlatformClientV2).

The emulator accepts what it was written to accept; the SDK's models are generated from Genesys' own API
definition. So every body the GenesysHook really sends (captured on the wire from its requests.Session) and
every body the package's builders produce must fit the model the real endpoint takes: known keys only, values
of the declared types, enum values from the allowed list. The SDK operation, and so the model, is found from
the request's method and path alone, not from a table in this file.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import PureCloudPlatformClientV2 as gc
import pytest
import requests
from support import CAMPAIGN_ID, CONTACT_LIST_ID

from genesys_devkit.demo_data import emulator_seed
from genesys_dialer.dags.delivery import CONTACT_POST_FLAGS
from genesys_dialer.genesys import auth
from genesys_dialer.genesys.breaker import BreakerSettings
from genesys_dialer.genesys.hook import GenesysHook
from genesys_dialer.genesys.state import MemoryStateStore
from genesys_dialer.ledger.claims import PendingContact, genesys_contact, normalize_phone
from genesys_dialer.pacing.strategies import STRATEGIES, AnswerHistory, HistoryBucket, PacingDecision, plan_pacing
from genesys_emulator import EmulatorServer

CONN_ID = "genesys_bodies"
PRIMITIVES = {"str", "int", "float", "bool", "datetime", "date", "object"}


# ------------------------------------------------------------------------------------------- the validator


@dataclass(frozen=True)
class Operation:
    """One OutboundApi method as the SDK defines it: HTTP method, path template, body type, query names."""

    name: str
    method: str
    path: str
    body_type: str | None
    query: frozenset[str]

    def matches(self, method: str, path: str) -> bool:
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(self.path))
        return method == self.method and re.fullmatch(pattern, path) is not None


@cache
def sdk_operations() -> list[Operation]:
    """Every OutboundApi operation, read from the generated source (it is the API definition, flattened)."""
    operations = []
    for name, fn in inspect.getmembers(gc.OutboundApi, inspect.isfunction):
        source = inspect.getsource(fn)
        path = re.search(r"resource_path = '([^']+)'", source)
        method = re.search(r"call_api\(resource_path, '([A-Z]+)'", source)
        if not (path and method):
            continue
        body = re.search(r":param (\S+) body:", fn.__doc__ or "")
        query = frozenset(re.findall(r"query_params\['(\w+)'\]", source))
        operations.append(Operation(name, method[1], path[1], body[1] if body else None, query))
    assert len(operations) > 100, "the SDK source no longer looks as expected"
    return operations


def operation_for(method: str, path: str) -> Operation:
    hits = [op for op in sdk_operations() if op.matches(method, path)]
    # A literal segment beats a {param} at the same place (.../contacts/search vs .../contacts/{contactId}).
    hits.sort(key=lambda op: op.path.count("{"))
    assert hits, f"the SDK has no operation {method} {path}: the real API would answer 404"
    return hits[0]


def model_class(name: str) -> type:
    cls = getattr(gc, name, None)
    assert isinstance(cls, type) and hasattr(cls(), "swagger_types"), f"{name} is not an SDK model"
    return cls


@cache
def allowed_values(model: str, attribute: str) -> list[str] | None:
    """The enum of a model attribute, from its generated setter (the SDK itself compares case-insensitively
    and never raises, so its setter cannot be used as the check)."""
    prop = getattr(model_class(model), attribute, None)
    if not isinstance(prop, property) or prop.fset is None:
        return None
    found = re.search(r"allowed_values = (\[.*?\])", inspect.getsource(prop.fset), re.S)
    return ast.literal_eval(found[1]) if found else None


def validate(value: Any, swagger_type: str, path: str = "body") -> list[str]:
    """Everything in ``value`` (decoded JSON) that a request of ``swagger_type`` may not contain."""
    if value is None:
        return []  # an absent value; the SDK models declare no required fields
    if swagger_type.startswith("list["):
        if not isinstance(value, list):
            return [f"{path}: expected an array ({swagger_type}), got {type(value).__name__}"]
        return [e for i, item in enumerate(value) for e in validate(item, swagger_type[5:-1], f"{path}[{i}]")]
    if swagger_type.startswith("dict("):
        key_type, item_type = (part.strip() for part in swagger_type[5:-1].split(",", 1))
        assert key_type == "str", swagger_type
        if not isinstance(value, dict):
            return [f"{path}: expected an object ({swagger_type}), got {type(value).__name__}"]
        return [e for key, item in value.items() for e in validate(item, item_type, f"{path}.{key}")]
    if swagger_type in PRIMITIVES:
        return [] if _primitive_ok(value, swagger_type) else [
            f"{path}: {value!r} is not a {swagger_type}"]
    return _validate_model(value, swagger_type, path)


def _primitive_ok(value: Any, swagger_type: str) -> bool:
    if swagger_type == "object":
        return True
    if swagger_type == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if swagger_type == "int":
        return isinstance(value, int)
    if swagger_type == "float":
        return isinstance(value, (int, float)) and math.isfinite(value)
    if swagger_type in ("datetime", "date"):
        try:
            datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return False
        return isinstance(value, str)
    return isinstance(value, str)


def _validate_model(value: Any, model: str, path: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{path}: expected a {model} object, got {type(value).__name__}"]
    instance = model_class(model)()
    by_json_key = {json_key: attr for attr, json_key in instance.attribute_map.items()}
    errors = []
    for key, item in value.items():
        attribute = by_json_key.get(key)
        if attribute is None:
            errors.append(f"{path}.{key}: {model} has no such field (it has {sorted(by_json_key)})")
            continue
        errors += validate(item, instance.swagger_types[attribute], f"{path}.{key}")
        allowed = allowed_values(model, attribute)
        if allowed is not None and isinstance(item, str) and item not in allowed:
            errors.append(f"{path}.{key}: {item!r} is not one of {allowed}")
    return errors


def validate_request(method: str, url: str, body: bytes | str | None) -> Operation:
    """A request as it went on the wire: the SDK knows the operation, its query names and its body model."""
    parts = urlsplit(url)
    operation = operation_for(method, parts.path)
    unknown_query = {name for name, _ in parse_qsl(parts.query)} - operation.query
    assert not unknown_query, f"{operation.name}: query parameters the API does not define: {unknown_query}"
    if body is None:
        assert operation.body_type is None or method == "GET", f"{operation.name} needs a body"
        return operation
    assert operation.body_type, f"{operation.name} takes no body"
    errors = validate(json.loads(body), operation.body_type)
    assert not errors, f"{method} {parts.path} ({operation.body_type}):\n" + "\n".join(errors)
    return operation


# ------------------------------------------------------------------------------------ the validator can fail


@pytest.mark.parametrize(
    ("body", "swagger_type", "complaint"),
    [
        ({"maxCallsPerAgent": 2, "dialRules": []}, "CampaignPatchRequest", "dialRules: CampaignPatchRequest has no"),
        ({"maxContactsPerAgent": 3}, "CampaignPatchRequest", "maxContactsPerAgent: CampaignPatchRequest has no"),
        ({"outboundLineCount": 12.5}, "CampaignPatchRequest", "outboundLineCount: 12.5 is not a int"),
        ({"abandonRate": "3"}, "CampaignPatchRequest", "abandonRate: '3' is not a float"),
        ([{"id": "c1", "data": {"phone": 13175550100}}], "list[WritableDialerContact]", "data.phone: 13175550100"),
        ([{"id": "c1", "callable": "yes"}], "list[WritableDialerContact]", "callable: 'yes' is not a bool"),
        ([{"id": "c1", "phone": "+13175550100"}], "list[WritableDialerContact]", "phone: WritableDialerContact"),
        ([{"id": "c1", "retentionType": "Forever"}], "list[WritableDialerContact]", "'Forever' is not one of"),
        ({"pageNumber": 1, "pageSize": 10, "contactSorts": [{"fieldName": "phone", "direction": "asc"}]},
         "ContactListingRequest", "'asc' is not one of ['ASC', 'DESC']"),
        ({"page": 1}, "ContactListingRequest", "page: ContactListingRequest has no"),
    ],
)
def test_the_validator_rejects_what_the_real_api_would_not_know(body: Any, swagger_type: str, complaint: str) -> None:
    errors = validate(body, swagger_type)
    assert any(complaint in error for error in errors), errors


def test_the_validator_finds_the_operation_from_method_and_path() -> None:
    assert operation_for("POST", f"/api/v2/outbound/contactlists/{CONTACT_LIST_ID}/contacts/search").body_type == (
        "ContactListingRequest")
    assert operation_for("POST", f"/api/v2/outbound/contactlists/{CONTACT_LIST_ID}/contacts").body_type == (
        "list[WritableDialerContact]")
    assert operation_for("PATCH", f"/api/v2/outbound/campaigns/{CAMPAIGN_ID}").body_type == "CampaignPatchRequest"
    with pytest.raises(AssertionError, match="no operation"):
        operation_for("PATCH", f"/api/v2/outbound/contactlists/{CONTACT_LIST_ID}/contacts")
    with pytest.raises(AssertionError, match="does not define"):
        validate_request("POST", f"http://x/api/v2/outbound/contactlists/{CONTACT_LIST_ID}/contacts?dedupe=true", b"[]")


# --------------------------------------------------------------------------------------- the package's bodies


def _pending(n: int) -> list[tuple[PendingContact, str]]:
    contacts = []
    for i in range(n):
        e164, reason = normalize_phone(f"(317) 555-{100 + i:04d}", "US")
        assert e164 and reason is None
        pending = PendingContact(1000 + i, f"gd-itest-{1000 + i}", e164, None, "America/Indiana/Indianapolis", "46204")
        contacts.append((pending, e164))
    return contacts


def _builder_contacts(n: int, **columns: str) -> list[dict[str, Any]]:
    return [
        genesys_contact(pending, e164, contact_list_id=CONTACT_LIST_ID, phone_column="phone", segment_column="segment",
                        segment="20260101T0000-s000", **columns)
        for pending, e164 in _pending(n)
    ]


def _decisions() -> list[PacingDecision]:
    """Decisions of every strategy, on thin and rich history, as the pacing model really computes them."""
    from genesys_dialer.config import CampaignConfig

    decisions = []
    for strategy in sorted(STRATEGIES):
        campaign = CampaignConfig(key="bodies", campaign_id=CAMPAIGN_ID, ratio_strategy=strategy)
        for attempts, answers in ((0, 0), (40, 3), (5000, 1100)):
            history = AnswerHistory((HistoryBucket(0, attempts, answers),))
            decisions.append(plan_pacing(history, campaign, current_abandon_rate=3.0).decision)
    return decisions


def test_builder_bodies_fit_the_sdk_models() -> None:
    """The bodies are built once and sent as they are: they must fit before any hook touches them."""
    assert not validate(_builder_contacts(3), "list[WritableDialerContact]")
    zoned = _builder_contacts(3, timezone_column="tz", postal_code_column="zip")
    assert not validate(zoned, "list[WritableDialerContact]")
    assert zoned[0]["data"]["tz"] == "America/Indiana/Indianapolis" and zoned[0]["data"]["zip"] == "46204"
    decisions = _decisions()
    assert len({d.strategy for d in decisions}) >= 2
    for decision in decisions:
        assert not validate(decision.patch_body(), "CampaignPatchRequest"), decision


@dataclass
class Sent:
    method: str
    url: str
    body: bytes | None
    status: int


@pytest.fixture
def hook(
    emu: EmulatorServer, credentials: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[GenesysHook, list[Sent]]]:
    """The real hook against the emulator; its own session records every request exactly as it was sent."""
    emu.store.seed(emulator_seed(CAMPAIGN_ID, CONTACT_LIST_ID))
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(
        {"conn_type": "genesys_cloud", "host": emu.base_url, "login": credentials[0], "password": credentials[1]}))
    auth.token_cache.pop(CONN_ID, None)
    the_hook = GenesysHook(CONN_ID, state_store=MemoryStateStore(), breaker_settings=BreakerSettings(),
                           sleep=lambda _: None)
    sent: list[Sent] = []

    def record(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        request = response.request
        body = request.body.encode() if isinstance(request.body, str) else request.body
        sent.append(Sent(str(request.method), str(request.url), body, response.status_code))

    the_hook.get_conn().hooks["response"].append(record)
    yield the_hook, sent
    auth.token_cache.pop(CONN_ID, None)


def test_the_hooks_request_bodies_fit_the_sdk_models(hook: tuple[GenesysHook, list[Sent]]) -> None:
    the_hook, sent = hook
    campaign = the_hook.get_campaign(CAMPAIGN_ID)
    assert campaign["contactList"]["id"] == CONTACT_LIST_ID
    the_hook.get_contact_list(CONTACT_LIST_ID)
    stored = the_hook.add_contacts(CONTACT_LIST_ID, _builder_contacts(25), **CONTACT_POST_FLAGS)
    assert len(stored) == 25
    decision = _decisions()[-1]
    the_hook.patch_campaign(CAMPAIGN_ID, decision.patch_body())
    found = list(the_hook.search_contacts(CONTACT_LIST_ID, page_size=10))
    assert len(found) == 25

    api_calls = [s for s in sent if "/api/v2/" in s.url]
    assert all(s.status < 300 for s in sent), [(s.method, s.url, s.status) for s in sent]
    operations = [validate_request(s.method, s.url, s.body).name for s in api_calls]
    assert operations == [
        "get_outbound_campaign", "get_outbound_contactlist", "post_outbound_contactlist_contacts",
        "patch_outbound_campaign", *["post_outbound_contactlist_contacts_search"] * 3,
    ]
    # The bodies validated are the ones the hook really sent, not copies of what the test passed in.
    contact_post = next(s for s in api_calls if s.method == "POST" and s.url.split("?")[0].endswith("/contacts"))
    assert json.loads(contact_post.body or b"") == _builder_contacts(25)
    patch = next(s for s in api_calls if s.method == "PATCH")
    assert json.loads(patch.body or b"") == decision.patch_body()
    assert dict(parse_qsl(urlsplit(contact_post.url).query)) == {
        "priority": "false", "clearSystemData": "false", "doNotQueue": "false"}


def test_a_wrong_body_sent_through_the_hook_fails_validation(hook: tuple[GenesysHook, list[Sent]]) -> None:
    """The wire check is not vacuous: the seed tutorial's body, sent for real, is caught."""
    the_hook, sent = hook
    tutorial_body = {"maxContactsPerAgent": 3, "dialRules": [], "outboundLineCount": 10}
    with contextlib.suppress(Exception):  # the emulator may refuse it too; what was sent is what matters
        the_hook.patch_campaign(CAMPAIGN_ID, tutorial_body)
    patch = next(s for s in sent if s.method == "PATCH")
    with pytest.raises(AssertionError) as caught:
        validate_request(patch.method, patch.url, patch.body)
    assert "maxContactsPerAgent" in str(caught.value) and "dialRules" in str(caught.value)


def test_the_withdrawal_requests_fit_the_sdk_and_return_their_context_ids(
    emu: EmulatorServer, hook: tuple[GenesysHook, list[Sent]]
) -> None:
    the_hook, sent = hook
    emu.store.seed({"dncLists": [{"id": "dnc-bodies", "name": "Withdrawn"}]})
    the_hook.add_contacts(CONTACT_LIST_ID, _builder_contacts(3), **CONTACT_POST_FLAGS)
    ids = [c["id"] for c in _builder_contacts(3)]
    dnc_context = the_hook.add_dnc_numbers("dnc-bodies", ["+13175550100", "+13175550101"])
    delete_context = the_hook.delete_contacts(CONTACT_LIST_ID, ids[:2])
    left = the_hook.get_contacts(CONTACT_LIST_ID, ids)

    assert [c["id"] for c in left] == ids[2:]
    assert set(emu.store.dnc_numbers_of("dnc-bodies")) == {"+13175550100", "+13175550101"}
    api_calls = [s for s in sent if "/api/v2/" in s.url]
    operations = [validate_request(s.method, s.url, s.body).name for s in api_calls]
    assert operations == [
        "post_outbound_contactlist_contacts", "patch_outbound_dnclist_phonenumbers",
        "delete_outbound_contactlist_contacts", "post_outbound_contactlist_contacts_bulk",
    ]
    delete = api_calls[2]
    assert parse_qsl(urlsplit(delete.url).query) == [("contactIds", ",".join(ids[:2]))]
    assert json.loads(api_calls[1].body or b"") == {"action": "Add", "phoneNumbers": ["+13175550100", "+13175550101"]}
    # The contextIds returned are Genesys' ININ-Correlation-Id of those very responses (the ledger records them).
    log = {entry["method"]: entry["correlationId"] for entry in emu.requests_log()}
    assert (dnc_context, delete_context) == (log["PATCH"], log["DELETE"])
    with pytest.raises(ValueError, match="1 to 1000"):
        the_hook.delete_contacts(CONTACT_LIST_ID, [])
