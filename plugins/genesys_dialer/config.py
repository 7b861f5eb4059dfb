"""The campaign config file: a validated schema and its loader (one DAG is built per campaign).

The file is YAML with optional ``defaults`` applied to every entry of ``campaigns``::

    defaults:
      genesys_conn_id: genesys_default
    campaigns:
      - key: spring_renewals
        campaign_id: 5f3c0a52-...

Parsing happens at DAG-parse time, so it must stay cheap and every message names the file, the campaign and
the field. A bad entry does not take the others down: :func:`load_config` returns the valid campaigns and,
apart, the invalid entries (the DAG factory turns each into a DAG that fails at once, saying why). Only a file
that cannot be read as a whole (missing, not YAML, a duplicate key outside the entries, a bad ``defaults``)
fails the DAG file itself, as its import error.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import pickle
import re
import string
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from genesys_dialer.exceptions import ConfigError

CONFIG_ENV_VAR = "GENESYS_DIALER_CONFIG"
CACHE_ENV_VAR = "GENESYS_DIALER_CACHE_DIR"
# FCC (3 % of live-answered calls over 30 days) and Ofcom (3 % per 24 h): the pipeline never targets more.
COMPLIANCE_ABANDON_CAP_PERCENT = 3.0
# Genesys Cloud org maximum for a campaign's Max Calls Per Agent.
GENESYS_MAX_CALLS_PER_AGENT = 15.0
# Defaults of the compliance fields (docs/compliance.md).
DEFAULT_SUPPRESSION_VALUES = ("do_not_call",)
DEFAULT_CALLABLE_STATUSES = ("active",)
DEFAULT_INACTIVE_STATUSES = ("inactive", "closed")
DEFAULT_CONSENT_VALUES = ("true", "t", "yes", "y", "1")


# What a flag value is trimmed of before it is compared (genesys_dialer_norm in include/sql/schema.sql trims the
# same set): every Unicode space (str.isspace), and the invisible characters exports leave behind (the Mongolian
# vowel separator, zero-width spaces and joiners, the word joiner, the byte-order mark).
FLAG_PADDING = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
    "\u180e\u200b\u200c\u200d\u2060\ufeff"
)


# Separators and punctuation a suppression flag may be written with: 'Do Not Call', 'do-not-call', 'DO.NOT.CALL'
# and '(do_not_call!)' are 'do_not_call' (with the padding characters above, anywhere in the value). Every ASCII
# punctuation character and the typographic dashes and quotes: a fixed set, so SQL and Python agree whatever the
# database's locale (a character class like [[:alnum:]] would not).
FLAG_SEPARATORS = string.punctuation + "\u2018\u2019\u201c\u201d\u00b7\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
_NOT_IN_FLAG_KEY = dict.fromkeys(map(ord, FLAG_PADDING + FLAG_SEPARATORS))


def normalize_value(value: str) -> str:
    """How config values are compared with the columns: trimmed, lower case (``genesys_dialer_norm`` in SQL)."""
    return value.strip(FLAG_PADDING).lower()


def flag_key(value: str) -> str:
    """How suppression values are compared with ``suppression_status`` (``genesys_dialer_flag_key`` in SQL):
    normalized, then without separators and padding characters anywhere in the value."""
    return normalize_value(value).translate(_NOT_IN_FLAG_KEY)


# The names of genesys_dialer.pacing.STRATEGIES, kept here so validating a config (at every DAG parse) does
# not import the pacing model.
RATIO_STRATEGIES = ("model", "tutorial")
# Schedules that are not a cron expression or preset (Airflow's own spellings).
NON_CRON_SCHEDULES = ("@once", "@continuous")
DAG_ID_PREFIX = "genesys_predictive_"
KEY_PATTERN = r"^[a-z0-9][a-z0-9_]{0,63}$"
# Where a campaign's dial outcomes come from: Genesys Cloud analytics (synced every run into campaign_outcomes)
# or the user's own dial_history table.
PACING_SOURCES = ("genesys", "dial_history")
# segment_size auto: a segment is at least this many contact POSTs (50 requests: 10 s of one OAuth client's
# 300 requests/min, more than the ~8 s an Airflow task costs to start), unless the batch is smaller.
AUTO_MIN_REQUESTS_PER_SEGMENT = 50
BATCH_SIZE_MAX = 1_000_000
NORMALIZE_MAX_ROWS = 1_000_000  # phone numbers one task may parse (normalize_max_rows_per_run)


def max_segments_per_run() -> int:
    """Airflow's ``[core] max_map_length`` (default 1024): a mapped task with more inputs fails its upstream."""
    from airflow.configuration import conf

    return conf.getint("core", "max_map_length", fallback=1024)


@functools.lru_cache(maxsize=256)
def _cron_problem(value: str) -> str | None:
    """Why Airflow would refuse ``value`` as a cron schedule, or None. Cached: hundreds of campaigns share a
    handful of schedules, and each check costs about a millisecond (croniter)."""
    from airflow.sdk import CronTriggerTimetable
    from airflow.sdk.exceptions import AirflowTimetableInvalid

    try:
        CronTriggerTimetable(value, timezone="UTC").validate()
    except AirflowTimetableInvalid as err:
        return str(err)
    return None


class CampaignConfig(BaseModel):
    """One outbound campaign fed by this package. Every field but ``key`` and ``campaign_id`` has a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(pattern=KEY_PATTERN, description="Slug used in the dag_id.")
    campaign_id: str = Field(min_length=1, description="The Genesys Cloud outbound campaign id.")
    contact_list_id: str | None = Field(
        default=None, description="Contact list to load; by default the campaign's own list."
    )
    description: str = ""
    owner: str = "dialer"
    tags: tuple[str, ...] = ()

    genesys_conn_id: str = "genesys_default"
    genesys_conn_ids: tuple[str, ...] = Field(
        default=(), description="Genesys connections (OAuth clients) the segments spread their contact POSTs "
        "over, each segment on one, round-robin; each client has its own rate limit. Default: genesys_conn_id.",
    )
    postgres_conn_id: str = "dialer_postgres"
    budget_postgres_conn_id: str | None = Field(
        default=None, min_length=1, max_length=250,
        description="The PostgreSQL connection whose database keeps the Genesys OAuth clients' shared rate "
        "budgets and breaker-opening counts. Default: postgres_conn_id. Campaigns on different dialer databases "
        "that use one Genesys connection need the same one here (set it in defaults), or each database paces "
        "that client on its own.",
    )
    pool: str = "genesys_api"
    pool_slots: int = Field(
        default=5, ge=1, le=1024, description="The slots of `pool` (`airflow pools set genesys_api 5`): "
        "segment_size auto maps at most this many minus one segments, leaving a slot for the run's other tasks.",
    )

    schedule: str | None = "*/15 * * * *"
    start_date: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    catchup: bool = False
    catchup_runs: Literal["dry", "live"] = Field(
        default="dry", description="Whether catch-up runs (scheduled runs of past intervals) claim and send."
    )
    retries: int = Field(default=3, ge=0, le=20)
    retry_delay_seconds: float = Field(default=60, ge=0)

    batch_size: int = Field(default=5000, ge=1, le=BATCH_SIZE_MAX)
    segment_size: int | Literal["auto"] = Field(
        default="auto", description="Contacts per mapped create_segment; auto: sized from the batch, the pool and "
        "the connections (segment_size_for).",
    )
    contacts_per_request: int = Field(default=1000, ge=1, le=1000)
    claim_lease_minutes: int = Field(
        default=60, ge=1, description="Undelivered claims neither claimed nor worked on for this long are adopted "
        "by the next run."
    )
    breaker_wait_minutes: int = Field(
        default=60, ge=0, le=24 * 60, description="How long a task waits out an open circuit breaker by "
        "rescheduling itself (no try used) before an open breaker ends its try."
    )

    phone_column: str = Field(default="phone", min_length=1, max_length=128)
    segment_column: str = Field(default="segment", min_length=1, max_length=128)
    phone_region: str = Field(
        default="US", pattern=r"^[A-Z]{2}$", description="Region for numbers written without +country."
    )
    contact_id_prefix: str = Field(default="", max_length=32)

    # Compliance (docs/compliance.md). Flag values compare trimmed and case-insensitively.
    suppression_values: tuple[str, ...] = Field(
        default=DEFAULT_SUPPRESSION_VALUES, min_length=1,
        description="suppression_status values that mean do not call (the contact and its number).",
    )
    callable_statuses: tuple[str, ...] = Field(
        default=DEFAULT_CALLABLE_STATUSES, min_length=1, description="status values that may be called."
    )
    inactive_statuses: tuple[str, ...] = Field(
        default=DEFAULT_INACTIVE_STATUSES,
        description="status values that are not called; any other value is held back as unknown_status.",
    )
    timezone_column: str | None = Field(
        default=None, min_length=1, max_length=63, description="contacts column with the IANA time zone."
    )
    postal_code_column: str | None = Field(
        default=None, min_length=1, max_length=63, description="contacts column with the postal code."
    )
    consent_column: str | None = Field(
        default=None, min_length=1, max_length=63, description="contacts column saying the contact consented."
    )
    consent_values: tuple[str, ...] = Field(
        default=DEFAULT_CONSENT_VALUES, min_length=1, description="consent_column values that mean consent."
    )
    require_timezone: bool | None = Field(
        default=None, description="Hold back contacts without a time zone (null: for US and Canadian numbers)."
    )
    require_consent_for_mobile: bool = Field(
        default=False, description="Hold back possibly-mobile numbers whose consent_column does not say yes."
    )
    list_timezone_column: str | None = Field(
        default=None, min_length=1, max_length=128,
        description="Contact list column the time zone is written to (a phone column's callableTimeColumn).",
    )
    list_postal_code_column: str | None = Field(
        default=None, min_length=1, max_length=128,
        description="Contact list column the postal code is written to (the list's zipCodeColumnName).",
    )
    dnc_list_id: str | None = Field(
        default=None, min_length=1, description="Genesys internal DNC list the numbers of withdrawn contacts join."
    )
    withdraw_ids_per_request: int = Field(
        default=100, ge=1, le=1000, description="Contact ids per DELETE (and numbers per DNC PATCH) of a withdrawal."
    )
    skip_alert_share: float = Field(
        default=0.5, gt=0, le=1, description="Share of a run's batch held back above which the skip alert fires."
    )
    normalize_max_rows_per_run: int = Field(
        default=NORMALIZE_MAX_ROWS, ge=1, description="Phone numbers normalization may parse per task (about 7,000/s)."
    )
    normalize_lookback_minutes: int = Field(
        default=60, ge=0, description="How far back normalization re-reads rows (late-committed updates)."
    )
    dnc_registry_max_age_days: int | None = Field(
        default=31, ge=1, description="Claim nothing while the newest registry snapshot in dnc_numbers is older."
    )

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

    @field_validator("segment_size", mode="before")
    @classmethod
    def _auto_or_bounded(cls, value: Any) -> Any:
        """"auto", or a whole number of contacts within 1..BATCH_SIZE_MAX (the messages of a plain int field)."""
        if value == "auto" or isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, int):
            if value < 1:
                raise PydanticCustomError("greater_than_equal", "Input should be greater than or equal to 1")
            if value > BATCH_SIZE_MAX:
                raise PydanticCustomError("less_than_equal", f"Input should be less than or equal to {BATCH_SIZE_MAX}")
            return value
        raise PydanticCustomError("segment_size", "Input should be 'auto' or a whole number of contacts")

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

    @field_validator("phone_region", mode="before")
    @classmethod
    def _region_spelling(cls, value: Any) -> Any:
        """``us`` and `` GB `` mean US and GB: region codes are written in capitals, but nothing is gained by
        refusing a campaign over their case. A YAML boolean is most likely Norway's NO, unquoted."""
        if isinstance(value, bool):
            raise ValueError(f"got the YAML boolean {value}: YAML reads an unquoted NO (Norway) as false; quote it: "
                             "phone_region: 'NO'")
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("phone_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        import phonenumbers  # not at module level: DAG parsing imports this module every few seconds

        if value not in phonenumbers.SUPPORTED_REGIONS:
            hint = " (the United Kingdom is GB)" if value == "UK" else ""
            raise ValueError(f"{value!r} is not a region libphonenumber knows{hint}; use an ISO 3166 code like US, GB")
        return value

    @field_validator("suppression_values", "callable_statuses", "inactive_statuses", "consent_values")
    @classmethod
    def _flag_values(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        normalized = tuple(normalize_value(v) for v in values)
        if any(not v for v in normalized):
            raise ValueError("values must not be empty")
        return normalized

    @field_validator("suppression_values")
    @classmethod
    def _suppression_keys(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        if bad := [v for v in values if not flag_key(v)]:
            raise ValueError(f"{bad!r}: a suppression value needs a letter or digit (separators and punctuation "
                             "are ignored)")
        return values

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str | None) -> str | None:
        """What Airflow would accept for the DAG (a cron expression or preset), checked here so a bad one is
        reported like any other field instead of as Airflow's bare AirflowTimetableInvalid."""
        if value is None or value in NON_CRON_SCHEDULES:
            return value
        problem = _cron_problem(value)
        if problem:
            raise ValueError(
                f"{value!r} is not a cron expression or preset (@hourly, @daily, ...), nor null, @once or "
                f"@continuous: {problem}"
            )
        return value

    @field_validator("ratio_strategy")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        if value not in RATIO_STRATEGIES:
            raise ValueError(f"unknown strategy {value!r}; choose one of {sorted(RATIO_STRATEGIES)}")
        return value

    @model_validator(mode="after")
    def _fits_max_map_length(self) -> CampaignConfig:
        segments = math.ceil(self.batch_size / self.segment_size_for(self.batch_size))
        if segments > max_segments_per_run():
            raise ValueError(
                f"batch_size {self.batch_size} / segment_size {self.segment_size} gives {segments} segments; "
                f"a run may map at most {max_segments_per_run()} (Airflow's max_map_length)"
            )
        list_columns = [c for c in (self.phone_column, self.segment_column, self.list_timezone_column,
                                    self.list_postal_code_column) if c]
        if len(set(list_columns)) != len(list_columns):
            raise ValueError(
                "phone_column, segment_column, list_timezone_column and list_postal_code_column must name "
                "different contact list columns"
            )
        both = set(self.callable_statuses) & set(self.inactive_statuses)
        if both:
            raise ValueError(f"status value(s) {sorted(both)} are in both callable_statuses and inactive_statuses")
        if self.require_consent_for_mobile and not self.consent_column:
            raise ValueError("require_consent_for_mobile needs consent_column (the contacts column with consent)")
        if self.postal_code_column and not self.list_postal_code_column:
            raise ValueError(
                "postal_code_column needs list_postal_code_column: Genesys maps a postal code to a time zone only "
                "from the contact list's zipCodeColumnName"
            )
        return self

    @property
    def dag_id(self) -> str:
        return f"{DAG_ID_PREFIX}{self.key}"

    @property
    def sending_conn_ids(self) -> tuple[str, ...]:
        """The Genesys connections the contact POSTs go out through (segment i uses the i-th, round-robin)."""
        return self.genesys_conn_ids or (self.genesys_conn_id,)

    @property
    def budget_conn_id(self) -> str:
        """The PostgreSQL connection of the database keeping this campaign's Genesys rate budgets."""
        return self.budget_postgres_conn_id or self.postgres_conn_id

    def segment_conn_id(self, segment_index: int) -> str:
        conns = self.sending_conn_ids
        return conns[segment_index % len(conns)]

    @property
    def auto_segments(self) -> bool:
        return self.segment_size == "auto"

    def segment_size_for(self, batch_size: int) -> int:
        """Contacts per segment for a batch of ``batch_size``: the configured number, or (auto) the batch split
        into enough segments to keep the pool's slots busy (one slot left for the run's other tasks, at least
        one segment per connection), none shorter than AUTO_MIN_REQUESTS_PER_SEGMENT requests, so the ~8 s a
        task costs to start is paid once per many requests. Always a multiple of contacts_per_request."""
        if self.segment_size != "auto":
            return int(self.segment_size)
        requests = max(1, math.ceil(batch_size / self.contacts_per_request))
        streams = max(1, self.pool_slots - 1, len(self.sending_conn_ids))
        segments = max(1, min(streams, requests // AUTO_MIN_REQUESTS_PER_SEGMENT))
        return math.ceil(requests / segments) * self.contacts_per_request


@dataclass(frozen=True)
class InvalidCampaign:
    """A campaign entry that failed validation: its error, and the dag_id under which the DAG factory shows it
    (the entry's own when its key is usable, so a DAG that was running fails instead of silently vanishing)."""

    index: int
    key: str | None
    dag_id: str
    error: ConfigError


@dataclass(frozen=True)
class CampaignFile:
    """The config file: its valid campaigns, and the entries that are not (each with its error)."""

    source: str
    campaigns: tuple[CampaignConfig, ...]
    invalid: tuple[InvalidCampaign, ...] = ()

    def strict(self) -> list[CampaignConfig]:
        """The campaigns, or one ConfigError listing every invalid entry (for the CLI and the demo)."""
        if self.invalid:
            raise ConfigError("\n".join(str(entry.error) for entry in self.invalid))
        return list(self.campaigns)


@dataclass(frozen=True)
class DuplicateKey:
    """A key written twice in one YAML mapping (YAML would silently keep the last value)."""

    path: tuple[str | int, ...]
    key: str
    line: int
    first_line: int

    def describe(self) -> str:
        return (f"line {self.line}: duplicate key {self.key!r} (first at line {self.first_line}); YAML would "
                "silently keep only the last value")


def connections_across_databases(campaigns: Iterable[CampaignConfig]) -> dict[str, tuple[str, ...]]:
    """The Genesys connections whose campaigns keep their rate budgets in more than one database, each with
    those databases' connection ids (``budget_conn_id``: the dialer database unless budget_postgres_conn_id says
    otherwise). Such campaigns share the connection's circuit breaker (its Variables) but neither its rate budget
    nor the count of breaker openings that lets a task trust a closed reading (genesys/budget.py)."""
    databases: dict[str, set[str]] = {}
    for campaign in campaigns:
        for conn_id in {campaign.genesys_conn_id, *campaign.sending_conn_ids}:
            databases.setdefault(conn_id, set()).add(campaign.budget_conn_id)
    return {conn_id: tuple(sorted(dbs)) for conn_id, dbs in sorted(databases.items()) if len(dbs) > 1}


def default_config_path(dags_folder: Path) -> Path:
    """The config file the DAGs read: ``$GENESYS_DIALER_CONFIG`` or ``campaigns.yaml`` beside the DAG file."""
    return Path(os.environ.get(CONFIG_ENV_VAR) or dags_folder / "campaigns.yaml")


def load_config(path: Path | str) -> CampaignFile:
    """Read the campaign config file: its valid campaigns and its invalid entries, each error naming file,
    campaign and field. Raises ConfigError when the file as a whole is unusable.

    The result is cached on disk (see :func:`config_cache_dir`) under a key of the file's path and bytes, this
    module's source and the versions and settings validation depends on: the dag-processor parses every DAG
    file every 30 s in a fresh process, and with sharded DAG files each shard reads the whole config (about
    1 ms a campaign to read and validate, 0.1 ms from the cache). A file that fails as a whole is not cached.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: campaign config file not found (set ${CONFIG_ENV_VAR})") from None
    cache = _ConfigCache.for_file(path, data)
    if cache is not None and (cached := cache.read()) is not None:
        return cached
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text: {err}") from None
    document, duplicates = read_yaml(text, source=str(path))
    config = parse_config(document, source=str(path), duplicates=duplicates)
    if cache is not None:
        cache.write(config)
    return config


def config_cache_dir() -> Path | None:
    """Where :func:`load_config` caches validated config files: ``$GENESYS_DIALER_CACHE_DIR`` (``off``: no
    cache), else ``genesys-dialer-<uid>`` in the temporary directory. Used only if this user owns it and no one
    else may write to it (it holds pickles); created so."""
    setting = os.environ.get(CACHE_ENV_VAR, "")
    if setting.lower() == "off":
        return None
    folder = Path(setting) if setting else Path(tempfile.gettempdir()) / f"genesys-dialer-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = folder.stat()
    except OSError:
        return None
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        return None
    return folder


@dataclass(frozen=True)
class _ConfigCache:
    """One cache file per config path, holding the key it was written for and the validated config."""

    file: Path
    key: str

    @classmethod
    def for_file(cls, path: Path, data: bytes) -> _ConfigCache | None:
        folder = config_cache_dir()
        if folder is None:
            return None
        try:
            schema_source = Path(__file__).read_bytes()  # the fields and validators
        except OSError:  # not a plain file (a zip import): nothing to key on, so no cache
            return None
        digest = hashlib.sha256()
        for part in (str(path).encode(), data, schema_source, *_validation_context()):
            digest.update(len(part).to_bytes(8, "big") + part)
        name = hashlib.sha256(str(path.absolute()).encode()).hexdigest()[:24]
        return cls(folder / f"config-{name}.pickle", digest.hexdigest())

    def read(self) -> CampaignFile | None:
        try:
            with self.file.open("rb") as f:
                key, config = pickle.load(f)
        except Exception:  # missing, partly written by an older version, unreadable: read the file instead
            return None
        return config if key == self.key and isinstance(config, CampaignFile) else None

    def write(self, config: CampaignFile) -> None:
        try:
            fd, tmp = tempfile.mkstemp(dir=self.file.parent, prefix=".config-", suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                pickle.dump((self.key, config), f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, self.file)  # atomic: concurrent shard parses read the old file or the new one
        except OSError:
            with contextlib.suppress(OSError, UnboundLocalError):
                os.unlink(tmp)


def _validation_context() -> list[bytes]:
    """What validating a config depends on besides the file and this module's source: the libraries' versions
    (cron syntax, regions, YAML, pydantic) and Airflow's max_map_length."""
    from importlib.metadata import PackageNotFoundError, version

    parts = [sys.version.encode(), str(max_segments_per_run()).encode()]
    for package in ("apache-airflow-task-sdk", "phonenumbers", "pydantic", "pyyaml", "croniter"):
        try:
            parts.append(f"{package}={version(package)}".encode())
        except PackageNotFoundError:
            parts.append(package.encode())
    return parts


def load_campaigns(path: Path | str) -> list[CampaignConfig]:
    """Read and validate the campaign config file; raise ConfigError naming file, campaign and field of every
    invalid entry (the DAG factory uses :func:`load_config`, which keeps the valid ones)."""
    return load_config(path).strict()


# libyaml's loader when PyYAML was built with it (the wheels are): the same safe constructors and node marks,
# four times faster than the pure-Python one on a large config file.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(text: str, *, source: str) -> tuple[Any, list[DuplicateKey]]:
    """The YAML document and the keys it repeats inside one mapping (which plain YAML loading hides)."""
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        duplicates = list(_duplicate_keys(node, ())) if node is not None else []
        document = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML: {err}") from None
    finally:
        loader.dispose()
    return document, duplicates


def _duplicate_keys(node: yaml.Node, path: tuple[str | int, ...]) -> Iterator[DuplicateKey]:
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in first:
                yield DuplicateKey(path, key, line, first[key])
            else:
                first[key] = line
            yield from _duplicate_keys(value_node, (*path, key))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*path, index))


def parse_campaigns(document: Any, *, source: str = "<config>") -> list[CampaignConfig]:
    """Validate an already-loaded config document; raise ConfigError if any entry is invalid."""
    return parse_config(document, source=source).strict()


def parse_config(document: Any, *, source: str = "<config>", duplicates: list[DuplicateKey] | tuple = ()
                 ) -> CampaignFile:
    """Validate an already-loaded config document entry by entry (see :func:`load_config`)."""
    outside = [d for d in duplicates if d.path[:1] != ("campaigns",) or len(d.path) < 2]
    if outside:
        d = outside[0]
        where = ".".join(str(p) for p in d.path) or "the top level"
        raise ConfigError(f"{source}: {where}: {d.describe()}")
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

    duplicates_in: dict[int, list[DuplicateKey]] = {}
    for d in duplicates:
        if d.path[:1] == ("campaigns",) and isinstance(d.path[1], int):
            duplicates_in.setdefault(d.path[1], []).append(d)
    campaigns: list[CampaignConfig] = []
    failed: list[tuple[int, str | None, ConfigError]] = []
    seen: dict[tuple[str, str], int] = {}
    for index, entry in enumerate(entries):
        where = f"campaigns[{index}]"
        if not isinstance(entry, Mapping):
            failed.append((index, None, ConfigError(f"{source}: {where} must be a mapping")))
            continue
        name = entry.get("key", "?")
        key = name if isinstance(name, str) and re.match(KEY_PATTERN, name) else None
        if index in duplicates_in:
            problems = "; ".join(d.describe() for d in duplicates_in[index])
            failed.append((index, key, ConfigError(f"{source}: campaign {name!r} ({where}): {problems}")))
            continue
        try:
            campaign = CampaignConfig.model_validate({**defaults, **entry})
        except ValidationError as err:
            failed.append((index, key, ConfigError(f"{source}: campaign {name!r} ({where}): {_describe(err)}")))
            continue
        # The ledger, the claim lock and the run tables are keyed by campaign_id and run id, and scheduled run
        # ids are the same in every DAG: two entries for one Genesys campaign would re-send each other's claims.
        clash = next(((f, seen[f, getattr(campaign, f)]) for f in ("key", "campaign_id")
                      if (f, getattr(campaign, f)) in seen), None)
        if clash:
            field_name, other = clash
            failed.append((index, None, ConfigError(
                f"{source}: campaign {campaign.key!r} ({where}): field {field_name!r}: duplicate of "
                f"campaigns[{other}]"
            )))
            continue
        for field_name in ("key", "campaign_id"):
            seen[field_name, getattr(campaign, field_name)] = index
        campaigns.append(campaign)

    taken = {c.dag_id for c in campaigns}
    invalid = []
    for index, key, error in failed:
        dag_id = f"{DAG_ID_PREFIX}{key}" if key else ""
        if not key or dag_id in taken:
            dag_id = f"{DAG_ID_PREFIX}invalid_entry_{index}"
        taken.add(dag_id)
        invalid.append(InvalidCampaign(index=index, key=key, dag_id=dag_id, error=error))
    return CampaignFile(source=source, campaigns=tuple(campaigns), invalid=tuple(invalid))


def _describe(err: ValidationError) -> str:
    problems = []
    for item in err.errors(include_url=False):
        field = ".".join(str(part) for part in item["loc"]) or "(entry)"
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"field '{field}': {message}")
    return "; ".join(problems)
