"""A gate's confidence threshold, learned online from the correctness of every run.

Runs whose confidence is at or above the threshold complete without a human
(unattended); the others wait for a human. Every run's correctness becomes known
sooner or later (unattended runs through their outcomes, reviewed runs through
the human's verdict), so the learner sees both sides of the threshold, and the
threshold can move down as well as up.

The learner keeps a decayed histogram of confidence (bins of width 1/n_bins):
per bin, how many answers were right and how many wrong, each count halving
every `half_life` events so the estimate follows an agent whose calibration
changes. The threshold is the lowest bin edge inside [low, high] (or `low`
itself) at which the unattended error rate's Wilson upper bound (z standard
errors) is at or under `target_error_rate`, counting the whole bin that holds
the threshold as unattended (the bin's lower part errs more, if anything): as few runs as possible go to a human while the error rate
among runs completed without one stays under the target. When no edge meets the
target, the threshold is `high`; before `min_samples` events it is the
`threshold` it was given (the spec's), clipped to [low, high].
"""

from __future__ import annotations

import math


class ThresholdLearner:
    """The lowest confidence threshold whose unattended error rate stays under a target.

    Parameters are stored as given; learned state starts with `_`.

    A calibrated agent (an answer of confidence c is right with probability c):
    the error rate above t is (1 - t) / 2, so a 5% target needs t >= 0.9.

    >>> import random
    >>> rng = random.Random(7)
    >>> gate = ThresholdLearner(threshold=0.7, target_error_rate=0.05, low=0.3, high=0.98, half_life=20000)
    >>> for _ in range(20000):
    ...     c = rng.random()
    ...     gate.learn_one(c, rng.random() < c)
    >>> round(gate.predict_one(), 2), round(gate.error_rate(), 3), round(gate.human_share(), 2)
    (0.94, 0.034, 0.94)
    >>> ThresholdLearner(threshold=0.7).predict_one()  # no evidence yet: the spec's threshold
    0.7
    """

    def __init__(
        self,
        threshold: float = 0.5,
        target_error_rate: float = 0.05,
        low: float = 0.0,
        high: float = 1.0,
        n_bins: int = 50,
        half_life: int = 1000,
        min_samples: int = 300,
        z: float = 1.64,
    ):
        self.threshold = threshold
        self.target_error_rate = target_error_rate
        self.low = low
        self.high = high
        self.n_bins = n_bins
        self.half_life = half_life
        self.min_samples = min_samples
        self.z = z
        self._right = [0.0] * n_bins
        self._wrong = [0.0] * n_bins
        self._grow = 1.0  # weight of the next event; stored counts / _grow are the decayed counts
        self._decay = 0.5 ** (1.0 / max(1, half_life))
        self._n = 0
        self._current: float | None = None  # cached threshold (None: recompute)

    # -- learning ------------------------------------------------------------

    def learn_one(self, confidence: float, correct: bool) -> None:
        """Learn that an answer of this confidence was right (True) or wrong (False).

        Raises ValueError (learning nothing) when the confidence is not a finite number in [0, 1].
        """
        if isinstance(confidence, bool) or not (isinstance(confidence, (int, float)) and 0.0 <= confidence <= 1.0):
            raise ValueError(f"confidence must be a finite number within [0, 1], got {confidence!r}")
        b = min(self.n_bins - 1, max(0, int(confidence * self.n_bins)))
        if correct:
            self._right[b] += self._grow
        else:
            self._wrong[b] += self._grow
        self._grow /= self._decay
        if self._grow > 1e100:  # rescale before the stored counts overflow
            self._right = [v / self._grow for v in self._right]
            self._wrong = [v / self._grow for v in self._wrong]
            self._grow = 1.0
        self._n += 1
        self._current = None

    # -- prediction ----------------------------------------------------------

    def predict_one(self) -> float:
        """The threshold now: a run completes without a human when confidence >= it."""
        if self._current is None:
            self._current = self._choose()
        return self._current

    def _clip(self, t: float) -> float:
        return min(self.high, max(self.low, t))

    def _choose(self) -> float:
        if self._n < self.min_samples:
            return self._clip(self.threshold)
        first = max(0, math.floor(self.low * self.n_bins + 1e-9))  # the bin holding `low`
        last = min(self.n_bins - 1, math.floor(self.high * self.n_bins + 1e-9))
        right = wrong = 0.0
        best: int | None = None
        for i in range(self.n_bins - 1, first - 1, -1):  # suffix sums, from the top bin down
            right += self._right[i]
            wrong += self._wrong[i]
            if i <= last and self._upper(wrong / self._grow, (right + wrong) / self._grow) <= self.target_error_rate:
                best = i
        return self._clip(best / self.n_bins) if best is not None else self.high

    def _upper(self, wrong: float, n: float) -> float:
        """Wilson upper bound of an error rate from (decayed) counts."""
        if n <= 0:
            return 1.0
        z2 = self.z * self.z
        p = wrong / n
        centre = p + z2 / (2 * n)
        spread = self.z * math.sqrt(max(0.0, p * (1 - p) / n + z2 / (4 * n * n)))
        return (centre + spread) / (1 + z2 / n)

    def _counts(self, threshold: float) -> tuple[float, float, float]:
        """(wrong above, all above, all) decayed counts at `threshold`."""
        cut = min(self.n_bins, max(0, math.floor(threshold * self.n_bins + 1e-9)))  # the bin holding it
        wrong = sum(self._wrong[cut:]) / self._grow
        above = wrong + sum(self._right[cut:]) / self._grow
        total = (sum(self._wrong) + sum(self._right)) / self._grow
        return wrong, above, total

    def error_rate(self, threshold: float | None = None) -> float:
        """Estimated error rate of unattended runs at `threshold` (default: the current one)."""
        wrong, above, _ = self._counts(self.predict_one() if threshold is None else threshold)
        return wrong / above if above > 0 else 0.0

    def error_rate_upper(self, threshold: float | None = None) -> float:
        """The Wilson upper bound the threshold is chosen by, at `threshold` (default: current)."""
        wrong, above, _ = self._counts(self.predict_one() if threshold is None else threshold)
        return self._upper(wrong, above)

    def human_share(self, threshold: float | None = None) -> float:
        """Estimated share of runs that go to a human at `threshold` (default: the current one)."""
        _, above, total = self._counts(self.predict_one() if threshold is None else threshold)
        return 1.0 - above / total if total > 0 else 0.0

    @property
    def n_seen(self) -> int:
        """Events learned from."""
        return self._n

    def __repr__(self) -> str:
        return (
            f"ThresholdLearner(threshold={self.threshold}, target_error_rate={self.target_error_rate}, "
            f"low={self.low}, high={self.high})"
        )
