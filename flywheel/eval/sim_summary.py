"""The simulation benchmark's figures from its tallies: regret, shares, gates, thresholds.

flywheel.eval.bench_sim runs the served path and counts; this module turns the
counts into the JSON-ready result (the definitions are bench_sim's docstring).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from flywheel.eval.recovery import route_recovery
from flywheel.learners.workflow_learner import WorkflowLearner
from flywheel.sim import Scenario
from flywheel.workflows.spec import WorkflowSpec
from flywheel.learners.base import described


def effective_params(lrn: WorkflowLearner) -> dict[str, Any]:
    """The parameters the learners ran with (defaults filled in), for the record."""
    out = {k: v for k, v in lrn._get_params().items() if k not in ("spec", "bandit", "threshold", "detector")}
    b = lrn.bandit
    out["bandit"] = {k: getattr(b, k) for k in ("epsilon", "epsilon_min", "epsilon_half_life", "shared", "ucb",
                                               "explore_z", "cost_model")}
    out["bandit"]["solver"] = described(b.solver)
    gate = next(iter(lrn.thresholds.values()), None)
    if gate is not None:
        out["threshold"] = {k: getattr(gate, k) for k in ("n_bins", "half_life", "min_samples", "z")}
    d = lrn.drift
    out["detector"] = {k: getattr(d, k) for k in ("delta", "clock", "min_window_length", "grace_period")}
    return out


def summarize(
    sc: Scenario,
    specs: dict[str, WorkflowSpec],
    learners: dict[str, WorkflowLearner],
    totals: dict[str, Counter],
    routes: dict[str, list[tuple[int, str, str]]],
    gate_stats: dict[str, Counter],
    trajectory: dict[str, dict[str, list[tuple[int, float]]]],
    window: int,
    tolerance: float,
) -> dict[str, Any]:
    per_wf: dict[str, Any] = {}
    sums = Counter()
    for wf, spec in specs.items():
        tot, gs = totals[wf], gate_stats[wf]
        static_arm = max(spec.arms, key=lambda a: tot[f"arm:{a}"])
        n = len(routes[wf])
        sys_shares = Counter(a for _, a, _ in routes[wf])
        ora_shares = Counter(b for _, _, b in routes[wf])
        fig = {
            "runs": n,
            "system_reward": tot["system"],
            "static_reward": tot[f"arm:{static_arm}"],
            "oracle_reward": tot["oracle"],
            "static_arm": static_arm,
            "arm_rewards": {a: round(tot[f"arm:{a}"], 3) for a in spec.arms},
            "shares": {a: round(sys_shares[a] / max(1, n), 4) for a in spec.arms},
            "oracle_shares": {a: round(ora_shares[a] / max(1, n), 4) for a in spec.arms},
            "failed_runs": gs["failed"],
            "human_share": gs["human"] / max(1, gs["answered"]),
            "override_share": gs["overridden"] / max(1, gs["answered"]),
            "unattended_error_rate": gs["unattended_wrong"] / max(1, gs["unattended"]),
            "target_error_rate": spec.targets.max_unattended_error_rate,
            "thresholds": {
                gate: _trajectory_summary(init, trajectory[wf][gate]) for gate, init in spec.gates.items()
            },
            "drift_events": [
                {"arm": e.arm, "at_update": e.at_update, "detector": e.detector,
                 "mean_before": round(e.mean_before, 3), "mean_after": round(e.mean_after, 3)}
                for e in learners[wf].drift_events
            ],
            "evidence": learners[wf].evidence(),
        }
        for k in ("system_reward", "static_reward", "oracle_reward"):
            sums[k] += fig[k]
            fig[k] = round(fig[k], 3)
        fig["regret"] = round(fig["oracle_reward"] - fig["system_reward"], 3)
        fig["static_regret"] = round(fig["oracle_reward"] - fig["static_reward"], 3)
        per_wf[wf] = fig
        for k in ("system", "oracle", "system_with_overrides"):
            sums[f"r:{k}"] += tot[f"r:{k}"]
        sums["r:static"] += tot[f"r:arm:{static_arm}"]
        for k in ("answered", "human", "unattended", "unattended_wrong"):
            sums[k] += gs[k]
    regret = sums["oracle_reward"] - sums["system_reward"]
    static_regret = sums["oracle_reward"] - sums["static_reward"]
    recovery = route_recovery(sc, routes, window, tolerance)
    return {
        "scenario": sc.name,
        "regret": round(regret, 3),
        "static_regret": round(static_regret, 3),
        "regret_ratio_vs_static": round(regret / static_regret, 4) if static_regret > 0 else None,
        "recovery_runs": recovery["runs"] if recovery else None,
        "system_reward": round(sums["system_reward"], 3),
        "static_reward": round(sums["static_reward"], 3),
        "oracle_reward": round(sums["oracle_reward"], 3),
        "static_arms": {wf: f["static_arm"] for wf, f in per_wf.items()},
        "human_share": round(sums["human"] / max(1, sums["answered"]), 4),
        "unattended_error_rate": round(sums["unattended_wrong"] / max(1, sums["unattended"]), 4),
        "realized": {k: round(sums[f"r:{k}"], 3) for k in ("system", "static", "oracle", "system_with_overrides")},
        "recovery": recovery,
        "workflows": per_wf,
    }


def _trajectory_summary(initial: float, points: list[tuple[int, float]]) -> dict[str, Any]:
    values = [v for _, v in points] or [initial]
    return {
        "initial": initial,
        "final": round(values[-1], 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "points": [(t, round(v, 4)) for t, v in points],
    }
