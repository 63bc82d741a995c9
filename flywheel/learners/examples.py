"""One learning example: a routed run joined with what became known of its outcome."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
