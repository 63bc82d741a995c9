"""Drift of each arm's reward, watched by one ADWIN detector per arm.

ADWIN (River's `drift.ADWIN`) keeps a window of an arm's recent rewards and cuts
off its older part when the two parts' means differ by more than chance allows
(confidence `delta`). A cut is a drift: the arm's reward changed (a model got
worse or better, or went down). Each detection is kept as a `DriftEvent` with
the arm's mean reward before the cut and its mean over its latest rewards.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from river.drift import ADWIN

RECENT = 32  # rewards of an arm kept to report its mean after a drift


@dataclass(slots=True, frozen=True)
class DriftEvent:
    """One detected change of an arm's reward."""

    arm: str
    at_update: int  # the monitor's update count (all arms) when it was detected
    arm_updates: int  # the arm's own update count then
    mean_before: float  # the arm's mean reward over its ADWIN window just before the detection
    mean_after: float  # its mean over its last RECENT rewards (the new level, as far as seen)
    detector: str = "adwin"  # what saw it: "adwin", or "availability" (an arm failing, then answering)


class DriftMonitor:
    """One ADWIN per arm on that arm's reward; `update` says whether it just drifted.

    Parameters are stored as given and passed to every arm's ADWIN (`clock`: how
    often, in updates, it checks for a cut); learned state starts with `_`.

    >>> import random
    >>> rng = random.Random(3)
    >>> monitor = DriftMonitor()
    >>> for i in range(4000):
    ...     arm = "fast" if i % 2 else "strong"
    ...     p = 0.9 if arm == "fast" or i < 2000 else 0.5  # strong degrades at update 2000
    ...     _ = monitor.update(arm, float(rng.random() < p))
    >>> [(e.arm, e.at_update, round(e.mean_before, 2), round(e.mean_after, 2)) for e in monitor.events]
    [('strong', 2057, 0.89, 0.41)]
    """

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 1,
        min_window_length: int = 5,
        grace_period: int = 30,
    ):
        self.delta = delta
        self.clock = clock
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        self._detectors: dict[str, ADWIN] = {}
        self._updates: dict[str, int] = {}
        self._recent: dict[str, deque[float]] = {}
        self._events: list[DriftEvent] = []
        self._n = 0
        self._last = False

    def _detector(self, arm: str) -> ADWIN:
        d = self._detectors.get(arm)
        if d is None:
            d = self._detectors[arm] = ADWIN(
                delta=self.delta,
                clock=self.clock,
                min_window_length=self.min_window_length,
                grace_period=self.grace_period,
            )
            self._updates[arm] = 0
            self._recent[arm] = deque(maxlen=RECENT)
        return d

    def update(self, arm: str, reward: float) -> bool:
        """Add one reward of `arm`; True when this update detected a drift on that arm."""
        d = self._detector(arm)
        before = d.estimation
        d.update(reward)
        recent = self._recent[arm]
        recent.append(reward)
        self._n += 1
        self._updates[arm] += 1
        self._last = bool(d.drift_detected)
        if self._last:
            self._events.append(
                DriftEvent(
                    arm=arm,
                    at_update=self._n,
                    arm_updates=self._updates[arm],
                    mean_before=float(before),
                    mean_after=sum(recent) / len(recent),
                )
            )
        return self._last

    learn_one = update  # the River verb for the same thing

    @property
    def drift_detected(self) -> bool:
        """Whether the last update detected a drift (River's detector protocol)."""
        return self._last

    def predict_one(self, arm: str) -> float:
        """The arm's mean reward over its current window (0.0 for an arm not seen)."""
        d = self._detectors.get(arm)
        return float(d.estimation) if d is not None else 0.0

    @property
    def events(self) -> list[DriftEvent]:
        """Every drift detected, in order."""
        return list(self._events)

    @property
    def n_updates(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return f"DriftMonitor(delta={self.delta}, clock={self.clock}, grace_period={self.grace_period})"
