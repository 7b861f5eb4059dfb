"""Who may be sent: the campaign's eligibility rules as bound parameters and rendered SQL templates.

The rules live in two SQL expressions: ``opt_out_reason.sql`` (opted out, not in the audience, number
suppressed: what withdraws a delivered contact) and ``hold_reason.sql`` (those first, then what the data lacks),
shared by the claim, the check right before sending and the withdrawal, so the three can never disagree. The only parts
that are not bound parameters are the contacts columns the config names (time zone, postal code, consent):
they are filled in as quoted identifiers with ``psycopg.sql``, never by string formatting.
"""

from __future__ import annotations

import hashlib
import json
import zoneinfo
from dataclasses import asdict, dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from psycopg import sql

from genesys_dialer.compliance import reasons
from genesys_dialer.compliance.phones import MAYBE_MOBILE_TYPES
from genesys_dialer.config import (
    DEFAULT_CALLABLE_STATUSES,
    DEFAULT_CONSENT_VALUES,
    DEFAULT_INACTIVE_STATUSES,
    DEFAULT_SUPPRESSION_VALUES,
    flag_key,
    normalize_value,
)
from genesys_dialer.queries import load_sql

if TYPE_CHECKING:
    from genesys_dialer.config import CampaignConfig


@cache
def valid_time_zones() -> list[str]:
    """IANA zone names (from tzdata): a time-zone column's value counts only when it is one of them."""
    return sorted(zoneinfo.available_timezones())


# What the SQL makes of the rules, part of their fingerprint: raised whenever a withdrawal would find contacts an
# earlier check let pass, so the first check after an upgrade looks at every contact again. 2: suppression
# values compared without separators (config.flag_key), and delivered contacts whose number changed.
RULES_VERSION = 2


@dataclass(frozen=True)
class Eligibility:
    """A campaign's rules for who may be sent; defaults are the config's defaults."""

    campaign_id: str
    region: str = "US"
    suppression_values: tuple[str, ...] = DEFAULT_SUPPRESSION_VALUES
    callable_statuses: tuple[str, ...] = DEFAULT_CALLABLE_STATUSES
    inactive_statuses: tuple[str, ...] = DEFAULT_INACTIVE_STATUSES
    timezone_column: str | None = None
    postal_code_column: str | None = None
    consent_column: str | None = None
    consent_values: tuple[str, ...] = DEFAULT_CONSENT_VALUES
    require_timezone: bool | None = None  # None: for US and Canadian numbers
    require_consent_for_mobile: bool = False

    @classmethod
    def for_campaign(cls, campaign: CampaignConfig) -> Eligibility:
        return cls(
            campaign_id=campaign.campaign_id,
            region=campaign.phone_region,
            suppression_values=campaign.suppression_values,
            callable_statuses=campaign.callable_statuses,
            inactive_statuses=campaign.inactive_statuses,
            timezone_column=campaign.timezone_column,
            postal_code_column=campaign.postal_code_column,
            consent_column=campaign.consent_column,
            consent_values=campaign.consent_values,
            require_timezone=campaign.require_timezone,
            require_consent_for_mobile=campaign.require_consent_for_mobile,
        )

    def params(self) -> dict[str, Any]:
        """The bound parameters every eligibility template uses."""
        return {
            "campaign_id": self.campaign_id,
            "phone_region": self.region,
            "suppression_keys": [flag_key(v) for v in self.suppression_values],
            "callable_statuses": [normalize_value(v) for v in self.callable_statuses],
            "inactive_statuses": [normalize_value(v) for v in self.inactive_statuses],
            "consent_values": [normalize_value(v) for v in self.consent_values],
            "require_timezone": self.require_timezone,
            "require_consent_for_mobile": self.require_consent_for_mobile,
            "maybe_mobile_types": list(MAYBE_MOBILE_TYPES),
            "time_zones": valid_time_zones(),
            "retry_reasons": sorted(reasons.DATA_REASONS),
        }

    def fingerprint(self) -> str:
        """Identifies these rules and what the SQL makes of them (RULES_VERSION): a withdrawal check under other
        rules looks at every contact again."""
        rules = {**asdict(self), "version": RULES_VERSION}
        return hashlib.sha256(json.dumps(rules, sort_keys=True).encode()).hexdigest()[:16]

    def scan_statuses(self, present: list[str]) -> list[str]:
        """The status values the claim scans: the callable ones and any present value the config does not know."""
        callable_ = {normalize_value(v) for v in self.callable_statuses}
        known = callable_ | {normalize_value(v) for v in self.inactive_statuses}
        return sorted(callable_ | {v for v in present if v not in known})

    def render(self, name: str) -> sql.Composed:
        """``include/sql/<name>.sql`` with ``{hold_reason}``, ``{opt_out_reason}``, ``{withdraw_reason}`` and the
        configured contacts columns filled in."""
        parts: dict[str, sql.Composable] = {
            "consent": _column(self.consent_column),
            "postal_code": _column(self.postal_code_column),
            "contact_time_zone": _fragment("contact_time_zone", column=_column(self.timezone_column)),
        }
        parts["opt_out_reason"] = _fragment("opt_out_reason", **parts)
        parts["hold_reason"] = _fragment("hold_reason", **parts)
        parts["withdraw_reason"] = _fragment("withdraw_reason", **parts)
        return sql.SQL(load_sql(name)).format(**parts)


def _fragment(name: str, **parts: sql.Composable) -> sql.Composed:
    """An expression template (``include/sql/<name>.sql``) without its comments, in parentheses."""
    body = "\n".join(line for line in load_sql(name).splitlines() if not line.lstrip().startswith("--"))
    return sql.SQL("(" + body.strip() + ")").format(**parts)


def _column(name: str | None) -> sql.Composable:
    """A contacts column as ``"c"."name"``, or NULL when the config names none."""
    return sql.Identifier("c", name) if name else sql.NULL
