"""Build the routing policy object a learned config describes, from its safe policy state."""

from __future__ import annotations

from flywheel.learners.softmax import SoftmaxPolicy
from flywheel.learners.state import loads_policy
from flywheel.registry.learned_config import LearnedConfig, state_sha
from flywheel.workflows.routing import Policy


def build_policy(config: LearnedConfig, state: bytes | None = None) -> Policy:
    """The policy object of `config`: a softmax from its weights, or a bandit's RoutingPolicy
    loaded from its policy state (checked by digest; loading never runs code from it)."""
    routing = config.routing
    if routing.kind == "softmax":
        return SoftmaxPolicy(routing.weights, temperature=routing.temperature, seed=routing.seed)
    if routing.kind == "bandit":
        if state is None:
            raise ValueError(f"{config.version}: a bandit config needs its policy state")
        if routing.state_sha and state_sha(state) != routing.state_sha:
            raise ValueError(f"{config.version}: policy state does not match routing.state_sha")
        return loads_policy(state)
    raise ValueError(f"routing.kind: unknown policy kind {routing.kind!r}")
