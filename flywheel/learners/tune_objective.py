"""What a Tune trial computes: a candidate's estimated reward under the workflow's constraints.

`TuneData` is one workflow's data window (logged runs after the champion's
position, the champion's policy state, the reward model's predictions); a
`SearchSpace` holds the bounds the governance policy and the spec allow for the
cost weight, exploration and each gate threshold; `run_trial` evaluates one
candidate chunk by chunk, reporting after each chunk so that a scheduler can stop
a poor trial early. The score is the doubly robust estimate, less a penalty per
unit of constraint violated (human share, unattended error rate).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from flywheel.learners.counterfactual import (
    Candidate, Evaluation, Evaluator, RewardModel, candidate_state, featurize, predictions,
)
from flywheel.learners.examples import LearningExample
from flywheel.learners.linear_bandit import Featurized
from flywheel.learners.state import loads_policy
from flywheel.registry.policy import WorkflowPolicy
from flywheel.workflows.spec import WorkflowSpec

PENALTY = 10.0  # reward lost per unit of a constraint violated


@dataclass(frozen=True, slots=True)
class Constraints:
    """Most of the answered runs a human may see, and the highest error rate left unattended."""

    max_human_share: float
    max_unattended_error: float

    def violation(self, ev: Evaluation) -> float:
        """How far `ev` is outside the constraints (0 inside)."""
        return max(0.0, ev.human_share - self.max_human_share) + max(
            0.0, ev.unattended_error - self.max_unattended_error
        )


@dataclass(frozen=True, slots=True)
class SearchSpace:
    """Bounds of each tuned parameter, keyed by its config path (`cost_weight`, `routing.exploration`,
    `thresholds.<gate>`)."""

    bounds: dict[str, tuple[float, float]]

    @classmethod
    def of(cls, spec: WorkflowSpec, policy: WorkflowPolicy, cost_span: float = 4.0,
           champion: Mapping[str, float] | None = None) -> "SearchSpace":
        """The space the governance policy and the spec allow; the cost weight spans the spec's
        objective times 1/cost_span..cost_span where the policy sets no bounds.

        With the `champion`'s point, a parameter the policy freezes stays at the champion's
        value, and one with a `max_step` within that step of it: the governor would refuse
        (frozen) or clip (step) anything else, so the search looks only where a proposal
        goes through as searched."""
        cw = spec.objective.cost_weight
        defaults = {
            "cost_weight": (cw / cost_span, cw * cost_span) if cw > 0 else (0.0, 1.0),
            "routing.exploration": (0.0, 0.5),
        }
        tb = spec.targets.threshold_bounds
        for gate in spec.gates:
            defaults[f"thresholds.{gate}"] = (tb.low, tb.high)
        bounds = {}
        for path, (low, high) in defaults.items():
            rule = policy.rule_for(path)[1]
            low = max(low, rule.min) if rule.min is not None else low
            high = min(high, rule.max) if rule.max is not None else high
            at = champion.get(path) if champion is not None else None
            if at is not None and rule.autonomy == "frozen":
                low = high = float(at)
            elif at is not None and rule.max_step is not None:
                low, high = max(low, at - rule.max_step), min(high, at + rule.max_step)
            bounds[path] = (low, max(low, high))
        return cls(bounds)

    def fixed(self) -> dict[str, float]:
        """The parameters the search may not move (a single value), at their value."""
        return {k: lo for k, (lo, hi) in self.bounds.items() if hi <= lo}

    def free(self) -> dict[str, tuple[float, float]]:
        """The parameters the search moves, with their bounds."""
        return {k: b for k, b in self.bounds.items() if b[1] > b[0]}

    def candidate(self, point: Mapping[str, float]) -> Candidate:
        """The candidate of a point of the space (each value clipped into its bounds)."""
        v = {k: min(hi, max(lo, float(point[k]))) for k, (lo, hi) in self.bounds.items()}
        return Candidate(
            cost_weight=v["cost_weight"],
            exploration=v["routing.exploration"],
            thresholds={k.split(".", 1)[1]: x for k, x in v.items() if k.startswith("thresholds.")},
        )


@dataclass(slots=True)
class TuneData:
    """One workflow's data window and the champion a candidate changes."""

    spec: WorkflowSpec
    examples: list[LearningExample]
    base_state: bytes  # the champion's policy state
    constraints: Constraints
    first_position: int = 0
    last_position: int = 0
    predicted: list[dict[str, float]] = field(default_factory=list)
    featurized: list[Featurized] = field(default_factory=list)

    def __post_init__(self) -> None:
        base = loads_policy(self.base_state)
        if not self.predicted:
            self.predicted = predictions(RewardModel(base, self.spec.objective), self.examples, self.spec.arms)
        if not self.featurized:
            self.featurized = featurize(base, self.examples)


def score(ev: Evaluation, constraints: Constraints) -> float:
    """What the search maximizes: the doubly robust estimate less the constraint penalty."""
    return ev.dr.value - PENALTY * constraints.violation(ev)


def metrics(ev: Evaluation, constraints: Constraints) -> dict[str, float]:
    """A trial's report: score, estimates with their intervals, constraints."""
    return {
        "score": score(ev, constraints),
        "estimate": ev.dr.value,
        "estimate_low": ev.dr.low,
        "estimate_high": ev.dr.high,
        "ips": ev.ips.value,
        "snips": ev.snips.value,
        "human_share": ev.human_share,
        "unattended_error": ev.unattended_error,
        "feasible": float(constraints.violation(ev) == 0.0),
        "n": float(ev.n),
    }


def run_trial(
    point: Mapping[str, float],
    data: TuneData,
    space: SearchSpace,
    report: Callable[[dict[str, Any]], None],
    chunks: int = 4,
) -> dict[str, float]:
    """Evaluate the candidate at `point` on the window, `report`ing after each of `chunks` parts."""
    cand = space.candidate(point)
    policy = loads_policy(candidate_state(data.base_state, cand, data.spec))
    ev = Evaluator(policy, cand.thresholds, data.spec)
    n = len(data.examples)
    step = max(1, -(-n // chunks))
    out: dict[str, float] = {}
    for start in range(0, max(n, 1), step):
        part = slice(start, start + step)
        ev.learn_many(data.examples[part], data.predicted[part], data.featurized[part])
        out = metrics(ev.result(), data.constraints)
        report(out)
    return out


def evaluate_point(point: Mapping[str, float], data: TuneData, space: SearchSpace) -> dict[str, float]:
    """The final metrics of one candidate (no intermediate reports)."""
    return run_trial(point, data, space, lambda _m: None, chunks=1)

