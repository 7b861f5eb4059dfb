"""What a DAG run is and what it may do, resolved from the Airflow context.

* :class:`RunInfo`: its id, type, interval and Params, and the try of the task asking; :class:`TaskTry`, which
  task try is running (what the run's request log records each request under).
* :class:`RunMode`: whether it claims and sends (live) or only computes and logs (dry), and why. The ``dry_run``
  Param asks for ``dry`` or ``live``; ``auto`` (the default) makes backfills and catch-up runs dry and every
  other run live. A live catch-up or backfill must be asked for (``catchup_runs: live``, ``dry_run: live``).
* :meth:`RunInfo.is_latest_interval`: only a run of the latest interval (its data interval ends within one
  schedule period of now) may PATCH the campaign's pacing; older runs compute and record it, and say so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import get_current_context

from genesys_dialer.config import NON_CRON_SCHEDULES, CampaignConfig, max_segments_per_run
from genesys_dialer.exceptions import ConfigError

DRY_RUN_VALUES = ("auto", "dry", "live")
# What old confs said ({"dry_run": false} in backfill commands): they keep their meaning.
LEGACY_DRY_RUN: dict[bool | None, str] = {True: "dry", False: "live", None: "auto"}
# The trigger form's labels ("values_display"; JSON object keys, so the legacy values are spelled as strings).
DRY_RUN_LABELS = {
    "auto": "auto: dry for backfills and catch-up runs, live otherwise",
    "dry": "dry: compute and log everything, claim and send nothing",
    "live": "live: claim and send contacts (and pace the campaign if this is the latest interval)",
    "true": "true (old spelling of dry)",
    "false": "false (old spelling of live)",
    "null": "empty (old spelling of auto)",
}
# "One schedule period" for a DAG without a periodic schedule (manual only, @once, @continuous): the
# project's default schedule, */15.
DEFAULT_PERIOD = timedelta(minutes=15)


def requested_mode(value: Any) -> str:
    """The ``dry_run`` Param as auto / dry / live (old confs: true / false / null)."""
    if isinstance(value, str) and value in DRY_RUN_VALUES:
        return value
    if value is None or isinstance(value, bool):
        return LEGACY_DRY_RUN[value]
    raise ConfigError(f"Param dry_run={value!r}: choose one of {list(DRY_RUN_VALUES)} (or true / false / null)")


def schedule_period(schedule: str | None, at: datetime) -> timedelta | None:
    """The time between two scheduled runs around ``at`` for a cron expression or preset; None otherwise."""
    if not schedule or schedule in NON_CRON_SCHEDULES:
        return None
    from airflow.sdk import CronTriggerTimetable
    from croniter import croniter

    try:
        runs = croniter(CronTriggerTimetable(schedule, timezone="UTC").expression, at)
        following = runs.get_next(datetime)
        return runs.get_next(datetime) - following
    except (ValueError, KeyError):
        return None


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    run_type: str
    requested: str  # the dry_run Param: auto, dry or live
    batch_size: int
    data_interval_start: datetime | None
    data_interval_end: datetime
    started_at: datetime | None
    period: timedelta = DEFAULT_PERIOD  # one schedule period
    try_number: int = 1  # of the task asking
    max_tries: int = 0

    @property
    def label_prefix(self) -> str:
        return self.data_interval_end.strftime("%Y%m%dT%H%M")

    def interval_age(self, now: datetime) -> timedelta:
        return now - self.data_interval_end

    def is_latest_interval(self, now: datetime) -> bool:
        """The interval ends within one schedule period of ``now``: no later interval's run is due yet."""
        return self.interval_age(now) <= self.period


@dataclass(frozen=True)
class RunMode:
    """Whether the run claims and sends (live) or only computes and logs (dry), and why."""

    dry_run: bool
    reason: str

    def to_xcom(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_xcom(cls, value: dict[str, Any]) -> RunMode:
        return cls(dry_run=bool(value["dry_run"]), reason=str(value["reason"]))


def decide_mode(campaign: CampaignConfig, run: RunInfo, now: datetime) -> RunMode:
    """The run's mode. Decided once per run (by resolve_campaign) so its tasks cannot disagree."""
    if run.requested == "dry":
        return RunMode(True, "dry_run=dry was asked for")
    if run.requested == "live":
        return RunMode(False, "dry_run=live was asked for")
    if run.run_type == "backfill":
        return RunMode(True, "auto: backfills are dry unless started with dry_run=live")
    if run.run_type == "scheduled" and not run.is_latest_interval(now):
        age = _duration(run.interval_age(now))
        if campaign.catchup_runs == "live":
            return RunMode(False, f"auto: a catch-up run (interval ended {age} ago) and the campaign sets "
                                  "catchup_runs: live")
        return RunMode(True, f"auto: a catch-up run (its interval ended {age} ago, more than one schedule "
                             "period); catch-up runs are dry unless the campaign sets catchup_runs: live")
    return RunMode(False, f"auto: a {run.run_type} run")


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 48 else f"{hours // 24} days"


def _as_utc(value: Any) -> datetime | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value.timestamp(), tz=UTC)


def run_info(campaign: CampaignConfig) -> RunInfo:
    """What the current run context says, with the Params resolved and checked."""
    context = get_current_context()
    dag_run = context["dag_run"]
    params = context["params"]
    ti = context.get("ti")
    run_type = getattr(dag_run.run_type, "value", str(dag_run.run_type))
    requested = requested_mode(params.get("dry_run"))
    batch_size = int(params.get("batch_size") or campaign.batch_size)
    segment_size = campaign.segment_size_for(batch_size)
    segments = math.ceil(batch_size / segment_size)
    if segments > max_segments_per_run():
        raise ConfigError(
            f"Param batch_size={batch_size} gives {segments} segments of {segment_size}; a run may "
            f"map at most {max_segments_per_run()} (Airflow's max_map_length)"
        )
    interval_end = (
        context.get("data_interval_end") or context.get("logical_date") or getattr(dag_run, "run_after", None)
    )
    end = _as_utc(interval_end) or datetime.now(UTC)
    return RunInfo(
        run_id=context["run_id"],
        run_type=run_type,
        requested=requested,
        batch_size=batch_size,
        data_interval_start=_as_utc(context.get("data_interval_start")),
        data_interval_end=end,
        started_at=_as_utc(getattr(dag_run, "start_date", None)),
        period=schedule_period(campaign.schedule, end) or DEFAULT_PERIOD,
        try_number=int(getattr(ti, "try_number", 1) or 1),
        max_tries=int(getattr(ti, "max_tries", 0) or 0),
    )


@dataclass(frozen=True)
class TaskTry:
    """The running task instance's try: what the run's request log records each request under."""

    task_id: str
    map_index: int
    try_number: int


def task_try() -> TaskTry:
    ti = get_current_context()["ti"]
    map_index = getattr(ti, "map_index", -1)
    return TaskTry(ti.task_id, -1 if map_index is None else int(map_index), int(ti.try_number or 1))
