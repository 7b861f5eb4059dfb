"""Answer-rate estimation and dial-ratio strategies: pure functions, no I/O.

A strategy turns an answer-rate estimate and the campaign's limits into the three fields this package
writes to the Genesys campaign (``maxCallsPerAgent``, ``outboundLineCount``, ``abandonRate``).
:func:`decide_pacing` applies the caps every strategy must respect, so a strategy cannot loosen them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from genesys_dialer.config import COMPLIANCE_ABANDON_CAP_PERCENT, GENESYS_MAX_CALLS_PER_AGENT
from genesys_dialer.pacing.campaign import CampaignParams, handle_units
from genesys_dialer.pacing.markov import (
    CHAIN_FIT_ERROR,
    SHORTEST_HANDLE_SECONDS,
    highest_admissible,
    predicted_abandon_rate,
    ratio_steps,
)

if TYPE_CHECKING:
    from genesys_dialer.config import CampaignConfig


@dataclass(frozen=True)
class HistoryBucket:
    """Dial outcomes of one part of the window (a day of dial_history, a 15-minute bucket of Genesys outcomes);
    ``age_days`` is how long before the window's end it ended (0 for the newest)."""

    age_days: float
    attempts: int
    answers: int
    abandons: int = 0


@dataclass(frozen=True)
class AnswerHistory:
    buckets: tuple[HistoryBucket, ...] = ()

    @property
    def attempts(self) -> int:
        return sum(b.attempts for b in self.buckets)

    @property
    def answers(self) -> int:
        return sum(b.answers for b in self.buckets)


@dataclass(frozen=True)
class AnswerRateEstimate:
    """What the pacing knows of the live-answer probability p.

    ``pacing_rate`` is the value strategies pace on: the bound that is safe for abandons (a higher p means
    fewer lines), never the optimistic one.
    """

    attempts: int
    answers: int
    rate: float
    lower: float
    upper: float
    pacing_rate: float
    prior_weight: float
    source: str  # "history" or "fallback"
    # The seed's point estimate (answers / attempts, or the fallback): what the ``tutorial`` strategy paces on.
    raw_rate: float | None = None
    # Posterior standard deviation of p (``None``: not known, e.g. a p given by hand). The ``model`` strategy
    # combines it with its own fit error into one margin (see :func:`model_paced_rate`).
    rate_sd: float | None = None


@dataclass(frozen=True)
class PacingLimits:
    agents: int
    max_calls_per_agent_ceiling: float
    max_outbound_lines: int
    abandon_rate_target: float
    # The abandon target (percent) the model paces for: the configured one, tightened by the campaign's
    # current target and by the realized-abandon back-off. ``None`` means ``abandon_rate_target``.
    pacing_abandon_target: float | None = None
    safety_factor: float = 1.0
    # One-sided z of the model's margin (estimate and fit errors combined: model_paced_rate, chain_ratio).
    margin_z: float = 1.645
    # The campaign's call times (talk, wrap-up, no-answer timeout): measured or assumed. None: the defaults.
    timing: CampaignParams | None = None


@dataclass(frozen=True)
class PacingDecision:
    strategy: str
    ratio: float
    max_calls_per_agent: float
    outbound_line_count: int
    abandon_rate: float
    notes: tuple[str, ...] = field(default=())
    details: dict[str, Any] = field(default_factory=dict)

    def patch_body(self) -> dict[str, float | int]:
        """The ``PATCH /api/v2/outbound/campaigns/{id}`` body."""
        return {
            "maxCallsPerAgent": self.max_calls_per_agent,
            "outboundLineCount": self.outbound_line_count,
            "abandonRate": self.abandon_rate,
        }


def seed_estimate(history: AnswerHistory, fallback: float) -> float:
    """The seed's point estimate: answers / attempts over the window, ``fallback`` when there is none."""
    attempts, answers = history.attempts, history.answers
    return answers / attempts if attempts and answers else fallback


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-12:
            break
    return h


def beta_cdf(x: float, a: float, b: float) -> float:
    """Regularized incomplete beta I_x(a, b), the Beta(a, b) CDF (stdlib only: no scipy in the task)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def beta_quantile(q: float, a: float, b: float) -> float:
    """The ``q`` quantile of Beta(a, b), by bisection on :func:`beta_cdf` (monotone, so always converges)."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2.0
        if beta_cdf(mid, a, b) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def estimate_answer_rate(
    history: AnswerHistory,
    fallback: float,
    *,
    prior_strength: float = 30.0,
    half_life_days: float | None = 3.0,
    credible_level: float = 0.9,
) -> AnswerRateEstimate:
    """Posterior of p under a Beta prior (mean ``fallback``, ``prior_strength`` pseudo-dials).

    Why: a few dials must not swing the ratio; the prior dominates until the history outweighs it. Days are
    weighted ``0.5 ** (age / half_life)`` so a drifting answer rate is followed. ``lower``/``upper`` are the
    central ``credible_level`` interval; ``pacing_rate`` is ``upper``, the side that is safe for abandons
    (believing p higher dials fewer lines).
    """
    fallback = min(max(fallback, 1e-6), 1.0)
    weighted_attempts = weighted_answers = 0.0
    for bucket in history.buckets:
        weight = 0.5 ** (max(bucket.age_days, 0) / half_life_days) if half_life_days else 1.0
        attempts = max(bucket.attempts, 0)
        weighted_attempts += weight * attempts
        weighted_answers += weight * min(max(bucket.answers, 0), attempts)
    alpha = prior_strength * fallback + weighted_answers
    beta = prior_strength * (1.0 - fallback) + (weighted_attempts - weighted_answers)
    tail = (1.0 - credible_level) / 2.0
    if beta <= 1e-9:  # p = 1 prior with no misses: nothing to be uncertain about
        rate = lower = upper = 1.0
        sd = 0.0
    else:
        rate = alpha / (alpha + beta)
        total = alpha + beta
        sd = math.sqrt(alpha * beta / (total * total * (total + 1.0)))
        lower, upper = beta_quantile(tail, alpha, beta), beta_quantile(1.0 - tail, alpha, beta)
        lower, upper = min(lower, rate), max(upper, rate)
    return AnswerRateEstimate(
        attempts=history.attempts,
        answers=history.answers,
        rate=rate,
        lower=lower,
        upper=upper,
        pacing_rate=upper,
        prior_weight=prior_strength / (prior_strength + weighted_attempts),
        source="history" if history.attempts else "fallback",
        raw_rate=seed_estimate(history, fallback),
        rate_sd=sd,
    )


Strategy = Callable[[AnswerRateEstimate, PacingLimits], PacingDecision]


def tutorial_strategy(estimate: AnswerRateEstimate, limits: PacingLimits) -> PacingDecision:
    """The seed tutorial's formula, kept for comparison: ratio = p * 0.85 / (1 - p).

    It rises with p, the opposite of what a predictive dialer needs (see docs); its
    ``maxContactsPerAgent`` = ceil(5 * ratio) maps to ``maxCallsPerAgent`` and its
    ``maxPredictionsPerInterval`` = ceil(10 * ratio) to ``outboundLineCount``. It paces on the seed's own
    point estimate (``raw_rate``), so its numbers are the seed's.
    """
    p = min(estimate.raw_rate if estimate.raw_rate is not None else estimate.pacing_rate, 0.999)
    ratio = p * 0.85 / (1.0 - p)
    max_predictions = min(max(math.ceil(ratio * 10), 1), 100)
    max_contacts = min(max(math.ceil(ratio * 5), 1), 50)
    return PacingDecision(
        strategy="tutorial",
        ratio=ratio,
        max_calls_per_agent=float(max_contacts),
        outbound_line_count=max_predictions,
        abandon_rate=limits.abandon_rate_target,
        details={"paced_answer_rate": p},
    )


# Teams of fewer agents than this are paced on the Markov model of the dialer (genesys_dialer.pacing.markov),
# step by step; larger teams on the response surface below (their steps are too fine to matter).
SMALL_TEAM_AGENTS = 20

# The model's response surface for 20+ agents, calibrated on genesys_devkit.simulator (benchmarks/
# calibrate_pacing.py: p in {0.04, 0.07, 0.12, 0.25, 0.4, 0.7}, agents 30/70/150, targets 2 and 3 %, talk 60 to
# 400 s; disjoint in p and talk time from the benchmark grid):
#   ln(live answers in flight per idle agent) = A + B ln N + C ln^2 N + D p + E ln(target / 3 %) + F ln(u / u0)
# with u = mean seconds a dial holds its line / mean handle seconds (the talk time in units of the dialing
# process's own clock) and u0 the same at the calibration's base timing (talk 120 s, wrap-up 10 s).
MODEL_COEFFICIENTS: tuple[float, ...] = (-2.1762, 0.7336, -0.0335, 0.2762, 0.1849, 0.4219)
# Relative error (rms, log scale) of that surface against the searched ratio over the 125 calibration cells.
MODEL_FIT_ERROR = 0.053
# Where the surface was fitted: the answer rates, and u / u0 from talk 400 s to 60 s (handle 410 to 70 s against
# the base timing's 130 s, at the base dial times). Beyond that it extrapolates, towards more lines: for a 2.5 or
# 3 % target the simulator measured 3.2 to 3.9 % abandons at its ratio (talk 600 to 1,500 s, p 0.02 to 0.03, 20 to
# 120 agents, short calls at p 0.4 and 0.9). So the model reads it at the range's edge where that errs low
# (answers_per_idle_agent), and the Markov model of the dialer checks it where it would not (chain_checked_ratio).
SURFACE_BASE_HANDLE_SECONDS = CampaignParams().talk_mean + CampaignParams().wrap_mean
SURFACE_ANSWER_RATES = (0.04, 0.7)
SURFACE_LONGEST_HANDLE_SECONDS = 410.0
# The shortest end is the same calibration grid's as the Markov correction's (talk 60 s + 10 s of wrap-up).
SURFACE_UNITS = (SURFACE_BASE_HANDLE_SECONDS / SURFACE_LONGEST_HANDLE_SECONDS,
                 SURFACE_BASE_HANDLE_SECONDS / SHORTEST_HANDLE_SECONDS)
# Inside that range the surface still errs high for teams below its calibration's middle one (it was fitted on
# 30, 70 and 150 agents) on long calls: for a 3 % target the simulator measured 3.0 to 3.8 % at its ratio in 22
# of 48 cells of 20 to 40 agents, p 0.04 to 0.1, talk 250 to 400 s (bench_pacing's EDGE_CELLS), and up to 3.24 %
# at p 0.2 and 0.3; none over 2.8 % from 50 agents, or below 200 s, in a scan of 120 cells. The chain checks it
# there too.
EDGE_TEAM_AGENTS = 50
EDGE_HANDLE_SECONDS = 200.0
# What the check may cost: the chain's solve grows as agents x (lines in flight)^3, i.e. as r^3 N^4. This budget
# is 30 agents at ratio 15 (0.3 s a check; up to 3 s when it must search down from there): teams up to 30
# agents at any ratio, about 70 at ratio 5, 170 at ratio 1.5. A larger team is checked through the largest team
# the budget allows (chain_checked_ratio).
CHAIN_CHECK_BUDGET = 30**4 * 15**3


def surface_features(p: float, agents: int, abandon_target_percent: float, units: float) -> list[float]:
    """The terms of :data:`MODEL_COEFFICIENTS`: 1, ln N, ln^2 N, p, ln(target / 3 %), ln(u / u0). The calibration
    fits on these very terms (u / u0 = ``units``: dial seconds per handle second relative to the base timing)."""
    log_n = math.log(max(agents, 1))
    target = max(abandon_target_percent, 1e-3) / COMPLIANCE_ABANDON_CAP_PERCENT
    return [1.0, log_n, log_n * log_n, p, math.log(target), math.log(units)]


def answers_per_idle_agent(
    p: float, agents: int, abandon_target_percent: float, timing: CampaignParams | None = None
) -> float:
    """Live answers to keep in flight per idle agent (ratio x p) for a fixed-ratio dialer at the target.

    Why this shape: by flow balance r·p is the expected number of live answers heading for each idle agent;
    it may exceed 1 because busy agents come free while calls ring, and it grows sub-linearly with the team
    (pooling: the relative spread of answers and of agents coming free shrinks as ~1/sqrt(N)); a tighter
    target lowers it; and it grows with the share of a handle time a dial rings (more agents come free while
    calls ring). The constants are fitted on the simulator, for 20 agents and more. Beyond p = 1 / D, a stops
    rising with p, so the ratio a / p never rises with p.
    """
    d = MODEL_COEFFICIENTS[3]
    p = min(p, 1.0 / d) if d > 0 else p
    # Never beyond the fitted range where that would raise the ratio: a shorter handle time or a higher p than
    # the calibration's is read as its shortest and highest (extrapolated, 120 agents on 45 s calls at p 0.4 and
    # 0.9 gave 3.3 and 3.4 % abandons for a 3 % target). The other sides: chain_checked_ratio.
    units = min(surface_units(p, timing), SURFACE_UNITS[1])
    terms = surface_features(min(p, SURFACE_ANSWER_RATES[1]), agents, abandon_target_percent, units)
    return math.exp(sum(k * x for k, x in zip(MODEL_COEFFICIENTS, terms, strict=True)))


def surface_units(p: float, timing: CampaignParams | None) -> float:
    """u / u0: the campaign's dial seconds per handle second relative to the base timing's, at answer rate p."""
    if timing is None:
        return 1.0
    at = min(max(p, 1e-6), 1.0)
    return handle_units(replace(timing, answer_rate=at)) / handle_units(CampaignParams(answer_rate=at))


def outside_surface(rates: tuple[float, ...], timing: CampaignParams | None) -> list[str]:
    """What of the campaign lies beyond where the response surface was fitted, on the sides where it errs high
    (empty: nothing): a lower answer rate, a longer handle time. Beyond the other sides it is held at the fitted
    range's edge instead (answers_per_idle_agent)."""
    misses: list[str] = []
    low, high = SURFACE_ANSWER_RATES
    if min(rates) < low:
        misses.append(f"answer rate {min(rates):.3f} (fitted {low:g} to {high:g})")
    units = surface_units(min(max(rates), 1.0), timing)
    if units < SURFACE_UNITS[0] * (1 - 1e-9):  # 410 s itself is inside
        shortest, longest = (SURFACE_BASE_HANDLE_SECONDS / u for u in reversed(SURFACE_UNITS))
        misses.append(f"handle time {SURFACE_BASE_HANDLE_SECONDS / units:.0f} s at the base dial times (fitted "
                      f"{shortest:.0f} to {longest:.0f} s)")
    return misses


def surface_edge(agents: int, rate: float, timing: CampaignParams | None) -> list[str]:
    """What puts a campaign inside the surface's range but where it was seen to err high (empty: nothing): a
    team under EDGE_TEAM_AGENTS on handle times from EDGE_HANDLE_SECONDS, at the base dial times."""
    if agents >= EDGE_TEAM_AGENTS:
        return []
    handle = SURFACE_BASE_HANDLE_SECONDS / surface_units(min(max(rate, 1e-6), 1.0), timing)
    if handle < EDGE_HANDLE_SECONDS:
        return []
    return [f"{agents} agents on {handle:.0f} s handle times at the base dial times (checked from "
            f"{EDGE_HANDLE_SECONDS:.0f} s below {EDGE_TEAM_AGENTS} agents)"]


# Where the chain checks the surface's ratio, as the decision's notes say it.
SURFACE_DOUBTS = {"outside": "outside where the model's surface was fitted",
                  "edge": "where the model's surface errs high inside its fitted range"}


def surface_doubts(agents: int, rate: float, paced: float, timing: CampaignParams | None) -> tuple[str, list[str]]:
    """Whether the surface's ratio needs the chain's check, and why: ("outside", ...) beyond its fitted range on
    a side where it errs high, ("edge", ...) inside it where it was seen to, ("", []) neither. Handle times are
    as the surface sees them: seconds at the base dial times (talk, wrap-up and ring times together)."""
    if outside := outside_surface((rate, paced), timing):
        return "outside", outside
    if edge := surface_edge(agents, paced, timing):
        return "edge", edge
    return "", []


def chain_checked_ratio(
    surface: float, rate: float, paced: float, limits: PacingLimits, target: float, rel_sd: float, ceiling: float,
) -> tuple[float | None, int, float]:
    """What the Markov model of the dialer makes of the surface's ratio ``surface`` (before ``ceiling``, the
    highest ratio the campaign may write).

    Returns (a lower ratio, or None when the chain admits the surface's; the team size the chain was solved
    for; its predicted abandon percent at the ratio it admits). Where :data:`CHAIN_CHECK_BUDGET` allows, the
    chain's highest admissible step at or below the surface's ratio (the small-team rule: p raised by its margin,
    the chain's fit error). A larger team is checked through the largest it allows: its ratio scaled by what
    the chain admits there over what the surface gives there. Why that holds: in the surface's form the
    extrapolated terms (p, u) add the same log error at every team size, and a larger team abandons less at a
    given ratio (pooling), so the scaled ratio errs low.
    """
    affordable = int((CHAIN_CHECK_BUDGET / min(ceiling, max(surface, 1.0)) ** 3) ** 0.25 + 1e-9)
    size = min(limits.agents, max(SMALL_TEAM_AGENTS, affordable))
    reference = surface if size == limits.agents else (
        limits.safety_factor * surface_ratio(paced, size, target, limits.timing))
    admitted, predicted = chain_ratio(
        rate, size, target, rel_sd=rel_sd, margin_z=limits.margin_z, ceiling=max(1.0, min(ceiling, reference)),
        timing=limits.timing,
    )
    if admitted >= min(ceiling, reference) - 0.01:  # the top step: the reference, to 0.01
        return None, size, predicted
    return max(1.0, surface * admitted / reference), size, predicted


def raised(p: float, log_margin: float) -> float:
    """p x e^log_margin, at most 1. A margin past e^50 raises any p in use to 1 (math.exp would overflow
    at e^710: an estimate given by hand with a spread hundreds of times its rate)."""
    return min(1.0, p * math.exp(min(log_margin, 50.0)))


def _relative_sd(estimate: AnswerRateEstimate) -> float:
    rate = min(max(estimate.rate, 1e-6), 1.0)
    return (estimate.rate_sd / rate) if estimate.rate_sd else 0.0


def model_paced_rate(estimate: AnswerRateEstimate, margin_z: float = 1.645) -> float:
    """The p the surface paces on: the posterior mean raised by one margin for both of its errors.

    Why: the ratio goes as 1/p, so a relative error in p and a relative error of the fitted surface act alike;
    independent, they add in quadrature: p_mean x exp(z sqrt(sd_p^2 / p_mean^2 + MODEL_FIT_ERROR^2)). The
    margin shrinks as the history grows (sd_p ~ 1/sqrt(dials)) down to the fit error alone.
    Without a posterior sd (a p given by hand) only the fit error counts.
    """
    rate = min(max(estimate.rate, 1e-6), 1.0)
    rel_sd = _relative_sd(estimate)
    return raised(rate, margin_z * math.sqrt(rel_sd * rel_sd + MODEL_FIT_ERROR * MODEL_FIT_ERROR))


def surface_ratio(p: float, agents: int, abandon_target_percent: float, timing: CampaignParams | None = None) -> float:
    """Lines per idle agent from the response surface: answers_per_idle_agent / p, at least 1."""
    p = min(max(p, 1e-6), 1.0)
    return max(1.0, answers_per_idle_agent(p, agents, abandon_target_percent, timing) / p)


def chain_ratio(
    p: float,
    agents: int,
    abandon_target_percent: float,
    *,
    rel_sd: float = 0.0,
    margin_z: float = 1.645,
    ceiling: float = GENESYS_MAX_CALLS_PER_AGENT,
    timing: CampaignParams | None = None,
) -> tuple[float, float]:
    """The highest dialer step whose predicted abandon rate, plus its margin, stays within the target.

    Returns (ratio, predicted abandon rate in percent at the posterior mean). For each step the Markov model
    (:func:`genesys_dialer.pacing.markov.predicted_abandon_rate`) is evaluated at the posterior mean p and at
    p raised by ``margin_z`` posterior sds; the margin on the log abandon rate combines that shift and the
    model's own error (CHAIN_FIT_ERROR) in quadrature, as :func:`model_paced_rate` does for the surface.
    Abandons rise with the ratio, so the highest admissible step is found by bisection over the steps.
    """
    p = min(max(p, 1e-6), 1.0)
    p_high = raised(p, margin_z * rel_sd)
    limit = math.log(abandon_target_percent / 100.0)
    steps = ratio_steps(agents, ceiling)
    base = replace(timing or CampaignParams(), agents=agents)

    @functools.cache
    def predicted(ratio: float) -> tuple[float, bool]:
        """(abandon rate at the posterior mean, whether the step is admissible)."""
        at_mean = predicted_abandon_rate(replace(base, answer_rate=p), ratio)
        at_high = predicted_abandon_rate(replace(base, answer_rate=p_high), ratio)
        if at_high <= 0.0:
            return at_mean, True
        if at_mean <= 0.0:  # no abandons at the mean: judge the raised p alone
            return at_mean, math.log(at_high) + margin_z * CHAIN_FIT_ERROR <= limit
        margin = math.hypot(math.log(at_high) - math.log(at_mean), margin_z * CHAIN_FIT_ERROR)
        return at_mean, math.log(at_mean) + margin <= limit

    ratio = steps[highest_admissible(steps, lambda step: predicted(step)[1])]
    return ratio, 100.0 * predicted(ratio)[0]


def model_strategy(estimate: AnswerRateEstimate, limits: PacingLimits) -> PacingDecision:
    """This project's pacing: below 20 agents the Markov model step by step, from 20 the response surface.

    ``maxCallsPerAgent`` is the ratio rounded down to 0.01 (power mode reads it as the ratio; in predictive
    mode it is a ceiling, see docs/pacing.md), and ``outboundLineCount`` = ceil(agents x ratio).
    """
    target = limits.pacing_abandon_target if limits.pacing_abandon_target is not None else (
        limits.abandon_rate_target
    )
    target = min(target, limits.abandon_rate_target, COMPLIANCE_ABANDON_CAP_PERCENT)
    ceiling = max(1.0, min(GENESYS_MAX_CALLS_PER_AGENT, limits.max_calls_per_agent_ceiling))
    rate = min(max(estimate.rate, 1e-6), 1.0)
    notes: list[str] = []
    details: dict[str, Any] = {"paced_abandon_target": target}
    if target <= 0:
        ratio = 1.0
        notes.append("abandon back-off: dialing progressive (1 line per idle agent)")
    elif limits.agents < SMALL_TEAM_AGENTS:

        def chain(timing: CampaignParams | None) -> tuple[float, float]:
            return chain_ratio(rate, limits.agents, target, rel_sd=_relative_sd(estimate), margin_z=limits.margin_z,
                               ceiling=ceiling, timing=timing)

        ratio, predicted = chain(limits.timing)
        timing = limits.timing or CampaignParams()
        handle = timing.talk_mean + timing.wrap_mean
        if handle < SHORTEST_HANDLE_SECONDS:
            # The lower of two readings: at the measured call times, and as calls as long as the shortest the
            # correction was fitted on (either alone broke the cap somewhere: the first from about 8 agents, the
            # second for 5 agents at p 0.8).
            as_longer, predicted_longer = chain(
                replace(timing, talk_mean=SHORTEST_HANDLE_SECONDS - timing.wrap_mean))
            if as_longer < ratio:
                details["paced_handle_seconds"] = SHORTEST_HANDLE_SECONDS
                notes.append(f"handle time {handle:.0f} s is shorter than the Markov model was calibrated for: "
                             f"paced as {SHORTEST_HANDLE_SECONDS:.0f} s calls, ratio {ratio:.2f} lowered to "
                             f"{as_longer:.2f}")
                ratio, predicted = as_longer, predicted_longer
        if limits.safety_factor < 1.0:
            ratio = max(s for s in ratio_steps(limits.agents, ceiling) if s <= max(1.0, ratio * limits.safety_factor))
        details.update(
            model="markov", predicted_abandon_percent=round(predicted, 3),
            paced_answer_rate=raised(rate, limits.margin_z * _relative_sd(estimate)),
        )
    else:
        paced = model_paced_rate(estimate, limits.margin_z)
        surface = limits.safety_factor * surface_ratio(paced, limits.agents, target, limits.timing)
        details.update(model="surface", paced_answer_rate=paced, answers_per_idle_agent=surface * paced)
        ratio = min(surface, ceiling)
        if surface > ceiling:
            notes.append(f"model ratio {surface:.2f} limited by the maxCallsPerAgent ceiling {ceiling:g}")
        kind, doubts = surface_doubts(limits.agents, rate, paced, limits.timing)
        if doubts:
            checked, size, predicted = chain_checked_ratio(
                surface, rate, paced, limits, target, _relative_sd(estimate), ceiling)
            details.update({f"surface_{kind}": doubts}, chain_agents=size,
                           predicted_abandon_percent=round(predicted, 3))
            if checked is not None and checked < ratio:
                notes.append(
                    f"{' and '.join(doubts)}: {SURFACE_DOUBTS[kind]}, so the Markov model of the dialer checked its "
                    f"ratio {ratio:.2f} and lowered it to {checked:.2f}"
                    + ("" if size == limits.agents else f" (through a team of {size})")
                )
                details["surface_ratio"] = round(ratio, 3)
                ratio = checked
    calls = max(1.0, math.floor(ratio * 100.0 + 1e-9) / 100.0)
    return PacingDecision(
        strategy="model",
        ratio=calls,
        max_calls_per_agent=calls,
        outbound_line_count=math.ceil(limits.agents * calls - 1e-9),
        abandon_rate=limits.abandon_rate_target,
        notes=tuple(notes),
        details=details,
    )


STRATEGIES: dict[str, Strategy] = {"tutorial": tutorial_strategy, "model": model_strategy}


def decide_pacing(
    strategy: str,
    estimate: AnswerRateEstimate,
    limits: PacingLimits,
    current_abandon_rate: float | None = None,
) -> PacingDecision:
    """Run ``strategy`` and clamp its answer to the caps no strategy may loosen.

    ``maxCallsPerAgent`` stays within (0, min(15, ceiling)], ``outboundLineCount`` within [1, line budget],
    and ``abandonRate`` never rises above the configured target, the compliance cap, or the campaign's
    current target (the pipeline may tighten pacing, never loosen the abandon target).
    """
    raw = STRATEGIES[strategy](estimate, limits)
    notes = list(raw.notes)
    ceiling = min(GENESYS_MAX_CALLS_PER_AGENT, limits.max_calls_per_agent_ceiling)
    calls = min(max(raw.max_calls_per_agent, 1.0), ceiling)
    if calls != raw.max_calls_per_agent:
        notes.append(f"maxCallsPerAgent {raw.max_calls_per_agent:g} clamped to {calls:g}")
    lines = min(max(raw.outbound_line_count, 1), limits.max_outbound_lines)
    if lines != raw.outbound_line_count:
        notes.append(
            f"the line budget (max_outbound_lines {limits.max_outbound_lines}) clamps outboundLineCount from "
            f"{raw.outbound_line_count} to {lines}: only about {lines / calls:.0f} idle agents get "
            f"{calls:g} lines each; raise it in the config (and the campaign's line allocation in Genesys)"
        )
    abandon_caps = [raw.abandon_rate, limits.abandon_rate_target, COMPLIANCE_ABANDON_CAP_PERCENT]
    if current_abandon_rate is not None and current_abandon_rate > 0:
        abandon_caps.append(current_abandon_rate)
    abandon = min(abandon_caps)
    if abandon != raw.abandon_rate:
        notes.append(f"abandonRate {raw.abandon_rate:g} tightened to {abandon:g}")
    return PacingDecision(raw.strategy, raw.ratio, calls, lines, abandon, tuple(notes), dict(raw.details))


@dataclass(frozen=True)
class RealizedAbandons:
    """A campaign's realized abandon record over one compliance window (live answers: the denominator)."""

    live_answers: int
    abandons: int

    @property
    def rate_percent(self) -> float | None:
        return 100.0 * self.abandons / self.live_answers if self.live_answers else None


# The compliance windows the realized abandon rate must stay within the cap over: FCC (30 days) and Ofcom (24 h).
COMPLIANCE_WINDOWS = ("30-day", "24 h")


def abandon_backoff(
    target_percent: float,
    realized: RealizedAbandons | None,
    *,
    start_fraction: float = 0.8,
    stop_fraction: float = 0.95,
    min_answers: int = 100,
    window: str = "30-day",
) -> tuple[float, str | None]:
    """The abandon target the model paces for, given one window's realized record, and a note if it backs off.

    Why: the model is calibrated, not exact; the legal measure is the realized rate. From ``start_fraction``
    of the target upwards the paced target falls linearly, to zero at ``stop_fraction``: from there the model
    dials progressive (no abandons) until the window's rate recovers, like VICIdial's hard limit, but before
    the window reaches the cap (the last intervals' scatter must not carry it over). Fewer than
    ``min_answers`` live answers are too few to judge.
    """
    rate = realized.rate_percent if realized is not None else None
    if rate is None or realized is None or realized.live_answers < min_answers:
        return target_percent, None
    start, stop = start_fraction * target_percent, max(stop_fraction, start_fraction) * target_percent
    if rate >= stop:
        return 0.0, (
            f"realized {window} abandon rate {rate:.2f} % is within {target_percent - rate:.2f} points of the "
            f"{target_percent:g} % target: backing off to progressive dialing"
        )
    if rate > start:
        paced = target_percent * (stop - rate) / (stop - start)
        return paced, (
            f"realized {window} abandon rate {rate:.2f} % is approaching the {target_percent:g} % target: "
            f"pacing for {paced:.2f} %"
        )
    return target_percent, None


def window_noise_target(target_percent: float, daily_answers: float, z: float) -> float:
    """The target to pace for so a 24 h window's realized rate stays under ``target_percent``.

    Why: a day's realized abandon rate scatters around what the dialer runs at (binomial: relative sd
    1 / sqrt(rate x live answers a day)), and the Ofcom rule judges every 24 h window, not the average. Pacing
    ``z`` of that scatter below the cap keeps the windows under it; the margin shrinks as the daily volume
    grows, and with little volume (a new campaign) it is wide.
    """
    if target_percent <= 0:
        return 0.0
    if daily_answers <= 0:
        return 0.0
    relative = 1.0 / math.sqrt(target_percent / 100.0 * daily_answers)
    return target_percent * math.exp(-z * relative)


@dataclass(frozen=True)
class PacingEvidence:
    """What was measured besides the answer history: the compliance windows, call times, staffing, and any
    reason to dial progressive whatever the model says (fail closed)."""

    realized_30d: RealizedAbandons | None = None
    realized_24h: RealizedAbandons | None = None
    timing: CallTimes | None = None
    staffed_agents: int | None = None  # observed; None: not known (the config's agents are paced on)
    no_answer_timeout: float | None = None
    progressive_reasons: tuple[str, ...] = ()
    dialing_mode: str | None = None  # the campaign's dialingMode (predictive: see predictive_pacing)
    half_life_days: float | None = None  # recency half-life of the history's buckets (None: the config's)
    fast_half_life_days: float | None = None  # a short-memory estimate paced on when it is higher (drift up)


@dataclass(frozen=True)
class CallTimes:
    """Talk and wrap-up (seconds) the model paces on, and where they come from."""

    talk_mean: float
    talk_cv: float
    wrap_mean: float
    source: str = "assumed"  # "measured" (Genesys analytics) or "assumed" (config)
    calls: float = 0.0  # (recency-weighted) talks measured


@dataclass(frozen=True)
class PacingPlan:
    estimate: AnswerRateEstimate
    decision: PacingDecision


def _progressive(decision: PacingDecision, agents: int, reason: str) -> PacingDecision:
    """The same decision dialing one line per idle agent (zero abandons): what failing closed means here."""
    return replace(
        decision, ratio=1.0, max_calls_per_agent=1.0,
        outbound_line_count=min(max(agents, 1), decision.outbound_line_count) if decision.outbound_line_count
        else max(agents, 1),
        notes=(*decision.notes, reason),
        details={**decision.details, "progressive": True},
    )


def paced_abandon_target(
    campaign: CampaignConfig,
    history: AnswerHistory,
    evidence: PacingEvidence,
    realized_30d: RealizedAbandons | None,
    current_abandon_rate: float | None,
) -> tuple[float, float, list[str]]:
    """(the abandon target the model paces for, the live answers a day it assumed, notes).

    The configured target, or an operator's tighter one on the campaign; backed off on each compliance
    window's realized rate; and below the cap by ``abandon_window_z`` of a 24 h window's scatter.
    """
    target = campaign.abandon_rate_target
    if current_abandon_rate is not None and current_abandon_rate > 0:
        target = min(target, current_abandon_rate)
    paced, notes = target, []
    for window, record in zip(COMPLIANCE_WINDOWS, (realized_30d, evidence.realized_24h), strict=True):
        window_target, note = abandon_backoff(
            target, record, start_fraction=campaign.abandon_backoff_start,
            stop_fraction=campaign.abandon_backoff_stop, min_answers=campaign.abandon_backoff_min_answers,
            window=window,
        )
        paced = min(paced, window_target)
        if note:
            if campaign.ratio_strategy != "model":
                note += " (not applied: the strategy does not pace on the abandon target)"
            notes.append(note)
    daily = max(
        float(evidence.realized_24h.live_answers) if evidence.realized_24h else 0.0,
        history.answers / max(campaign.history_days, 1),
    )
    return min(paced, window_noise_target(target, daily, campaign.abandon_window_z)), daily, notes


def plan_pacing(
    history: AnswerHistory,
    campaign: CampaignConfig,
    *,
    current_abandon_rate: float | None = None,
    realized: RealizedAbandons | None = None,
    evidence: PacingEvidence | None = None,
) -> PacingPlan:
    """The one entry point the DAG calls: estimate p from the window, then decide the campaign's pacing.

    ``realized`` is the 30-day record (kept for callers that have only that); ``evidence`` carries both
    compliance windows, the call times, the staffing observed and reasons to fail closed.
    """
    evidence = evidence or PacingEvidence(realized_30d=realized)
    realized_30d = evidence.realized_30d if evidence.realized_30d is not None else realized
    estimate = estimate_answer_rate(
        history,
        campaign.fallback_answer_rate,
        prior_strength=campaign.prior_strength,
        half_life_days=evidence.half_life_days or campaign.recency_half_life_days,
        credible_level=campaign.credible_level,
    )
    notes: list[str] = []
    if evidence.fast_half_life_days:
        # A rising answer rate is the dangerous drift (fewer lines are needed than the history says): a second,
        # short-memory estimate catches it hours earlier, and is paced on when it is higher by more than its own
        # scatter (margin_z of its sd), so that a small team's noisy last half hour does not lower the ratio.
        fast = estimate_answer_rate(
            history, campaign.fallback_answer_rate, prior_strength=campaign.prior_strength,
            half_life_days=evidence.fast_half_life_days, credible_level=campaign.credible_level,
        )
        if fast.rate > estimate.rate + campaign.model_margin_z * (fast.rate_sd or 0.0):
            notes.append(f"answer rate rising: pacing on the last half hour's {fast.rate:.3f} (the "
                         f"{24 * (evidence.half_life_days or 0):g}-hour estimate is {estimate.rate:.3f})")
            estimate = fast
    agents = campaign.agents
    # A staffing observation (an hour of idle readings and busy agents by Little's law) scatters by an agent
    # or two: it counts only when clearly below the config (by 2 agents or 20 %), so its noise does not move
    # the ratio; a smaller shortfall changes the ratio by less than the model's margin.
    slack = max(2, round(0.2 * campaign.agents))
    if evidence.staffed_agents is not None and evidence.staffed_agents <= campaign.agents - slack:
        agents = max(1, evidence.staffed_agents)
        notes.append(f"{evidence.staffed_agents} agents staffed (config {campaign.agents}): pacing for {agents}")
    times = evidence.timing or CallTimes(campaign.talk_time_seconds, 1.0, campaign.wrap_up_seconds)
    timing = CampaignParams(
        agents=agents, answer_rate=min(max(estimate.rate, 1e-6), 1.0), talk_mean=max(times.talk_mean, 1.0),
        talk_cv=times.talk_cv, wrap_mean=max(times.wrap_mean, 0.1),
        **({"no_answer_timeout": evidence.no_answer_timeout} if evidence.no_answer_timeout else {}),
    )
    paced_target, daily, target_notes = paced_abandon_target(
        campaign, history, evidence, realized_30d, current_abandon_rate
    )
    notes += target_notes
    limits = PacingLimits(
        agents=agents,
        max_calls_per_agent_ceiling=campaign.max_calls_per_agent_ceiling,
        max_outbound_lines=campaign.max_outbound_lines,
        abandon_rate_target=campaign.abandon_rate_target,
        pacing_abandon_target=paced_target,
        safety_factor=campaign.model_safety_factor,
        margin_z=campaign.model_margin_z,
        timing=timing,
    )
    decision = decide_pacing(campaign.ratio_strategy, estimate, limits, current_abandon_rate)
    details: dict[str, Any] = {
        **decision.details, "agents_paced": agents, "daily_live_answers": round(daily, 1),
        "talk_mean_seconds": round(times.talk_mean, 1),
        "talk_cv": round(times.talk_cv, 3), "wrap_mean_seconds": round(times.wrap_mean, 1),
        "timing_source": times.source,
    }
    for key, record in (("realized_abandon_percent", realized_30d),
                        ("realized_abandon_24h_percent", evidence.realized_24h)):
        if record is not None and record.rate_percent is not None:
            details[key] = record.rate_percent
    decision = replace(decision, notes=(*decision.notes, *notes), details=details)
    reasons = list(evidence.progressive_reasons)
    if campaign.ratio_strategy == "model" and history.attempts < campaign.min_history_attempts:
        reasons.append(
            f"{history.attempts} dials in the {campaign.history_days}-day window, fewer than "
            f"min_history_attempts {campaign.min_history_attempts}: dialing progressive until there is evidence"
        )
    for reason in reasons:
        decision = _progressive(decision, agents, reason)
    if evidence.dialing_mode == "predictive" and campaign.ratio_strategy == "model":
        decision = predictive_pacing(decision, paced_target, limits)
    return PacingPlan(estimate, decision)


# In predictive mode the ratio is written as a ceiling this many times the model's fixed ratio (measured on the
# emulator's per-call dialer, docs/pacing.md: more talk share than capping at the ratio, in every cell).
PREDICTIVE_CEILING_FACTOR = 1.5


def predictive_pacing(decision: PacingDecision, paced_target: float, limits: PacingLimits) -> PacingDecision:
    """Predictive mode: Genesys paces each call against ``abandonRate``, so that is where the paced target goes,
    and ``maxCallsPerAgent`` becomes a ceiling 1.5 x the model's fixed ratio: room for the per-call pacing,
    still a bound if it misjudges (a progressive decision stays 1: failing closed holds in this mode too)."""
    progressive = decision.max_calls_per_agent <= 1.0
    cap = min(GENESYS_MAX_CALLS_PER_AGENT, limits.max_calls_per_agent_ceiling)
    ceiling = 1.0 if progressive else min(cap, math.floor(decision.ratio * PREDICTIVE_CEILING_FACTOR * 100) / 100)
    lines = min(limits.max_outbound_lines, max(1, math.ceil(limits.agents * ceiling - 1e-9)))
    abandon = decision.abandon_rate if progressive else min(decision.abandon_rate, round(max(paced_target, 0.1), 2))
    details = {**decision.details, "predictive_ceiling": ceiling, "model_ratio": decision.ratio}
    return replace(decision, max_calls_per_agent=ceiling, outbound_line_count=lines, abandon_rate=abandon,
                   details=details)
