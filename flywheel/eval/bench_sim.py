"""The simulation benchmark: the learning system against the best static config and an oracle.

In-process (no HTTP, no Ray), one scenario, one tick at a time:

1. the TrafficGenerator gives the tick's request; its workflow's WorkflowLearner
   decides on `features_of(spec, input)`;
2. the Environment answers with the chosen model. `ModelUnavailable` is a failed
   run (quality 0, cost 0, latency 0), which the engine sees at once, so the
   learner learns it at once;
3. an answer passes the workflow's gate (its first gate step) when its confidence
   is at or above the learner's current threshold; otherwise the HumanReviewer
   reviews it (approve, reject or edit);
4. the OutcomeReporter schedules the run's outcome (on time, late, never, twice);
   outcomes due at this tick are learned, each event_id once, as a LearningExample
   whose `correct` is the outcome's `success` and `human_override` its override.

Reward: the workflow objective applied to the answer's quality, cost and latency
(quality_weight * quality - cost_weight * cost - latency_weight * latency). The
override penalty is left out of the comparison: it depends on the gate, not on
the route, and the static config and the oracle have no gate of their own; it is
reported beside (`realized.system_with_overrides`). A failed run's reward is 0.

All three policies are scored on the same request stream by EXPECTED reward of
the arm each picks, at that tick: Environment.quality (for reports, the expected
graded score 0.825 q + 0.3 (1 - q)) and mean cost and latency (mean output tokens
of the model on that input), 0 for an unavailable model. That is pseudo-regret:
it does not count the coin flips of the world, which no policy controls. The
realized rewards (the environment's draws for every arm on the same requests)
are reported under `realized`.

- system: the arm the learner chose;
- static: per workflow, the single arm with the best total reward in hindsight;
- oracle: per request, the arm of highest expected reward at that tick.

regret = oracle - system, static_regret = oracle - static (cumulative, summed
over workflows), regret_ratio_vs_static = regret / static_regret.

recovery_runs: N is the tick of the scenario's first abrupt event (degrade,
outage or add). A workflow is affected when the oracle's route shares over its
last 1,000 runs before N and its first 1,000 runs from N differ by at least
`tolerance` for some arm. For an affected workflow, after its j-th run from N
(j >= window), compare the system's and the oracle's route shares over its last
`window` runs (all from N on): recovered when every arm's shares differ by at
most `tolerance`. Its recovery is the first such j, in runs of that workflow
(so never below `window`); recovery_runs is the largest over the affected
workflows. It is None when the scenario has no abrupt event within the runs
(then `recovery` is None too) or when a workflow never recovers (then
`recovery.recovered` is false). `gap_before` is the same share
gap over the `window` runs just before N: how far the system's routing already
was from the oracle's when the change came.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from flywheel.learners.base import described
from flywheel.learners.examples import LearningExample
from flywheel.eval.recovery import route_recovery
from flywheel.sim import (
    Environment,
    HumanReviewer,
    ModelUnavailable,
    OutcomeReporter,
    Scenario,
    TrafficGenerator,
    load_scenario,
    spec_mismatches,
)
from flywheel.learners.workflow_learner import WorkflowLearner
from flywheel.workflows.inputs import features_of
from flywheel.workflows.loading import load_dir, packaged_configs
from flywheel.workflows.reward import reward
from flywheel.workflows.spec import Objective, WorkflowSpec

GRADED_RIGHT, GRADED_WRONG = 0.825, 0.3  # mean graded score of a right / wrong report
TICKET_TOKENS_OUT = 23.0  # mean of randint(6, 40): a label's output tokens


@dataclass(slots=True)
class _Run:
    workflow: str
    x: dict[str, Any]
    arm: str
    propensity: float
    confidence: float
    cost: float
    latency_s: float
    gate: str | None
    tick: int


class ExpectedReward:
    """Expected reward of each model on a request at a tick: the oracle's knowledge."""

    def __init__(self, scenario: Scenario, environment: Environment):
        self.scenario = scenario
        self.environment = environment
        self._length = {
            wf: next((n for n in t.numbers if "length" in n), None) for wf, t in scenario.workflows.items()
        }

    def of(self, model: str, workflow: str, data: dict[str, Any], tick: int, objective: Objective) -> float:
        env = self.environment
        if not env.available(model, tick):
            return 0.0
        traffic = self.scenario.workflows[workflow]
        m = self.scenario.model(model)
        q = env.quality(model, workflow, env.category_of(workflow, data), tick)
        if traffic.labels:
            quality, tokens_out = q, TICKET_TOKENS_OUT * m.verbosity
        else:
            field = self._length[workflow]
            target = data.get(field) if field else None
            words = (float(target) if isinstance(target, (int, float)) else 300.0) * 1.025  # E[U(.8, 1.25)]
            quality, tokens_out = q * GRADED_RIGHT + (1 - q) * GRADED_WRONG, words * 1.35 * m.verbosity
        tokens_in = max(1, len(str(data.get(traffic.prompt_field, ""))) // 4)
        cost = (tokens_in * m.price.input_per_1k + tokens_out * m.price.output_per_1k) / 1000
        latency = m.latency.mean_s + tokens_out * m.latency.per_1k_output_s / 1000
        return reward(objective, quality=quality, cost=cost, latency_s=latency)


def run_sim(
    scenario: str | Path | Scenario,
    runs: int | None = None,
    seed: int = 0,
    *,
    learner: dict[str, Any] | None = None,
    workflows_dir: str | Path | None = None,
    window: int = 200,
    tolerance: float = 0.10,
    progress: Callable[[int], None] | None = None,
    trace: list[tuple[int, str, str, str, dict[str, float]]] | None = None,
) -> dict[str, Any]:
    """Run the benchmark; returns the JSON-ready result (see the module docstring).

    `seed` seeds the learners, and the world at the scenario's seed + `seed`;
    `learner`: extra keyword arguments of every WorkflowLearner; `progress` is called
    with the ticks done every 500 ticks; `trace`, when given, gets one
    (tick, workflow, system arm, oracle arm, expected reward of every arm) per run.
    """
    started = time.perf_counter()
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    world_seed = sc.seed + seed
    n_runs = sc.runs if runs is None else runs
    specs = _specs(sc, workflows_dir)
    env = Environment(sc, seed=world_seed)
    oracle_model = ExpectedReward(sc, env)
    reporter = OutcomeReporter(env, sc, seed=world_seed)
    reviewer = HumanReviewer(sc, seed=world_seed)
    learners = {wf: WorkflowLearner(spec, seed=seed, **(learner or {})) for wf, spec in specs.items()}
    gates = {wf: next(iter(spec.gates), None) for wf, spec in specs.items()}

    arms = {wf: spec.arms for wf, spec in specs.items()}
    totals = {wf: Counter() for wf in specs}  # "system", "oracle", "arm:<a>", realized "r:..."
    routes: dict[str, list[tuple[int, str, str]]] = {wf: [] for wf in specs}  # (tick, system arm, oracle arm)
    gate_stats = {wf: Counter() for wf in specs}
    span = max(1, -(-n_runs // 10))  # ticks per window of the gate's figures over time
    gate_windows: dict[str, list[Counter]] = {wf: [Counter() for _ in range(10)] for wf in specs}
    trajectory: dict[str, dict[str, list[tuple[int, float]]]] = {wf: {g: [] for g in s.gates} for wf, s in specs.items()}
    every = max(1, n_runs // 20)
    pending: dict[str, _Run] = {}
    seen: set[str] = set()
    duplicates = 0

    for req in TrafficGenerator(sc, seed=world_seed, runs=n_runs):
        wf, t = req.workflow, req.tick
        spec, lrn, tot = specs[wf], learners[wf], totals[wf]
        obj = spec.objective
        x = features_of(spec, req.input)
        choice = lrn.decide(x, req.key)
        expected = {a: oracle_model.of(a, wf, req.input, t, obj) for a in arms[wf]}
        best = max(arms[wf], key=expected.__getitem__)
        tot["system"] += expected[choice.arm]
        tot["oracle"] += expected[best]
        routes[wf].append((t, choice.arm, best))
        if trace is not None:
            trace.append((t, wf, choice.arm, best, expected))
        realized = {}
        for a in arms[wf]:
            try:
                r = env.respond(a, wf, req.input, t)
                realized[a] = (reward(obj, quality=r.score, cost=r.cost, latency_s=r.latency_s), r)
            except ModelUnavailable:
                realized[a] = (0.0, None)
            tot[f"arm:{a}"] += expected[a]
            tot[f"r:arm:{a}"] += realized[a][0]
        tot["r:system"] += realized[choice.arm][0]
        tot["r:oracle"] += realized[best][0]
        resp = realized[choice.arm][1]
        run_id = f"{req.key}/{wf}"
        if resp is None:
            gate_stats[wf]["failed"] += 1
            lrn.learn(LearningExample(x, choice.arm, choice.propensity, 0.0, 0.0, 0.0, None, None, gates[wf],
                                      decided_at=t))
        else:
            gate = gates[wf]
            human = None
            attended = gate is not None and resp.confidence < lrn.thresholds[gate].predict_one()
            if attended:
                human, _ = reviewer.review(req, resp.answer, resp.correct)
            for c in (gate_stats[wf], gate_windows[wf][t // span]):
                c["answered"] += 1
                c["human"] += attended
                c["overridden"] += human in ("reject", "edit")
                c["unattended"] += not attended
                c["unattended_wrong"] += not attended and not resp.correct
            override = human in ("reject", "edit")
            tot["r:system_with_overrides"] += realized[choice.arm][0] - (obj.override_penalty if override else 0.0)
            pending[run_id] = _Run(wf, x, choice.arm, choice.propensity, resp.confidence, resp.cost, resp.latency_s, gate, t)
            reporter.observe(t, run_id, req, resp.correct, resp.score, human)
        for event in reporter.due(t):
            if event.event_id in seen:
                duplicates += 1
                continue
            seen.add(event.event_id)
            run = pending.pop(event.run_id)
            learners[run.workflow].learn(
                LearningExample(
                    x=run.x, arm=run.arm, propensity=run.propensity, quality=float(event.quality or 0.0),
                    cost=run.cost, latency_s=run.latency_s, confidence=run.confidence,
                    correct=event.success, gate=run.gate, human_override=event.human_override,
                    decided_at=run.tick,
                )
            )
        if t % every == 0 or t == n_runs - 1:
            for name, each in learners.items():
                for gate_id, value in each.thresholds_now().items():
                    trajectory[name][gate_id].append((t, value))
        if progress is not None and (t + 1) % 500 == 0:
            progress(t + 1)

    result = _summarize(sc, specs, learners, totals, routes, gate_stats, trajectory, window, tolerance)
    for wf, windows in gate_windows.items():
        result["workflows"][wf]["gate_over_time"] = [
            {"from_run": i * span, "to_run": min(n_runs, (i + 1) * span),
             "human_share": round(w["human"] / max(1, w["answered"]), 4),
             "unattended_error_rate": round(w["unattended_wrong"] / max(1, w["unattended"]), 4)}
            for i, w in enumerate(windows) if w["answered"]
        ]
    result.update(
        runs=n_runs,
        seed=seed,
        world_seed=world_seed,
        outcomes={**reporter.counts, "duplicates_skipped": duplicates, "learned": len(seen),
                  "never_arrived_in_time": reporter.pending},
        learner_params=_effective_params(next(iter(learners.values()))),
        wall_s=round(time.perf_counter() - started, 2),
    )
    return result


def _effective_params(lrn: WorkflowLearner) -> dict[str, Any]:
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


def _specs(sc: Scenario, workflows_dir: str | Path | None) -> dict[str, WorkflowSpec]:
    directory = Path(workflows_dir) if workflows_dir is not None else packaged_configs() / "workflows"
    all_specs = load_dir(directory, WorkflowSpec)
    specs = {wf: all_specs[wf] for wf in sc.workflows}
    problems = [p for spec in specs.values() for p in spec_mismatches(sc, spec)]
    if problems:
        raise ValueError("scenario and workflows disagree:\n  " + "\n  ".join(problems))
    return specs


def _summarize(
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
