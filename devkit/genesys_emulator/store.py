"""In-memory Genesys Cloud outbound state (contact lists, contacts, filters, campaigns, DNC lists).

Entities are stored as the JSON dicts the API returns and are replaced, never mutated, on update
(copy-on-write), so a handler can serialise them outside the lock. Contacts are stored lean, as
``(values, callable)`` tuples aligned with the list's columns, because a list may hold a million of them.
"""

from __future__ import annotations

import math
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from .analytics import AggregateQuery, iso, parse_instant
from .config import EmulatorConfig
from .dialer import CampaignDialer, Pacing, Population
from .errors import ApiError, bad_request, not_found, version_conflict
from .filters import compile_filter, validate_clauses, validate_filter_type

API = "/api/v2/outbound"
HOME_DIVISION = {
    "id": "00000000-0000-4000-8000-000000000001",
    "name": "Home",
    "selfUri": "/api/v2/authorization/divisions/00000000-0000-4000-8000-000000000001",
}
DIALING_MODES = ("agentless", "preview", "power", "predictive", "progressive", "external")
CAMPAIGN_STATUSES = ("on", "stopping", "off", "complete", "invalid", "forced_off", "forced_stopping")
DNC_SOURCE_TYPES = ("rds", "rds_custom", "dnc.com", "gryphon")
CONTACT_METHODS = ("Email", "Phone", "Any", "WhatsApp")

CONTACT_LIST_FIELDS = frozenset(
    [
        "id",
        "name",
        "dateCreated",
        "dateModified",
        "version",
        "division",
        "columnNames",
        "phoneColumns",
        "emailColumns",
        "whatsAppColumns",
        "importStatus",
        "previewModeColumnName",
        "previewModeAcceptedValues",
        "size",
        "attemptLimits",
        "automaticTimeZoneMapping",
        "zipCodeColumnName",
        "columnDataTypeSpecifications",
        "trimWhitespace",
        "retentionType",
        "retentionDays",
        "dateExpiration",
        "timeZone",
        "selfUri",
    ]
)
CAMPAIGN_FIELDS = frozenset(
    [
        "id",
        "name",
        "dateCreated",
        "dateModified",
        "version",
        "contactList",
        "queue",
        "dialingMode",
        "script",
        "edgeGroup",
        "site",
        "campaignStatus",
        "phoneColumns",
        "abandonRate",
        "dncLists",
        "callableTimeSet",
        "callAnalysisResponseSet",
        "errors",
        "callerName",
        "callerAddress",
        "outboundLineCount",
        "ruleSets",
        "skipPreviewDisabled",
        "previewTimeOutSeconds",
        "alwaysRunning",
        "contactSort",
        "contactSorts",
        "noAnswerTimeout",
        "callAnalysisLanguage",
        "priority",
        "contactListFilters",
        "division",
        "agentOwnedColumn",
        "dynamicContactQueueingSettings",
        "skillColumns",
        "previewAutoEnd",
        "maxCallsPerAgent",
        "maxCallsPerAgentDecimal",
        "callbackAutoAnswer",
        "dynamicLineBalancingSettings",
        "diagnosticsSettings",
        "preciseDialingEnabled",
        "selfUri",
    ]
)
CAMPAIGN_PATCH_FIELDS = frozenset(
    ["outboundLineCount", "abandonRate", "maxCallsPerAgent", "dynamicLineBalancingSettings", "queue"]
)
FILTER_FIELDS = frozenset(
    [
        "id",
        "name",
        "dateCreated",
        "dateModified",
        "version",
        "contactList",
        "contactListTemplate",
        "sourceType",
        "clauses",
        "filterType",
        "selfUri",
    ]
)
DNC_FIELDS = frozenset(
    [
        "id",
        "name",
        "dateCreated",
        "dateModified",
        "version",
        "importStatus",
        "size",
        "dncSourceType",
        "contactMethod",
        "loginId",
        "campaignId",
        "dncCodes",
        "licenseId",
        "division",
        "customExclusionColumn",
        "selfUri",
    ]
)
CONTACT_FIELDS = frozenset(
    [
        "id",
        "name",
        "contactListId",
        "data",
        "callRecords",
        "latestSmsEvaluations",
        "latestEmailEvaluations",
        "latestWhatsAppEvaluations",
        "callable",
        "phoneNumberStatus",
        "contactableStatus",
        "contactColumnTimeZones",
        "configurationOverrides",
        "dateCreated",
        "retentionType",
        "retentionDays",
        "dateExpiration",
        "selfUri",
    ]
)
PHONE_COLUMN_FIELDS = frozenset(["columnName", "type", "callableTimeColumnName", "callableTimeColumn"])
DNC_PATCH_FIELDS = frozenset(["action", "phoneNumbers", "expirationDateTime"])
# DncPatchPhoneNumbersRequest.expirationDateTime: "yyyy-MM-ddTHH:mmZ" (seconds accepted too).
_DNC_EXPIRY = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?Z$")
# System wrap-up codes the dialer records for a contact it passes over: its number is on a DNC list of the
# campaign; it has no number to dial.
ON_DNC_LIST = "ININ-OUTBOUND-ON-DO-NOT-CALL-LIST"
NO_NUMBER = "ININ-OUTBOUND-INVALID-PHONE-NUMBER"
SEARCH_FIELDS = frozenset(["contactListFilterId", "criteria", "pageNumber", "pageSize", "contactSorts"])
READ_ONLY = frozenset(["id", "dateCreated", "dateModified", "selfUri", "size", "errors", "importStatus"])

ContactRecord = tuple[tuple[str | None, ...], bool]


def _wall_minute() -> float:
    """The wall clock, floored to the minute: where simulated time starts."""
    return math.floor(time.time() / 60) * 60.0


def now_iso() -> str:
    """Genesys timestamp format: ISO-8601 UTC with milliseconds and ``Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class ContactListState:
    """A contact list entity plus its contacts and dialing queue."""

    entity: dict[str, Any]
    columns: list[str]
    colset: frozenset[str]
    contacts: dict[str, ContactRecord] = field(default_factory=dict)
    # Dialing queue: ``front`` holds priority contacts (newest batch first), ``back`` normal ones (FIFO).
    front: dict[str, None] = field(default_factory=dict)
    back: dict[str, None] = field(default_factory=dict)
    # How many times each contact entered the dialing queue, and was taken off it to be dialed: what a test
    # needs to prove a contact was never queued (so never dialed) twice. Kept across list clears.
    queue_entries: Counter[str] = field(default_factory=Counter)
    dial_counts: Counter[str] = field(default_factory=Counter)
    # Why the dialer passed a queued contact over instead of dialing it (e.g. its number is on a DNC list of the
    # campaign), and the contacts whose call is still going on (a campaign is using them: DELETE keeps them).
    dial_skips: dict[str, str] = field(default_factory=dict)
    in_call: set[str] = field(default_factory=set)
    # The dialer's last result per contact: {contact id: {phone column: {"lastAttempt", "lastResult"}}}.
    call_records: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)

    def dequeue(self, cid: str) -> None:
        self.front.pop(cid, None)
        self.back.pop(cid, None)

    def queue(self) -> list[str]:
        return [*self.front, *self.back]


@dataclass
class CampaignState:
    entity: dict[str, Any]
    attempts: int = 0
    stats_overrides: dict[str, Any] = field(default_factory=dict)
    dialer: CampaignDialer | None = None  # set by the admin API: the campaign is then dialed as time advances


def _digits(number: str | None) -> str:
    """A phone number as its digits: how the dialer compares a contact's number with DNC entries."""
    return "".join(ch for ch in number or "" if ch.isdigit())


def _expiry_iso(value: str) -> str:
    """A DNC expiry ("yyyy-MM-ddTHH:mmZ", seconds optional) comparable with :func:`now_iso` as a string."""
    stamp = value.rstrip("Z")
    return (stamp + ":00" if len(stamp) == 16 else stamp).ljust(23, "0")[:19] + ".000Z"


def _check_fields(body: Mapping[str, Any], allowed: frozenset[str], prefix: str = "") -> None:
    if not body.keys() <= allowed:
        unknown = next(k for k in body if k not in allowed)
        raise bad_request(f"Unrecognized field {unknown!r}", prefix + unknown, code="invalid.property")


def _require_object(body: Any, field_name: str = "body") -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request(f"{field_name} must be a JSON object", field_name)
    return body


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _ref_id(value: Any, field_name: str) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("id"), str) or not value["id"]:
        raise bad_request(f"{field_name}.id is required", f"{field_name}.id")
    return value["id"]


def page_params(query: Mapping[str, list[str]], max_page_size: int | None) -> tuple[int, int]:
    """``pageSize``/``pageNumber`` from a query string (defaults 25 / 1)."""
    return (
        _page_value(query.get("pageSize", ["25"])[0], "pageSize", max_page_size),
        _page_value(query.get("pageNumber", ["1"])[0], "pageNumber", None),
    )


def _page_value(raw: Any, name: str, maximum: int | None) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise bad_request(f"{name} must be an integer", name) from None
    if isinstance(raw, bool) or value < 1:
        raise bad_request(f"{name} must be at least 1", name)
    if maximum is not None and value > maximum:
        raise bad_request(f"{name} must be at most {maximum}", name)
    return value


def listing(items: list[Any], page_size: int, page_number: int, uri: str) -> dict[str, Any]:
    """The ``*EntityListing`` envelope."""
    total = len(items)
    page_count = math.ceil(total / page_size) if total else 0
    start = (page_number - 1) * page_size
    out: dict[str, Any] = {
        "entities": items[start : start + page_size],
        "pageSize": page_size,
        "pageNumber": page_number,
        "total": total,
        "firstUri": f"{uri}?pageSize={page_size}&pageNumber=1",
        "selfUri": f"{uri}?pageSize={page_size}&pageNumber={page_number}",
        "lastUri": f"{uri}?pageSize={page_size}&pageNumber={max(page_count, 1)}",
        "pageCount": page_count,
    }
    if page_number < page_count:
        out["nextUri"] = f"{uri}?pageSize={page_size}&pageNumber={page_number + 1}"
    if page_number > 1:
        out["previousUri"] = f"{uri}?pageSize={page_size}&pageNumber={page_number - 1}"
    return out


class Store:
    """All emulated outbound state behind one lock (the emulator is not meant to scale across cores)."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.lists: dict[str, ContactListState] = {}
        self.filters: dict[str, dict[str, Any]] = {}
        self.campaigns: dict[str, CampaignState] = {}
        self.dnc_lists: dict[str, dict[str, Any]] = {}
        self.dnc_numbers: dict[str, dict[str, str | None]] = {}
        # Simulated time (epoch seconds) of the dialers and the analytics API; only the admin API moves it.
        self.clock = _wall_minute()

    def reset(self) -> None:
        with self.lock:
            self.lists.clear()
            self.filters.clear()
            self.campaigns.clear()
            self.dnc_lists.clear()
            self.dnc_numbers.clear()
            self.clock = _wall_minute()

    def _limit(self, value: int | float) -> int | float | None:
        return value if self.config.enforce_limits else None

    # ----------------------------------------------------------------------------------- contact lists
    def _list(self, list_id: str) -> ContactListState:
        state = self.lists.get(list_id)
        if state is None:
            raise not_found("contact list", list_id)
        return state

    def _list_view(self, state: ContactListState) -> dict[str, Any]:
        return {**state.entity, "size": len(state.contacts)}

    def _list_ref(self, list_id: str) -> dict[str, Any]:
        state = self._list(list_id)
        return {"id": list_id, "name": state.entity["name"], "selfUri": state.entity["selfUri"]}

    def _validate_contact_list(self, body: Any, *, seed: bool) -> dict[str, Any]:
        body = _require_object(body)
        _check_fields(body, CONTACT_LIST_FIELDS)
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise bad_request("name is required", "name")
        columns = body.get("columnNames")
        if not isinstance(columns, list) or not columns or not all(isinstance(c, str) and c for c in columns):
            raise bad_request("columnNames must be a non-empty array of strings", "columnNames")
        max_cols = self._limit(self.config.max_columns)
        if max_cols is not None and len(columns) > max_cols:
            raise bad_request(f"A contact list may have at most {max_cols} columns", "columnNames")
        max_len = self._limit(self.config.max_column_name_length)
        for i, col in enumerate(columns):
            if max_len is not None and len(col) > max_len:
                raise bad_request(f"Column names may be at most {max_len} characters", f"columnNames[{i}]")
        if len(set(columns)) != len(columns):
            raise bad_request("columnNames must be unique", "columnNames")
        automatic = body.get("automaticTimeZoneMapping", False)
        if not isinstance(automatic, bool):
            raise bad_request("automaticTimeZoneMapping must be a boolean", "automaticTimeZoneMapping")
        phone_columns = body.get("phoneColumns")
        if phone_columns is None and seed:
            phone_columns = [{"columnName": columns[0], "type": "cell"}]
        if not isinstance(phone_columns, list) or not phone_columns:
            raise bad_request("phoneColumns must be a non-empty array", "phoneColumns")
        clean_phone: list[dict[str, Any]] = []
        for i, pc in enumerate(phone_columns):
            if not isinstance(pc, dict) or pc.get("columnName") not in columns:
                raise bad_request(
                    "phoneColumns[].columnName must be one of columnNames", f"phoneColumns[{i}].columnName"
                )
            if not isinstance(pc.get("type"), str) or not pc["type"]:
                raise bad_request("phoneColumns[].type is required", f"phoneColumns[{i}].type")
            _check_fields(pc, PHONE_COLUMN_FIELDS, f"phoneColumns[{i}].")
            time_column = pc.get("callableTimeColumn")
            if time_column is not None:
                if automatic:
                    raise bad_request(
                        "callableTimeColumn is not allowed when automaticTimeZoneMapping is true",
                        f"phoneColumns[{i}].callableTimeColumn",
                    )
                if time_column not in columns:
                    raise bad_request(
                        "phoneColumns[].callableTimeColumn must be one of columnNames",
                        f"phoneColumns[{i}].callableTimeColumn",
                    )
            clean_phone.append(dict(pc))
        zip_column = body.get("zipCodeColumnName")
        if zip_column is not None:
            if not automatic:
                raise bad_request(
                    "zipCodeColumnName is only allowed with automaticTimeZoneMapping", "zipCodeColumnName"
                )
            if zip_column not in columns:
                raise bad_request("zipCodeColumnName must be one of columnNames", "zipCodeColumnName")
        entity = {k: v for k, v in body.items() if k not in READ_ONLY and k != "version"}
        entity.update(name=name, columnNames=list(columns), phoneColumns=clean_phone)
        return entity

    def create_contact_list(self, body: Any, *, seed: bool = False) -> dict[str, Any]:
        entity = self._validate_contact_list(body, seed=seed)
        list_id = body.get("id") if seed and isinstance(body.get("id"), str) else new_id()
        stamp = now_iso()
        entity = {
            "id": list_id,
            "dateCreated": stamp,
            "dateModified": stamp,
            "version": 1,
            "division": HOME_DIVISION,
            "emailColumns": [],
            "whatsAppColumns": [],
            "previewModeAcceptedValues": [],
            "automaticTimeZoneMapping": False,
            "trimWhitespace": True,
            **entity,
            "selfUri": f"{API}/contactlists/{list_id}",
        }
        with self.lock:
            self.lists[list_id] = ContactListState(entity, entity["columnNames"], frozenset(entity["columnNames"]))
            return self._list_view(self.lists[list_id])

    def get_contact_list(self, list_id: str) -> dict[str, Any]:
        with self.lock:
            return self._list_view(self._list(list_id))

    def list_contact_lists(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        page_size, page_number = page_params(query, self._limit(self.config.max_page_size))
        name = query.get("name", [""])[0].lower()
        with self.lock:
            items = [self._list_view(s) for s in self.lists.values() if name in s.entity["name"].lower()]
        return listing(items, page_size, page_number, f"{API}/contactlists")

    def update_contact_list(self, list_id: str, body: Any) -> dict[str, Any]:
        entity = self._validate_contact_list(body, seed=False)
        with self.lock:
            state = self._list(list_id)
            if body.get("version") != state.entity["version"]:
                raise version_conflict(list_id)
            new_entity = {
                **state.entity,
                **entity,
                "version": state.entity["version"] + 1,
                "dateModified": now_iso(),
            }
            new_columns: list[str] = new_entity["columnNames"]
            if new_columns != state.columns:
                old_index = {c: i for i, c in enumerate(state.columns)}
                positions = [old_index.get(c) for c in new_columns]
                state.contacts = {
                    cid: (tuple(vals[p] if p is not None else None for p in positions), ok)
                    for cid, (vals, ok) in state.contacts.items()
                }
                state.columns = new_columns
                state.colset = frozenset(new_columns)
            state.entity = new_entity
            return self._list_view(state)

    def delete_contact_list(self, list_id: str) -> None:
        with self.lock:
            self._list(list_id)
            for camp in self.campaigns.values():
                if camp.entity["contactList"]["id"] == list_id:
                    raise ApiError(
                        400,
                        f"The contact list is in use by campaign {camp.entity['id']}",
                        "contact.list.in.use",
                        [{"errorCode": "contact.list.in.use", "entityId": camp.entity["id"]}],
                    )
            del self.lists[list_id]
            for fid in [f for f, e in self.filters.items() if e["contactList"]["id"] == list_id]:
                del self.filters[fid]

    def clear_contact_list(self, list_id: str) -> None:
        with self.lock:
            state = self._list(list_id)
            state.contacts = {}
            state.front = {}
            state.back = {}

    # ------------------------------------------------------------------------------------------ contacts
    def _contact_view(self, list_id: str, state: ContactListState, cid: str, rec: ContactRecord) -> dict[str, Any]:
        view = {
            "id": cid,
            "contactListId": list_id,
            "data": {c: v for c, v in zip(state.columns, rec[0], strict=False) if v is not None},
            "callable": rec[1],
            "phoneNumberStatus": {},
            "contactableStatus": {},
            "selfUri": f"{API}/contactlists/{list_id}/contacts/{cid}",
        }
        records = state.call_records.get(cid)
        if records:
            view["callRecords"] = records
        return view

    def _prepare_contact(
        self, item: Any, i: int | None, list_id: str, state: ContactListState
    ) -> tuple[str | None, tuple[str | None, ...], bool, dict[str, str]]:
        """Validate one posted contact; return ``(id, values, callable, data)`` (hot path: keep it tight)."""
        prefix = "" if i is None else f"[{i}]."
        if type(item) is not dict:
            raise bad_request("Each contact must be a JSON object", prefix.rstrip(".") or "body")
        if not item.keys() <= CONTACT_FIELDS:
            _check_fields(item, CONTACT_FIELDS, prefix)
        cid = item.get("id")
        if cid is not None and (type(cid) is not str or not cid):
            raise bad_request("id must be a non-empty string", prefix + "id")
        clid = item.get("contactListId")
        if clid is not None and clid != list_id:
            raise bad_request("contactListId does not match the contact list in the path", prefix + "contactListId")
        data = item.get("data")
        if type(data) is not dict:
            raise bad_request("data is required and must be an object", prefix + "data")
        if not data.keys() <= state.colset:
            key = next(k for k in data if k not in state.colset)
            raise bad_request(
                f"Contact data key {key!r} is not a column of the contact list",
                prefix + "data." + key,
                code="invalid.property",
            )
        max_cell = self.config.max_cell_length if self.config.enforce_limits else None
        for key, value in data.items():
            if type(value) is not str:
                if value is None:
                    continue
                if _is_number(value):
                    data = {k: (str(v) if _is_number(v) else v) for k, v in data.items()}
                    value = data[key]
                else:
                    raise bad_request("Contact data values must be strings", prefix + "data." + key)
            if max_cell is not None and len(value) > max_cell:
                raise bad_request(f"Contact data values may be at most {max_cell} characters", prefix + "data." + key)
        ok = item.get("callable", True)
        if type(ok) is not bool:
            raise bad_request("callable must be a boolean", prefix + "callable")
        zones = item.get("contactColumnTimeZones")
        if zones is not None:
            self._check_column_time_zones(zones, state, prefix + "contactColumnTimeZones")
        return cid, tuple(map(data.get, state.columns)), ok, data

    @staticmethod
    def _check_column_time_zones(zones: Any, state: ContactListState, field_name: str) -> None:
        """``contactColumnTimeZones``: {column: ContactColumnTimeZone {timeZone, columnType PHONE|ZIP}}. Genesys
        fills it in itself (automatic time zone mapping), so a posted value is validated and not stored."""
        if type(zones) is not dict:
            raise bad_request("contactColumnTimeZones must be an object", field_name)
        for column, zone in zones.items():
            where = f"{field_name}.{column}"
            if column not in state.colset:
                raise bad_request(f"{column!r} is not a column of the contact list", where)
            if type(zone) is not dict:
                raise bad_request("a ContactColumnTimeZone must be an object", where)
            _check_fields(zone, frozenset(["timeZone", "columnType"]), where + ".")
            if zone.get("columnType") is not None and zone["columnType"] not in ("PHONE", "ZIP"):
                raise bad_request("columnType must be PHONE or ZIP", where + ".columnType")
            if zone.get("timeZone") is not None and not isinstance(zone["timeZone"], str):
                raise bad_request("timeZone must be a string", where + ".timeZone")

    def upsert_contacts(
        self, list_id: str, body: Any, *, priority: bool = False, do_not_queue: bool = False
    ) -> list[dict[str, Any]]:
        """POST contacts: validate the whole batch first (all or nothing), then upsert by id."""
        if not isinstance(body, list):
            raise bad_request("The body must be a JSON array of contacts", "body")
        max_batch = self._limit(self.config.max_contacts_per_request)
        if max_batch is not None and len(body) > max_batch:
            raise ApiError(
                400,
                f"A request may contain at most {max_batch} contacts; got {len(body)}",
                "bad.request",
                [{"errorCode": "too.many.contacts", "fieldName": "body"}],
                limit={"key": "contacts.per.request.max", "namespace": "outbound", "value": max_batch},
            )
        with self.lock:
            state = self._list(list_id)
            prepared = [self._prepare_contact(item, i, list_id, state) for i, item in enumerate(body)]
            contacts = state.contacts
            ids = [cid or new_id() for cid, _, _, _ in prepared]
            max_size = self._limit(self.config.max_contacts_per_list)
            if max_size is not None:
                added = len({cid for cid in ids if cid not in contacts})
                if len(contacts) + added > max_size:
                    raise ApiError(
                        400,
                        f"A contact list may hold at most {max_size} contacts",
                        "contact.list.size.limit.exceeded",
                        [{"errorCode": "contact.list.size.limit.exceeded", "entityId": list_id}],
                        limit={"key": "contacts.per.list.max", "namespace": "outbound", "value": max_size},
                    )
            front, back = state.front, state.back
            promoted: list[str] = []
            out: list[dict[str, Any]] = []
            prefix = f"{API}/contactlists/{list_id}/contacts/"
            for cid, (_, values, ok, data) in zip(ids, prepared, strict=False):
                existed = cid in contacts
                contacts[cid] = (values, ok)
                if not ok:
                    state.dequeue(cid)
                elif not do_not_queue:
                    if existed:
                        state.dequeue(cid)
                    state.queue_entries[cid] += 1
                    if priority:
                        promoted.append(cid)
                    else:
                        back[cid] = None
                out.append(
                    {
                        "id": cid,
                        "contactListId": list_id,
                        "data": data,
                        "callable": ok,
                        "phoneNumberStatus": {},
                        "contactableStatus": {},
                        "selfUri": prefix + cid,
                    }
                )
            if promoted:
                new_front = dict.fromkeys(promoted)  # this batch, in posted order, ahead of older ones
                for cid in front:
                    new_front.setdefault(cid, None)
                state.front = new_front
            return out

    def get_contact(self, list_id: str, cid: str) -> dict[str, Any]:
        with self.lock:
            state = self._list(list_id)
            rec = state.contacts.get(cid)
            if rec is None:
                raise not_found("contact", cid)
            return self._contact_view(list_id, state, cid, rec)

    def bulk_get_contacts(self, list_id: str, body: Any) -> list[dict[str, Any]]:
        if not isinstance(body, list) or not all(isinstance(x, str) for x in body):
            raise bad_request("The body must be a JSON array of contact ids", "body")
        max_ids = self._limit(self.config.max_bulk_ids)
        if max_ids is not None and len(body) > max_ids:
            raise bad_request(f"At most {max_ids} contact ids may be requested at once", "body")
        with self.lock:
            state = self._list(list_id)
            return [
                self._contact_view(list_id, state, cid, state.contacts[cid]) for cid in body if cid in state.contacts
            ]

    def update_contact(self, list_id: str, cid: str, body: Any) -> dict[str, Any]:
        """PUT one contact: replaces data/callable; the queue position is kept (non-callable: dequeued)."""
        with self.lock:
            state = self._list(list_id)
            if cid not in state.contacts:
                raise not_found("contact", cid)
            body_id, values, ok, _ = self._prepare_contact(body, None, list_id, state)
            if body_id is not None and body_id != cid:
                raise bad_request("id does not match the contact id in the path", "id")
            state.contacts[cid] = (values, ok)
            if not ok:
                state.dequeue(cid)
            return self._contact_view(list_id, state, cid, state.contacts[cid])

    def delete_contacts(self, list_id: str, cids: Iterable[str], *, must_exist: bool) -> None:
        """Delete contacts; unknown ids are ignored (bulk). A contact whose call is going on is kept, as the
        SDK documents: "Only contacts that are not in use by any campaign will be deleted"."""
        with self.lock:
            state = self._list(list_id)
            for cid in cids:
                if cid in state.in_call:
                    continue
                if state.contacts.pop(cid, None) is None and must_exist:
                    raise not_found("contact", cid)
                state.dequeue(cid)

    def bulk_delete_contacts(self, list_id: str, cids: list[str]) -> None:
        """``DELETE .../contacts?contactIds=``: at most ``max_delete_ids`` ids (limit unconfirmed)."""
        if not cids:
            raise bad_request("contactIds is required", "contactIds")
        max_ids = self._limit(self.config.max_delete_ids)
        if max_ids is not None and len(cids) > max_ids:
            raise ApiError(
                400,
                f"A request may delete at most {max_ids} contacts; got {len(cids)}",
                "bad.request",
                [{"errorCode": "too.many.contact.ids", "fieldName": "contactIds"}],
                limit={"key": "contacts.delete.ids.max", "namespace": "outbound", "value": max_ids},
            )
        self.delete_contacts(list_id, cids, must_exist=False)

    def search_contacts(self, list_id: str, body: Any) -> dict[str, Any]:
        body = _require_object(body)
        _check_fields(body, SEARCH_FIELDS)
        page_size = _page_value(body.get("pageSize", 25), "pageSize", self._limit(self.config.max_page_size))
        page_number = _page_value(body.get("pageNumber", 1), "pageNumber", None)
        with self.lock:
            state = self._list(list_id)
            matcher = self._search_matcher(list_id, state, body)
            sorts = self._sort_keys(state, body.get("contactSorts"))
            contacts = state.contacts
            if matcher is None and not sorts:
                total = len(contacts)
                start = (page_number - 1) * page_size
                page = list(islice(contacts.items(), start, start + page_size))
            else:
                hits = [(cid, rec) for cid, rec in contacts.items() if matcher is None or matcher(rec[0])]
                for key, reverse in reversed(sorts):
                    hits.sort(key=key, reverse=reverse)
                total = len(hits)
                start = (page_number - 1) * page_size
                page = hits[start : start + page_size]
            entities = [self._contact_view(list_id, state, cid, rec) for cid, rec in page]
        return {
            "entities": entities,
            "pageSize": page_size,
            "pageNumber": page_number,
            "total": total,
            "contactsCount": total,
            "pageCount": math.ceil(total / page_size) if total else 0,
        }

    def _search_matcher(
        self, list_id: str, state: ContactListState, body: dict[str, Any]
    ) -> Callable[[Any], bool] | None:
        filter_id, criteria = body.get("contactListFilterId"), body.get("criteria")
        if filter_id is not None and criteria is not None:
            raise bad_request("Specify either contactListFilterId or criteria, not both", "criteria")
        if filter_id is not None:
            flt = self.filters.get(filter_id) if isinstance(filter_id, str) else None
            if flt is None:
                raise bad_request(f"Contact list filter not found: {filter_id}", "contactListFilterId")
            if flt["contactList"]["id"] != list_id:
                raise bad_request("The filter belongs to another contact list", "contactListFilterId")
            return compile_filter(flt["filterType"], flt["clauses"], state.columns)
        if criteria is not None:
            criteria = _require_object(criteria, "criteria")
            _check_fields(criteria, frozenset(["clauses", "filterType"]), "criteria.")
            ftype = validate_filter_type(criteria.get("filterType", "AND"), "criteria.filterType")
            clauses = validate_clauses(
                criteria.get("clauses"),
                state.columns,
                self._limit(self.config.max_filter_predicates),
                "criteria.clauses",
            )
            return compile_filter(ftype, clauses, state.columns)
        return None

    def _sort_keys(self, state: ContactListState, sorts: Any) -> list[tuple[Callable[[Any], Any], bool]]:
        if sorts is None:
            return []
        if not isinstance(sorts, list):
            raise bad_request("contactSorts must be an array", "contactSorts")
        keys: list[tuple[Callable[[Any], Any], bool]] = []
        for i, s in enumerate(sorts):
            if not isinstance(s, dict) or s.get("fieldName") not in state.colset:
                raise bad_request("contactSorts[].fieldName must be a column", f"contactSorts[{i}].fieldName")
            direction = str(s.get("direction", "ASC")).upper()
            if direction not in ("ASC", "DESC"):
                raise bad_request("direction must be ASC or DESC", f"contactSorts[{i}].direction")
            pos = state.columns.index(s["fieldName"])
            if s.get("numeric"):

                def key(item: Any, pos: int = pos) -> tuple[int, float]:
                    try:
                        return (0, float(item[1][0][pos]))
                    except (TypeError, ValueError):
                        return (1, 0.0)

            else:

                def key(item: Any, pos: int = pos) -> tuple[int, float]:  # type: ignore[misc]
                    return item[1][0][pos] or ""

            keys.append((key, direction == "DESC"))
        return keys

    def queue_history(self, list_id: str) -> dict[str, Any]:
        """Admin: per contact id, how many times it entered the dialing queue and was dialed, and why the
        dialer passed one over."""
        with self.lock:
            state = self._list(list_id)
            return {"entries": dict(state.queue_entries), "dialed": dict(state.dial_counts),
                    "skipped": dict(state.dial_skips)}

    def queue(self, list_id: str) -> list[str]:
        with self.lock:
            return self._list(list_id).queue()

    # ------------------------------------------------------------------------------------------- filters
    def _validate_filter(self, body: Any) -> dict[str, Any]:
        body = _require_object(body)
        _check_fields(body, FILTER_FIELDS)
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise bad_request("name is required", "name")
        source_type = body.get("sourceType", "ContactList")
        if source_type != "ContactList":
            raise bad_request("Only sourceType ContactList is supported", "sourceType")
        list_id = _ref_id(body.get("contactList"), "contactList")
        if list_id not in self.lists:
            raise bad_request(f"Contact list not found: {list_id}", "contactList.id")
        ftype = validate_filter_type(body.get("filterType"), "filterType")
        clauses = validate_clauses(
            body.get("clauses"), self.lists[list_id].columns, self._limit(self.config.max_filter_predicates)
        )
        return {
            "name": name,
            "contactList": self._list_ref(list_id),
            "sourceType": "ContactList",
            "filterType": ftype,
            "clauses": clauses,
        }

    def create_filter(self, body: Any, *, seed: bool = False) -> dict[str, Any]:
        with self.lock:
            entity = self._validate_filter(body)
            fid = body.get("id") if seed and isinstance(body.get("id"), str) else new_id()
            stamp = now_iso()
            entity = {
                "id": fid,
                **entity,
                "dateCreated": stamp,
                "dateModified": stamp,
                "version": 1,
                "selfUri": f"{API}/contactlistfilters/{fid}",
            }
            self.filters[fid] = entity
            return entity

    def _filter(self, fid: str) -> dict[str, Any]:
        entity = self.filters.get(fid)
        if entity is None:
            raise not_found("contact list filter", fid)
        return entity

    def get_filter(self, fid: str) -> dict[str, Any]:
        with self.lock:
            return self._filter(fid)

    def list_filters(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        page_size, page_number = page_params(query, self._limit(self.config.max_page_size))
        name = query.get("name", [""])[0].lower()
        list_id = query.get("contactListId", [None])[0]
        with self.lock:
            items = [
                f
                for f in self.filters.values()
                if name in f["name"].lower() and (list_id is None or f["contactList"]["id"] == list_id)
            ]
        return listing(items, page_size, page_number, f"{API}/contactlistfilters")

    def update_filter(self, fid: str, body: Any) -> dict[str, Any]:
        with self.lock:
            current = self._filter(fid)
            entity = self._validate_filter(body)
            if body.get("version") != current["version"]:
                raise version_conflict(fid)
            updated = {**current, **entity, "version": current["version"] + 1, "dateModified": now_iso()}
            self.filters[fid] = updated
            return updated

    def delete_filter(self, fid: str) -> None:
        with self.lock:
            self._filter(fid)
            for camp in self.campaigns.values():
                if any(ref["id"] == fid for ref in camp.entity.get("contactListFilters", [])):
                    raise ApiError(400, f"The filter is in use by campaign {camp.entity['id']}", "filter.in.use")
            del self.filters[fid]

    # ----------------------------------------------------------------------------------------- campaigns
    def _campaign(self, cid: str) -> CampaignState:
        state = self.campaigns.get(cid)
        if state is None:
            raise not_found("campaign", cid)
        return state

    def _validate_campaign(self, body: Any, *, seed: bool, current: dict[str, Any] | None = None) -> dict[str, Any]:
        """Validate a full Campaign body (POST, PUT, seed); seeding fills defaults instead of failing."""
        body = _require_object(body)
        _check_fields(body, CAMPAIGN_FIELDS)
        out = {k: v for k, v in body.items() if k not in READ_ONLY and k != "version"}
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise bad_request("name is required", "name")
        list_id = _ref_id(body.get("contactList"), "contactList")
        if list_id not in self.lists:
            raise bad_request(f"Contact list not found: {list_id}", "contactList.id")
        out["contactList"] = self._list_ref(list_id)
        mode = body.get("dialingMode", "predictive" if seed else None)
        if mode not in DIALING_MODES:
            raise bad_request(f"dialingMode must be one of {', '.join(DIALING_MODES)}", "dialingMode")
        out["dialingMode"] = mode
        status = body.get("campaignStatus", current["campaignStatus"] if current else "off")
        if status not in CAMPAIGN_STATUSES:
            raise bad_request(f"campaignStatus must be one of {', '.join(CAMPAIGN_STATUSES)}", "campaignStatus")
        if not seed and status != (current["campaignStatus"] if current else "off") and status not in ("on", "off"):
            raise bad_request("campaignStatus may only be set to on or off", "campaignStatus")
        out["campaignStatus"] = status
        queue = body.get("queue")
        if queue is None and seed:
            queue = {"id": new_id()}
        if queue is not None:
            qid = _ref_id(queue, "queue")
            out["queue"] = {
                "id": qid,
                "name": queue.get("name", "Outbound"),
                "selfUri": f"/api/v2/routing/queues/{qid}",
            }
        elif mode != "agentless":
            raise bad_request(f"queue is required for dialingMode {mode}", "queue")
        abandon = body.get("abandonRate", 5.0 if seed else None)
        if abandon is None and mode in ("power", "predictive"):
            raise bad_request(f"abandonRate is required for dialingMode {mode}", "abandonRate")
        if abandon is not None:
            out["abandonRate"] = self._check_abandon_rate(abandon)
        out["outboundLineCount"] = self._check_line_count(body.get("outboundLineCount", 10))
        mcpa = body.get("maxCallsPerAgentDecimal", body.get("maxCallsPerAgent", 1))
        field_name = "maxCallsPerAgentDecimal" if "maxCallsPerAgentDecimal" in body else "maxCallsPerAgent"
        out.update(self._calls_per_agent(mcpa, field_name))
        phone_columns = body.get("phoneColumns")
        columns = self.lists[list_id].columns
        if phone_columns is None and seed:
            phone_columns = [
                {"columnName": p["columnName"], "type": p["type"]} for p in self.lists[list_id].entity["phoneColumns"]
            ]
        if not isinstance(phone_columns, list) or not phone_columns:
            raise bad_request("phoneColumns must be a non-empty array", "phoneColumns")
        for i, pc in enumerate(phone_columns):
            if not isinstance(pc, dict) or pc.get("columnName") not in columns:
                raise bad_request(
                    "phoneColumns[].columnName must be a column of the contact list",
                    f"phoneColumns[{i}].columnName",
                )
        out["phoneColumns"] = [dict(pc) for pc in phone_columns]
        out["dncLists"] = self._refs(body.get("dncLists", []), "dncLists", self.dnc_lists, "/dnclists/")
        filters = self._refs(
            body.get("contactListFilters", []), "contactListFilters", self.filters, "/contactlistfilters/"
        )
        if len(filters) > 1:
            raise bad_request("A campaign may use at most one contact list filter", "contactListFilters")
        for ref in filters:
            if self.filters[ref["id"]]["contactList"]["id"] != list_id:
                raise bad_request("The filter belongs to another contact list", "contactListFilters[0].id")
        out["contactListFilters"] = filters
        for flag in ("alwaysRunning", "skipPreviewDisabled", "previewAutoEnd", "callbackAutoAnswer"):
            if flag in body and not isinstance(body[flag], bool):
                raise bad_request(f"{flag} must be a boolean", flag)
        for num in ("noAnswerTimeout", "priority", "previewTimeOutSeconds"):
            if num in body and not _is_int(body[num]):
                raise bad_request(f"{num} must be an integer", num)
        return out

    def _refs(self, refs: Any, field_name: str, table: Mapping[str, Any], path: str) -> list[dict[str, Any]]:
        if not isinstance(refs, list):
            raise bad_request(f"{field_name} must be an array", field_name)
        out = []
        for i, ref in enumerate(refs):
            rid = _ref_id(ref, f"{field_name}[{i}]")
            if rid not in table:
                raise bad_request(f"{field_name}[{i}] not found: {rid}", f"{field_name}[{i}].id")
            out.append({"id": rid, "name": table[rid]["name"], "selfUri": f"{API}{path}{rid}"})
        return out

    def _check_abandon_rate(self, value: Any) -> float:
        if not _is_number(value) or not 0 <= value <= 100:
            raise bad_request("abandonRate must be a number between 0 and 100", "abandonRate")
        return float(value)

    def _check_line_count(self, value: Any) -> int:
        if not _is_int(value) or value < 1:
            raise bad_request("outboundLineCount must be an integer of at least 1", "outboundLineCount")
        return value

    def _calls_per_agent(self, value: Any, field_name: str) -> dict[str, Any]:
        """Both representations: ``maxCallsPerAgentDecimal`` exact, ``maxCallsPerAgent`` floored (min 1)."""
        cap = self._limit(self.config.max_calls_per_agent_cap)
        if not _is_number(value) or value <= 0 or (cap is not None and value > cap):
            raise bad_request(
                f"{field_name} must be greater than 0 and at most {cap} (organization limit)",
                field_name,
                code="invalid.property",
            )
        return {"maxCallsPerAgent": max(1, math.floor(value)), "maxCallsPerAgentDecimal": float(value)}

    def create_campaign(self, body: Any, *, seed: bool = False) -> dict[str, Any]:
        with self.lock:
            entity = self._validate_campaign(body, seed=seed)
            cid = body.get("id") if seed and isinstance(body.get("id"), str) else new_id()
            stamp = now_iso()
            entity = {
                "id": cid,
                "dateCreated": stamp,
                "dateModified": stamp,
                "version": 1,
                "dncLists": [],
                "callerName": "",
                "callerAddress": "",
                "ruleSets": [],
                "skipPreviewDisabled": False,
                "previewTimeOutSeconds": 0,
                "alwaysRunning": False,
                "noAnswerTimeout": 30,
                "callAnalysisLanguage": "en-US",
                "priority": 5,
                "division": HOME_DIVISION,
                "skillColumns": [],
                "previewAutoEnd": False,
                "callbackAutoAnswer": False,
                "dynamicLineBalancingSettings": {"enabled": False, "relativeWeight": 50},
                "preciseDialingEnabled": False,
                **entity,
                "selfUri": f"{API}/campaigns/{cid}",
            }
            self.campaigns[cid] = CampaignState(entity)
            return entity

    def get_campaign(self, cid: str) -> dict[str, Any]:
        with self.lock:
            return self._campaign(cid).entity

    def list_campaigns(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        page_size, page_number = page_params(query, self._limit(self.config.max_page_size))
        name = query.get("name", [""])[0].lower()
        list_ids = set(query.get("contactListId", []))
        with self.lock:
            items = [
                c.entity
                for c in self.campaigns.values()
                if name in c.entity["name"].lower() and (not list_ids or c.entity["contactList"]["id"] in list_ids)
            ]
        return listing(items, page_size, page_number, f"{API}/campaigns")

    def update_campaign(self, cid: str, body: Any) -> dict[str, Any]:
        with self.lock:
            state = self._campaign(cid)
            entity = self._validate_campaign(body, seed=False, current=state.entity)
            if body.get("version") != state.entity["version"]:
                raise version_conflict(cid)
            state.entity = {
                **state.entity,
                **entity,
                "version": state.entity["version"] + 1,
                "dateModified": now_iso(),
            }
            return state.entity

    def patch_campaign(self, cid: str, body: Any) -> None:
        """PATCH (CampaignPatchRequest): pacing fields only, no version check, bumps the version."""
        body = _require_object(body)
        _check_fields(body, CAMPAIGN_PATCH_FIELDS)
        changes: dict[str, Any] = {}
        if "outboundLineCount" in body:
            changes["outboundLineCount"] = self._check_line_count(body["outboundLineCount"])
        if "abandonRate" in body:
            changes["abandonRate"] = self._check_abandon_rate(body["abandonRate"])
        if "maxCallsPerAgent" in body:
            changes.update(self._calls_per_agent(body["maxCallsPerAgent"], "maxCallsPerAgent"))
            if not self.config.patch_keeps_decimal:
                changes["maxCallsPerAgentDecimal"] = float(changes["maxCallsPerAgent"])
        if "queue" in body:
            qid = _ref_id(body["queue"], "queue")
            changes["queue"] = {"id": qid, "name": "Outbound", "selfUri": f"/api/v2/routing/queues/{qid}"}
        if "dynamicLineBalancingSettings" in body:
            dlb = _require_object(body["dynamicLineBalancingSettings"], "dynamicLineBalancingSettings")
            _check_fields(dlb, frozenset(["enabled", "relativeWeight"]), "dynamicLineBalancingSettings.")
            if "enabled" in dlb and not isinstance(dlb["enabled"], bool):
                raise bad_request("enabled must be a boolean", "dynamicLineBalancingSettings.enabled")
            if "relativeWeight" in dlb and (
                not _is_int(dlb["relativeWeight"]) or not 1 <= dlb["relativeWeight"] <= 100
            ):
                raise bad_request(
                    "relativeWeight must be an integer 1..100", "dynamicLineBalancingSettings.relativeWeight"
                )
            changes["dynamicLineBalancingSettings"] = dlb
        with self.lock:
            state = self._campaign(cid)
            if "dynamicLineBalancingSettings" in changes:
                changes["dynamicLineBalancingSettings"] = {
                    **state.entity.get("dynamicLineBalancingSettings", {}),
                    **changes["dynamicLineBalancingSettings"],
                }
            if "queue" in changes and state.entity.get("queue", {}).get("id") == changes["queue"]["id"]:
                changes["queue"] = state.entity["queue"]
            state.entity = {
                **state.entity,
                **changes,
                "version": state.entity["version"] + 1,
                "dateModified": now_iso(),
            }

    def set_campaign_status(self, cid: str, status: str) -> None:
        with self.lock:
            state = self._campaign(cid)
            state.entity = {
                **state.entity,
                "campaignStatus": status,
                "version": state.entity["version"] + 1,
                "dateModified": now_iso(),
            }

    def delete_campaign(self, cid: str) -> dict[str, Any]:
        with self.lock:
            state = self.campaigns.pop(cid, None)
            if state is None:
                raise not_found("campaign", cid)
            return state.entity

    def campaign_stats(self, cid: str) -> dict[str, Any]:
        with self.lock:
            state = self._campaign(cid)
            entity = state.entity
            dialer = state.dialer
            attempts = state.attempts + (dialer.dials if dialer else 0)
            connects = dialer.live if dialer else 0
            stats: dict[str, Any] = {
                "contactRate": {
                    "attempts": attempts,
                    "connects": connects,
                    "connectRatio": connects / attempts if attempts else 0.0,
                },
                "idleAgents": dialer.idle if dialer else 0,
                "effectiveIdleAgents": round(dialer.effective_idle(), 3) if dialer else 0.0,
                "adjustedCallsPerAgent": entity.get("maxCallsPerAgentDecimal", 1.0)
                if entity["dialingMode"] == "predictive"
                else 1.0,
                "outstandingCalls": dialer.lines if dialer else 0,
                "scheduledCalls": 0,
                "timeZoneRescheduledCalls": 0,
                "filteredOutContactsCount": 0,
                "rightPartyContactsCount": 0,
                "validAttempts": attempts,
            }
            overrides = state.stats_overrides
            if "contactRate" in overrides:
                stats["contactRate"] = {**stats["contactRate"], **overrides["contactRate"]}
            stats.update({k: v for k, v in overrides.items() if k != "contactRate"})
            return stats

    def set_campaign_stats(self, cid: str, overrides: Any) -> dict[str, Any]:
        overrides = _require_object(overrides)
        with self.lock:
            state = self._campaign(cid)
            state.stats_overrides = {**state.stats_overrides, **overrides}
        return self.campaign_stats(cid)

    def campaign_progress(self, cid: str) -> dict[str, Any]:
        with self.lock:
            state = self._campaign(cid)
            entity = state.entity
            list_id = entity["contactList"]["id"]
            total = len(self.lists[list_id].contacts) if list_id in self.lists else 0
            called = min(state.attempts, total)
            return {
                "campaign": {"id": cid, "name": entity["name"], "selfUri": entity["selfUri"]},
                "contactList": entity["contactList"],
                "numberOfContactsCalled": called,
                "numberOfContactsMessaged": 0,
                "totalNumberOfContacts": total,
                "percentage": int(called * 100 / total) if total else 0,
                "numberOfContactsSkipped": {},
            }

    def _take_dialable(self, lst: ContactListState, campaign: dict[str, Any]) -> tuple[str | None, dict[str, str]]:
        """The one path that takes contacts off a list's dialing queue to dial them (the admin ``dial`` call and
        the dialer both use it): the next contact with a number the campaign may dial, counted in
        ``dial_counts``, or None when the queue holds none. A contact none of whose numbers (the campaign's phone
        columns) may be dialed, because each is on a DNC list attached to the campaign (and not expired), is
        taken off the queue without a call and returned among the skipped, with the dialer's wrap-up code."""
        blocked = self._dnc_digits(campaign)
        positions = [lst.columns.index(pc["columnName"]) for pc in campaign.get("phoneColumns", [])
                     if pc.get("columnName") in lst.colset]
        skipped: dict[str, str] = {}
        for queue in (lst.front, lst.back):
            while queue:
                contact_id = next(iter(queue))
                lst.dequeue(contact_id)
                values = lst.contacts[contact_id][0]
                numbers = [_digits(values[i]) for i in positions if values[i]]
                if not [n for n in numbers if n and n not in blocked]:
                    reason = ON_DNC_LIST if any(n in blocked for n in numbers) else NO_NUMBER
                    lst.dial_skips[contact_id] = skipped[contact_id] = reason
                    continue
                lst.dial_counts[contact_id] += 1
                return contact_id, skipped
        return None, skipped

    def dial(self, cid: str, count: int, *, hold_calls: bool = False) -> dict[str, Any]:
        """Admin: take ``count`` dialable contacts off the head of the campaign's queue, as if dialled (DNC
        numbers passed over: :meth:`_take_dialable`). ``hold_calls`` keeps the dialed contacts "in a call" (in use
        by the campaign) until :meth:`hang_up`.
        """
        with self.lock:
            state = self._campaign(cid)
            lst = self._list(state.entity["contactList"]["id"])
            dialed: list[str] = []
            skipped: dict[str, str] = {}
            while len(dialed) < max(0, count):
                contact_id, passed_over = self._take_dialable(lst, state.entity)
                skipped.update(passed_over)
                if contact_id is None:
                    break
                dialed.append(contact_id)
                if hold_calls:
                    lst.in_call.add(contact_id)
            state.attempts += len(dialed)
            return {"dialed": dialed, "skipped": skipped}

    def hang_up(self, cid: str) -> int:
        """Admin: end every call the campaign holds (see :meth:`dial`); return how many."""
        with self.lock:
            lst = self._list(self._campaign(cid).entity["contactList"]["id"])
            ended = len(lst.in_call)
            lst.in_call.clear()
            return ended

    def _dnc_digits(self, campaign: dict[str, Any]) -> set[str]:
        """Digits of the unexpired numbers on the DNC lists attached to ``campaign``."""
        now = now_iso()
        blocked = set()
        for ref in campaign.get("dncLists", []):
            for number, expires in self.dnc_numbers.get(ref["id"], {}).items():
                if expires is None or _expiry_iso(expires) > now:
                    blocked.add(_digits(number))
        return blocked

    # ----------------------------------------------------------------------------- the dialer and its clock
    def configure_dialer(self, cid: str, body: Any) -> dict[str, Any]:
        """Admin: give a campaign a dialer (or change its population); ``seed`` only when it is created."""
        body = _require_object(body)
        with self.lock:
            state = self._campaign(cid)
            values = {k: v for k, v in body.items() if k != "seed"}
            seed = body.get("seed", 1)
            if not _is_int(seed):
                raise bad_request("seed must be an integer", "seed")
            current = state.dialer.population if state.dialer else Population()
            try:
                population = current.updated(values)
            except KeyError as err:
                raise bad_request(f"Unknown dialer field {err.args[0]!r}", str(err.args[0])) from None
            except (TypeError, ValueError) as err:
                raise bad_request(str(err), "body") from None
            if state.dialer is None:
                state.dialer = CampaignDialer(population, now=self.clock, seed=seed)
            else:
                state.dialer.configure(population)
            return self.dialer_state(cid)

    def dialer_state(self, cid: str) -> dict[str, Any]:
        """Admin: the dialer's population and running totals (talk share = talkSeconds / agentSeconds)."""
        with self.lock:
            dialer = self._campaign(cid).dialer
            if dialer is None:
                raise not_found("dialer of campaign", cid)
            return {
                "now": iso(datetime.fromtimestamp(dialer.now, UTC)),
                "population": dialer.population.as_json(),
                "dials": dialer.dials,
                "liveAnswers": dialer.live,
                "abandons": dialer.abandons,
                "talkSeconds": round(dialer.talk_seconds, 3),
                "agentSeconds": round(dialer.agent_seconds, 3),
                "idleAgents": dialer.idle,
                "busyAgents": dialer.busy,
                "linesInFlight": dialer.lines,
                "predictiveThreshold": dialer.threshold,
            }

    def clock_view(self) -> dict[str, Any]:
        return {"now": iso(datetime.fromtimestamp(self.clock, UTC))}

    def set_clock(self, body: Any) -> dict[str, Any]:
        """Admin: move the clock to ``now`` (forward only once a dialer has dialed), without dialing in between."""
        body = _require_object(body)
        if not isinstance(body.get("now"), str):
            raise bad_request("now is required (ISO-8601)", "now")
        target = parse_instant(body["now"], "now").timestamp()
        with self.lock:
            dialers = [c.dialer for c in self.campaigns.values() if c.dialer is not None]
            if target < self.clock and any(d.dials for d in dialers):
                raise bad_request("the clock only moves forward once a campaign has been dialed", "now")
            self.clock = target
            for dialer in dialers:
                # Nothing dials across a jump (as if the campaign slept); an undialed dialer just moves.
                dialer.now = target if not dialer.dials else max(dialer.now, target)
            return self.clock_view()

    def advance_clock(self, body: Any) -> dict[str, Any]:
        """Admin: advance simulated time, dialing every running campaign that has a dialer as time passes."""
        body = _require_object(body)
        seconds = body.get("seconds")
        if not _is_number(seconds) or seconds < 0:
            raise bad_request("seconds must be a number >= 0", "seconds")
        with self.lock:
            until = self.clock + float(seconds)
            for state in self.campaigns.values():
                if state.dialer is not None:
                    self._run_dialer(state, until)
            self.clock = until
            return self.clock_view()

    def _run_dialer(self, state: CampaignState, until: float) -> None:
        entity = state.entity
        lst = self.lists.get(entity["contactList"]["id"])
        column = (entity.get("phoneColumns") or [{}])[0].get("columnName", "phone")

        def take() -> str | None:
            return self._take_dialable(lst, entity)[0] if lst is not None else None

        def record(contact_id: str, dialed_at: float, result: str) -> None:
            if lst is not None:
                lst.call_records[contact_id] = {
                    column: {"lastAttempt": iso(datetime.fromtimestamp(dialed_at, UTC)), "lastResult": result}
                }

        assert state.dialer is not None
        state.dialer.advance(until, Pacing.from_campaign(entity), take, record)

    def conversation_aggregates(self, body: Any) -> dict[str, Any]:
        """``POST /api/v2/analytics/conversations/aggregates/query`` over the dialers' records."""
        query = AggregateQuery(body, self.config.analytics_max_interval_days if self.config.enforce_limits else 0)
        start, end = query.start.timestamp(), query.end.timestamp()
        with self.lock:
            campaigns = {
                cid: state.dialer.outcomes(start, end)
                for cid, state in self.campaigns.items()
                if state.dialer is not None
            }
            return query.answer(campaigns)

    # ----------------------------------------------------------------------------------------------- DNC
    def _dnc(self, did: str) -> dict[str, Any]:
        entity = self.dnc_lists.get(did)
        if entity is None:
            raise not_found("dnc list", did)
        return entity

    def _dnc_view(self, entity: dict[str, Any]) -> dict[str, Any]:
        return {**entity, "size": len(self.dnc_numbers[entity["id"]])}

    def create_dnc_list(self, body: Any, *, seed: bool = False) -> dict[str, Any]:
        body = _require_object(body)
        allowed = DNC_FIELDS | {"phoneNumbers"} if seed else DNC_FIELDS
        _check_fields(body, allowed)
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise bad_request("name is required", "name")
        source = body.get("dncSourceType", "rds")
        if source not in DNC_SOURCE_TYPES:
            raise bad_request(f"dncSourceType must be one of {', '.join(DNC_SOURCE_TYPES)}", "dncSourceType")
        method = body.get("contactMethod", "Phone")
        if method not in CONTACT_METHODS:
            raise bad_request(f"contactMethod must be one of {', '.join(CONTACT_METHODS)}", "contactMethod")
        did = body.get("id") if seed and isinstance(body.get("id"), str) else new_id()
        stamp = now_iso()
        entity = {
            "id": did,
            "dateCreated": stamp,
            "dateModified": stamp,
            "version": 1,
            "dncCodes": [],
            "division": HOME_DIVISION,
            **{k: v for k, v in body.items() if k not in READ_ONLY and k not in ("version", "phoneNumbers")},
            "name": name,
            "dncSourceType": source,
            "contactMethod": method,
            "selfUri": f"{API}/dnclists/{did}",
        }
        with self.lock:
            self.dnc_lists[did] = entity
            self.dnc_numbers[did] = {}
            if seed and body.get("phoneNumbers"):
                self._dnc_add(did, body["phoneNumbers"], None, "phoneNumbers")
            return self._dnc_view(entity)

    def get_dnc_list(self, did: str) -> dict[str, Any]:
        with self.lock:
            return self._dnc_view(self._dnc(did))

    def list_dnc_lists(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        page_size, page_number = page_params(query, self._limit(self.config.max_page_size))
        name = query.get("name", [""])[0].lower()
        with self.lock:
            items = [self._dnc_view(e) for e in self.dnc_lists.values() if name in e["name"].lower()]
        return listing(items, page_size, page_number, f"{API}/dnclists")

    def delete_dnc_list(self, did: str) -> None:
        with self.lock:
            self._dnc(did)
            del self.dnc_lists[did]
            del self.dnc_numbers[did]

    def _dnc_numbers(self, numbers: Any, field_name: str) -> list[str]:
        if not isinstance(numbers, list) or not numbers:
            raise bad_request(f"{field_name} must be a non-empty array of phone numbers", field_name)
        for i, num in enumerate(numbers):
            if not isinstance(num, str) or not num.strip():
                raise bad_request("Phone numbers must be non-empty strings", f"{field_name}[{i}]")
        max_numbers = self._limit(self.config.max_dnc_numbers_per_request)
        if max_numbers is not None and len(numbers) > max_numbers:
            raise ApiError(
                400,
                f"A request may carry at most {max_numbers} phone numbers; got {len(numbers)}",
                "bad.request",
                [{"errorCode": "too.many.phone.numbers", "fieldName": field_name}],
                limit={"key": "dnc.phonenumbers.per.request.max", "namespace": "outbound", "value": max_numbers},
            )
        return numbers

    def _dnc_add(self, did: str, numbers: Any, expires: str | None, field_name: str) -> None:
        numbers = self._dnc_numbers(numbers, field_name)
        entity = self._dnc(did)
        if entity["dncSourceType"] not in ("rds", "rds_custom"):
            raise bad_request("Phone numbers can only be added to internal DNC lists", "dncSourceType")
        if entity["contactMethod"] not in ("Phone", "Any"):
            raise bad_request("Phone numbers can only be added to a DNC list of contact method Phone", "contactMethod")
        table = self.dnc_numbers[did]
        for num in numbers:
            table[num] = expires

    def add_dnc_numbers(self, did: str, body: Any) -> None:
        with self.lock:
            self._dnc(did)
            self._dnc_add(did, body, None, "body")

    def patch_dnc_numbers(self, did: str, body: Any) -> None:
        body = _require_object(body)
        _check_fields(body, DNC_PATCH_FIELDS)
        action = body.get("action")
        if not isinstance(action, str) or action.lower() not in ("add", "remove"):
            raise bad_request("action must be Add or Remove", "action")
        expires = body.get("expirationDateTime")
        if expires is not None and (not isinstance(expires, str) or not _DNC_EXPIRY.match(expires)):
            raise bad_request("expirationDateTime must be yyyy-MM-ddTHH:mmZ", "expirationDateTime")
        with self.lock:
            self._dnc(did)
            if action.lower() == "add":
                self._dnc_add(did, body.get("phoneNumbers"), expires, "phoneNumbers")
                return
            numbers = self._dnc_numbers(body.get("phoneNumbers"), "phoneNumbers")
            table = self.dnc_numbers[did]
            for num in numbers:
                table.pop(num, None)

    def dnc_numbers_of(self, did: str) -> dict[str, str | None]:
        with self.lock:
            self._dnc(did)
            return dict(self.dnc_numbers[did])

    # ---------------------------------------------------------------------------------------------- seed
    def seed(self, body: Any) -> dict[str, int]:
        """Load entities keeping their ids; missing fields get realistic defaults. Merges into the state."""
        body = _require_object(body)
        _check_fields(body, frozenset(["contactLists", "contactListFilters", "campaigns", "dncLists"]))
        counts = {"contactLists": 0, "contacts": 0, "contactListFilters": 0, "campaigns": 0, "dncLists": 0}
        with self.lock:
            for item in body.get("dncLists", []):
                self.create_dnc_list(item, seed=True)
                counts["dncLists"] += 1
            for item in body.get("contactLists", []):
                item = _require_object(item, "contactLists[]")
                contacts = item.get("contacts", [])
                entity = self.create_contact_list({k: v for k, v in item.items() if k != "contacts"}, seed=True)
                for start in range(0, len(contacts), 1000):
                    self.upsert_contacts(entity["id"], contacts[start : start + 1000])
                counts["contactLists"] += 1
                counts["contacts"] += len(contacts)
            for item in body.get("contactListFilters", []):
                self.create_filter(item, seed=True)
                counts["contactListFilters"] += 1
            for item in body.get("campaigns", []):
                item = _require_object(item, "campaigns[]")
                stats, dialer = item.get("stats"), item.get("dialer")
                entity = self.create_campaign(
                    {k: v for k, v in item.items() if k not in ("stats", "dialer")}, seed=True
                )
                if stats:
                    self.set_campaign_stats(entity["id"], stats)
                if dialer is not None:
                    self.configure_dialer(entity["id"], dialer)
                counts["campaigns"] += 1
        return counts
