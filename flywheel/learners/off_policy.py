"""Off-policy gain: how much better a new policy would have done on the logged decisions.

Each logged decision gives (w, r): the new policy's probability of the logged
arm over the logging propensity, and the reward. The self-normalized IPS
estimate (SNIPS) of the new policy's value is sum(w r) / sum(w); the logging
policy's own value is the mean of r. The gain is their difference, and its
standard error comes from the influence function of that difference, so the
two estimates' correlation (same samples) is accounted for.
"""

from __future__ import annotations

import math
from collections import deque


class SnipsGain:
    """Gain of a target policy over the logging policy, from (weight, reward) pairs.

    `learn_one(target_probability, logged_propensity, reward)`; `predict_one()`
    gives (gain, standard error, n). Keeps the last `window` pairs.

    >>> import random
    >>> rng = random.Random(7)
    >>> est = SnipsGain(window=5000)
    >>> for _ in range(4000):  # logging: uniform over 2 arms; arm 1 pays 1, arm 0 pays 0
    ...     arm = rng.randrange(2)
    ...     est.learn_one(target_probability=1.0 if arm == 1 else 0.0, logged_propensity=0.5, reward=float(arm))
    >>> gain, se, n = est.predict_one()
    >>> round(gain, 1), se < 0.02, n
    (0.5, True, 4000)
    """

    def __init__(self, window: int = 2000):
        self.window = window
        self._pairs: deque[tuple[float, float]] = deque(maxlen=window)

    def learn_one(self, target_probability: float, logged_propensity: float, reward: float) -> None:
        if logged_propensity > 0:
            self._pairs.append((target_probability / logged_propensity, reward))

    def predict_one(self) -> tuple[float, float, int]:
        n = len(self._pairs)
        sw = sum(w for w, _ in self._pairs)
        if n == 0 or sw <= 0:
            return 0.0, float("inf"), n
        w_mean = sw / n
        value = sum(w * r for w, r in self._pairs) / sw
        logged = sum(r for _, r in self._pairs) / n
        infl = [w * (r - value) / w_mean - (r - logged) for w, r in self._pairs]
        se = math.sqrt(sum(d * d for d in infl) / n / n) if n > 1 else float("inf")
        return value - logged, se, n

    def reset(self) -> None:
        self._pairs.clear()
