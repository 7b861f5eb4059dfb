"""Properties of the answer-rate estimate and the dial-ratio strategies (pure Python: no DB, no Airflow)."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from genesys_devkit.simulator import CampaignParams, simulate
from genesys_dialer.config import RATIO_STRATEGIES, CampaignConfig
from genesys_dialer.pacing.markov import predicted_abandon_rate, ratio_steps, solve_chain
from genesys_dialer.pacing.strategies import (
    STRATEGIES,
    AnswerHistory,
    AnswerRateEstimate,
    CallTimes,
    HistoryBucket,
    PacingEvidence,
    PacingLimits,
    RealizedAbandons,
    beta_cdf,
    beta_quantile,
    decide_pacing,
    estimate_answer_rate,
    plan_pacing,
    window_noise_target,
)

rates = st.floats(min_value=1e-4, max_value=1.0, allow_nan=False)
team = st.integers(min_value=1, max_value=500)


def _campaign(**overrides: object) -> CampaignConfig:
    return CampaignConfig(key="test", campaign_id="c-1", **overrides)


def _limits(agents: int, ceiling: float = 15.0, lines: int = 10_000, target: float = 3.0) -> PacingLimits:
    return PacingLimits(agents, ceiling, lines, target)


def _given(p: float) -> AnswerRateEstimate:
    return AnswerRateEstimate(0, 0, p, p, p, p, 0.0, "given")


def test_tutorial_reproduces_the_seed() -> None:
    plan = plan_pacing(AnswerHistory(), _campaign(ratio_strategy="tutorial"))
    assert plan.decision.max_calls_per_agent == 1.0
    assert plan.decision.outbound_line_count == 2
    assert plan.decision.ratio == pytest.approx(0.15)
    history = AnswerHistory((HistoryBucket(0, 1000, 500),))
    decision = plan_pacing(history, _campaign(ratio_strategy="tutorial")).decision
    assert (decision.max_calls_per_agent, decision.outbound_line_count) == (5.0, 9)


def test_strategies_are_known_to_config() -> None:
    assert {"tutorial", "model"} <= set(STRATEGIES)
    assert set(STRATEGIES) == set(RATIO_STRATEGIES)  # config validates names without importing the model
    with pytest.raises(ValueError):
        _campaign(ratio_strategy="nope")


@settings(max_examples=150, deadline=None)
@given(p1=rates, p2=rates, agents=team)
def test_model_ratio_never_rises_with_p(p1: float, p2: float, agents: int) -> None:
    lo, hi = sorted((p1, p2))
    low_p = decide_pacing("model", _given(lo), _limits(agents))
    high_p = decide_pacing("model", _given(hi), _limits(agents))
    assert high_p.max_calls_per_agent <= low_p.max_calls_per_agent
    assert high_p.outbound_line_count <= low_p.outbound_line_count


@settings(max_examples=150, deadline=None)
@given(
    p=rates, agents=team, ceiling=st.floats(min_value=0.5, max_value=15.0),
    lines=st.integers(min_value=1, max_value=2000), target=st.floats(min_value=0.1, max_value=3.0),
    current=st.one_of(st.none(), st.floats(min_value=0.0, max_value=10.0)),
    strategy=st.sampled_from(sorted(STRATEGIES)),
)
def test_decision_respects_every_cap(
    p: float, agents: int, ceiling: float, lines: int, target: float, current: float | None, strategy: str
) -> None:
    decision = decide_pacing(strategy, _given(p), _limits(agents, ceiling, lines, target), current)
    assert 0 < decision.max_calls_per_agent <= min(15.0, max(ceiling, 1.0))
    assert 1 <= decision.outbound_line_count <= lines
    assert 0 < decision.abandon_rate <= min(target, 3.0)
    if current:
        assert decision.abandon_rate <= current


@settings(max_examples=60, deadline=None)
@given(
    buckets=st.lists(
        st.tuples(st.integers(0, 6), st.integers(0, 5000), st.floats(0, 1)), max_size=7
    ),
    agents=team,
)
def test_plan_is_defined_for_any_history(buckets: list[tuple[int, int, float]], agents: int) -> None:
    history = AnswerHistory(tuple(HistoryBucket(age, n, int(n * share)) for age, n, share in buckets))
    plan = plan_pacing(history, _campaign(ratio_strategy="model", agents=agents, max_outbound_lines=10_000))
    e = plan.estimate
    assert 0 < e.lower <= e.rate <= e.upper <= 1
    assert e.pacing_rate == e.upper  # the safe side for abandons
    assert 0 < e.prior_weight <= 1
    assert 1 <= plan.decision.max_calls_per_agent <= 15


def test_empty_history_is_the_prior() -> None:
    e = plan_pacing(AnswerHistory(), _campaign(ratio_strategy="model")).estimate
    assert e.source == "fallback" and e.prior_weight == 1.0
    assert e.rate == pytest.approx(0.15)
    assert e.upper > 0.15


@pytest.mark.parametrize("true_p", [0.03, 0.15, 0.5, 0.9])
def test_estimate_converges_to_the_true_rate(true_p: float) -> None:
    rng = random.Random(7)
    widths = []
    for n in (200, 5_000, 100_000):
        answers = sum(rng.random() < true_p for _ in range(n))
        e = estimate_answer_rate(AnswerHistory((HistoryBucket(0, n, answers),)), 0.15)
        widths.append(e.upper - e.lower)
    assert abs(e.rate - true_p) < 0.01
    assert e.lower <= true_p <= e.upper
    assert widths[0] > widths[1] > widths[2]


def test_sparse_history_does_not_swing_the_estimate() -> None:
    e = estimate_answer_rate(AnswerHistory((HistoryBucket(0, 5, 5),)), 0.15, prior_strength=30)
    assert e.rate < 0.3


def test_recency_weighting_follows_recent_days() -> None:
    history = AnswerHistory((HistoryBucket(0, 2000, 600), HistoryBucket(6, 2000, 200)))
    recent = estimate_answer_rate(history, 0.15, half_life_days=1.0)
    flat = estimate_answer_rate(history, 0.15, half_life_days=None)
    assert recent.rate > flat.rate


def test_beta_quantile_inverts_cdf() -> None:
    for a, b in [(0.5, 0.5), (4.5, 25.5), (300.0, 1700.0)]:
        for q in (0.05, 0.5, 0.95):
            assert beta_cdf(beta_quantile(q, a, b), a, b) == pytest.approx(q, abs=1e-9)


def test_model_dials_more_lines_for_low_answer_rates_and_bigger_teams() -> None:
    def ratio(p: float, agents: int) -> float:
        return decide_pacing("model", _given(p), _limits(agents)).max_calls_per_agent

    assert ratio(0.1, 20) > ratio(0.3, 20) > ratio(0.5, 20)
    assert ratio(0.2, 50) > ratio(0.2, 10)
    assert 4 < ratio(0.15, 20) < 15  # several lines per idle agent, where the seed gives 1


# A busy day: 10,000 live answers in the last 24 h, so the 24 h window's own scatter is small.
BUSY_DAY = RealizedAbandons(10_000, 100)


@pytest.mark.parametrize("agents", [5, 20])  # the Markov model and the surface
@pytest.mark.parametrize("window", ["30-day", "24 h"])
def test_realized_abandons_back_the_ratio_off(agents: int, window: str) -> None:
    campaign = _campaign(ratio_strategy="model", agents=agents)
    history = AnswerHistory((HistoryBucket(0, 20_000, 3_000),))

    def plan(realized: RealizedAbandons) -> Any:
        evidence = (PacingEvidence(realized_30d=realized, realized_24h=BUSY_DAY) if window == "30-day"
                    else PacingEvidence(realized_30d=BUSY_DAY, realized_24h=realized))
        return plan_pacing(history, campaign, evidence=evidence).decision

    calm = plan(RealizedAbandons(10_000, 100))
    near = plan(RealizedAbandons(10_000, 260))
    over = plan(RealizedAbandons(10_000, 290))  # 2.9 %: within the last 0.15 points, progressive already
    assert calm.max_calls_per_agent > near.max_calls_per_agent > over.max_calls_per_agent == 1.0
    assert not any("back" in n or "approaching" in n for n in calm.notes)
    assert any(f"realized {window} abandon rate 2.60 % is approaching" in n for n in near.notes)
    assert any("progressive" in n for n in over.notes)
    key = "realized_abandon_percent" if window == "30-day" else "realized_abandon_24h_percent"
    assert near.abandon_rate == 3.0 and near.details[key] == pytest.approx(2.6)
    few = plan(RealizedAbandons(50, 10))  # 20 % of 50 live answers: too few to judge, no back-off
    assert not any("realized" in n for n in few.notes) and few.max_calls_per_agent > 1.0
    if window == "30-day":
        assert few.max_calls_per_agent == calm.max_calls_per_agent


def test_the_target_sits_below_the_cap_by_a_days_scatter() -> None:
    targets = [window_noise_target(3.0, answers, 1.645) for answers in (0, 30, 300, 3000, 30_000)]
    assert targets[0] == 0.0  # no volume yet: no margin can be computed, nothing beyond progressive
    assert targets[1:] == sorted(targets[1:]) and targets[-1] < 3.0
    assert targets[3] == pytest.approx(3.0 * math.exp(-1.645 / math.sqrt(0.03 * 3000)))


def test_thin_history_and_unsynced_outcomes_dial_progressive() -> None:
    campaign = _campaign(ratio_strategy="model", agents=20)
    thin = plan_pacing(AnswerHistory((HistoryBucket(0, 50, 25),)), campaign).decision
    assert thin.max_calls_per_agent == 1.0 and any("min_history_attempts" in n for n in thin.notes)
    history = AnswerHistory((HistoryBucket(0, 20_000, 3_000),))
    failed = plan_pacing(history, campaign, evidence=PacingEvidence(
        realized_24h=BUSY_DAY, progressive_reasons=("the outcomes are stale",))).decision
    assert failed.max_calls_per_agent == 1.0 and "the outcomes are stale" in failed.notes
    assert failed.outbound_line_count == 20  # one line per agent


@pytest.mark.parametrize("agents", [6, 40])  # the Markov model and the surface
def test_longer_talk_times_dial_fewer_lines(agents: int) -> None:
    campaign = _campaign(ratio_strategy="model", agents=agents, max_outbound_lines=10_000)
    history = AnswerHistory((HistoryBucket(0, 50_000, 10_000),))

    def ratio(talk: float) -> float:
        evidence = PacingEvidence(realized_24h=BUSY_DAY, timing=CallTimes(talk, 1.0, 10.0, "measured"))
        return plan_pacing(history, campaign, evidence=evidence).decision.max_calls_per_agent

    assert ratio(60.0) > ratio(120.0) > ratio(300.0) > 1.0


def test_staffing_below_the_config_is_paced_on() -> None:
    campaign = _campaign(ratio_strategy="model", agents=20, max_outbound_lines=10_000)
    history = AnswerHistory((HistoryBucket(0, 50_000, 10_000),))

    def plan(staffed: int | None) -> Any:
        return plan_pacing(history, campaign, evidence=PacingEvidence(realized_24h=BUSY_DAY,
                                                                      staffed_agents=staffed)).decision

    full, noise, drop = plan(None), plan(18), plan(8)
    assert noise.max_calls_per_agent == full.max_calls_per_agent  # within the 20 % an observation scatters
    assert drop.details["agents_paced"] == 8 and drop.max_calls_per_agent < full.max_calls_per_agent
    assert drop.outbound_line_count < full.outbound_line_count
    assert any("8 agents staffed (config 20)" in n for n in drop.notes)


def test_predictive_mode_writes_a_ceiling_and_paces_genesys_on_the_target() -> None:
    campaign = _campaign(ratio_strategy="model", agents=20, max_outbound_lines=10_000)
    history = AnswerHistory((HistoryBucket(0, 50_000, 10_000),))
    power = plan_pacing(history, campaign, evidence=PacingEvidence(realized_24h=BUSY_DAY,
                                                                  dialing_mode="power")).decision
    predictive = plan_pacing(history, campaign, evidence=PacingEvidence(
        realized_24h=BUSY_DAY, dialing_mode="predictive")).decision
    assert predictive.max_calls_per_agent == pytest.approx(1.5 * power.max_calls_per_agent, abs=0.011)
    assert predictive.details["model_ratio"] == power.max_calls_per_agent
    assert predictive.abandon_rate == pytest.approx(power.details["paced_abandon_target"], abs=0.006)
    assert predictive.abandon_rate < power.abandon_rate == 3.0
    new = plan_pacing(AnswerHistory(), campaign, evidence=PacingEvidence(dialing_mode="predictive")).decision
    assert new.max_calls_per_agent == 1.0  # failing closed holds in predictive mode too


def test_current_target_is_never_loosened() -> None:
    decision = plan_pacing(AnswerHistory(), _campaign(ratio_strategy="model"), current_abandon_rate=2.0).decision
    assert decision.abandon_rate == 2.0
    assert decision.patch_body()["abandonRate"] == 2.0


def test_small_teams_stay_off_the_step_that_breaks_the_cap() -> None:
    # r >= 1.5 dials 2 lines for a single free agent: at p = 0.3 with 5 agents that step takes the abandon rate
    # from about 1.3 % to over 6 % (simulator). The Markov model sees the jump; the decision stays below it.
    params = CampaignParams(agents=5, answer_rate=0.3)
    assert predicted_abandon_rate(params, 1.49) < 0.02 < 0.05 < predicted_abandon_rate(params, 1.5)
    assert decide_pacing("model", _given(0.3), _limits(5)).max_calls_per_agent < 1.5


@pytest.mark.parametrize(("agents", "p"), [(4, 0.07), (7, 0.12), (12, 0.25), (14, 0.06)])
def test_markov_model_agrees_with_the_simulator(agents: int, p: float) -> None:
    """At the ratio the model picks (cells off the benchmark grid), it predicts what the simulator measures."""
    ratio = decide_pacing("model", _given(p), _limits(agents)).max_calls_per_agent
    params = CampaignParams(agents=agents, answer_rate=p)
    simulated = simulate(params, ratio, hours=12_000 / (agents * 22), seed=11)
    predicted = predicted_abandon_rate(params, ratio)
    assert 0.01 < simulated.abandon_rate <= 0.03  # near the cap, and under it
    assert predicted == pytest.approx(simulated.abandon_rate, rel=0.3)
    assert solve_chain(params, ratio).utilization == pytest.approx(simulated.utilization, abs=0.01)


@settings(max_examples=40, deadline=None)
@given(agents=st.integers(1, 19), p=rates, ceiling=st.floats(1.0, 15.0))
@example(agents=1, p=1.0, ceiling=1.9999999999999982)  # a ceiling just under a multiple of 0.01
def test_markov_model_abandons_rise_with_the_ratio(agents: int, p: float, ceiling: float) -> None:
    steps = ratio_steps(agents, ceiling)
    assert steps[0] == 1.0 and steps == sorted(set(steps)) and steps[-1] <= ceiling
    params = CampaignParams(agents=agents, answer_rate=p)
    assert solve_chain(params, 1.0).abandon_rate < 1e-12  # one line per idle agent never abandons
    rates_ = [solve_chain(params, r) for r in steps[:: max(1, len(steps) // 12)]]
    assert all(0.0 <= r.abandon_rate <= 1.0 and 0.0 <= r.utilization <= params.utilization_ceiling + 1e-9
               for r in rates_)
    assert all(b.abandon_rate >= a.abandon_rate - 1e-12 for a, b in itertools.pairwise(rates_))


def test_ratio_steps_are_the_dialers_line_counts() -> None:
    # 2 agents: a line is gained at r = 1.5 (1 idle), 1.25 and 1.75 (2 idle), ...
    assert ratio_steps(2)[:5] == [1.0, 1.38, 1.62, 2.0, 2.38]
    for agents in (1, 5, 19):
        steps = ratio_steps(agents)
        assert steps[0] == 1.0 and steps[-1] == 15.0
        lines = [tuple(int(r * idle + 0.5) for idle in range(1, agents + 1)) for r in steps]
        assert len(set(lines)) == len(lines)  # one representative per step


def test_margin_shrinks_as_the_history_grows() -> None:
    campaign = _campaign(ratio_strategy="model", agents=20)
    ratios = []
    for dials in (500, 5_000, 50_000):
        plan = plan_pacing(AnswerHistory((HistoryBucket(0, dials, dials // 5),)), campaign)
        assert plan.estimate.rate_sd is not None and plan.decision.details["paced_answer_rate"] > plan.estimate.rate
        ratios.append(plan.decision.max_calls_per_agent)
    assert ratios[0] < ratios[1] <= ratios[2]


def _confident(p: float) -> AnswerRateEstimate:
    """The estimate of a campaign with 200,000 dials of history at answer rate p."""
    return estimate_answer_rate(AnswerHistory((HistoryBucket(0, 200_000, round(200_000 * p)),)), 0.2)


# Cells beyond the range the model was calibrated on (p 0.04 to 0.7, talk 60 to 400 s + 10 s of wrap-up): long
# calls, a low answer rate, short calls at a high one, a large team; and at its edge. The surface alone,
# extrapolating, gave 3.3 to 3.8 % abandons here in the simulator (3.51, 3.64, 3.78, 3.28, 3.31, 3.41, 3.35 %
# measured).
@pytest.mark.parametrize(
    ("agents", "p", "talk", "wrap", "target"),
    [
        (20, 0.1, 600, 10, 2.5),
        (30, 0.05, 600, 10, 2.5),
        (20, 0.03, 400, 10, 3.0),
        (100, 0.1, 1200, 10, 3.0),
        (120, 0.4, 45, 10, 3.0),
        (120, 0.9, 45, 10, 3.0),
        (35, 0.2, 1500, 60, 2.5),
        # Small teams on very short calls (the Markov model): 9.62, 4.73, 3.19 and 4.05 % before; the last, paced
        # only as 70 s calls, 3.16 %.
        (19, 0.5, 15, 10, 3.0),
        (16, 0.7, 15, 10, 3.0),
        (12, 0.5, 20, 10, 3.0),
        (19, 0.8, 20, 10, 3.0),
        (5, 0.8, 20, 10, 3.0),
        # Inside the fitted range, teams under 50 agents on long calls (EDGE_TEAM_AGENTS, EDGE_HANDLE_SECONDS):
        # 3.84, 3.24, 3.05, 3.53, 3.32, 3.02 and 3.14 % before with bench_pacing's seed; all but the third over
        # the target with this one.
        (20, 0.04, 400, 10, 3.0),
        (20, 0.3, 400, 10, 3.0),
        (30, 0.2, 400, 10, 3.0),
        (25, 0.05, 400, 10, 3.0),
        (30, 0.04, 400, 10, 3.0),
        (40, 0.05, 400, 10, 3.0),
        (20, 0.04, 250, 10, 3.0),
    ],
)
def test_beyond_the_calibrated_range_the_model_keeps_its_abandon_target(
    agents: int, p: float, talk: float, wrap: float, target: float
) -> None:
    timing = CampaignParams(talk_mean=talk, wrap_mean=wrap)
    limits = PacingLimits(agents, 15.0, 100_000, target, timing=timing)
    ratio = decide_pacing("model", _confident(p), limits).max_calls_per_agent
    hours = 25_000 / (agents * 3600 / (talk + wrap) * 0.9)  # about 25,000 live answers
    simulated = simulate(CampaignParams(agents=agents, answer_rate=p, talk_mean=talk, wrap_mean=wrap), ratio,
                         hours=hours, seed=41)
    assert simulated.abandon_rate * 100 <= target, (ratio, simulated.abandon_rate)


def test_at_the_surfaces_edge_a_small_team_on_long_calls_is_checked_by_the_dialer_model() -> None:
    """Inside the fitted range, under 50 agents from 200 s of handle time: the chain checks the surface's ratio
    and the decision says so; 50 agents, or shorter calls, are left to the surface."""
    def decide(agents: int, talk: float) -> Any:
        limits = PacingLimits(agents, 15.0, 100_000, 3.0, timing=CampaignParams(talk_mean=talk, wrap_mean=10.0))
        return decide_pacing("model", _confident(0.04), limits)

    edge = decide(20, 400.0)
    assert edge.details["surface_edge"] == [
        "20 agents on 410 s handle times at the base dial times (checked from 200 s below 50 agents)"]
    assert edge.details["chain_agents"] == 20 and "surface_outside" not in edge.details
    assert edge.max_calls_per_agent < edge.details["surface_ratio"]
    assert any("errs high inside its fitted range" in note and "lowered it to" in note for note in edge.notes)
    for left in (decide(50, 400.0), decide(20, 180.0)):
        assert not {"surface_edge", "surface_outside", "surface_ratio"} & set(left.details), left.details
        assert not any("Markov" in note for note in left.notes)


def test_the_decision_says_when_the_dialer_model_overruled_the_surface() -> None:
    """Through plan_pacing, as the DAG calls it: measured 10-minute calls are beyond the surface's range."""
    campaign = _campaign(ratio_strategy="model", agents=20, max_outbound_lines=10_000)
    history = AnswerHistory((HistoryBucket(0, 50_000, 5_000),))

    def plan(talk: float) -> Any:
        evidence = PacingEvidence(realized_24h=BUSY_DAY, timing=CallTimes(talk, 1.0, 10.0, "measured"))
        return plan_pacing(history, campaign, evidence=evidence).decision

    long_calls, usual = plan(600.0), plan(120.0)
    assert long_calls.details["surface_outside"] == ["handle time 610 s at the base dial times (fitted 70 to 410 s)"]
    assert long_calls.details["chain_agents"] == 20
    assert long_calls.max_calls_per_agent < long_calls.details["surface_ratio"]
    assert any("lowered it to" in note and "handle time 610 s" in note for note in long_calls.notes)
    # Inside the range the surface is used as calibrated, unchecked.
    assert "surface_outside" not in usual.details and not any("lowered it" in n for n in usual.notes)
    assert usual.max_calls_per_agent == pytest.approx(
        math.floor(usual.details["answers_per_idle_agent"] / usual.details["paced_answer_rate"] * 100) / 100)


def test_the_markov_model_solves_large_busy_teams() -> None:
    """200 agents on 25-minute calls at p 0.8 keep nearly every agent busy: the chain's unnormalized levels grew
    past float64 (overflow, then NaN abandons) before they were rescaled as they are solved."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        result = solve_chain(CampaignParams(agents=200, answer_rate=0.8, talk_mean=1500.0), 1.3)
    assert 0.0 < result.abandon_rate < 0.1 and 0.9 < result.utilization < 1.0
    # Rescaling changes nothing where nothing overflowed (the value before it, at 20 agents).
    assert solve_chain(CampaignParams(agents=20, answer_rate=0.1, talk_mean=600.0), 3.71).abandon_rate == (
        pytest.approx(0.04982621246506717, rel=1e-9))


@settings(max_examples=40, deadline=None)
@given(
    p=rates, agents=team, talk=st.floats(1.0, 5000.0), wrap=st.floats(0.1, 600.0), target=st.floats(0.1, 3.0),
    spread=st.one_of(st.none(), st.floats(0.0, 1.0)),
)
@example(p=1e-4, agents=40, talk=27.0, wrap=19.0, target=1.2, spread=0.3)  # a margin of e^4900: math.exp overflowed
def test_any_call_times_and_spread_give_a_decision_within_the_caps(
    p: float, agents: int, talk: float, wrap: float, target: float, spread: float | None
) -> None:
    estimate = AnswerRateEstimate(0, 0, p, p, p, p, 0.0, "given", rate_sd=spread)
    timing = CampaignParams(talk_mean=talk, wrap_mean=wrap)
    limits = PacingLimits(agents, 15.0, 100_000, 3.0, pacing_abandon_target=target, timing=timing)
    decision = decide_pacing("model", estimate, limits)
    assert math.isfinite(decision.ratio) and 1.0 <= decision.max_calls_per_agent <= 15.0
    assert 1 <= decision.outbound_line_count <= 100_000
