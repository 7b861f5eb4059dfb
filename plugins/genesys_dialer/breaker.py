"""A circuit breaker shared by every task using one Genesys connection, with its state in Variables.

The seed's defaults: open after 3 consecutive transient failures, stay open 30 s, then let at most 3
half-open probe requests through; their success closes it, a failure re-opens it.

Airflow Variables have no locking and no compare-and-set (last writer wins), so the stored state is made
of facts that any writer may set without corrupting it:

* ``<prefix>`` holds ``{"opened_at": t, "reason": ...}`` or nothing. "Open" and "half-open" are derived
  from the clock: open while ``now < opened_at + open_seconds``, half-open after. Two writers opening it at
  once both write a recent ``opened_at``; either value is right.
* ``<prefix>__fail__<writer>`` is one writer's own streak of consecutive transient failures. Only that
  writer updates it, so no increment is ever lost; the streaks of writers that failed within the open
  window are added up to decide whether to open. A writer's success deletes its own streak.
* ``<prefix>__probe__<slot>`` is a probe lease ``{"holder", "expires_at", "ok"}``. A writer takes a free or
  expired slot, writes it and reads it back. A writer that dies mid-probe leaves a lease that expires.

Residual approximation (documented in the README): in a race two writers may both read a slot as free
and both see their own write when they read it back, so up to twice ``half_open_max`` probes can go out
in the worst case; and a success by one writer does not reset another writer's streak, so "consecutive"
is per writer, summed over the open window.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from genesys_dialer import metrics
from genesys_dialer.exceptions import GenesysCircuitOpenError
from genesys_dialer.state import StateStore, default_store

log = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True)
class BreakerSettings:
    failure_threshold: int = 3
    open_seconds: float = 30.0
    half_open_max: int = 3
    probe_lease_seconds: float = 120.0


@dataclass(frozen=True)
class Permit:
    """Leave to send one request: a normal one, or a half-open probe holding ``slot``."""

    probe_slot: int | None = None


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        settings: BreakerSettings | None = None,
        store: StateStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.settings = settings or BreakerSettings()
        self._store = store
        self._clock = clock
        self.writer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._streak = 0
        self.key = f"genesys_breaker__{name}"

    @property
    def store(self) -> StateStore:
        # Resolved lazily: the same hook may be built at parse time and used inside a task.
        if self._store is None:
            self._store = default_store()
        return self._store

    # -- reading -----------------------------------------------------------------------------------
    def state(self) -> tuple[str, dict[str, Any] | None]:
        record = self.store.get(self.key)
        if not record or record.get("opened_at") is None:
            return CLOSED, record
        if self._clock() < record["opened_at"] + self.settings.open_seconds:
            return OPEN, record
        return HALF_OPEN, record

    def seconds_until_half_open(self) -> float:
        state, record = self.state()
        if state != OPEN or record is None:
            return 0.0
        return max(0.0, record["opened_at"] + self.settings.open_seconds - self._clock())

    # -- the request protocol ----------------------------------------------------------------------
    def acquire(self) -> Permit:
        """Leave to send, or GenesysCircuitOpenError (nothing was sent; the caller retries later)."""
        state, record = self.state()
        metrics.breaker_state(self.name, state)
        if state == CLOSED:
            return Permit()
        if state == OPEN:
            wait = record["opened_at"] + self.settings.open_seconds - self._clock()  # type: ignore[index]
            raise GenesysCircuitOpenError(
                f"circuit breaker for connection {self.name!r} is open ({record.get('reason')}); "
                f"nothing sent, half-open in {wait:.0f} s",
                retry_after=max(wait, 1.0),
            )
        slot = self._take_probe_slot()
        if slot is None:
            raise GenesysCircuitOpenError(
                f"circuit breaker for connection {self.name!r} is half-open and its "
                f"{self.settings.half_open_max} probe requests are in flight; nothing sent",
                retry_after=max(self.settings.open_seconds / 3, 1.0),
            )
        log.info("Circuit breaker %s half-open: probe request %d", self.name, slot + 1)
        return Permit(probe_slot=slot)

    def record_success(self, permit: Permit) -> None:
        if self._streak:
            self._streak = 0
            self.store.delete(self._fail_key(self.writer))
        if permit.probe_slot is None:
            return
        self.store.set(self._probe_key(permit.probe_slot), self._lease(ok=True))
        probes = [self.store.get(self._probe_key(i)) for i in range(self.settings.half_open_max)]
        if all(p and p.get("ok") for p in probes):
            self._transition(HALF_OPEN, CLOSED, f"{self.settings.half_open_max} probe requests succeeded")
            self.store.delete(self.key)
            self._clear_probes()

    def record_failure(self, permit: Permit, reason: str) -> None:
        """A transient failure or a 500; auth and other client errors must not be recorded here."""
        now = self._clock()
        if permit.probe_slot is not None:
            self._open(now, f"half-open probe failed: {reason}", from_state=HALF_OPEN)
            return
        self._streak += 1
        self.store.set(self._fail_key(self.writer), {"streak": self._streak, "at": now})
        total = self._recent_failures(now)
        if total >= self.settings.failure_threshold:
            state, _ = self.state()
            if state == CLOSED:
                self._open(now, f"{total} consecutive failures, last: {reason}", from_state=CLOSED)

    # -- internals -----------------------------------------------------------------------------------
    def _recent_failures(self, now: float) -> int:
        total = 0
        for key in self.store.keys(f"{self.key}__fail__"):
            fact = self.store.get(key)
            if fact and now - fact.get("at", 0) <= self.settings.open_seconds:
                total += int(fact.get("streak", 0))
        return total

    def _open(self, now: float, reason: str, *, from_state: str) -> None:
        self.store.set(self.key, {"opened_at": now, "reason": reason, "by": self.writer})
        self._clear_probes()
        for key in self.store.keys(f"{self.key}__fail__"):
            self.store.delete(key)
        self._streak = 0
        self._transition(from_state, OPEN, reason)

    def _transition(self, from_state: str, to_state: str, reason: str) -> None:
        log.warning("Circuit breaker %s: %s -> %s (%s)", self.name, from_state, to_state, reason)
        metrics.breaker_transition(self.name, from_state, to_state)
        metrics.breaker_state(self.name, to_state)

    def _take_probe_slot(self) -> int | None:
        now = self._clock()
        for slot in range(self.settings.half_open_max):
            lease = self.store.get(self._probe_key(slot))
            if lease and (lease.get("ok") or lease.get("expires_at", 0) > now):
                continue
            self.store.set(self._probe_key(slot), self._lease(ok=False))
            confirmed = self.store.get(self._probe_key(slot))
            if confirmed and confirmed.get("holder") == self.writer:
                return slot
        return None

    def _lease(self, *, ok: bool) -> dict[str, Any]:
        return {
            "holder": self.writer,
            "expires_at": self._clock() + self.settings.probe_lease_seconds,
            "ok": ok,
        }

    def _clear_probes(self) -> None:
        for slot in range(self.settings.half_open_max):
            self.store.delete(self._probe_key(slot))

    def _probe_key(self, slot: int) -> str:
        return f"{self.key}__probe__{slot}"

    def _fail_key(self, writer: str) -> str:
        return f"{self.key}__fail__{writer}"
