"""Build one Airflow DAG per campaign config entry. The DAG file only loads the config and calls this."""

from __future__ import annotations

from datetime import timedelta
from types import ModuleType
from typing import Any

from airflow.sdk import DAG, Param, TriggerRule, get_current_context, task

from genesys_dialer.config import CampaignConfig, max_segments_per_run
from genesys_dialer.dags.run import run_info
from genesys_dialer.genesys.retry import RETRY_POLICY

DOC_MD = """
### Genesys Cloud predictive feed: `{key}`

Campaign `{campaign_id}`. Every run claims the next batch of eligible contacts (active, not
do-not-call, a valid number, never sent to this campaign, created before the run's interval end) in the
`dispatch_ledger`, syncs the campaign's outcomes from Genesys analytics (`sync_outcomes`, source
`{source}`), computes the dial ratio from them over the {history_days} days ending at the interval end
(strategy `{strategy}`), PATCHes the campaign's pacing and reads back what Genesys kept, and upserts the batch
into the campaign's contact list, one mapped `create_segment` per segment of at most {segment_size} contacts.

* **Params**: `batch_size` (default {batch_size}); `dry_run` (compute and log everything, send nothing;
  default: true for backfills, false otherwise).
* **Re-running** a run (clear it) re-sends only that run's own undelivered contacts, never a new batch.
* **Report**: the `summarize` task's log, and the `run_log` table.
"""


def _tasks() -> ModuleType:
    """The task bodies, imported when a task runs: the dag-processor parses this file every few seconds, and
    the tasks' imports (numpy, requests, phonenumbers) would cost it about 120 ms each time."""
    from genesys_dialer.dags import tasks

    return tasks


def build_campaign_dag(campaign: CampaignConfig) -> DAG:
    with DAG(
        dag_id=campaign.dag_id,
        description=campaign.description or f"Feed Genesys Cloud campaign {campaign.campaign_id}",
        schedule=campaign.schedule,
        start_date=campaign.start_date,
        catchup=campaign.catchup,
        max_active_runs=1,
        tags=["genesys", "outbound", campaign.key, *campaign.tags],
        doc_md=DOC_MD.format(
            key=campaign.key, campaign_id=campaign.campaign_id, history_days=campaign.history_days,
            source=campaign.pacing_source,
            strategy=campaign.ratio_strategy, segment_size=campaign.segment_size, batch_size=campaign.batch_size,
        ),
        params={
            "batch_size": Param(
                campaign.batch_size, type="integer", minimum=1,
                maximum=campaign.segment_size * max_segments_per_run(),
                description="Contacts to claim in this run.",
            ),
            "dry_run": Param(
                None, type=["null", "boolean"],
                description="Compute and log everything, send nothing. Empty: dry for backfills only.",
            ),
        },
        default_args={
            "owner": campaign.owner,
            "retries": campaign.retries,
            "retry_delay": timedelta(seconds=campaign.retry_delay_seconds),
            "retry_exponential_backoff": 2.0,
            "max_retry_delay": timedelta(minutes=10),
            "retry_policy": RETRY_POLICY,
        },
    ) as dag:

        @task
        def resolve_campaign() -> dict[str, Any]:
            return _tasks().resolve_campaign(campaign, run_info(campaign))

        @task
        def fetch_contact_batch() -> list[dict[str, Any]]:
            segments, claim = _tasks().fetch_contact_batch(campaign, run_info(campaign))
            get_current_context()["ti"].xcom_push(key="claim", value=claim)
            return segments

        @task(pool=campaign.pool)
        def sync_outcomes() -> dict[str, Any]:
            return _tasks().sync_outcomes(campaign, run_info(campaign))

        # Runs when sync_outcomes failed too: stale outcomes make it pace progressive (fail closed) instead of
        # leaving the campaign on the last, possibly aggressive, pacing.
        @task(trigger_rule=TriggerRule.ALL_DONE)
        def compute_dial_ratio() -> dict[str, Any]:
            ti = get_current_context()["ti"]
            resolved = ti.xcom_pull(task_ids="resolve_campaign")
            if resolved is None:
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException("resolve_campaign did not finish: no pacing decided")
            synced = ti.xcom_pull(task_ids="sync_outcomes")
            return _tasks().compute_dial_ratio(campaign, run_info(campaign), resolved, synced)

        @task(pool=campaign.pool)
        def apply_pacing(ratio: dict[str, Any]) -> dict[str, Any]:
            return _tasks().apply_pacing(campaign, run_info(campaign), ratio)

        @task(pool=campaign.pool, map_index_template="{{ segment_label }}")
        def create_segment(segment: dict[str, Any], resolved: dict[str, Any]) -> dict[str, Any]:
            context = get_current_context()
            context["segment_label"] = segment["label"]  # type: ignore[typeddict-unknown-key]
            result = _tasks().create_segment(campaign, run_info(campaign), resolved, segment)
            return {**result, "try_number": context["ti"].try_number}

        @task(trigger_rule=TriggerRule.ALL_DONE, retries=0)
        def summarize() -> dict[str, Any]:
            ti = get_current_context()["ti"]
            report = _tasks().summarize(
                campaign,
                run_info(campaign),
                resolved=ti.xcom_pull(task_ids="resolve_campaign"),
                claim=ti.xcom_pull(task_ids="fetch_contact_batch", key="claim"),
                segments=ti.xcom_pull(task_ids="fetch_contact_batch") or [],
                segment_results=[r for r in ti.xcom_pull(task_ids=["create_segment"]) if r],
                ratio=ti.xcom_pull(task_ids="compute_dial_ratio"),
                pacing_result=ti.xcom_pull(task_ids="apply_pacing"),
                synced=ti.xcom_pull(task_ids="sync_outcomes"),
            )
            if report.outcome in ("failed", "partial"):
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException(
                    f"run {report.outcome}: {report.ledger['pending']} contacts not yet sent, "
                    f"{report.segments_succeeded}/{report.segments_total} segments succeeded; see the report above"
                )
            return {"outcome": report.outcome, **{k: report.ledger[k] for k in ("claimed", "dispatched", "skipped")}}

        resolved = resolve_campaign()
        segments = fetch_contact_batch()
        resolved >> segments
        synced = sync_outcomes()
        resolved >> synced
        ratio = compute_dial_ratio()
        synced >> ratio
        pacing_done = apply_pacing(ratio)
        created = create_segment.partial(resolved=resolved).expand(segment=segments)
        [pacing_done, created] >> summarize()
    return dag
