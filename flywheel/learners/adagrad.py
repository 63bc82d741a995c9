"""The adagrad solver: AdaGrad on the logistic loss, one row per component.

Each row (LinearBandit: row 0 the shared component, row 1 + i arm i's) is a weight
vector over the features; a step touches only an outcome's non-zero features and
divides it by the root of their summed squared gradients (the state's `g`).
`learn_many` takes a whole mini-batch: every prediction from the weights before the
batch, then the gradients summed per weight and applied together (scatter-add, no
sort). `AdaGrad` is the solver (its parameter and its steps), passed to the model
like River's optimizers; the model holds the weights and an AdaGradState.

>>> import numpy as np
>>> from flywheel.learners.features import HashedFeaturizer
>>> from flywheel.learners.linear_bandit import LinearBandit
>>> bandit = LinearBandit(["a", "b"], HashedFeaturizer(n_bits=8), solver=AdaGrad(learning_rate=0.5), seed=1)
>>> f = bandit.featurize({"prompt": "hello"})
>>> bandit.learn_many([f] * 4, ["a", "b", "a", "b"], [1.0, 0.0, 1.0, 0.0], [0.0] * 4)
>>> p = bandit.predict_one({"prompt": "hello"})
>>> p["a"] > 0.5 > p["b"]
True
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

Featurized = Any  # features.Features: (indices, values, size)


class AdaGradState:
    """The summed squared gradients of every weight, one row per component."""

    def __init__(self, rows: int, d: int):
        self.g = np.full((rows, d), 1e-6)


class AdaGrad:
    """AdaGrad steps on the logistic loss; `learning_rate` is the step. Parameters are stored as given;
    the state lives in an AdaGradState that the model holds (`init_state`)."""

    has_posterior = False

    def __init__(self, learning_rate: float = 0.5):
        self.learning_rate = learning_rate

    def init_state(self, rows: int, d: int, n_dense: int) -> AdaGradState:
        return AdaGradState(rows, d)

    def add_row(self, s: AdaGradState) -> None:
        s.g = np.vstack([s.g, np.full((1, s.g.shape[1]), 1e-6)])

    def reset_row(self, s: AdaGradState, r: int) -> None:
        """Row r's steps as large as when it was new (after a drift)."""
        s.g[r] = np.minimum(s.g[r], 1.0)

    def learn(self, s: AdaGradState, w: np.ndarray, f: Featurized, rows: tuple[int, ...], quality: float,
              weight: float = 1.0) -> None:
        """One step on the rows (the last one the arm's, row 0 first when shared) from one outcome."""
        idx, val = f[0], f[1]
        z = w[:, idx] @ val
        logit = z[rows[-1]] + (z[0] if len(rows) == 2 else 0.0)
        p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, float(logit)))))
        grad = weight * (p - quality) * val
        g2 = grad * grad
        for r in rows:
            s.g[r, idx] += g2
            w[r, idx] -= self.learning_rate * grad / np.sqrt(s.g[r, idx])

    def learn_many(self, s: AdaGradState, w: np.ndarray, batch: Sequence[Featurized], arm_rows: np.ndarray,
                   quality: Sequence[float], weights: np.ndarray, shared: bool) -> None:
        """One mini-batch step: predictions before the batch, gradients (times each outcome's weight) summed."""
        lengths = np.array([len(f[0]) for f in batch])
        idx = np.concatenate([f[0] for f in batch])
        val = np.concatenate([f[1] for f in batch])
        owner = np.repeat(np.arange(len(batch)), lengths)
        rows = np.repeat(arm_rows, lengths)
        contrib = w[rows, idx] * val + (w[0, idx] * val if shared else 0.0)
        logits = np.bincount(owner, weights=contrib, minlength=len(batch))
        p = 1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))
        grad = (weights * (p - np.asarray(quality, dtype=float)))[owner] * val
        d = w.shape[1]
        targets = [rows] + ([np.zeros_like(rows)] if shared else [])
        gflat = s.g.reshape(-1)
        wflat = w.reshape(-1)
        g2 = grad * grad
        for r in targets:  # scatter-add by bincount over the flat weights: no sort
            flat = r * d + idx
            g2_sum = np.bincount(flat, weights=g2, minlength=gflat.size)
            touched = np.flatnonzero(g2_sum)
            gflat[touched] += g2_sum[touched]
            gs = np.bincount(flat, weights=grad, minlength=gflat.size)[touched]
            wflat[touched] -= self.learning_rate * gs / np.sqrt(gflat[touched])

    def __repr__(self) -> str:
        return f"AdaGrad(learning_rate={self.learning_rate})"
