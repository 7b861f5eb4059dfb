"""``POST /api/v2/analytics/conversations/aggregates/query`` over what the emulator's dialers recorded.

The body is the SDK's ``ConversationAggregationQuery`` (unknown fields -> 400); the answer its
``ConversationAggregateQueryResponse``: ``results[{group, data[{interval, metrics[{metric, stats}], views}]}]``.
Served: the outbound metrics a pacing pipeline reads (``nOutboundAttempted``, ``nOutboundConnected``,
``nOutboundAbandoned``, ``tTalk``, ``tAcw``, ``tHandle``, times in milliseconds) grouped by
``outboundCampaignId``, filtered by ``outboundCampaignId`` predicates, in ``granularity`` buckets, with
``rangeBound`` views on the time metrics. Other valid metric names are accepted and have no data here, as
in an org without that traffic. Empty buckets and zero metrics are left out, as Genesys does.

Limits (plausible, unconfirmed in Genesys' documentation; the emulator's config names them): the interval
must be ``start/end`` in UTC with ``end > start``, at most ``analytics_max_interval_days`` long, and a whole
number of ``granularity`` periods.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from .dialer import MinuteOutcomes
from .errors import bad_request

QUERY_FIELDS = frozenset([
    "interval", "granularity", "timeZone", "groupBy", "filter", "metrics", "flattenMultivaluedDimensions",
    "views", "alternateTimeDimension", "queryType", "sortMetric", "limit",
])
# The SDK's ConversationAggregationView.target / metric names (v269).
METRICS = frozenset([
    "nAgentDeclined", "nAlertExpired", "nBlindTransferred", "nBotInteractions", "nCallbackAttempts",
    "nCallbackOverSla", "nCallbackScheduled", "nCfcOffered", "nCobrowseSessions", "nConnected", "nConsult",
    "nConsultTransferred", "nConversations", "nError", "nOffered", "nOutbound", "nOutboundAbandoned",
    "nOutboundAttempted", "nOutboundConnected", "nOverSla", "nStateTransitionError", "nTakeover", "nTransferred",
    "oAudioMessageCount", "oExternalAudioMessageCount", "oExternalMediaCount", "oMediaCount", "oMessageCount",
    "oMessageSegmentCount", "oMessageTurn", "oServiceTarget", "oSkillExpressionApplications", "tAbandon", "tAcd",
    "tActiveCallback", "tActiveCallbackComplete", "tAcw", "tAgentResponseTime", "tAgentVideoConnected", "tAlert",
    "tAnswered", "tAverageAgentResponseTime", "tAverageCustomerResponseTime", "tBarging", "tCallbackAbandon",
    "tCallbackConnect", "tCallbackNotReached", "tCallbackVirtualWait", "tCfcAbandon", "tCfcAcd", "tCfcAnswered",
    "tCfcFlowOut", "tCoaching", "tCoachingComplete", "tConnected", "tContacting", "tDialing", "tFirstConnect",
    "tFirstDial", "tFirstEngagement", "tFirstResponse", "tFlowOut", "tHandle", "tHeld", "tHeldComplete", "tIvr",
    "tMonitoring", "tMonitoringComplete", "tNotResponding", "tPark", "tParkComplete", "tScreenMonitoring",
    "tSnippetRecord", "tTalk", "tTalkComplete", "tTransmitting", "tUserResponseTime", "tVoicemail",
])
SERVED_COUNTS = {"nOutboundAttempted": "attempted", "nOutboundConnected": "connected",
                 "nOutboundAbandoned": "abandoned"}
SERVED_TIMES = ("tTalk", "tAcw", "tHandle")
PREDICATE_TYPES = ("dimension", "property", "metric")
PREDICATE_OPERATORS = ("matches", "exists", "notExists")
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def parse_instant(text: str, field: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"{field} is not an ISO-8601 date-time: {text!r}", field) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_duration(text: Any, field: str) -> timedelta:
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not match or not any(match.groups()):
        raise bad_request(f"{field} must be an ISO-8601 duration such as PT15M or P1D", field)
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    value = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if value < timedelta(minutes=1):
        raise bad_request(f"{field} must be at least one minute", field)
    return value


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class AggregateQuery:
    """A validated query: interval, buckets, campaign filter, metrics and views."""

    def __init__(self, body: Any, max_interval_days: float) -> None:
        if not isinstance(body, dict):
            raise bad_request("The body must be a ConversationAggregationQuery object", "body")
        unknown = [k for k in body if k not in QUERY_FIELDS]
        if unknown:
            raise bad_request(f"Unrecognized field {unknown[0]!r}", unknown[0], code="invalid.property")
        interval = body.get("interval")
        if not isinstance(interval, str) or interval.count("/") != 1:
            raise bad_request("interval is required, as <start>/<end> in ISO-8601", "interval")
        start_text, end_text = interval.split("/")
        self.start, self.end = parse_instant(start_text, "interval"), parse_instant(end_text, "interval")
        if self.end <= self.start:
            raise bad_request("interval must end after it starts", "interval")
        if max_interval_days and self.end - self.start > timedelta(days=max_interval_days):
            raise bad_request(f"interval may span at most {max_interval_days:g} days", "interval")
        zone = body.get("timeZone", "UTC")
        if zone not in ("UTC", "Etc/UTC"):
            raise bad_request("the emulator serves timeZone UTC only", "timeZone")
        if "granularity" in body:
            self.granularity = parse_duration(body["granularity"], "granularity")
            if (self.end - self.start) % self.granularity:
                raise bad_request("interval must be a whole number of granularity periods", "granularity")
        else:
            self.granularity = self.end - self.start
        self.group_by = body.get("groupBy") or []
        if not isinstance(self.group_by, list) or not all(isinstance(g, str) for g in self.group_by):
            raise bad_request("groupBy must be an array of dimension names", "groupBy")
        unsupported = [g for g in self.group_by if g != "outboundCampaignId"]
        if unsupported:
            raise bad_request(f"the emulator groups by outboundCampaignId only, not {unsupported[0]!r}", "groupBy")
        self.metrics = body.get("metrics")
        if not isinstance(self.metrics, list) or not self.metrics:
            raise bad_request("metrics must be a non-empty array of metric names", "metrics")
        for i, name in enumerate(self.metrics):
            if name not in METRICS:
                raise bad_request(f"unknown metric {name!r}", f"metrics[{i}]")
        self.campaign_ids = self._campaign_filter(body.get("filter"))
        self.views = self._views(body.get("views") or [])

    @staticmethod
    def _campaign_filter(flt: Any) -> set[str] | None:
        """The campaign ids an ``outboundCampaignId`` filter admits (None: every campaign)."""
        if flt is None:
            return None
        if not isinstance(flt, dict) or flt.get("type") not in ("and", "or"):
            raise bad_request("filter.type must be and or or", "filter.type")
        unknown = [k for k in flt if k not in ("type", "clauses", "predicates")]
        if unknown:
            raise bad_request(f"Unrecognized field {unknown[0]!r}", f"filter.{unknown[0]}")
        groups: list[tuple[str, list[Any], str]] = [(flt["type"], flt.get("predicates") or [], "filter.predicates")]
        for i, clause in enumerate(flt.get("clauses") or []):
            if not isinstance(clause, dict) or clause.get("type") not in ("and", "or"):
                raise bad_request("clauses[].type must be and or or", f"filter.clauses[{i}].type")
            groups.append((clause["type"], clause.get("predicates") or [], f"filter.clauses[{i}].predicates"))
        admitted: set[str] | None = None
        for kind, predicates, where in groups:
            ids: set[str] = set()
            for j, pred in enumerate(predicates):
                if not isinstance(pred, dict):
                    raise bad_request("a predicate must be an object", f"{where}[{j}]")
                if pred.get("type", "dimension") not in PREDICATE_TYPES:
                    raise bad_request("predicate type must be dimension, property or metric", f"{where}[{j}].type")
                if pred.get("operator", "matches") not in PREDICATE_OPERATORS:
                    raise bad_request("operator must be matches, exists or notExists", f"{where}[{j}].operator")
                if pred.get("dimension") != "outboundCampaignId" or not isinstance(pred.get("value"), str):
                    raise bad_request(
                        "the emulator filters on outboundCampaignId matches <id> only", f"{where}[{j}].dimension"
                    )
                ids.add(pred["value"])
            if not predicates:
                continue
            if kind == "and" and len(ids) > 1:
                ids = set()  # one conversation has one campaign: an AND of two ids admits none
            admitted = ids if admitted is None else admitted & ids
        return admitted

    @staticmethod
    def _views(views: Any) -> list[tuple[str, str, float, float]]:
        if not isinstance(views, list):
            raise bad_request("views must be an array", "views")
        out: list[tuple[str, str, float, float]] = []
        names: set[str] = set()
        for i, view in enumerate(views):
            if not isinstance(view, dict) or view.get("function") != "rangeBound":
                raise bad_request("views[].function must be rangeBound", f"views[{i}].function")
            name, target, rng = view.get("name"), view.get("target"), view.get("range") or {}
            if not isinstance(name, str) or not name or name in names or name in METRICS:
                raise bad_request("views[].name must be unique and not a metric name", f"views[{i}].name")
            if target not in METRICS:
                raise bad_request(f"unknown view target {target!r}", f"views[{i}].target")
            low, high = rng.get("gte", 0), rng.get("lt", float("inf"))
            if not isinstance(low, (int, float)) or not isinstance(high, (int, float)) or high <= low:
                raise bad_request("views[].range needs gte < lt (milliseconds)", f"views[{i}].range")
            names.add(name)
            out.append((name, target, float(low), float(high)))
        return out

    def buckets(self) -> Iterable[tuple[datetime, datetime]]:
        at = self.start
        while at < self.end:
            yield at, at + self.granularity
            at += self.granularity

    def answer(self, campaigns: Mapping[str, list[tuple[float, MinuteOutcomes]]]) -> dict[str, Any]:
        """The response for ``campaigns`` (campaign id -> its (minute start, outcomes) within the interval)."""
        per_group: dict[str, list[tuple[float, MinuteOutcomes]]] = {}
        for campaign_id, minutes in campaigns.items():
            if self.campaign_ids is not None and campaign_id not in self.campaign_ids:
                continue
            key = campaign_id if self.group_by else ""
            per_group.setdefault(key, []).extend(minutes)
        results = []
        for key, minutes in sorted(per_group.items()):
            data = []
            for low, high in self.buckets():
                lo, hi = low.timestamp(), high.timestamp()
                inside = [m for at, m in minutes if lo <= at < hi]
                entry = self._bucket(inside)
                if entry is not None:
                    data.append({"interval": f"{iso(low)}/{iso(high)}", **entry})
            if data:
                results.append({"group": {"outboundCampaignId": key} if self.group_by else {}, "data": data})
        return {"results": results}

    def _bucket(self, minutes: list[MinuteOutcomes]) -> dict[str, Any] | None:
        durations = {
            "tTalk": [t for m in minutes for t in m.talk],
            "tAcw": [t for m in minutes for t in m.acw],
            # handle = talk + wrap-up of the calls whose wrap-up ended here
            "tHandle": [t for m in minutes for t in m.handle],
        }
        metrics = []
        for name in self.metrics:
            if name in SERVED_COUNTS:
                count = sum(getattr(m, SERVED_COUNTS[name]) for m in minutes)
                if count:
                    metrics.append({"metric": name, "stats": {"count": count}})
            elif name in SERVED_TIMES and durations[name]:
                metrics.append({"metric": name, "stats": _time_stats(durations[name])})
        views = []
        for name, target, low, high in self.views:
            inside = [t for t in durations.get(target, ()) if low <= t * 1000.0 < high]
            if inside:
                views.append({"name": name, "stats": _time_stats(inside)})
        if not metrics and not views:
            return None
        entry: dict[str, Any] = {"metrics": metrics}
        if views:
            entry["views"] = views
        return entry


def _time_stats(seconds: list[float]) -> dict[str, Any]:
    millis = [round(s * 1000.0) for s in seconds]
    return {"max": float(max(millis)), "min": float(min(millis)), "count": len(millis), "sum": float(sum(millis))}
