"""The adagrad solver's steps: AdaGrad on the logistic loss, one row per component.

Each row (LinearBandit: row 0 the shared component, row 1 + i arm i's) is a weight
vector over the features; a step touches only an outcome's non-zero features and
divides it by the root of their summed squared gradients (`_g`). `learn_many` takes
a whole mini-batch: every prediction from the weights before the batch, then the
gradients summed per weight and applied together (scatter-add, no sort).
AdagradSteps holds the methods; LinearBandit holds the arrays and the parameters
they read (`learning_rate`, `shared`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

Featurized = Any  # features.Features: (indices, values, size)


class AdagradSteps:
    """The adagrad solver's methods, mixed into LinearBandit (which owns the state)."""

    _w: np.ndarray
    _g: np.ndarray
    shared: bool
    learning_rate: float
    _logits: Callable[..., np.ndarray]  # LinearBandit's: (f, rows) -> each row's logit on f

    def _learn_adagrad(self, f: Featurized, i: int, quality: float, weight: float = 1.0) -> None:
        """One AdaGrad step on arm i's row (and the shared row) from one outcome of this weight."""
        idx, val = f[0], f[1]
        p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, float(self._logits(f, np.array([i]))[0])))))
        grad = weight * (p - quality) * val
        g2 = grad * grad
        rows = (0, 1 + i) if self.shared else (1 + i,)
        for r in rows:
            self._g[r, idx] += g2
            self._w[r, idx] -= self.learning_rate * grad / np.sqrt(self._g[r, idx])

    def _learn_many_adagrad(self, batch: Sequence[Featurized], arm_i: np.ndarray, quality: Sequence[float],
                            weights: np.ndarray) -> None:
        """One mini-batch step: predictions before the batch, gradients (times each outcome's weight) summed."""
        lengths = np.array([len(f[0]) for f in batch])
        idx = np.concatenate([f[0] for f in batch])
        val = np.concatenate([f[1] for f in batch])
        owner = np.repeat(np.arange(len(batch)), lengths)
        rows = np.repeat(1 + arm_i, lengths)
        contrib = self._w[rows, idx] * val + (self._w[0, idx] * val if self.shared else 0.0)
        logits = np.bincount(owner, weights=contrib, minlength=len(batch))
        p = 1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))
        grad = (weights * (p - np.asarray(quality, dtype=float)))[owner] * val
        d = self._w.shape[1]
        targets = [rows] + ([np.zeros_like(rows)] if self.shared else [])
        gflat = self._g.reshape(-1)
        wflat = self._w.reshape(-1)
        g2 = grad * grad
        for r in targets:  # scatter-add by bincount over the flat weights: no sort
            flat = r * d + idx
            g2_sum = np.bincount(flat, weights=g2, minlength=gflat.size)
            touched = np.flatnonzero(g2_sum)
            gflat[touched] += g2_sum[touched]
            gs = np.bincount(flat, weights=grad, minlength=gflat.size)[touched]
            wflat[touched] -= self.learning_rate * gs / np.sqrt(gflat[touched])
