"""Tune's quality on simulator data: the true reward of its proposal against an exhaustive grid's best.

A champion is trained on one simulated log; it serves (exploring) another log,
which is the tune job's data window. Tune searches the cost weight, exploration and
threshold on that window; the true score (true reward less the constraint penalty,
from a TruthTable of fresh traffic) of its best point is compared with the best
true score over a grid of the same space.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np

from flywheel.eval.logged_sim import TruthTable, packaged_spec, simulate_log
from flywheel.learners.counterfactual import Candidate, candidate_state
from flywheel.learners.state import dumps_policy, loads_policy
from flywheel.learners.tune import constraints_of, search
from flywheel.learners.tune_objective import PENALTY, Constraints, SearchSpace, TuneData
from flywheel.learners.workflow_learner import WorkflowLearner
from flywheel.registry.policy import WorkflowPolicy


def true_score(table: TruthTable, data: TuneData, space: SearchSpace, point: dict[str, float],
               constraints: Constraints) -> float:
    """A point's true reward less the penalty for the constraints it truly violates."""
    cand = space.candidate(point)
    truth = table.value(loads_policy(candidate_state(data.base_state, cand, data.spec)), cand.thresholds)
    violation = max(0.0, truth.human_share - constraints.max_human_share) + max(
        0.0, truth.unattended_error - constraints.max_unattended_error)
    return truth.value - PENALTY * violation


def run(workflow: str = "ticket_triage", scenario: str = "stationary", *, train_runs: int = 1500,
        log_runs: int = 3000, truth_runs: int = 2000, trials: int = 32, grid: int = 5, seed: int = 0,
        max_human_share: float = 0.3, progress: bool = False) -> dict[str, Any]:
    """The benchmark's JSON-ready result (gap_to_grid_best, trials, seconds, ...)."""
    spec = packaged_spec(workflow)
    learner = WorkflowLearner(spec, seed=seed)
    simulate_log(scenario, workflow, train_runs, seed=seed + 100, learner=learner)
    base = dumps_policy(learner.policy())
    logging = loads_policy(candidate_state(base, Candidate(spec.objective.cost_weight, 0.2), spec))
    log = simulate_log(scenario, workflow, log_runs, seed=seed + 1, policy=logging)
    constraints = constraints_of(spec, max_human_share)
    data = TuneData(spec=spec, examples=log.examples, base_state=base, constraints=constraints)
    space = SearchSpace.of(spec, WorkflowPolicy())
    start = {"cost_weight": spec.objective.cost_weight, "routing.exploration": 0.2,
             **{f"thresholds.{g}": v for g, v in spec.gates.items()}}
    began = time.perf_counter()
    result = search(data, space, start, trials=trials, seed=seed, progress=progress)
    seconds = time.perf_counter() - began
    table = TruthTable(log, truth_runs)
    axes = {k: np.linspace(lo, hi, grid).tolist() for k, (lo, hi) in space.bounds.items()}
    best_grid, best_point = float("-inf"), {}
    for values in itertools.product(*axes.values()):
        point = dict(zip(axes, values))
        s = true_score(table, data, space, point, constraints)
        if s > best_grid:
            best_grid, best_point = s, point
    tuned = true_score(table, data, space, result.point, constraints)
    return {
        "workflow": workflow,
        "scenario": scenario,
        "gap_to_grid_best": (best_grid - tuned) / abs(best_grid) if best_grid else 0.0,
        "trials": result.trials,
        "trials_stopped_early": result.stopped_early,
        "seconds": round(seconds, 2),
        "tuned_point": result.point,
        "tuned_true_score": tuned,
        "tuned_estimate": result.metrics,
        "grid_best_point": best_point,
        "grid_best_true_score": best_grid,
        "grid_points": grid ** len(axes),
        "window_outcomes": len(log.examples),
    }
