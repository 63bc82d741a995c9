"""The router deployment: the authority on which learned config is live per workflow.

Routing itself happens inside the ingress replicas with a local copy of the
policy (a hop per request would cost more than the decision); the replicas
long-poll `watch` here and swap their copy as soon as a new version is published.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve

import logging

from flywheel.registry.learned_config import LearnedConfig, initial_config
from flywheel.services.config_book import ConfigBook
from flywheel.services.runtime import load_workflows
from flywheel.services.settings import AppSettings


def _starting_configs(app: AppSettings) -> dict[str, tuple[LearnedConfig, bytes | None]]:
    """Each workflow's champion from the registry, or its spec's initial config."""
    specs = load_workflows(app)
    configs: dict[str, tuple[LearnedConfig, bytes | None]] = {
        name: (initial_config(spec, seed=app.seed), None) for name, spec in specs.items()
    }
    if app.learning.enabled:
        from flywheel.registry.mlflow_registry import MlflowRegistry

        registry = MlflowRegistry(app.learning.mlflow_tracking_uri, app.learning.mlflow_artifacts)
        for name in specs:
            try:
                champion = registry.champion(name)
                if champion is not None:
                    ConfigBook([]).apply(champion.config, champion.policy_state)  # it can decide
                    configs[name] = (champion.config, champion.policy_state)
            except Exception:  # an unreadable champion: serve the spec's config, say why
                log.exception("champion of %s cannot be used; serving the initial config", name)
    return configs


log = logging.getLogger("ray.serve")


@serve.deployment(name="router")
class RouterDeployment:
    async def __init__(self, settings: dict[str, Any]):
        app = AppSettings.model_validate(settings)
        self._configs = await asyncio.to_thread(_starting_configs, app)
        self._changed = asyncio.Condition()

    def versions(self) -> dict[str, str]:
        return {wf: c.version for wf, (c, _) in self._configs.items()}

    async def publish(self, config: dict[str, Any], state: bytes | None = None) -> str:
        """Make a learned config (and its policy state) live for its workflow; returns its version."""
        cfg = LearnedConfig.model_validate(config).with_version()
        if cfg.workflow not in self._configs:
            raise ValueError(f"workflow: unknown workflow {cfg.workflow!r}")
        async with self._changed:
            self._configs[cfg.workflow] = (cfg, state)
            self._changed.notify_all()
        return cfg.version

    async def watch(self, known: dict[str, str], timeout_s: float = 10.0) -> list[tuple[dict[str, Any], bytes | None]]:
        """(config, policy state) of the workflows whose live version differs from `known`;
        waits up to timeout_s for one."""

        def changed() -> list[tuple[dict[str, Any], bytes | None]]:
            return [
                (c.model_dump(), state)
                for wf, (c, state) in self._configs.items()
                if known.get(wf) != c.version
            ]

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: bool(changed())), timeout_s)
            except asyncio.TimeoutError:
                pass
            return changed()
