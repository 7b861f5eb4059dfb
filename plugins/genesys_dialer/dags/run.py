"""What a DAG run is (its id, type, interval and Params) and which task try is running, from the Airflow context."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import get_current_context

from genesys_dialer.config import CampaignConfig, max_segments_per_run
from genesys_dialer.exceptions import ConfigError


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    run_type: str
    dry_run: bool
    batch_size: int
    data_interval_start: datetime | None
    data_interval_end: datetime
    started_at: datetime | None

    @property
    def label_prefix(self) -> str:
        return self.data_interval_end.strftime("%Y%m%dT%H%M")


def _as_utc(value: Any) -> datetime | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value.timestamp(), tz=UTC)


def run_info(campaign: CampaignConfig) -> RunInfo:
    """What the current run context says, with the Params resolved and checked."""
    context = get_current_context()
    dag_run = context["dag_run"]
    params = context["params"]
    run_type = getattr(dag_run.run_type, "value", str(dag_run.run_type))
    dry_run = params.get("dry_run")
    if dry_run is None:
        dry_run = run_type == "backfill"  # nobody wants thirty days of old batches dialed by a backfill
    batch_size = int(params.get("batch_size") or campaign.batch_size)
    segments = math.ceil(batch_size / campaign.segment_size)
    if segments > max_segments_per_run():
        raise ConfigError(
            f"Param batch_size={batch_size} gives {segments} segments of {campaign.segment_size}; a run may "
            f"map at most {max_segments_per_run()} (Airflow's max_map_length)"
        )
    interval_end = (
        context.get("data_interval_end") or context.get("logical_date") or getattr(dag_run, "run_after", None)
    )
    return RunInfo(
        run_id=context["run_id"],
        run_type=run_type,
        dry_run=bool(dry_run),
        batch_size=batch_size,
        data_interval_start=_as_utc(context.get("data_interval_start")),
        data_interval_end=_as_utc(interval_end) or datetime.now(UTC),
        started_at=_as_utc(getattr(dag_run, "start_date", None)),
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
