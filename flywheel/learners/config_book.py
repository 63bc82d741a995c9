"""The live learned configs of every workflow, swapped whole when a new version arrives."""

from __future__ import annotations

from flywheel.registry.learned_config import LearnedConfig
from flywheel.learners.policies import build_policy
from flywheel.workflows.engine import LiveConfig


_PROBE: dict = {"prompt": "probe"}


class ConfigBook:
    """Holds one LiveConfig per workflow. Swapping is one dict assignment: a run in
    flight keeps the config it started with, the next run sees the new one."""

    def __init__(self, configs: list[LearnedConfig]):
        self._learned: dict[str, LearnedConfig] = {}
        self._live: dict[str, LiveConfig] = {}
        for c in configs:
            self.apply(c)

    def apply(self, config: LearnedConfig, state: bytes | None = None) -> bool:
        """Make `config` live for its workflow; False if that version is already live."""
        config = config.with_version()
        current = self._learned.get(config.workflow)
        if current is not None and current.version == config.version:
            return False
        policy = build_policy(config, state)
        try:  # a version that cannot decide (e.g. state saved by code that no longer matches) never goes live
            policy.decide(_PROBE, key="probe", arms=list(config.routing.weights) or ["probe"])
        except Exception as e:
            raise ValueError(f"{config.version}: refused, its policy cannot decide: {e!r}") from e
        live = LiveConfig(version=config.version, policy=policy, thresholds=dict(config.thresholds))
        self._learned[config.workflow] = config
        self._live[config.workflow] = live
        return True

    def live(self, workflow: str) -> LiveConfig:
        return self._live[workflow]

    def learned(self, workflow: str) -> LearnedConfig:
        return self._learned[workflow]

    def versions(self) -> dict[str, str]:
        return {wf: c.version for wf, c in self._learned.items()}
