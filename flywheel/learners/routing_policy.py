"""The one decision object: what a workflow's runs are routed with, by the learner and by every replica.

A RoutingPolicy is the bandit plus the circuit breaker's verdict: the arms that are
down, each probed with its own probability, and the rest routed by the bandit. The
WorkflowLearner decides through a RoutingPolicy over its live bandit; a version
carries a RoutingPolicy's state (flywheel.learners.state), and router and ingress
replicas decide with the RoutingPolicy loaded from it. Same code, same state, same
arms and propensities.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from flywheel.learners.linear_bandit import Featurized, LinearBandit
from flywheel.workflows.routing import Choice, uniform


class RoutingPolicy:
    """Probes the arms that are down, else routes with the bandit over the arms that are up.

    Parameters are stored as given: `bandit`, `probes` (arm -> probability of probing
    it on a run) and `seed` (of the probe draw; the bandit has its own).

    >>> from flywheel.learners.features import HashedFeaturizer
    >>> bandit = LinearBandit(["a", "b"], HashedFeaturizer(n_bits=8), seed=1)
    >>> policy = RoutingPolicy(bandit, probes={"b": 0.02}, seed=1)
    >>> picks = [policy.decide({"prompt": "hi"}, key=str(i), arms=["a", "b"]) for i in range(1000)]
    >>> sum(c.arm == "b" for c in picks), {c.propensity for c in picks if c.arm == "b"}
    (19, {0.02})
    >>> policy.probability({"prompt": "hi"}, "a", ["a", "b"])
    0.98
    >>> policy.probabilities({"prompt": "hi"}, ["a", "b"])
    {'a': 0.98, 'b': 0.02}
    """

    def __init__(self, bandit: LinearBandit, probes: Mapping[str, float] | None = None, seed: int = 0):
        self.bandit = bandit
        self.probes = dict(probes or {})
        self.seed = seed

    def decide(self, x: Mapping[str, Any], key: str, arms: Sequence[str] | None = None) -> Choice:
        """The choice for x (the run id as key): a probe of a down arm, else the bandit's over the arms up.

        The choice's scores are every arm's (the down ones' too), so a trace shows them all.
        """
        b = self.bandit
        names = list(b.arms) if arms is None else list(arms)
        probes = {a: q for a, q in self.probes.items() if a in names}
        if not probes:
            return b.decide(x, key, None if names == b.arms else names)
        f = b.featurize(x)
        up = [a for a in names if a not in probes]
        u = uniform(self.seed, f"{key}/probe")
        if not up:  # everything is down: try one at random
            arm = list(probes)[min(len(probes) - 1, int(u * len(probes)))]
            return Choice(arm=arm, propensity=1.0 / len(probes), scores=self._scores(f, names))
        acc = 0.0
        for arm, q in probes.items():
            acc += q
            if u < acc:
                return Choice(arm=arm, propensity=q, scores=self._scores(f, names))
        c = b.decide_featurized(f, key, up)
        return Choice(arm=c.arm, propensity=c.propensity * (1.0 - acc), scores={**self._scores(f, probes), **c.scores})

    def _scores(self, f: Any, names: Sequence[str]) -> dict[str, float]:
        """The bandit's score of each of `names` on f (0.0 for an arm it has never heard of)."""
        b = self.bandit
        values = b.scores_featurized(f).tolist()
        return {a: values[b.arms.index(a)] if a in b.arms else 0.0 for a in names}

    def probability(self, x: Mapping[str, Any], arm: str, arms: Sequence[str] | None = None) -> float:
        """The probability that `decide` picks `arm` for x (over `arms`)."""
        names = list(self.bandit.arms) if arms is None else list(arms)
        probes = {a: q for a, q in self.probes.items() if a in names}
        up = [a for a in names if a not in probes]
        if arm in probes:
            return probes[arm] if up else 1.0 / len(probes)
        if arm not in up:
            return 0.0
        b = self.bandit
        return (1.0 - sum(probes.values())) * b.probability_featurized(b.featurize(x), arm, up)

    def probabilities(
        self, x: Mapping[str, Any], arms: Sequence[str] | None = None, featurized: Featurized | None = None
    ) -> dict[str, float]:
        """`probability` of every arm of `arms` for x, the policy computed once (off-policy evaluation).

        `featurized`: x as this policy's bandit featurizes it, when the caller has it already."""
        names = list(self.bandit.arms) if arms is None else list(arms)
        probes = {a: q for a, q in self.probes.items() if a in names}
        up = [a for a in names if a not in probes]
        b = self.bandit
        if not up:
            return {a: 1.0 / len(probes) for a in names}
        f = featurized if featurized is not None else b.featurize(x)
        rest = 1.0 - sum(probes.values())
        bandit = b.probabilities_featurized(f, up)
        return {a: probes[a] if a in probes else rest * bandit[a] for a in names}

    @property
    def exploration(self) -> float:
        """The bandit's current epsilon."""
        return self.bandit.exploration

    def __repr__(self) -> str:
        return f"RoutingPolicy(bandit={self.bandit!r}, probes={self.probes}, seed={self.seed})"
