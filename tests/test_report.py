"""The run report's wording: each number says which estimate it is, as the run log's JSON names it."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pytest

from genesys_dialer.config import CampaignConfig
from genesys_dialer.dags.report import RunReport
from genesys_dialer.pacing.strategies import AnswerHistory, HistoryBucket, plan_pacing

END = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)
# A week at an 18 % answer rate, 1500 dials a day: what `make demo` seeds.
HISTORY = AnswerHistory(tuple(HistoryBucket(age_days=day, attempts=1500, answers=270) for day in range(7)))


def _report(**campaign_fields) -> RunReport:
    """The report of a successful run paced by the real strategy, its numbers shaped as the tasks pass them."""
    campaign = CampaignConfig(key="demo", campaign_id="c-1", **campaign_fields)
    plan = plan_pacing(HISTORY, campaign)
    return RunReport(
        campaign_key="demo", campaign_id="c-1", run_id="manual__1", run_type="manual", dry_run=False,
        mode_reason="auto: a manual run",
        data_interval_start=END - timedelta(minutes=15), data_interval_end=END,
        started_at=END, finished_at=END + timedelta(seconds=12), outcome="success",
        claim={"contacts": 5000, "claimed_now": 5000, "adopted": 0},
        ledger={"claimed": 5000, "dispatched": 4750, "skipped": 250, "failed": 0, "pending": 0,
                "skip_reasons": {"invalid_phone": 150, "missing_phone": 100}},
        segments_total=5, segments_succeeded=5, segments_retried=0, would_send=0, would_skip={},
        requests={"requests": 12, "retries": 0, "throttled": 0, "token_refreshes": 1},
        estimate=asdict(plan.estimate),
        decision={**asdict(plan.decision), "notes": list(plan.decision.notes)},
        pacing_applied=True,
    )


def _line(report: RunReport, start: str) -> str:
    (line,) = [line for line in report.lines() if line.startswith(start)]
    return line


def test_the_surface_model_names_the_rate_it_paced_on_not_the_estimates_upper_bound():
    report = _report(agents=25)
    paced = report.decision["details"]["paced_answer_rate"]
    assert paced != pytest.approx(report.estimate["upper"], abs=5e-5)  # the two numbers the issue confused
    assert _line(report, "pacing (model) paced on").startswith(
        f"pacing (model) paced on answer rate {paced:.4f} (paced_answer_rate: the estimate "
        f"{report.estimate['rate']:.4f} raised"
    )
    estimate_line = _line(report, "answer rate:")
    e = report.estimate
    assert estimate_line == (
        f"answer rate: estimate {e['rate']:.4f} from 1890 answers / 10500 dials (dial history), "
        f"credible interval [{e['lower']:.4f}, {e['upper']:.4f}]"
    )
    assert "paced" not in estimate_line
    d = report.decision
    assert _line(report, "pacing (model):") == (
        f"pacing (model): ratio {d['ratio']:.3f}, maxCallsPerAgent {d['max_calls_per_agent']:g}, "
        f"outboundLineCount {d['outbound_line_count']}, abandonRate 3 -> applied"
    )


def test_the_markov_model_says_it_paced_on_the_estimate_with_its_predicted_abandons():
    report = _report(agents=8)
    details = report.decision["details"]
    assert details["paced_answer_rate"] > report.estimate["rate"]  # raised for its uncertainty, never lowered
    assert _line(report, "pacing (model) paced on") == (
        f"pacing (model) paced on answer rate {details['paced_answer_rate']:.4f} (paced_answer_rate: the estimate "
        f"{report.estimate['rate']:.4f} raised for its uncertainty and the model's fit error; Markov model: "
        f"{details['predicted_abandon_percent']:g} % abandons predicted)"
    )


def test_the_tutorial_strategy_says_it_paced_on_the_seeds_point_estimate():
    report = _report(ratio_strategy="tutorial")
    assert report.estimate["raw_rate"] == pytest.approx(1890 / 10500)
    assert _line(report, "pacing (tutorial) paced on") == (
        "pacing (tutorial) paced on answers / dials 0.1800 (raw_rate: the seed's point estimate)"
    )


def test_a_report_read_back_from_the_run_log_prints_the_same_lines():
    report = _report(agents=25)
    stored = json.loads(report.run_log_row()["report"])
    assert RunReport.from_dict(stored).lines() == report.lines()
