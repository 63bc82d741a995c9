"""Counterfactual evaluation of a candidate config on logged runs, as a replica would serve it.

A candidate is the champion's routing policy with another cost weight and
exploration, and other gate thresholds. Its policy state is built here
(`candidate_state`) and loaded back with `loads_policy`, exactly as a replica
loads a version; every probability comes from that RoutingPolicy's `probability`.

The gate is counterfactual too. Under thresholds t a logged answer with
confidence c would have gone to a human when c < t; the model of the human step
is that a human overrides exactly the wrong answers (override penalty paid), so a
run's reward under t is the objective's reward of its quality, cost and latency,
less the override penalty when it would have been attended and was wrong. Its
constraints follow from the same model: the share of answered runs sent to a
human, and the error rate among the answered runs left unattended (both
self-normalized importance-weighted means).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from flywheel.learners.estimators import IPS, SNIPS, DoublyRobust, Estimate
from flywheel.learners.examples import LearningExample
from flywheel.learners.linear_bandit import Featurized
from flywheel.learners.routing_policy import RoutingPolicy
from flywheel.learners.state import dumps_policy, loads_policy
from flywheel.workflows.reward import reward
from flywheel.workflows.spec import Objective, WorkflowSpec


@dataclass(frozen=True, slots=True)
class Candidate:
    """What the tuner may change: the router's cost weight, its exploration, the gate thresholds."""

    cost_weight: float
    exploration: float
    thresholds: dict[str, float] = field(default_factory=dict)


def candidate_state(base_state: bytes, candidate: Candidate, spec: WorkflowSpec) -> bytes:
    """The policy state a version of `candidate` carries: the base policy's, re-weighted and re-explored."""
    policy = loads_policy(base_state)
    scale = spec.objective.quality_weight if spec.objective.quality_weight > 0 else 1.0
    policy.bandit.cost_weight = candidate.cost_weight / scale  # as WorkflowLearner sets it
    policy.bandit.set_exploration(candidate.exploration)
    return dumps_policy(policy)


class RewardModel:
    """The direct model of the doubly robust estimate: each arm's objective reward predicted by a
    learned bandit (predicted quality, cost and latency; the gate left to the residual)."""

    def __init__(self, policy: RoutingPolicy, objective: Objective):
        self.bandit = policy.bandit
        self.objective = objective

    def predict(self, x: Mapping, arms: Sequence[str]) -> dict[str, float]:
        b, o = self.bandit, self.objective
        f = b.featurize(x)
        quality = b.predict_featurized(f)
        cost, latency = b.costs_featurized(f)
        out = {}
        for a in arms:
            if a not in b.arms:
                out[a] = 0.0
                continue
            i = b.arms.index(a)
            out[a] = float(o.quality_weight * quality[i] - o.cost_weight * cost[i] - o.latency_weight * latency[i])
        return out


def attended(ex: LearningExample, thresholds: Mapping[str, float]) -> bool:
    """Whether the run's answer would have gone to a human under `thresholds`."""
    if ex.confidence is None or ex.gate is None or ex.gate not in thresholds:
        return False
    return ex.confidence < thresholds[ex.gate]


def gate_reward(ex: LearningExample, thresholds: Mapping[str, float], objective: Objective) -> float:
    """The run's reward had its answer met the gate at `thresholds` (see the module docstring)."""
    override = attended(ex, thresholds) and ex.correct is False
    return reward(objective, quality=ex.quality, cost=ex.cost, latency_s=ex.latency_s, human_override=override)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A candidate's estimated value (three estimators) and its constraints on the same log."""

    ips: Estimate
    snips: Estimate
    dr: Estimate
    human_share: float
    unattended_error: float
    n: int


class Ratio:
    """A self-normalized weighted share: sum(w * hit) / sum(w) over the runs it counts."""

    def __init__(self) -> None:
        self.num = 0.0
        self.den = 0.0

    def add(self, w: float, hit: bool) -> None:
        self.num += w * hit
        self.den += w

    def value(self) -> float:
        return self.num / self.den if self.den > 0 else 0.0


def featurize(policy: RoutingPolicy, examples: Sequence[LearningExample]) -> list[Featurized]:
    """Each logged run's features under `policy`'s featurizer: a candidate built on the same base
    state (`candidate_state`) featurizes alike, so a search computes them once."""
    return [policy.bandit.featurize(ex.x) for ex in examples]


def predictions(model: RewardModel, examples: Sequence[LearningExample], arms: Sequence[str]) -> list[dict[str, float]]:
    """The reward model's prediction of every arm on each logged run (the same for every candidate)."""
    return [model.predict(ex.x, arms) for ex in examples]


class Evaluator:
    """A candidate's evaluation, fed chunk by chunk (`learn_many`), readable at any time (`result`)."""

    def __init__(self, policy: RoutingPolicy, thresholds: Mapping[str, float], spec: WorkflowSpec):
        self.policy = policy
        self.thresholds = dict(thresholds)
        self.spec = spec
        self.arms = list(spec.arms)
        self.ips, self.snips, self.dr = IPS(), SNIPS(), DoublyRobust()
        self.human, self.error = Ratio(), Ratio()

    def learn_many(
        self,
        examples: Sequence[LearningExample],
        predicted: Sequence[Mapping[str, float]] | None = None,
        featurized: Sequence[Featurized] | None = None,
    ) -> None:
        """Add logged runs; `predicted`: the reward model's predictions of each, `featurized`: each
        run's features as the policy's bandit makes them (`featurize`; the same for every candidate)."""
        zero = {a: 0.0 for a in self.arms}
        for i, ex in enumerate(examples):
            if ex.propensity <= 0:
                continue
            target = self.policy.probabilities(ex.x, self.arms, featurized[i] if featurized is not None else None)
            p = target.get(ex.arm, 0.0)
            r = gate_reward(ex, self.thresholds, self.spec.objective)
            self.ips.add(p, ex.propensity, r)
            self.snips.add(p, ex.propensity, r)
            self.dr.add(target, ex.arm, ex.propensity, r, predicted[i] if predicted is not None else zero)
            if ex.confidence is not None:
                w = p / ex.propensity
                to_human = attended(ex, self.thresholds)
                self.human.add(w, to_human)
                if not to_human and ex.correct is not None:
                    self.error.add(w, not ex.correct)

    def result(self, level: float = 0.95) -> Evaluation:
        ips = self.ips.estimate(level)
        return Evaluation(
            ips=ips,
            snips=self.snips.estimate(level),
            dr=self.dr.estimate(level),
            human_share=self.human.value(),
            unattended_error=self.error.value(),
            n=ips.n,
        )


def evaluate(
    examples: Sequence[LearningExample],
    policy: RoutingPolicy,
    thresholds: Mapping[str, float],
    spec: WorkflowSpec,
    predicted: Sequence[Mapping[str, float]] | None = None,
    level: float = 0.95,
) -> Evaluation:
    """Estimate the mean reward of routing with `policy` and gating at `thresholds` on the logged runs.

    `predicted`: the reward model's predictions of each run (`predictions`), for the
    doubly robust estimate; without them it is IPS with a zero model.
    """
    ev = Evaluator(policy, thresholds, spec)
    ev.learn_many(examples, predicted)
    return ev.result(level)
