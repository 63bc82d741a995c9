"""A contextual bandit over any number of arms: per-arm logistic quality models on hashed
features, with a component shared by all arms, and epsilon-greedy exploration over
quality minus weighted cost.

Every outcome teaches the shared component (how hard a prompt is for everyone) and
its own arm's component (how much better or worse this arm does on it), so one
outcome informs the estimates of every arm. Updates are AdaGrad steps on the
logistic loss, touching only the prompt's non-zero features.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from flywheel.learners.features import HashedFeaturizer
from flywheel.workflows.routing import Choice, uniform

Featurized = tuple[np.ndarray, np.ndarray]


class LinearBandit:
    """Routes to the arm with the best predicted quality - cost_weight * cost.

    Parameters are stored as given; learned state starts with `_`.

    >>> import random
    >>> rng = random.Random(1)
    >>> bandit = LinearBandit(["weak", "strong"], HashedFeaturizer(n_bits=10), cost_weight=0.3, seed=7)
    >>> for i in range(3000):
    ...     hard = rng.random() < 0.5
    ...     x = {"prompt": "prove the theorem" if hard else "say hello"}
    ...     choice = bandit.decide(x, key=str(i))
    ...     correct = rng.random() < (0.9 if choice.arm == "strong" or not hard else 0.2)
    ...     bandit.learn_one(x, choice.arm, quality=float(correct),
    ...                      cost=1.0 if choice.arm == "strong" else 0.0, propensity=choice.propensity)
    >>> bandit.decide({"prompt": "prove the theorem"}, key="a").arm, bandit.decide({"prompt": "say hello"}, key="b").arm
    ('strong', 'weak')
    >>> p = bandit.predict_one({"prompt": "prove the theorem"})
    >>> p["strong"] > 0.8 > 0.4 > p["weak"]
    True
    """

    def __init__(
        self,
        arms: Sequence[str],
        featurizer: HashedFeaturizer | None = None,
        cost_weight: float = 0.0,
        latency_weight: float = 0.0,
        learning_rate: float = 0.5,
        shared: bool = True,
        epsilon: float = 0.2,
        epsilon_min: float = 0.02,
        epsilon_half_life: int = 2000,
        seed: int = 0,
    ):
        self.arms = list(arms)
        self.featurizer = featurizer if featurizer is not None else HashedFeaturizer()
        self.cost_weight = cost_weight
        self.latency_weight = latency_weight
        self.learning_rate = learning_rate
        self.shared = shared
        self.epsilon = epsilon
        self.epsilon_min = epsilon_min
        self.epsilon_half_life = epsilon_half_life
        self.seed = seed
        d = self.featurizer.n_features
        # Row 0: the shared component; row 1 + i: arm i's own component.
        self._w = np.zeros((1 + len(self.arms), d))
        self._g = np.full((1 + len(self.arms), d), 1e-6)
        self._index = {a: i for i, a in enumerate(self.arms)}
        self._n = np.zeros(len(self.arms))
        self._cost = np.zeros(len(self.arms))
        self._latency = np.zeros(len(self.arms))
        self._t = 0
        self._boost_until = 0
        self._boost_epsilon = 0.0

    # -- arms --------------------------------------------------------------

    def add_arm(self, arm: str) -> None:
        """Start routing to a new arm (its own component starts at zero)."""
        if arm in self._index:
            return
        self._index[arm] = len(self.arms)
        self.arms.append(arm)
        d = self._w.shape[1]
        self._w = np.vstack([self._w, np.zeros((1, d))])
        self._g = np.vstack([self._g, np.full((1, d), 1e-6)])
        self._n = np.append(self._n, 0.0)
        self._cost = np.append(self._cost, 0.0)
        self._latency = np.append(self._latency, 0.0)

    # -- exploration -------------------------------------------------------

    @property
    def exploration(self) -> float:
        """The current epsilon: decays with events seen, raised for a while after drift."""
        base = self.epsilon_min + (self.epsilon - self.epsilon_min) * 0.5 ** (
            self._t / max(1, self.epsilon_half_life)
        )
        if self._t < self._boost_until:
            return max(base, self._boost_epsilon)
        return base

    def boost_exploration(self, epsilon: float, events: int, arm: str | None = None) -> None:
        """Explore at least `epsilon` for the next `events` updates (after a drift).

        With `arm`, that arm's own learning rate is restored too, so its estimate
        can move as fast as when it was new.
        """
        self._boost_epsilon = max(epsilon, self._boost_epsilon if self._t < self._boost_until else 0.0)
        self._boost_until = max(self._boost_until, self._t + events)
        if arm is not None and arm in self._index:
            i = 1 + self._index[arm]
            self._g[i] = np.minimum(self._g[i], 1.0)

    # -- prediction --------------------------------------------------------

    def featurize(self, x: Mapping[str, Any]) -> Featurized:
        return self.featurizer.transform_one(x)

    def _logits(self, f: Featurized, rows: np.ndarray | None = None) -> np.ndarray:
        idx, val = f
        w = self._w[:, idx] @ val
        arm_logits = w[1:] if rows is None else w[1:][rows]
        return arm_logits + (w[0] if self.shared else 0.0)

    def predict_featurized(self, f: Featurized) -> np.ndarray:
        """Predicted quality of every arm, in `self.arms` order."""
        return 1.0 / (1.0 + np.exp(-np.clip(self._logits(f), -30, 30)))

    def predict_one(self, x: Mapping[str, Any]) -> dict[str, float]:
        """Predicted quality (probability of success) of each arm."""
        return dict(zip(self.arms, self.predict_featurized(self.featurize(x)).tolist()))

    def scores_featurized(self, f: Featurized) -> np.ndarray:
        """Predicted objective of each arm: quality - cost_weight*cost - latency_weight*latency."""
        return (
            self.predict_featurized(f)
            - self.cost_weight * self._cost
            - self.latency_weight * self._latency
        )

    def decide_featurized(self, f: Featurized, key: str, arms: Sequence[str] | None = None) -> Choice:
        names = self.arms if arms is None else [a for a in arms if a in self._index] or list(arms)
        known = [a for a in names if a in self._index]
        if not known:  # arms this bandit has never heard of: uniform
            return Choice(arm=names[int(uniform(self.seed, key) * len(names))], propensity=1 / len(names),
                          scores={a: 0.0 for a in names})
        all_scores = self.scores_featurized(f)
        scores = {a: float(all_scores[self._index[a]]) for a in known}
        best = max(known, key=scores.__getitem__)
        eps = self.exploration
        k = len(known)
        u = uniform(self.seed, key)
        arm = known[min(k - 1, int(u / eps * k))] if u < eps else best
        propensity = eps / k + (1.0 - eps if arm == best else 0.0)
        return Choice(arm=arm, propensity=propensity, scores=scores)

    def decide(self, x: Mapping[str, Any], key: str, arms: Sequence[str] | None = None) -> Choice:
        """Choose an arm for x; the same (state, key) always gives the same choice."""
        return self.decide_featurized(self.featurize(x), key, arms)

    # -- learning ----------------------------------------------------------

    def learn_featurized(
        self, f: Featurized, arm: str, quality: float, cost: float = 0.0, latency_s: float = 0.0
    ) -> None:
        if arm not in self._index:
            self.add_arm(arm)
        i = self._index[arm]
        idx, val = f
        p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, float(self._logits(f, np.array([i]))[0])))))
        grad = (p - quality) * val
        g2 = grad * grad
        rows = (0, 1 + i) if self.shared else (1 + i,)
        for r in rows:
            self._g[r, idx] += g2
            self._w[r, idx] -= self.learning_rate * grad / np.sqrt(self._g[r, idx])
        self._update_means(i, cost, latency_s)

    def learn_one(
        self,
        x: Mapping[str, Any],
        arm: str,
        quality: float,
        cost: float = 0.0,
        latency_s: float = 0.0,
        propensity: float = 1.0,
    ) -> None:
        """Learn from one outcome of `arm` on x (quality in [0, 1]).

        The quality model is a direct model of each arm given x; since the policy
        chose on x alone, it needs no importance weight (`propensity` is accepted
        for the protocol and for estimators that do).
        """
        self.learn_featurized(self.featurize(x), arm, quality, cost, latency_s)

    def learn_many(
        self,
        batch: Sequence[Featurized],
        arms: Sequence[str],
        quality: Sequence[float],
        cost: Sequence[float],
        latency_s: Sequence[float] | None = None,
    ) -> None:
        """One mini-batch step: gradients from the batch's predictions, applied together."""
        if not batch:
            return
        for a in set(arms):
            if a not in self._index:
                self.add_arm(a)
        arm_i = np.array([self._index[a] for a in arms])
        lengths = np.array([len(f[0]) for f in batch])
        idx = np.concatenate([f[0] for f in batch])
        val = np.concatenate([f[1] for f in batch])
        owner = np.repeat(np.arange(len(batch)), lengths)
        rows = np.repeat(1 + arm_i, lengths)
        contrib = self._w[rows, idx] * val + (self._w[0, idx] * val if self.shared else 0.0)
        logits = np.bincount(owner, weights=contrib, minlength=len(batch))
        p = 1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))
        grad = (p - np.asarray(quality, dtype=float))[owner] * val
        d = self._w.shape[1]
        targets = [rows] + ([np.zeros_like(rows)] if self.shared else [])
        gflat = self._g.reshape(-1)
        wflat = self._w.reshape(-1)
        for r in targets:
            touched, where = np.unique(r * d + idx, return_inverse=True)
            gflat[touched] += np.bincount(where, weights=grad * grad, minlength=len(touched))
            gs = np.bincount(where, weights=grad, minlength=len(touched))
            wflat[touched] -= self.learning_rate * gs / np.sqrt(gflat[touched])
        lat = latency_s if latency_s is not None else [0.0] * len(batch)
        for i, c, l in zip(arm_i, cost, lat):
            self._update_means(int(i), c, l)

    def _update_means(self, i: int, cost: float, latency_s: float) -> None:
        self._n[i] += 1
        rate = max(1.0 / self._n[i], 0.01)  # a running mean that keeps tracking after 100 events
        self._cost[i] += rate * (cost - self._cost[i])
        self._latency[i] += rate * (latency_s - self._latency[i])
        self._t += 1

    # -- inspection --------------------------------------------------------

    @property
    def n_updates(self) -> int:
        return self._t

    def arm_stats(self) -> dict[str, dict[str, float]]:
        """Per arm: outcomes learned, mean cost, mean latency."""
        return {
            a: {"n": float(self._n[i]), "cost": float(self._cost[i]), "latency_s": float(self._latency[i])}
            for a, i in self._index.items()
        }

    def __repr__(self) -> str:
        return (
            f"LinearBandit(arms={self.arms}, cost_weight={self.cost_weight}, "
            f"learning_rate={self.learning_rate}, epsilon={self.epsilon}, seed={self.seed})"
        )
