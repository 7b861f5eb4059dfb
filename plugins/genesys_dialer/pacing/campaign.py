"""The campaign a pacing model reasons about: team size, answer rate and the call-timing assumptions.

Shared by the Markov model (:mod:`genesys_dialer.pacing.markov`) and the devkit simulator that calibrates
it; the defaults are the assumptions of docs/pacing.md (not sourced facts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist


@dataclass(frozen=True)
class CampaignParams:
    """The campaign being simulated; the defaults are the assumptions of docs/pacing.md (not sourced facts)."""

    agents: int = 20
    answer_rate: float = 0.2
    talk_mean: float = 120.0
    talk_cv: float = 1.0
    wrap_mean: float = 10.0
    wrap_cv: float = 0.3
    ring_mean: float = 10.0
    ring_sd: float = 5.0
    no_answer_timeout: float = 25.0
    busy_share: float = 0.1  # of the non-live outcomes
    machine_share: float = 0.3  # of the non-live outcomes
    busy_min: float = 2.0
    busy_max: float = 6.0
    machine_release: float = 3.0
    grace: float = 2.0

    def __post_init__(self) -> None:
        if self.agents < 1:
            raise ValueError("agents must be at least 1")
        if not 0.0 < self.answer_rate <= 1.0:
            raise ValueError("answer_rate must be in (0, 1]")
        if self.busy_share < 0 or self.machine_share < 0 or self.busy_share + self.machine_share > 1:
            raise ValueError("busy_share and machine_share must be >= 0 and sum to at most 1")
        for name in ("talk_mean", "wrap_mean", "ring_mean", "no_answer_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")

    @property
    def utilization_ceiling(self) -> float:
        """Talk share when every agent is always talking or wrapping up: the physical ceiling."""
        return self.talk_mean / (self.talk_mean + self.wrap_mean)


def lognormal_params(mean: float, cv: float) -> tuple[float, float]:
    """(mu, sigma) of the lognormal with this mean and coefficient of variation."""
    sigma2 = math.log1p(cv * cv)
    return math.log(mean) - sigma2 / 2.0, math.sqrt(sigma2)


def _clipped_lognormal_mean(mean: float, sd: float, clip: float) -> float:
    """E[min(X, clip)] for X lognormal with the given mean and sd (ring times end at the no-answer timeout)."""
    mu, sigma = lognormal_params(mean, sd / mean)
    z = (math.log(clip) - mu) / sigma
    phi = NormalDist().cdf
    return mean * phi(z - sigma) + clip * (1.0 - phi(z))


def mean_dial_seconds(params: CampaignParams) -> tuple[float, float]:
    """Mean seconds a line is held by a live answer (its ring time) and by a non-live outcome."""
    ring = _clipped_lognormal_mean(params.ring_mean, params.ring_sd, params.no_answer_timeout)
    no_answer_share = 1.0 - params.busy_share - params.machine_share
    non_live = (
        params.busy_share * (params.busy_min + params.busy_max) / 2.0
        + params.machine_share * (ring + params.machine_release)
        + no_answer_share * params.no_answer_timeout
    )
    return ring, non_live


def handle_units(params: CampaignParams) -> float:
    """Mean seconds a dial holds its line per mean handle second (talk + wrap-up).

    Why: it is the dialing process's own clock. A dialer's safe lines per idle agent depend on how many agents
    come free while its calls ring, i.e. on ring time over handle time; scaling every time by one factor
    changes nothing but the 2-second grace. The response surface takes talk time in these units.
    """
    live, non_live = mean_dial_seconds(params)
    p = params.answer_rate
    return (p * live + (1.0 - p) * non_live) / (params.talk_mean + params.wrap_mean)
