"""Compliance that fails closed, end to end: real PostgreSQL, real DAG runs (dag.test), the emulator over HTTP.

Data in odd spellings and shapes: suppression flags in any case and padding, one number written several ways
and shared by an eligible and a suppressed contact, a number in the internal DNC table, unknown status values;
opt-outs after delivery withdrawn by the next run (contact gone from the list, number on the DNC list, the
ledger saying when, why and with which request); a failing withdrawal; skips retried and re-queued.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import yaml
from pipeline_helpers import task_states
from support import ALL_CAMPAIGNS, DIALER_URL, Emulator, write_as_of_earlier, write_config

from genesys_dialer import cli
from genesys_dialer.config import CampaignConfig

pytestmark = pytest.mark.usefixtures("airflow_db")

CAMPAIGN_ID = "3e9a7c5d-1f2b-4c6d-8e0f-5a4b3c2d1e0f"
LIST_ID = "4f0b8d6e-2a3c-4d7e-9f1a-6b5c4d3e2f1a"
DNC_LIST_ID = "5a1c9e7f-3b4d-4e8f-a02b-7c6d5e4f3a2b"
DELETE_ROUTE = "DELETE /api/v2/outbound/contactlists/{contactListId}/contacts"
DNC_ROUTE = "PATCH /api/v2/outbound/dnclists/{dncListId}/phonenumbers"
BASE = {
    "key": "comply", "campaign_id": CAMPAIGN_ID, "schedule": None, "batch_size": 100, "segment_size": 40,
    "contacts_per_request": 25, "retries": 0, "agents": 20, "dnc_list_id": DNC_LIST_ID,
    "list_timezone_column": "timezone",
}


def config(**overrides: Any) -> dict[str, Any]:
    entry = {**BASE, **overrides}
    CampaignConfig.model_validate(entry)  # a bad test config fails here, naming the field
    return entry


def genesys_seed(*, campaign_id: str = CAMPAIGN_ID, list_id: str = LIST_ID, **list_settings: Any) -> dict[str, Any]:
    """A campaign with a callable time set and the DNC list attached; its list reads each contact's time zone
    from the 'timezone' column (or, with list_settings, maps it from a postal code)."""
    phone = {"columnName": "phone", "type": "cell"}
    if not list_settings:
        phone["callableTimeColumn"] = "timezone"
    return {
        "dncLists": [{"id": DNC_LIST_ID, "name": "Opted out"}],
        "contactLists": [{"id": list_id, "name": f"Compliance {list_id[:4]}", "phoneColumns": [phone],
                          "columnNames": ["phone", "segment", "timezone", "zip"], **list_settings}],
        "campaigns": [{"id": campaign_id, "name": f"Compliance {campaign_id[:4]}", "contactList": {"id": list_id},
                       "dialingMode": "predictive", "campaignStatus": "on", "abandonRate": 3.0, "alwaysRunning": True,
                       "noAnswerTimeout": 30, "dncLists": [{"id": DNC_LIST_ID}], "callableTimeSet": {"id": "cts-us"}}],
    }


@pytest.fixture
def genesys(emulator: Emulator) -> Emulator:
    emulator.seed(genesys_seed())
    return emulator


@pytest.fixture(autouse=True)
def _session_config() -> Any:
    """The DAG folder's config is the session's: each run adds its campaign to it; restored afterwards."""
    yield
    write_config(*ALL_CAMPAIGNS)


def run(entry: dict[str, Any], **conf: Any) -> Any:
    """One DAG run of the campaign ``entry`` through dag.test() (which parses the DAG folder: the campaign
    joins the session's config file first)."""
    from genesys_dialer.config import load_config
    from genesys_dialer.dags.builder import build_campaign_dag

    path = write_config(*ALL_CAMPAIGNS, entry)  # the session's config holds a broken entry too, on purpose
    campaign = next(c for c in load_config(path).campaigns if c.key == entry["key"])
    return build_campaign_dag(campaign).test(run_conf=conf)


def add(db: Any, *rows: tuple[Any, ...], columns: tuple[str, ...] = ()) -> list[int]:
    """Insert contacts ``(phone, status, suppression_status, *columns)``, created yesterday; their ids in order."""
    names = ("phone_number", "status", "suppression_status", *columns)
    sql = (f"INSERT INTO contacts ({', '.join(names)}, created_at) VALUES ({', '.join(['%s'] * len(names))}, "
           "now() - interval '1 day') RETURNING id")
    ids = [db.execute(sql, row).fetchone()[0] for row in rows]
    db.commit()
    return ids


def listed(emulator: Emulator, list_id: str = LIST_ID) -> dict[int, dict[str, str]]:
    """The contact list through the real search API: contact id -> data."""
    return {int(c["id"]): c["data"] for c in emulator.contacts(list_id)}


def ledger(db: Any, campaign_id: str = CAMPAIGN_ID) -> dict[int, dict[str, Any]]:
    cur = db.execute("SELECT * FROM dispatch_ledger WHERE campaign_id = %s", [campaign_id])
    names = [d.name for d in cur.description]
    rows = {row[names.index("contact_id")]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}
    db.commit()
    return rows


def report(db: Any, dag_run: Any) -> dict[str, Any]:
    (row,) = db.execute("SELECT report FROM run_log WHERE run_id = %s AND campaign_id = %s",
                        [dag_run.run_id, CAMPAIGN_ID]).fetchall()
    db.commit()
    return row[0]


def routes(emulator: Emulator, route: str) -> list[dict[str, Any]]:
    return [r for r in emulator.requests_log() if r["route"] == route]


# ------------------------------------------------------------------------------------- who may be sent


def test_suppression_cannot_be_spelled_around(db: Any, genesys: Emulator) -> None:
    db.execute("INSERT INTO dnc_numbers (phone_e164, source) VALUES ('+13175550103', 'internal')")
    ids = add(
        db,
        ("(317) 555-0100", "active", "none"),              # 0: its number is a do-not-call contact's (#1)
        ("+1 317-555-0100", "active", " DO_NOT_CALL "),    # 1: suppressed, padded and upper case
        ("317.555.0101", " Active ", "Do_Not_Call"),       # 2: suppressed, mixed case
        ("+13175550102", "active", "none"),                # 3: sent
        ("1-317-555-0102", "active", "none"),              # 4: the same number as #3: one person, sent once
        ("(317) 555-0103", "active", "none"),              # 5: number in the internal DNC table
        ("+1 317 555 0104", "ACTIVE", "NONE"),             # 6: sent (status in upper case)
        ("+13175550105", "pending", "none"),               # 7: a status the config does not know
        ("+13175550106", "Inactive ", "none"),             # 8: inactive: not in the campaign's audience
        ("0044 20 7946 0018", "active", "none"),           # 9: 0044 is no international prefix in the US
        ("+44 20 7946 0018", "active", "none"),            # 10: sent (a UK number needs no time zone check)
        (None, "active", "none"),                          # 11: no number
        ("+1 800 225 5288", "active", "none"),             # 12: toll-free: no time zone of its own
        ("+1 317 555 0107", "inactive", "do_not_call"),    # 13: suppressed AND inactive: still suppresses #14
        ("(317) 555-0107", "active", "none"),              # 14
    )
    dag_run = run(config())
    assert str(dag_run.state) == "success", task_states(dag_run)

    expected = {
        ids[0]: "suppressed_number", ids[1]: "suppressed", ids[2]: "suppressed", ids[3]: None,
        ids[4]: "duplicate_number", ids[5]: "dnc_number", ids[6]: None, ids[7]: "unknown_status",
        ids[9]: "invalid_phone", ids[10]: None, ids[11]: "missing_phone", ids[12]: "unknown_timezone",
        ids[14]: "suppressed_number",
    }
    rows = ledger(db)
    assert {cid: row["skip_reason"] for cid, row in rows.items()} == expected
    assert {cid: row["status"] for cid, row in rows.items() if row["status"] != "skipped"} == {
        ids[3]: "dispatched", ids[6]: "dispatched", ids[10]: "dispatched"}
    assert all(rows[cid]["segment_index"] == -1 for cid, reason in expected.items() if reason)
    assert ids[8] not in rows and ids[13] not in rows  # inactive contacts are not claimed at all

    # Genesys holds exactly the three, each once, in E.164, with the time zone its callable time set reads.
    assert {cid: (data["phone"], data["timezone"]) for cid, data in listed(genesys).items()} == {
        ids[3]: ("+13175550102", "America/New_York"),
        ids[6]: ("+13175550104", "America/New_York"),
        ids[10]: ("+442079460018", "Europe/London"),
    }
    dialed = genesys.admin("POST", f"campaigns/{CAMPAIGN_ID}/dial", {"count": 50})
    assert sorted(int(i) for i in dialed["dialed"]) == sorted([ids[3], ids[6], ids[10]])

    # The run report counts every reason and names the unknown status value with its count.
    body = report(db, dag_run)
    assert body["ledger"]["skip_reasons"] == dict(Counter(r for r in expected.values() if r))
    assert body["compliance"]["unknown_statuses"] == {"pending": 1}
    assert any("'pending': 1" in w and "unknown_status" in w for w in body["warnings"])
    assert not any("callable time set" in w for w in body["warnings"])  # this campaign has one


def test_the_campaigns_own_rules_for_status_and_suppression(db: Any, genesys: Emulator) -> None:
    ids = add(
        db,
        ("+13175550110", "Open", "none"),
        ("+13175550111", " RINGING", "none"),
        ("+13175550112", "active", "none"),        # not callable in this campaign's vocabulary: unknown
        ("+13175550113", "closed", "none"),        # inactive here
        ("+13175550114", "open", "Opted-Out "),     # suppressed by this campaign's own value
        ("+13175550115", "open", "do_not_call"),   # not a suppression value of this campaign
    )
    campaign = config(callable_statuses=["open", "Ringing"], inactive_statuses=["CLOSED"],
                      suppression_values=["opted-out"])
    assert str(run(campaign).state) == "success"
    rows = ledger(db)
    assert {cid: rows[cid]["skip_reason"] for cid in rows} == {
        ids[0]: None, ids[1]: None, ids[2]: "unknown_status", ids[4]: "suppressed", ids[5]: None}
    assert set(listed(genesys)) == {ids[0], ids[1], ids[5]}


def test_time_zone_and_consent(db: Any, genesys: Emulator) -> None:
    db.execute("ALTER TABLE contacts ADD COLUMN tz text, ADD COLUMN consent text")
    db.commit()
    try:
        ids = add(
            db,
            ("+1 800 225 5288", "active", "none", "America/Chicago", None),       # toll-free, zone from the column
            ("+1 888 225 5322", "active", "none", "Mars/Olympus_Mons", None),     # not a zone: unknown
            ("(317) 555-0120", "active", "none", None, None),                     # US mobile-or-fixed, no consent
            ("(317) 555-0121", "active", "none", None, " YES"),                   # consent given
            ("+44 20 7946 0019", "active", "none", None, None),                   # UK fixed line: needs none
            ("+44 7400 123456", "active", "none", None, "no"),                    # UK mobile without consent
            columns=("tz", "consent"),
        )
        campaign = config(timezone_column="tz", consent_column="consent", require_consent_for_mobile=True)
        dag_run = run(campaign)
        assert str(dag_run.state) == "success", task_states(dag_run)
        rows = ledger(db)
        assert {cid: rows[cid]["skip_reason"] for cid in rows} == {
            ids[0]: None, ids[1]: "unknown_timezone", ids[2]: "no_consent", ids[3]: None, ids[4]: None,
            ids[5]: "no_consent"}
        sent = listed(genesys)
        assert {cid: data.get("timezone") for cid, data in sent.items()} == {
            ids[0]: "America/Chicago", ids[3]: "America/New_York", ids[4]: "Europe/London"}
    finally:
        db.rollback()
        db.execute("ALTER TABLE contacts DROP COLUMN tz, DROP COLUMN consent")
        db.commit()


def test_a_postal_code_gives_genesys_the_time_zone(db: Any, emulator: Emulator) -> None:
    """A number without a zone of its own is sent with its postal code to a list that maps zones from it."""
    campaign_id, list_id = "6b2d0f8a-4c5e-4f9a-b13c-8d7e6f5a4b3c", "7c3e1a9b-5d6f-4a0b-c24d-9e8f7a6b5c4d"
    emulator.seed(genesys_seed(campaign_id=campaign_id, list_id=list_id, automaticTimeZoneMapping=True,
                               zipCodeColumnName="zip"))
    db.execute("ALTER TABLE contacts ADD COLUMN postal text")
    db.commit()
    try:
        ids = add(db, ("+1 800 225 5288", "active", "none", " 46204 "), ("+1 888 225 5322", "active", "none", ""),
                  columns=("postal",))
        campaign = config(key="comply_zip", campaign_id=campaign_id, list_timezone_column=None,
                          postal_code_column="postal", list_postal_code_column="zip")
        dag_run = run(campaign)
        assert str(dag_run.state) == "success", task_states(dag_run)
        rows = ledger(db, campaign_id)
        assert {cid: rows[cid]["skip_reason"] for cid in rows} == {ids[0]: None, ids[1]: "unknown_timezone"}
        assert listed(emulator, list_id)[ids[0]]["zip"] == "46204"
    finally:
        db.rollback()
        db.execute("ALTER TABLE contacts DROP COLUMN postal")
        db.commit()


def test_a_stale_registry_snapshot_stops_the_claim_and_turns_the_run_red(db: Any, genesys: Emulator) -> None:
    add(db, ("+13175550130", "active", "none"))
    db.execute("INSERT INTO dnc_numbers (phone_e164, source, registry_snapshot_date) "
               "VALUES ('+13175550131', 'national_registry', current_date - 40)")
    db.commit()
    dag_run = run(config())
    assert str(dag_run.state) == "failed"
    assert ledger(db) == {} and listed(genesys) == {}
    body = report(db, dag_run)
    assert body["outcome"] == "failed"
    assert any("registry snapshot" in w and "dnc_registry_max_age_days" in w for w in body["warnings"])
    db.execute("UPDATE dnc_numbers SET registry_snapshot_date = current_date - 2")
    db.commit()
    assert str(run(config()).state) == "success"
    assert len(listed(genesys)) == 1


# ------------------------------------------------------------------------------- opt-outs after delivery


def _deliver(db: Any, genesys: Emulator, count: int) -> list[int]:
    ids = add(db, *[(f"(317) 555-{200 + i:04d}", "active", "none") for i in range(count)])
    first = run(config())
    assert str(first.state) == "success", task_states(first)
    assert set(listed(genesys)) == set(ids)
    return ids


def test_an_opt_out_after_delivery_is_withdrawn_by_the_next_run(db: Any, genesys: Emulator) -> None:
    ids = _deliver(db, genesys, 8)
    numbers = {cid: f"+1317555{200 + i:04d}" for i, cid in enumerate(ids)}
    db.execute("UPDATE contacts SET suppression_status = ' Do_Not_Call', updated_at = now() WHERE id = %s", [ids[0]])
    db.execute("UPDATE contacts SET status = 'INACTIVE', updated_at = now() WHERE id = %s", [ids[1]])
    db.execute("INSERT INTO dnc_numbers (phone_e164) VALUES (%s)", [numbers[ids[2]]])
    # The same person again, opted out, with the number spelled differently: #3's number is now suppressed.
    twin = add(db, ("1 317 555 0203", "closed", "DO_NOT_CALL"))[0]
    db.execute("UPDATE contacts SET status = 'moved', updated_at = now() WHERE id = %s", [ids[4]])
    db.execute("DELETE FROM contacts WHERE id = %s", [ids[5]])
    db.commit()
    expected = {ids[0]: "suppressed", ids[1]: "inactive", ids[2]: "dnc_number", ids[3]: "suppressed_number",
                ids[4]: "unknown_status", ids[5]: "contact_deleted"}

    # A dry run says what it would withdraw and sends nothing.
    genesys.admin("DELETE", "requests")
    dry = run(config(), dry_run=True)
    assert str(dry.state) == "success"
    assert report(db, dry)["compliance"]["would_withdraw"] == dict(Counter(expected.values()))
    assert routes(genesys, DELETE_ROUTE) == routes(genesys, DNC_ROUTE) == []
    assert set(listed(genesys)) == set(ids) and all(r["status"] == "dispatched" for r in ledger(db).values())

    second = run(config())
    assert str(second.state) == "success", task_states(second)
    # Gone from the contact list, their numbers on the campaign's DNC list, the rest untouched.
    assert set(listed(genesys)) == {ids[6], ids[7]}
    assert set(genesys.admin("GET", f"dnclists/{DNC_LIST_ID}/phonenumbers")["phoneNumbers"]) == {
        numbers[cid] for cid in expected}
    # The ledger says when, why, by which run and with which requests (Genesys' contextIds).
    (delete,) = routes(genesys, DELETE_ROUTE)
    (patch,) = routes(genesys, DNC_ROUTE)
    rows = ledger(db)
    for cid, reason in expected.items():
        row = rows[cid]
        assert (row["status"], row["withdraw_reason"], row["withdrawn_by_run"]) == ("withdrawn", reason, second.run_id)
        assert row["withdrawn_at"] is not None
        assert (row["withdraw_context_id"], row["withdraw_dnc_context_id"]) == (
            delete["correlationId"], patch["correlationId"])
    assert all(rows[cid]["status"] == "dispatched" for cid in (ids[6], ids[7]))
    assert twin not in rows  # inactive ('closed'): never claimed, and still its opt-out suppresses the number
    body = report(db, second)
    assert body["compliance"]["withdrawn"] == dict(Counter(expected.values()))

    # Dialable no more: not in the queue, and the number re-entered by hand is passed over by the dialer.
    genesys.api("POST", f"contactlists/{LIST_ID}/contacts", [{"id": "by-hand", "data": {"phone": numbers[ids[0]]}}])
    dialed = genesys.admin("POST", f"campaigns/{CAMPAIGN_ID}/dial", {"count": 20})
    assert sorted(dialed["dialed"]) == sorted(str(cid) for cid in (ids[6], ids[7]))
    assert dialed["skipped"] == {"by-hand": "ININ-OUTBOUND-ON-DO-NOT-CALL-LIST"}

    # Nothing is withdrawn twice.
    genesys.admin("DELETE", "requests")
    assert str(run(config()).state) == "success"
    assert routes(genesys, DELETE_ROUTE) == []

    # Later checks look at what changed since the last one: a number entering the DNC table is found...
    db.execute("INSERT INTO dnc_numbers (phone_e164, source) VALUES (%s, 'complaints')", [numbers[ids[6]]])
    # ...and a value the rules did not know was a suppression value, once they do (the rules changed: every
    # contact is looked at again, though this row did not change).
    db.execute("UPDATE contacts SET suppression_status = 'Opted out' WHERE id = %s", [ids[7]])
    db.commit()
    third = run(config(suppression_values=["do_not_call", "opted out"]))
    assert str(third.state) == "success", task_states(third)
    rows = ledger(db)
    assert {cid: rows[cid]["withdraw_reason"] for cid in (ids[6], ids[7])} == {
        ids[6]: "dnc_number", ids[7]: "suppressed"}
    assert {c["id"] for c in genesys.contacts(LIST_ID)} == {"by-hand"}  # only the one entered by hand is left


def test_a_delivered_contact_whose_number_changed_is_withdrawn_not_sent_again(db: Any, genesys: Emulator) -> None:
    """The CRM corrects a delivered contact's number (the old one was wrong, or has been given to someone else).
    Genesys would go on dialing the number it holds: the next run withdraws the contact. That is not an opt-out,
    so the old number is not added to the DNC list, and the contact is not sent again with its new number (it may
    have been dialed already: a dialed contact is never queued again). The same number spelled another way is
    not a change."""
    ids = _deliver(db, genesys, 7)
    old = {cid: f"+1317555{200 + i:04d}" for i, cid in enumerate(ids)}
    db.execute("INSERT INTO dnc_numbers (phone_e164, source) VALUES ('+13175550299', 'internal')")
    for cid, number in [
        (ids[0], "(317) 555-0290"),      # another number
        (ids[1], "+1 317.555.0201 "),    # the same number, spelled another way: no change
        (ids[2], ""),                    # no number any more
        (ids[3], "12"),                  # a number that cannot be dialed
        (ids[4], "317-555-0299"),        # another number, itself on the do-not-call table
        (ids[5], None),
    ]:
        db.execute("UPDATE contacts SET phone_number = %s WHERE id = %s", [number, cid])
    db.commit()
    changed = {ids[0], ids[2], ids[3], ids[4], ids[5]}

    genesys.admin("DELETE", "requests")
    dry = run(config(), dry_run=True)
    assert str(dry.state) == "success", task_states(dry)
    assert report(db, dry)["compliance"]["would_withdraw"] == {"number_changed": len(changed)}
    assert routes(genesys, DELETE_ROUTE) == []

    second = run(config())
    assert str(second.state) == "success", task_states(second)
    assert set(listed(genesys)) == {ids[1], ids[6]}
    rows = ledger(db)
    assert {cid: (rows[cid]["status"], rows[cid]["withdraw_reason"]) for cid in changed} == {
        cid: ("withdrawn", "number_changed") for cid in changed}
    assert all(rows[cid]["withdrawn_by_run"] == second.run_id for cid in changed)
    assert (rows[ids[1]]["status"], rows[ids[1]]["phone_e164"]) == ("dispatched", old[ids[1]])
    assert report(db, second)["compliance"]["withdrawn"] == {"number_changed": len(changed)}
    # Not an opt-out: no number went to the campaign's DNC list, and no contact was sent.
    assert routes(genesys, DNC_ROUTE) == []
    assert set(genesys.admin("GET", f"dnclists/{DNC_LIST_ID}/phonenumbers")["phoneNumbers"]) == set()
    assert routes(genesys, "POST /api/v2/outbound/contactlists/{contactListId}/contacts") == []
    dialed = genesys.admin("POST", f"campaigns/{CAMPAIGN_ID}/dial", {"count": 20})
    assert sorted(dialed["dialed"]) == sorted(str(cid) for cid in (ids[1], ids[6]))

    # Later runs neither withdraw them again nor send them with their new numbers.
    genesys.admin("DELETE", "requests")
    third = run(config())
    assert str(third.state) == "success", task_states(third)
    assert routes(genesys, DELETE_ROUTE) == []
    assert set(listed(genesys)) == {ids[1], ids[6]}
    assert all(ledger(db)[cid]["status"] == "withdrawn" for cid in changed)

    # The operator's way to call one at its new number (docs/compliance.md): delete its ledger row.
    db.execute("DELETE FROM dispatch_ledger WHERE campaign_id = %s AND contact_id = %s", [CAMPAIGN_ID, ids[0]])
    db.execute("UPDATE contacts SET updated_at = now() WHERE id = %s", [ids[0]])
    db.commit()
    fourth = run(config())
    assert str(fourth.state) == "success", task_states(fourth)
    assert listed(genesys)[ids[0]]["phone"] == "+13175550290"
    assert (ledger(db)[ids[0]]["status"], ledger(db)[ids[0]]["phone_e164"]) == ("dispatched", "+13175550290")


def test_a_changed_number_withdraws_a_contact_genesys_may_hold_and_not_one_never_sent(
    db: Any, genesys: Emulator
) -> None:
    """Two contacts of a run that died: one whose request's answer was lost (in doubt: Genesys holds it), one
    never sent. Both numbers change before the next run. The first is withdrawn (a read-back would otherwise
    find it and mark it delivered, with the old number, after this run's check); the second is adopted and
    sent with its new number: nothing is lost."""
    ids = _deliver(db, genesys, 3)
    in_doubt, unsent = ids[0], ids[1]
    genesys.http.delete(f"{genesys.base_url}/api/v2/outbound/contactlists/{LIST_ID}/contacts",
                        params={"contactIds": str(unsent)}, headers={"Authorization": f"Bearer {genesys.token()}"},
                        timeout=10).raise_for_status()
    assert set(listed(genesys)) == {ids[0], ids[2]}
    # What a killed segment task leaves: claims of an older run, past their lease, one of them in doubt.
    db.execute("UPDATE dispatch_ledger SET status = 'claimed', dispatched_at = NULL, heartbeat_at = NULL, "
               "claimed_at = now() - interval '1 day', sending_at = CASE WHEN contact_id = %s THEN "
               "now() - interval '1 day' END WHERE campaign_id = %s AND contact_id = ANY(%s)",
               [in_doubt, CAMPAIGN_ID, [in_doubt, unsent]])
    db.execute("UPDATE contacts SET phone_number = '(317) 555-0290' WHERE id = %s", [in_doubt])
    db.execute("UPDATE contacts SET phone_number = '(317) 555-0291' WHERE id = %s", [unsent])
    db.commit()

    second = run(config())
    assert str(second.state) == "success", task_states(second)
    rows = ledger(db)
    assert (rows[in_doubt]["status"], rows[in_doubt]["withdraw_reason"]) == ("withdrawn", "number_changed")
    assert (rows[unsent]["status"], rows[unsent]["phone_e164"]) == ("dispatched", "+13175550291")
    assert listed(genesys) == {unsent: listed(genesys)[unsent], ids[2]: listed(genesys)[ids[2]]}
    assert listed(genesys)[unsent]["phone"] == "+13175550291"


def test_after_an_upgrade_that_withdraws_more_the_first_check_looks_at_every_contact(
    db: Any, genesys: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A contact flagged 'Do Not Call' long ago, which the previous version did not read as do_not_call, was
    delivered; its row does not change again. After the upgrade the first withdrawal check is a full one (the
    rules' fingerprint carries eligibility.RULES_VERSION), so it is withdrawn; an incremental check would have
    passed it over."""
    from genesys_dialer.compliance import eligibility
    from genesys_dialer.config import load_config

    ids = _deliver(db, genesys, 2)
    write_as_of_earlier(db, "UPDATE contacts SET suppression_status = 'Do Not Call', "
                            "updated_at = now() - interval '30 days' WHERE id = %s", [ids[0]])
    # What the previous version recorded as its last check: its own rules' fingerprint, a minute ago.
    campaign = next(c for c in load_config(write_config(*ALL_CAMPAIGNS, config())).campaigns if c.key == "comply")
    monkeypatch.setattr(eligibility, "RULES_VERSION", eligibility.RULES_VERSION - 1)
    previous = eligibility.Eligibility.for_campaign(campaign).fingerprint()
    monkeypatch.undo()
    assert previous != eligibility.Eligibility.for_campaign(campaign).fingerprint()
    db.execute("UPDATE withdrawal_checks SET rules = %s, started_at = now() - interval '1 minute' "
               "WHERE campaign_id = %s", [previous, CAMPAIGN_ID])
    db.commit()

    second = run(config())
    assert str(second.state) == "success", task_states(second)
    rows = ledger(db)
    assert (rows[ids[0]]["status"], rows[ids[0]]["withdraw_reason"]) == ("withdrawn", "suppressed")
    assert rows[ids[1]]["status"] == "dispatched"
    assert set(listed(genesys)) == {ids[1]}


def test_opt_outs_written_with_the_crms_own_older_time_are_withdrawn_too(db: Any, genesys: Emulator) -> None:
    """Loaders often copy the source system's time into the rows they write. An opt-out synced with the CRM's
    updated_at, a do-not-call contact imported "as of" days ago, or a number entering the DNC table with the date
    it was listed, is older than every incremental check's window; the schema's triggers make those times the
    time of the change here, so the next run still withdraws and suppresses."""
    # Contacts loaded two days ago (older than every look-back), then delivered.
    ids = add(db, *[(f"(317) 555-{200 + i:04d}", "active", "none") for i in range(4)])
    write_as_of_earlier(db, "UPDATE contacts SET updated_at = now() - interval '2 days'")
    first = run(config())
    assert str(first.state) == "success", task_states(first)
    assert set(listed(genesys)) == set(ids)

    db.execute("INSERT INTO dnc_numbers (phone_e164, source, added_at) VALUES ('+13175550202', 'complaints', "
               "now() - interval '20 days')")
    db.execute("UPDATE contacts SET suppression_status = 'Do_Not_Call', updated_at = now() - interval '1 day' "
               "WHERE id = %s", [ids[0]])
    # The same person as #1, known to the CRM as do-not-call for days, imported with that time; inactive.
    twin = db.execute("INSERT INTO contacts (phone_number, status, suppression_status, created_at, updated_at) "
                      "VALUES ('1 (317) 555-0201', 'closed', 'DO_NOT_CALL', now() - interval '3 days', "
                      "now() - interval '3 days') RETURNING id").fetchone()[0]
    db.commit()
    (newcomer,) = add(db, ("317.555.0201", "active", "none"))  # a new contact with that number
    second = run(config())
    assert str(second.state) == "success", task_states(second)
    rows = ledger(db)
    assert {cid: rows[cid]["withdraw_reason"] for cid in ids} == {
        ids[0]: "suppressed", ids[1]: "suppressed_number", ids[2]: "dnc_number", ids[3]: None}
    assert (rows[newcomer]["status"], rows[newcomer]["skip_reason"]) == ("skipped", "suppressed_number")
    assert twin not in rows
    assert set(listed(genesys)) == {ids[3]}
    assert set(genesys.admin("GET", f"dnclists/{DNC_LIST_ID}/phonenumbers")["phoneNumbers"]) == {
        "+13175550200", "+13175550201", "+13175550202"}


def test_a_do_not_call_contact_written_while_a_segment_streams_stops_its_number_on_the_next_page(
    db: Any, genesys: Emulator
) -> None:
    """A segment sends for minutes; a CRM sync can write a do-not-call contact meanwhile. Its number is suppressed
    through every other contact from the next page on, not only from the next run. The sync is made to land at a
    known point: in the transaction that marks the segment's first page delivered (a trigger on the ledger)."""
    ids = add(db, *[(f"(317) 555-{300 + i:04d}", "active", "none") for i in range(75)])
    target = ids[60]  # on the third page of 25
    db.execute(f"""
        CREATE FUNCTION test_crm_sync() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO contacts (phone_number, status, suppression_status)
            VALUES ('1 317 555 0360', 'closed', ' Do_Not_Call');
            RETURN NULL;
        END $$;
        CREATE TRIGGER test_crm_sync AFTER UPDATE ON dispatch_ledger FOR EACH ROW
            WHEN (NEW.contact_id = {ids[0]} AND NEW.status = 'dispatched' AND OLD.status <> 'dispatched')
            EXECUTE FUNCTION test_crm_sync();
    """)
    db.commit()
    try:
        dag_run = run(config(batch_size=100, segment_size=100))
    finally:
        db.execute("DROP TRIGGER test_crm_sync ON dispatch_ledger; DROP FUNCTION test_crm_sync()")
        db.commit()
    assert str(dag_run.state) == "success", task_states(dag_run)
    rows = ledger(db)
    assert (rows[target]["status"], rows[target]["skip_reason"]) == ("skipped", "suppressed_number")
    assert set(listed(genesys)) == set(ids) - {target}


def test_a_failed_withdrawal_turns_the_run_red_and_the_next_run_completes_it(db: Any, genesys: Emulator) -> None:
    ids = _deliver(db, genesys, 4)
    db.execute("UPDATE contacts SET suppression_status = 'do_not_call', updated_at = now() WHERE id = %s", [ids[0]])
    db.commit()
    newcomers = add(db, ("(317) 555-0300", "active", "none"), ("(317) 555-0301", "active", "none"))
    genesys.fault(route=DELETE_ROUTE, sequence=[403])  # e.g. the OAuth client lacks outbound:contact:delete

    failed = run(config())
    assert str(failed.state) == "failed"
    states = task_states(failed)
    assert states[("withdraw_opt_outs", -1)] == "failed"
    assert states[("fetch_contact_batch", -1)] == "upstream_failed"  # nothing new while opt-outs stay dialable
    assert ids[0] in listed(genesys)
    rows = ledger(db)
    assert rows[ids[0]]["status"] == "dispatched" and not set(newcomers) & set(rows)
    body = report(db, failed)
    assert body["outcome"] == "failed" and body["compliance"]["withdrawal_failed"]
    assert any("withdraw_opt_outs failed" in w for w in body["warnings"])

    repaired = run(config())
    assert str(repaired.state) == "success", task_states(repaired)
    assert ids[0] not in listed(genesys) and set(newcomers) <= set(listed(genesys))
    assert ledger(db)[ids[0]]["withdraw_reason"] == "suppressed"
    # The DNC PATCH of the failed attempt and of the repair both added the number: still one entry.
    assert list(genesys.admin("GET", f"dnclists/{DNC_LIST_ID}/phonenumbers")["phoneNumbers"]) == ["+13175550200"]


# --------------------------------------------------------------------------------- fixable data is not lost


def test_data_skips_are_retried_when_the_row_changes_and_requeued_by_hand(db: Any, genesys: Emulator, tmp_path) -> None:
    ids = add(db, ("555-CALL-NOW", "active", "none"), ("n/a", "active", "none"), ("317 555 0400", "active", "x"),
              ("317 555 0401", "active", "do_not_call"))
    campaign = config(suppression_values=["do_not_call"])
    assert str(run(campaign).state) == "success"
    assert {cid: r["skip_reason"] for cid, r in ledger(db).items()} == {
        ids[0]: "invalid_phone", ids[1]: "invalid_phone", ids[2]: None, ids[3]: "suppressed"}

    # Fixed upstream: #0 by a plain UPDATE (the schema's trigger moves updated_at: retried by itself), #1 by a bulk
    # load that bypassed triggers (session_replication_role = replica) and kept updated_at: not seen until requeued.
    db.execute("UPDATE contacts SET phone_number = '(317) 555-0402' WHERE id = %s", [ids[0]])
    db.execute("SET session_replication_role = replica")
    db.execute("UPDATE contacts SET phone_number = '(317) 555-0403' WHERE id = %s", [ids[1]])
    db.execute("SET session_replication_role = origin")
    db.execute("UPDATE contacts SET suppression_status = 'none', updated_at = now() WHERE id = %s", [ids[3]])
    db.commit()
    assert str(run(campaign).state) == "success"
    rows = ledger(db)
    assert rows[ids[0]]["status"] == "dispatched" and rows[ids[1]]["skip_reason"] == "invalid_phone"
    assert rows[ids[3]]["skip_reason"] == "suppressed"  # suppression is final for the campaign

    path = tmp_path / "campaigns.yaml"
    path.write_text(yaml.safe_dump({"campaigns": [config()]}))
    common = ["--campaign", "comply", "--config", str(path), "--dsn", DIALER_URL]
    assert cli.main(["requeue", *common, "--reason", "suppressed"]) == 2
    assert cli.main(["requeue", *common, "--reason", "no_such_reason"]) == 2
    assert cli.main(["requeue", *common, "--reason", "invalid_phone"]) == 0
    assert ledger(db)[ids[3]]["requeued_at"] is None
    assert str(run(campaign).state) == "success"
    rows = ledger(db)
    assert rows[ids[1]]["status"] == "dispatched" and rows[ids[3]]["status"] == "skipped"
    assert set(listed(genesys)) == {ids[0], ids[1], ids[2]}
    assert listed(genesys)[ids[1]]["phone"] == "+13175550403"
