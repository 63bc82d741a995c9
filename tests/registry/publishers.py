"""Process entry points for the concurrency tests (spawned processes import them from here)."""

from __future__ import annotations

import time

from flywheel.ledger import Ledger
from flywheel.registry.governor import Governor
from flywheel.registry.learned_config import LearnedConfig, RoutingConfig
from flywheel.registry.mlflow_registry import MlflowRegistry
from flywheel.registry.policy import PolicyBook

AUTO = PolicyBook.model_validate({"default": {"out_of_bounds": "clip", "over_step": "review", "parameters": {}}})
"""Every proposal goes live by itself: the tests count versions and audit entries, not decisions."""


def config(workflow: str, threshold: float) -> LearnedConfig:
    return LearnedConfig(workflow=workflow, thresholds={"confidence": threshold},
                         routing=RoutingConfig(weights={"fast": 0.2, "strong": 0.5}), cost_weight=1.0)


def wait_until(at: float) -> None:
    time.sleep(max(0.0, at - time.time()))


def publish_all(database_url: str, tracking_uri: str, artifacts: str, start_at: float) -> int:
    """Publish until nothing waits; returns how many versions this publisher decided."""
    ledger = Ledger(database_url)
    governor = Governor(MlflowRegistry(tracking_uri, artifacts), ledger, AUTO)
    wait_until(start_at)
    decided = 0
    deadline = time.time() + 120
    try:
        while ledger.unpublished_versions() and time.time() < deadline:
            decided += len(governor.publish_outbox())
            time.sleep(0.01)
    finally:
        ledger.dispose()
    return decided


def open_and_register(tracking_uri: str, artifacts: str, workflow: str, start_at: float) -> int:
    """Open a registry on a store that may not exist yet, register one version, read it back."""
    wait_until(start_at)
    registry = MlflowRegistry(tracking_uri, artifacts)
    number = registry.register(config(workflow, 0.7), learner_state=b"s", policy_state=None,
                               evidence={"outcomes": 1.0}, position=1, proposed_by=workflow)
    assert registry.version(workflow, number).config.thresholds == {"confidence": 0.7}
    return number
