"""Logged runs from the simulator, and the true value of a candidate there.

`simulate_log` routes one workflow's simulated traffic with a fixed policy or a
learning WorkflowLearner (the logging policy) and returns the runs as the ledger would
give them (LearningExample: features, arm, logged propensity, outcome). `true_value`
gives what off-policy estimates are checked against: a candidate policy's mean
reward on fresh traffic of the same world, every arm's response weighted by the
candidate's probability of it (no sampling noise from the routing draw), with the
gate and human step modelled as in flywheel.learners.counterfactual.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from flywheel.learners.counterfactual import attended, gate_reward
from flywheel.learners.examples import LearningExample
from flywheel.learners.routing_policy import RoutingPolicy
from flywheel.learners.workflow_learner import WorkflowLearner
from flywheel.sim import Environment, ModelUnavailable, Scenario, TrafficGenerator, load_scenario
from flywheel.workflows.inputs import features_of
from flywheel.workflows.loading import load_dir, packaged_configs
from flywheel.workflows.spec import WorkflowSpec

EVAL_SEED_OFFSET = 1_000_003  # traffic of the truth: another stream than the logged ones
TRAFFIC_SEED_STEP = 7919  # traffic seed of log `seed`: world seed + seed * step


@dataclass(slots=True)
class SimLog:
    """One workflow's logged runs in a simulated world, and what the truth needs."""

    scenario: Scenario
    spec: WorkflowSpec
    world_seed: int
    examples: list[LearningExample]


def packaged_spec(name: str) -> WorkflowSpec:
    """A workflow spec of the packaged configs."""
    return load_dir(packaged_configs() / "workflows", WorkflowSpec)[name]


def _example(spec: WorkflowSpec, env: Environment, x: dict, arm: str, propensity: float,
             data: dict[str, Any], tick: int, gate: str | None) -> LearningExample:
    try:
        r = env.respond(arm, spec.name, data, tick)
    except ModelUnavailable:
        return LearningExample(x, arm, propensity, 0.0, 0.0, 0.0, None, None, gate, decided_at=tick)
    return LearningExample(x, arm, propensity, quality=r.score, cost=r.cost, latency_s=r.latency_s,
                           confidence=r.confidence, correct=r.correct, gate=gate, decided_at=tick)


def simulate_log(
    scenario: str | Scenario,
    workflow: str,
    runs: int,
    seed: int = 0,
    *,
    world: int = 0,
    policy: RoutingPolicy | None = None,
    learner: WorkflowLearner | None = None,
) -> SimLog:
    """Route `runs` ticks of traffic (the workflow's share of them) and log every run.

    With `policy`, a fixed policy routes (a champion serving: its log is out of
    sample for it); else `learner` (a fresh WorkflowLearner if None) routes and
    learns from each run as it goes. The world is the scenario's at its seed + `world`
    (the same world for every `seed`); `seed` draws the traffic and seeds a fresh learner.
    """
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    spec = packaged_spec(workflow)
    world_seed = sc.seed + world
    env = Environment(sc, seed=world_seed)
    lrn = learner if learner is not None or policy is not None else WorkflowLearner(spec, seed=seed)
    gate = next(iter(spec.gates), None)
    out = []
    for req in TrafficGenerator(sc, seed=world_seed + TRAFFIC_SEED_STEP * seed, runs=runs):
        if req.workflow != workflow:
            continue
        x = features_of(spec, req.input)
        choice = policy.decide(x, req.key, spec.arms) if policy is not None else lrn.decide(x, req.key)
        ex = _example(spec, env, x, choice.arm, choice.propensity, req.input, req.tick, gate)
        if policy is None:
            lrn.learn(ex)
        out.append(ex)
    return SimLog(scenario=sc, spec=spec, world_seed=world_seed, examples=out)


@dataclass(frozen=True, slots=True)
class Truth:
    """A candidate's true mean reward and constraints on fresh simulated traffic."""

    value: float
    human_share: float
    unattended_error: float
    runs: int


class TruthTable:
    """Every arm's response to fresh traffic of a log's world, computed once: the truth of any candidate."""

    def __init__(self, log: SimLog, runs: int = 5000):
        sc, spec = log.scenario, log.spec
        env = Environment(sc, seed=log.world_seed)
        self.spec = spec
        self.gate = next(iter(spec.gates), None)
        self.rows: list[tuple[dict, dict[str, LearningExample]]] = []
        for req in TrafficGenerator(sc, seed=log.world_seed + EVAL_SEED_OFFSET, runs=runs):
            if req.workflow != spec.name:
                continue
            x = features_of(spec, req.input)
            self.rows.append((x, {a: _example(spec, env, x, a, 1.0, req.input, req.tick, self.gate)
                                  for a in spec.arms}))

    def value(self, policy: RoutingPolicy, thresholds: Mapping[str, float]) -> Truth:
        """The mean reward and constraints of routing with `policy` and gating at `thresholds`."""
        arms = list(self.spec.arms)
        total = human = answered = wrong = unattended = 0.0
        for x, responses in self.rows:
            for arm, p in policy.probabilities(x, arms).items():
                if p <= 0:
                    continue
                ex = responses[arm]
                total += p * gate_reward(ex, thresholds, self.spec.objective)
                if ex.confidence is None:
                    continue
                answered += p
                to_human = attended(ex, thresholds)
                human += p * to_human
                if not to_human:
                    unattended += p
                    wrong += p * (not ex.correct)
        return Truth(
            value=total / max(1, len(self.rows)),
            human_share=human / answered if answered else 0.0,
            unattended_error=wrong / unattended if unattended else 0.0,
            runs=len(self.rows),
        )


def true_value(log: SimLog, policy: RoutingPolicy, thresholds: Mapping[str, float], runs: int = 5000) -> Truth:
    """The mean reward of routing with `policy` and gating at `thresholds` in the log's world."""
    return TruthTable(log, runs).value(policy, thresholds)
