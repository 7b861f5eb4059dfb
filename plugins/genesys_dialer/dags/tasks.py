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
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from genesys_dialer import metrics
from genesys_dialer.compliance import reasons, withdrawal
from genesys_dialer.compliance.checks import check_contact_columns, claim_blockers, registry_snapshot
from genesys_dialer.compliance.eligibility import Eligibility
from genesys_dialer.compliance.phones import RefreshResult, refresh_phones
from genesys_dialer.config import CampaignConfig
from genesys_dialer.dags.delivery import SegmentDelivery
from genesys_dialer.dags.report import RunReport
from genesys_dialer.dags.run import RunInfo, RunMode, TaskTry, decide_mode, schedule_period
from genesys_dialer.exceptions import ComplianceError, ConfigError
from genesys_dialer.genesys.budget import PostgresBudget
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
from genesys_dialer.ledger.request_log import RequestLog, run_requests
from genesys_dialer.ledger.session import dialer_session
from genesys_dialer.pacing import outcomes
from genesys_dialer.pacing import strategies as pacing
from genesys_dialer.queries import load_sql, run_sql

log = logging.getLogger(__name__)

# PostgreSQL's "no such table / column / function": what a dialer database says when the package's schema was
# never applied to it, or is older than the package (a new function, a new column).
MISSING_OBJECT_SQLSTATES = {"42P01": "table", "42703": "column", "42883": "function"}


@contextmanager
def dialer_db(campaign: CampaignConfig) -> Iterator[Any]:
    """A connection to the campaign's contacts database (with the session limits), closed when the block ends.

    A table, column or function missing there fails the task as a ConfigError (not retried) that says how to
    apply the schema, whichever statement met it first.
    """
    with dialer_session(campaign.postgres_conn_id) as conn:
        try:
            yield conn
        except Exception as err:
            kind = MISSING_OBJECT_SQLSTATES.get(getattr(err, "sqlstate", None) or getattr(err, "pgcode", None) or "")
            if kind is None:
                raise
            problem = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ConfigError(
                f"campaign {campaign.key!r}: the dialer database (connection {campaign.postgres_conn_id!r}) has no "
                f"{kind} this package needs ({problem}). Apply the package's schema to it, again after every "
                f"upgrade: `genesys-dialer apply-schema --conn-id {campaign.postgres_conn_id}` (idempotent, keeps "
                "every row). If the name is one of your contacts columns, check the campaign's column settings."
            ) from err


def genesys_hook(campaign: CampaignConfig, conn: Any = None, run: RunInfo | None = None,
                 task: TaskTry | None = None, *, conn_id: str | None = None) -> GenesysHook:
    """The campaign's hook (on ``conn_id``, default the campaign's connection); with a connection, run and task
    try, every request goes to the run's request log. Every request first takes a token from the connection's
    OAuth client's shared rate budget (a bucket in the database of ``budget_conn_id``, by default the campaign's
    dialer database; genesys.budget)."""
    on_request = None
    if conn is not None and run is not None and task is not None:
        on_request = RequestLog(conn, campaign_id=campaign.campaign_id, run_id=run.run_id, task_id=task.task_id,
                                map_index=task.map_index, try_number=task.try_number)
    budget = PostgresBudget(lambda: dialer_session(campaign.budget_conn_id), name=campaign.budget_conn_id)
    return GenesysHook(conn_id or campaign.genesys_conn_id, on_request=on_request, budget=budget)


def breaker_reschedule(campaign: CampaignConfig, err: GenesysCircuitOpenError,
                       waiting_since: datetime | None) -> datetime | None:
    """When to run the task again while the shared breaker is not closed, or None to end the try instead.

    Waiting out an outage must not use up the task's tries: the task is rescheduled (UP_FOR_RESCHEDULE keeps its
    try number and frees its worker and pool slot) for when the breaker half-opens, for up to
    ``breaker_wait_minutes`` since the task's first reschedule. Past that, the open breaker ends the try like
    any transient error (the retry policy), so a long outage still ends in a red run that says why.
    """
    now = datetime.now(UTC)
    if not campaign.breaker_wait_minutes:
        return None
    if waiting_since is not None and now - waiting_since > timedelta(minutes=campaign.breaker_wait_minutes):
        log.warning("Circuit breaker still not closed after %d minutes of waiting: ending this try (%s)",
                    campaign.breaker_wait_minutes, err)
        return None
    wait = max(err.retry_after or 1.0, 1.0)
    log.warning("Circuit breaker not closed: nothing sent; rescheduling this task in %.0f s (no try used, its "
                "contacts stay claimed by this run). %s", wait, err)
    return now + timedelta(seconds=wait)


def peak_rss_mib() -> float:
    """This task process's peak resident memory (MiB): memory must not grow with the batch."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def skip(message: str) -> None:
    """End the task as skipped (nothing sent), saying why in its log."""
    from airflow.sdk.exceptions import AirflowSkipException

    log.info("%s", message)
    raise AirflowSkipException(message)


def _now() -> datetime:
    return datetime.now(UTC)


# -- resolve_campaign --------------------------------------------------------------------------------
def resolve_campaign(campaign: CampaignConfig, run: RunInfo, task: TaskTry) -> dict[str, Any]:
    """Decide the run's mode; read the campaign and its contact list from Genesys before anything is claimed.

    An unknown campaign fails here, naming it and Genesys' contextId, with nothing claimed: in a dry run too,
    which fails wherever the same live run would fail before sending (the dialer database is opened here, so an
    unreachable one fails it too).
    """
    mode = decide_mode(campaign, run, _now())
    with dialer_db(campaign) as conn:
        if mode.dry_run and run.requested == "auto" and _run_has_claim(conn, campaign, run):
            # An old scheduled run cleared after a live try: it re-sends what it claimed then, and nothing else.
            mode = RunMode(False, "a cleared run re-sending its own undelivered contacts and claiming nothing new "
                                  f"(without a claim it would be dry: {mode.reason})")
        log.info("%s (%s)", "DRY RUN: nothing will be claimed or sent" if mode.dry_run else "Live run", mode.reason)
        return {**_resolve_campaign(campaign, genesys_hook(campaign, conn, run, task)), "mode": mode.to_xcom()}


def _run_has_claim(conn: Any, campaign: CampaignConfig, run: RunInfo) -> bool:
    with conn.cursor() as cur:
        cur.execute(load_sql("run_has_claim"), {"campaign_id": campaign.campaign_id, "run_id": run.run_id})
        (found,) = cur.fetchone()
    conn.commit()
    return bool(found)


def _resolve_campaign(campaign: CampaignConfig, hook: GenesysHook) -> dict[str, Any]:
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
    written = (campaign.phone_column, campaign.segment_column, campaign.list_timezone_column,
               campaign.list_postal_code_column)
    missing = [c for c in written if c and c not in columns]
    if missing:
        raise GenesysClientError(
            f"contact list {list_id!r} has no column(s) {missing} (has {sorted(columns)}); add them in "
            f"Genesys or set phone_column / segment_column / list_timezone_column / list_postal_code_column for "
            f"campaign {campaign.key!r}"
        )
    phone_columns = {p.get("columnName") for p in remote_list.get("phoneColumns") or []}
    warnings = _campaign_warnings(campaign, remote, phone_columns) + _calling_window_warnings(
        campaign, remote, remote_list
    )
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


def _calling_window_warnings(
    campaign: CampaignConfig, remote: dict[str, Any], remote_list: dict[str, Any]
) -> list[str]:
    """What stops the campaign's calling windows or DNC list from applying the way the config expects."""
    warnings = []
    if not (remote.get("callableTimeSet") or {}).get("id"):
        warnings.append(
            "no callable time set: Genesys dials at any hour of the contact's day; attach one with the legal "
            "calling hours (8 am to 9 pm local time in the US)"
        )
    automatic = bool(remote_list.get("automaticTimeZoneMapping"))
    time_columns = {p.get("callableTimeColumn") for p in remote_list.get("phoneColumns") or []}
    if campaign.list_timezone_column and campaign.list_timezone_column not in time_columns:
        warnings.append(
            f"column {campaign.list_timezone_column!r} (list_timezone_column) is no phone column's "
            "callableTimeColumn: Genesys does not read the time zones written there"
        )
    if campaign.list_postal_code_column and (
        not automatic or remote_list.get("zipCodeColumnName") != campaign.list_postal_code_column
    ):
        warnings.append(
            f"the contact list does not map time zones from {campaign.list_postal_code_column!r} "
            "(list_postal_code_column): set automaticTimeZoneMapping and zipCodeColumnName to it"
        )
    if not (campaign.list_timezone_column or automatic):
        warnings.append(
            "no per-contact time zone reaches Genesys (no list_timezone_column, no automatic time zone mapping "
            "on the list): the callable time set applies in the list's or campaign's zone"
        )
    attached = {ref.get("id") for ref in remote.get("dncLists") or []}
    if campaign.dnc_list_id and campaign.dnc_list_id not in attached:
        warnings.append(
            f"DNC list {campaign.dnc_list_id!r} (dnc_list_id) is not attached to the campaign: its dialer does not "
            "skip the numbers the pipeline adds there"
        )
    return warnings


# -- withdraw_opt_outs -------------------------------------------------------------------------------
def withdraw_opt_outs(
    campaign: CampaignConfig, run: RunInfo, task: TaskTry, resolved: dict[str, Any]
) -> dict[str, Any]:
    """Remove contacts that opted out after delivery from the contact list (and add their numbers to the DNC
    list) before anything new is claimed. A dry run counts them and sends nothing."""
    mode = RunMode.from_xcom(resolved["mode"])
    rules = Eligibility.for_campaign(campaign)
    with dialer_db(campaign) as conn:
        check_contact_columns(conn, campaign)
        refresh = _refresh_phones(conn, campaign)
        if not refresh.caught_up:
            # A number suppressed through a contact not normalized yet would be missed: fail, and retry later.
            raise ComplianceError(
                f"phone numbers are not all normalized yet (region {campaign.phone_region}); withdrawals need "
                "them to find numbers suppressed since delivery. Run `genesys-dialer normalize` or wait."
            )
        if mode.dry_run:
            would = withdrawal.preview(conn, rules, lookback=timedelta(minutes=campaign.normalize_lookback_minutes))
            log.info("Dry run: would withdraw %d contacts %s", sum(would.values()), would or "")
            return {"withdrawn": {}, "would_withdraw": would, "requests": {}, "dry_run": True}
        hook = genesys_hook(campaign, conn, run, task)
        withdrawn = withdrawal.withdraw(
            conn, hook, rules, contact_list_id=resolved["contact_list_id"], dnc_list_id=campaign.dnc_list_id,
            run_id=run.run_id, page_size=campaign.withdraw_ids_per_request,
            lookback=timedelta(minutes=campaign.normalize_lookback_minutes),
            on_withdrawn=lambda reason, count: metrics.contacts(campaign.campaign_id, "withdrawn", count, reason),
        )
    opted_out = any(reason != reasons.NUMBER_CHANGED for reason in withdrawn)
    log.info(
        "Withdrew %d contacts that are no longer eligible %s%s", sum(withdrawn.values()), withdrawn or "",
        f" (the opted-out numbers added to DNC list {campaign.dnc_list_id})" if opted_out and campaign.dnc_list_id
        else "",
    )
    return {"withdrawn": withdrawn, "would_withdraw": {}, "requests": hook.stats.as_dict(), "dry_run": False}


def _refresh_phones(conn: Any, campaign: CampaignConfig) -> RefreshResult:
    return refresh_phones(
        conn, campaign.phone_region, max_rows=campaign.normalize_max_rows_per_run,
        lookback=timedelta(minutes=campaign.normalize_lookback_minutes),
    )


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
        segment_size=campaign.segment_size_for(run.batch_size),
        created_before=run.data_interval_end,
        lease_minutes=campaign.claim_lease_minutes,
        contact_id_prefix=campaign.contact_id_prefix,
        phone_region=campaign.phone_region,
        label_prefix=run.label_prefix,
        eligibility=Eligibility.for_campaign(campaign),
    )
    with dialer_db(campaign) as conn:
        check_contact_columns(conn, campaign)
        refresh = _refresh_phones(conn, campaign)
        blockers = claim_blockers(campaign, refresh, registry_snapshot(conn), run.data_interval_end.date())
        if blockers:
            for blocker in blockers:
                log.error("Claiming nothing: %s", blocker)
            claim = {"contacts": 0, "claimed_now": 0, "adopted": 0, "retried": 0, "held_back": {}, "reused": False,
                     "segments": 0, "dry_run": mode.dry_run, "mode": mode.to_xcom(), "blocked": blockers}
            return [], claim
        result = contacts_mod.claim_batch(conn, request, dry_run=mode.dry_run)
    claim = {
        "contacts": result.contacts,
        "claimed_now": result.claimed_now,
        "adopted": result.adopted,
        "retried": result.retried,
        "held_back": result.held_back,
        "reused": result.reused,
        "segments": len(result.segments),
        "dry_run": mode.dry_run,
        "mode": mode.to_xcom(),
        "blocked": [],
        "max_rss_mib": peak_rss_mib(),
    }
    if result.held_back:
        log.info(
            "%s back %d contacts: %s (the ledger records each one's reason)",
            "Would hold" if mode.dry_run else "Held", sum(result.held_back.values()), result.held_back,
        )
        if not mode.dry_run:
            for reason, count in result.held_back.items():
                metrics.contacts(campaign.campaign_id, "skipped", count, reason)
    if result.reused:
        log.info(
            "Run %s already claimed %d contacts in %d segments: re-dispatching what is undelivered (%d)",
            run.run_id, result.contacts, len(result.segments), sum(s.pending for s in result.segments),
        )
    else:
        verb = "Would claim (dry run, rolled back)" if mode.dry_run else "Claimed"
        log.info(
            "%s %d contacts (%d adopted from earlier runs whose claim lease expired, %d earlier skips retried) "
            "created before %s, in %d segments of at most %d",
            verb, result.contacts, result.adopted, result.retried, run.data_interval_end.isoformat(),
            len(result.segments), request.segment_size,
        )
        if not mode.dry_run:
            metrics.contacts(campaign.campaign_id, "claimed", result.contacts)
    return [{**s.to_xcom(), "dry_run": mode.dry_run, "conn_id": campaign.segment_conn_id(s.index)}
            for s in result.segments], claim


# -- sync_outcomes ----------------------------------------------------------------------------------
def sync_outcomes(campaign: CampaignConfig, run: RunInfo, task: TaskTry) -> dict[str, Any]:
    """Pull the campaign's outcomes from Genesys analytics into ``campaign_outcomes`` (source ``genesys``).

    Every 15-minute bucket of the compliance window (30 days) ending at the run's interval end that is missing
    or not yet settled is pulled, newest first, at most ``outcome_sync_max_requests`` queries of a day each
    (a backfill of the window continues in the next runs); re-pulling a bucket replaces it. A run for an old
    interval pulls that interval's window. A run of the latest interval also reads the campaign stats (idle
    agents: staffing), which are now's and say nothing about an old interval.
    """
    if campaign.pacing_source != "genesys":
        log.info("Campaign %s paces from %s: no Genesys outcomes to sync", campaign.key, campaign.pacing_source)
        return {"source": campaign.pacing_source, "synced": False}
    end = outcomes.floor_bucket(run.data_interval_end)
    window_start = end - timedelta(days=max(outcomes.COMPLIANCE_DAYS, campaign.history_days))
    settle = timedelta(minutes=campaign.outcome_settle_minutes)
    idle: int | None = None
    pulled = 0
    with dialer_db(campaign) as conn:
        hook = genesys_hook(campaign, conn, run, task)
        if run.is_latest_interval(_now()):  # the stats are now's: they say nothing about an old interval
            stats = hook.get_campaign_stats(campaign.campaign_id)
            value = stats.get("idleAgents")
            idle = value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
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
    mode = RunMode.from_xcom(resolved["mode"])
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
            "dry_run": mode.dry_run,
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
    if not mode.dry_run and run.is_latest_interval(_now()):
        # The gauges are "the campaign's current pacing": a dry run's or an old interval's is not.
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
        "mode": mode.to_xcom(),
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


def apply_pacing(campaign: CampaignConfig, run: RunInfo, task: TaskTry, ratio: dict[str, Any]) -> dict[str, Any]:
    """PATCH the campaign's pacing once per run, if the run is live and of the latest interval; read it back and
    record what Genesys kept.

    A dry run ends skipped. An older interval's run (a backfill, a catch-up run, a manual run for a past date, a
    cleared old run) has recorded its pacing; sending it would override the pacing of the campaign's current
    interval with an old one, so it says so and sends nothing.

    The PATCH model types ``maxCallsPerAgent`` as a number; when Genesys keeps only its integer part, the
    fraction is written as ``maxCallsPerAgentDecimal`` with a PUT of the campaign read back (its current version;
    one retry on a 409). If Genesys kept a pacing more aggressive than decided (a larger ratio or abandon target),
    the task fails after recording it.
    """
    body = ratio["patch"]
    if RunMode.from_xcom(ratio["mode"]).dry_run:
        skip(f"Dry run: pacing not applied; a live run would PATCH campaign {campaign.campaign_id} with {body}")
    now = _now()
    if not run.is_latest_interval(now):
        reason = old_interval_reason(run, now)
        log.info("Pacing not applied: %s. Computed and recorded: %s", reason, body)
        return {"applied": False, "not_applied": reason, "patch": body, "requests": {}}
    with dialer_db(campaign) as conn:
        hook = genesys_hook(campaign, conn, run, task)
        hook.patch_campaign(campaign.campaign_id, body)  # the same body again is harmless: PATCH is repeatable
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


def old_interval_reason(run: RunInfo, now: datetime) -> str:
    minutes = run.interval_age(now).total_seconds() / 60
    return (f"old interval (it ended {minutes:.0f} min ago, more than one schedule period of "
            f"{run.period.total_seconds() / 60:.0f} min; only a run of the latest interval paces the campaign)")


# -- create_segment ----------------------------------------------------------------------------------
def create_segment(
    campaign: CampaignConfig, run: RunInfo, task: TaskTry, resolved: dict[str, Any], segment: dict[str, Any]
) -> dict[str, Any]:
    """Upsert one segment's undelivered contacts into the contact list, 1 request per N contacts, each once.

    The try takes the segment's rows (a new fence), first resolves contacts left in doubt by an earlier try or
    by the run it adopted them from, then sends the rest page by page (see :mod:`genesys_dialer.dags.delivery`),
    each contact checked again for eligibility right before it is sent.
    """
    index, label = segment["index"], segment["label"]
    if segment["dry_run"]:
        skips = segment.get("would_skip") or {}  # the claim holds back ineligible contacts: a segment is sendable
        sendable = segment["contacts"] - sum(skips.values())
        requests_needed = -(-sendable // campaign.contacts_per_request)
        skip(f"Dry run: segment {label} would send {sendable} contacts in {requests_needed} requests to contact "
             f"list {resolved['contact_list_id']}")

    if not segment["pending"]:
        # A re-run of a run whose segment was delivered: nothing to send, no connection to open.
        log.info("Segment %s: all %d contacts already delivered or skipped; nothing to send", label,
                 segment["contacts"])
        return {"index": index, "label": label, "sent": 0, "skipped": {}, "requests": {}, "dry_run": False}

    rules = Eligibility.for_campaign(campaign)
    skipped: dict[str, int] = {}
    buffer: list[tuple[int, dict[str, Any]]] = []
    with dialer_db(campaign) as conn:
        if not _refresh_phones(conn, campaign).caught_up:
            # Numbers changed faster than they are normalized: a newly suppressed number could be missed.
            raise ComplianceError(
                f"segment {label}: phone numbers are not all normalized (region {campaign.phone_region}); nothing "
                "sent, the contacts stay claimed for a retry"
            )
        hook = genesys_hook(campaign, conn, run, task, conn_id=segment.get("conn_id"))
        fence, owned = contacts_mod.take_segment(
            conn, campaign_id=campaign.campaign_id, run_id=run.run_id, segment_index=index,
            first_try=run.try_number == 1,
        )
        delivery = SegmentDelivery(
            conn=conn, hook=hook, campaign_id=campaign.campaign_id, run_id=run.run_id, segment_index=index,
            label=label, contact_list_id=resolved["contact_list_id"], fence=fence,
        )
        log.info("Segment %s: %d undelivered contacts taken by this try (fence %d)", label, owned, fence)
        sending_started = time.monotonic()  # the send loop alone, for the benchmark's per-request overhead
        try:
            delivery.resolve_doubts()
            pages = contacts_mod.iter_segment_pages(
                conn, campaign_id=campaign.campaign_id, run_id=run.run_id, segment_index=index, fence=fence,
                page_size=campaign.contacts_per_request, eligibility=rules,
                normalize_max_rows=campaign.normalize_max_rows_per_run,
            )
            for page in pages:
                skips_in_page: dict[str, list[int]] = {}
                contacts_mod.record_numbers(conn, campaign_id=campaign.campaign_id, fence=fence, page=[
                    p for p in page if not p.reason])
                for pending in page:
                    reason = pending.reason
                    if reason or not pending.e164:
                        skips_in_page.setdefault(reason or reasons.PHONE_NOT_NORMALIZED, []).append(
                            pending.contact_id)
                        continue
                    buffer.append((pending.contact_id, contacts_mod.genesys_contact(
                        pending, pending.e164, contact_list_id=resolved["contact_list_id"],
                        phone_column=campaign.phone_column, segment_column=campaign.segment_column, segment=label,
                        timezone_column=campaign.list_timezone_column,
                        postal_code_column=campaign.list_postal_code_column,
                    )))
                    if len(buffer) >= campaign.contacts_per_request:
                        delivery.send(buffer)
                        buffer = []
                for reason, ids in skips_in_page.items():
                    marked = delivery.mark("mark_skipped", ids, reason=reason)
                    metrics.contacts(campaign.campaign_id, "skipped", marked, reason)
                    skipped[reason] = skipped.get(reason, 0) + marked
            if buffer:
                delivery.send(buffer)
        except GenesysApiError as err:
            metrics.segment_failed(campaign.campaign_id, err.error_type)
            if will_retry(err, run.try_number, run.max_tries):
                then = (f"are sent by a retry of this task (try {run.try_number + 1} of {run.max_tries + 1}"
                        + (f", in about {err.retry_after:.0f} s" if err.retry_after else "") + ")")
            else:
                then = ("wait: no retry of this task is left for this error; clear the run to send them, or a "
                        f"later run adopts them after claim_lease_minutes ({campaign.claim_lease_minutes})")
            if isinstance(err, GenesysCircuitOpenError):
                # Nothing was sent: the breaker shared by every task of this connection is not closed. The
                # segment is not dropped: its contacts stay claimed (failed = not yet sent) for when it closes.
                log.warning(
                    "Segment %s: circuit breaker open, nothing sent for the current batch (%d contacts delivered "
                    "before it opened); the rest stay claimed by this run and %s. %s",
                    label, delivery.delivered, then, err,
                )
            else:
                log.error(
                    "Segment %s: %d contacts delivered before the failure; the rest stay claimed by this run and "
                    "%s (contacts whose request got no answer only after reading the list back). %s",
                    label, delivery.delivered, then, err,
                )
            raise

    metrics.segment_created(campaign.campaign_id)
    stats = hook.stats.as_dict()
    log.info(
        "Segment %s: sent %d contacts to contact list %s in %d requests (%d retries), %d more found in the list "
        "after a lost answer (not sent again), %d sent again after a read-back found them absent; skipped %s",
        label, delivery.sent, resolved["contact_list_id"], stats["requests"], stats["retries"], delivery.confirmed,
        delivery.resent, skipped or "none",
    )
    return {"index": index, "label": label, "sent": delivery.delivered, "confirmed": delivery.confirmed,
            "superseded": delivery.superseded, "skipped": skipped, "requests": stats, "dry_run": False,
            "conn_id": hook.genesys_conn_id, "max_rss_mib": peak_rss_mib(),
            "send_seconds": round(time.monotonic() - sending_started, 2)}


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
    withdrawal_result: dict[str, Any] | None = None,
    synced: dict[str, Any] | None = None,
) -> RunReport:
    """Build the run report from the ledger and the request log (the truth) and the tasks' XComs; log and
    record it."""
    mode = run_mode(campaign, run, resolved=resolved, claim=claim)
    ids = {"campaign_id": campaign.campaign_id, "run_id": run.run_id}
    with dialer_db(campaign) as conn:
        ledger = contacts_mod.ledger_summary(conn, **ids)
        requests = run_requests(conn, **ids)
        with conn.cursor() as cur:
            cur.execute(load_sql("run_unknown_statuses"), ids)
            unknown_statuses = {str(value)[:40]: int(count) for value, count in cur.fetchall()}
        conn.commit()
        compliance = {
            "withdrawn": withdrawal.run_withdrawals(conn, **ids),
            "would_withdraw": (withdrawal_result or {}).get("would_withdraw") or {},
            "withdrawal_failed": withdrawal_result is None and resolved is not None,
            "unknown_statuses": unknown_statuses,
            "blocked": list((claim or {}).get("blocked") or []),
            "skip_alert_share": campaign.skip_alert_share,
        }
        finished = datetime.now(UTC)
        report = RunReport.build(
            campaign=campaign, run=run, mode=mode, resolved=resolved, claim=claim, segments=segments,
            segment_results=segment_results, ratio=ratio, pacing_result=pacing_result, ledger=ledger,
            requests=requests, finished_at=finished, compliance=compliance, withdrawal_result=withdrawal_result,
            synced=synced,
        )
        run_sql(conn, "record_run", report.run_log_row())
    for line in report.lines():
        log.info("%s", line)
    metrics.run_finished(campaign.campaign_id, report.outcome, report.duration_seconds or 0.0)
    if not mode.dry_run and ledger["claimed"]:
        # One run's share of its batch held back: the skip alert compares it with the campaign's threshold.
        share = ledger["skipped"] / ledger["claimed"]
        metrics.run_skipped_share(campaign.campaign_id, share, campaign.skip_alert_share)
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
