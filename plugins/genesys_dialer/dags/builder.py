"""Build one Airflow DAG per campaign config entry. The DAG file only loads the config and calls this."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from types import ModuleType
from typing import Any, TypeVar

from airflow.sdk import DAG, Param, TriggerRule, get_current_context, task

from genesys_dialer.config import BATCH_SIZE_MAX, CampaignConfig, InvalidCampaign, max_segments_per_run
from genesys_dialer.dags.run import DRY_RUN_LABELS, DRY_RUN_VALUES, RunMode, run_info, task_try
from genesys_dialer.genesys.errors import GenesysCircuitOpenError
from genesys_dialer.genesys.retry import RETRY_POLICY

T = TypeVar("T")

DOC_MD = """
### Genesys Cloud predictive feed: `{key}`

Campaign `{campaign_id}`. Every run first withdraws delivered contacts that opted out since
(`withdraw_opt_outs`: removed from the contact list, numbers added to the DNC list when configured), then
claims the next batch in the `dispatch_ledger` (created before the run's interval end, never claimed for this
campaign; contacts that may not be called, e.g. suppressed, their number suppressed or in `dnc_numbers`,
invalid, are recorded as skipped with the reason), syncs the campaign's outcomes from Genesys analytics
(`sync_outcomes`, source `{source}`), computes the dial ratio from them over the {history_days} days ending at
the interval end (strategy `{strategy}`), PATCHes the campaign's pacing and reads back what Genesys kept, and
upserts the batch into the campaign's contact list, one mapped `create_segment` per segment of at most
{segment_size} contacts. See docs/compliance.md and docs/pacing.md.

* **Params**: `batch_size` (default {batch_size}); `dry_run`: `dry` computes and logs everything and claims
  and sends nothing, `live` sends, `auto` (default) is dry for backfills and catch-up runs, live otherwise. In
  a dry run `create_segment` and `apply_pacing` end *skipped*, and the report's first line says DRY RUN.
* **Pacing** is applied only by a run of the latest interval (ending within one schedule period of now);
  older runs record it and report "not applied: old interval".
* **Re-running** a run (clear it) re-sends only that run's own undelivered contacts, never a new batch.
* **Report**: the `summarize` task's log (its label says DRY RUN or live, and the outcome), and the `run_log`
  table.
"""

# The JSON Schema dialect of the Params. Airflow checks a Param's schema against its dialect's meta-schema each
# time it resolves the Param (as the DAG takes it, and in each task's run): draft 7's meta-schema costs a third
# of the default dialect's (2020-12). type, enum, minimum and maximum mean the same in both.
PARAM_DIALECT = {"$schema": "http://json-schema.org/draft-07/schema#"}


def dry_run_schema() -> dict[str, Any]:
    """Three named choices in the trigger form; old confs' true / false / null still validate (and are listed
    last, labelled as the old spellings), so {"dry_run": false} keeps meaning "live".

    No "type": the enum alone admits exactly these six values (JSON Schema tells true from 1), and the trigger
    form infers "string" from the default, so it still shows a dropdown that may be left empty. A type list is
    the costliest part of checking this schema against its meta-schema (2.5 times the rest).
    """
    return {**PARAM_DIALECT, "enum": [*DRY_RUN_VALUES, True, False, None], "values_display": dict(DRY_RUN_LABELS),
            "title": "Dry run"}


def batch_size_schema(maximum: int) -> dict[str, Any]:
    return {**PARAM_DIALECT, "type": "integer", "minimum": 1, "maximum": maximum}


CONFIG_ERROR_DOC_MD = """
### Configuration error

This DAG stands in for campaign entry {where} of the campaign config file, which is invalid:

    {message}

It claims and sends nothing; each run fails at once with this message. Fix the entry in the config file: the
campaign's own DAG comes back at the next parse.
"""


def _tasks() -> ModuleType:
    """The task bodies, imported when a task runs: the dag-processor parses this file every few seconds, and
    the tasks' imports (numpy, requests, phonenumbers) would cost it about 120 ms each time."""
    from genesys_dialer.dags import tasks

    return tasks


def _waiting_out_the_breaker(campaign: CampaignConfig, body: Callable[[], T]) -> T:
    """Run a task body that talks to Genesys; while the shared breaker is open, reschedule instead of failing.

    A rescheduled task keeps its try number and frees its worker and pool slot (docs/resilience.md).
    """
    try:
        return body()
    except GenesysCircuitOpenError as err:
        from airflow.sdk.exceptions import AirflowRescheduleException

        context = get_current_context()
        try:
            waiting_since = context["ti"].get_first_reschedule_date(context)
        except Exception:  # no supervisor to ask (dag.test without one): count from now
            waiting_since = None
        when = _tasks().breaker_reschedule(campaign, err, waiting_since)
        if when is None:
            raise
        raise AirflowRescheduleException(when) from None


def segment_display_label(segment: dict[str, Any]) -> str:
    """How a segment's task instance is labelled in the UI: its label and its size."""
    return f"{segment['label']} ({int(segment['contacts']):,} contacts)"


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
            strategy=campaign.ratio_strategy, batch_size=campaign.batch_size,
            segment_size=(f"{campaign.segment_size_for(campaign.batch_size)} (auto: sized from the batch, "
                          f"{campaign.pool_slots} pool slots and {len(campaign.sending_conn_ids)} connection(s))"
                          if campaign.auto_segments else campaign.segment_size),
        ),
        default_args={
            "owner": campaign.owner,
            "retries": campaign.retries,
            "retry_delay": timedelta(seconds=campaign.retry_delay_seconds),
            "retry_exponential_backoff": 2.0,
            "max_retry_delay": timedelta(minutes=10),
            "retry_policy": RETRY_POLICY,
        },
    ) as dag:

        # multiple_outputs=False everywhere: a task annotated "-> dict" would otherwise push one XCom row per key
        # besides the whole dict (Airflow infers multiple_outputs from the annotation); nothing pulls the keys.
        @task(multiple_outputs=False)
        def resolve_campaign() -> dict[str, Any]:
            return _waiting_out_the_breaker(
                campaign, lambda: _tasks().resolve_campaign(campaign, run_info(campaign), task_try())
            )

        @task(pool=campaign.pool, multiple_outputs=False)
        def withdraw_opt_outs(resolved: dict[str, Any]) -> dict[str, Any]:
            return _waiting_out_the_breaker(
                campaign, lambda: _tasks().withdraw_opt_outs(campaign, run_info(campaign), task_try(), resolved)
            )

        @task
        def fetch_contact_batch(resolved: dict[str, Any]) -> list[dict[str, Any]]:
            mode = RunMode.from_xcom(resolved["mode"])
            segments, claim = _tasks().fetch_contact_batch(campaign, run_info(campaign), mode)
            get_current_context()["ti"].xcom_push(key="claim", value=claim)
            return segments

        @task(pool=campaign.pool, multiple_outputs=False)
        def sync_outcomes() -> dict[str, Any]:
            return _tasks().sync_outcomes(campaign, run_info(campaign), task_try())

        # Runs when sync_outcomes failed too: stale outcomes make it pace progressive (fail closed) instead of
        # leaving the campaign on the last, possibly aggressive, pacing.
        @task(trigger_rule=TriggerRule.ALL_DONE, multiple_outputs=False)
        def compute_dial_ratio() -> dict[str, Any]:
            ti = get_current_context()["ti"]
            resolved = ti.xcom_pull(task_ids="resolve_campaign")
            if resolved is None:
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException("resolve_campaign did not finish: no pacing decided")
            synced = ti.xcom_pull(task_ids="sync_outcomes")
            return _tasks().compute_dial_ratio(campaign, run_info(campaign), resolved, synced)

        @task(pool=campaign.pool, multiple_outputs=False)
        def apply_pacing(ratio: dict[str, Any]) -> dict[str, Any]:
            return _waiting_out_the_breaker(
                campaign, lambda: _tasks().apply_pacing(campaign, run_info(campaign), task_try(), ratio)
            )

        # Labelled in the UI with the segment's label and size, e.g. "20261130T1821-s002 (250,000 contacts)".
        @task(pool=campaign.pool, map_index_template="{{ segment_label }}", multiple_outputs=False)
        def create_segment(segment: dict[str, Any], resolved: dict[str, Any]) -> dict[str, Any]:
            context = get_current_context()
            context["segment_label"] = segment_display_label(segment)  # type: ignore[typeddict-unknown-key]
            result = _waiting_out_the_breaker(
                campaign,
                lambda: _tasks().create_segment(campaign, run_info(campaign), task_try(), resolved, segment),
            )
            return {**result, "try_number": context["ti"].try_number,
                    "reschedules": int(context.get("task_reschedule_count") or 0)}

        # The label shown for the task instance (the run's task list, its details): DRY RUN or live, and the
        # outcome. (Airflow 3.3 gives a task no way to set its run's note, which the grid would show.)
        @task(trigger_rule=TriggerRule.ALL_DONE, retries=0, map_index_template="{{ run_label }}",
              multiple_outputs=False)
        def summarize() -> dict[str, Any]:
            context = get_current_context()
            ti = context["ti"]
            run = run_info(campaign)
            resolved, claim = ti.xcom_pull(task_ids="resolve_campaign"), ti.xcom_pull(
                task_ids="fetch_contact_batch", key="claim")
            dry = _tasks().run_mode(campaign, run, resolved=resolved, claim=claim).dry_run
            context["run_label"] = "DRY RUN" if dry else "live"  # type: ignore[typeddict-unknown-key]
            report = _tasks().summarize(
                campaign,
                run,
                resolved=resolved,
                claim=claim,
                segments=ti.xcom_pull(task_ids="fetch_contact_batch") or [],
                segment_results=[r for r in ti.xcom_pull(task_ids=["create_segment"]) if r],
                ratio=ti.xcom_pull(task_ids="compute_dial_ratio"),
                pacing_result=ti.xcom_pull(task_ids="apply_pacing"),
                withdrawal_result=ti.xcom_pull(task_ids="withdraw_opt_outs"),
                synced=ti.xcom_pull(task_ids="sync_outcomes"),
            )
            context["run_label"] = (  # type: ignore[typeddict-unknown-key]
                f"{'DRY RUN' if report.dry_run else 'live'}: {report.outcome}")
            if report.outcome in ("failed", "partial"):
                from airflow.sdk.exceptions import AirflowFailException

                if report.dry_run:
                    raise AirflowFailException(
                        "dry run failed: the same live run would have failed before sending; see the report above")
                pacing = "applied" if report.pacing_applied else f"not applied: {report.pacing_not_applied}"
                raise AirflowFailException(
                    f"run {report.outcome}: {report.ledger['pending']} contacts not yet sent, "
                    f"{report.segments_succeeded}/{report.segments_total} segments succeeded, pacing {pacing}"
                    + "".join(f"; {cause}" for cause in report.compliance_failures())
                    + "; see the report above"
                )
            return {"outcome": report.outcome, **{k: report.ledger[k] for k in ("claimed", "dispatched", "skipped")}}

        resolved = resolve_campaign()
        # Opt-outs since delivery leave the dialer before anything new is claimed; if they cannot, nothing new
        # is sent (fail closed) and the run is red.
        withdrawn = withdraw_opt_outs(resolved)
        segments = fetch_contact_batch(resolved)
        withdrawn >> segments
        synced = sync_outcomes()
        resolved >> synced
        ratio = compute_dial_ratio()
        synced >> ratio
        pacing_done = apply_pacing(ratio)
        created = create_segment.partial(resolved=resolved).expand(segment=segments)
        [pacing_done, created] >> summarize()
    # The Params are the DAG's only, attached once its tasks exist. Given to DAG(), Airflow deep-copies them into
    # every task and, serializing, resolves each copy against its schema several times: over half of the
    # parse. A task reads them from its DAG anyway (the run's params are the DAG's, then the task's own, then
    # the run's conf), and the trigger form and conf validation use the DAG's.
    dag.params = campaign_params(campaign)
    return dag


def campaign_params(campaign: CampaignConfig) -> dict[str, Param]:
    """The trigger form's fields: how many contacts to claim, and whether the run sends."""
    return {
        "batch_size": Param(
            campaign.batch_size, description="Contacts to claim in this run.", schema=batch_size_schema(
                BATCH_SIZE_MAX if campaign.auto_segments
                else min(BATCH_SIZE_MAX, int(campaign.segment_size) * max_segments_per_run())
            ),
        ),
        "dry_run": Param(
            "auto", description="auto: dry for backfills and catch-up runs, live otherwise. dry: compute and "
            "log everything, claim and send nothing. live: claim and send.", schema=dry_run_schema(),
        ),
    }


def build_config_error_dag(entry: InvalidCampaign) -> DAG:
    """A DAG in place of an invalid campaign entry: listed as "CONFIG ERROR" under the campaign's dag_id, and
    every run fails at once with the config error (file, campaign, field). It claims and sends nothing.

    It keeps the default schedule, so a campaign DAG that was running turns red instead of silently stopping.
    """
    message = str(entry.error)
    with DAG(
        dag_id=entry.dag_id,
        dag_display_name=f"CONFIG ERROR: {entry.key or entry.dag_id}",
        description=message[:1000],
        schedule=CampaignConfig.model_fields["schedule"].default,
        start_date=CampaignConfig.model_fields["start_date"].default,
        catchup=False,
        max_active_runs=1,
        tags=["genesys", "config-error"],
        doc_md=CONFIG_ERROR_DOC_MD.format(where=f"campaigns[{entry.index}]", message=message),
    ) as dag:

        @task(retries=0)
        def config_error() -> None:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(message)

        config_error()
    return dag
