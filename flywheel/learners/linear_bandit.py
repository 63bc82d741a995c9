"""A contextual bandit over any number of arms: per-arm logistic quality models on hashed
features, with a component shared by all arms, and epsilon-greedy exploration over
quality minus weighted cost.

Every outcome teaches the shared component (how hard a prompt is for everyone) and
its own arm's component (how much better or worse this arm does on it), so one
outcome informs the estimates of every arm.

Two solvers. `adagrad`: AdaGrad steps on the logistic loss, touching only the
prompt's non-zero features. `laplace`: online Bayesian logistic regression (a
Gaussian posterior per row, updated by one Newton step per outcome: Chapelle & Li,
"An Empirical Evaluation of Thompson Sampling", 2011), diagonal over the hashed
slots and with a full covariance over the featurizer's dense block (text statistics,
embeddings), whose features are strongly correlated. Its steps shrink as evidence
accumulates, like a running mean, so the quality level of every arm settles within a
few dozen outcomes, and it knows how uncertain each prediction is: with `ucb` > 0 an
arm is scored at its predicted quality plus `ucb` posterior standard deviations, so
arms the bandit knows little about on this kind of prompt are tried (optimism).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from flywheel.learners.adagrad import AdaGrad
from flywheel.learners.cost_model import CostModel
from flywheel.learners.examples import CEILINGS, within
from flywheel.learners.features import Features, HashedFeaturizer
from flywheel.learners.laplace import Laplace
from flywheel.workflows.routing import Choice, uniform

Featurized = Features
COST_MODELS = ("linear", "mean")


class LinearBandit:
    """Routes to the arm with the best predicted quality - cost_weight * cost.

    Parameters are stored as given; learned state starts with `_`.

    solver
        What fits the quality models, passed in like River's optimizers:
        `AdaGrad(learning_rate)` (flywheel.learners.adagrad; the default) or
        `Laplace(learning_rate, prior_var, forgetting)` (flywheel.learners.laplace: online
        Bayesian logistic regression, which knows how uncertain each prediction is).
        The solver holds no state of its own: the bandit holds it (`init_state`).
    ucb
        laplace only: score each arm at its predicted quality plus `ucb` posterior
        standard deviations of it (optimism where the bandit knows little).
    cost_model
        "linear": each arm's cost and latency predicted per input from its size
        features (flywheel.learners.cost_model); "mean": each arm's running mean.
    explore_z
        laplace only, > 0: epsilon explores only the arms whose score plus `explore_z`
        standard deviations reaches the best arm's score minus as many.
    importance_clip
        0: every outcome weighs 1 (each arm's model is a direct model of it given x).
        > 0: an outcome weighs min(importance_clip, 1 / propensity), so an arm's model
        is fitted to the whole input distribution and not only to the inputs the
        policy already sent it (a linear model is never exactly right, and the
        inputs an arm is chosen for are the ones it was predicted best on).

    With embeddings or text statistics (the featurizer's dense block) and bandit
    feedback, laplace with ucb=0.5, shared=False and a constant epsilon of 0.02 is
    what benchmarks/replay_routellm.py measures on real recorded outcomes.

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
        solver: AdaGrad | Laplace | None = None,
        shared: bool = True,
        epsilon: float = 0.2,
        epsilon_min: float = 0.02,
        epsilon_half_life: int = 2000,
        seed: int = 0,
        ucb: float = 0.0,
        cost_model: str = "linear",
        explore_z: float = 0.0,
        importance_clip: float = 0.0,
    ):
        self.arms = list(arms)
        self.featurizer = featurizer if featurizer is not None else HashedFeaturizer()
        self.cost_weight = cost_weight
        self.latency_weight = latency_weight
        self.solver = solver if solver is not None else AdaGrad()
        self.shared = shared
        self.epsilon = epsilon
        self.epsilon_min = epsilon_min
        self.epsilon_half_life = epsilon_half_life
        self.seed = seed
        self.ucb = ucb
        self.cost_model = cost_model
        self.explore_z = explore_z
        self.importance_clip = importance_clip
        if importance_clip < 0:
            raise ValueError(f"importance_clip: {importance_clip!r} is negative")
        if cost_model not in COST_MODELS:
            raise ValueError(f"cost_model: {cost_model!r} is not one of {COST_MODELS}")
        if not hasattr(self.solver, "init_state"):
            raise ValueError(f"solver: {solver!r} is not a solver (AdaGrad() or Laplace())")
        if ucb and not self.solver.has_posterior:
            raise ValueError("ucb: needs a solver with a posterior (Laplace) to give the uncertainty")
        d = self.featurizer.n_features
        # Row 0: the shared component; row 1 + i: arm i's own component.
        self._w = np.zeros((1 + len(self.arms), d))
        self._s = self.solver.init_state(1 + len(self.arms), d, int(getattr(self.featurizer, "n_dense", 0)))
        self._index = {a: i for i, a in enumerate(self.arms)}
        self._n = np.zeros(len(self.arms))
        self._cost = np.zeros(len(self.arms))
        self._latency = np.zeros(len(self.arms))
        self._costs = CostModel(self.featurizer.n_size)
        for _ in self.arms:
            self._costs.add_row()
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
        self.solver.add_row(self._s)
        self._n = np.append(self._n, 0.0)
        self._cost = np.append(self._cost, 0.0)
        self._latency = np.append(self._latency, 0.0)
        self._costs.add_row()

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
        can move as fast as when it was new (laplace: its uncertainty is reset to
        the prior's, its estimate kept).
        """
        self._boost_epsilon = max(epsilon, self._boost_epsilon if self._t < self._boost_until else 0.0)
        self._boost_until = max(self._boost_until, self._t + events)
        if arm is not None and arm in self._index:
            self.solver.reset_row(self._s, 1 + self._index[arm])

    def set_exploration(self, epsilon: float) -> None:
        """Explore exactly `epsilon` from now on: no decay, any drift boost ended (a tuned setting)."""
        self.epsilon = self.epsilon_min = float(epsilon)
        self._boost_until = self._t
        self._boost_epsilon = 0.0

    # -- prediction --------------------------------------------------------

    def featurize(self, x: Mapping[str, Any]) -> Featurized:
        return self.featurizer.transform_one(x)

    def _logits(self, f: Featurized, rows: np.ndarray | None = None) -> np.ndarray:
        idx, val = f[0], f[1]
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
        """Objective of each arm: quality - cost_weight*cost - latency_weight*latency.

        The quality is the predicted one, plus `ucb` standard deviations of it (laplace).
        """
        base, sd = self._objective_and_sd(f)
        return base + self.ucb * sd if self.ucb else base

    def _objective_and_sd(self, f: Featurized) -> tuple[np.ndarray, np.ndarray]:
        """Each arm's objective at its predicted quality, and the quality's standard deviation."""
        p, sd = self._quality_and_sd(f)
        cost, latency = self.costs_featurized(f)
        return p - self.cost_weight * cost - self.latency_weight * latency, sd

    def _quality_and_sd(self, f: Featurized) -> tuple[np.ndarray, np.ndarray]:
        """Predicted quality of every arm, and its posterior standard deviation (laplace; else 0)."""
        p = self.predict_featurized(f)
        if not self.solver.has_posterior or not (self.ucb or self.explore_z):
            return p, np.zeros_like(p)
        return p, p * (1.0 - p) * np.sqrt(np.maximum(self.solver.logit_var(self._s, f, self.shared), 0.0))

    def costs_featurized(self, f: Featurized) -> tuple[np.ndarray, np.ndarray]:
        """Predicted (cost, latency) of every arm on f: per input (`linear`) or each arm's mean."""
        if self.cost_model == "mean":
            return self._cost, self._latency
        pred = np.maximum(self._costs.predict_one(f[2]), 0.0)
        return pred[:, 0], pred[:, 1]

    def policy_featurized(
        self, f: Featurized, arms: Sequence[str] | None = None
    ) -> tuple[list[str], str, list[str], float, dict[str, float]]:
        """(known arms, the best, the arms explored, epsilon, scores) on f.

        With `explore_z` > 0 (laplace), epsilon explores only the plausible arms: those
        whose optimistic score (quality + explore_z standard deviations) reaches the
        best arm's pessimistic one. An arm that is clearly worse here is not tried at
        random, and it comes back into the set when its uncertainty grows (a drift).
        """
        names = list(self.arms) if arms is None else list(arms)
        known = names if arms is None else [a for a in names if a in self._index]  # every arm: no subset
        if not known:
            return [], "", names, 1.0, {a: 0.0 for a in names}
        base, sd = self._objective_and_sd(f)
        if arms is not None:
            rows = np.array([self._index[a] for a in known])
            base, sd = base[rows], sd[rows]
        values = base + self.ucb * sd if self.ucb else base
        b = int(np.argmax(values))
        best = known[b]
        explore = known
        if self.explore_z and self.solver.has_posterior:
            upper = base + self.explore_z * sd
            floor = base[b] - self.explore_z * sd[b]
            explore = [a for a, u in zip(known, upper.tolist()) if u >= floor]
        scores = dict(zip(known, values.tolist()))
        return known, best, explore, self.exploration, scores

    def probability_featurized(self, f: Featurized, arm: str, arms: Sequence[str] | None = None) -> float:
        """The probability that decide_featurized picks `arm` on f (over `arms`)."""
        known, best, explore, eps, _ = self.policy_featurized(f, arms)
        if not known:
            names = self.arms if arms is None else list(arms)
            return 1.0 / len(names) if arm in names else 0.0
        return (eps / len(explore) if arm in explore else 0.0) + (1.0 - eps if arm == best else 0.0)

    def probabilities_featurized(self, f: Featurized, arms: Sequence[str] | None = None) -> dict[str, float]:
        """`probability_featurized` of every arm of `arms` on f, the policy computed once."""
        names = self.arms if arms is None else list(arms)
        known, best, explore, eps, _ = self.policy_featurized(f, arms)
        if not known:
            return {a: 1.0 / len(names) for a in names}
        share = eps / len(explore)
        return {a: (share if a in explore else 0.0) + (1.0 - eps if a == best else 0.0) for a in names}

    def decide_featurized(self, f: Featurized, key: str, arms: Sequence[str] | None = None) -> Choice:
        known, best, explore, eps, scores = self.policy_featurized(f, arms)
        if not known:  # arms this bandit has never heard of: uniform
            return Choice(arm=explore[int(uniform(self.seed, key) * len(explore))], propensity=1 / len(explore),
                          scores=scores)
        k = len(explore)
        u = uniform(self.seed, key)
        arm = explore[min(k - 1, int(u / eps * k))] if u < eps else best
        propensity = (eps / k if arm in explore else 0.0) + (1.0 - eps if arm == best else 0.0)
        return Choice(arm=arm, propensity=propensity, scores=scores)

    def decide(self, x: Mapping[str, Any], key: str, arms: Sequence[str] | None = None) -> Choice:
        """Choose an arm for x; the same (state, key) always gives the same choice."""
        return self.decide_featurized(self.featurize(x), key, arms)

    # -- learning ----------------------------------------------------------

    def learn_featurized(
        self, f: Featurized, arm: str, quality: float, cost: float | None = 0.0, latency_s: float | None = 0.0,
        propensity: float = 1.0,
    ) -> None:
        """Learn one outcome of `arm` on f; cost or latency None: unknown (a failed call), not learned.

        `propensity`: the probability the logging policy chose `arm` on f (the outcome's
        importance weight with `importance_clip`).
        """
        self._check(f, quality, cost, latency_s)
        if arm not in self._index:
            self.add_arm(arm)
        i = self._index[arm]
        rows = (0, 1 + i) if self.shared else (1 + i,)
        self.solver.learn(self._s, self._w, f, rows, quality, self.importance_weight(propensity))
        self._update_means(i, cost, latency_s, f)

    @staticmethod
    def _check(f: Featurized, quality: float, cost: float | None, latency_s: float | None) -> None:
        """Refuse (ValueError) an outcome whose numbers would put NaN, inf or absurd magnitudes
        into the state: quality outside [0, 1], cost or latency beyond CEILINGS, features not finite."""
        problem = within("quality", quality, 0.0, 1.0)
        if problem is None and cost is not None:
            problem = within("cost", cost, 0.0, CEILINGS.cost_usd)
        if problem is None and latency_s is not None:
            problem = within("latency_s", latency_s, 0.0, CEILINGS.latency_s)
        if problem is None and not (np.isfinite(f[1]).all() and np.isfinite(f[2]).all()):
            problem = "features must be finite"
        if problem is not None:
            raise ValueError(problem)

    @classmethod
    def _check_many(cls, batch: Sequence[Featurized], quality: Sequence[float], cost: Sequence[float],
                    latency_s: Sequence[float]) -> None:
        """`_check` of a whole mini-batch, vectorized; names the first bad outcome when one is."""
        try:
            q, c, lat = (np.asarray(v, dtype=float) for v in (quality, cost, latency_s))
        except (TypeError, ValueError):
            q = c = lat = np.array([np.nan])
        ok = (np.isfinite(q).all() and np.isfinite(c).all() and np.isfinite(lat).all()
              and ((q >= 0) & (q <= 1)).all() and ((c >= 0) & (c <= CEILINGS.cost_usd)).all()
              and ((lat >= 0) & (lat <= CEILINGS.latency_s)).all()
              and np.isfinite(np.concatenate([f[1] for f in batch] + [f[2] for f in batch])).all())
        if not ok:
            for f, qi, ci, li in zip(batch, quality, cost, latency_s):
                cls._check(f, qi, ci, li)
            raise ValueError("a batch value is not a finite number")

    def importance_weight(self, propensity: float) -> float:
        """What an outcome chosen with this propensity weighs: 1, or min(importance_clip, 1 / propensity)."""
        if not self.importance_clip:
            return 1.0
        if not 0.0 < propensity <= 1.0:
            raise ValueError(f"propensity: {propensity!r} is not in (0, 1]")
        return min(self.importance_clip, 1.0 / propensity)

    def learn_one(
        self,
        x: Mapping[str, Any],
        arm: str,
        quality: float,
        cost: float | None = 0.0,
        latency_s: float | None = 0.0,
        propensity: float = 1.0,
    ) -> None:
        """Learn from one outcome of `arm` on x (quality in [0, 1]; cost or latency None: unknown).

        The quality model is a direct model of each arm given x; `propensity` weighs
        the outcome only with `importance_clip` > 0.
        """
        self.learn_featurized(self.featurize(x), arm, quality, cost, latency_s, propensity)

    def learn_many(
        self,
        batch: Sequence[Featurized],
        arms: Sequence[str],
        quality: Sequence[float],
        cost: Sequence[float],
        latency_s: Sequence[float] | None = None,
        propensity: Sequence[float] | None = None,
    ) -> None:
        """One mini-batch step: gradients from the batch's predictions, applied together."""
        if not batch:
            return
        props = propensity if propensity is not None else [1.0] * len(batch)
        lat_in = latency_s if latency_s is not None else [0.0] * len(batch)
        self._check_many(batch, quality, cost, lat_in)  # all refused or none learned
        if not hasattr(self.solver, "learn_many"):  # e.g. laplace: one step after the other
            lat = latency_s if latency_s is not None else [0.0] * len(batch)
            for f, a, q, c, l, pr in zip(batch, arms, quality, cost, lat, props):
                self.learn_featurized(f, a, q, c, l, pr)
            return
        for a in set(arms):
            if a not in self._index:
                self.add_arm(a)
        arm_i = np.array([self._index[a] for a in arms])
        weights = np.array([self.importance_weight(p) for p in props]) if self.importance_clip else np.ones(len(batch))
        self.solver.learn_many(self._s, self._w, batch, 1 + arm_i, quality, weights, self.shared)
        lat = np.asarray(latency_s if latency_s is not None else [0.0] * len(batch), dtype=float)
        cost_arr = np.asarray(cost, dtype=float)
        for i, c, l in zip(arm_i.tolist(), cost_arr.tolist(), lat.tolist()):
            self._update_means(i, c, l, None)
        self._costs.learn_many(np.stack([f[2] for f in batch]), arm_i, np.stack([cost_arr, lat], axis=1))

    def _update_means(self, i: int, cost: float | None, latency_s: float | None, f: Featurized | None) -> None:
        """Count the outcome; learn its cost and latency (means, and the per-input model with f)."""
        self._n[i] += 1
        self._t += 1
        if cost is None or latency_s is None:
            return
        rate = max(1.0 / self._n[i], 0.01)  # a running mean that keeps tracking after 100 events
        self._cost[i] += rate * (cost - self._cost[i])
        self._latency[i] += rate * (latency_s - self._latency[i])
        if f is not None:
            self._costs.learn_one(f[2], i, cost, latency_s)

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
            f"LinearBandit(arms={self.arms}, cost_weight={self.cost_weight}, solver={self.solver!r}, "
            f"epsilon={self.epsilon}, seed={self.seed})"
        )
