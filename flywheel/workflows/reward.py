"""The workflow's objective applied to an outcome."""

from __future__ import annotations

from typing import Mapping

from flywheel.ledger.records import OutcomeEvent
from flywheel.workflows.spec import Objective, WorkflowSpec


def outcome_quality(success: bool | None, quality: float | None) -> float | None:
    """Quality of an outcome in [0, 1]: the quality score if given, else success as 1 or 0."""
    if quality is not None:
        return float(quality)
    if success is not None:
        return 1.0 if success else 0.0
    return None


def reward(
    objective: Objective,
    *,
    quality: float,
    cost: float,
    latency_s: float,
    human_override: bool = False,
) -> float:
    """Quality minus weighted cost, latency and override penalty.

    >>> from flywheel.workflows.spec import Objective
    >>> obj = Objective(quality_weight=1.0, cost_weight=10.0, latency_weight=0.1)
    >>> round(reward(obj, quality=1.0, cost=0.01, latency_s=2.0), 6)
    0.7
    """
    return (
        objective.quality_weight * quality
        - objective.cost_weight * cost
        - objective.latency_weight * latency_s
        - (objective.override_penalty if human_override else 0.0)
    )


def outcome_reward(
    specs: Mapping[str, WorkflowSpec], workflow: str, event: OutcomeEvent, agent_cost: float, agent_latency_s: float
) -> float:
    """The reward the ledger stores with an outcome: its workflow's objective applied to it, the
    agent's own cost and latency standing in for those the outcome does not report (an unknown
    workflow: the quality alone)."""
    quality = outcome_quality(event.success, event.quality) or 0.0
    spec = specs.get(workflow)
    if spec is None:
        return quality
    return reward(
        spec.objective,
        quality=quality,
        cost=event.cost if event.cost is not None else agent_cost,
        latency_s=event.latency_s if event.latency_s is not None else agent_latency_s,
        human_override=event.human_override,
    )
