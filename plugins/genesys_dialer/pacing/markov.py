"""A Markov model of a fixed-ratio dialer: the abandon rate and utilization a dial ratio gives a small team.

Why: below about 20 agents the dialer's whole lines decide the abandon rate. It keeps round(r x idle agents)
lines in flight, so a ratio is a set of whole line counts and one step can move the abandon rate by points
(5 agents at p = 0.2: r = 1.745 dials 3 lines for 2 free agents, r = 1.76 dials 4). A smooth fit of the ratio
cannot see those steps; a model of the dialing process, evaluated at each step, can.

The process (the simulator's, :mod:`genesys_devkit.simulator`, with exponential times): the state is
(b busy agents, c lines in flight). A busy agent comes free at rate 1 / (talk + wrap-up); a line resolves at
rate 1 / (mean ring time of a dial), a live answer with probability p. A live answer takes a free agent;
with none free it is abandoned unless an agent comes free within the grace (probability
exp(-grace x agents / (talk + wrap-up))). After every event the dialer tops the lines up to
round(r x (agents - b)). The stationary distribution is solved level by level in b (linear level reduction),
about a millisecond per ratio for 5 agents and 20 ms for 19 agents at 15 lines per agent.

Exponential times are the model's simplification; :data:`CHAIN_CORRECTION` (fitted on the simulator) maps its
abandon rate to the simulator's, with :data:`CHAIN_FIT_ERROR` as the error left.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

# The chain's blocks are small: OpenBLAS threads only contend for the cores (6x slower on a busy 2-core host,
# measured). Effective when this module is the first to import numpy, as in a task process.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from genesys_dialer.pacing.campaign import CampaignParams, mean_dial_seconds

T = TypeVar("T")

# ln(simulated / chain abandon rate) = CHAIN_CORRECTION . correction_features(...): fitted by least squares
# (benchmarks/calibrate_pacing.py) on the step the chain picks for targets 1.5-5 % in p {0.04, 0.07, 0.12, 0.25,
# 0.4, 0.7} x agents {2, 3, 4, 6, 7, 8, 9, 12, 15, 18} x talk {60, 120, 150, 240, 400} s (621 cells): no (p, N,
# talk) of the benchmark grid. The chain over-states abandons for 2-8 agents (answers ring a fixed ~10 s, during
# which busy agents come free, not an exponential time) and under-states them from about 12; the longer the
# handle time, the more it over-states them.
CHAIN_CORRECTION: tuple[float, ...] = (
    -0.6489, -0.0427, 0.6931, 0.0283, 0.1339, -0.0809, -0.1225, -0.079, 0.1008, 0.0705)
# Leave-one-out sd of that fit on the log scale (it includes the calibration runs' own sampling noise).
CHAIN_FIT_ERROR = 0.079
# The handle time (talk + wrap-up, seconds) the correction's handle terms are relative to.
BASE_HANDLE_SECONDS = 130.0
# The shortest handle time the correction was fitted on (talk 60 s + 10 s of wrap-up). Below it the chain, whose
# ring times are exponential, misses how a fixed ~10 s ring outlasts many short calls, and the correction does not
# make up for it: at 15 to 30 s of talk, 8 to 19 agents and p 0.5 to 0.95 its ratio gave 3.0 to 9.6 % abandons for
# a 3 % target in the simulator. Paced as calls this long, the same teams gave 0.05 to 0.54 %.
SHORTEST_HANDLE_SECONDS = 70.0


def correction_features(agents: int, p: float, handle_seconds: float, ratio: float, raw: float) -> list[float]:
    """The terms of :data:`CHAIN_CORRECTION`: 1, ln N, p, ln(chain rate / 3 %), ln r, h, h ln N, h p, h^2, ln^2 N
    with h = ln(handle / 130 s). The calibration fits on these very terms."""
    log_n = math.log(agents)
    h = math.log(handle_seconds / BASE_HANDLE_SECONDS)
    return [1.0, log_n, p, math.log(raw / 0.03), math.log(ratio), h, h * log_n, h * p, h * h, log_n * log_n]


@dataclass(frozen=True)
class ChainResult:
    abandon_rate: float  # abandons / live answers, a fraction, as the chain computes it
    utilization: float  # share of agent time talking


def solve_chain(params: CampaignParams, ratio: float) -> ChainResult:
    """Stationary abandon rate and utilization of the fixed-ratio dialer at ``ratio`` lines per idle agent."""
    agents, p = params.agents, params.answer_rate
    free_rate = 1.0 / (params.talk_mean + params.wrap_mean)
    live_seconds, non_live_seconds = mean_dial_seconds(params)
    resolve_rate = 1.0 / (p * live_seconds + (1.0 - p) * non_live_seconds)
    no_agent_in_grace = math.exp(-params.grace * agents * free_rate)
    target = [int(ratio * (agents - b) + 0.5) for b in range(agents + 1)]
    most = target[0]
    # Level b holds c = target[b] .. most (lines above the target are left from when more agents were free).
    size = [most - target[b] + 1 for b in range(agents + 1)]
    within = [np.zeros((size[b], size[b])) for b in range(agents + 1)]
    up = [np.zeros((size[b], size[b + 1])) for b in range(agents)]
    down = [np.zeros((1, 1))] + [np.zeros((size[b], size[b - 1])) for b in range(1, agents + 1)]
    for b in range(agents + 1):
        for c in range(target[b], most + 1):
            i = c - target[b]
            leaving = 0.0
            if b:  # an agent comes free; the dialer tops the lines up to the new target
                down[b][i, max(c, target[b - 1]) - target[b - 1]] += b * free_rate
                leaving += b * free_rate
            if c:
                non_live, live = c * resolve_rate * (1.0 - p), c * resolve_rate * p
                if c > target[b]:  # a line ends without taking an agent (at the target it is redialed)
                    within[b][i, i - 1] += non_live
                    leaving += non_live
                if b < agents:  # a live answer takes a free agent
                    up[b][i, c - 1 - target[b + 1]] += live
                    leaving += live
                elif c > target[b]:  # all busy: connected in the grace or abandoned, the line ends either way
                    within[b][i, i - 1] += live
                    leaving += live
            within[b][i, i] -= leaving
    # Linear level reduction: eliminate levels from the top; pi_b+1 = pi_b up_b (-S_b+1)^-1. Each reduced
    # block's diagonal is rebuilt from its off-diagonal rates and the rates down (as in Grassmann-Taksar-
    # Heyman): subtracting nearly equal numbers loses all precision when the top levels hold nearly all the
    # mass (an aggressive ratio), and the solution then goes negative.
    reduced = [within[agents]]
    for b in range(agents - 1, -1, -1):
        block = within[b] + up[b] @ np.linalg.solve(-reduced[0], down[b + 1])
        np.fill_diagonal(block, 0.0)
        leaving = block.sum(axis=1) + (down[b].sum(axis=1) if b else 0.0)
        np.fill_diagonal(block, -leaving)
        reduced.insert(0, block)
    system = reduced[0].T.copy()
    system[-1, :] = 1.0
    rhs = np.zeros(size[0])
    rhs[-1] = 1.0
    levels = [np.linalg.solve(system, rhs)]
    for b in range(agents):
        levels.append(np.linalg.solve(-reduced[b + 1].T, levels[b] @ up[b]))
        peak = float(np.abs(levels[-1]).max())
        if peak > 1e100:
            # Unnormalized, the levels grow about geometrically with b: a large team whose agents are nearly all
            # busy (long calls, a high p) overflowed float64 by 150 agents. Only their ratios count: rescale.
            levels = [level / peak for level in levels]
    total = sum(float(level.sum()) for level in levels)
    live_rate = sum(float(levels[b] @ np.arange(target[b], most + 1)) for b in range(agents + 1)) * resolve_rate * p
    all_busy_live = float(levels[agents] @ np.arange(target[agents], most + 1)) * resolve_rate * p
    busy = sum(b * float(levels[b].sum()) for b in range(agents + 1)) / total
    talk_share = params.talk_mean / (params.talk_mean + params.wrap_mean)
    return ChainResult(
        abandon_rate=max(0.0, all_busy_live * no_agent_in_grace / live_rate) if live_rate > 0 else 0.0,
        utilization=busy / agents * talk_share,
    )


def predicted_abandon_rate(params: CampaignParams, ratio: float) -> float:
    """The chain's abandon rate mapped to the simulator's by :data:`CHAIN_CORRECTION` (a fraction)."""
    raw = solve_chain(params, ratio).abandon_rate
    if raw <= 0.0:
        return 0.0
    terms = correction_features(params.agents, params.answer_rate, params.talk_mean + params.wrap_mean, ratio, raw)
    return math.exp(math.log(raw) + sum(k * x for k, x in zip(CHAIN_CORRECTION, terms, strict=True)))


def step_edges(agents: int, ceiling: float = 15.0) -> list[float]:
    """Where the dialer's steps start, from 1 to ``ceiling``: round(r x idle) gains a line at (j + 0.5) / idle."""
    starts = {(j + 0.5) / idle for idle in range(1, agents + 1) for j in range(idle, math.ceil(ceiling * idle) + 1)}
    return [1.0, *sorted(e for e in starts if 1.0 < e < ceiling), ceiling]


def ratio_steps(agents: int, ceiling: float = 15.0) -> list[float]:
    """Writable ratios in [1, ceiling], one per step of the dialer (round(r x idle) is constant on a step).

    A step's representative is the multiple of 0.01 nearest its middle (``maxCallsPerAgent`` is written to
    0.01, and the middle keeps it off the edges where the dialer's own rounding could differ); a step too
    narrow to hold one is skipped. The first step is written as 1 (progressive), the top one as the ceiling.
    """
    edges = step_edges(agents, ceiling)
    steps: list[float] = []
    for k, (lo, hi) in enumerate(itertools.pairwise(edges)):
        last_step = k == len(edges) - 2
        first = math.ceil(lo * 100 - 1e-9)
        last = math.floor(hi * 100 + 1e-9) if last_step else math.ceil(hi * 100 - 1e-9) - 1
        if first > last:
            continue
        if k == 0:  # the first step is progressive dialing: write it as 1
            steps.append(1.0)
        elif last_step:  # the open top step: write the ceiling itself
            steps.append(min(last / 100.0, ceiling))
        else:
            steps.append(min(max(round((lo + hi) * 50), first), last) / 100.0)
    return steps or [1.0]


def highest_admissible(candidates: Sequence[T], admissible: Callable[[T], bool]) -> int:
    """Index of the highest admissible candidate, by bisection.

    For candidates ordered so that admissibility only falls (abandons rise with the ratio); ``candidates[0]``
    is taken as admissible (one line per idle agent never abandons) and is not evaluated.
    """
    low, high = 0, len(candidates) - 1
    if admissible(candidates[high]):
        return high
    while high - low > 1:
        mid = (low + high) // 2
        if admissible(candidates[mid]):
            low = mid
        else:
            high = mid
    return low
