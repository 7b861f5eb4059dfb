"""The run report: what a run claimed, sent, skipped and decided, for the task log and the run log."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genesys_dialer.config import CampaignConfig
    from genesys_dialer.dags.run import RunInfo


@dataclass
class RunReport:
    campaign_key: str
    campaign_id: str
    run_id: str
    run_type: str
    dry_run: bool
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
    warnings: list[str] = field(default_factory=list)
    outcomes: dict[str, Any] | None = None
    pacing_kept: dict[str, Any] | None = None

    @classmethod
    def build(
        cls,
        *,
        campaign: CampaignConfig,
        run: RunInfo,
        resolved: dict[str, Any] | None,
        claim: dict[str, Any] | None,
        segments: list[dict[str, Any]],
        segment_results: list[dict[str, Any]],
        ratio: dict[str, Any] | None,
        pacing_result: dict[str, Any] | None,
        ledger: dict[str, Any],
        finished_at: datetime,
        synced: dict[str, Any] | None = None,
    ) -> RunReport:
        requests: Counter[str] = Counter()
        for part in [resolved, synced, pacing_result, *segment_results]:
            requests.update((part or {}).get("requests") or {})
        would_skip: Counter[str] = Counter()
        for segment in segments:
            would_skip.update(segment.get("would_skip") or {})
        warnings = list((resolved or {}).get("warnings") or [])
        if resolved is None:
            warnings.append("resolve_campaign did not finish: nothing was claimed or sent")
        if ratio:
            warnings += [f"pacing: {note}" for note in ratio["decision"].get("notes") or []]
        warnings += [f"pacing kept by Genesys: {w}" for w in (pacing_result or {}).get("warnings") or []]
        if campaign.pacing_source == "genesys" and resolved is not None and synced is None:
            warnings.append("sync_outcomes did not finish: paced on the outcomes synced before (progressive)")
        succeeded = sum(1 for r in segment_results if r)
        if run.dry_run:
            outcome = "dry_run"
        elif resolved is None or claim is None or (ledger["pending"] and not ledger["dispatched"]):
            outcome = "failed"  # nothing got through (a partial run delivered at least something)
        elif ledger["pending"] or succeeded < len(segments) or (pacing_result is None and ratio is not None):
            outcome = "partial"
        else:
            outcome = "success"
        return cls(
            campaign_key=campaign.key,
            campaign_id=campaign.campaign_id,
            run_id=run.run_id,
            run_type=run.run_type,
            dry_run=run.dry_run,
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
            would_send=sum(r.get("would_send", 0) for r in segment_results if r),
            would_skip=dict(would_skip),
            requests=dict(requests),
            estimate=(ratio or {}).get("estimate"),
            decision=(ratio or {}).get("decision"),
            pacing_applied=bool((pacing_result or {}).get("applied")),
            warnings=warnings,
            outcomes=synced,
            pacing_kept=(pacing_result or {}).get("kept"),
        )

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def lines(self) -> list[str]:
        """The human-readable report, one log line each (no phone numbers, no tokens)."""
        out = [
            f"===== Run report: campaign {self.campaign_key} ({self.campaign_id}) =====",
            f"run {self.run_id} ({self.run_type}{', DRY RUN: nothing sent' if self.dry_run else ''}); "
            f"contacts created before {self.data_interval_end.isoformat()}",
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
            paced = details.get("paced_answer_rate", e["pacing_rate"])
            out.append(
                f"answer rate: {e['answers']} / {e['attempts']} -> {e['rate']:.4f} "
                f"[{e['lower']:.4f}, {e['upper']:.4f}] ({e['source']}), paced on {paced:.4f}"
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
            out.append(
                f"pacing ({d['strategy']}): ratio {d['ratio']:.3f}, maxCallsPerAgent {d['max_calls_per_agent']:g}"
                f"{' (predictive: a ceiling; Genesys paces each call against abandonRate)' if predictive else ''}, "
                f"outboundLineCount {d['outbound_line_count']}, abandonRate {d['abandon_rate']:g} -> "
                f"{'applied' if self.pacing_applied else 'NOT applied'}"
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
