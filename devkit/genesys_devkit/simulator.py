"""A seeded discrete-event simulator of a predictive-dialer campaign, to measure pacing before using it.

Why: the dial ratio decides agent utilization and legal risk (the 3 % abandon cap); a pacing model is only
worth what it does on a campaign, and a simulation is the cheapest campaign. The process modelled:

* ``agents`` agents; a connected call holds its agent for a lognormal talk time, then a lognormal wrap-up.
* The dialer keeps ``round(ratio x idle agents)`` lines in flight (power mode: ``maxCallsPerAgent`` is the
  ratio), optionally capped by ``max_lines`` (``outboundLineCount``). At ratio 1 it is progressive dialing.
* Each dial is a live answer with probability ``answer_rate``, after a lognormal ring time (clipped to the
  no-answer timeout); otherwise busy (uniform 2-6 s), answering machine (ring time + release delay) or
  no answer (released at the timeout), with the shares given as parts of the non-live outcomes.
* A live answer takes an idle agent at once; if none is idle it waits ``grace`` seconds (the 2-second rule)
  for an agent coming free, first come first served, and is abandoned if none does.

Measures (after a warm-up): utilization = agent talk time / agent time, abandon rate = abandons / live
answers, dials per agent-hour. Pure Python, one ``random.Random(seed)``: the same parameters and seed give
the same figures on every machine.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import statistics
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from genesys_dialer.pacing.campaign import CampaignParams, lognormal_params

__all__ = ["CampaignParams", "SimResult", "lognormal_params", "main", "ratio_for_strategy", "simulate"]

_NOLIVE, _LIVE, _FREE, _ABANDON = 0, 1, 2, 3


@dataclass(frozen=True)
class SimResult:
    """What a run measured; the ``*_ci`` are 95 % half-widths from batch means (``nan`` with < 2 batches)."""

    params: CampaignParams
    ratio: float
    hours: float
    dials: int
    live_answers: int
    abandons: int
    talk_seconds: float
    utilization_ci: float = math.nan
    abandon_rate_ci: float = math.nan
    batch_utilization: tuple[float, ...] = field(default=(), repr=False)

    @property
    def utilization(self) -> float:
        return self.talk_seconds / (self.params.agents * self.hours * 3600.0)

    @property
    def abandon_rate(self) -> float:
        """Abandons / live answers (the FCC/Ofcom definition), as a fraction."""
        return self.abandons / self.live_answers if self.live_answers else 0.0

    @property
    def dials_per_agent_hour(self) -> float:
        return self.dials / (self.params.agents * self.hours)


def _ci95(values: Sequence[float]) -> float:
    if len(values) < 2:
        return math.nan
    return 1.96 * statistics.stdev(values) / math.sqrt(len(values))


def simulate(
    params: CampaignParams,
    ratio: float,
    *,
    hours: float = 8.0,
    seed: int = 1,
    warmup_hours: float = 0.25,
    max_lines: int | None = None,
    batches: int = 20,
) -> SimResult:
    """Run the campaign at a fixed ``ratio`` of lines per idle agent for ``hours`` after a warm-up.

    One heap of ``(time, kind, id)`` tuples; agents are a counter, not objects, so the cost per dial is a
    couple of random draws and one heap push and pop.
    """
    if ratio < 1.0:
        raise ValueError("ratio must be at least 1 (one line per idle agent)")
    if hours <= 0:
        raise ValueError("hours must be positive")
    rng = random.Random(seed)
    rand, lognorm, uniform = rng.random, rng.lognormvariate, rng.uniform
    push, pop = heapq.heappush, heapq.heappop

    p = params.answer_rate
    busy_cut = params.busy_share
    machine_cut = params.busy_share + params.machine_share
    talk_mu, talk_sigma = lognormal_params(params.talk_mean, params.talk_cv)
    wrap_mu, wrap_sigma = lognormal_params(params.wrap_mean, params.wrap_cv)
    ring_mu, ring_sigma = lognormal_params(params.ring_mean, params.ring_sd / params.ring_mean)
    timeout, grace = params.no_answer_timeout, params.grace
    busy_min, busy_max, machine_release = params.busy_min, params.busy_max, params.machine_release
    line_cap = max_lines if max_lines is not None else 1 << 60

    start = warmup_hours * 3600.0
    end = start + hours * 3600.0
    batch_len = (end - start) / batches
    b_talk = [0.0] * batches
    b_live = [0] * batches
    b_abandon = [0] * batches

    events: list[tuple[float, int, int]] = []
    idle = params.agents
    in_flight = 0
    waiting: deque[int] = deque()
    next_call = 0
    dials = live = abandons = 0
    talk_total = 0.0
    now = 0.0

    def connect(t: float) -> None:
        nonlocal talk_total
        talk = lognorm(talk_mu, talk_sigma)
        wrap = lognorm(wrap_mu, wrap_sigma) if wrap_sigma > 0 else params.wrap_mean
        push(events, (t + talk + wrap, _FREE, 0))
        lo, hi = max(t, start), min(t + talk, end)
        if hi > lo:
            talk_total += hi - lo
            # Split the talk over the batches it spans (usually one). The batch index advances by itself:
            # recomputing it from ``lo`` can land on the batch just finished when ``lo`` sits on a batch
            # boundary after float rounding, and then the loop would never end.
            b = min(int((lo - start) / batch_len), batches - 1)
            while hi > lo:
                upto = min(hi, start + (b + 1) * batch_len) if b < batches - 1 else hi
                b_talk[b] += upto - lo
                lo = upto
                b += 1

    while True:
        # Dial up to the target: round(ratio x idle agents), within the line cap.
        target = min(int(ratio * idle + 0.5), line_cap)
        while in_flight < target:
            in_flight += 1
            if now >= start:
                dials += 1
            if rand() < p:
                ring = lognorm(ring_mu, ring_sigma)
                push(events, (now + (ring if ring < timeout else timeout), _LIVE, 0))
            else:
                v = rand()
                if v < busy_cut:
                    duration = uniform(busy_min, busy_max)
                elif v < machine_cut:
                    ring = lognorm(ring_mu, ring_sigma)
                    duration = (ring if ring < timeout else timeout) + machine_release
                else:
                    duration = timeout
                push(events, (now + duration, _NOLIVE, 0))

        now, kind, call = pop(events)
        if now > end:
            break
        if kind == _NOLIVE:
            in_flight -= 1
        elif kind == _LIVE:
            in_flight -= 1
            if now >= start:
                live += 1
                b_live[min(int((now - start) / batch_len), batches - 1)] += 1
            if idle:
                idle -= 1
                connect(now)
            else:
                waiting.append(next_call)
                push(events, (now + grace, _ABANDON, next_call))
                next_call += 1
        elif kind == _FREE:
            if waiting:
                waiting.popleft()
                connect(now)
            else:
                idle += 1
        else:  # _ABANDON: the caller is still waiting when the grace ends (FIFO: it is at the head)
            if waiting and waiting[0] == call:
                waiting.popleft()
                answered_at = now - grace
                if answered_at >= start:
                    abandons += 1
                    b_abandon[min(int((answered_at - start) / batch_len), batches - 1)] += 1

    batch_util = tuple(t / (params.agents * batch_len) for t in b_talk)
    batch_abandon = [a / n for a, n in zip(b_abandon, b_live, strict=True) if n]
    return SimResult(
        params=params,
        ratio=ratio,
        hours=hours,
        dials=dials,
        live_answers=live,
        abandons=abandons,
        talk_seconds=talk_total,
        utilization_ci=_ci95(batch_util),
        abandon_rate_ci=_ci95(batch_abandon),
        batch_utilization=batch_util,
    )


def history_from_simulation(result: SimResult, days: int = 1) -> tuple[tuple[int, int, int, int], ...]:
    """Split a run's counts into ``days`` equal daily buckets ``(age_days, attempts, answers, abandons)``."""
    def share(total: int, age: int) -> int:
        return total // days + (1 if age < total % days else 0)

    return tuple(
        (age, share(result.dials, age), share(result.live_answers, age), share(result.abandons, age))
        for age in range(days)
    )


def ratio_for_strategy(strategy: str, params: CampaignParams, answer_rate: float | None = None) -> float:
    """The lines per idle agent a pacing strategy gives (``maxCallsPerAgent``, read as in power mode).

    ``answer_rate`` is what the strategy believes p is (by default the true p, i.e. no estimation error).
    """
    from genesys_dialer.pacing.strategies import AnswerRateEstimate, PacingLimits, decide_pacing

    p = params.answer_rate if answer_rate is None else answer_rate
    estimate = AnswerRateEstimate(0, 0, p, p, p, p, 0.0, "given")
    limits = PacingLimits(
        agents=params.agents,
        max_calls_per_agent_ceiling=15.0,
        max_outbound_lines=params.agents * 15,
        abandon_rate_target=3.0,
        timing=params,  # the model paces on the campaign's own call times
    )
    return max(1.0, decide_pacing(strategy, estimate, limits).max_calls_per_agent)


def _parser() -> argparse.ArgumentParser:
    defaults = CampaignParams()
    parser = argparse.ArgumentParser(
        prog="genesys-dialer-simulate",
        description="Simulate a predictive-dialer campaign at a dial ratio (lines per idle agent) or with a "
        "pacing strategy, and print agent utilization, abandon rate and dials per agent-hour.",
    )
    parser.add_argument("--answer-rate", type=float, default=defaults.answer_rate, help="live answers per dial")
    parser.add_argument("--agents", type=int, default=defaults.agents)
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--ratio", type=float, help="fixed lines per idle agent (>= 1)")
    how.add_argument("--strategy", help="a pacing strategy of genesys_dialer.pacing.strategies (e.g. model, tutorial)")
    parser.add_argument("--believed-answer-rate", type=float, help="the p the strategy paces on (default: true p)")
    parser.add_argument("--max-lines", type=int, help="outboundLineCount: cap on lines in flight")
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--warmup-hours", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=1)
    for name, help_text in (
        ("talk-mean", "mean talk time, s"), ("talk-cv", "talk time coefficient of variation"),
        ("wrap-mean", "mean wrap-up, s"), ("wrap-cv", "wrap-up coefficient of variation"),
        ("ring-mean", "mean ring time to a live answer, s"), ("ring-sd", "its standard deviation, s"),
        ("no-answer-timeout", "s"), ("busy-share", "share of non-live dials that are busy"),
        ("machine-share", "share of non-live dials that reach a machine"), ("grace", "abandon grace, s"),
    ):
        dest = name.replace("-", "_")
        parser.add_argument(f"--{name}", type=float, default=getattr(defaults, dest), help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``genesys-dialer-simulate``: run one simulation for the user's own parameters."""
    args = _parser().parse_args(argv)
    try:
        params = CampaignParams(agents=args.agents, answer_rate=args.answer_rate)
        params = replace(
            params,
            talk_mean=args.talk_mean, talk_cv=args.talk_cv, wrap_mean=args.wrap_mean, wrap_cv=args.wrap_cv,
            ring_mean=args.ring_mean, ring_sd=args.ring_sd, no_answer_timeout=args.no_answer_timeout,
            busy_share=args.busy_share, machine_share=args.machine_share, grace=args.grace,
        )
        if args.strategy:
            ratio = ratio_for_strategy(args.strategy, params, args.believed_answer_rate)
        else:
            ratio = args.ratio if args.ratio is not None else 1.0
        result = simulate(
            params, ratio, hours=args.hours, seed=args.seed, warmup_hours=args.warmup_hours,
            max_lines=args.max_lines,
        )
    except (ValueError, KeyError) as err:
        print(f"genesys-dialer-simulate: {err}", file=sys.stderr)
        return 2
    label = f"strategy {args.strategy} -> ratio {ratio:.2f}" if args.strategy else f"ratio {ratio:g}"
    print(f"{label}, agents {params.agents}, answer rate {params.answer_rate:g}, {args.hours:g} h, seed {args.seed}")
    print(f"utilization        {100 * result.utilization:6.1f} %  (+/- {100 * result.utilization_ci:.1f}, 95 %)")
    print(f"abandon rate       {100 * result.abandon_rate:6.2f} %  (+/- {100 * result.abandon_rate_ci:.2f}, 95 %;"
          f" {result.abandons} of {result.live_answers} live answers)")
    print(f"dials/agent-hour   {result.dials_per_agent_hour:6.1f}")
    print(f"ceiling            {100 * params.utilization_ceiling:6.1f} %  (talk / (talk + wrap-up))")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
