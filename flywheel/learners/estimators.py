"""Off-policy estimates of a candidate policy's mean reward from logged decisions.

Each logged decision gives the candidate's probability of the logged arm, the
logging propensity and the reward (and, for the doubly robust estimate, the
candidate's probability and a reward model's prediction for every arm). Three
estimators (running statistics, not learners: `add` each decision, then
`estimate()`), each with a normal confidence interval from its influence function
(for SNIPS, a ratio, the delta method):

- `IPS`: mean of w r, with w = target / propensity (unbiased; high variance);
- `SNIPS`: sum(w r) / sum(w) (self-normalized: a little biased, less variance);
- `DoublyRobust`: mean of sum_a pi(a|x) rhat(x, a) + w (r - rhat(x, arm)): unbiased
  when the propensities are right, whatever the reward model, and of small variance
  when the reward model is good.

Each keeps running sums only: memory does not grow with the log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

Z95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class Estimate:
    """A policy value estimate: value, standard error, interval at `level`, decisions used."""

    value: float
    se: float
    low: float
    high: float
    n: int
    level: float = 0.95

    def covers(self, truth: float) -> bool:
        """Whether the interval holds `truth`."""
        return self.low <= truth <= self.high


def _estimate(value: float, se: float, n: int, z: float) -> Estimate:
    return Estimate(value=value, se=se, low=value - z * se, high=value + z * se, n=n)


def _z(level: float) -> float:
    if level == 0.95:
        return Z95
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + level / 2)


class _MeanOf:
    """Running mean and standard error of per-decision terms."""

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0
        self.squares = 0.0

    def add(self, d: float) -> None:
        self.n += 1
        self.total += d
        self.squares += d * d

    def estimate(self, level: float) -> Estimate:
        n = self.n
        if n == 0:
            return Estimate(0.0, math.inf, -math.inf, math.inf, 0, level)
        mean = self.total / n
        var = max(0.0, self.squares / n - mean * mean) * n / max(1, n - 1)
        se = math.sqrt(var / n) if n > 1 else math.inf
        return _estimate(mean, se, n, _z(level))


class IPS:
    """Inverse propensity scoring: the mean of (target probability / propensity) * reward.

    >>> import random
    >>> rng = random.Random(3)
    >>> est = IPS()
    >>> for _ in range(4000):  # logging: uniform over 2 arms; arm 1 pays 1; the target always picks arm 1
    ...     arm = rng.randrange(2)
    ...     est.add(1.0 if arm == 1 else 0.0, 0.5, float(arm))
    >>> e = est.estimate()
    >>> e.covers(1.0), round(e.value, 1), e.n
    (True, 1.0, 4000)
    """

    def __init__(self) -> None:
        self._terms = _MeanOf()

    def add(self, target_probability: float, propensity: float, reward: float) -> None:
        self._terms.add(target_probability / propensity * reward)

    def estimate(self, level: float = 0.95) -> Estimate:
        return self._terms.estimate(level)


class SNIPS:
    """Self-normalized IPS: sum(w r) / sum(w), its standard error from the influence function.

    >>> est = SNIPS()
    >>> for arm in [0, 1] * 500:
    ...     est.add(0.9 if arm else 0.1, 0.5, float(arm))
    >>> round(est.estimate().value, 3)
    0.9
    """

    def __init__(self) -> None:
        self.n = 0
        self._w = self._wr = self._w2 = self._w2r = self._w2r2 = 0.0

    def add(self, target_probability: float, propensity: float, reward: float) -> None:
        w = target_probability / propensity
        self.n += 1
        self._w += w
        self._wr += w * reward
        self._w2 += w * w
        self._w2r += w * w * reward
        self._w2r2 += w * w * reward * reward

    def estimate(self, level: float = 0.95) -> Estimate:
        n = self.n
        if n == 0 or self._w <= 0:
            return Estimate(0.0, math.inf, -math.inf, math.inf, n, level)
        v = self._wr / self._w
        w_mean = self._w / n
        # influence of decision i: w_i (r_i - v) / mean(w); its mean is 0
        ss = self._w2r2 - 2 * v * self._w2r + v * v * self._w2
        se = math.sqrt(max(0.0, ss) / (w_mean * w_mean) / (n * max(1, n - 1))) if n > 1 else math.inf
        return _estimate(v, se, n, _z(level))


class DoublyRobust:
    """Doubly robust: the reward model's value under the target plus the IPS-weighted residual.

    `add(target, arm, propensity, reward, predicted)`: `target` is the candidate's
    probability of every arm, `predicted` the reward model's prediction for every arm.

    >>> est = DoublyRobust()
    >>> for arm in ["a", "b"] * 500:  # a perfect reward model: every term is the true value
    ...     est.add({"a": 0.2, "b": 0.8}, arm, 0.5, 1.0 if arm == "b" else 0.0, {"a": 0.0, "b": 1.0})
    >>> e = est.estimate()
    >>> round(e.value, 3), e.se < 1e-6
    (0.8, True)
    """

    def __init__(self) -> None:
        self._terms = _MeanOf()

    def add(
        self,
        target: Mapping[str, float],
        arm: str,
        propensity: float,
        reward: float,
        predicted: Mapping[str, float],
    ) -> None:
        direct = sum(p * predicted.get(a, 0.0) for a, p in target.items())
        w = target.get(arm, 0.0) / propensity
        self._terms.add(direct + w * (reward - predicted.get(arm, 0.0)))

    def estimate(self, level: float = 0.95) -> Estimate:
        return self._terms.estimate(level)
