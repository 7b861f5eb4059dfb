"""The pacing loop closed in-process: the runtime's pacing paces the emulator's dialer every 15 minutes.

Each interval, as the campaign DAG does: the outcomes the dialer produced are read through the same analytics
query and parser the ``sync_outcomes`` task uses (the unsettled last hour pulled again), turned into the
pacing's evidence by :func:`genesys_dialer.pacing.outcomes.evidence_from_outcomes`, and
:func:`genesys_dialer.pacing.strategies.plan_pacing` decides; the dialer then dials the next 15 minutes on what
was decided. No HTTP, no database, no Airflow: fast enough for a simulated week in seconds, so the benchmark
can score many scenarios and a test can run a short one. The DAG's own wiring of the same functions is tested
end to end against the emulator over HTTP (tests/test_closed_loop.py).

Scoring: the realized abandon rate over every complete 24 h window ending at a run and over the whole run
(the FCC's 30 days when the run is shorter), and each day's talk share beside the best fixed ratio for that
day, found by bisection on the same dialer replaying the day (the yardstick: no pacing model can know the day
in advance; the best fixed ratio is tuned on it in hindsight).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from genesys_dialer.config import CampaignConfig
from genesys_dialer.pacing.outcomes import (
    BUCKET,
    BUCKETS_PER_DAY,
    ComplianceRecord,
    OutcomeBucket,
    aggregates_query,
    evidence_from_outcomes,
    parse_aggregates,
)
from genesys_dialer.pacing.strategies import PacingDecision, plan_pacing
from genesys_emulator.analytics import AggregateQuery
from genesys_emulator.dialer import CampaignDialer, Pacing, Population

CAMPAIGN_ID = "closed-loop"
CAP = 0.03
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC

# Population over a run: hours since the start of the run -> who answers, how long they talk, who is staffed.
PopulationAt = Callable[[float], Population]


@dataclass
class Day:
    """One dialing day's figures (by emission time, within the day's dialing hours)."""

    index: int
    live_answers: int = 0
    abandons: int = 0
    talk_seconds: float = 0.0
    agent_seconds: float = 0.0
    ratios: list[float] = field(default_factory=list)

    @property
    def abandon_rate(self) -> float:
        return self.abandons / self.live_answers if self.live_answers else 0.0

    @property
    def talk_share(self) -> float:
        return self.talk_seconds / self.agent_seconds if self.agent_seconds else 0.0


@dataclass
class LoopResult:
    days: list[Day]
    windows_24h: list[float]  # abandon rate of every complete 24 h window ending at a run
    live_answers: int
    abandons: int
    decisions: list[tuple[datetime, PacingDecision]]
    estimates: list[float] = field(default_factory=list)  # the answer-rate estimate behind each decision

    @property
    def abandon_rate(self) -> float:
        return self.abandons / self.live_answers if self.live_answers else 0.0

    @property
    def worst_24h(self) -> float:
        return max(self.windows_24h, default=0.0)

    @property
    def talk_share(self) -> float:
        talk = sum(d.talk_seconds for d in self.days)
        agents = sum(d.agent_seconds for d in self.days)
        return talk / agents if agents else 0.0


def _bucket_read(dialer: CampaignDialer, start: datetime, end: datetime) -> list[OutcomeBucket]:
    """What ``sync_outcomes`` stores for [start, end): the analytics answer, through the DAG's parser."""
    query = aggregates_query(CAMPAIGN_ID, start, end)
    answer = AggregateQuery(query, 0).answer({CAMPAIGN_ID: dialer.outcomes(start.timestamp(), end.timestamp())})
    return parse_aggregates(answer, CAMPAIGN_ID, start, end)


def _day_figures(dialer: CampaignDialer, day: Day, start: datetime, end: datetime) -> None:
    for minute in range(int(start.timestamp() // 60), int(end.timestamp() // 60)):
        outcomes = dialer.minutes.get(minute)
        if outcomes is None:
            continue
        day.live_answers += outcomes.connected
        day.abandons += outcomes.abandoned
        day.talk_seconds += sum(outcomes.talk)
        day.agent_seconds += outcomes.agent_seconds


def run_loop(
    campaign: CampaignConfig,
    population_at: PopulationAt,
    *,
    days: int,
    day_hours: float = 8.0,
    mode: str = "power",
    seed: int = 1,
    history: Sequence[OutcomeBucket] = (),
    start: datetime = START,
    no_answer_timeout: float = 25.0,
    decide: Callable[[Any, Any, CampaignConfig, int | None], PacingDecision] | None = None,
) -> LoopResult:
    """Run ``days`` dialing days of ``day_hours`` from ``start``, re-pacing every 15 minutes.

    ``history``: outcome buckets the campaign already has before ``start`` (e.g. from another talk time).
    ``decide(history, evidence, campaign, idle_agents)``: replace the pacing (a fixed ratio, the tutorial);
    by default :func:`plan_pacing`.
    """
    dialer = CampaignDialer(population_at(0.0), now=start.timestamp(), seed=seed)
    stored: dict[datetime, OutcomeBucket] = {b.start: b for b in history}
    result = LoopResult(days=[], windows_24h=[], live_answers=0, abandons=0, decisions=[])
    intervals = round(day_hours * 3600 / BUCKET.total_seconds())
    for index in range(days):
        day_start = start + timedelta(days=index)
        day = Day(index)
        dialer.now = max(dialer.now, day_start.timestamp())  # the night passes without dialing
        for k in range(intervals):
            at = day_start + k * BUCKET
            decision, rate = _decide(campaign, stored, at, dialer, no_answer_timeout, decide)
            result.decisions.append((at, decision))
            result.estimates.append(rate)
            day.ratios.append(decision.max_calls_per_agent)
            pacing = Pacing(mode, decision.max_calls_per_agent, decision.outbound_line_count, decision.abandon_rate,
                            no_answer_timeout)
            dialer.configure(population_at((at - start).total_seconds() / 3600.0))
            dialer.advance((at + BUCKET).timestamp(), pacing)
            settle_from = max(at + BUCKET - timedelta(hours=1), start)
            for bucket in _bucket_read(dialer, settle_from, at + BUCKET):
                known = stored.get(bucket.start)
                idle = dialer.idle if bucket.start == at else (known.idle_agents if known else None)
                stored[bucket.start] = replace(bucket, idle_agents=idle)  # the stats read at the bucket's end
            end = at + BUCKET
            if end - start >= timedelta(days=1):
                window = [b for s, b in stored.items() if end - timedelta(days=1) <= s < end]
                live = sum(b.connects for b in window)
                if live:
                    result.windows_24h.append(sum(b.abandons for b in window) / live)
        day_end = day_start + timedelta(hours=day_hours)
        # Calls in flight at the end of the day finish (nothing new is dialed); their outcomes are synced.
        dialer.advance((day_end + timedelta(hours=1)).timestamp(), Pacing(mode, 1.0, 1, 3.0, no_answer_timeout,
                                                                        running=False))
        for bucket in _bucket_read(dialer, day_end - timedelta(hours=1), day_end + timedelta(hours=1)):
            known = stored.get(bucket.start)
            stored[bucket.start] = replace(bucket, idle_agents=known.idle_agents if known else None)
        _day_figures(dialer, day, day_start, day_end)
        result.days.append(day)
    result.live_answers = sum(d.live_answers for d in result.days)
    result.abandons = sum(d.abandons for d in result.days)
    if days >= 1 and not result.windows_24h:  # shorter than a day: the whole run is the one window
        result.windows_24h.append(result.abandon_rate)
    return result


def _decide(
    campaign: CampaignConfig,
    stored: dict[datetime, OutcomeBucket],
    at: datetime,
    dialer: CampaignDialer,
    no_answer_timeout: float,
    decide: Callable[[Any, Any, CampaignConfig, int | None], PacingDecision] | None,
) -> tuple[PacingDecision, float]:
    horizon = at - timedelta(days=campaign.history_days)
    window = sorted(((s, b) for s, b in stored.items() if horizon <= s and b.end <= at), reverse=True,
                    key=lambda item: item[0])
    aged = [((at - b.end).total_seconds() / 86400.0, b) for _, b in window]
    day_ago, month_ago = at - timedelta(days=1), at - timedelta(days=30)
    recent = [b for s, b in stored.items() if day_ago <= s and b.end <= at]
    month = [b for s, b in stored.items() if month_ago <= s and b.end <= at]
    compliance = ComplianceRecord(
        buckets_24h=BUCKETS_PER_DAY, connects_24h=sum(b.connects for b in recent),
        abandons_24h=sum(b.abandons for b in recent), buckets_30d=30 * BUCKETS_PER_DAY,
        connects_30d=sum(b.connects for b in month), abandons_30d=sum(b.abandons for b in month),
    )
    history, evidence = evidence_from_outcomes(aged, compliance, campaign, no_answer_timeout=no_answer_timeout)
    if decide is not None:
        return decide(history, evidence, campaign, dialer.idle), math.nan
    plan = plan_pacing(history, campaign, current_abandon_rate=campaign.abandon_rate_target, evidence=evidence)
    return plan.decision, plan.estimate.rate


def fixed_ratio(ratio: float) -> Callable[[Any, Any, CampaignConfig, int | None], PacingDecision]:
    """A pacing that always writes ``ratio`` (the yardstick), within the campaign's line budget."""

    def decide(history: Any, evidence: Any, campaign: CampaignConfig, idle: int | None) -> PacingDecision:
        lines = min(campaign.max_outbound_lines, math.ceil(campaign.agents * ratio - 1e-9))
        return PacingDecision("fixed", ratio, ratio, max(lines, 1), campaign.abandon_rate_target)

    return decide


def best_fixed_ratio_day(
    campaign: CampaignConfig,
    population_at: PopulationAt,
    day: int,
    *,
    day_hours: float = 8.0,
    seed: int = 1,
    start: datetime = START,
    no_answer_timeout: float = 25.0,
    steps: int = 10,
) -> tuple[float, Day]:
    """The largest fixed ratio in [1, 15] whose abandon rate on day ``day`` (replayed alone) is <= 3 %."""
    day_start = start + timedelta(days=day)

    def replay(ratio: float) -> Day:
        shifted = lambda hours: population_at(hours + 24.0 * day)  # noqa: E731
        return run_loop(campaign, shifted, days=1, day_hours=day_hours, seed=seed + 7919 * (day + 1),
                        start=day_start, no_answer_timeout=no_answer_timeout, decide=fixed_ratio(ratio)).days[0]

    top = replay(15.0)
    if top.abandon_rate <= CAP:
        return 15.0, top
    low, high, best = 1.0, 15.0, replay(1.0)
    for _ in range(steps):
        mid = (low + high) / 2.0
        figures = replay(mid)
        if figures.abandon_rate <= CAP:
            low, best = mid, figures
        else:
            high = mid
    return low, best


def history_buckets(
    population: Population,
    *,
    days: int,
    day_hours: float = 8.0,
    ratio: float = 1.0,
    end: datetime = START,
    seed: int = 99,
    no_answer_timeout: float = 25.0,
) -> list[OutcomeBucket]:
    """Outcome buckets of ``days`` earlier dialing days at a fixed ``ratio`` (a campaign's existing history)."""
    first = end - timedelta(days=days)
    loop_campaign = CampaignConfig(key="history", campaign_id=CAMPAIGN_ID, agents=max(population.agents, 1),
                                   max_outbound_lines=100_000)
    dialer = CampaignDialer(population, now=first.timestamp(), seed=seed)
    buckets: list[OutcomeBucket] = []
    for index in range(days):
        day_start = first + timedelta(days=index)
        dialer.now = max(dialer.now, day_start.timestamp())
        day_end = day_start + timedelta(hours=day_hours)
        lines = math.ceil(loop_campaign.agents * ratio)
        dialer.advance(day_end.timestamp(), Pacing("power", ratio, lines, 3.0, no_answer_timeout))
        dialer.advance((day_end + timedelta(hours=1)).timestamp(),
                       Pacing("power", ratio, lines, 3.0, no_answer_timeout, running=False))
        buckets += _bucket_read(dialer, day_start, day_end + timedelta(hours=1))
    return buckets


def thin_history(population: Population, *, dials: int = 50, end: datetime = START, seed: int = 98,
                 no_answer_timeout: float = 25.0) -> list[OutcomeBucket]:
    """The newest buckets of a one-agent day holding about ``dials`` dials: a campaign that has barely started."""
    day = history_buckets(replace(population, agents=1), days=1, end=end, seed=seed,
                          no_answer_timeout=no_answer_timeout)
    kept: list[OutcomeBucket] = []
    for bucket in reversed([b for b in day if b.attempts]):
        if sum(b.attempts for b in kept) >= dials:
            break
        kept.append(bucket)
    return kept


def ramp(start_value: float, end_value: float, *, days: int, day_hours: float = 8.0) -> Callable[[float], float]:
    """A value moving linearly over the run's dialing time (hours since start, nights skipped)."""
    total = day_hours * days

    def value(at_hours: float) -> float:
        day, into = divmod(at_hours, 24.0)
        dialing = day * day_hours + min(into, day_hours)
        return start_value + (end_value - start_value) * min(1.0, dialing / total)

    return value


def population_schedule(base: Population, **ramps: Callable[[float], float]) -> PopulationAt:
    """``base`` with fields following ``ramps`` (e.g. ``answer_rate=ramp(0.1, 0.3, ...)``)."""

    def at(hours: float) -> Population:
        changes: dict[str, Any] = {name: fn(hours) for name, fn in ramps.items()}
        if "agents" in changes:
            changes["agents"] = round(changes["agents"])
        return replace(base, **changes)

    return at
