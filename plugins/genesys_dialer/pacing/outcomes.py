"""Campaign outcomes from Genesys Cloud analytics: the query, its answer as 15-minute buckets, what to pull next,
and what the pacing reads from the stored buckets. Pure functions; the ``sync_outcomes`` task does the I/O.

What is read (``POST /api/v2/analytics/conversations/aggregates/query``, the SDK's ``ConversationAggregationQuery``,
grouped and filtered by ``outboundCampaignId``, ``granularity`` PT15M):

* ``nOutboundAttempted`` (dials), ``nOutboundConnected`` (live answers that reached the queue: the answer-rate
  numerator and Genesys' compliance denominator with "calls that reached queue"), ``nOutboundAbandoned``;
* ``tTalk``, ``tAcw`` (wrap-up), ``tHandle``: count and sum, in milliseconds;
* ``rangeBound`` views on ``tTalk`` (a histogram), because the aggregates carry no sum of squares and the
  model needs the talk-time spread.

Genesys emits each metric when it happens (a talk when it ends), so a bucket can still grow after it closes:
every run pulls again what is not yet ``settled`` (re-pulling replaces), and an empty bucket is stored as
zeros, so "nothing dialed" and "not pulled yet" stay apart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from genesys_dialer.pacing.strategies import (
    AnswerHistory,
    CallTimes,
    HistoryBucket,
    PacingEvidence,
    RealizedAbandons,
)

if TYPE_CHECKING:
    from genesys_dialer.config import CampaignConfig

BUCKET = timedelta(minutes=15)
GRANULARITY = "PT15M"
# One query covers at most a day (96 buckets): a request stays small and a backfill advances a day per request.
QUERY_SPAN = timedelta(days=1)
COUNT_METRICS = {"nOutboundAttempted": "attempts", "nOutboundConnected": "connects", "nOutboundAbandoned": "abandons"}
TIME_METRICS = {"tTalk": "talk", "tAcw": "acw", "tHandle": "handle"}
METRICS = (*COUNT_METRICS, *TIME_METRICS)
# Edges (seconds) of the talk-time histogram asked for as rangeBound views; the last bin is open.
TALK_BIN_EDGES = (0, 30, 60, 90, 120, 180, 240, 300, 420, 600, 900, 1200, 1800, 2700, 3600)


@dataclass(frozen=True)
class OutcomeBucket:
    """One 15-minute bucket of a campaign's outcomes (times in seconds; ``talk_sq_seconds`` estimates the sum of
    squared talk times from the histogram)."""

    start: datetime
    end: datetime
    attempts: int = 0
    connects: int = 0
    abandons: int = 0
    talk_count: int = 0
    talk_seconds: float = 0.0
    talk_sq_seconds: float = 0.0
    acw_count: int = 0
    acw_seconds: float = 0.0
    handle_count: int = 0
    handle_seconds: float = 0.0
    idle_agents: int | None = None  # idle agents in the campaign stats read when this bucket was the newest

    def row(self, campaign_id: str, as_of: datetime) -> dict[str, Any]:
        """The ``upsert_outcome`` parameters."""
        values = asdict(self)
        return {"campaign_id": campaign_id, "as_of": as_of, "interval_start": values.pop("start"),
                "interval_end": values.pop("end"), **values}


def floor_bucket(moment: datetime) -> datetime:
    """The start of the 15-minute bucket holding ``moment`` (UTC)."""
    moment = moment.astimezone(UTC)
    return moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def aggregates_query(campaign_id: str, start: datetime, end: datetime) -> dict[str, Any]:
    """The ``ConversationAggregationQuery`` for one campaign's buckets in [start, end) (15-minute aligned)."""
    views = [
        {"target": "tTalk", "name": f"talkBin{i}", "function": "rangeBound",
         "range": {"gte": lo * 1000, **({"lt": hi * 1000} if hi is not None else {})}}
        for i, (lo, hi) in enumerate(zip(TALK_BIN_EDGES, (*TALK_BIN_EDGES[1:], None), strict=True))
    ]
    return {
        "interval": f"{_iso(start)}/{_iso(end)}",
        "granularity": GRANULARITY,
        "timeZone": "UTC",
        "groupBy": ["outboundCampaignId"],
        "filter": {"type": "and", "predicates": [
            {"type": "dimension", "dimension": "outboundCampaignId", "operator": "matches", "value": campaign_id},
        ]},
        "metrics": list(METRICS),
        "views": views,
    }


def _instant(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def _talk_square_sum(views: Sequence[Mapping[str, Any]]) -> tuple[int, float]:
    """(count, estimated sum of squared seconds) from the talk histogram: each bin's mean squared plus the
    variance of a value spread evenly over the bin (the open top bin: its mean squared only)."""
    edges = dict(zip((f"talkBin{i}" for i in range(len(TALK_BIN_EDGES))),
                     zip(TALK_BIN_EDGES, (*TALK_BIN_EDGES[1:], None), strict=True), strict=True))
    count, square = 0, 0.0
    for view in views:
        bounds = edges.get(str(view.get("name")))
        stats = view.get("stats") or {}
        n = int(stats.get("count") or 0)
        if bounds is None or n <= 0:
            continue
        mean = float(stats.get("sum") or 0.0) / 1000.0 / n
        width = (bounds[1] - bounds[0]) if bounds[1] is not None else 0.0
        count += n
        square += n * (mean * mean + width * width / 12.0)
    return count, square


def parse_aggregates(body: Mapping[str, Any], campaign_id: str, start: datetime, end: datetime) -> list[OutcomeBucket]:
    """Every bucket of [start, end), from a ``ConversationAggregateQueryResponse`` (zeros where Genesys sent none).

    Raises ValueError naming what is wrong when the answer is not what was asked for (another campaign's
    group, a bucket off the 15-minute grid or outside the interval, a metric without its stats).
    """
    found: dict[datetime, dict[str, Any]] = {}
    for result in body.get("results") or []:
        group = (result or {}).get("group") or {}
        if group.get("outboundCampaignId") not in (None, campaign_id):
            raise ValueError(f"analytics answered for campaign {group.get('outboundCampaignId')!r}, "
                             f"not {campaign_id!r}")
        for entry in result.get("data") or []:
            interval = str(entry.get("interval") or "")
            try:
                low, high = (_instant(part) for part in interval.split("/"))
            except ValueError:
                raise ValueError(f"analytics bucket with an unreadable interval {interval!r}") from None
            if high - low != BUCKET or floor_bucket(low) != low or not start <= low < end:
                raise ValueError(f"analytics bucket {interval} is not a 15-minute bucket of {_iso(start)}.."
                                 f"{_iso(end)}")
            values = found.setdefault(low, {})
            for metric in entry.get("metrics") or []:
                name, stats = metric.get("metric"), metric.get("stats")
                if name not in COUNT_METRICS and name not in TIME_METRICS:
                    continue
                if not isinstance(stats, dict) or not isinstance(stats.get("count"), int):
                    raise ValueError(f"analytics metric {name} in {interval} has no count")
                if name in COUNT_METRICS:
                    values[COUNT_METRICS[name]] = values.get(COUNT_METRICS[name], 0) + stats["count"]
                else:
                    prefix = TIME_METRICS[name]
                    values[f"{prefix}_count"] = values.get(f"{prefix}_count", 0) + stats["count"]
                    values[f"{prefix}_seconds"] = values.get(f"{prefix}_seconds", 0.0) + float(
                        stats.get("sum") or 0.0) / 1000.0
            binned, square = _talk_square_sum(entry.get("views") or [])
            if binned:
                values["_binned"] = values.get("_binned", 0) + binned
                values["talk_sq_seconds"] = values.get("talk_sq_seconds", 0.0) + square
    buckets = []
    at = start
    while at < end:
        values = found.get(at, {})
        binned = values.pop("_binned", 0)
        talk_count = values.get("talk_count", 0)
        if talk_count and binned != talk_count:
            # The histogram should cover every talk; if it does not, keep its shape at the metric's count.
            mean = values.get("talk_seconds", 0.0) / talk_count
            shape = values.get("talk_sq_seconds", 0.0) / binned if binned else 2.0 * mean * mean
            values["talk_sq_seconds"] = shape * talk_count
        buckets.append(OutcomeBucket(start=at, end=at + BUCKET, **values))
        at += BUCKET
    return buckets


def sync_ranges(
    window_start: datetime,
    window_end: datetime,
    known: Mapping[datetime, datetime],
    *,
    settle: timedelta,
    max_requests: int,
) -> list[tuple[datetime, datetime]]:
    """The ranges to pull, newest first, at most ``max_requests`` of at most a day each.

    ``known`` maps a stored bucket's start to the ``as_of`` it was pulled at (the interval end of the run that
    pulled it). A bucket is settled once it was pulled at least ``settle`` after it ended; anything missing
    or unsettled in [window_start, window_end) is pulled again (newest first: the pacing needs the recent
    buckets most, and a backfill of the rest continues in the next runs).
    """
    start, end = floor_bucket(window_start), floor_bucket(window_end)
    wanted: list[datetime] = []
    at = start
    while at < end:
        as_of = known.get(at)
        if as_of is None or as_of < at + BUCKET + settle:
            wanted.append(at)
        at += BUCKET
    ranges: list[tuple[datetime, datetime]] = []
    for slot in reversed(wanted):  # newest first, merged into runs of at most QUERY_SPAN
        if ranges and ranges[-1][0] == slot + BUCKET and ranges[-1][1] - slot <= QUERY_SPAN:
            ranges[-1] = (slot, ranges[-1][1])
        else:
            if len(ranges) == max_requests:
                break
            ranges.append((slot, slot + BUCKET))
    return ranges


# -- what the pacing reads ------------------------------------------------------------------------------

BUCKETS_PER_DAY = int(timedelta(days=1) / BUCKET)
COMPLIANCE_DAYS = 30


def call_times(
    buckets: Iterable[tuple[float, OutcomeBucket]],
    *,
    assumed_talk: float,
    assumed_wrap: float,
    assumed_cv: float = 1.0,
    prior_calls: float = 20.0,
    half_life_days: float | None = None,
) -> CallTimes:
    """Recency-weighted talk mean and spread and wrap-up mean over ``(age_days, bucket)``, shrunk to the
    assumptions by ``prior_calls`` pseudo-calls (a handful of calls cannot swing the model)."""
    talk_n = talk_s = talk_sq = acw_n = acw_s = 0.0
    for age, bucket in buckets:
        weight = 0.5 ** (max(age, 0.0) / half_life_days) if half_life_days else 1.0
        talk_n += weight * bucket.talk_count
        talk_s += weight * bucket.talk_seconds
        talk_sq += weight * bucket.talk_sq_seconds
        acw_n += weight * bucket.acw_count
        acw_s += weight * bucket.acw_seconds
    prior_sq = assumed_talk * assumed_talk * (1.0 + assumed_cv * assumed_cv)
    n = talk_n + prior_calls
    if n > 0:
        mean = (talk_s + prior_calls * assumed_talk) / n
        cv = math.sqrt(max(0.0, (talk_sq + prior_calls * prior_sq) / n / (mean * mean) - 1.0))
    else:
        mean, cv = assumed_talk, assumed_cv
    wraps = acw_n + prior_calls
    wrap = (acw_s + prior_calls * assumed_wrap) / wraps if wraps > 0 else assumed_wrap
    return CallTimes(talk_mean=mean, talk_cv=cv, wrap_mean=wrap, calls=talk_n,
                     source="measured" if talk_n > 0 else "assumed")


@dataclass(frozen=True)
class ComplianceRecord:
    """Sums over the two compliance windows (``outcome_compliance.sql``), and how many buckets are stored."""

    buckets_24h: int
    connects_24h: int
    abandons_24h: int
    buckets_30d: int
    connects_30d: int
    abandons_30d: int


STAFFING_BUCKETS = 4
# Half-life of the short-memory estimates (answer rate, call times) that catch an unsafe drift early.
FAST_HALF_LIFE = timedelta(minutes=30)


def dialing_ages(window: Sequence[tuple[float, OutcomeBucket]]) -> list[tuple[float, OutcomeBucket]]:
    """The window (newest first) re-aged in dialing time: a bucket's age is the dialing (buckets with dials)
    after it, in days. Why: the recency weights follow a drift over the calls made, and a night or a weekend
    without dials does not make yesterday's evening count for nothing on the next morning."""
    out, age = [], 0.0
    for _, bucket in window:
        out.append((age, bucket))
        if bucket.attempts:
            age += BUCKET / timedelta(days=1)
    return out


def staffed_agents(window: Sequence[tuple[float, OutcomeBucket]], handle_seconds: float) -> int | None:
    """Agents staffed over the last hour: per bucket, the idle agents the campaign stats showed at its end plus
    the agents busy in it by Little's law (calls connected to an agent x mean handle time / 15 minutes: unlike
    the handle seconds emitted, it counts calls still being talked), averaged over the newest buckets that
    have a stats reading (one reading is one instant of idle agents: too noisy alone). None: no reading."""
    readings = [b.idle_agents + max(b.connects - b.abandons, 0) * handle_seconds / BUCKET.total_seconds()
                for age, b in window[:STAFFING_BUCKETS] if b.idle_agents is not None and age < 1 / 24]
    return round(sum(readings) / len(readings)) if readings else None


def evidence_from_outcomes(
    window: Sequence[tuple[float, OutcomeBucket]],
    compliance: ComplianceRecord,
    campaign: CampaignConfig,
    *,
    no_answer_timeout: float | None = None,
) -> tuple[AnswerHistory, PacingEvidence]:
    """What the pacing reads from stored Genesys outcomes: the answer history (one entry per bucket, aged in
    fractional days), the call times, both compliance windows, the staffing and any reason to fail closed.

    ``window`` is ``(age_days, bucket)`` over the history window, newest first. Fails closed (progressive)
    when the last 24 h are not all stored: the Ofcom window cannot be judged.
    """
    dialing = dialing_ages(window)
    history = AnswerHistory(tuple(HistoryBucket(age, b.attempts, b.connects, b.abandons) for age, b in dialing))
    half_life = campaign.outcome_half_life_hours / 24.0
    fast = FAST_HALF_LIFE / timedelta(days=1)
    times, recent = (
        call_times(dialing, assumed_talk=campaign.talk_time_seconds, assumed_wrap=campaign.wrap_up_seconds,
                   half_life_days=h) for h in (half_life, fast)
    )
    # A lengthening talk time is the other dangerous drift (fewer agents come free while calls ring): the
    # short-memory estimate is paced on when it is longer by more than its own scatter.
    scatter = recent.talk_mean * max(recent.talk_cv, 0.1) / math.sqrt(max(recent.calls, 1.0))
    if recent.talk_mean + recent.wrap_mean > times.talk_mean + times.wrap_mean + campaign.model_margin_z * scatter:
        times = recent
    reasons = []
    if compliance.buckets_24h < BUCKETS_PER_DAY:
        reasons.append(
            f"only {compliance.buckets_24h} of the last {BUCKETS_PER_DAY} 15-minute buckets of Genesys outcomes are "
            "synced: the 24 h abandon rate cannot be judged, dialing progressive"
        )
    return history, PacingEvidence(
        realized_30d=RealizedAbandons(compliance.connects_30d, compliance.abandons_30d),
        realized_24h=RealizedAbandons(compliance.connects_24h, compliance.abandons_24h),
        timing=times,
        staffed_agents=staffed_agents(window, times.talk_mean + times.wrap_mean),
        no_answer_timeout=no_answer_timeout,
        progressive_reasons=tuple(reasons),
        half_life_days=half_life,
        fast_half_life_days=fast,
    )
