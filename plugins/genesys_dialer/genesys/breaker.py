"""A circuit breaker shared by every task using one Genesys connection, with its state in Variables.

Defaults (the seed's): open after 3 consecutive transient failures, stay open 30 s, then let at most 3
half-open probe requests through; their successes close it, a failure re-opens it.

Airflow Variables have no locking and no compare-and-set (last writer wins), so the stored state is made
of facts that any writer may (re)write without corrupting it. ``P`` is ``genesys_breaker__<conn_id>``:

* ``P`` = ``{"opened_at": t, "reason", "by", "history"}``: written only when the breaker opens, never deleted
  (``history``: the previous openings' times, at most 20).
  ``opened_at`` is the *generation* of that opening. Open while ``now < opened_at + open_seconds``,
  half-open after, until a close fact for that generation exists. A writer about to open re-reads ``P`` and
  leaves an opening another writer made meanwhile alone (one outage, one generation); two writers within one
  round trip can still both write a recent ``opened_at``, and either is right.
* ``P__closed`` = ``{"gen": opened_at, "closed_at": t}``: written when the probes of generation ``gen``
  succeeded. A close can never hide a newer opening (its ``gen`` would not match ``opened_at``), which a
  ``Variable.delete(P)`` racing a re-open could. A close is final for its generation, so a writer that
  has seen it reads only ``P`` again: a closed breaker costs one Variable read per request, unless the task
  trusts a closed reading for ``cache_seconds``. With an openings mirror (the hook's: a count in the rate
  budget's PostgreSQL, bumped by whoever opens the breaker, after writing ``P``), that trust also needs the count
  unchanged since before the reading, checked before every request: an opening is seen as soon as without a
  cache, for one local query instead of an API round trip; ``cache_seconds`` then only bounds how long a
  mirror that missed an opening (its write failed) can hide it. Without a mirror a closed reading is trusted
  blindly for ``cache_seconds`` (default 0).
* ``P__probe__<slot>`` = ``{"gen", "holder", "expires_at", "ok", "fails"}``: a probe lease of one half-open
  generation. A writer takes a free slot (absent, of an older generation, or not ok and expired or held by a
  dead process), writes it, waits ``probe_settle_seconds`` and reads it back: the last writer of a contended
  slot keeps it. A holder is dead when it ran on this host and its process is gone (a SIGKILLed task): its
  slot is free at once; a holder on another host is waited for until its lease (one request's connect + read
  timeout + 10 s) expires. A success marks the lease ok; once every slot of the generation is ok the breaker
  closes. A failed probe re-opens the breaker only if no probe of the generation has succeeded yet or the
  generation's probe failures (``fails``, carried by each slot) reach ``failure_threshold``; otherwise it frees
  its slot for another probe and the other probes' successes stand. A probe that ends neither way (401/403,
  or an answer lost on a request that may have been applied) releases its lease.
* ``P__fail__<writer>`` = ``{"streak", "times", "at", "ok_at"}``: one writer's own run of consecutive transient
  failures (``times``: when its last ``failure_threshold`` failures happened, ``at`` the last); only that writer
  updates it, so no increment is lost. When the writer succeeds again it writes ``streak 0, ok_at`` (and keeps
  ``ok_at`` in its later failure facts). To decide
  whether to open, the writers' failure times are counted if they are within ``open_seconds``, newer than the
  last close, and newer than the latest ``ok_at`` of any writer: a success seen anywhere ends every streak
  before it, so failures scattered between successes of other writers do not add up. Stale keys of
  writers that died are garbage-collected by whoever lists them. The listing (``Variable.keys``) costs an
  API round trip, so it only happens on a failure, never on the success path.

Residual approximations (see docs/resilience.md): in a race, two writers can both keep one probe slot
(the settle delay makes it unlikely, not impossible), so with the slots freed by failed probes up to
``2 * (half_open_max + failure_threshold - 1)`` probes can go out in one half-open window; only
writers that failed record their next success, so successes of writers that never failed do not end other
writers' streaks; a garbage collection racing its owner's write can lose one failure fact; workers' clocks are
assumed to agree to well under ``open_seconds``. If the Variables themselves cannot be read or written, the
breaker fails open (lets requests through, logs a warning): the hook's own retries still bound the load.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from functools import cache
from typing import Any, Protocol

from genesys_dialer import metrics
from genesys_dialer.genesys.errors import GenesysCircuitOpenError
from genesys_dialer.genesys.state import StateStore, default_store

log = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
KEY_PREFIX = "genesys_breaker__"
HISTORY_SIZE = 20  # earlier openings kept in P


@dataclass(frozen=True)
class BreakerSettings:
    """Tunable per connection through the connection's extra (``breaker_<field>``)."""

    failure_threshold: int = 3
    open_seconds: float = 30.0
    half_open_max: int = 3
    probe_lease_seconds: float = 60.0
    probe_settle_seconds: float = 0.2
    stale_fail_seconds: float = 600.0
    # How long a task trusts a *closed* state it read (0: read the Variable before every request). Reading it
    # through the API server costs ~60 ms, a third of one request's share of the rate limit; a breaker another
    # worker opened is seen at most this late (this worker's own failures are seen at once).
    cache_seconds: float = 0.0

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any], base: BreakerSettings | None = None) -> BreakerSettings:
        """``breaker_failure_threshold``, ``breaker_open_seconds``... from a connection extra; bad values raise."""
        base = base or cls()
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = extra.get(f"breaker_{f.name}")
            if raw is None:
                continue
            cast = int if f.type in ("int", int) else float
            try:
                value = cast(raw)
            except (TypeError, ValueError):
                raise ValueError(f"connection extra breaker_{f.name} must be a number, got {raw!r}") from None
            if value < 0 or (f.name in ("failure_threshold", "half_open_max") and value < 1):
                raise ValueError(f"connection extra breaker_{f.name} is out of range: {raw!r}")
            values[f.name] = value
        return replace(base, **values)


class OpeningsMirror(Protocol):
    """A count of each breaker's openings, shared like the Variables but cheap to read (genesys.budget)."""

    def breaker_openings(self, breaker: str) -> int | None: ...

    def record_breaker_opening(self, breaker: str) -> None: ...


@dataclass(frozen=True)
class Permit:
    """Leave to send one request: a normal one, or a half-open probe of generation ``gen`` holding ``slot``."""

    probe_slot: int | None = None
    gen: float | None = None
    fails: int = 0  # probe failures of this generation already on the slot


@dataclass(frozen=True)
class Snapshot:
    """The derived state and the facts it came from (for logs, tests and the docs' figures)."""

    state: str
    opened_at: float | None = None
    reason: str | None = None
    closed_at: float | None = None


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        settings: BreakerSettings | None = None,
        store: StateStore | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        openings: OpeningsMirror | None = None,
    ) -> None:
        self.name = name
        self.openings = openings
        self.settings = settings or BreakerSettings()
        self._store = store
        self._clock = clock
        self._sleep = sleep
        self.writer = f"{_this_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._streak = 0
        self._failure_times: deque[float] = deque(maxlen=self.settings.failure_threshold)
        self._last_failure_at = 0.0
        self._last_ok_at: float | None = None  # this writer's last success after a failure (ends others' runs)
        self._seen_closed: Snapshot | None = None  # a close is final for its generation: read it once
        self._closed_until = 0.0  # monotonic time until which a closed state read is trusted (cache_seconds)
        self._closed_openings: int | None = None  # the mirror's count read just before that closed reading
        self.key = f"{KEY_PREFIX}{name}"

    @property
    def store(self) -> StateStore:
        # Resolved lazily: the same hook may be built at parse time and used inside a task.
        if self._store is None:
            self._store = default_store()
        return self._store

    # -- reading -----------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        record = self.store.get(self.key) or {}
        opened_at = _number(record.get("opened_at"))
        if opened_at is None:
            return Snapshot(CLOSED)
        reason = record.get("reason")
        if self._clock() < opened_at + self.settings.open_seconds:
            return Snapshot(OPEN, opened_at, reason)
        if self._seen_closed is not None and self._seen_closed.opened_at == opened_at:
            return self._seen_closed
        closed = self.store.get(self._closed_key) or {}
        if _number(closed.get("gen")) == opened_at:
            self._seen_closed = Snapshot(CLOSED, opened_at, reason, _number(closed.get("closed_at")))
            return self._seen_closed
        return Snapshot(HALF_OPEN, opened_at, reason)

    def state(self) -> str:
        return self.snapshot().state

    # -- the request protocol ----------------------------------------------------------------------
    def acquire(self) -> Permit:
        """Leave to send, or GenesysCircuitOpenError (nothing was sent; the caller retries later)."""
        try:
            return self._acquire()
        except GenesysCircuitOpenError:
            raise
        except Exception as err:  # Variables unreachable: fail open, the hook's retries still bound the load
            log.warning("Circuit breaker %s: state store failed (%s); letting the request through",
                        self.name, type(err).__name__)
            return Permit()

    def _acquire(self) -> Permit:
        if self._closed_reading_holds():
            metrics.breaker_state(self.name, CLOSED)  # every request reports the state it went by
            return Permit()
        # Read before the Variable: an opening after this read changes the count, whatever the Variable said.
        caching = bool(self.settings.cache_seconds)
        openings = self.openings.breaker_openings(self.key) if caching and self.openings else None
        snap = self.snapshot()
        metrics.breaker_state(self.name, snap.state)
        if snap.state == CLOSED:
            if caching and (self.openings is None or openings is not None):  # a mirror that answered, or none
                self._closed_until = time.monotonic() + self.settings.cache_seconds
                self._closed_openings = openings
            return Permit()
        assert snap.opened_at is not None
        if snap.state == OPEN:
            wait = snap.opened_at + self.settings.open_seconds - self._clock()
            raise GenesysCircuitOpenError(
                f"circuit breaker for connection {self.name!r} is open ({snap.reason}); nothing sent, "
                f"half-open in {wait:.0f} s",
                retry_after=max(wait, 0.5),
            )
        permit = self._take_probe_slot(snap.opened_at)
        if permit is None:
            raise GenesysCircuitOpenError(
                f"circuit breaker for connection {self.name!r} is half-open and its "
                f"{self.settings.half_open_max} probe requests are taken; nothing sent",
                retry_after=max(min(5.0, self.settings.open_seconds / 6), 0.5),
            )
        return permit

    def still_holds(self, permit: Permit) -> bool:
        """Whether a permit taken a while ago is still good to send on (the caller waited since): a plain one
        while the breaker is still closed, a probe while its generation is still the half-open one. Reports no
        state: the request already did when it took the permit."""
        if permit.probe_slot is None and self._closed_reading_holds():
            return True  # the mirror counts no opening since the closed reading (one local query)
        try:
            snap = self.snapshot()
        except Exception:  # as acquire: an unreadable store lets the request through
            return True
        if permit.probe_slot is None:
            return snap.state == CLOSED
        return snap.state == HALF_OPEN and snap.opened_at == permit.gen

    def _closed_reading_holds(self) -> bool:
        """Whether the last closed reading may be trusted for this request: within ``cache_seconds``, and with a
        mirror, only while its count of openings is the one read with it (unreadable: read the Variable)."""
        if not self.settings.cache_seconds or time.monotonic() >= self._closed_until:
            return False
        if self.openings is None:
            return True
        if self.openings.breaker_openings(self.key) == self._closed_openings:
            return True
        self._closed_until = 0.0
        return False

    def record_success(self, permit: Permit) -> None:
        """Genesys answered (2xx, or a client error that proves it is up)."""
        try:
            self._record_success(permit)
        except Exception as err:
            log.warning("Circuit breaker %s: could not record a success (%s)", self.name, type(err).__name__)

    def record_failure(self, permit: Permit, reason: str) -> None:
        """A transient failure or a 500; auth and other client errors must not be recorded here."""
        try:
            self._record_failure(permit, reason)
        except Exception as err:
            log.warning("Circuit breaker %s: could not record a failure (%s)", self.name, type(err).__name__)

    def release(self, permit: Permit) -> None:
        """Neither success nor failure (401/403 during a probe, an answer lost on a request that may have been
        applied): free the probe slot for another request."""
        if permit.probe_slot is None:
            return
        try:
            self.store.set(self._probe_key(permit.probe_slot),
                           {"gen": permit.gen, "holder": self.writer, "expires_at": 0.0, "ok": False,
                            "fails": permit.fails})
        except Exception as err:
            log.warning("Circuit breaker %s: could not release a probe (%s)", self.name, type(err).__name__)

    # -- internals -----------------------------------------------------------------------------------
    def _record_success(self, permit: Permit) -> None:
        if self._streak:
            # This writer's streak is over, and so is every other writer's that began before now.
            self._streak = 0
            self._failure_times.clear()
            self._last_ok_at = self._clock()
            self.store.set(self._fail_key(self.writer),
                           {"streak": 0, "times": [], "at": self._last_failure_at, "ok_at": self._last_ok_at})
        if permit.probe_slot is None:
            return
        lease = {"gen": permit.gen, "holder": self.writer, "expires_at": self._clock(), "ok": True,
                 "fails": permit.fails}
        self.store.set(self._probe_key(permit.probe_slot), lease)
        probes = [self.store.get(self._probe_key(i)) or {} for i in range(self.settings.half_open_max)]
        if not all(p.get("ok") and _number(p.get("gen")) == permit.gen for p in probes):
            return
        snap = self.snapshot()
        if snap.state != HALF_OPEN or snap.opened_at != permit.gen:
            return  # re-opened (a newer generation) or already closed by another writer
        self._close(permit.gen)

    def _close(self, gen: float) -> None:
        self.store.set(self._closed_key, {"gen": gen, "closed_at": self._clock(), "by": self.writer})
        self._transition(HALF_OPEN, CLOSED, f"{self.settings.half_open_max} probe requests succeeded")

    def _record_failure(self, permit: Permit, reason: str) -> None:
        self._closed_until = 0.0  # read the shared state again before the next request
        now = self._clock()
        if permit.probe_slot is not None:
            self._probe_failed(permit, reason)
            return
        if now - self._last_failure_at > self.settings.open_seconds:
            self._streak = 0  # this writer's earlier failures are out of the window: a new run starts
        if not self._streak:
            self._failure_times.clear()
        self._streak += 1
        self._failure_times.append(now)
        self._last_failure_at = now
        self.store.set(self._fail_key(self.writer), {"streak": self._streak, "times": list(self._failure_times),
                                                     "at": now, "ok_at": self._last_ok_at})
        snap = self.snapshot()
        if snap.state != CLOSED:
            return  # a request that was in flight when the breaker opened
        total = self._streak
        if total < self.settings.failure_threshold:
            total = self._recent_failures(now, since=snap.closed_at or 0.0)
        if total >= self.settings.failure_threshold:
            self._open(f"{total} consecutive transient failures, last: {reason}", from_state=CLOSED,
                       seen=snap.opened_at)

    def _probe_failed(self, permit: Permit, reason: str) -> None:
        """Re-open if Genesys still looks down; else free the slot and keep the other probes' successes."""
        snap = self.snapshot()
        if snap.state != HALF_OPEN or snap.opened_at != permit.gen:
            return  # re-opened or closed by another writer meanwhile
        leases = [self.store.get(self._probe_key(i)) or {} for i in range(self.settings.half_open_max)]
        current = [lease for lease in leases if _number(lease.get("gen")) == permit.gen]
        succeeded = sum(1 for lease in current if lease.get("ok"))
        fails = permit.fails + 1
        failed = fails + sum(int(_number(lease.get("fails")) or 0) for slot, lease in enumerate(leases)
                             if slot != permit.probe_slot and _number(lease.get("gen")) == permit.gen)
        if not succeeded or failed >= self.settings.failure_threshold:
            self._open(f"half-open probe failed: {reason}"
                       + (f" ({failed} probe failures)" if succeeded else ""), from_state=HALF_OPEN, seen=permit.gen)
            return
        log.warning("Circuit breaker %s: a half-open probe failed (%s); %d probe(s) already succeeded, so the slot "
                    "goes to another probe (%d probe failures of %d before re-opening)", self.name, reason,
                    succeeded, failed, self.settings.failure_threshold)
        self.store.set(self._probe_key(permit.probe_slot),  # type: ignore[arg-type]
                       {"gen": permit.gen, "holder": self.writer, "expires_at": 0.0, "ok": False, "fails": fails})

    def _recent_failures(self, now: float, *, since: float) -> int:
        """Sum of the writers' streaks within the window, after the last close and after the latest success
        any writer recorded; collects stale keys."""
        facts = []
        for key in self.store.keys(f"{self.key}__fail__"):
            fact = self.store.get(key) or {}
            seen = max(_number(fact.get("at")) or 0.0, _number(fact.get("ok_at")) or 0.0)
            if now - seen > self.settings.stale_fail_seconds and key != self._fail_key(self.writer):
                self.store.delete(key)  # a writer that failed and then died or gave up
                continue
            facts.append(fact)
        latest_ok = max((_number(f.get("ok_at")) or 0.0 for f in facts), default=0.0)
        after = max(since, latest_ok, now - self.settings.open_seconds)
        total = 0
        for fact in facts:
            times = fact.get("times")
            if isinstance(times, list):
                total += sum(1 for t in times if (_number(t) or 0.0) > after)
        return total

    def _open(self, reason: str, *, from_state: str, seen: float | None) -> None:
        """Open a new generation, unless another writer opened one since this writer saw generation ``seen``.

        Its ``opened_at`` is when it is written, not when the failure that tipped it was: the reads in between
        (the writers' streaks, the state) take several Variable round trips, during which the others rightly
        still send, and the open period starts when they can see it."""
        # The earlier openings (bounded), for post-mortems and the tests' "nothing sent while open" check.
        previous = self.store.get(self.key) or {}
        latest = _number(previous.get("opened_at"))
        if latest is not None and latest != seen and (seen is None or latest > seen):
            self._end_streak()
            return  # already (re-)opened by another writer: one outage, one generation
        history = [t for t in previous.get("history") or [] if _number(t) is not None][-(HISTORY_SIZE - 1):]
        if _number(previous.get("opened_at")) is not None:
            history.append(previous["opened_at"])
        self.store.set(self.key, {"opened_at": self._clock(), "reason": reason, "by": self.writer,
                                  "history": history[-HISTORY_SIZE:]})
        if self.openings is not None:
            self.openings.record_breaker_opening(self.key)
        self._end_streak()
        self._transition(from_state, OPEN, f"{reason}; open for {self.settings.open_seconds:g} s")

    def _end_streak(self) -> None:
        """The breaker opened on this writer's failures (among others'): they are spent."""
        if self._streak:
            self._streak = 0
            self._failure_times.clear()
            self.store.delete(self._fail_key(self.writer))

    def _transition(self, from_state: str, to_state: str, reason: str) -> None:
        log.warning("Circuit breaker %s: %s -> %s (%s)", self.name, from_state, to_state, reason)
        metrics.breaker_transition(self.name, from_state, to_state)
        metrics.breaker_state(self.name, to_state)

    def _slot_free(self, lease: dict[str, Any], gen: float, now: float) -> bool:
        """A slot of generation ``gen`` is free unless it succeeded or a live holder's lease runs."""
        if _number(lease.get("gen")) != gen:
            return True
        if lease.get("ok"):
            return False
        if (_number(lease.get("expires_at")) or 0.0) <= now:
            return True
        holder = lease.get("holder")
        if isinstance(holder, str) and holder != self.writer and _holder_is_dead(holder):
            log.warning("Circuit breaker %s: the holder of a probe lease (%s) is gone; taking its slot",
                        self.name, holder)
            return True
        return False

    def _take_probe_slot(self, gen: float) -> Permit | None:
        """A probe permit of generation ``gen``; a plain one if its probes all succeeded; None if all taken."""
        now = self._clock()
        leases = [self.store.get(self._probe_key(i)) or {} for i in range(self.settings.half_open_max)]
        current = [_number(lease.get("gen")) == gen for lease in leases]
        if all(current) and all(lease.get("ok") for lease in leases):
            self._close(gen)  # the writer whose success completed the probes died before closing
            return Permit()
        if not any(current):
            self._transition(OPEN, HALF_OPEN, f"open for {self.settings.open_seconds:g} s; probing")
        free = [slot for slot, lease in enumerate(leases) if self._slot_free(lease, gen, now)]
        random.shuffle(free)  # contending writers rarely pick the same slot
        for index, slot in enumerate(free):
            key = self._probe_key(slot)
            lease = leases[slot]
            if index:  # the list is stale after a lost race: re-read before taking another slot
                lease = self.store.get(key) or {}
                if not self._slot_free(lease, gen, self._clock()):
                    continue
            # The slot's probe failures of this generation go with it to its next holder.
            fails = int(_number(lease.get("fails")) or 0) if _number(lease.get("gen")) == gen else 0
            self.store.set(key, {"gen": gen, "holder": self.writer,
                                 "expires_at": now + self.settings.probe_lease_seconds, "ok": False, "fails": fails})
            if self.settings.probe_settle_seconds:
                self._sleep(self.settings.probe_settle_seconds)  # let a racing writer's set land first
            confirmed = self.store.get(key) or {}
            if confirmed.get("holder") == self.writer and _number(confirmed.get("gen")) == gen:
                if self.settings.probe_settle_seconds and self.snapshot().opened_at != gen:
                    # Another probe failed and re-opened the breaker while this one settled: do not send.
                    self.release(Permit(probe_slot=slot, gen=gen, fails=fails))
                    return None
                log.info("Circuit breaker %s half-open: sending probe request %d of %d",
                         self.name, slot + 1, self.settings.half_open_max)
                return Permit(probe_slot=slot, gen=gen, fails=fails)
        return None

    @property
    def _closed_key(self) -> str:
        return f"{self.key}__closed"

    def _probe_key(self, slot: int) -> str:
        return f"{self.key}__probe__{slot}"

    def _fail_key(self, writer: str) -> str:
        return f"{self.key}__fail__{writer}"


@cache
def _this_host() -> str:
    return socket.gethostname()


def _holder_is_dead(holder: str) -> bool:
    """True only when ``holder`` (``<host>-<pid>-<nonce>``) ran on this host and its process is gone or a zombie.

    A holder on another host, or whose pid now belongs to another live process, counts as alive: its lease
    expires on its own.
    """
    import psutil

    parts = holder.rsplit("-", 2)
    if len(parts) != 3 or parts[0] != _this_host():
        return False
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    if pid == os.getpid():
        return False  # another breaker object of this very process: alive
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def _number(value: Any) -> float | None:
    """A stored number, or None for anything else (a hand-edited Variable must not crash the breaker)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
