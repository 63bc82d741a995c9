"""The router deployment: the authority on which learned config is live per workflow.

Routing itself happens inside the ingress replicas with a local copy of the
policy (a hop per request would cost more than the decision); the replicas
long-poll `watch` here and swap their copy as soon as a new version is published.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve

from flywheel.registry.learned_config import LearnedConfig, initial_config
from flywheel.services.runtime import load_workflows
from flywheel.services.settings import AppSettings


@serve.deployment(name="router")
class RouterDeployment:
    def __init__(self, settings: dict[str, Any]):
        app = AppSettings.model_validate(settings)
        specs = load_workflows(app)
        self._configs: dict[str, LearnedConfig] = {
            name: initial_config(spec, seed=app.seed) for name, spec in specs.items()
        }
        self._changed = asyncio.Condition()

    def versions(self) -> dict[str, str]:
        return {wf: c.version for wf, c in self._configs.items()}

    async def publish(self, config: dict[str, Any]) -> str:
        """Make a learned config live for its workflow; returns its version."""
        cfg = LearnedConfig.model_validate(config).with_version()
        if cfg.workflow not in self._configs:
            raise ValueError(f"workflow: unknown workflow {cfg.workflow!r}")
        async with self._changed:
            self._configs[cfg.workflow] = cfg
            self._changed.notify_all()
        return cfg.version

    async def watch(self, known: dict[str, str], timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """The configs whose live version differs from `known`; waits up to timeout_s for one."""

        def changed() -> list[dict[str, Any]]:
            return [
                c.model_dump() for wf, c in self._configs.items() if known.get(wf) != c.version
            ]

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: bool(changed())), timeout_s)
            except asyncio.TimeoutError:
                pass
            return changed()
