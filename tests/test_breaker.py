"""The circuit breaker's stored-facts design under concurrency, with the in-memory store and threads.

Each ``CircuitBreaker`` instance is one writer (one task process in production). The store is wrapped to
behave like Variables through the API server: every call takes a little time and the last writer wins.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from support import CountingStore

from genesys_dialer.genesys.breaker import CLOSED, HALF_OPEN, OPEN, BreakerSettings, CircuitBreaker, Permit
from genesys_dialer.genesys.errors import GenesysCircuitOpenError
from genesys_dialer.genesys.state import MemoryStateStore


class Clock:
    def __init__(self) -> None:
        self.now = 5_000_000.0

    def __call__(self) -> float:
        return self.now


class SlowStore(MemoryStateStore):
    """Variables over HTTP: each call takes 0..``jitter`` s, so concurrent writers interleave."""

    def __init__(self, jitter: float = 0.002) -> None:
        super().__init__()
        self.jitter = jitter
        self.calls: dict[str, int] = {"get": 0, "set": 0, "delete": 0, "keys": 0}

    def _pause(self, op: str) -> None:
        self.calls[op] += 1
        if self.jitter:
            time.sleep(random.uniform(0, self.jitter))

    def get(self, key: str) -> dict[str, Any] | None:
        self._pause("get")
        return super().get(key)

    def set(self, key: str, value: dict[str, Any]) -> None:
        self._pause("set")
        super().set(key, value)

    def delete(self, key: str) -> None:
        self._pause("delete")
        super().delete(key)

    def keys(self, prefix: str) -> list[str]:
        self._pause("keys")
        return super().keys(prefix)


SETTINGS = BreakerSettings(probe_settle_seconds=0)


def writers(
    n: int, store: MemoryStateStore, clock: Clock, settings: BreakerSettings = SETTINGS
) -> list[CircuitBreaker]:
    return [CircuitBreaker("conn", settings, store, clock=clock, sleep=time.sleep) for _ in range(n)]


def in_threads(fns: list[Callable[[], Any]]) -> list[Any]:
    barrier = threading.Barrier(len(fns))

    def run(fn: Callable[[], Any]) -> Any:
        barrier.wait()
        return fn()

    with ThreadPoolExecutor(len(fns)) as pool:
        return list(pool.map(run, fns))


def test_opens_after_three_consecutive_failures_of_one_writer_and_a_success_resets_the_streak():
    clock, store = Clock(), MemoryStateStore()
    (breaker,) = writers(1, store, clock)
    breaker.record_failure(breaker.acquire(), "503")
    breaker.record_failure(breaker.acquire(), "503")
    breaker.record_success(breaker.acquire())
    breaker.record_failure(breaker.acquire(), "503")
    breaker.record_failure(breaker.acquire(), "503")
    assert breaker.state() == CLOSED
    breaker.record_failure(breaker.acquire(), "timeout")
    assert breaker.state() == OPEN
    with pytest.raises(GenesysCircuitOpenError, match="3 consecutive transient failures, last: timeout") as info:
        breaker.acquire()
    assert info.value.retry_after == pytest.approx(30)


class RoundTripStore(SlowStore):
    """A SlowStore on the test's clock: every call moves it on by one round trip, and sets are timed."""

    def __init__(self, clock: Clock, round_trip: float) -> None:
        super().__init__(jitter=0)
        self.clock, self.round_trip = clock, round_trip
        self.set_at: dict[str, float] = {}

    def _pause(self, op: str) -> None:
        super()._pause(op)
        self.clock.now += self.round_trip

    def set(self, key: str, value: dict[str, Any]) -> None:
        super().set(key, value)
        self.set_at[key] = self.clock.now


def test_the_open_period_starts_when_the_opening_is_written_not_at_the_failure_that_tipped_it():
    """Deciding to open takes several Variable round trips, during which other writers still read it closed
    and send: the open period (and the record of when it started) begins when they can see it."""
    clock = Clock()
    store = RoundTripStore(clock, round_trip=0.2)
    breaker, other = writers(2, store, clock)
    for _ in range(2):
        breaker.record_failure(breaker.acquire(), "503")
    failed_at = clock.now
    breaker.record_failure(Permit(), "503")
    opened_at = breaker.snapshot().opened_at
    assert opened_at is not None
    assert opened_at >= failed_at + 0.6  # its own fail fact, the state, the earlier state: 3+ round trips later
    assert opened_at == store.set_at[breaker.key] - store.round_trip  # stamped as it was sent
    with pytest.raises(GenesysCircuitOpenError):
        other.acquire()
    clock.now = failed_at + SETTINGS.open_seconds  # open for 30 s from the write: still open 30 s after the failure
    with pytest.raises(GenesysCircuitOpenError, match="is open"):
        other.acquire()
    clock.now = opened_at + SETTINGS.open_seconds
    other.acquire()  # half-open: a probe goes through


def test_parallel_writers_failures_add_up_with_no_lost_increment():
    """30 writers fail once each at the same moment: per-writer keys lose nothing, a shared counter would."""
    clock, store = Clock(), SlowStore()
    breakers = writers(30, store, clock, BreakerSettings(failure_threshold=30, probe_settle_seconds=0))
    in_threads([lambda b=b: b.record_failure(Permit(), "503") for b in breakers])
    assert breakers[0].state() == OPEN

    naive = MemoryStateStore()
    naive.set("n", {"count": 0})

    def increment() -> None:
        value = naive.get("n")["count"]  # type: ignore[index]
        time.sleep(random.uniform(0, 0.002))
        naive.set("n", {"count": value + 1})

    in_threads([increment] * 30)
    assert naive.get("n")["count"] < 30  # type: ignore[index]  # why the design stores facts, not counters


def test_failures_older_than_the_window_or_before_the_last_close_do_not_count():
    clock, store = Clock(), MemoryStateStore()
    a, b, c = writers(3, store, clock)
    a.record_failure(Permit(), "503")
    clock.now += 31
    b.record_failure(Permit(), "503")
    c.record_failure(Permit(), "503")
    assert a.state() == CLOSED  # a's failure is out of the 30 s window
    store.set(a.key, {"opened_at": clock.now - 40, "reason": "old"})
    store.set(a._closed_key, {"gen": clock.now - 40, "closed_at": clock.now})
    clock.now += 1
    a.record_failure(Permit(), "503")
    assert a.state() == CLOSED  # b's and c's failures predate the close


def test_stale_fail_keys_of_dead_writers_are_collected():
    clock, store = Clock(), MemoryStateStore()
    dead, alive = writers(2, store, clock)
    dead.record_failure(Permit(), "503")
    clock.now += 601
    alive.record_failure(Permit(), "503")
    assert store.keys(f"{alive.key}__fail__") == [alive._fail_key(alive.writer)]
    alive.record_success(Permit())  # its streak is over: a fact of its success remains (it ends others' streaks)
    assert store.get(alive._fail_key(alive.writer))["streak"] == 0
    clock.now += 601
    dead.record_failure(Permit(), "503")  # a writer listing the facts collects the stale success too
    assert store.keys(f"{alive.key}__fail__") == [dead._fail_key(dead.writer)]


def test_a_success_by_any_writer_ends_the_streaks_before_it():
    """Failures scattered between other writers' successes are not consecutive: they do not open the breaker."""
    clock, store = Clock(), MemoryStateStore()
    a, b, c = writers(3, store, clock)
    a.record_failure(Permit(), "503")
    clock.now += 1
    b.record_failure(Permit(), "503")
    clock.now += 1
    a.record_success(Permit())  # Genesys answered a: the two failures before it are not part of a run
    clock.now += 1
    c.record_failure(Permit(), "503")
    clock.now += 1
    b.record_failure(Permit(), "503")  # b's second failure counts, its first does not
    assert a.state() == CLOSED
    clock.now += 1
    a.record_failure(Permit(), "503")  # three failures since the last success, by three writers: an outage
    assert a.state() == OPEN


def test_a_writer_that_fails_again_still_carries_its_last_success():
    clock, store = Clock(), MemoryStateStore()
    a, b, c = writers(3, store, clock)
    b.record_failure(Permit(), "503")
    clock.now += 1
    a.record_failure(Permit(), "503")
    a.record_success(Permit())  # ends b's failure (and a's)...
    clock.now += 1
    a.record_failure(Permit(), "503")  # ...and a's next failure must not bring them back
    c.record_failure(Permit(), "503")
    assert a.state() == CLOSED  # two failures since the last success, not three
    c.record_failure(Permit(), "503")
    assert a.state() == OPEN


def test_half_open_lets_at_most_the_probes_through_across_many_writers():
    """40 writers ask at once, 20 times: each round grants at most 3 probes (6 in the documented worst case)."""
    granted_per_round = []
    for _ in range(20):
        clock, store = Clock(), SlowStore(jitter=0.003)
        settings = BreakerSettings(probe_settle_seconds=0.02)
        breakers = writers(40, store, clock, settings)
        store.set(breakers[0].key, {"opened_at": clock.now - 31, "reason": "test"})

        def ask(b: CircuitBreaker) -> Permit | None:
            try:
                return b.acquire()
            except GenesysCircuitOpenError:
                return None

        permits = in_threads([lambda b=b: ask(b) for b in breakers])
        granted = [p for p in permits if p is not None]
        assert all(p.probe_slot is not None for p in granted)
        granted_per_round.append(len(granted))
    print("probes granted per round:", granted_per_round)
    assert max(granted_per_round) <= 2 * settings.half_open_max, granted_per_round
    assert sum(granted_per_round) / len(granted_per_round) <= 3.5, granted_per_round


def test_probe_successes_close_and_a_probe_failure_reopens_with_a_new_generation(caplog):
    clock, store = Clock(), MemoryStateStore()
    a, b = writers(2, store, clock)
    store.set(a.key, {"opened_at": clock.now - 31, "reason": "test"})
    first = a.acquire()
    assert a.state() == HALF_OPEN
    failing = b.acquire()
    with caplog.at_level(logging.WARNING, logger="genesys_dialer.genesys.breaker"):
        b.record_failure(failing, "503")
    assert a.state() == OPEN
    assert "half_open -> open (half-open probe failed: 503" in caplog.text
    a.record_success(first)  # a probe of the old generation: it must not close the new opening
    assert a.state() == OPEN

    clock.now += 31
    with caplog.at_level(logging.WARNING, logger="genesys_dialer.genesys.breaker"):
        for _ in range(3):
            a.record_success(a.acquire())
    assert a.state() == CLOSED
    assert "half_open -> closed (3 probe requests succeeded)" in caplog.text
    assert a.acquire() == Permit()


def test_a_failed_probe_after_another_succeeded_keeps_that_success_and_frees_its_slot(caplog):
    clock, store = Clock(), MemoryStateStore()
    a, b, c = writers(3, store, clock)
    store.set(a.key, {"opened_at": clock.now - 31, "reason": "test"})
    gen = a.snapshot().opened_at
    a.record_success(a.acquire())  # probe 1 succeeded
    failing = b.acquire()
    with caplog.at_level(logging.WARNING, logger="genesys_dialer.genesys.breaker"):
        b.record_failure(failing, "timeout")  # probe 2 failed: one failure does not erase probe 1's success
    assert a.state() == HALF_OPEN and a.snapshot().opened_at == gen
    assert "1 probe(s) already succeeded, so the slot goes to another probe" in caplog.text
    c.record_success(c.acquire())  # the freed slot goes to another probe...
    assert a.state() == HALF_OPEN
    b.record_success(b.acquire())
    assert a.state() == CLOSED  # ...and three successes close it


def test_probe_failures_reaching_the_threshold_reopen_even_after_a_success():
    clock, store = Clock(), MemoryStateStore()
    a, b = writers(2, store, clock)
    store.set(a.key, {"opened_at": clock.now - 31, "reason": "test"})
    gen = a.snapshot().opened_at
    a.record_success(a.acquire())
    for _ in range(2):
        b.record_failure(b.acquire(), "503")
        assert a.state() == HALF_OPEN
    b.record_failure(b.acquire(), "503")  # the third probe failure of the generation (threshold 3)
    assert a.state() == OPEN and a.snapshot().opened_at > gen


def test_a_probe_lease_of_a_dead_process_on_this_host_is_free_at_once():
    """A SIGKILLed task's probe lease does not block half-open until it expires; a live or remote one does."""
    import socket
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # reaped: its pid names no process (pids are not reused within the test's milliseconds)
    clock, store = Clock(), MemoryStateStore()
    settings = BreakerSettings(half_open_max=1, probe_lease_seconds=45, probe_settle_seconds=0)
    (other,) = writers(1, store, clock, settings)
    store.set(other.key, {"opened_at": clock.now - 31, "reason": "test"})
    host = socket.gethostname()
    lease = {"gen": other.snapshot().opened_at, "expires_at": clock.now + 45, "ok": False, "fails": 0}
    for holder in (f"{host}-{os.getppid()}-live0001", f"elsewhere-{gone.pid}-remote01"):
        store.set(other._probe_key(0), {**lease, "holder": holder})
        with pytest.raises(GenesysCircuitOpenError, match="probe requests are taken"):
            other.acquire()
    store.set(other._probe_key(0), {**lease, "holder": f"{host}-{gone.pid}-dead0001"})
    assert other.acquire().probe_slot == 0


def test_writers_opening_at_once_keep_one_generation():
    """A writer that saw the breaker closed does not overwrite the opening another writer wrote meanwhile."""
    clock, store = Clock(), MemoryStateStore()
    a, b = writers(2, store, clock)
    a._open("a's outage", from_state=CLOSED, seen=None)
    first = a.snapshot().opened_at
    clock.now += 0.2
    b._open("b's view of the same outage", from_state=CLOSED, seen=None)  # b read P before a wrote
    assert b.snapshot().opened_at == first and store.get(a.key)["reason"] == "a's outage"


def test_a_close_written_after_a_reopen_does_not_hide_it():
    """The race a Variable.delete-based close loses: writer A closes generation 1 after B re-opened."""
    clock, store = Clock(), MemoryStateStore()
    a, b = writers(2, store, clock)
    store.set(a.key, {"opened_at": clock.now - 31, "reason": "test"})
    gen1 = a.acquire().gen
    clock.now += 1
    b._open("probe failed", from_state=HALF_OPEN, seen=gen1)
    store.set(a._closed_key, {"gen": gen1, "closed_at": clock.now})  # A's late close of generation 1
    assert a.state() == OPEN


def test_a_dead_probe_lease_expires_and_a_released_one_is_free_at_once():
    clock, store = Clock(), MemoryStateStore()
    settings = BreakerSettings(half_open_max=1, probe_lease_seconds=40, probe_settle_seconds=0)
    dead, other = writers(2, store, clock, settings)
    store.set(dead.key, {"opened_at": clock.now - 31, "reason": "test"})
    dead.acquire()  # and never reports back
    with pytest.raises(GenesysCircuitOpenError, match="probe requests are taken"):
        other.acquire()
    clock.now += 41
    permit = other.acquire()
    other.release(permit)  # e.g. a 401 during the probe
    assert dead.acquire().probe_slot == 0


def test_all_probes_ok_but_the_closer_died_closes_on_the_next_acquire():
    clock, store = Clock(), MemoryStateStore()
    (a,) = writers(1, store, clock)
    gen = clock.now - 31
    store.set(a.key, {"opened_at": gen, "reason": "test"})
    for slot in range(3):
        store.set(a._probe_key(slot), {"gen": gen, "holder": "x", "expires_at": 0, "ok": True})
    assert a.acquire() == Permit()
    assert a.state() == CLOSED


def test_unreadable_state_fails_open_and_unwritable_state_does_not_raise(caplog):
    class Broken(MemoryStateStore):
        def get(self, key: str) -> dict[str, Any] | None:
            raise ConnectionError("api server down")

        def set(self, key: str, value: dict[str, Any]) -> None:
            raise ConnectionError("api server down")

    breaker = CircuitBreaker("conn", SETTINGS, Broken())
    with caplog.at_level(logging.WARNING):
        permit = breaker.acquire()
        breaker.record_failure(permit, "503")
        breaker.record_success(permit)
    assert permit == Permit() and "letting the request through" in caplog.text


def test_hand_edited_state_does_not_crash_it():
    clock, store = Clock(), MemoryStateStore()
    (a,) = writers(1, store, clock)
    store.set(a.key, {"opened_at": "yesterday"})
    assert a.state() == CLOSED
    store.set(a.key, {"opened_at": clock.now - 31})
    store.set(a._probe_key(0), {"gen": "x", "expires_at": "never"})
    assert a.acquire().probe_slot is not None


@pytest.mark.parametrize(("extra", "expected"), [
    ({}, BreakerSettings()),
    ({"breaker_open_seconds": "5", "breaker_failure_threshold": 2},
     BreakerSettings(failure_threshold=2, open_seconds=5)),
])
def test_settings_from_a_connection_extra(extra, expected):
    assert BreakerSettings.from_extra(extra) == expected
    with pytest.raises(ValueError, match="breaker_half_open_max"):
        BreakerSettings.from_extra({"breaker_half_open_max": 0})


def test_a_writer_reads_a_close_once_and_still_sees_a_newer_opening():
    clock, store = Clock(), SlowStore(jitter=0)
    a, b = writers(2, store, clock)
    store.set(a.key, {"opened_at": clock.now - 31, "reason": "test"})
    for _ in range(3):
        a.record_success(a.acquire())
    assert a.acquire() == Permit()  # reads the close fact once
    store.calls["get"] = 0
    for _ in range(5):
        assert a.acquire() == Permit()
    assert store.calls["get"] == 5  # P only: the close of this generation is final
    assert a.snapshot().closed_at is not None  # and the failure window still starts at the close

    b._open("another worker's outage", from_state=CLOSED, seen=b.snapshot().opened_at)
    with pytest.raises(GenesysCircuitOpenError, match="another worker's outage"):
        a.acquire()
    clock.now += 31
    assert a.acquire().probe_slot is not None  # the new generation is half-open, not taken for closed


@pytest.mark.parametrize("all_probes_ok", [False, True])
def test_a_state_store_that_fails_mid_acquire_fails_open(caplog, all_probes_ok):
    """Half-open: taking a probe slot (or closing, once every probe is ok) writes; a failed write lets it through."""
    class ReadOnly(MemoryStateStore):
        broken = False

        def set(self, key: str, value: dict[str, Any]) -> None:
            if self.broken:
                raise ConnectionError("api server down")
            super().set(key, value)

    clock, store = Clock(), ReadOnly()
    (breaker,) = writers(1, store, clock)
    gen = clock.now - 31
    store.set(breaker.key, {"opened_at": gen, "reason": "test"})
    if all_probes_ok:
        for slot in range(3):
            store.set(breaker._probe_key(slot), {"gen": gen, "holder": "x", "expires_at": 0, "ok": True})
    store.broken = True
    with caplog.at_level(logging.WARNING, logger="genesys_dialer.genesys.breaker"):
        assert breaker.acquire() == Permit()
    assert "state store failed (ConnectionError); letting the request through" in caplog.text
    assert breaker.state() == HALF_OPEN


def test_a_closed_state_is_trusted_for_cache_seconds_and_an_opening_is_seen_after_it():
    """cache_seconds: a task reads the shared state once per window, not before every request (a Variable read
    through the API server costs ~60 ms); another writer's opening is seen once the window passes; this
    writer's own failure makes it read again at once."""
    store = CountingStore()
    settings = BreakerSettings(failure_threshold=1, cache_seconds=0.5)
    task = CircuitBreaker("cached", settings, store)
    other = CircuitBreaker("cached", BreakerSettings(failure_threshold=1), store)
    for _ in range(50):
        task.acquire()
    assert store.reads == 1  # one read for 50 requests
    other.record_failure(other.acquire(), "503")  # opens it (threshold 1)
    task.acquire()  # within the window: still trusted closed
    time.sleep(0.6)
    with pytest.raises(GenesysCircuitOpenError):
        task.acquire()
    uncached = CircuitBreaker("cached2", BreakerSettings(failure_threshold=2, cache_seconds=5), store)
    uncached.acquire()
    CircuitBreaker("cached2", BreakerSettings(failure_threshold=1), store).record_failure(Permit(), "503")
    uncached.record_failure(Permit(), "503")  # its own failure: the next acquire reads the store again
    with pytest.raises(GenesysCircuitOpenError):
        uncached.acquire()
