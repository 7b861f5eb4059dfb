"""The emulator's dialer: it dials what the campaign's settings allow, in simulated time, and Genesys' analytics,
campaign stats and contacts' callRecords report exactly what it dialed."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import PureCloudPlatformClientV2 as gc
import pytest

from genesys_devkit.simulator import CampaignParams, simulate
from genesys_emulator.dialer import CampaignDialer, Pacing, Population

OUTBOUND = "/api/v2/outbound"
AGGREGATES = "/api/v2/analytics/conversations/aggregates/query"
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
METRICS = ["nOutboundAttempted", "nOutboundConnected", "nOutboundAbandoned", "tTalk", "tAcw", "tHandle"]


def _seed(api: Any, *, contacts: int, mode: str = "power", ratio: float = 2.0, lines: int = 100,
          status: str = "on", dialer: dict[str, Any] | None = None, campaign_id: str = "camp-d") -> None:
    body = {
        "contactLists": [{
            "id": f"list-{campaign_id}", "name": "dialed", "columnNames": ["phone"],
            "contacts": [{"id": f"{campaign_id}-{i}", "data": {"phone": f"+1317555{i:04d}"}} for i in range(contacts)],
        }],
        "campaigns": [{
            "id": campaign_id, "name": "dialed", "contactList": {"id": f"list-{campaign_id}"}, "dialingMode": mode,
            "abandonRate": 3, "maxCallsPerAgent": ratio, "outboundLineCount": lines, "campaignStatus": status,
            "noAnswerTimeout": 25,
        }],
    }
    assert api.admin("PUT", "/clock", json={"now": START.isoformat()}).status_code == 200
    assert api.admin("POST", "/seed", json=body).status_code == 200
    if dialer is not None:
        resp = api.admin("PUT", f"/campaigns/{campaign_id}/dialer", json=dialer)
        assert resp.status_code == 200, resp.text


def _advance(api: Any, seconds: float) -> None:
    resp = api.admin("POST", "/clock/advance", json={"seconds": seconds})
    assert resp.status_code == 200, resp.text


def _query(start: datetime, end: datetime, campaign_id: str = "camp-d", **extra: Any) -> dict[str, Any]:
    return {
        "interval": f"{start.isoformat()}/{end.isoformat()}", "granularity": "PT15M",
        "groupBy": ["outboundCampaignId"], "metrics": METRICS,
        "filter": {"type": "or", "predicates": [
            {"type": "dimension", "dimension": "outboundCampaignId", "operator": "matches", "value": campaign_id}
        ]},
        **extra,
    }


def _counts(answer: dict[str, Any]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for result in answer["results"]:
        for bucket in result["data"]:
            for metric in bucket["metrics"]:
                totals[metric["metric"]] = totals.get(metric["metric"], 0) + metric["stats"]["count"]
    return totals


def test_power_dialer_agrees_with_the_devkit_simulator() -> None:
    """Two implementations of the same assumptions (one scores what the other calibrates) agree within noise."""
    for agents, p, ratio in ((10, 0.3, 1.74), (20, 0.2, 3.7)):
        hours = 60.0
        dialer = CampaignDialer(Population(agents=agents, answer_rate=p), now=0.0, seed=21)
        pacing = Pacing("power", ratio, 10_000, 3.0, 25.0)
        dialer.advance(900.0, pacing)  # warm-up, as the simulator's
        before = (dialer.live, dialer.abandons, dialer.talk_seconds, dialer.agent_seconds)
        dialer.advance(900.0 + hours * 3600.0, pacing)
        live, abandons = dialer.live - before[0], dialer.abandons - before[1]
        talk_share = (dialer.talk_seconds - before[2]) / (dialer.agent_seconds - before[3])
        sim = simulate(CampaignParams(agents=agents, answer_rate=p), ratio, hours=hours, seed=22)
        assert talk_share == pytest.approx(sim.utilization, abs=0.015)
        # binomial noise of both abandon rates, at about 4 standard errors of their difference
        se = (sim.abandon_rate * (1 / sim.live_answers + 1 / live)) ** 0.5
        assert abs(abandons / live - sim.abandon_rate) < 4 * se + 0.002


def test_advancing_the_clock_dials_the_queue_once_and_records_results(api: Any) -> None:
    _seed(api, contacts=400, dialer={"agents": 5, "answerRate": 0.3, "seed": 3})
    _advance(api, 1800)
    state = api.admin("GET", "/campaigns/camp-d/dialer").json()
    assert state["now"] == "2026-03-02T08:30:00.000Z"
    assert 0 < state["dials"] < 400 and state["liveAnswers"] > 0
    history = api.admin("GET", "/contactlists/list-camp-d/queue/history").json()
    assert sum(history["dialed"].values()) == state["dials"]
    assert max(history["dialed"].values()) == 1  # never dialed twice
    queue = api.admin("GET", "/contactlists/list-camp-d/queue").json()
    assert queue["size"] == 400 - state["dials"]
    dialed = set(history["dialed"])
    results: dict[str, int] = {}
    for contact_id in list(dialed)[:60]:
        contact = api.get(f"{OUTBOUND}/contactlists/list-camp-d/contacts/{contact_id}").json()
        record = contact.get("callRecords", {}).get("phone")
        if record is None:  # still ringing at the end of the advance
            continue
        assert START <= datetime.fromisoformat(record["lastAttempt"].replace("Z", "+00:00")) < START + timedelta(
            minutes=30)
        results[record["lastResult"]] = results.get(record["lastResult"], 0) + 1
    assert "ININ-OUTBOUND-TRANSFERRED-TO-QUEUE" in results and "ININ-OUTBOUND-NO-ANSWER" in results
    undialed = next(c for c in queue["queue"])
    assert "callRecords" not in api.get(f"{OUTBOUND}/contactlists/list-camp-d/contacts/{undialed}").json()
    stats = api.get(f"{OUTBOUND}/campaigns/camp-d/stats").json()
    assert stats["contactRate"]["attempts"] == state["dials"]
    assert stats["contactRate"]["connects"] == state["liveAnswers"]
    assert stats["idleAgents"] + state["busyAgents"] == 5
    assert stats["outstandingCalls"] == state["linesInFlight"]


def test_an_empty_queue_or_a_stopped_campaign_dials_nothing(api: Any) -> None:
    _seed(api, contacts=30, dialer={"agents": 10, "answerRate": 0.2})
    _advance(api, 3600)
    assert api.admin("GET", "/campaigns/camp-d/dialer").json()["dials"] == 30  # all it had, each once
    api.post(f"{OUTBOUND}/campaigns/camp-d/stop")
    api.post(f"{OUTBOUND}/contactlists/list-camp-d/contacts", json=[
        {"id": "late-1", "data": {"phone": "+13175559999"}}])
    _advance(api, 3600)
    assert api.admin("GET", "/campaigns/camp-d/dialer").json()["dials"] == 30


def test_the_dialer_obeys_the_line_budget_and_the_ratio(api: Any) -> None:
    _seed(api, contacts=3000, ratio=4.0, lines=3, dialer={"agents": 10, "answerRate": 0.1, "seed": 5})
    _advance(api, 1800)
    state = api.admin("GET", "/campaigns/camp-d/dialer").json()
    assert state["linesInFlight"] <= 3
    # three lines at ~20 s a dial: far fewer dials than 10 agents at ratio 4 would make
    assert state["dials"] < 3 * 1800 / 5
    wide = api.patch(f"{OUTBOUND}/campaigns/camp-d", json={"outboundLineCount": 100})
    assert wide.status_code == 204
    _advance(api, 1800)
    assert api.admin("GET", "/campaigns/camp-d/dialer").json()["dials"] - state["dials"] > 2 * state["dials"]


def test_analytics_report_what_was_dialed_in_15_minute_buckets(api: Any, credentials: tuple[str, str],
                                                              emu: Any) -> None:
    _seed(api, contacts=3000, dialer={"agents": 8, "answerRate": 0.25, "talkMean": 90, "seed": 8})
    _advance(api, 3600)
    state = api.admin("GET", "/campaigns/camp-d/dialer").json()
    talk_edges = [0, 60_000, 120_000, 10**9]
    views = [{"target": "tTalk", "name": f"talk{i}", "function": "rangeBound",
              "range": {"gte": lo, "lt": hi}} for i, (lo, hi) in enumerate(itertools.pairwise(talk_edges))]
    resp = api.post(AGGREGATES, json=_query(START, START + timedelta(hours=2), views=views))
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    (result,) = answer["results"]
    assert result["group"] == {"outboundCampaignId": "camp-d"}
    intervals = [b["interval"] for b in result["data"]]
    assert intervals == [
        f"2026-03-02T{h:02d}:{m:02d}:00.000Z/2026-03-02T{h2:02d}:{m2:02d}:00.000Z"
        for h, m, h2, m2 in ((8, 0, 8, 15), (8, 15, 8, 30), (8, 30, 8, 45), (8, 45, 9, 0))
    ]  # nothing emitted after the clock: the second hour is absent, not zero
    counts = _counts(answer)
    assert counts["nOutboundAttempted"] == state["dials"]
    assert counts["nOutboundConnected"] == state["liveAnswers"]
    assert counts.get("nOutboundAbandoned", 0) == state["abandons"]
    assert counts["tTalk"] <= state["liveAnswers"] - state["abandons"]  # talks still going are not emitted yet
    talk_sum = sum(m["stats"]["sum"] for b in result["data"] for m in b["metrics"] if m["metric"] == "tTalk")
    assert 60_000 < talk_sum / counts["tTalk"] < 130_000  # mean talk 90 s, in milliseconds
    view_count = sum(v["stats"]["count"] for b in result["data"] for v in b.get("views", []))
    assert view_count == counts["tTalk"]  # the bins cover every talk once
    other = api.post(AGGREGATES, json=_query(START, START + timedelta(hours=1), campaign_id="nope")).json()
    assert other == {"results": []}
    # the official SDK deserializes the answer
    client = gc.ApiClient(host=emu.base_url)
    client.get_client_credentials_token(*credentials)
    body = gc.ConversationAggregationQuery()
    body.interval = _query(START, START + timedelta(hours=1))["interval"]
    body.granularity, body.metrics = "PT1H", METRICS
    body.group_by = ["outboundCampaignId"]
    parsed = gc.AnalyticsApi(client).post_analytics_conversations_aggregates_query(body)
    assert parsed.results[0].data[0].metrics[0].metric == "nOutboundAttempted"
    assert parsed.results[0].data[0].metrics[0].stats.count == state["dials"]
    outbound = gc.OutboundApi(client)
    stats = outbound.get_outbound_campaign_stats("camp-d")
    assert (stats.contact_rate.attempts, stats.contact_rate.connects) == (state["dials"], state["liveAnswers"])
    assert stats.idle_agents == state["idleAgents"]
    dialed = next(iter(api.admin("GET", "/contactlists/list-camp-d/queue/history").json()["dialed"]))
    record = outbound.get_outbound_contactlist_contact("list-camp-d", dialed).call_records["phone"]
    assert record.last_result.startswith("ININ-OUTBOUND-") and record.last_attempt.year == 2026


@pytest.mark.parametrize(("change", "field"), [
    ({"interval": "2026-03-02T08:00:00Z"}, "interval"),
    ({"interval": "2026-03-02T09:00:00Z/2026-03-02T08:00:00Z"}, "interval"),
    ({"interval": "2026-03-01T00:00:00Z/2026-04-15T00:00:00Z", "granularity": "P1D"}, "interval"),
    ({"granularity": "PT7M"}, "granularity"),
    ({"granularity": "15 minutes"}, "granularity"),
    ({"metrics": ["nOutboundDialed"]}, "metrics[0]"),
    ({"groupBy": ["queueId"]}, "groupBy"),
    ({"sortBy": "x"}, "sortBy"),
])
def test_analytics_queries_are_validated(api: Any, change: dict[str, Any], field: str) -> None:
    body = {**_query(START, START + timedelta(hours=1)), **change}
    resp = api.post(AGGREGATES, json=body)
    assert resp.status_code == 400
    assert resp.json()["details"][0]["fieldName"] == field


def test_staffing_changes_take_idle_agents_first(api: Any) -> None:
    _seed(api, contacts=3000, ratio=2.0, dialer={"agents": 12, "answerRate": 0.2, "seed": 2})
    _advance(api, 1800)
    api.admin("PUT", "/campaigns/camp-d/dialer", json={"agents": 4})
    _advance(api, 1200)  # long enough for the agents who were talking to finish
    state = api.admin("GET", "/campaigns/camp-d/dialer").json()
    assert state["idleAgents"] + state["busyAgents"] == 4
    assert state["population"]["agents"] == 4


def test_predictive_mode_paces_each_call_towards_abandon_rate(api: Any) -> None:
    _seed(api, contacts=20_000, mode="predictive", ratio=15, lines=500,
          dialer={"agents": 20, "answerRate": 0.2, "seed": 6})
    _advance(api, 8 * 3600)
    state = api.admin("GET", "/campaigns/camp-d/dialer").json()
    assert 0.005 < state["abandons"] / state["liveAnswers"] < 0.045  # steered towards abandonRate 3
    assert state["talkSeconds"] / state["agentSeconds"] > 0.7  # well above progressive (~57 % at p = 0.2)


def test_clock_moves_forward_only_once_dialed(api: Any) -> None:
    _seed(api, contacts=100, dialer={"agents": 2})
    _advance(api, 600)
    resp = api.admin("PUT", "/clock", json={"now": START.isoformat()})
    assert resp.status_code == 400 and resp.json()["details"][0]["fieldName"] == "now"
    assert api.admin("GET", "/clock").json() == {"now": "2026-03-02T08:10:00.000Z"}
    bad = api.admin("PUT", "/campaigns/camp-d/dialer", json={"answerRate": 2})
    assert bad.status_code == 400
    unknown = api.admin("PUT", "/campaigns/camp-d/dialer", json={"agentz": 2})
    assert unknown.status_code == 400 and unknown.json()["details"][0]["fieldName"] == "agentz"


def test_patch_can_be_set_to_keep_only_whole_calls_per_agent(server_factory: Any, api_for: Any) -> None:
    server = server_factory(patch_keeps_decimal=False)
    api = api_for(server)
    api.admin("POST", "/seed", json={
        "contactLists": [{"id": "l", "name": "l", "columnNames": ["phone"]}],
        "campaigns": [{"id": "c", "name": "c", "contactList": {"id": "l"}, "dialingMode": "power", "abandonRate": 3}],
    })
    assert api.patch(f"{OUTBOUND}/campaigns/c", json={"maxCallsPerAgent": 2.6}).status_code == 204
    campaign = api.get(f"{OUTBOUND}/campaigns/c").json()
    assert (campaign["maxCallsPerAgent"], campaign["maxCallsPerAgentDecimal"]) == (2, 2.0)
    campaign["maxCallsPerAgentDecimal"] = 2.6
    assert api.put(f"{OUTBOUND}/campaigns/c", json=campaign).status_code == 200
    assert api.get(f"{OUTBOUND}/campaigns/c").json()["maxCallsPerAgentDecimal"] == 2.6
