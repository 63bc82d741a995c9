"""The laplace solver: online Bayesian logistic regression, one row per component.

Each row (LinearBandit: row 0 the shared component, row 1 + i arm i's) has a
Gaussian posterior over its weights: diagonal over the hashed slots (precisions
`g`) and a full covariance over the featurizer's dense block (`cov`, with
low-rank downdates kept apart in `low` until RANK of them are folded in). One
outcome is one Newton step along the posterior's direction (Chapelle & Li,
"An Empirical Evaluation of Thompson Sampling", 2011). `Laplace` is the solver
(its parameters and its steps), passed to the model like River's optimizers;
the model holds the weights and a LaplaceState (the posterior's arrays).

A LinearBandit with this solver, text statistics in a dense block, learning which prompts
need the strong model:

>>> import random
>>> from flywheel.learners.features import HashedFeaturizer
>>> from flywheel.learners.linear_bandit import LinearBandit
>>> rng = random.Random(1)
>>> bandit = LinearBandit(["weak", "strong"], HashedFeaturizer(n_bits=10, text_stats=True), cost_weight=0.3,
...                       solver=Laplace(learning_rate=1.0), ucb=0.5, shared=False,
...                       epsilon=0.02, epsilon_min=0.02, seed=7)
>>> strong_calls = 0
>>> for i in range(3000):
...     hard = rng.random() < 0.5
...     x = {"prompt": "prove the theorem" if hard else "say hello"}
...     choice = bandit.decide(x, key=str(i))
...     strong_calls += choice.arm == "strong"
...     correct = rng.random() < (0.9 if choice.arm == "strong" or not hard else 0.2)
...     bandit.learn_one(x, choice.arm, quality=float(correct),
...                      cost=1.0 if choice.arm == "strong" else 0.0, propensity=choice.propensity)
>>> bandit.decide({"prompt": "prove the theorem"}, key="a").arm, bandit.decide({"prompt": "say hello"}, key="b").arm
('strong', 'weak')
>>> {a: round(q, 2) for a, q in bandit.predict_one({"prompt": "prove the theorem"}).items()}
{'weak': 0.21, 'strong': 0.9}
>>> strong_calls
1699
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

RANK = 32  # covariance updates kept apart before being folded into the matrix
Featurized = Any  # features.Features: (indices, values, size)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def newton_step(mu: float, s: float, quality: float) -> float:
    """The step a along the posterior's direction: the root of a - sigmoid(mu - a*s) + quality.

    That function rises with a, and its root lies between 0 and sigmoid(mu) - quality,
    so Newton's iterates are kept inside that bracket (bisecting when one leaves it):
    plain Newton oscillates when s, the prediction's variance, is large.
    """
    a0 = _sigmoid(mu) - quality
    lo, hi = min(0.0, a0), max(0.0, a0)
    a = a0
    for _ in range(8):
        p = _sigmoid(mu - a * s)
        g = a - p + quality
        if abs(g) < 1e-9:
            break
        if g > 0:
            hi = a
        else:
            lo = a
        a -= g / (1.0 + s * p * (1.0 - p))
        if not lo <= a <= hi:
            a = 0.5 * (lo + hi)
    return a


class LaplaceState:
    """The posterior's arrays, one row per component: precisions of the hashed slots (`g`),
    and over the dense block a covariance `cov` minus the low-rank downdates kept in `low`."""

    _transient = ("cx",)  # covariance @ dense x of the last x, per row: a cache, not saved

    def __init__(self, rows: int, d: int, nd: int, prior_var: float):
        self.nd = nd
        self.g = np.full((rows, d), 1.0 / prior_var)
        self.cov = np.stack([np.eye(nd) * prior_var] * rows)
        self.low = np.zeros((rows, RANK if nd else 0, nd))
        self.nlow = np.zeros(rows, dtype=np.int64)
        self.cx: tuple[Any, dict[int, np.ndarray]] = (None, {})

    def _after_load(self) -> None:
        self.cx = (None, {})


class Laplace:
    """Online Bayesian logistic regression: a Gaussian posterior per row, one Newton step per outcome.

    Parameters are stored as given; the state lives in a LaplaceState that the model
    holds (`init_state`), so one Laplace can serve any number of models.

    learning_rate
        Multiplies the Newton step (1.0: the full step).
    prior_var
        The prior variance of every weight.
    forgetting
        At each update the precision of the touched hashed slots decays by this
        fraction towards the prior's, so evidence older than about 1/forgetting
        updates of those slots weighs less (a world that changes).
    """

    has_posterior = True

    def __init__(self, learning_rate: float = 1.0, prior_var: float = 1.0, forgetting: float = 0.0):
        self.learning_rate = learning_rate
        self.prior_var = prior_var
        self.forgetting = forgetting

    def init_state(self, rows: int, d: int, n_dense: int) -> LaplaceState:
        """The prior of `rows` rows over d features, the last n_dense of them a dense block."""
        return LaplaceState(rows, d, n_dense, self.prior_var)

    def add_row(self, s: LaplaceState) -> None:
        s.g = np.vstack([s.g, np.full((1, s.g.shape[1]), 1.0 / self.prior_var)])
        s.cov = np.concatenate([s.cov, np.eye(s.nd)[None] * self.prior_var])
        s.low = np.concatenate([s.low, np.zeros((1,) + s.low.shape[1:])])
        s.nlow = np.append(s.nlow, 0)

    def reset_row(self, s: LaplaceState, r: int) -> None:
        """Row r's uncertainty back to the prior's (its estimate kept): it learns as fast as when new."""
        s.g[r] = np.minimum(s.g[r], 1.0 / self.prior_var)
        s.cov[r] = np.eye(s.nd) * self.prior_var
        s.nlow[r] = 0
        s.cx = (None, {})

    @staticmethod
    def _split(s: LaplaceState, f: Featurized) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(hashed indices, their values, the dense block) of a feature vector."""
        idx, val = f[0], f[1]
        if not s.nd:
            return idx, val, val[:0]
        return idx[:-s.nd], val[:-s.nd], val[-s.nd:]

    @staticmethod
    def _cov_x(s: LaplaceState, r: int, f: Featurized, xd: np.ndarray) -> np.ndarray:
        """Row r's dense covariance times the dense block of f (kept until the next update)."""
        if s.cx[0] is not f:
            s.cx = (f, {})
        y = s.cx[1].get(r)
        if y is None:
            y = s.cov[r] @ xd
            k = int(s.nlow[r])
            if k:
                low = s.low[r, :k]
                y -= (low @ xd) @ low
            s.cx[1][r] = y
        return y

    @staticmethod
    def _downdate(s: LaplaceState, r: int, u: np.ndarray) -> None:
        k = int(s.nlow[r])
        if k == RANK:  # fold the low-rank part in: one matrix product per RANK updates
            low = s.low[r]
            s.cov[r] -= low.T @ low
            k = 0
        s.low[r, k] = u
        s.nlow[r] = k + 1

    def logit_var(self, s: LaplaceState, f: Featurized, shared: bool) -> np.ndarray:
        """Posterior variance of each arm's logit on f (row 0 shared when `shared`)."""
        si, sv, xd = self._split(s, f)
        first = 0 if shared else 1
        v = (1.0 / s.g[first:, si]) @ (sv * sv)
        if s.nd:
            v = v + np.array([self._cov_x(s, r, f, xd) @ xd for r in range(first, len(s.g))])
        return v[1:] + v[0] if shared else v

    def learn(self, s: LaplaceState, w: np.ndarray, f: Featurized, rows: tuple[int, ...], quality: float,
              weight: float = 1.0) -> None:
        """One outcome on the rows (its log-likelihood times `weight`, an importance weight; 1 plain).

        Along the posterior's direction the step is weight * b, b the root for a
        prediction variance of weight * s; the precision grows by weight * p(1-p) x x'.
        """
        si, sv, xd = self._split(s, f)
        idx, val = f[0], f[1]
        mu = float(sum(w[r, idx] @ val for r in rows))
        sv2 = sv * sv
        if self.forgetting:  # the touched slots' precision decays towards the prior's
            phi = self.forgetting
            for r in rows:
                s.g[r, si] = (1.0 - phi) * s.g[r, si] + phi / self.prior_var
        cov_x = {r: self._cov_x(s, r, f, xd) for r in rows} if s.nd else {}
        s.cx = (None, {})  # the rows change: forget every product
        var = float(sum((1.0 / s.g[r, si]) @ sv2 for r in rows)) + sum(float(c @ xd) for c in cov_x.values())
        a = weight * newton_step(mu, weight * var, quality) * self.learning_rate
        p = _sigmoid(mu - a * var)
        h = weight * p * (1.0 - p)
        base = w.shape[1] - s.nd
        for r in rows:
            w[r, si] -= a * sv / s.g[r, si]
            s.g[r, si] += h * sv2
            if s.nd:
                c = cov_x[r]
                w[r, base:] -= a * c
                self._downdate(s, r, c * math.sqrt(h / (1.0 + h * float(c @ xd))))

    def __repr__(self) -> str:
        return f"Laplace(learning_rate={self.learning_rate}, prior_var={self.prior_var}, forgetting={self.forgetting})"
