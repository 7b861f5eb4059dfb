"""The work of each task of a campaign DAG. The DAG builder wires these; they hold no Airflow wiring.

Every function takes the campaign config and a :class:`RunInfo` (what the run context says), talks to
PostgreSQL and Genesys through the hooks, and returns small JSON-able dicts: XComs carry ids, counts and
decisions, never contact rows or phone numbers.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from genesys_dialer import metrics
from genesys_dialer.config import CampaignConfig
from genesys_dialer.dags.report import RunReport
from genesys_dialer.dags.run import RunInfo
from genesys_dialer.genesys.errors import (
    GenesysApiError,
    GenesysCircuitOpenError,
    GenesysClientError,
    GenesysNotFoundError,
    GenesysResponseError,
)
from genesys_dialer.genesys.hook import GenesysHook
from genesys_dialer.ledger import claims as contacts_mod
from genesys_dialer.ledger.sql import load_sql, run_sql
from genesys_dialer.pacing import outcomes
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


# -- resolve_campaign --------------------------------------------------------------------------------
def resolve_campaign(campaign: CampaignConfig, run: RunInfo) -> dict[str, Any]:
    """Read the campaign and its contact list from Genesys before anything is claimed.

    An unknown campaign fails here, naming it and Genesys' contextId, with nothing claimed.
    """
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
    no_answer = remote.get("noAnswerTimeout")
    return {
        "contact_list_id": list_id,
        "dialing_mode": remote.get("dialingMode"),
        "campaign_status": remote.get("campaignStatus"),
        "abandon_rate": remote.get("abandonRate"),
        "no_answer_timeout": no_answer if isinstance(no_answer, (int, float)) and no_answer > 0 else None,
        "warnings": warnings,
        "requests": hook.stats.as_dict(),
    }


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
def fetch_contact_batch(campaign: CampaignConfig, run: RunInfo) -> tuple[list[dict[str, Any]], dict[str, Any]]:
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
        result = contacts_mod.claim_batch(conn, request, dry_run=run.dry_run)
    claim = {
        "contacts": result.contacts,
        "claimed_now": result.claimed_now,
        "adopted": result.adopted,
        "reused": result.reused,
        "segments": len(result.segments),
        "dry_run": run.dry_run,
    }
    if result.reused:
        log.info(
            "Run %s already claimed %d contacts in %d segments: re-dispatching what is undelivered (%d)",
            run.run_id, result.contacts, len(result.segments), sum(s.pending for s in result.segments),
        )
    else:
        verb = "Would claim (dry run, rolled back)" if run.dry_run else "Claimed"
        log.info(
            "%s %d contacts (%d adopted from earlier runs whose claim lease expired) created before %s, "
            "in %d segments of at most %d",
            verb, result.contacts, result.adopted, run.data_interval_end.isoformat(), len(result.segments),
            campaign.segment_size,
        )
        if not run.dry_run:
            metrics.contacts(campaign.campaign_id, "claimed", result.contacts)
    return [s.to_xcom() for s in result.segments], claim


# -- sync_outcomes ----------------------------------------------------------------------------------
def sync_outcomes(campaign: CampaignConfig, run: RunInfo) -> dict[str, Any]:
    """Pull the campaign's outcomes from Genesys analytics into ``campaign_outcomes`` (source ``genesys``).

    Every 15-minute bucket of the compliance window (30 days) ending at the run's interval end that is missing
    or not yet settled is pulled, newest first, at most ``outcome_sync_max_requests`` queries of a day each
    (a backfill of the window continues in the next runs); re-pulling a bucket replaces it. A run for an old
    interval pulls that interval's window. Live runs also read the campaign stats (idle agents: staffing).
    """
    if campaign.pacing_source != "genesys":
        log.info("Campaign %s paces from %s: no Genesys outcomes to sync", campaign.key, campaign.pacing_source)
        return {"source": campaign.pacing_source, "synced": False}
    end = outcomes.floor_bucket(run.data_interval_end)
    window_start = end - timedelta(days=max(outcomes.COMPLIANCE_DAYS, campaign.history_days))
    settle = timedelta(minutes=campaign.outcome_settle_minutes)
    hook = genesys_hook(campaign)
    idle: int | None = None
    if run.run_type != "backfill":  # the stats are now's: they say nothing about an old interval
        stats = hook.get_campaign_stats(campaign.campaign_id)
        value = stats.get("idleAgents")
        idle = value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
    pulled = 0
    with dialer_db(campaign) as conn:
        window = {"campaign_id": campaign.campaign_id, "window_start": window_start, "window_end": end}
        with conn.cursor() as cur:
            cur.execute(load_sql("outcome_buckets_known"), window)
            known = {row[0]: row[1] for row in cur.fetchall()}
        ranges = outcomes.sync_ranges(
            window_start, end, known, settle=settle, max_requests=campaign.outcome_sync_max_requests
        )
        for low, high in ranges:
            answer = hook.query_conversation_aggregates(outcomes.aggregates_query(campaign.campaign_id, low, high))
            try:
                buckets = outcomes.parse_aggregates(answer, campaign.campaign_id, low, high)
            except ValueError as err:
                raise GenesysResponseError(
                    f"analytics aggregates for campaign {campaign.campaign_id!r}: {err}",
                    method="POST", endpoint="conversation_aggregates",
                ) from None
            rows = [b.row(campaign.campaign_id, run.data_interval_end) for b in buckets]
            for row in rows:
                if row["interval_end"] == end:
                    row["idle_agents"] = idle
            with conn.cursor() as cur:
                cur.executemany(load_sql("upsert_outcome"), rows)
            conn.commit()  # one range at a time: what was pulled stays pulled if a later query fails
            pulled += len(rows)
            known.update({b.start: run.data_interval_end for b in buckets})
        outstanding = sum(
            (hi - lo) // outcomes.BUCKET for lo, hi in outcomes.sync_ranges(
                window_start, end, known, settle=settle, max_requests=1_000_000)
        )
    log.info(
        "Synced %d 15-minute buckets of Genesys outcomes in %d queries, up to %s; %d buckets of the window still "
        "to pull or settle%s",
        pulled, len(ranges), end.isoformat(), outstanding,
        f"; campaign stats: {idle} idle agents" if idle is not None else "",
    )
    return {
        "source": "genesys", "synced": True, "buckets": pulled, "queries": len(ranges),
        "outstanding_buckets": int(outstanding), "idle_agents": idle, "until": end.isoformat(),
        "requests": hook.stats.as_dict(),
    }


# -- compute_dial_ratio ------------------------------------------------------------------------------
def compute_dial_ratio(
    campaign: CampaignConfig, run: RunInfo, resolved: dict[str, Any], synced: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Estimate the answer rate over the window ending at the run's interval end, and decide pacing.

    The source is the campaign's ``pacing_source``: Genesys outcomes (``campaign_outcomes``, 15-minute buckets,
    with talk and wrap-up times and staffing) or the user's ``dial_history`` (daily buckets, assumed times).
    """
    window_end = run.data_interval_end
    window_start = window_end - timedelta(days=campaign.history_days)
    params = {"campaign_id": campaign.campaign_id, "window_end": window_end, "history_days": campaign.history_days}
    no_answer = resolved.get("no_answer_timeout")
    current = resolved.get("abandon_rate")
    with dialer_db(campaign) as conn:
        with conn.cursor() as cur:
            cur.execute(load_sql("last_applied_pacing"), params)
            last = cur.fetchone()
            if last is not None and isinstance(current, (int, float)) and abs(float(last[0]) - current) < 1e-6:
                current = None  # the campaign's target is the one this pipeline wrote (predictive mode tightens it)
            if campaign.pacing_source == "genesys":
                history, evidence = _genesys_evidence(cur, campaign, params, no_answer)
                if synced is None:
                    evidence = replace(evidence, progressive_reasons=(
                        *evidence.progressive_reasons,
                        "sync_outcomes did not finish: the outcomes may be stale, dialing progressive",
                    ))
            else:
                cur.execute(load_sql("answer_history"), params)
                history = pacing.AnswerHistory(tuple(pacing.HistoryBucket(*map(int, row)) for row in cur.fetchall()))
                cur.execute(load_sql("abandon_history"), params)
                live_answers, abandons, live_24h, abandons_24h = (int(v or 0) for v in cur.fetchone())
                evidence = pacing.PacingEvidence(
                    realized_30d=pacing.RealizedAbandons(live_answers, abandons),
                    realized_24h=pacing.RealizedAbandons(live_24h, abandons_24h),
                    no_answer_timeout=no_answer,
                )
        evidence = replace(evidence, dialing_mode=resolved.get("dialing_mode"))
        plan = pacing.plan_pacing(history, campaign, current_abandon_rate=current, evidence=evidence)
        estimate, decision = plan.estimate, plan.decision
        realized = evidence.realized_30d
        details = {**decision.details, "notes": list(decision.notes), "pacing_source": campaign.pacing_source}
        row = {
            "campaign_id": campaign.campaign_id, "run_id": run.run_id, "campaign_key": campaign.key,
            "window_start": window_start, "window_end": window_end,
            "attempts": estimate.attempts, "answers": estimate.answers, "answer_rate": estimate.rate,
            "answer_rate_lower": estimate.lower, "answer_rate_upper": estimate.upper,
            "pacing_answer_rate": decision.details.get("paced_answer_rate", estimate.pacing_rate),
            "prior_weight": estimate.prior_weight,
            "estimate_source": estimate.source, "strategy": decision.strategy, "dial_ratio": decision.ratio,
            "max_calls_per_agent": decision.max_calls_per_agent,
            "outbound_line_count": decision.outbound_line_count, "abandon_rate": decision.abandon_rate,
            "details": json.dumps(details, default=str),
            "dry_run": run.dry_run,
        }
        run_sql(conn, "record_pacing", row)
    log.info(
        "Answer rate over %s .. %s (%s): %d answers / %d attempts -> estimate %.4f (bounds %.4f..%.4f, %s)",
        window_start.isoformat(), window_end.isoformat(), campaign.pacing_source, estimate.answers,
        estimate.attempts, estimate.rate, estimate.lower, estimate.upper, estimate.source,
    )
    log.info(
        "Strategy %s: dial ratio %.3f -> maxCallsPerAgent=%g outboundLineCount=%d abandonRate=%g%s",
        decision.strategy, decision.ratio, decision.max_calls_per_agent, decision.outbound_line_count,
        decision.abandon_rate, f" ({'; '.join(decision.notes)})" if decision.notes else "",
    )
    metrics.pacing(
        campaign.campaign_id, row["pacing_answer_rate"], decision.ratio, decision.max_calls_per_agent,
        decision.outbound_line_count,
    )
    return {
        "estimate": asdict(estimate),
        "decision": {**asdict(decision), "notes": list(decision.notes)},
        "patch": decision.patch_body(),
        "window_start": window_start.isoformat(),
        "window_end": window_end.isoformat(),
        "source": campaign.pacing_source,
        "realized_abandon_percent": realized.rate_percent if realized else None,
        "realized_abandon_24h_percent": evidence.realized_24h.rate_percent if evidence.realized_24h else None,
    }


def _genesys_evidence(
    cur: Any, campaign: CampaignConfig, params: dict[str, Any], no_answer: float | None
) -> tuple[pacing.AnswerHistory, pacing.PacingEvidence]:
    """The pacing's inputs from ``campaign_outcomes`` (the buckets ``sync_outcomes`` stored)."""
    cur.execute(load_sql("outcome_history"), params)
    window = []
    for age, *values in cur.fetchall():
        start, end, *numbers = values
        window.append((float(age), outcomes.OutcomeBucket(start, end, *numbers)))
    cur.execute(load_sql("outcome_compliance"), params)
    compliance = outcomes.ComplianceRecord(*(int(v or 0) for v in cur.fetchone()))
    return outcomes.evidence_from_outcomes(window, compliance, campaign, no_answer_timeout=no_answer)


# -- apply_pacing ------------------------------------------------------------------------------------
# Differences below these are rounding, not a change Genesys made.
_KEPT_TOLERANCE = {"maxCallsPerAgent": 0.005, "outboundLineCount": 0, "abandonRate": 1e-6}


def apply_pacing(campaign: CampaignConfig, run: RunInfo, ratio: dict[str, Any]) -> dict[str, Any]:
    """PATCH the campaign's pacing once per run, read it back, and record what Genesys kept.

    A dry run logs the body and sends nothing. The PATCH model types ``maxCallsPerAgent`` as a number; when
    Genesys keeps only its integer part, the fraction is written as ``maxCallsPerAgentDecimal`` with a PUT of
    the campaign read back (its current version; one retry on a 409). If Genesys kept a pacing more
    aggressive than decided (a larger ratio or abandon target), the task fails after recording it.
    """
    body = ratio["patch"]
    if run.dry_run:
        log.info("Dry run: would PATCH campaign %s with %s", campaign.campaign_id, body)
        return {"applied": False, "patch": body, "requests": {}}
    hook = genesys_hook(campaign)
    hook.patch_campaign(campaign.campaign_id, body)
    remote = hook.get_campaign(campaign.campaign_id)
    requested = float(body["maxCallsPerAgent"])
    if abs(_kept_ratio(remote) - requested) > _KEPT_TOLERANCE["maxCallsPerAgent"]:
        log.info(
            "Genesys kept maxCallsPerAgent %s of the %g written: writing maxCallsPerAgentDecimal with PUT",
            _kept_ratio(remote), requested,
        )
        remote = _put_decimal(hook, campaign.campaign_id, remote, requested)
    kept = {
        "maxCallsPerAgent": remote.get("maxCallsPerAgent"),
        "maxCallsPerAgentDecimal": remote.get("maxCallsPerAgentDecimal"),
        "outboundLineCount": remote.get("outboundLineCount"),
        "abandonRate": remote.get("abandonRate"),
    }
    differences = _kept_differences(body, remote)
    with dialer_db(campaign) as conn:
        run_sql(conn, "mark_pacing_applied", {
            "campaign_id": campaign.campaign_id, "run_id": run.run_id, "kept": json.dumps(kept),
        })
    for difference in differences:
        log.warning("Campaign %s: %s", campaign.campaign_id, difference)
    log.info("Applied pacing to campaign %s: wrote %s, Genesys kept %s", campaign.campaign_id, body, kept)
    looser = _kept_ratio(remote) > requested + _KEPT_TOLERANCE["maxCallsPerAgent"] or (
        float(remote.get("abandonRate") or 0.0) > float(body["abandonRate"]) + _KEPT_TOLERANCE["abandonRate"]
    )
    if looser:
        raise GenesysResponseError(
            f"Genesys kept a pacing more aggressive than decided for campaign {campaign.campaign_id!r}: "
            f"{'; '.join(differences)}. Check the campaign in Genesys Cloud",
            method="PATCH", endpoint="campaign_patch",
        )
    return {"applied": True, "patch": body, "kept": kept, "warnings": differences, "requests": hook.stats.as_dict()}


def _kept_ratio(remote: dict[str, Any]) -> float:
    value = remote.get("maxCallsPerAgentDecimal")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        value = remote.get("maxCallsPerAgent")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.inf


def _put_decimal(hook: GenesysHook, campaign_id: str, remote: dict[str, Any], ratio: float) -> dict[str, Any]:
    """Write ``maxCallsPerAgentDecimal`` (and its integer part) with a PUT of the whole campaign; read it back."""
    for attempt in (1, 2):
        body = {**remote, "maxCallsPerAgentDecimal": ratio, "maxCallsPerAgent": max(1, math.floor(ratio))}
        try:
            hook.put_campaign(campaign_id, body)
            break
        except GenesysClientError as err:
            if err.status != 409 or attempt == 2:
                raise
            remote = hook.get_campaign(campaign_id)  # someone edited the campaign in between: take its version
    return hook.get_campaign(campaign_id)


def _kept_differences(body: dict[str, Any], remote: dict[str, Any]) -> list[str]:
    """Each field Genesys kept differently from what was written, as a sentence."""
    out = []
    kept = {"maxCallsPerAgent": _kept_ratio(remote), "outboundLineCount": remote.get("outboundLineCount"),
            "abandonRate": remote.get("abandonRate")}
    for field_name, written in body.items():
        value = kept.get(field_name)
        if not isinstance(value, (int, float)) or abs(float(value) - float(written)) > _KEPT_TOLERANCE[field_name]:
            name = "maxCallsPerAgentDecimal" if field_name == "maxCallsPerAgent" else field_name
            out.append(f"{name} written {written:g}, Genesys kept {value}")
    return out


# -- create_segment ----------------------------------------------------------------------------------
def create_segment(
    campaign: CampaignConfig, run: RunInfo, resolved: dict[str, Any], segment: dict[str, Any]
) -> dict[str, Any]:
    """Upsert one segment's undelivered contacts into the contact list, 1 request per N contacts."""
    index, label = segment["index"], segment["label"]
    if run.dry_run:
        skips = segment.get("would_skip") or {}
        sendable = segment["contacts"] - sum(skips.values())
        requests_needed = -(-sendable // campaign.contacts_per_request)
        log.info(
            "Dry run: segment %s would send %d contacts in %d requests to contact list %s; would skip %s",
            label, sendable, requests_needed, resolved["contact_list_id"], skips or "none",
        )
        return {"index": index, "label": label, "sent": 0, "would_send": sendable, "skipped": skips,
                "requests": {}, "dry_run": True}

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
            if isinstance(err, GenesysCircuitOpenError):
                # Nothing was sent: the breaker shared by every task of this connection is open. The segment
                # is not dropped: its contacts stay claimed (marked failed = not yet sent) for the retry.
                log.warning(
                    "Segment %s: circuit breaker open, nothing sent for the current batch (%d contacts sent "
                    "before it opened); the rest stay claimed by this run and are sent by a retry of this task "
                    "(in about %.0f s) or a later run. %s",
                    label, sent, err.retry_after or 0, err,
                )
            else:
                log.error(
                    "Segment %s: %d contacts sent before the failure; the rest stay claimed by this run and "
                    "are sent by a retry of this task or a later run. %s",
                    label, sent, err,
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
    synced: dict[str, Any] | None = None,
) -> RunReport:
    """Build the run report from the ledger (the truth) and the tasks' XComs; log and record it."""
    with dialer_db(campaign) as conn:
        ledger = contacts_mod.ledger_summary(conn, campaign_id=campaign.campaign_id, run_id=run.run_id)
        finished = datetime.now(UTC)
        report = RunReport.build(
            campaign=campaign, run=run, resolved=resolved, claim=claim, segments=segments,
            segment_results=segment_results, ratio=ratio, pacing_result=pacing_result, ledger=ledger,
            finished_at=finished, synced=synced,
        )
        run_sql(conn, "record_run", report.run_log_row())
    for line in report.lines():
        log.info("%s", line)
    metrics.run_finished(campaign.campaign_id, report.outcome, report.duration_seconds or 0.0)
    interval = schedule_interval_seconds(campaign.schedule, finished)
    if interval:
        metrics.schedule_interval(campaign.campaign_id, interval)  # the staleness alert's yardstick
    return report


def schedule_interval_seconds(schedule: str | None, at: datetime) -> float | None:
    """Seconds between two scheduled runs around ``at`` for a cron schedule or preset; None otherwise."""
    if not schedule or schedule in ("@once", "@continuous"):
        return None
    from croniter import croniter

    try:
        runs = croniter(schedule, at)
        following = runs.get_next(datetime)
        return (runs.get_next(datetime) - following).total_seconds()
    except (ValueError, KeyError):
        return None
