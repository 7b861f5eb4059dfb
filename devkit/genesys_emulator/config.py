"""Emulator settings: one dataclass shared by the CLI, the in-process server and the admin API."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any

ENV_PREFIX = "GENESYS_EMULATOR_"
REDACTED = "REDACTED"


@dataclass
class EmulatorConfig:
    """Every knob of the emulator.

    Limits default to the documented (or community-reported) Genesys Cloud values so that a client which
    passes against the emulator does not hit a surprise in production; each can be changed for tests.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    client_id: str = "emulator-client"
    client_secret: str = "emulator-secret"
    # More OAuth clients, "id:secret,id2:secret2": each has its own rate limit (rate_limit_per_minute), like the
    # separate client-credentials clients a feed may spread its load over.
    extra_clients: str = ""
    token_ttl: int = 86399
    rate_limit_per_minute: int = 300
    # The limiter's fixed window (Genesys: a minute); tests shorten it, keeping the same rate per minute.
    rate_limit_window_seconds: float = 60.0
    # What the limit counts: "token" (Genesys' documented default: per client-credentials token, so a new token
    # starts a new window) or "client" (every token of an OAuth client shares one window: the stricter reading,
    # which the throughput benchmark and the budget tests use so a token refresh cannot hide a burst).
    rate_limit_scope: str = "token"
    enforce_limits: bool = True
    max_contacts_per_request: int = 1000
    max_body_bytes: int = 512000
    max_columns: int = 50
    max_column_name_length: int = 128
    max_cell_length: int = 512
    max_contacts_per_list: int = 1_000_000
    max_page_size: int = 100
    max_bulk_ids: int = 1000
    max_delete_ids: int = 100
    max_dnc_numbers_per_request: int = 1000
    max_filter_predicates: int = 10
    max_calls_per_agent_cap: float = 15.0
    # Longest interval of one analytics aggregates query (unconfirmed in Genesys' documentation).
    analytics_max_interval_days: float = 31.0
    # Whether PATCH keeps a fractional maxCallsPerAgent (as maxCallsPerAgentDecimal). Genesys' PATCH model types
    # it as a number but whether the fraction is kept is undocumented; false keeps only the integer part (at
    # least 1), so a client must read the campaign back and write maxCallsPerAgentDecimal with PUT.
    patch_keeps_decimal: bool = True
    default_retry_after: int = 1
    request_log_size: int = 100_000
    log_contact_ids: bool = True
    seed: str | None = None
    admin_token: str | None = None

    # Never returned by the admin API (GET/PATCH /__emulator__/config): shown as REDACTED when set.
    SECRET_FIELDS = ("client_secret", "admin_token", "extra_clients")

    def __post_init__(self) -> None:
        if self.rate_limit_scope not in ("token", "client"):
            raise ValueError(f"rate_limit_scope must be 'token' or 'client', not {self.rate_limit_scope!r}")

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def clients(self) -> dict[str, str]:
        """Every OAuth client the token endpoint accepts: {client id: secret}."""
        out = {self.client_id: self.client_secret}
        for pair in filter(None, (p.strip() for p in self.extra_clients.split(","))):
            client_id, _, secret = pair.partition(":")
            out[client_id] = secret
        return out

    def public(self) -> dict[str, Any]:
        """The settings with every secret replaced by ``REDACTED`` (``None`` when unset)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: (REDACTED if k in self.SECRET_FIELDS and v is not None else v) for k, v in values.items()}

    def update(self, values: dict[str, Any]) -> None:
        """Apply ``{"snake_or_camelName": value}`` pairs, coercing to the field's type (admin API, env)."""
        by_name = {f.name: f for f in fields(self)}
        by_camel = {_camel(n): n for n in by_name}
        for key, raw in values.items():
            name = key if key in by_name else by_camel.get(key)
            if name is None:
                raise KeyError(key)
            setattr(self, name, _coerce(getattr(self, name), raw, name))

    def apply_env(self, environ: dict[str, str] | None = None) -> None:
        """Read ``GENESYS_EMULATOR_<FIELD>`` variables (e.g. ``GENESYS_EMULATOR_RATE_LIMIT_PER_MINUTE``)."""
        env = os.environ if environ is None else environ
        for name in self.field_names():
            value = env.get(ENV_PREFIX + name.upper())
            if value is not None and value != "":
                setattr(self, name, _coerce(getattr(self, name), value, name))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _coerce(current: Any, raw: Any, name: str) -> Any:
    if name in ("seed", "admin_token"):
        return None if raw in (None, "") else str(raw)
    if isinstance(current, bool):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name}: not a boolean: {raw!r}")
    if isinstance(current, int):
        if isinstance(raw, bool):
            raise ValueError(f"{name}: not an integer: {raw!r}")
        return int(raw)
    if isinstance(current, float):
        return float(raw)
    return str(raw)
