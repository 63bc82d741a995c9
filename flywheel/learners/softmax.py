"""A fixed softmax routing policy: a weight per arm, no learning."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from flywheel.workflows.routing import Choice, sample, uniform


class SoftmaxPolicy:
    """Chooses an arm with probability proportional to exp(weight / temperature).

    Parameters are stored as given; nothing is learned. The choice for a key is
    reproducible: the same (seed, key) draws the same arm, on any replica.

    >>> policy = SoftmaxPolicy({"fast": 1.0, "strong": 0.0}, temperature=1.0, seed=42)
    >>> probs = policy.predict_proba_one({})
    >>> round(probs["fast"], 4), round(probs["strong"], 4)
    (0.7311, 0.2689)
    >>> picks = [policy.decide({}, key=f"run-{i}", arms=["fast", "strong"]).arm for i in range(1000)]
    >>> picks.count("fast")
    740
    >>> policy.decide({}, "run-7", ["fast", "strong"]) == policy.decide({}, "run-7", ["fast", "strong"])
    True
    """

    def __init__(self, weights: Mapping[str, float], temperature: float = 1.0, seed: int = 0):
        self.weights = dict(weights)
        self.temperature = temperature
        self.seed = seed

    def predict_proba_one(
        self, x: Mapping[str, Any], arms: Sequence[str] | None = None
    ) -> dict[str, float]:
        """Probability of each arm (the context is ignored)."""
        arms = list(arms) if arms is not None else list(self.weights)
        logits = [self.weights.get(a, 0.0) / self.temperature for a in arms]
        top = max(logits)
        exps = [math.exp(v - top) for v in logits]
        total = sum(exps)
        return {a: e / total for a, e in zip(arms, exps)}

    def decide(self, x: Mapping[str, Any], key: str, arms: Sequence[str]) -> Choice:
        probs = self.predict_proba_one(x, arms)
        arm = sample(probs, uniform(self.seed, key))
        return Choice(
            arm=arm,
            propensity=probs[arm],
            scores={a: self.weights.get(a, 0.0) for a in arms},
        )

    def __repr__(self) -> str:
        return f"SoftmaxPolicy(weights={self.weights}, temperature={self.temperature}, seed={self.seed})"
