"""Checks that decide whether a run may claim at all: the state the eligibility rules rely on must be sound."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from genesys_dialer.exceptions import ConfigError
from genesys_dialer.queries import load_sql

if TYPE_CHECKING:
    from genesys_dialer.compliance.phones import RefreshResult
    from genesys_dialer.config import CampaignConfig

CONTACT_COLUMN_FIELDS = ("timezone_column", "postal_code_column", "consent_column")


def check_contact_columns(conn: Any, campaign: CampaignConfig) -> None:
    """Raise ConfigError naming the campaign and field when a configured contacts column does not exist."""
    with conn.cursor() as cur:
        cur.execute(load_sql("contact_columns"))
        columns = {name for (name,) in cur.fetchall()}
    conn.commit()
    missing = [(f, getattr(campaign, f)) for f in CONTACT_COLUMN_FIELDS if getattr(campaign, f)]
    missing = [(f, col) for f, col in missing if col not in columns]
    if missing:
        named = ", ".join(f"{f}: {col!r}" for f, col in missing)
        raise ConfigError(f"campaign {campaign.key!r}: the contacts table has no column for {named}")


def registry_snapshot(conn: Any) -> date | None:
    """The newest national-registry snapshot date in ``dnc_numbers``, or None when none is loaded."""
    with conn.cursor() as cur:
        cur.execute(load_sql("dnc_registry_snapshot"))
        (snapshot,) = cur.fetchone()
    conn.commit()
    return snapshot


def claim_blockers(
    campaign: CampaignConfig, refresh: RefreshResult, snapshot: date | None, today: date
) -> list[str]:
    """Why the run must not claim now (empty: it may). Fails closed: a suppression check on incomplete data
    would let a do-not-call number through."""
    blockers = []
    if not refresh.caught_up:
        blockers.append(
            f"phone numbers are not all normalized yet (region {campaign.phone_region}; {refresh.scanned} rows "
            "this run, normalize_max_rows_per_run reached): suppression by number needs every number, so nothing "
            "is claimed; the next run continues (or run `genesys-dialer normalize`)"
        )
    max_age = campaign.dnc_registry_max_age_days
    if snapshot is not None and max_age is not None and (today - snapshot).days > max_age:
        blockers.append(
            f"the newest do-not-call registry snapshot in dnc_numbers is from {snapshot.isoformat()}, more than "
            f"{max_age} days ago (dnc_registry_max_age_days): load a current one; nothing is claimed until then"
        )
    return blockers
