"""One learning example: a routed run joined with what became known of its outcome."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True, frozen=True)
class Ceilings:
    """The largest magnitudes a learner takes in, whatever the edge let through.

    The HTTP API and the ledger bound outcomes much tighter (OutcomeLimits); these
    ceilings are the learners' own defence: an example beyond them is refused (a numeric
    input field beyond +-`feature` too), and when deciding, a numeric field is clipped to
    [0, `feature`] as it is featurized.
    """

    cost_usd: float = 1e6
    latency_s: float = 1e7
    feature: float = 1e6


CEILINGS = Ceilings()


class RefusedExample(ValueError):
    """A learning example a learner will not learn from (its reason is the message)."""


def finite(value: Any) -> bool:
    """Whether `value` is a real, finite number (a bool is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def within(name: str, value: Any, low: float, high: float) -> str | None:
    """None when `value` is a finite number in [low, high], else why not (naming `name`)."""
    if finite(value) and low <= value <= high:
        return None
    return f"{name} must be a finite number within [{low:g}, {high:g}], got {value!r}"


@dataclass(slots=True)
class LearningExample:
    """What a workflow's learners learn from one run.

    `confidence` is None when the agent failed (no answer: the run failed);
    `correct` is None when nobody knows whether the answer was right.
    """

    x: dict[str, Any]  # the router's features as logged with the decision (features_of output)
    arm: str
    propensity: float
    quality: float  # 0..1
    cost: float
    latency_s: float
    confidence: float | None  # the agent's confidence, None if the agent failed
    correct: bool | None  # whether the agent's answer was right (None: unknown)
    gate: str | None = None  # the gate step id that judged the confidence, if any
    human_override: bool = False
    decided_at: float | None = None  # when (or in what order) the run was decided; None: unknown

    @property
    def failed(self) -> bool:
        """Whether the agent failed (gave no answer)."""
        return self.confidence is None


def example_problem(ex: LearningExample, ceilings: Ceilings = CEILINGS) -> str | None:
    """Why `ex` must not be learned from (a non-finite or absurd number), or None when it may be.

    >>> ok = LearningExample({"n": 3}, "a", 0.5, quality=1.0, cost=0.01, latency_s=2.0, confidence=0.9, correct=True)
    >>> example_problem(ok) is None
    True
    >>> example_problem(LearningExample({"n": float("nan")}, "a", 0.5, 1.0, 0.01, 2.0, 0.9, True))
    'x.n must be a finite number within [-1e+06, 1e+06], got nan'
    >>> example_problem(LearningExample({}, "a", 0.5, 1.0, 1e308, 2.0, 0.9, True))
    'cost must be a finite number within [0, 1e+06], got 1e+308'
    """
    checks = [
        within("quality", ex.quality, 0.0, 1.0),
        within("cost", ex.cost, 0.0, ceilings.cost_usd),
        within("latency_s", ex.latency_s, 0.0, ceilings.latency_s),
        None if finite(ex.propensity) and 0.0 < ex.propensity <= 1.0
        else f"propensity must be within (0, 1], got {ex.propensity!r}",
        None if ex.confidence is None else within("confidence", ex.confidence, 0.0, 1.0),
        None if ex.decided_at is None or finite(ex.decided_at) else f"decided_at must be finite, got {ex.decided_at!r}",
    ]
    for name, v in ex.x.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            checks.append(within(f"x.{name}", v, -ceilings.feature, ceilings.feature))
    return next((c for c in checks if c is not None), None)
