"""What a call to each arm costs and how long it takes, predicted per input.

An LLM call's cost is its tokens times the model's prices, and its latency a fixed
part plus time per output token: both grow linearly with the size of the request
(the prompt's length, a requested length such as `length_words`). One arm's mean
over all inputs routes a 900-word report like a 150-word one; a linear model of
the request's size features (HashedFeaturizer.size_features: a constant, the
prompt's length, the numeric input fields) gives each input its own figures.

Per arm, a ridge regression of (cost, latency) on those features, kept in
information form (A = ridge*I + sum of z z^T, b = sum of z y^T) with exponential
forgetting, so prices and speeds that change are tracked, and solved lazily,
once per arm after it has learned, when next predicted.
"""

from __future__ import annotations

import numpy as np


class CostModel:
    """Per row (arm) a linear model of (cost, latency) on an input's size features.

    Parameters are stored as given; learned state starts with `_`.

    n_features
        Length of the size-feature vectors.
    forgetting
        Weight of the past at each update of a row (1.0: never forget; 0.998 keeps an
        effective memory of about 500 of that row's outcomes).
    ridge
        Prior precision of every coefficient (pulls a row with little data to 0).

    >>> import random
    >>> rng = random.Random(3)
    >>> model = CostModel(n_features=2)
    >>> model.add_row(), model.add_row()
    (0, 1)
    >>> for _ in range(300):  # cost grows with the length; row 1 is 5x dearer and 3x slower
    ...     words = rng.uniform(100, 900)
    ...     z = [1.0, words / 1000]
    ...     model.learn_one(z, 0, cost=0.002 * words / 1000, latency_s=0.5 + 4.0 * words / 1000)
    ...     model.learn_one(z, 1, cost=0.010 * words / 1000, latency_s=1.5 + 12.0 * words / 1000)
    >>> [[round(float(v), 3) for v in row] for row in model.predict_one([1.0, 0.8])]
    [[0.002, 3.7], [0.008, 11.1]]
    """

    def __init__(self, n_features: int, forgetting: float = 0.998, ridge: float = 1e-3):
        self.n_features = n_features
        self.forgetting = forgetting
        self.ridge = ridge
        if not 0.0 < forgetting <= 1.0:
            raise ValueError(f"forgetting: must be in (0, 1], got {forgetting}")
        d = n_features
        self._a = np.zeros((0, d, d))
        self._b = np.zeros((0, d, 2))
        self._n = np.zeros(0)
        self._theta = np.zeros((d, 0))  # (d, 2 * rows): row r's cost at column 2r, latency at 2r + 1
        self._dirty: set[int] = set()

    @property
    def n_rows(self) -> int:
        return len(self._n)

    def add_row(self) -> int:
        """Add a row (an arm with no data: it predicts 0 until it learns); returns its index."""
        d = self.n_features
        self._a = np.concatenate([self._a, (np.eye(d) * self.ridge)[None]])
        self._b = np.concatenate([self._b, np.zeros((1, d, 2))])
        self._n = np.append(self._n, 0.0)
        self._theta = np.concatenate([self._theta, np.zeros((d, 2))], axis=1)
        return self.n_rows - 1

    def learn_one(self, z: np.ndarray | list[float], row: int, cost: float, latency_s: float) -> None:
        """Learn one call of `row`: its size features z, what it cost and how long it took.

        Raises ValueError (learning nothing) when a number is not finite: one NaN or inf
        in the information matrix would spoil the row's predictions for good.
        """
        z = np.asarray(z, dtype=np.float64)
        _check_finite(z, np.asarray([cost, latency_s], dtype=np.float64))
        self._forget(row, 1)
        self._a[row] += np.outer(z, z)
        self._b[row] += np.outer(z, (cost, latency_s))
        self._n[row] += 1
        self._dirty.add(row)

    def _forget(self, row: int, steps: int) -> None:
        """Weigh `row`'s past down by forgetting**steps, towards the prior, never below it."""
        lam = self.forgetting ** steps
        if lam < 1.0:
            a = self._a[row]
            a *= lam
            a[np.diag_indices_from(a)] += self.ridge * (1.0 - lam)
            self._b[row] *= lam

    def learn_many(self, z: np.ndarray, rows: np.ndarray, y: np.ndarray) -> None:
        """Learn a batch in order: size features z (n, d), their rows (n,), (cost, latency) y (n, 2)."""
        _check_finite(np.asarray(z, dtype=np.float64), np.asarray(y, dtype=np.float64))
        lam = self.forgetting
        rows = np.asarray(rows)
        for r in np.unique(rows).tolist():
            at = np.flatnonzero(rows == r)
            m = len(at)
            w = lam ** np.arange(m - 1, -1, -1, dtype=np.float64)  # the last one is forgotten least
            zr = z[at]
            self._forget(r, m)
            self._a[r] += (zr * w[:, None]).T @ zr
            self._b[r] += (zr * w[:, None]).T @ y[at]
            self._n[r] += m
            self._dirty.add(r)

    def predict_one(self, z: np.ndarray | list[float]) -> np.ndarray:
        """(cost, latency) of every row for size features z: an array of shape (rows, 2)."""
        if self._dirty:
            rows = sorted(self._dirty)
            sol = np.linalg.solve(self._a[rows], self._b[rows])  # (len(rows), d, 2)
            for k, r in enumerate(rows):
                self._theta[:, 2 * r: 2 * r + 2] = sol[k]
            self._dirty.clear()
        return (np.asarray(z, dtype=np.float64) @ self._theta).reshape(-1, 2)

    def n_learned(self, row: int) -> int:
        """Calls of `row` learned from."""
        return int(self._n[row])


def _check_finite(z: np.ndarray, y: np.ndarray) -> None:
    """Refuse (ValueError) size features or (cost, latency) that are not all finite and >= 0 (y)."""
    if not np.isfinite(z).all():
        raise ValueError("size features must be finite")
    if not (np.isfinite(y).all() and (y >= 0).all()):
        raise ValueError(f"cost and latency must be finite numbers >= 0, got {y.tolist()!r}")
