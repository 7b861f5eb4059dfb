"""The pacing loop, closed: the campaign DAG paces, the emulator's dialer dials under that pacing in simulated time,
and the next run paces on what Genesys' analytics report it dialed.

Through Airflow (dag.test, real PostgreSQL, the emulator over HTTP) on a short simulated horizon; in-process
(genesys_devkit.closed_loop: the same pacing functions, the emulator's dialer, no HTTP) on a simulated day with
the answer rate and talk time changing, and the robustness cases. The week-long loop is in `make bench`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pipeline_helpers import run_dag
from support import LOOP_CAMPAIGN_ID, LOOP_LIST_ID, Emulator, quarter_with_time_to_run

from genesys_devkit.closed_loop import (
    best_fixed_ratio_day,
    history_buckets,
    population_schedule,
    ramp,
    run_loop,
    thin_history,
)
from genesys_devkit.demo_data import contact_rows, emulator_seed, insert_contacts
from genesys_dialer.config import CampaignConfig
from genesys_emulator.dialer import Population

CAP = 0.03
AGGREGATES_ROUTE = "POST /api/v2/analytics/conversations/aggregates/query"


@pytest.mark.usefixtures("airflow_db")
def test_dag_runs_pace_the_emulators_dialer_on_what_it_dialed(db: Any, emulator: Emulator) -> None:
    # Runs of the latest intervals (the current one and the next two): only those apply their pacing.
    start = quarter_with_time_to_run()
    seed = emulator_seed(LOOP_CAMPAIGN_ID, LOOP_LIST_ID)
    seed["campaigns"][0].update(dialingMode="power", maxCallsPerAgent=1, outboundLineCount=8, noAnswerTimeout=25)
    emulator.admin("PUT", "clock", {"now": start.isoformat()})
    emulator.seed(seed)
    emulator.admin("PUT", f"campaigns/{LOOP_CAMPAIGN_ID}/dialer",
                   {"agents": 8, "answerRate": 0.3, "talkMean": 100, "seed": 12})
    insert_contacts(db, contact_rows(2000, seed=31, created_at=start - timedelta(days=1)))

    runs = []
    for k in range(3):
        at = start + k * timedelta(minutes=15)
        assert emulator.admin("GET", "clock")["now"].startswith(at.strftime("%Y-%m-%dT%H:%M"))
        dag_run = run_dag(key="loop", logical_date=at)
        assert str(dag_run.state) == "success"
        runs.append(dag_run)
        if k < 2:
            emulator.admin("POST", "clock/advance", {"seconds": 900})  # the dialer dials on what was applied

    decisions = db.execute(
        "SELECT run_id, window_end, dial_ratio, max_calls_per_agent, outbound_line_count, details, applied, kept "
        "FROM pacing_decisions WHERE campaign_id = %s ORDER BY window_end", [LOOP_CAMPAIGN_ID]).fetchall()
    assert [d[0] for d in decisions] == [r.run_id for r in runs]
    assert [d[1] for d in decisions] == [start + k * timedelta(minutes=15) for k in range(3)]
    first, *later = decisions
    # A new campaign: nothing dialed yet, so progressive; then the model ramps up on what the dialer did.
    assert first[3] == 1.0 and any("min_history_attempts" in n for n in first[5]["notes"])
    assert later[-1][3] > 1.0
    for _, _, _, calls, lines, details, applied, kept in later:
        assert details["timing_source"] == "measured" and details["pacing_source"] == "genesys"
        assert 85 <= details["talk_mean_seconds"] < 115  # measured (100 s mean), not the 120 s assumption
        assert applied and kept["maxCallsPerAgentDecimal"] == calls and kept["outboundLineCount"] == lines
    campaign = emulator.campaign(LOOP_CAMPAIGN_ID)
    assert campaign["maxCallsPerAgentDecimal"] == decisions[-1][3]

    # What the runs stored is what the dialer did (the last run synced up to its interval end: the clock).
    dialer = emulator.admin("GET", f"campaigns/{LOOP_CAMPAIGN_ID}/dialer")
    stored = db.execute(
        "SELECT sum(attempts), sum(connects), sum(abandons), count(*) FILTER (WHERE idle_agents IS NOT NULL) "
        "FROM campaign_outcomes WHERE campaign_id = %s", [LOOP_CAMPAIGN_ID]).fetchone()
    assert stored[:3] == (dialer["dials"], dialer["liveAnswers"], dialer["abandons"])
    assert dialer["dials"] > 200 and stored[3] == 3  # one stats reading per run
    assert dialer["abandons"] <= CAP * dialer["liveAnswers"]

    # Every contact the dialer took came from the DAG's batches, once, and shows its result.
    history = emulator.admin("GET", f"contactlists/{LOOP_LIST_ID}/queue/history")
    assert history["dialed"] and max(history["dialed"].values()) == 1
    sample = emulator.contacts(LOOP_LIST_ID)[:40]
    with_results = [c for c in sample if c["id"] in history["dialed"] and "callRecords" in c]
    assert with_results and all(c["callRecords"]["phone"]["lastResult"].startswith("ININ-OUTBOUND-")
                                for c in with_results)
    queries = [r for r in emulator.requests_log() if r["route"] == AGGREGATES_ROUTE]
    assert queries and all(r["status"] == 200 for r in queries)
    report = db.execute("SELECT report FROM run_log WHERE run_id = %s", [runs[-1].run_id]).fetchone()[0]
    assert report["outcomes"]["synced"] and report["pacing_kept"]["maxCallsPerAgentDecimal"] == decisions[-1][3]


# -- in-process: the same pacing functions on the emulator's dialer, no HTTP ----------------------------------


def _campaign(agents: int, **extra: Any) -> CampaignConfig:
    return CampaignConfig(key="loop", campaign_id="closed-loop", agents=agents, max_outbound_lines=agents * 15,
                          **extra)


def test_a_day_of_drifting_answer_rate_and_talk_time_stays_under_the_cap_near_the_best_fixed_ratio() -> None:
    agents = 20
    campaign = _campaign(agents)
    population = population_schedule(
        Population(agents=agents), answer_rate=ramp(0.15, 0.25, days=1), talk_mean=ramp(100.0, 200.0, days=1)
    )
    history = history_buckets(Population(agents=agents, answer_rate=0.15, talk_mean=100.0), days=2, ratio=3.0)
    result = run_loop(campaign, population, days=1, seed=41, history=history)
    best_ratio, best = best_fixed_ratio_day(campaign, population, 0, seed=41)
    day = result.days[0]
    assert result.worst_24h <= CAP, result.windows_24h
    assert day.talk_share >= best.talk_share - 0.02, (day.talk_share, best.talk_share, best_ratio)
    assert min(day.ratios) > 1.0  # a campaign with history never needs to fall back to progressive here


@pytest.mark.parametrize("case", ["new campaign", "thin history", "history from another talk time",
                                  "staffing drop"])
def test_robustness_cases_stay_under_the_cap(case: str) -> None:
    agents, p, talk = 20, 0.3, 150.0
    campaign = _campaign(agents)
    population = population_schedule(Population(agents=agents, answer_rate=p, talk_mean=talk))
    history: list[Any] = []
    if case == "thin history":
        history = thin_history(Population(agents=agents, answer_rate=p, talk_mean=talk), dials=50)
        assert 50 <= sum(b.attempts for b in history) <= 75
    elif case == "history from another talk time":
        history = history_buckets(Population(agents=agents, answer_rate=p, talk_mean=60.0), days=3, ratio=2.0)
    elif case == "staffing drop":
        population = population_schedule(
            Population(agents=agents, answer_rate=p, talk_mean=talk),
            agents=lambda hours: agents if hours < 4.0 else 8,
        )
        history = history_buckets(Population(agents=agents, answer_rate=p, talk_mean=talk), days=2, ratio=2.0)
    result = run_loop(campaign, population, days=1, seed=53, history=history)
    assert result.worst_24h <= CAP, (case, result.windows_24h)
    ratios = [d.max_calls_per_agent for _, d in result.decisions]
    if case in ("new campaign", "thin history"):
        assert ratios[0] == 1.0 and max(ratios) > 1.2  # starts progressive, ramps up on evidence
    if case == "staffing drop":
        paced = [d.details.get("agents_paced") for at, d in result.decisions]
        assert paced[0] == agents and min(paced[-8:]) <= 10  # the drop is seen within the afternoon


def test_long_calls_beyond_the_calibrated_talk_times_stay_under_the_cap() -> None:
    """10-minute calls, longer than any the model's surface was fitted on (60 to 400 s), eight 8-hour days on the
    emulator's dialer re-paced every 15 minutes: the surface alone broke the cap in a 24 h window here; the Markov
    model's check of its ratio keeps every window under it."""
    agents, p, talk = 20, 0.1, 600.0
    campaign = _campaign(agents)
    population = population_schedule(Population(agents=agents, answer_rate=p, talk_mean=talk))
    history = history_buckets(Population(agents=agents, answer_rate=p, talk_mean=talk), days=2, ratio=1.3,
                              seed=5002)
    result = run_loop(campaign, population, days=8, seed=5001, history=history)
    assert result.worst_24h <= CAP, result.windows_24h
    assert any("Markov model of the dialer checked its ratio" in note
               for _, decision in result.decisions for note in decision.notes)
