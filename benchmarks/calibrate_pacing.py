"""Fit the pacing model's constants on the devkit simulator, on cells the benchmark never scores.

Two fits (``benchmarks/out/calibration.json`` keeps the cells; ``--fit-only`` refits from it):

* ``CHAIN_CORRECTION`` (small teams, :mod:`genesys_dialer.pacing.markov`): for each cell the uncorrected Markov
  chain's highest step within a target, simulated; least squares of ln(simulated / chain abandon rate) on
  the runtime's own ``correction_features`` (ln N, p, ln(chain / 3 %), ln r, the handle time and their
  interactions). Leave-one-out sd = ``CHAIN_FIT_ERROR``.
* ``MODEL_COEFFICIENTS`` (20+ agents, :mod:`genesys_dialer.pacing.strategies`): for each cell the highest dialer
  step whose simulated abandon rate is within the target (bisection over the steps' middles); least squares
  of ln(ratio x p) on the runtime's ``surface_features`` (ln N, ln^2 N, p, ln(target / 3 %) and ln(u / u0(p)),
  u = mean dial seconds / mean handle seconds: talk time in units of the service time). RMS error =
  ``MODEL_FIT_ERROR``.

Calibration scenarios: p in {0.04, 0.07, 0.12, 0.25, 0.4, 0.7}, talk 60/120/150/240/400 s, seeds 9000+; the
benchmark scores p in {0.05, 0.1, 0.2, 0.3, 0.5}, talk 90/180/300 s on seeds 1000+. Keep them apart.

    python benchmarks/calibrate_pacing.py              # all cells (~30 min on one core; run it niced)
    python benchmarks/calibrate_pacing.py --fit-only benchmarks/out/calibration.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from multiprocessing import Pool
from pathlib import Path

from genesys_devkit.simulator import CampaignParams, simulate
from genesys_dialer.pacing.campaign import handle_units
from genesys_dialer.pacing.markov import (
    correction_features,
    highest_admissible,
    ratio_steps,
    solve_chain,
    step_edges,
)
from genesys_dialer.pacing.strategies import surface_features

OUT = Path(__file__).resolve().parent / "out"
CALIBRATION_P = (0.04, 0.07, 0.12, 0.25, 0.4, 0.7)
CALIBRATION_TALK = (60.0, 120.0, 150.0, 240.0, 400.0)
CHAIN_AGENTS = (2, 3, 4, 6, 7, 8, 9, 12, 15, 18)
CHAIN_TARGETS = (1.5, 2.5, 3.5, 5.0)
SURFACE_AGENTS = (30, 70, 150)
SURFACE_TARGETS = (2.0, 3.0)
SEED_BASE = 9000


def _hours_for(agents: int, answers: int, handle: float) -> float:
    """Simulated hours that give about ``answers`` live answers at ~80 % utilization."""
    return max(2.0, answers / (agents * 3600.0 / handle * 0.8))


def _params(p: float, agents: int, talk: float) -> CampaignParams:
    return CampaignParams(agents=agents, answer_rate=p, talk_mean=talk)


def chain_cell(job: tuple[float, int, float, float, int, int]) -> dict[str, object]:
    """The uncorrected chain's highest step within ``target``, and the simulator's abandon rate there."""
    p, agents, target, talk, answers, seed = job
    params = _params(p, agents, talk)
    steps = ratio_steps(agents)
    ratio = steps[highest_admissible(steps, lambda r: solve_chain(params, r).abandon_rate <= target / 100.0)]
    sim = simulate(params, ratio, hours=_hours_for(agents, answers, talk + 10.0), seed=seed)
    return {"kind": "chain", "p": p, "agents": agents, "target": target, "talk": talk, "ratio": ratio,
            "chain": solve_chain(params, ratio).abandon_rate, "sim": sim.abandon_rate}


def surface_cell(job: tuple[float, int, float, float, int, int]) -> dict[str, object]:
    """The highest dialer step (lo, hi) whose simulated abandon rate is <= the target, at the step's middle."""
    p, agents, target, talk, answers, seed = job
    params = _params(p, agents, talk)
    hours = _hours_for(agents, answers, talk + 10.0)
    edges = step_edges(agents)
    middles = [(lo + hi) / 2.0 for lo, hi in itertools.pairwise(edges)]
    k = highest_admissible(
        middles, lambda r: simulate(params, r, hours=hours, seed=seed).abandon_rate <= target / 100.0
    )
    return {"kind": "surface", "p": p, "agents": agents, "target": target, "talk": talk, "lo": edges[k],
            "hi": edges[k + 1], "capped": k == len(middles) - 1}


def _job(args: tuple[str, float, int, float, float, int, int]) -> dict[str, object]:
    kind, *rest = args
    return (chain_cell if kind == "chain" else surface_cell)(tuple(rest))  # type: ignore[arg-type]


def jobs(answers: int = 30000, surface_answers: int = 20000) -> list[tuple[str, float, int, float, float, int, int]]:
    """Every cell at talk 120 s (the timing the model was first fitted on), and at the other talk times the
    chain at the two targets around the cap and the surface where the ratio is not capped at 15 (p > 0.04)."""
    out: list[tuple[str, float, int, float, float, int, int]] = []
    for p, talk in itertools.product(CALIBRATION_P, CALIBRATION_TALK):
        targets = CHAIN_TARGETS if talk == 120.0 else (2.5, 3.5)
        out += [("chain", p, n, t, talk, answers, 0) for n in CHAIN_AGENTS for t in targets]
        if talk == 120.0 or p > 0.04:
            out += [("surface", p, n, t, talk, surface_answers, 0)
                    for n in SURFACE_AGENTS for t in SURFACE_TARGETS]
    return [(*job[:-1], SEED_BASE + i) for i, job in enumerate(out)]


def _key(cell: dict) -> tuple[object, ...]:
    return (cell["kind"], cell["p"], cell["agents"], cell["target"], float(cell.get("talk", 120.0)))


def fit(cells: list[dict]) -> dict[str, object]:
    """Least squares of both models; prints and returns the constants to paste."""
    import numpy as np

    result: dict[str, object] = {}
    chain = [c for c in cells if c["kind"] == "chain" and c["sim"] > 0.004 and c["chain"] > 0.004]
    x = np.array([correction_features(c["agents"], c["p"], c.get("talk", 120.0) + 10.0, c["ratio"], c["chain"])
                  for c in chain])
    y = np.array([math.log(c["sim"] / c["chain"]) for c in chain])
    coef = np.linalg.lstsq(x, y, rcond=None)[0]
    loo = [y[j] - x[j] @ np.linalg.lstsq(np.delete(x, j, 0), np.delete(y, j), rcond=None)[0] for j in range(len(y))]
    result["CHAIN_CORRECTION"] = tuple(round(float(c), 4) for c in coef)
    result["CHAIN_FIT_ERROR"] = round(float(np.std(loo)), 3)
    result["chain_cells"] = len(y)
    surface = [c for c in cells if c["kind"] == "surface" and not c["capped"]]
    rows, values = [], []
    for c in surface:
        units = handle_units(_params(c["p"], c["agents"], c.get("talk", 120.0))) / handle_units(
            _params(c["p"], c["agents"], 120.0))
        rows.append(surface_features(c["p"], c["agents"], c["target"], units))
        values.append(math.log(math.sqrt(c["lo"] * c["hi"]) * c["p"]))
    xs, ys = np.array(rows), np.array(values)
    coef = np.linalg.lstsq(xs, ys, rcond=None)[0]
    residuals = ys - xs @ coef
    result["MODEL_COEFFICIENTS"] = tuple(round(float(c), 4) for c in coef)
    result["MODEL_FIT_ERROR"] = round(float(np.sqrt(np.mean(residuals * residuals))), 3)
    result["surface_cells"] = len(ys)
    for key, value in result.items():
        print(f"{key} = {value}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1, help="at most 2")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--fit-only", type=Path, help="refit from a calibration.json written before")
    args = parser.parse_args(argv)
    if args.fit_only:
        result = fit(json.loads(args.fit_only.read_text(encoding="utf-8")))
        (args.out / "calibration_fit.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        return 0
    started = time.monotonic()
    todo = jobs()
    cells: list[dict] = []
    known = args.out / "calibration.json"
    if known.exists():  # resume: keep the cells already simulated (a cell is a pure function of its job)
        cells = [{**c, "talk": float(c.get("talk", 120.0))} for c in json.loads(known.read_text(encoding="utf-8"))]
        done = {_key(c) for c in cells}
        todo = [j for j in todo if (j[0], j[1], j[2], j[3], j[4]) not in done]
        print(f"{len(cells)} cells known, {len(todo)} to simulate", flush=True)
    with Pool(max(1, min(args.workers, 2))) as pool:
        for cell in pool.imap_unordered(_job, todo):
            cells.append(cell)
            if len(cells) % 25 == 0:
                print(f"[{len(cells)} cells {time.monotonic() - started:.0f}s]", flush=True)
                known.parent.mkdir(parents=True, exist_ok=True)
                known.write_text(json.dumps(cells, indent=1) + "\n", encoding="utf-8")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "calibration.json").write_text(json.dumps(cells, indent=1) + "\n", encoding="utf-8")
    result = fit(cells)
    (args.out / "calibration_fit.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"total {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
