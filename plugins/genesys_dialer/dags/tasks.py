"""The work of each task of a campaign DAG. The DAG builder wires these; they hold no Airflow wiring.

Every function takes the campaign config and a :class:`RunInfo` (what the run context says), talks to
PostgreSQL and Genesys through the hooks, and returns small JSON-able dicts: XComs carry ids, counts and
decisions, never contact rows or phone numbers.

The run's mode (dry or live, :class:`RunMode`) is decided once, by resolve_campaign, and travels in the XComs,
so no two tasks of a run can disagree about it. In a dry run the sending tasks (create_segment, apply_pacing)
end *skipped*: the grid shows at a glance that nothing was sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from genesys_dialer import metrics
from genesys_dialer.config import CampaignConfig
from genesys_dialer.dags.report import RunReport
from genesys_dialer.dags.run import RunInfo, RunMode, decide_mode, schedule_period
from genesys_dialer.genesys.errors import (
    GenesysApiError,
    GenesysCircuitOpenError,
    GenesysClientError,
    GenesysNotFoundError,
    GenesysResponseError,
)
from genesys_dialer.genesys.hook import GenesysHook
from genesys_dialer.genesys.retry import will_retry
from genesys_dialer.ledger import claims as contacts_mod
from genesys_dialer.ledger.sql import load_sql, run_sql
from genesys_dialer.pacing import strategies as pacing

log = logging.getLogger(__name__)

# Why these query flags (see README, "Loading contacts"): a new batch joins the end of the dialing
# queue (priority=false) so it does not jump ahead of contacts already waiting; a re-sent contact keeps
# the dialer's own history of it (clearSystemData=false); and contacts are queued for dialing
# (doNotQueue=false), which is the point of the feed. Only undelivered contacts are ever re-sent.
CONTACT_POST_FLAGS = {"priority": False, "clear_system_data": False, "do_not_queue": False}


@contextmanager
def dialer_db(campaign: CampaignConfig) -> Iterator[Any]:
    """A connection to the campaign's contacts database, closed when the block ends."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    with closing(PostgresHook(postgres_conn_id=campaign.postgres_conn_id).get_conn()) as conn:
        yield conn


def genesys_hook(campaign: CampaignConfig) -> GenesysHook:
    return GenesysHook(campaign.genesys_conn_id)


def skip(message: str) -> None:
    """End the task as skipped (nothing sent), saying why in its log."""
    from airflow.sdk.exceptions import AirflowSkipException

    log.info("%s", message)
    raise AirflowSkipException(message)


def _now() -> datetime:
    return datetime.now(UTC)


# -- resolve_campaign --------------------------------------------------------------------------------
def resolve_campaign(campaign: CampaignConfig, run: RunInfo) -> dict[str, Any]:
    """Decide the run's mode; read the campaign and its contact list from Genesys before anything is claimed.

    An unknown campaign fails here, naming it and Genesys' contextId, with nothing claimed: in a dry run too,
    which fails wherever the same live run would fail before sending.
    """
    mode = decide_mode(campaign, run, _now())
    if mode.dry_run and run.requested == "auto" and _run_has_claim(campaign, run):
        # An old scheduled run cleared after a live try: it re-sends what it claimed then, and nothing else.
        mode = RunMode(False, "a cleared run re-sending its own undelivered contacts and claiming nothing new "
                              f"(without a claim it would be dry: {mode.reason})")
    log.info("%s (%s)", "DRY RUN: nothing will be claimed or sent" if mode.dry_run else "Live run", mode.reason)
    hook = genesys_hook(campaign)
    try:
        remote = hook.get_campaign(campaign.campaign_id)
    except GenesysNotFoundError as err:
        raise _renamed(err, f"Genesys Cloud has no outbound campaign {campaign.campaign_id!r} (config key "
                            f"{campaign.key!r}); check campaign_id in the campaign config") from None
    contact_list = remote.get("contactList") or {}
    list_id = campaign.contact_list_id or contact_list.get("id")
    if not list_id:
        raise GenesysResponseError(
            f"campaign {campaign.campaign_id!r} has no contact list and the config names none"
        )
    try:
        remote_list = hook.get_contact_list(list_id)
    except GenesysNotFoundError as err:
        raise _renamed(err, f"Genesys Cloud has no contact list {list_id!r} (campaign {campaign.key!r})") from None
    columns = set(remote_list.get("columnNames") or [])
    missing = [c for c in (campaign.phone_column, campaign.segment_column) if c not in columns]
    if missing:
        raise GenesysClientError(
            f"contact list {list_id!r} has no column(s) {missing} (has {sorted(columns)}); add them in "
            f"Genesys or set phone_column / segment_column for campaign {campaign.key!r}"
        )
    phone_columns = {p.get("columnName") for p in remote_list.get("phoneColumns") or []}
    warnings = _campaign_warnings(campaign, remote, phone_columns)
    for warning in warnings:
        log.warning("Campaign %s: %s", campaign.key, warning)
    log.info(
        "Campaign %s (%s): dialingMode=%s status=%s abandonRate=%s contact list %s",
        campaign.key, campaign.campaign_id, remote.get("dialingMode"), remote.get("campaignStatus"),
        remote.get("abandonRate"), list_id,
    )
    return {
        "contact_list_id": list_id,
        "dialing_mode": remote.get("dialingMode"),
        "campaign_status": remote.get("campaignStatus"),
        "abandon_rate": remote.get("abandonRate"),
        "warnings": warnings,
        "requests": hook.stats.as_dict(),
        "mode": mode.to_xcom(),
    }


def _run_has_claim(campaign: CampaignConfig, run: RunInfo) -> bool:
    with dialer_db(campaign) as conn, conn.cursor() as cur:
        cur.execute(load_sql("run_has_claim"), {"campaign_id": campaign.campaign_id, "run_id": run.run_id})
        (found,) = cur.fetchone()
        conn.commit()
    return bool(found)


def _renamed(err: GenesysNotFoundError, message: str) -> GenesysNotFoundError:
    """The same 404, saying what the user configured that Genesys does not know (and its contextId)."""
    return GenesysNotFoundError(message, status=err.status, code=err.code, context_id=err.context_id)


def _campaign_warnings(campaign: CampaignConfig, remote: dict[str, Any], phone_columns: set[Any]) -> list[str]:
    warnings = []
    if campaign.phone_column not in phone_columns:
        warnings.append(f"column {campaign.phone_column!r} is not one of the list's phone columns")
    mode = remote.get("dialingMode")
    if mode not in ("predictive", "power", "progressive"):
        warnings.append(f"dialingMode is {mode!r}: maxCallsPerAgent pacing only matters in power/predictive")
    if remote.get("alwaysRunning") is False:
        warnings.append("alwaysRunning is false: the campaign stops when its list is exhausted")
    no_answer = remote.get("noAnswerTimeout")
    if isinstance(no_answer, (int, float)) and no_answer < 15:
        warnings.append(f"noAnswerTimeout is {no_answer} s; the FCC ring rule needs at least 15 s")
    return warnings


# -- fetch_contact_batch -----------------------------------------------------------------------------
def fetch_contact_batch(
    campaign: CampaignConfig, run: RunInfo, mode: RunMode
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Claim the run's batch in the ledger (or find its earlier claim) and describe its segments."""
    request = contacts_mod.ClaimRequest(
        campaign_id=campaign.campaign_id,
        campaign_key=campaign.key,
        run_id=run.run_id,
        batch_size=run.batch_size,
        segment_size=campaign.segment_size,
        created_before=run.data_interval_end,
        lease_minutes=campaign.claim_lease_minutes,
        contact_id_prefix=campaign.contact_id_prefix,
        phone_region=campaign.phone_region,
        label_prefix=run.label_prefix,
    )
    with dialer_db(campaign) as conn:
        result = contacts_mod.claim_batch(conn, request, dry_run=mode.dry_run)
    claim = {
        "contacts": result.contacts,
        "claimed_now": result.claimed_now,
        "adopted": result.adopted,
        "reused": result.reused,
        "segments": len(result.segments),
        "dry_run": mode.dry_run,
        "mode": mode.to_xcom(),
    }
    if result.reused:
        log.info(
            "Run %s already claimed %d contacts in %d segments: re-dispatching what is undelivered (%d)",
            run.run_id, result.contacts, len(result.segments), sum(s.pending for s in result.segments),
        )
    else:
        verb = "Would claim (dry run, rolled back)" if mode.dry_run else "Claimed"
        log.info(
            "%s %d contacts (%d adopted from earlier runs whose claim lease expired) created before %s, "
            "in %d segments of at most %d",
            verb, result.contacts, result.adopted, run.data_interval_end.isoformat(), len(result.segments),
            campaign.segment_size,
        )
        if not mode.dry_run:
            metrics.contacts(campaign.campaign_id, "claimed", result.contacts)
    return [{**s.to_xcom(), "dry_run": mode.dry_run} for s in result.segments], claim


# -- compute_dial_ratio ------------------------------------------------------------------------------
def compute_dial_ratio(campaign: CampaignConfig, run: RunInfo, resolved: dict[str, Any]) -> dict[str, Any]:
    """Estimate the answer rate over the window ending at the run's interval end, and decide pacing."""
    mode = RunMode.from_xcom(resolved["mode"])
    window_end = run.data_interval_end
    window_start = window_end - timedelta(days=campaign.history_days)
    params = {"campaign_id": campaign.campaign_id, "window_end": window_end, "history_days": campaign.history_days}
    with dialer_db(campaign) as conn:
        with conn.cursor() as cur:
            cur.execute(load_sql("answer_history"), params)
            buckets = tuple(pacing.HistoryBucket(*map(int, row)) for row in cur.fetchall())
            cur.execute(load_sql("abandon_history"), params)
            live_answers, abandons = cur.fetchone()
        history = pacing.AnswerHistory(buckets)
        realized = pacing.RealizedAbandons(int(live_answers or 0), int(abandons or 0))
        plan = pacing.plan_pacing(
            history, campaign, current_abandon_rate=resolved.get("abandon_rate"), realized=realized
        )
        estimate, decision = plan.estimate, plan.decision
        details = {**decision.details, "notes": list(decision.notes), "realized_abandon_percent": realized.rate_percent}
        row = {
            "campaign_id": campaign.campaign_id, "run_id": run.run_id, "campaign_key": campaign.key,
            "window_start": window_start, "window_end": window_end,
            "attempts": estimate.attempts, "answers": estimate.answers, "answer_rate": estimate.rate,
            "answer_rate_lower": estimate.lower, "answer_rate_upper": estimate.upper,
            "pacing_answer_rate": estimate.pacing_rate, "prior_weight": estimate.prior_weight,
            "estimate_source": estimate.source, "strategy": decision.strategy, "dial_ratio": decision.ratio,
            "max_calls_per_agent": decision.max_calls_per_agent,
            "outbound_line_count": decision.outbound_line_count, "abandon_rate": decision.abandon_rate,
            "details": json.dumps(details, default=str),
            "dry_run": mode.dry_run,
        }
        run_sql(conn, "record_pacing", row)
    log.info(
        "Answer rate over %s .. %s: %d answers / %d attempts -> estimate %.4f (bounds %.4f..%.4f, %s), "
        "pacing on %.4f",
        window_start.isoformat(), window_end.isoformat(), estimate.answers, estimate.attempts, estimate.rate,
        estimate.lower, estimate.upper, estimate.source, estimate.pacing_rate,
    )
    log.info(
        "Strategy %s: dial ratio %.3f -> maxCallsPerAgent=%g outboundLineCount=%d abandonRate=%g%s",
        decision.strategy, decision.ratio, decision.max_calls_per_agent, decision.outbound_line_count,
        decision.abandon_rate, f" ({'; '.join(decision.notes)})" if decision.notes else "",
    )
    if not mode.dry_run and run.is_latest_interval(_now()):
        # The gauges are "the campaign's current pacing": a dry run's or an old interval's is not.
        metrics.pacing(
            campaign.campaign_id, estimate.pacing_rate, decision.ratio, decision.max_calls_per_agent,
            decision.outbound_line_count,
        )
    return {
        "estimate": asdict(estimate),
        "decision": {**asdict(decision), "notes": list(decision.notes)},
        "patch": decision.patch_body(),
        "window_start": window_start.isoformat(),
        "window_end": window_end.isoformat(),
        "realized_abandon_percent": realized.rate_percent,
        "mode": mode.to_xcom(),
    }


# -- apply_pacing ------------------------------------------------------------------------------------
def apply_pacing(campaign: CampaignConfig, run: RunInfo, ratio: dict[str, Any]) -> dict[str, Any]:
    """PATCH the campaign's pacing once per run, if the run is live and of the latest interval.

    A dry run ends skipped. An older interval's run (a backfill, a catch-up run, a manual run for a past date, a
    cleared old run) has recorded its pacing; sending it would override the pacing of the campaign's current
    interval with an old one, so it says so and sends nothing.
    """
    body = ratio["patch"]
    if RunMode.from_xcom(ratio["mode"]).dry_run:
        skip(f"Dry run: pacing not applied; a live run would PATCH campaign {campaign.campaign_id} with {body}")
    now = _now()
    if not run.is_latest_interval(now):
        reason = old_interval_reason(run, now)
        log.info("Pacing not applied: %s. Computed and recorded: %s", reason, body)
        return {"applied": False, "not_applied": reason, "patch": body, "requests": {}}
    hook = genesys_hook(campaign)
    hook.patch_campaign(campaign.campaign_id, body)
    with dialer_db(campaign) as conn:
        run_sql(conn, "mark_pacing_applied", {"campaign_id": campaign.campaign_id, "run_id": run.run_id})
    log.info("Applied pacing to campaign %s: %s", campaign.campaign_id, body)
    return {"applied": True, "patch": body, "requests": hook.stats.as_dict()}


def old_interval_reason(run: RunInfo, now: datetime) -> str:
    minutes = run.interval_age(now).total_seconds() / 60
    return (f"old interval (it ended {minutes:.0f} min ago, more than one schedule period of "
            f"{run.period.total_seconds() / 60:.0f} min; only a run of the latest interval paces the campaign)")


# -- create_segment ----------------------------------------------------------------------------------
def create_segment(
    campaign: CampaignConfig, run: RunInfo, resolved: dict[str, Any], segment: dict[str, Any]
) -> dict[str, Any]:
    """Upsert one segment's undelivered contacts into the contact list, 1 request per N contacts."""
    index, label = segment["index"], segment["label"]
    if segment["dry_run"]:
        skips = segment.get("would_skip") or {}
        sendable = segment["contacts"] - sum(skips.values())
        requests_needed = -(-sendable // campaign.contacts_per_request)
        skip(f"Dry run: segment {label} would send {sendable} contacts in {requests_needed} requests to contact "
             f"list {resolved['contact_list_id']}; would skip {skips or 'none'}")

    if not segment["pending"]:
        # A re-run of a run whose segment was delivered: nothing to send, no connection to open.
        log.info("Segment %s: all %d contacts already delivered or skipped; nothing to send", label,
                 segment["contacts"])
        return {"index": index, "label": label, "sent": 0, "skipped": {}, "requests": {}, "dry_run": False}

    hook = genesys_hook(campaign)
    sent = 0
    skipped: dict[str, int] = {}
    buffer: list[tuple[int, dict[str, Any]]] = []
    with dialer_db(campaign) as conn:

        def flush() -> None:
            nonlocal sent
            if not buffer:
                return
            ids = [contact_id for contact_id, _ in buffer]
            try:
                stored = hook.add_contacts(resolved["contact_list_id"], [c for _, c in buffer], **CONTACT_POST_FLAGS)
            except GenesysApiError as err:
                contacts_mod.mark(
                    conn, "mark_failed", campaign_id=campaign.campaign_id, run_id=run.run_id, contact_ids=ids,
                    error=str(err)[:500],
                )
                metrics.contacts(campaign.campaign_id, "failed", len(ids))
                raise
            if len(stored) != len(ids):
                log.warning("Genesys returned %d contacts for %d sent", len(stored), len(ids))
            marked = contacts_mod.mark(
                conn, "mark_dispatched", campaign_id=campaign.campaign_id, run_id=run.run_id, contact_ids=ids
            )
            if marked != len(ids):
                # Another run adopted part of this claim (its lease expired while this task still ran): the
                # contacts were delivered here, and the adopting run upserts the same ids again.
                log.warning(
                    "Segment %s: %d of %d delivered contacts are no longer claimed by this run", label,
                    len(ids) - marked, len(ids),
                )
            # Counted as the ledger changes, so a segment that fails half-way still reports what it delivered.
            metrics.contacts(campaign.campaign_id, "dispatched", len(ids))
            sent += len(ids)
            buffer.clear()

        try:
            pages = contacts_mod.iter_segment_pages(
                conn, campaign_id=campaign.campaign_id, run_id=run.run_id, segment_index=index,
                page_size=campaign.contacts_per_request,
            )
            for page in pages:
                skips_in_page: dict[str, list[int]] = {}
                for pending in page:
                    e164, reason = (None, contacts_mod.SKIP_NO_LONGER_ELIGIBLE)
                    if pending.eligible:
                        e164, reason = contacts_mod.normalize_phone(pending.phone_number, campaign.phone_region)
                    if reason:
                        skips_in_page.setdefault(reason, []).append(pending.contact_id)
                        continue
                    buffer.append((pending.contact_id, contacts_mod.genesys_contact(
                        pending, e164, contact_list_id=resolved["contact_list_id"],
                        phone_column=campaign.phone_column, segment_column=campaign.segment_column, segment=label,
                    )))
                    if len(buffer) >= campaign.contacts_per_request:
                        flush()
                for reason, ids in skips_in_page.items():
                    contacts_mod.mark(
                        conn, "mark_skipped", campaign_id=campaign.campaign_id, run_id=run.run_id,
                        contact_ids=ids, reason=reason,
                    )
                    metrics.contacts(campaign.campaign_id, "skipped", len(ids), reason)
                    skipped[reason] = skipped.get(reason, 0) + len(ids)
            flush()
        except GenesysApiError as err:
            metrics.segment_failed(campaign.campaign_id, err.error_type)
            if will_retry(err, run.try_number, run.max_tries):
                then = (f"are sent by a retry of this task (try {run.try_number + 1} of {run.max_tries + 1}"
                        + (f", in about {err.retry_after:.0f} s" if err.retry_after else "") + ")")
            else:
                then = ("wait: no retry of this task is left for this error; clear the run to send them, or a "
                        f"later run adopts them after claim_lease_minutes ({campaign.claim_lease_minutes})")
            if isinstance(err, GenesysCircuitOpenError):
                # Nothing was sent: the breaker shared by every task of this connection is open. The segment
                # is not dropped: its contacts stay claimed (marked failed = not yet sent).
                log.warning(
                    "Segment %s: circuit breaker open, nothing sent for the current batch (%d contacts sent "
                    "before it opened); the rest stay claimed by this run and %s. %s", label, sent, then, err,
                )
            else:
                log.error(
                    "Segment %s: %d contacts sent before the failure; the rest stay claimed by this run and %s. %s",
                    label, sent, then, err,
                )
            raise

    metrics.segment_created(campaign.campaign_id)
    stats = hook.stats.as_dict()
    log.info(
        "Segment %s: sent %d contacts to contact list %s in %d requests (%d retries); skipped %s",
        label, sent, resolved["contact_list_id"], stats["requests"], stats["retries"], skipped or "none",
    )
    return {"index": index, "label": label, "sent": sent, "skipped": skipped, "requests": stats, "dry_run": False}


# -- summarize ---------------------------------------------------------------------------------------
def summarize(
    campaign: CampaignConfig,
    run: RunInfo,
    *,
    resolved: dict[str, Any] | None,
    claim: dict[str, Any] | None,
    segments: list[dict[str, Any]],
    segment_results: list[dict[str, Any]],
    ratio: dict[str, Any] | None,
    pacing_result: dict[str, Any] | None,
) -> RunReport:
    """Build the run report from the ledger (the truth) and the tasks' XComs; log and record it."""
    mode = run_mode(campaign, run, resolved=resolved, claim=claim)
    with dialer_db(campaign) as conn:
        ledger = contacts_mod.ledger_summary(conn, campaign_id=campaign.campaign_id, run_id=run.run_id)
        finished = datetime.now(UTC)
        report = RunReport.build(
            campaign=campaign, run=run, mode=mode, resolved=resolved, claim=claim, segments=segments,
            segment_results=segment_results, ratio=ratio, pacing_result=pacing_result, ledger=ledger,
            finished_at=finished,
        )
        run_sql(conn, "record_run", report.run_log_row())
    for line in report.lines():
        log.info("%s", line)
    metrics.run_finished(campaign.campaign_id, report.outcome, report.duration_seconds or 0.0)
    period = schedule_period(campaign.schedule, finished)
    if period:
        metrics.schedule_interval(campaign.campaign_id, period.total_seconds())  # the staleness alert's yardstick
    return report


def run_mode(
    campaign: CampaignConfig, run: RunInfo, *, resolved: dict[str, Any] | None, claim: dict[str, Any] | None
) -> RunMode:
    """The mode the run's tasks acted on (resolve_campaign's), else, when resolve_campaign failed before
    deciding, what it would have decided."""
    for source in (claim, resolved):
        if source and source.get("mode"):
            return RunMode.from_xcom(source["mode"])
    return decide_mode(campaign, run, _now())
