"""The laplace solver: online Bayesian logistic regression, one row per component.

Each row (LinearBandit: row 0 the shared component, row 1 + i arm i's) has a
Gaussian posterior over its weights: diagonal over the hashed slots (precisions
`g`) and a full covariance over the featurizer's dense block (`cov`, with
low-rank downdates kept apart in `low` until RANK of them are folded in). One
outcome is one Newton step along the posterior's direction (Chapelle & Li,
"An Empirical Evaluation of Thompson Sampling", 2011); a mini-batch (`learn_many`)
solves its outcomes' steps together, CHUNK at a time: the
posterior mode given all of them, within a few hundredths of one step after the other
on a seeded stream (tests/learners/test_laplace_batch.py). `Laplace` is the solver
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
from typing import Any, Sequence

import numpy as np
from scipy import sparse

RANK = 32  # covariance updates kept apart before being folded into the matrix
CHUNK = 128  # outcomes of a mini-batch whose steps are solved together (`Laplace.learn_many`)
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


def _joint_steps(mu: np.ndarray, k: np.ndarray, q: np.ndarray, omega: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The steps a of n outcomes solved together, and each outcome's p at the new mode.

    a = omega (sigmoid(mu - K a) - q): Newton's method on it (its Jacobian I + diag(omega p (1-p)) K),
    from the steps each outcome would take alone with no other (a = omega (sigmoid(mu) - q)), a step
    halved while it does not shrink the residual.
    """
    def residual(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = 1.0 / (1.0 + np.exp(-np.clip(mu - k @ a, -30.0, 30.0)))
        return a - omega * (p - q), p

    a = np.zeros_like(mu)
    r, p = residual(a)
    norm = float(r @ r)
    eye = np.eye(len(mu))
    for _ in range(12):
        if norm < 1e-14:
            break
        jac = eye + (omega * p * (1.0 - p))[:, None] * k
        delta = np.linalg.solve(jac, r)
        t = 1.0
        for _ in range(20):
            r_new, p_new = residual(a - t * delta)
            if float(r_new @ r_new) < norm:
                break
            t *= 0.5
        a, r, p, norm = a - t * delta, r_new, p_new, float(r_new @ r_new)
    return a, p


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

    def learn_many(self, s: LaplaceState, w: np.ndarray, batch: Sequence[Featurized], arm_rows: np.ndarray,
                   quality: Sequence[float], weights: np.ndarray, shared: bool) -> None:
        """A mini-batch, CHUNK outcomes at a time, each chunk's steps solved together (`_learn_chunk`)."""
        q = np.asarray(quality, dtype=float)
        for i in range(0, len(batch), CHUNK):
            self._learn_chunk(s, w, batch[i:i + CHUNK], np.asarray(arm_rows[i:i + CHUNK]), q[i:i + CHUNK],
                              np.asarray(weights[i:i + CHUNK], dtype=float), shared)

    def _learn_chunk(self, s: LaplaceState, w: np.ndarray, batch: Sequence[Featurized], arm_rows: np.ndarray,
                     q: np.ndarray, omega: np.ndarray, shared: bool) -> None:
        """The chunk's outcomes at once: the posterior mode given all of them, one Laplace step.

        With the posterior before the chunk as the prior, the mode moves along the
        prior covariance times each outcome's x: w = m - sum_i a_i Cov x_i, where the
        steps a solve a_i = omega_i (sigmoid(mu_i - (K a)_i) - q_i) and K_ik = x_i' Cov x_k
        over the rows both outcomes touch (the shared row always, an arm's row when they
        share the arm): `learn`'s Newton step for n outcomes at once (for one, the same
        equation). Then the precisions grow by omega p (1 - p) x x', p at the new mode.
        """
        nd, d = s.nd, w.shape[1]
        base, n = d - nd, len(batch)
        idx = np.concatenate([f[0] for f in batch])
        val = np.concatenate([f[1] for f in batch])
        owner = np.repeat(np.arange(n), [len(f[0]) for f in batch])
        x = val[idx >= base].reshape(n, nd)  # each dense block: the last nd entries, in order
        hashed = idx < base
        hi, hv, owner = idx[hashed], val[hashed], owner[hashed]
        starts = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=n))])  # CSR rows: one per outcome
        rows = [np.repeat(arm_rows, np.diff(starts))] + ([np.zeros(len(hi), np.int64)] if shared else [])
        # every (row, slot) the chunk touches, once: its weight and precision gathered, then scattered back
        flat = [r * d + hi for r in rows]
        slots = np.flatnonzero(np.bincount(np.concatenate(flat), minlength=s.g.size))
        where = np.empty(s.g.size, dtype=np.int64)
        where[slots] = np.arange(len(slots))
        inv = [where[f] for f in flat]
        wflat, gflat = w.reshape(-1), s.g.reshape(-1)
        g = gflat[slots]
        kept = 1.0  # the share of the chunk's evidence still counted at its end (forgetting)
        if self.forgetting:  # each touch decays the slot's precision towards the prior's, as `learn` does
            touches = np.bincount(np.concatenate(inv), minlength=len(slots))
            decay = (1.0 - self.forgetting) ** touches
            g = 1.0 / self.prior_var + (g - 1.0 / self.prior_var) * decay
            kept = (1.0 - decay) / (touches * self.forgetting)  # the mean decay of evenly spaced touches
        wu = wflat[slots]
        mu = sum(np.bincount(owner, weights=wu[i] * hv, minlength=n) for i in inv)
        k = np.zeros((n, n))
        for i in inv:  # x_i' Cov x_k over the hashed slots of a row both touch
            a_mat = sparse.csr_matrix((hv / np.sqrt(g[i]), i, starts), shape=(n, len(slots)))
            k += (a_mat @ a_mat.T).toarray()
        covs: dict[int, np.ndarray] = {}
        if nd:
            mu += np.einsum("ij,ij->i", w[arm_rows, base:], x) + (x @ w[0, base:] if shared else 0.0)
            covs = {r: self._fold(s, r) for r in sorted(set(arm_rows.tolist()) | ({0} if shared else set()))}
            cx = np.stack([covs[r] @ xi for r, xi in zip(arm_rows.tolist(), x)])  # the arm row's Cov x_i
            k += (x @ cx.T) * (arm_rows[:, None] == arm_rows[None, :])
            if shared:
                k += x @ (x @ covs[0]).T
        a, p = _joint_steps(mu, k, q, omega)
        a *= self.learning_rate
        h = omega * p * (1.0 - p)
        step, grow = a[owner] * hv, h[owner] * hv * hv
        wflat[slots] -= sum(np.bincount(i, weights=step, minlength=len(slots)) for i in inv) / g
        gflat[slots] = g + kept * sum(np.bincount(i, weights=grow, minlength=len(slots)) for i in inv)
        for r, cov in covs.items():
            mine = slice(None) if r == 0 and shared else arm_rows == r
            xr = x[mine]
            w[r, base:] -= a[mine] @ (xr @ cov)
            new = np.linalg.inv(np.linalg.inv(cov) + (xr * h[mine, None]).T @ xr)
            s.cov[r] = 0.5 * (new + new.T)
        s.cx = (None, {})

    @staticmethod
    def _fold(s: LaplaceState, r: int) -> np.ndarray:
        """Row r's dense covariance with its low-rank downdates folded in (and cleared)."""
        k = int(s.nlow[r])
        if k:
            low = s.low[r, :k]
            s.cov[r] -= low.T @ low
            s.nlow[r] = 0
        return s.cov[r]

    def __repr__(self) -> str:
        return f"Laplace(learning_rate={self.learning_rate}, prior_var={self.prior_var}, forgetting={self.forgetting})"
