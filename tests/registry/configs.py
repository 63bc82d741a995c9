"""Learned configs, bandit routing and policies for the registry's tests."""

from __future__ import annotations

from flywheel.registry.learned_config import LearnedConfig, RoutingConfig
from flywheel.registry.policy import WorkflowPolicy


def config(**update) -> LearnedConfig:
    base = LearnedConfig(
        workflow="wf",
        version="wf@1",
        thresholds={"confidence": 0.7},
        routing=RoutingConfig(weights={"fast": 0.0, "strong": 0.5}, temperature=1.0, exploration=0.1),
        cost_weight=1.0,
    )
    return base.model_copy(update=update)


def bandit(**routing) -> RoutingConfig:
    values = {"kind": "bandit", "weights": {"fast": 0.2, "strong": 0.5}, "exploration": 0.1, "state_sha": "abc"}
    return RoutingConfig(**(values | routing))


def policy(**parameters) -> WorkflowPolicy:
    return WorkflowPolicy(parameters=parameters)
