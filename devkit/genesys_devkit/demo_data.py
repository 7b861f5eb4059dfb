"""Realistic demo and test data: contacts with the flaws real lists have, and dial history.

Used by ``make demo`` and by the test suite, so both exercise the same shapes of data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# Fictional numbers: US 555-01xx and UK Ofcom drama ranges are reserved for fiction but are not all
# "valid" to libphonenumber, so valid demo numbers use real area codes with random subscriber digits.
_US_AREA_CODES = ("212", "312", "415", "617", "713", "206", "305", "404", "503", "702")
DEMO_DNC_LIST_ID = "5e0c2a4b-7d9f-4b1e-8c3a-6f2e4d1b9a07"
_MALFORMED = ("", "   ", "n/a", "12345", "555-CALL-NOW", "+1 (000) 000-0000", "0000000000", "+44 20", "call me")


@dataclass(frozen=True)
class ContactMix:
    """Shares of each kind of row; the rest are eligible with a valid number."""

    inactive: float = 0.08
    do_not_call: float = 0.05
    missing_phone: float = 0.02
    malformed_phone: float = 0.03


def _valid_us_number(rng: random.Random, style: int) -> str:
    area = rng.choice(_US_AREA_CODES)
    exchange = rng.randint(200, 999)
    line = rng.randint(0, 9999)
    return (
        f"+1{area}{exchange}{line:04d}",
        f"({area}) {exchange}-{line:04d}",
        f"{area}.{exchange}.{line:04d}",
        f"1-{area}-{exchange}-{line:04d}",
    )[style % 4]


def contact_rows(count: int, *, seed: int = 7, mix: ContactMix | None = None,
                 created_at: datetime | None = None) -> list[tuple[Any, ...]]:
    """(phone_number, status, suppression_status, first_name, last_name, created_at) rows."""
    mix = mix or ContactMix()
    rng = random.Random(seed)
    created = created_at or datetime.now(UTC) - timedelta(days=1)
    rows = []
    for i in range(count):
        roll = rng.random()
        status, suppression = "active", "none"
        phone: str | None = _valid_us_number(rng, i)
        if roll < mix.inactive:
            status = rng.choice(["inactive", "closed"])
        elif roll < mix.inactive + mix.do_not_call:
            suppression = "do_not_call"
        elif roll < mix.inactive + mix.do_not_call + mix.missing_phone:
            phone = None
        elif roll < mix.inactive + mix.do_not_call + mix.missing_phone + mix.malformed_phone:
            phone = rng.choice(_MALFORMED)
        rows.append((phone, status, suppression, f"Demo{i}", "Contact", created))
    return rows


def insert_contacts(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO contacts (phone_number, status, suppression_status, first_name, last_name, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            rows,
        )
    conn.commit()


def insert_dial_history(conn: Any, campaign_id: str, *, end: datetime, days: int, per_day: int,
                        answer_rate: float, abandon_share: float = 0.01, seed: int = 11) -> None:
    """``per_day`` dial attempts a day for ``days`` days before ``end``, answered with ``answer_rate``."""
    rng = random.Random(seed)
    rows = []
    for day in range(days):
        for _ in range(per_day):
            at = end - timedelta(days=day, seconds=rng.randint(1, 86399))
            answered = rng.random() < answer_rate
            abandoned = answered and rng.random() < abandon_share
            rows.append((campaign_id, answered, abandoned, at))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO dial_history (campaign_id, answered, abandoned, created_at) VALUES (%s, %s, %s, %s)", rows
        )
    conn.commit()


def emulator_seed(campaign_id: str, contact_list_id: str, *, phone_column: str = "phone",
                  segment_column: str = "segment", timezone_column: str = "timezone") -> dict[str, Any]:
    """The emulator seed for one predictive campaign and its contact list, set up as docs/compliance.md asks:
    the phone column reads each contact's time zone from ``timezone_column``, the campaign has a callable time
    set and an internal DNC list."""
    return {
        "dncLists": [{"id": DEMO_DNC_LIST_ID, "name": "Demo opt-outs"}],
        "contactLists": [
            {
                "id": contact_list_id,
                "name": "Demo renewals list",
                "columnNames": [phone_column, segment_column, timezone_column],
                "phoneColumns": [
                    {"columnName": phone_column, "type": "cell", "callableTimeColumn": timezone_column}
                ],
            }
        ],
        "campaigns": [
            {
                "id": campaign_id,
                "name": "Demo renewals",
                "contactList": {"id": contact_list_id},
                "dialingMode": "predictive",
                "campaignStatus": "on",
                "abandonRate": 3.0,
                "outboundLineCount": 10,
                "maxCallsPerAgent": 1,
                "alwaysRunning": True,
                "noAnswerTimeout": 30,
                "callableTimeSet": {"id": "demo-callable-times"},
                "dncLists": [{"id": DEMO_DNC_LIST_ID}],
            }
        ],
    }
