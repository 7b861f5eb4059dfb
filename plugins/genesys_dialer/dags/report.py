"""The run report: what a run claimed, sent, skipped and decided, for the task log and the run log."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genesys_dialer.config import CampaignConfig
    from genesys_dialer.dags.run import RunInfo, RunMode


@dataclass
class RunReport:
    campaign_key: str
    campaign_id: str
    run_id: str
    run_type: str
    dry_run: bool
    mode_reason: str
    data_interval_start: datetime | None
    data_interval_end: datetime
    started_at: datetime | None
    finished_at: datetime
    outcome: str
    claim: dict[str, Any]
    ledger: dict[str, Any]
    segments_total: int
    segments_succeeded: int
    segments_retried: int
    would_send: int
    would_skip: dict[str, int]
    requests: dict[str, int]
    estimate: dict[str, Any] | None
    decision: dict[str, Any] | None
    pacing_applied: bool
    pacing_not_applied: str | None = None  # why, when the decision was not sent
    warnings: list[str] = field(default_factory=list)
    # withdrawn / would_withdraw (by reason), withdrawal_failed, unknown_statuses (value -> count), blocked
    compliance: dict[str, Any] = field(default_factory=dict)
    # Segments that waited out an open circuit breaker by rescheduling (no try used).
    segments_rescheduled: int = 0
    # What sync_outcomes pulled from Genesys analytics, and the pacing Genesys kept after the PATCH (read back).
    outcomes: dict[str, Any] | None = None
    pacing_kept: dict[str, Any] | None = None

    @classmethod
    def build(
        cls,
        *,
        campaign: CampaignConfig,
        run: RunInfo,
        mode: RunMode,
        resolved: dict[str, Any] | None,
        claim: dict[str, Any] | None,
        segments: list[dict[str, Any]],
        segment_results: list[dict[str, Any]],
        ratio: dict[str, Any] | None,
        pacing_result: dict[str, Any] | None,
        ledger: dict[str, Any],
        requests: dict[str, int],
        finished_at: datetime,
        compliance: dict[str, Any] | None = None,
        withdrawal_result: dict[str, Any] | None = None,
        synced: dict[str, Any] | None = None,
    ) -> RunReport:
        """``ledger`` and ``requests`` come from PostgreSQL (every try's work); the rest from the tasks' XComs."""
        compliance = compliance or {}
        would_skip: Counter[str] = Counter((claim or {}).get("held_back") or {})  # held back by the claim
        for segment in segments:
            would_skip.update(segment.get("would_skip") or {})
        warnings = list((resolved or {}).get("warnings") or [])
        if resolved is None:
            warnings.append("resolve_campaign did not finish: nothing was claimed or sent")
        if compliance.get("withdrawal_failed"):
            warnings.append(
                "withdraw_opt_outs failed: contacts that opted out may still be dialable, and nothing new was "
                "claimed; the next run retries (see that task's log)"
            )
        warnings += [f"claimed nothing: {reason}" for reason in compliance.get("blocked") or []]
        if compliance.get("unknown_statuses"):
            warnings.append(
                "status values the config does not know were held back (unknown_status): "
                + ", ".join(f"{value!r}: {n}" for value, n in compliance["unknown_statuses"].items())
                + "; add them to callable_statuses or inactive_statuses, then `genesys-dialer requeue`"
            )
        if ledger["claimed"] and ledger["skipped"] / ledger["claimed"] > compliance.get("skip_alert_share", 1.0):
            warnings.append(
                f"{ledger['skipped']} of {ledger['claimed']} contacts of the batch were held back (more than "
                f"skip_alert_share {compliance['skip_alert_share']:g}): a wrong phone_region or a broken feed?"
            )
        if ratio:
            warnings += [f"pacing: {note}" for note in ratio["decision"].get("notes") or []]
        warnings += [f"pacing kept by Genesys: {w}" for w in (pacing_result or {}).get("warnings") or []]
        if campaign.pacing_source == "genesys" and resolved is not None and synced is None:
            warnings.append("sync_outcomes did not finish: paced on the outcomes synced before (progressive)")
        if ratio is None and resolved is not None:
            warnings.append("compute_dial_ratio did not finish: no pacing was decided")
        succeeded = sum(1 for r in segment_results if r)
        compliance_stopped = compliance.get("withdrawal_failed") or compliance.get("blocked")
        if mode.dry_run:
            # Red wherever the same live run would have failed before sending: a dry run is a rehearsal.
            ready = resolved is not None and claim is not None and ratio is not None and not compliance_stopped
            outcome = "dry_run" if ready else "failed"
        elif (resolved is None or claim is None or compliance_stopped
              or (ledger["pending"] and not ledger["dispatched"])):
            outcome = "failed"  # nothing got through (a partial run delivered at least something)
        elif ledger["pending"] or succeeded < len(segments) or ratio is None or pacing_result is None:
            outcome = "partial"
        else:
            outcome = "success"
        if mode.dry_run:
            not_applied = "dry run"
        elif pacing_result is None:
            not_applied = "apply_pacing did not finish" if ratio is not None else None
        else:
            not_applied = pacing_result.get("not_applied")
        return cls(
            campaign_key=campaign.key,
            campaign_id=campaign.campaign_id,
            run_id=run.run_id,
            run_type=run.run_type,
            dry_run=mode.dry_run,
            mode_reason=mode.reason,
            data_interval_start=run.data_interval_start,
            data_interval_end=run.data_interval_end,
            started_at=run.started_at,
            finished_at=finished_at,
            outcome=outcome,
            claim=claim or {},
            ledger=ledger,
            segments_total=len(segments),
            segments_succeeded=succeeded,
            # Delivered by a task retry: the circuit breaker was open or Genesys kept failing on the first try.
            segments_retried=sum(1 for r in segment_results if r and r.get("try_number", 1) > 1),
            # Waited out an open circuit breaker by rescheduling (no try used).
            segments_rescheduled=sum(1 for r in segment_results if r and r.get("reschedules", 0) > 0),
            would_send=sum(s["contacts"] - sum((s.get("would_skip") or {}).values()) for s in segments)
            if mode.dry_run else 0,
            would_skip=dict(would_skip),
            requests=dict(requests),
            estimate=(ratio or {}).get("estimate"),
            decision=(ratio or {}).get("decision"),
            pacing_applied=bool((pacing_result or {}).get("applied")),
            pacing_not_applied=not_applied,
            warnings=warnings,
            compliance=compliance,
            outcomes=synced,
            pacing_kept=(pacing_result or {}).get("kept"),
        )

    def compliance_failures(self) -> list[str]:
        """What compliance stopped in this run: a failed withdrawal, a claim refused."""
        failures = ["withdrawing opt-outs failed"] if self.compliance.get("withdrawal_failed") else []
        return failures + [f"claimed nothing: {reason}" for reason in self.compliance.get("blocked") or []]

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def lines(self) -> list[str]:
        """The human-readable report, one log line each (no phone numbers, no tokens)."""
        title = f"Run report: campaign {self.campaign_key} ({self.campaign_id})"
        out = [
            f"===== DRY RUN, nothing claimed or sent. {title} =====" if self.dry_run else f"===== {title} =====",
            f"run {self.run_id} ({self.run_type}); contacts created before {self.data_interval_end.isoformat()}",
            f"mode: {'DRY RUN' if self.dry_run else 'live'} ({self.mode_reason})",
            f"outcome: {self.outcome}",
        ]
        claim = self.claim
        if self.dry_run:
            out.append(
                f"would claim {claim.get('contacts', 0)} contacts in {self.segments_total} segments; would send "
                f"{self.would_send}, would skip {sum(self.would_skip.values())} {self._fmt(self.would_skip)}"
            )
        else:
            source = "re-run of this run's own claim" if claim.get("reused") else (
                f"{claim.get('claimed_now', 0)} newly claimed, {claim.get('adopted', 0)} adopted from earlier runs"
            )
            ledger = self.ledger
            out += [
                f"claimed {ledger['claimed']} contacts ({source}) in {self.segments_total} segments",
                f"dispatched {ledger['dispatched']}, skipped {ledger['skipped']} {self._fmt(ledger['skip_reasons'])}, "
                f"failed {ledger['failed']}, not yet sent {ledger['pending']}"
                + (f" ({ledger['in_doubt']} in doubt: their request got no answer; they are read back from "
                   "Genesys before any is sent again)" if ledger.get("in_doubt") else ""),
                f"segments: {self.segments_succeeded} of {self.segments_total} succeeded"
                + (f", {self.segments_retried} of them on a task retry (transient Genesys errors on the first "
                   "try: see those segments' logs)" if self.segments_retried else "")
                + (f", {self.segments_rescheduled} after waiting out the circuit breaker (rescheduled, no try "
                   "used)" if self.segments_rescheduled else ""),
            ]
        withdrawn = self.compliance.get("would_withdraw" if self.dry_run else "withdrawn") or {}
        out.append(
            f"{'would withdraw' if self.dry_run else 'withdrawn'} from Genesys "
            "(opted out or number changed since delivery): "
            f"{sum(withdrawn.values())} {self._fmt(withdrawn)}".rstrip()
        )
        req = self.requests
        out.append(
            f"Genesys requests (every try, from the request log): {req.get('requests', 0)} "
            f"(retries {req.get('retries', 0)}, 429s {req.get('throttled', 0)}, errors {req.get('errors', 0)}, "
            f"unanswered {req.get('unanswered', 0)}, token refreshes {req.get('token_refreshes', 0)}; "
            f"{req.get('task_tries', 0)} task tries)"
        )
        synced = self.outcomes or {}
        if synced.get("synced"):
            out.append(
                f"outcomes (Genesys analytics): {synced.get('buckets', 0)} 15-minute buckets pulled in "
                f"{synced.get('queries', 0)} queries up to {synced.get('until')}; "
                f"{synced.get('outstanding_buckets', 0)} of the 30-day window still to pull or settle"
                + (f"; {synced['idle_agents']} idle agents" if synced.get("idle_agents") is not None else "")
            )
        details = (self.decision or {}).get("details") or {}
        if self.estimate:
            e = self.estimate
            source = synced.get("source") or "dial_history"
            origin = "Genesys outcomes" if source == "genesys" else "dial history"
            out.append(
                f"answer rate: estimate {e['rate']:.4f} from {e['answers']} answers / {e['attempts']} dials "
                f"({origin if e['source'] == 'history' else f'no {origin}: the fallback'}), "
                f"credible interval [{e['lower']:.4f}, {e['upper']:.4f}]"
            )
        if details.get("talk_mean_seconds") is not None:
            windows = ", ".join(
                f"{label} {details[key]:.2f} %" for label, key in (
                    ("30-day", "realized_abandon_percent"), ("24 h", "realized_abandon_24h_percent"))
                if details.get(key) is not None
            )
            out.append(
                f"paced for {details.get('agents_paced')} agents, talk {details['talk_mean_seconds']:.0f} s "
                f"(cv {details.get('talk_cv', 0):.2f}), wrap-up {details.get('wrap_mean_seconds', 0):.0f} s "
                f"({details.get('timing_source')}); abandon target {details.get('paced_abandon_target', 0):.2f} %"
                + (f"; realized abandons {windows}" if windows else "")
            )
        if self.decision:
            d = self.decision
            predictive = details.get("predictive_ceiling") is not None
            out.append(f"pacing ({d['strategy']}) {self._paced_on(d, self.estimate or {})}")
            out.append(
                f"pacing ({d['strategy']}): ratio {d['ratio']:.3f}, maxCallsPerAgent {d['max_calls_per_agent']:g}"
                f"{' (predictive: a ceiling; Genesys paces each call against abandonRate)' if predictive else ''}, "
                f"outboundLineCount {d['outbound_line_count']}, abandonRate {d['abandon_rate']:g} -> "
                + ("applied" if self.pacing_applied else f"not applied: {self.pacing_not_applied or 'unknown'}")
            )
        if self.pacing_kept:
            k = self.pacing_kept
            out.append(
                f"Genesys kept: maxCallsPerAgent {k.get('maxCallsPerAgent')} (decimal "
                f"{k.get('maxCallsPerAgentDecimal')}), outboundLineCount {k.get('outboundLineCount')}, "
                f"abandonRate {k.get('abandonRate')}"
            )
        for warning in self.warnings:
            out.append(f"warning: {warning}")
        if self.duration_seconds is not None:
            out.append(f"duration: {self.duration_seconds:.1f} s")
        return out

    @staticmethod
    def _paced_on(decision: dict[str, Any], estimate: dict[str, Any]) -> str:
        """Which answer rate the strategy paced on, named as in the run log's JSON (decision.details, estimate)."""
        details = decision.get("details") or {}
        if decision.get("strategy") == "tutorial" and estimate.get("raw_rate") is not None:
            return f"paced on answers / dials {estimate['raw_rate']:.4f} (raw_rate: the seed's point estimate)"
        predicted = details.get("predicted_abandon_percent")
        model = f"; Markov model: {predicted:g} % abandons predicted" if predicted is not None else ""
        if details.get("paced_answer_rate") is not None:
            raised = f" {estimate['rate']:.4f}" if estimate.get("rate") is not None else ""
            return (f"paced on answer rate {details['paced_answer_rate']:.4f} (paced_answer_rate: the estimate"
                    f"{raised} raised for its uncertainty and the model's fit error{model})")
        if predicted is not None and estimate.get("rate") is not None:
            return (f"paced on the estimate {estimate['rate']:.4f} with a margin for its uncertainty "
                    f"(Markov model: {predicted:g} % abandons predicted)")
        return "paced on no answer rate (progressive: 1 line per idle agent)" if decision.get("ratio") == 1 else (
            "paced on the answer-rate estimate"
        )

    @staticmethod
    def _fmt(counts: dict[str, int]) -> str:
        return "(" + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) + ")" if counts else ""

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        for key in ("data_interval_start", "data_interval_end", "started_at", "finished_at"):
            value = data[key]
            data[key] = value.isoformat() if value else None
        data["duration_seconds"] = self.duration_seconds
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunReport:
        """The report back from ``to_dict`` (the ``report`` column of ``run_log``)."""
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("data_interval_start", "data_interval_end", "started_at", "finished_at"):
            if values.get(key):
                values[key] = datetime.fromisoformat(values[key])
        return cls(**values)

    def run_log_row(self) -> dict[str, Any]:
        ledger = self.ledger
        return {
            "campaign_id": self.campaign_id,
            "run_id": self.run_id,
            "campaign_key": self.campaign_key,
            "run_type": self.run_type,
            "dry_run": self.dry_run,
            "data_interval_start": self.data_interval_start,
            "data_interval_end": self.data_interval_end,
            "outcome": self.outcome,
            "claimed": ledger["claimed"],
            "dispatched": ledger["dispatched"],
            "skipped": ledger["skipped"],
            "failed": ledger["failed"],
            "pending": ledger["pending"],
            "report": json.dumps(self.to_dict()),
            "started_at": self.started_at,
        }
