"""The campaign config file: a validated schema and its loader (one DAG is built per campaign).

The file is YAML with optional ``defaults`` applied to every entry of ``campaigns``::

    defaults:
      genesys_conn_id: genesys_default
    campaigns:
      - key: spring_renewals
        campaign_id: 5f3c0a52-...

Parsing happens at DAG-parse time, so it must stay cheap and must fail with a message that names the file,
the campaign and the field: Airflow shows it as the DAG file's import error.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from genesys_dialer.exceptions import ConfigError

CONFIG_ENV_VAR = "GENESYS_DIALER_CONFIG"
# FCC (3 % of live-answered calls over 30 days) and Ofcom (3 % per 24 h): the pipeline never targets more.
COMPLIANCE_ABANDON_CAP_PERCENT = 3.0
# Genesys Cloud org maximum for a campaign's Max Calls Per Agent.
GENESYS_MAX_CALLS_PER_AGENT = 15.0
# The names of genesys_dialer.pacing.STRATEGIES, kept here so validating a config (at every DAG parse) does
# not import the pacing model.
RATIO_STRATEGIES = ("model", "tutorial")
# Where a campaign's dial outcomes come from: Genesys Cloud analytics (synced every run into campaign_outcomes)
# or the user's own dial_history table.
PACING_SOURCES = ("genesys", "dial_history")


def max_segments_per_run() -> int:
    """Airflow's ``[core] max_map_length`` (default 1024): a mapped task with more inputs fails its upstream."""
    from airflow.configuration import conf

    return conf.getint("core", "max_map_length", fallback=1024)


class CampaignConfig(BaseModel):
    """One outbound campaign fed by this package. Every field but ``key`` and ``campaign_id`` has a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_]{0,63}$", description="Slug used in the dag_id.")
    campaign_id: str = Field(min_length=1, description="The Genesys Cloud outbound campaign id.")
    contact_list_id: str | None = Field(
        default=None, description="Contact list to load; by default the campaign's own list."
    )
    description: str = ""
    owner: str = "dialer"
    tags: tuple[str, ...] = ()

    genesys_conn_id: str = "genesys_default"
    postgres_conn_id: str = "dialer_postgres"
    pool: str = "genesys_api"

    schedule: str | None = "*/15 * * * *"
    start_date: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    catchup: bool = False
    retries: int = Field(default=3, ge=0, le=20)
    retry_delay_seconds: float = Field(default=60, ge=0)

    batch_size: int = Field(default=5000, ge=1, le=1_000_000)
    segment_size: int = Field(default=1000, ge=1, le=100_000)
    contacts_per_request: int = Field(default=1000, ge=1, le=1000)
    claim_lease_minutes: int = Field(
        default=60, ge=1, description="Undelivered claims older than this are adopted by the next run."
    )

    phone_column: str = Field(default="phone", min_length=1, max_length=128)
    segment_column: str = Field(default="segment", min_length=1, max_length=128)
    phone_region: str = Field(
        default="US", pattern=r"^[A-Z]{2}$", description="Region for numbers written without +country."
    )
    contact_id_prefix: str = Field(default="", max_length=32)

    ratio_strategy: str = "model"
    pacing_source: str = Field(
        default="genesys", description="genesys: outcomes from Genesys Cloud analytics (synced each run); "
        "dial_history: the user's own dial_history table."
    )
    history_days: int = Field(default=7, ge=1, le=90)
    fallback_answer_rate: float = Field(default=0.15, gt=0, le=1)
    abandon_rate_target: float = Field(default=COMPLIANCE_ABANDON_CAP_PERCENT, gt=0)
    max_calls_per_agent_ceiling: float = Field(default=GENESYS_MAX_CALLS_PER_AGENT, gt=0)
    agents: int = Field(default=10, ge=1, description="Agents staffed on the campaign's queue.")
    max_outbound_lines: int = Field(default=100, ge=1, description="The campaign's line budget.")
    prior_strength: float = Field(
        default=30.0, gt=0, le=100_000, description="Beta prior weight on fallback_answer_rate, in dials."
    )
    recency_half_life_days: float | None = Field(
        default=3.0, gt=0, description="Half-life of the daily weights of the dial_history answer history; "
        "null: none."
    )
    outcome_half_life_hours: float = Field(
        default=3.0, gt=0, le=24 * 90, description="Half-life of the weights of Genesys outcomes (15-minute "
        "buckets) for the answer rate and call times: the pacing follows a drift within hours."
    )
    credible_level: float = Field(
        default=0.9, gt=0.5, lt=1, description="Central credible interval of p; pacing uses its upper end."
    )
    model_safety_factor: float = Field(
        default=1.0, gt=0, le=1, description="Extra share of the model's lines per idle agent dialed (1: "
        "none; the model's margin is model_margin_z)."
    )
    model_margin_z: float = Field(
        default=1.645, ge=0, le=5, description="One-sided z of the model's margin, combining the "
        "estimate's posterior sd and the model's fit error."
    )
    abandon_window_z: float = Field(
        default=2.0, ge=0, le=5, description="How many standard deviations of a 24 h window's scatter the paced "
        "abandon target stays below the cap (every 24 h window must be within it, not just the average)."
    )
    abandon_backoff_start: float = Field(
        default=0.8, gt=0, le=1, description="Back the ratio off once a realized window's rate (30 days, "
        "24 h) passes this share of abandon_rate_target."
    )
    abandon_backoff_stop: float = Field(
        default=0.95, gt=0, le=1, description="Dial progressive once a realized window's rate reaches this "
        "share of abandon_rate_target (before the cap, so the last intervals' scatter cannot cross it)."
    )
    abandon_backoff_min_answers: int = Field(
        default=100, ge=0, description="Live answers needed in a compliance window before backing off on it."
    )
    min_history_attempts: int = Field(
        default=100, ge=0, description="Dials in the window before the model leaves progressive dialing."
    )
    talk_time_seconds: float = Field(
        default=120.0, gt=0, le=7200, description="Mean talk time assumed until Genesys reports it (source "
        "genesys), or always (source dial_history)."
    )
    wrap_up_seconds: float = Field(
        default=10.0, ge=0, le=3600, description="Mean wrap-up (after-call work) assumed likewise."
    )
    outcome_sync_max_requests: int = Field(
        default=6, ge=1, le=100, description="Analytics queries per run (one covers up to a day); a backfill "
        "of the 30-day window continues in the next runs."
    )
    outcome_settle_minutes: int = Field(
        default=60, ge=0, le=1440, description="A bucket is pulled again until a run this long after it ended."
    )

    @field_validator("abandon_rate_target")
    @classmethod
    def _within_compliance_cap(cls, value: float) -> float:
        if value > COMPLIANCE_ABANDON_CAP_PERCENT:
            raise ValueError(
                f"must be at most {COMPLIANCE_ABANDON_CAP_PERCENT} (the FCC/Ofcom abandon cap, in percent)"
            )
        return value

    @field_validator("pacing_source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if value not in PACING_SOURCES:
            raise ValueError(f"unknown source {value!r}; choose one of {list(PACING_SOURCES)}")
        return value

    @field_validator("max_calls_per_agent_ceiling")
    @classmethod
    def _within_org_cap(cls, value: float) -> float:
        if value > GENESYS_MAX_CALLS_PER_AGENT:
            raise ValueError(f"must be at most {GENESYS_MAX_CALLS_PER_AGENT:g} (the Genesys Cloud org cap)")
        return value

    @field_validator("ratio_strategy")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        if value not in RATIO_STRATEGIES:
            raise ValueError(f"unknown strategy {value!r}; choose one of {sorted(RATIO_STRATEGIES)}")
        return value

    @model_validator(mode="after")
    def _fits_max_map_length(self) -> CampaignConfig:
        segments = math.ceil(self.batch_size / self.segment_size)
        if segments > max_segments_per_run():
            raise ValueError(
                f"batch_size {self.batch_size} / segment_size {self.segment_size} gives {segments} segments; "
                f"a run may map at most {max_segments_per_run()} (Airflow's max_map_length)"
            )
        if self.phone_column == self.segment_column:
            raise ValueError("phone_column and segment_column must name different contact list columns")
        return self

    @property
    def dag_id(self) -> str:
        return f"genesys_predictive_{self.key}"


def default_config_path(dags_folder: Path) -> Path:
    """The config file the DAGs read: ``$GENESYS_DIALER_CONFIG`` or ``campaigns.yaml`` beside the DAG file."""
    return Path(os.environ.get(CONFIG_ENV_VAR) or dags_folder / "campaigns.yaml")


def load_campaigns(path: Path | str) -> list[CampaignConfig]:
    """Read and validate the campaign config file; raise ConfigError naming file, campaign and field."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: campaign config file not found (set ${CONFIG_ENV_VAR})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return parse_campaigns(document, source=str(path))


def parse_campaigns(document: Any, *, source: str = "<config>") -> list[CampaignConfig]:
    """Validate an already-loaded config document (see :func:`load_campaigns`)."""
    if not isinstance(document, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping with a 'campaigns' list")
    unknown = set(document) - {"defaults", "campaigns"}
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key(s) {sorted(unknown)}; expected defaults, campaigns")
    defaults = document.get("defaults") or {}
    entries = document.get("campaigns")
    if not isinstance(defaults, Mapping):
        raise ConfigError(f"{source}: 'defaults' must be a mapping")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{source}: 'campaigns' must be a non-empty list")

    campaigns: list[CampaignConfig] = []
    seen: dict[tuple[str, str], int] = {}
    for index, entry in enumerate(entries):
        where = f"campaigns[{index}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{source}: {where} must be a mapping")
        name = entry.get("key", "?")
        try:
            campaign = CampaignConfig.model_validate({**defaults, **entry})
        except ValidationError as err:
            raise ConfigError(f"{source}: campaign {name!r} ({where}): {_describe(err)}") from None
        # The ledger, the claim lock and the run tables are keyed by campaign_id and run id, and scheduled run
        # ids are the same in every DAG: two entries for one Genesys campaign would re-send each other's claims.
        for field_name in ("key", "campaign_id"):
            value = getattr(campaign, field_name)
            if (field_name, value) in seen:
                raise ConfigError(
                    f"{source}: campaign {campaign.key!r} ({where}): field {field_name!r}: duplicate of "
                    f"campaigns[{seen[field_name, value]}]"
                )
            seen[field_name, value] = index
        campaigns.append(campaign)
    return campaigns


def _describe(err: ValidationError) -> str:
    problems = []
    for item in err.errors(include_url=False):
        field = ".".join(str(part) for part in item["loc"]) or "(entry)"
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"field '{field}': {message}")
    return "; ".join(problems)
