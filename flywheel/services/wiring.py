"""Builders from the app settings to the plain-Python parts the deployments drive."""

from __future__ import annotations

from flywheel.ledger import Ledger
from flywheel.learners.loop import LearningLoop
from flywheel.registry.governor import Governor
from flywheel.registry.mlflow_registry import MlflowRegistry
from flywheel.registry.policy import load_policies
from flywheel.services.runtime import load_workflows
from flywheel.services.settings import AppSettings


def governor_of(settings: AppSettings, ledger: Ledger) -> Governor:
    """The governor over the settings' registry and policies, writing to `ledger`."""
    learning = settings.learning
    registry = MlflowRegistry(learning.mlflow_tracking_uri, learning.mlflow_artifacts)
    return Governor(registry, ledger, load_policies(settings.governance.policies))


def learning_loop(settings: AppSettings) -> LearningLoop:
    """The loop of these settings, restored from its newest state (outbox, else registry)."""
    learning = settings.learning
    ledger = settings.open_ledger()
    ledger.upgrade()
    governor = governor_of(settings, ledger)
    loop = LearningLoop(
        load_workflows(settings),
        ledger,
        governor.registry,
        governor=governor,
        seed=settings.seed,
        n_bits=learning.n_bits,
        publish_every_outcomes=learning.publish_every_outcomes,
        publish_every_s=learning.publish_every_s,
    )
    loop.restore()
    return loop
