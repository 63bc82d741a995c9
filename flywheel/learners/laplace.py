"""The laplace solver's posterior: online Bayesian logistic regression, one row per component.

Each row (LinearBandit: row 0 the shared component, row 1 + i arm i's) has a
Gaussian posterior over its weights: diagonal over the hashed slots (precisions
in `_g`) and a full covariance over the featurizer's dense block (`_cov`, with
low-rank downdates kept apart in `_low` until RANK of them are folded in). One
outcome is one Newton step along the posterior's direction (Chapelle & Li,
"An Empirical Evaluation of Thompson Sampling", 2011). LaplacePosterior holds
the methods; LinearBandit holds the arrays and the parameters they read
(`learning_rate`, `prior_var`, `forgetting`, `shared`).

A LinearBandit with this solver, text statistics in a dense block, learning which prompts
need the strong model:

>>> import random
>>> from flywheel.learners.features import HashedFeaturizer
>>> from flywheel.learners.linear_bandit import LinearBandit
>>> rng = random.Random(1)
>>> bandit = LinearBandit(["weak", "strong"], HashedFeaturizer(n_bits=10, text_stats=True), cost_weight=0.3,
...                       solver="laplace", learning_rate=1.0, ucb=0.5, shared=False,
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


class LaplacePosterior:
    """The posterior's methods, mixed into LinearBandit (which owns the state)."""

    _w: np.ndarray
    _g: np.ndarray
    _cov: np.ndarray
    _low: np.ndarray
    _nlow: np.ndarray
    _nd: int
    _cx: tuple[Any, dict[int, np.ndarray]]
    shared: bool
    learning_rate: float
    prior_var: float
    forgetting: float

    def _split(self, f: Featurized) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(hashed indices, their values, the dense block) of a feature vector."""
        idx, val = f[0], f[1]
        nd = self._nd
        if not nd:
            return idx, val, val[:0]
        return idx[:-nd], val[:-nd], val[-nd:]

    def _cov_x(self, r: int, f: Featurized, xd: np.ndarray) -> np.ndarray:
        """Row r's dense covariance times the dense block of f (kept until the next update)."""
        if self._cx[0] is not f:
            self._cx = (f, {})
        y = self._cx[1].get(r)
        if y is None:
            y = self._cov[r] @ xd
            k = int(self._nlow[r])
            if k:
                low = self._low[r, :k]
                y -= (low @ xd) @ low
            self._cx[1][r] = y
        return y

    def _downdate(self, r: int, u: np.ndarray) -> None:
        k = int(self._nlow[r])
        if k == RANK:  # fold the low-rank part in: one matrix product per RANK updates
            low = self._low[r]
            self._cov[r] -= low.T @ low
            k = 0
        self._low[r, k] = u
        self._nlow[r] = k + 1

    def _logit_var(self, f: Featurized) -> np.ndarray:
        """Posterior variance of each arm's logit on f (laplace)."""
        si, sv, xd = self._split(f)
        first = 0 if self.shared else 1
        v = (1.0 / self._g[first:, si]) @ (sv * sv)
        if self._nd:
            v = v + np.array([self._cov_x(r, f, xd) @ xd for r in range(first, len(self._g))])
        return v[1:] + v[0] if self.shared else v

    def _learn_laplace(self, f: Featurized, i: int, quality: float, weight: float = 1.0) -> None:
        """One outcome of arm i, its log-likelihood times `weight` (an importance weight; 1 plain).

        Along the posterior's direction the step is weight * b, b the root for a
        prediction variance of weight * s; the precision grows by weight * p(1-p) x x'.
        """
        si, sv, xd = self._split(f)
        rows = (0, 1 + i) if self.shared else (1 + i,)
        idx, val = f[0], f[1]
        mu = float(sum(self._w[r, idx] @ val for r in rows))
        sv2 = sv * sv
        if self.forgetting:  # the touched slots' precision decays towards the prior's
            phi = self.forgetting
            for r in rows:
                self._g[r, si] = (1.0 - phi) * self._g[r, si] + phi / self.prior_var
        cov_x = {r: self._cov_x(r, f, xd) for r in rows} if self._nd else {}
        self._cx = (None, {})  # the rows change: forget every product
        s = float(sum((1.0 / self._g[r, si]) @ sv2 for r in rows)) + sum(float(c @ xd) for c in cov_x.values())
        a = weight * newton_step(mu, weight * s, quality) * self.learning_rate
        p = _sigmoid(mu - a * s)
        h = weight * p * (1.0 - p)
        base = self._w.shape[1] - self._nd
        for r in rows:
            self._w[r, si] -= a * sv / self._g[r, si]
            self._g[r, si] += h * sv2
            if self._nd:
                c = cov_x[r]
                self._w[r, base:] -= a * c
                self._downdate(r, c * math.sqrt(h / (1.0 + h * float(c @ xd))))

