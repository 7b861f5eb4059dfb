"""A seeded stochastic outbound dialer: what Genesys Cloud does with a running campaign, in simulated time.

Why: a pacing pipeline is only proven when something dials under the pacing it writes and the pipeline reads
back what happened. The emulator's dialer drains a campaign's dialing queue under the campaign's own settings
(``dialingMode``, ``maxCallsPerAgentDecimal``, ``outboundLineCount``, ``abandonRate``, ``noAnswerTimeout``),
with a configurable population (agents staffed, live-answer probability, talk and wrap-up times, ring times,
how long a live answer waits for an agent) and records what the analytics API and the campaign stats serve.

The process (the devkit simulator's assumptions, implemented independently so one can score the other):

* each dial is a live answer with probability ``answer_rate`` after a lognormal ring time (clipped at the
  campaign's ``noAnswerTimeout``); otherwise busy (uniform 2-6 s), answering machine (ring time + 3 s) or no
  answer (released at the timeout);
* a live answer takes an idle agent at once; with none idle it waits ``abandon_after`` seconds (the 2-second
  compliance rule) for an agent coming free, first come first served, and is abandoned if none does;
* a connected call holds its agent for a lognormal talk time, then a lognormal wrap-up (after-call work).

Dialing by mode: ``progressive`` keeps one line per idle agent, ``power`` ``round(maxCallsPerAgentDecimal x idle
agents)`` lines; ``predictive`` paces each call itself (Genesys' algorithm is not published; this is a
model-based stand-in): it launches one more call while the estimated probability that the call finds every
agent taken stays under a threshold, the threshold steered by the realized abandon rate towards the
campaign's ``abandonRate``, with ``round(maxCallsPerAgentDecimal x idle agents)`` as the ceiling. Every mode
stays within ``outboundLineCount``. Other modes do not dial.

Time is seconds since the epoch, advanced only by :meth:`CampaignDialer.advance` (no wall clock). Outcomes
are kept per minute of emission time, as Genesys emits them: an attempt when dialed, a connect when answered,
an abandon when the wait ends, talk when the talk ends, wrap-up and handle when the wrap-up ends.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

# Dispositions written to a contact's callRecords (Genesys' system wrap-up codes for outbound results).
RESULT_CONNECTED = "ININ-OUTBOUND-TRANSFERRED-TO-QUEUE"
RESULT_ABANDONED = "ININ-OUTBOUND-FAILED-TO-REACH-AGENT"
RESULT_BUSY = "ININ-OUTBOUND-BUSY"
RESULT_MACHINE = "ININ-OUTBOUND-MACHINE"
RESULT_NO_ANSWER = "ININ-OUTBOUND-NO-ANSWER"

DIALING_MODES_THAT_DIAL = ("progressive", "power", "predictive")
_NONLIVE, _LIVE, _FREE, _ABANDON = 0, 1, 2, 3


@dataclass(frozen=True)
class Population:
    """Who is called and who answers: the emulator's stand-in for the people dialed and the agents staffed.

    Times are seconds. Shares of ``busy`` and ``machine`` are parts of the non-live outcomes.
    """

    agents: int = 10
    answer_rate: float = 0.2
    talk_mean: float = 120.0
    talk_cv: float = 1.0
    wrap_mean: float = 10.0
    wrap_cv: float = 0.3
    ring_mean: float = 10.0
    ring_sd: float = 5.0
    busy_share: float = 0.1
    machine_share: float = 0.3
    abandon_after: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.agents, int) or isinstance(self.agents, bool) or self.agents < 0:
            raise ValueError("agents must be an integer >= 0")
        if not 0.0 <= self.answer_rate <= 1.0:
            raise ValueError("answerRate must be within 0..1")
        for name in ("talk_mean", "wrap_mean", "ring_mean"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{_camel(name)} must be positive")
        for name in ("talk_cv", "wrap_cv", "ring_sd", "abandon_after"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{_camel(name)} must be >= 0")
        if self.busy_share < 0 or self.machine_share < 0 or self.busy_share + self.machine_share > 1:
            raise ValueError("busyShare and machineShare must be >= 0 and sum to at most 1")

    def updated(self, values: Mapping[str, Any]) -> Population:
        """A copy with ``{"camelCase": value}`` changes (the admin API's body); unknown keys raise KeyError."""
        by_camel = {_camel(f.name): f.name for f in fields(self)}
        changes: dict[str, Any] = {}
        for key, value in values.items():
            name = by_camel.get(key, key if key in by_camel.values() else None)
            if name is None:
                raise KeyError(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{key} must be a number")
            changes[name] = value
        return replace(self, **changes)

    def as_json(self) -> dict[str, Any]:
        return {_camel(f.name): getattr(self, f.name) for f in fields(self)}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


@dataclass(frozen=True)
class Pacing:
    """The campaign settings the dialer obeys, read from the campaign entity at every advance."""

    mode: str
    max_calls_per_agent: float
    line_count: int
    abandon_target: float  # percent of live answers
    no_answer_timeout: float
    running: bool = True

    @classmethod
    def from_campaign(cls, entity: Mapping[str, Any]) -> Pacing:
        ratio = entity.get("maxCallsPerAgentDecimal") or entity.get("maxCallsPerAgent") or 1
        return cls(
            mode=str(entity.get("dialingMode")),
            max_calls_per_agent=float(ratio),
            line_count=int(entity.get("outboundLineCount") or 1),
            abandon_target=float(entity.get("abandonRate") or 0.0),
            no_answer_timeout=float(entity.get("noAnswerTimeout") or 30),
            running=entity.get("campaignStatus") == "on",
        )


@dataclass
class MinuteOutcomes:
    """What the analytics API would report for one minute of one campaign (by emission time)."""

    attempted: int = 0
    connected: int = 0
    abandoned: int = 0
    talk: list[float] = field(default_factory=list)  # seconds, one per ended talk
    acw: list[float] = field(default_factory=list)  # wrap-up seconds, one per ended after-call work
    handle: list[float] = field(default_factory=list)  # talk + wrap-up seconds, emitted with the wrap-up
    agent_seconds: float = 0.0  # staffed agent time in the minute: the denominator of talk share


def _lognormal(mean: float, cv: float) -> tuple[float, float]:
    sigma2 = math.log1p(cv * cv)
    return math.log(mean) - sigma2 / 2.0, math.sqrt(sigma2)


class CampaignDialer:
    """Dials one campaign in simulated time. Not thread-safe: the emulator's store lock guards it."""

    # The predictive stand-in's memory: answer rate over the last dials, handle and ring times over the last
    # calls, and the abandon rate over the last live answers (what its threshold is steered by).
    RECENT_DIALS = 300
    RECENT_CALLS = 100
    ABANDON_WINDOW = 400
    STEER_EVERY = 20
    STEER_GAIN = 0.25
    INITIAL_THRESHOLD = 0.05

    def __init__(self, population: Population, *, now: float, seed: int = 1) -> None:
        self.population = population
        self.rng = random.Random(seed)
        self.now = float(now)
        self.events: list[tuple[float, int, int, Any]] = []
        self._seq = 0
        self.idle = population.agents
        self.busy = 0
        self.leaving = 0  # agents to let go once they come free (staffing was cut while they talked)
        self.lines = 0
        self.waiting: deque[tuple[int, str | None, float]] = deque()
        self._call_no = 0
        self.minutes: dict[int, MinuteOutcomes] = {}
        self.dials = self.live = self.abandons = 0
        self.talk_seconds = 0.0
        self.agent_seconds = 0.0
        # predictive stand-in state
        self._recent_live: deque[int] = deque(maxlen=self.RECENT_DIALS)
        self._recent_handle: deque[float] = deque(maxlen=self.RECENT_CALLS)
        self._recent_ring: deque[float] = deque(maxlen=self.RECENT_CALLS)
        self._recent_abandoned: deque[int] = deque(maxlen=self.ABANDON_WINDOW)
        self._finals = 0
        self.threshold = self.INITIAL_THRESHOLD
        self._target: float | None = None
        self._seq_line = 0
        self._in_flight: dict[int, float] = {}  # line number -> dialed at (the predictive stand-in reads it)
        self._survival_key: Any = None
        self._survival: list[tuple[float, float]] = []
        self._set_draws()

    # -- configuration -------------------------------------------------------------------------------
    def _set_draws(self) -> None:
        pop = self.population
        self._talk = _lognormal(pop.talk_mean, pop.talk_cv)
        self._wrap = _lognormal(pop.wrap_mean, pop.wrap_cv)
        self._ring = _lognormal(pop.ring_mean, pop.ring_sd / pop.ring_mean)

    @property
    def staffed(self) -> int:
        return self.idle + self.busy - self.leaving

    def configure(self, population: Population) -> None:
        """Change the population from now on; staffing changes take idle agents first, busy ones as they free."""
        delta = population.agents - self.staffed
        if delta > 0:
            back = min(delta, self.leaving)
            self.leaving -= back
            self.idle += delta - back
        elif delta < 0:
            from_idle = min(-delta, self.idle)
            self.idle -= from_idle
            self.leaving += -delta - from_idle
        self.population = population
        self._set_draws()

    # -- the event loop -------------------------------------------------------------------------------
    def _push(self, at: float, kind: int, data: Any) -> None:
        self._seq += 1
        heapq.heappush(self.events, (at, self._seq, kind, data))

    def _minute(self, at: float) -> MinuteOutcomes:
        key = int(at // 60)
        bucket = self.minutes.get(key)
        if bucket is None:
            bucket = self.minutes[key] = MinuteOutcomes()
        return bucket

    def _pass_time(self, until: float) -> None:
        """Count staffed agent time up to ``until``, split at minute boundaries."""
        staffed = self.idle + self.busy - self.leaving
        now = self.now
        while now < until:
            edge = (math.floor(now / 60) + 1) * 60.0
            upto = until if until < edge else edge
            self._minute(now).agent_seconds += staffed * (upto - now)
            now = upto
        self.agent_seconds += staffed * max(0.0, until - self.now)
        self.now = until

    def advance(
        self,
        until: float,
        pacing: Pacing,
        take_contact: Callable[[], str | None] | None = None,
        record: Callable[[str, float, str], None] | None = None,
    ) -> None:
        """Dial and resolve calls up to ``until`` under ``pacing``.

        ``take_contact`` takes the next dialable contact off the campaign's queue (None: the queue is empty, so
        the dialer waits); without it every dial calls a fresh, anonymous contact. ``record(contact_id,
        dialed_at, result)`` receives each contact's result.
        """
        dials = pacing.running and pacing.mode in DIALING_MODES_THAT_DIAL
        exhausted = False
        while True:
            if dials and not exhausted:
                exhausted = self._dial(pacing, take_contact, record)
            if not self.events or self.events[0][0] > until:
                break
            at, _, kind, data = heapq.heappop(self.events)
            self._pass_time(at)
            if kind == _NONLIVE:
                self.lines -= 1
                contact, dialed_at, result, line = data
                del self._in_flight[line]
                self._recent_live.append(0)
                if record is not None and contact is not None:
                    record(contact, dialed_at, result)
            elif kind == _LIVE:
                self.lines -= 1
                contact, dialed_at, ring, line = data
                del self._in_flight[line]
                self._recent_live.append(1)
                self._recent_ring.append(ring)
                self.live += 1
                self._minute(at).connected += 1
                if self.idle > 0:
                    self.idle -= 1
                    self._connect(at, contact, dialed_at, record)
                else:
                    self._call_no += 1
                    self.waiting.append((self._call_no, contact, dialed_at))
                    self._push(at + self.population.abandon_after, _ABANDON, self._call_no)
            elif kind == _FREE:
                self.busy -= 1
                self._recent_handle.append(data)
                if self.leaving > 0:
                    self.leaving -= 1
                elif self.waiting:
                    _, contact, dialed_at = self.waiting.popleft()
                    self._connect(at, contact, dialed_at, record)
                else:
                    self.idle += 1
            else:  # _ABANDON: the caller is still waiting when the grace ends (FIFO: it is at the head)
                if self.waiting and self.waiting[0][0] == data:
                    _, contact, dialed_at = self.waiting.popleft()
                    self.abandons += 1
                    self._minute(at).abandoned += 1
                    self._final(abandoned=True)
                    if record is not None and contact is not None:
                        record(contact, dialed_at, RESULT_ABANDONED)
        self._pass_time(max(until, self.now))

    def _connect(
        self, at: float, contact: str | None, dialed_at: float, record: Callable[[str, float, str], None] | None
    ) -> None:
        self.busy += 1
        talk = self.rng.lognormvariate(*self._talk)
        wrap = self.rng.lognormvariate(*self._wrap) if self._wrap[1] > 0 else self.population.wrap_mean
        self._minute(at + talk).talk.append(talk)
        ended = self._minute(at + talk + wrap)
        ended.acw.append(wrap)
        ended.handle.append(talk + wrap)
        self.talk_seconds += talk
        self._push(at + talk + wrap, _FREE, talk + wrap)
        self._final(abandoned=False)
        if record is not None and contact is not None:
            record(contact, dialed_at, RESULT_CONNECTED)

    def _final(self, *, abandoned: bool) -> None:
        """A live answer's fate is known: steer the predictive threshold towards the campaign's abandonRate."""
        self._recent_abandoned.append(1 if abandoned else 0)
        self._finals += 1
        if self._finals % self.STEER_EVERY or self._target is None:
            return
        target = self._target / 100.0
        if target <= 0:
            return
        realized = sum(self._recent_abandoned) / len(self._recent_abandoned)
        self.threshold *= math.exp(self.STEER_GAIN * max(-2.0, min(1.0, (target - realized) / target)))
        self.threshold = min(0.5, max(1e-4, self.threshold))

    def _dial(
        self,
        pacing: Pacing,
        take_contact: Callable[[], str | None] | None,
        record: Callable[[str, float, str], None] | None,
    ) -> bool:
        """Top the lines up as the mode allows; True when the queue ran dry (wait for an event before asking
        again)."""
        self._target = pacing.abandon_target
        per_idle = 1.0 if pacing.mode == "progressive" else pacing.max_calls_per_agent
        target = min(int(per_idle * self.idle + 0.5), pacing.line_count)
        predictive = pacing.mode == "predictive"
        while self.lines < target:
            if predictive and not self._worth_another_line(pacing.no_answer_timeout):
                break
            contact = take_contact() if take_contact is not None else None
            if take_contact is not None and contact is None:
                return True
            self._launch(contact, pacing.no_answer_timeout)
        return False

    def _worth_another_line(self, timeout: float) -> bool:
        """Predictive stand-in: would one more call find every agent taken with probability <= threshold?

        Answers ahead of the new call: each line in flight, by how long it has rung, may still be a live answer
        that arrives before the new call's (mean ring time); agents then free: the idle ones and the busy ones
        whose handle ends within that time (exponential remaining time). Normal approximation.
        """
        pop = self.population
        p = sum(self._recent_live) / len(self._recent_live) if len(self._recent_live) >= 30 else 1.0
        handle = sum(self._recent_handle) / len(self._recent_handle) if self._recent_handle else (
            pop.talk_mean + pop.wrap_mean)
        ring = pop.ring_mean
        table = self._survival_table(timeout)
        step = self._SURVIVAL_STEP
        ahead = spread = 0.0
        shift = int(ring / step)
        last = len(table) - 1
        for dialed_at in self._in_flight.values():
            k = int((self.now - dialed_at) / step)
            if k >= last:
                continue
            live_now, non_live_now = table[k]
            live_later = table[min(k + shift, last)][0]
            alive = p * live_now + (1.0 - p) * non_live_now
            if alive <= 0.0:
                continue
            chance = p * (live_now - live_later) / alive
            ahead += chance
            spread += chance * (1.0 - chance)
        q = 1.0 - math.exp(-ring / max(handle, 1e-6))
        mean = ahead - self.idle - self.busy * q
        var = spread + self.busy * q * (1.0 - q)
        if var <= 1e-12:
            taken = 1.0 if mean >= -0.5 else 0.0
        else:
            taken = 0.5 * math.erfc((-0.5 - mean) / math.sqrt(2.0 * var))
        return taken * math.exp(-pop.abandon_after * self.busy / max(handle, 1e-6)) <= self.threshold

    _SURVIVAL_STEP = 0.5

    def _survival_table(self, timeout: float) -> list[tuple[float, float]]:
        """P(a live / a non-live dial is still ringing at age k x step), for k up to the timeout."""
        key = (self.population, timeout)
        if self._survival_key == key:
            return self._survival
        pop = self.population
        mu, sigma = self._ring
        non_live = 1.0 - pop.busy_share - pop.machine_share
        table = []
        for k in range(int(timeout / self._SURVIVAL_STEP) + 1):
            age = k * self._SURVIVAL_STEP
            ring_left = 0.5 * math.erfc((math.log(age) - mu) / (sigma * math.sqrt(2.0))) if age > 0 and sigma else (
                1.0 if age <= math.exp(mu) else 0.0)
            busy_left = 1.0 if age < 2.0 else max(0.0, (6.0 - age) / 4.0)
            machine_left = 1.0 if age < 3.0 else 0.5 * math.erfc(
                (math.log(age - 3.0) - mu) / (sigma * math.sqrt(2.0))) if age > 3.0 and sigma else 1.0
            table.append((ring_left if age < timeout else 0.0,
                          pop.busy_share * busy_left + pop.machine_share * machine_left + non_live))
        self._survival_key, self._survival = key, table
        return table

    def _launch(self, contact: str | None, timeout: float) -> None:
        rng = self.rng
        pop = self.population
        self.lines += 1
        self.dials += 1
        self._seq_line += 1
        line = self._seq_line
        self._in_flight[line] = self.now
        self._minute(self.now).attempted += 1
        if rng.random() < pop.answer_rate:
            ring = min(rng.lognormvariate(*self._ring), timeout)
            self._push(self.now + ring, _LIVE, (contact, self.now, ring, line))
            return
        v = rng.random()
        if v < pop.busy_share:
            duration, result = rng.uniform(2.0, 6.0), RESULT_BUSY
        elif v < pop.busy_share + pop.machine_share:
            duration, result = min(rng.lognormvariate(*self._ring), timeout) + 3.0, RESULT_MACHINE
        else:
            duration, result = timeout, RESULT_NO_ANSWER
        self._push(self.now + duration, _NONLIVE, (contact, self.now, result, line))

    # -- what Genesys reports ----------------------------------------------------------------------------
    def effective_idle(self) -> float:
        handle = self.population.talk_mean + self.population.wrap_mean
        return self.idle + self.busy * (1.0 - math.exp(-self.population.ring_mean / handle))

    def outcomes(self, start: float, end: float) -> list[tuple[float, MinuteOutcomes]]:
        """(minute start, outcomes) of the minutes in [start, end) that hold anything and have fully passed."""
        end = min(end, math.floor(self.now / 60) * 60.0)
        first, last = math.ceil(start / 60), math.ceil(end / 60)
        return [(k * 60.0, m) for k in range(first, last) if (m := self.minutes.get(k)) is not None]
