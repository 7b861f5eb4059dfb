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
        finished_at: datetime,
    ) -> RunReport:
        requests: Counter[str] = Counter()
        for part in [resolved, pacing_result, *segment_results]:
            requests.update((part or {}).get("requests") or {})
        would_skip: Counter[str] = Counter()
        for segment in segments:
            would_skip.update(segment.get("would_skip") or {})
        warnings = list((resolved or {}).get("warnings") or [])
        if resolved is None:
            warnings.append("resolve_campaign did not finish: nothing was claimed or sent")
        if ratio:
            warnings += [f"pacing: {note}" for note in ratio["decision"].get("notes") or []]
        if ratio is None and resolved is not None:
            warnings.append("compute_dial_ratio did not finish: no pacing was decided")
        succeeded = sum(1 for r in segment_results if r)
        if mode.dry_run:
            # Red wherever the same live run would have failed before sending: a dry run is a rehearsal.
            outcome = "dry_run" if resolved is not None and claim is not None and ratio is not None else "failed"
        elif resolved is None or claim is None or (ledger["pending"] and not ledger["dispatched"]):
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
            would_send=sum(s["contacts"] - sum((s.get("would_skip") or {}).values()) for s in segments)
            if mode.dry_run else 0,
            would_skip=dict(would_skip),
            requests=dict(requests),
            estimate=(ratio or {}).get("estimate"),
            decision=(ratio or {}).get("decision"),
            pacing_applied=bool((pacing_result or {}).get("applied")),
            pacing_not_applied=not_applied,
            warnings=warnings,
        )

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
                f"failed {ledger['failed']}, not yet sent {ledger['pending']}",
                f"segments: {self.segments_succeeded} of {self.segments_total} succeeded"
                + (f", {self.segments_retried} of them on a task retry (circuit breaker open or transient "
                   "Genesys errors on the first try: see those segments' logs)" if self.segments_retried else ""),
            ]
        req = self.requests
        out.append(
            f"Genesys requests: {req.get('requests', 0)} (retries {req.get('retries', 0)}, "
            f"429s {req.get('throttled', 0)}, token refreshes {req.get('token_refreshes', 0)})"
        )
        if self.estimate:
            e = self.estimate
            out.append(
                f"answer rate: {e['answers']} / {e['attempts']} -> {e['rate']:.4f} "
                f"[{e['lower']:.4f}, {e['upper']:.4f}] ({e['source']}), paced on {e['pacing_rate']:.4f}"
            )
        if self.decision:
            d = self.decision
            out.append(
                f"pacing ({d['strategy']}): ratio {d['ratio']:.3f}, maxCallsPerAgent {d['max_calls_per_agent']:g}, "
                f"outboundLineCount {d['outbound_line_count']}, abandonRate {d['abandon_rate']:g} -> "
                + ("applied" if self.pacing_applied else f"not applied: {self.pacing_not_applied or 'unknown'}")
            )
        for warning in self.warnings:
            out.append(f"warning: {warning}")
        if self.duration_seconds is not None:
            out.append(f"duration: {self.duration_seconds:.1f} s")
        return out

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
