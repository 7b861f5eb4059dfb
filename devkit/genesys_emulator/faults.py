"""Fault injection rules (admin API ``/__emulator__/faults``).

One rule per route template (``"*"`` = every ``/api/v2`` route); a more specific rule wins over ``"*"``.
Rules exist to exercise a client's retry/back-off/idempotency code deterministically, so sequences are
consumed in order and probabilities use a seedable RNG.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from .errors import bad_request

RULE_FIELDS = frozenset(
    ["route", "sequence", "probabilities", "latencyMs", "dropAfterApply", "dropProbability", "retryAfter", "seed"]
)
WILDCARD = "*"


@dataclass
class FaultDecision:
    """What to do with one matching call: inject ``status`` (None = process normally), sleep, drop."""

    status: int | None = None
    latency_s: float = 0.0
    drop: bool = False
    retry_after: int | None = None


@dataclass
class FaultRule:
    route: str
    sequence: deque[int]
    probabilities: list[tuple[int, float]]
    latency_ms: int
    drop_remaining: int
    retry_after: int | None
    drop_probability: float
    seed: int | None
    rng: random.Random = field(default_factory=random.Random)
    applied: int = 0

    def describe(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "sequence": list(self.sequence),
            "probabilities": {str(s): p for s, p in self.probabilities},
            "latencyMs": self.latency_ms,
            "dropAfterApply": self.drop_remaining,
            "dropProbability": self.drop_probability,
            "retryAfter": self.retry_after,
            "seed": self.seed,
            "matchedCalls": self.applied,
        }


class FaultRegistry:
    """Thread-safe set of fault rules keyed by route template."""

    def __init__(self, routes: Collection[str]) -> None:
        self._routes = set(routes)
        self._rules: dict[str, FaultRule] = {}
        self._lock = threading.Lock()

    def add(self, body: Any) -> dict[str, Any]:
        rule = self._parse(body)
        with self._lock:
            self._rules[rule.route] = rule
        return rule.describe()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.describe() for r in self._rules.values()]

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def decide(self, route: str, api: bool) -> FaultDecision | None:
        """Consume one step of the matching rule, if any (``api``: the route is under /api/v2)."""
        with self._lock:
            rule = self._rules.get(route) or (self._rules.get(WILDCARD) if api else None)
            if rule is None:
                return None
            rule.applied += 1
            decision = FaultDecision(latency_s=rule.latency_ms / 1000.0, retry_after=rule.retry_after)
            if rule.sequence:
                status = rule.sequence.popleft()
                decision.status = None if 200 <= status < 300 else status
            elif rule.probabilities:
                draw, cumulative = rule.rng.random(), 0.0
                for status, p in rule.probabilities:
                    cumulative += p
                    if draw < cumulative:
                        decision.status = status
                        break
            if decision.status is None and rule.drop_remaining > 0:
                rule.drop_remaining -= 1
                decision.drop = True
            elif decision.status is None and rule.drop_probability and rule.rng.random() < rule.drop_probability:
                decision.drop = True
            return decision

    def _parse(self, body: Any) -> FaultRule:
        if not isinstance(body, dict):
            raise bad_request("The body must be a JSON object", "body")
        unknown = [k for k in body if k not in RULE_FIELDS]
        if unknown:
            raise bad_request(f"Unrecognized field {unknown[0]!r}", unknown[0], code="invalid.property")
        route = body.get("route")
        if route != WILDCARD and route not in self._routes:
            raise bad_request(
                f"route must be '*' or one of the route templates, e.g. {sorted(self._routes)[0]!r}", "route"
            )
        sequence = body.get("sequence", [])
        if not isinstance(sequence, list) or not all(_is_status(s) for s in sequence):
            raise bad_request("sequence must be an array of HTTP status codes", "sequence")
        probs_raw = body.get("probabilities", {})
        if not isinstance(probs_raw, dict):
            raise bad_request("probabilities must be an object {status: probability}", "probabilities")
        probabilities: list[tuple[int, float]] = []
        for key, p in probs_raw.items():
            try:
                status = int(key)
            except ValueError:
                raise bad_request(f"probabilities key {key!r} is not a status", "probabilities") from None
            if not _is_status(status) or status < 400:
                raise bad_request(f"probabilities key {key!r} is not an error status", "probabilities")
            if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 <= p <= 1:
                raise bad_request(f"probability for {key} must be within 0..1", f"probabilities.{key}")
            if p > 0:
                probabilities.append((status, float(p)))
        probabilities.sort()
        if sum(p for _, p in probabilities) > 1.0 + 1e-9:
            raise bad_request("probabilities must sum to at most 1", "probabilities")
        latency = _non_negative_int(body, "latencyMs", 0)
        if latency > 600_000:
            raise bad_request("latencyMs must be at most 600000", "latencyMs")
        drop = _non_negative_int(body, "dropAfterApply", 0)
        drop_probability = body.get("dropProbability", 0)
        if not isinstance(drop_probability, (int, float)) or isinstance(drop_probability, bool) \
                or not 0 <= drop_probability <= 1:
            raise bad_request("dropProbability must be within 0..1", "dropProbability")
        retry_after = body.get("retryAfter")
        if retry_after is not None:
            retry_after = _non_negative_int(body, "retryAfter", 0)
        seed = body.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise bad_request("seed must be an integer", "seed")
        return FaultRule(
            route=route,
            sequence=deque(sequence),
            probabilities=probabilities,
            latency_ms=latency,
            drop_remaining=drop,
            retry_after=retry_after,
            drop_probability=float(drop_probability),
            seed=seed,
            rng=random.Random(seed),
        )


def _is_status(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 200 <= value <= 599


def _non_negative_int(body: dict[str, Any], key: str, default: int) -> int:
    value = body.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise bad_request(f"{key} must be a non-negative integer", key)
    return value
