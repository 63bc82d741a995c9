"""Build the routing policy object a learned config describes (services wire registry to learners)."""

from __future__ import annotations

from flywheel.learners.softmax import SoftmaxPolicy
from flywheel.registry.learned_config import LearnedConfig
from flywheel.workflows.routing import Policy


def build_policy(config: LearnedConfig) -> Policy:
    routing = config.routing
    if routing.kind == "softmax":
        return SoftmaxPolicy(routing.weights, temperature=routing.temperature, seed=routing.seed)
    raise ValueError(f"routing.kind: unknown policy kind {routing.kind!r}")
