"""The router deployment: the authority on which learned config is live per workflow.

Routing itself happens inside the ingress replicas with a local copy of the
policy (a hop per request would cost more than the decision); the replicas
long-poll `watch` here and swap their copy as soon as the live version changes.
The live version is the registry's `champion`: every router replica follows it
(checked every `governance.sync_s`, and at once when told by `refresh`), and
runs review and operator operations (`govern`), so MLflow is needed only by
the router and the learner, never on the request path. When MLflow cannot be
reached, the last known champion stays live.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ray import serve

from flywheel.registry.learned_config import LearnedConfig, initial_config
from flywheel.services.governance import CHANGES_LIVE, ChampionSync, GovernanceOps
from flywheel.services.runtime import load_workflows
from flywheel.services.settings import AppSettings

log = logging.getLogger("ray.serve")


@serve.deployment(name="router")
class RouterDeployment:
    async def __init__(self, settings: dict[str, Any]):
        self.settings = AppSettings.model_validate(settings)
        specs = load_workflows(self.settings)
        self._configs: dict[str, tuple[LearnedConfig, bytes | None]] = {
            name: (initial_config(spec, seed=self.settings.seed), None) for name, spec in specs.items()
        }
        self._changed = asyncio.Condition()
        self._sync: ChampionSync | None = None
        self._ops: GovernanceOps | None = None
        if self.settings.learning.enabled:
            self._ops = await asyncio.to_thread(self._make_ops, list(specs))
            self._sync = ChampionSync(self._ops.governor.registry)
            await self.refresh()
            self._task = asyncio.get_running_loop().create_task(self._follow())

    def _make_ops(self, workflows: list[str]) -> GovernanceOps:
        ledger = self.settings.open_ledger()
        ledger.upgrade()
        return GovernanceOps.from_settings(self.settings, ledger, workflows)

    def versions(self) -> dict[str, str]:
        return {wf: c.version for wf, (c, _) in self._configs.items()}

    async def refresh(self, workflow: str | None = None) -> dict[str, str]:
        """Look at the registry's champion now (of one workflow, or all); returns the live versions."""
        if self._sync is None:
            return self.versions()
        for wf in [workflow] if workflow else list(self._configs):
            found = await asyncio.to_thread(self._sync.fetch, wf, self._configs[wf][0].version)
            if found is not None:
                await self._set(*found)
        return self.versions()

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self.settings.governance.sync_s)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("following the registry failed; retrying")

    async def _set(self, config: LearnedConfig, state: bytes | None) -> None:
        async with self._changed:
            self._configs[config.workflow] = (config, state)
            self._changed.notify_all()

    async def publish(self, config: dict[str, Any], state: bytes | None = None) -> str:
        """Make a config (and its policy state) live for its workflow without the registry
        (learning disabled, tests); returns its version."""
        cfg = LearnedConfig.model_validate(config).with_version()
        if cfg.workflow not in self._configs:
            raise ValueError(f"workflow: unknown workflow {cfg.workflow!r}")
        await self._set(cfg, state)
        return cfg.version

    async def govern(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """A review or operator operation (see GovernanceOps); the live version follows at once."""
        if self._ops is None:
            return {"error": {"status": 503, "message": "governance needs learning.enabled (the registry)"}}
        result = await asyncio.to_thread(self._ops.dispatch, op, args)
        if op in CHANGES_LIVE and "error" not in result:
            await self.refresh(args.get("workflow"))
        return result

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
