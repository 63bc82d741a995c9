"""Build the routing policy object a learned config describes (services wire registry to learners)."""

from __future__ import annotations

import pickle

from flywheel.learners.softmax import SoftmaxPolicy
from flywheel.registry.learned_config import LearnedConfig, state_sha
from flywheel.workflows.routing import Policy


def build_policy(config: LearnedConfig, state: bytes | None = None) -> Policy:
    """The policy object of `config`; a bandit's comes from its pickled state, checked by digest."""
    routing = config.routing
    if routing.kind == "softmax":
        return SoftmaxPolicy(routing.weights, temperature=routing.temperature, seed=routing.seed)
    if routing.kind == "bandit":
        if state is None:
            raise ValueError(f"{config.version}: a bandit config needs its policy state")
        if routing.state_sha and state_sha(state) != routing.state_sha:
            raise ValueError(f"{config.version}: policy state does not match routing.state_sha")
        return pickle.loads(state)
    raise ValueError(f"routing.kind: unknown policy kind {routing.kind!r}")
