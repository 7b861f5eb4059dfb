"""Outcome sync: the analytics query and its parsing, what to pull next, and the sync task against the emulator's
dialer and a real PostgreSQL (idempotent, backfilling, within its request budget, failing closed)."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import PureCloudPlatformClientV2 as gc
import pytest
from pipeline_helpers import campaign_config
from support import LOOP_CAMPAIGN_ID, LOOP_LIST_ID, Emulator, quarter_with_time_to_run

from genesys_dialer.dags import tasks
from genesys_dialer.dags.run import RunInfo, RunMode, TaskTry
from genesys_dialer.genesys.errors import GenesysApiError
from genesys_dialer.pacing.outcomes import (
    BUCKET,
    BUCKETS_PER_DAY,
    ComplianceRecord,
    OutcomeBucket,
    aggregates_query,
    call_times,
    evidence_from_outcomes,
    parse_aggregates,
    staffed_agents,
    sync_ranges,
)
from genesys_emulator.analytics import AggregateQuery
from genesys_emulator.dialer import MinuteOutcomes

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _own_breaker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside a task the hook keeps its breaker in process memory: give each test its own."""
    from genesys_dialer.genesys import state

    monkeypatch.setattr(state, "_process_store", state.MemoryStateStore())
AGGREGATES_ROUTE = "POST /api/v2/analytics/conversations/aggregates/query"


def _answer(start: datetime, end: datetime, minutes: list[tuple[float, MinuteOutcomes]], campaign: str = "c") -> Any:
    """The emulator's analytics answer to the pipeline's own query over ``minutes``."""
    return AggregateQuery(aggregates_query(campaign, start, end), 0).answer({campaign: minutes})


def test_the_query_is_the_sdk_model() -> None:
    query = aggregates_query("c-1", T0, T0 + timedelta(days=1))
    assert query["interval"] == "2026-03-02T12:00:00.000Z/2026-03-03T12:00:00.000Z"
    assert query["granularity"] == "PT15M" and query["groupBy"] == ["outboundCampaignId"]
    for view in query["views"]:  # the SDK maps a name it does not know to "outdated_sdk_version"
        model = gc.ConversationAggregationView()
        model.target, model.function, model.name = view["target"], view["function"], view["name"]
        assert (model.target, model.function) == ("tTalk", "rangeBound")
    predicate = gc.ConversationAggregateQueryPredicate()
    predicate.type, predicate.dimension, predicate.operator = "dimension", "outboundCampaignId", "matches"
    assert (predicate.type, predicate.dimension, predicate.operator) == ("dimension", "outboundCampaignId", "matches")


def test_parse_fills_every_bucket_and_refuses_a_foreign_answer() -> None:
    start = T0
    minutes = [(start.timestamp() + 60 * 20, MinuteOutcomes(attempted=40, connected=9, abandoned=1,
                                                           talk=[61.0, 200.5], acw=[9.0], handle=[70.0]))]
    buckets = parse_aggregates(_answer(start, start + timedelta(hours=1), minutes), "c", start,
                               start + timedelta(hours=1))
    assert [b.start for b in buckets] == [start + k * BUCKET for k in range(4)]
    assert buckets[0] == OutcomeBucket(start, start + BUCKET)  # nothing there: zeros, not missing
    second = buckets[1]
    assert (second.attempts, second.connects, second.abandons) == (40, 9, 1)
    assert (second.talk_count, second.talk_seconds) == (2, pytest.approx(261.5))
    assert (second.acw_count, second.acw_seconds, second.handle_seconds) == (1, 9.0, 70.0)
    # the histogram's estimate of the squares: each talk in its bin, plus the bin's width^2 / 12
    assert second.talk_sq_seconds == pytest.approx(61.0**2 + 30**2 / 12 + 200.5**2 + 60**2 / 12)
    with pytest.raises(ValueError, match="not 'c'"):
        parse_aggregates(_answer(start, start + timedelta(hours=1), minutes, campaign="other"), "c", start,
                         start + timedelta(hours=1))
    shifted = {"results": [{"group": {"outboundCampaignId": "c"}, "data": [
        {"interval": "2026-03-02T12:05:00.000Z/2026-03-02T12:20:00.000Z", "metrics": []}]}]}
    with pytest.raises(ValueError, match="not a 15-minute bucket"):
        parse_aggregates(shifted, "c", start, start + timedelta(hours=1))


def test_talk_spread_is_recovered_from_the_histogram() -> None:
    rng = random.Random(3)
    for cv in (0.5, 1.0, 1.5):
        sigma = math.sqrt(math.log1p(cv * cv))
        talks = [rng.lognormvariate(math.log(150.0) - sigma * sigma / 2, sigma) for _ in range(4000)]
        minutes = [(T0.timestamp() + 60 * (i % 60), MinuteOutcomes(talk=[t])) for i, t in enumerate(talks)]
        buckets = parse_aggregates(_answer(T0, T0 + timedelta(hours=1), minutes), "c", T0, T0 + timedelta(hours=1))
        times = call_times(((0.0, b) for b in buckets), assumed_talk=120, assumed_wrap=10, prior_calls=0)
        true_mean = sum(talks) / len(talks)
        true_cv = math.sqrt(sum((t - true_mean) ** 2 for t in talks) / len(talks)) / true_mean
        assert times.talk_mean == pytest.approx(true_mean, rel=1e-6)
        assert times.talk_cv == pytest.approx(true_cv, rel=0.12)
        assert times.source == "measured"


def test_a_handful_of_calls_cannot_swing_the_call_times() -> None:
    bucket = OutcomeBucket(T0, T0 + BUCKET, talk_count=2, talk_seconds=1200.0, talk_sq_seconds=720_000.0)
    times = call_times([(0.0, bucket)], assumed_talk=120, assumed_wrap=10)
    assert 120 < times.talk_mean < 200  # two 10-minute talks against 20 pseudo-calls of 2 minutes
    assert call_times([], assumed_talk=120, assumed_wrap=10).source == "assumed"


def test_sync_ranges_pull_newest_first_in_day_long_queries_within_the_budget() -> None:
    end = T0
    start = end - timedelta(days=30)
    ranges = sync_ranges(start, end, {}, settle=timedelta(hours=1), max_requests=3)
    assert ranges == [(end - timedelta(days=k + 1), end - timedelta(days=k)) for k in range(3)]
    # everything pulled an hour or more after it ended is settled; the last hour is pulled again, once
    known = {start + k * BUCKET: end for k in range(30 * BUCKETS_PER_DAY)}
    assert sync_ranges(start, end, known, settle=timedelta(hours=1), max_requests=3) == [
        (end - timedelta(hours=1), end)]  # the buckets ending within the hour before as_of
    # a gap in the middle (a failed run) is filled, newest gap first, each gap its own query
    known = {k: v for k, v in known.items() if not (end - timedelta(hours=5) <= k < end - timedelta(hours=4))}
    assert sync_ranges(start, end, known, settle=timedelta(hours=1), max_requests=5) == [
        (end - timedelta(hours=1), end), (end - timedelta(hours=5), end - timedelta(hours=4))]


def _compliance(buckets_24h: int = BUCKETS_PER_DAY) -> ComplianceRecord:
    return ComplianceRecord(buckets_24h, 2000, 40, 30 * BUCKETS_PER_DAY, 30_000, 600)


def test_evidence_fails_closed_without_the_whole_last_day() -> None:
    campaign = campaign_config("loop")
    window = [(0.0, OutcomeBucket(T0 - BUCKET, T0, attempts=500, connects=100, abandons=2, talk_count=90,
                                  talk_seconds=9000.0, talk_sq_seconds=2 * 90 * 100.0**2, idle_agents=1))]
    history, evidence = evidence_from_outcomes(window, _compliance(), campaign)
    assert (history.attempts, history.answers) == (500, 100)
    assert evidence.progressive_reasons == ()
    assert evidence.realized_24h.rate_percent == pytest.approx(2.0)
    _, partial = evidence_from_outcomes(window, _compliance(buckets_24h=95), campaign)
    assert "95 of the last 96" in partial.progressive_reasons[0]


def test_staffing_is_idle_agents_plus_busy_ones_by_littles_law() -> None:
    def bucket(age_minutes: int, connects: int, idle: int | None) -> tuple[float, OutcomeBucket]:
        end = T0 - timedelta(minutes=age_minutes)
        return age_minutes / 1440, OutcomeBucket(end - BUCKET, end, connects=connects, idle_agents=idle)

    # 100 calls connected in 15 minutes at 130 s each keep 14.4 agents busy; 2 idle -> 16
    window = [bucket(0, 100, 2), bucket(15, 100, 1), bucket(30, 100, 3), bucket(45, 100, None)]
    assert staffed_agents(window, 130.0) == 16
    assert staffed_agents([bucket(0, 100, None)], 130.0) is None  # no stats reading (a backfill run)
    assert staffed_agents([bucket(120, 100, 2)], 130.0) is None  # a stale reading says nothing about now


# -- the sync task against the emulator's dialer and PostgreSQL -----------------------------------------------

def _loop_emulator(emulator: Emulator, *, contacts: int = 3000, dialer: dict[str, Any] | None = None) -> datetime:
    """Seed the emulator's dialer two hours before the start of the current 15-minute interval, which is returned:
    runs ending there are of the latest interval, which alone reads the campaign's (current) stats and applies
    its pacing."""
    from genesys_devkit.demo_data import emulator_seed

    seed = emulator_seed(LOOP_CAMPAIGN_ID, LOOP_LIST_ID)
    seed["campaigns"][0].update(dialingMode="power", maxCallsPerAgent=1.2, outboundLineCount=100)
    seed["contactLists"][0]["contacts"] = [
        {"id": f"loop-{i}", "data": {"phone": f"+1317555{i % 10_000:04d}", "segment": "seed"}}
        for i in range(contacts)
    ]
    now = quarter_with_time_to_run()
    emulator.admin("PUT", "clock", {"now": (now - timedelta(hours=2)).isoformat()})
    emulator.seed(seed)
    emulator.admin("PUT", f"campaigns/{LOOP_CAMPAIGN_ID}/dialer",
                   dialer or {"agents": 8, "answerRate": 0.25, "talkMean": 90, "seed": 4})
    return now


def _run(end: datetime, run_type: str = "manual", dry_run: bool = False) -> RunInfo:
    return RunInfo(run_id=f"{run_type}__{end.isoformat()}", run_type=run_type,
                   requested="dry" if dry_run else "live", batch_size=600,
                   data_interval_start=end - BUCKET, data_interval_end=end, started_at=end)


def _task(task_id: str) -> TaskTry:
    return TaskTry(task_id, -1, 1)


LIVE = RunMode(False, "dry_run=live was asked for").to_xcom()


def _stored(db: Any) -> dict[datetime, tuple[int, ...]]:
    rows = db.execute(
        "SELECT interval_start, attempts, connects, abandons, talk_count, idle_agents FROM campaign_outcomes "
        "WHERE campaign_id = %s", [LOOP_CAMPAIGN_ID]).fetchall()
    db.commit()
    return {r[0]: tuple(r[1:]) for r in rows}


def test_sync_stores_what_genesys_reports_idempotently_and_backfills_over_runs(db: Any, emulator: Emulator) -> None:
    now = _loop_emulator(emulator)
    emulator.admin("POST", "clock/advance", {"seconds": 2 * 3600})  # two hours of dialing, up to now
    state = emulator.admin("GET", f"campaigns/{LOOP_CAMPAIGN_ID}/dialer")
    campaign = campaign_config("loop")

    first = tasks.sync_outcomes(campaign, _run(now), _task("sync_outcomes"))
    stored = _stored(db)
    assert first["queries"] == campaign.outcome_sync_max_requests == 6
    assert len(stored) == first["buckets"] == 6 * BUCKETS_PER_DAY  # the newest six days of the 30
    assert min(stored) == now - timedelta(days=6) and max(stored) == now - BUCKET
    assert sum(v[0] for v in stored.values()) == state["dials"]
    assert sum(v[1] for v in stored.values()) == state["liveAnswers"]
    assert sum(v[2] for v in stored.values()) == state["abandons"]
    assert stored[now - BUCKET][4] is not None and stored[now - BUCKET][4] >= 0  # idle agents read at now
    assert first["idle_agents"] == stored[now - BUCKET][4]
    queries = [r for r in emulator.requests_log() if r["route"] == AGGREGATES_ROUTE]
    assert len(queries) == 6 and all(r["status"] == 200 for r in queries)

    # The same run re-run: the same rows say the same.
    again = tasks.sync_outcomes(campaign, _run(now), _task("sync_outcomes"))
    assert {k: v for k, v in _stored(db).items() if k in stored} == stored
    assert again["queries"] == 6  # the last hour (unsettled) and five more days of the backfill
    assert len(_stored(db)) == 11 * BUCKETS_PER_DAY
    runs = 2
    while again["outstanding_buckets"] > 4 and runs < 10:
        again = tasks.sync_outcomes(campaign, _run(now), _task("sync_outcomes"))
        runs += 1
    assert runs == 6  # 6 days, then 5 a run (each run also re-pulls the unsettled last hour)
    assert again["outstanding_buckets"] == 4  # the 30 days are covered; only the unsettled hour remains
    covered = _stored(db)
    assert len(covered) == 30 * BUCKETS_PER_DAY
    assert {k: v for k, v in covered.items() if k in stored} == stored


def test_a_run_for_an_old_interval_pulls_that_interval_and_reads_no_stats(db: Any, emulator: Emulator) -> None:
    now = _loop_emulator(emulator)
    emulator.admin("POST", "clock/advance", {"seconds": 2 * 3600})
    old_end = now - timedelta(hours=1)
    result = tasks.sync_outcomes(campaign_config("loop"), _run(old_end, run_type="backfill", dry_run=True),
                                 _task("sync_outcomes"))
    stored = _stored(db)
    assert max(stored) == old_end - BUCKET  # nothing after the interval's end
    assert result["idle_agents"] is None and all(v[4] is None for v in stored.values())
    assert not [r for r in emulator.requests_log() if r["route"].endswith("/stats")]


def test_pacing_reads_the_measured_call_times_and_a_failed_sync_fails_closed(db: Any, emulator: Emulator) -> None:
    now = _loop_emulator(emulator, dialer={"agents": 8, "answerRate": 0.25, "talkMean": 240, "seed": 9})
    emulator.admin("POST", "clock/advance", {"seconds": 2 * 3600})
    campaign = campaign_config("loop")
    resolved = {"abandon_rate": 3.0, "no_answer_timeout": 30, "mode": LIVE}
    synced = tasks.sync_outcomes(campaign, _run(now), _task("sync_outcomes"))
    decided = tasks.compute_dial_ratio(campaign, _run(now), resolved, synced)
    details = decided["decision"]["details"]
    assert details["timing_source"] == "measured"
    assert 190 < details["talk_mean_seconds"] < 260  # measured (240 s) shrunk a little to the 120 s assumption
    assert decided["decision"]["max_calls_per_agent"] > 1.0, decided["decision"]  # evidence enough to leave progressive

    emulator.admin("POST", "clock/advance", {"seconds": 900})
    emulator.fault(route=AGGREGATES_ROUTE, sequence=[503] * 20)
    with pytest.raises(GenesysApiError):
        tasks.sync_outcomes(campaign, _run(now + BUCKET), _task("sync_outcomes"))
    failed = tasks.compute_dial_ratio(campaign, _run(now + BUCKET), resolved, None)
    assert failed["decision"]["max_calls_per_agent"] == 1.0
    assert any("sync_outcomes did not finish" in n for n in failed["decision"]["notes"])
    assert any("95 of the last 96" in n for n in failed["decision"]["notes"])  # the newest bucket is missing


def test_apply_pacing_reads_back_and_writes_the_decimal_when_patch_drops_it(db: Any, emulator: Emulator) -> None:
    now = _loop_emulator(emulator)
    emulator.admin("PATCH", "config", {"patchKeepsDecimal": False})
    try:
        campaign = campaign_config("loop")
        body = {"maxCallsPerAgent": 2.64, "outboundLineCount": 22, "abandonRate": 2.5}
        result = tasks.apply_pacing(campaign, _run(now), _task("apply_pacing"), {"patch": body, "mode": LIVE})
    finally:
        emulator.admin("PATCH", "config", {"patchKeepsDecimal": True})
    routes = [r["route"] for r in emulator.requests_log() if r["method"] in ("PATCH", "PUT")]
    assert routes == ["PATCH /api/v2/outbound/campaigns/{campaignId}", "PUT /api/v2/outbound/campaigns/{campaignId}"]
    kept = emulator.campaign(LOOP_CAMPAIGN_ID)
    assert (kept["maxCallsPerAgentDecimal"], kept["maxCallsPerAgent"]) == (2.64, 2)
    assert result["kept"]["maxCallsPerAgentDecimal"] == 2.64 and result["warnings"] == []


def test_kept_differences_name_each_field() -> None:
    body = {"maxCallsPerAgent": 2.64, "outboundLineCount": 22, "abandonRate": 2.5}
    same = {"maxCallsPerAgent": 2, "maxCallsPerAgentDecimal": 2.64, "outboundLineCount": 22, "abandonRate": 2.5}
    assert tasks._kept_differences(body, same) == []
    clamped = {**same, "outboundLineCount": 10, "maxCallsPerAgentDecimal": None, "maxCallsPerAgent": 3}
    assert tasks._kept_differences(body, clamped) == [
        "maxCallsPerAgentDecimal written 2.64, Genesys kept 3.0", "outboundLineCount written 22, Genesys kept 10"]
