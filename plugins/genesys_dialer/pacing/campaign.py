"""The campaign a pacing model reasons about: team size, answer rate and the call-timing assumptions.

Shared by the Markov model (:mod:`genesys_dialer.pacing.markov`) and the devkit simulator that calibrates
it; the defaults are the assumptions of docs/pacing.md (not sourced facts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


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
