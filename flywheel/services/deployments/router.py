"""The router deployment: the authority on which learned config is live per workflow.

Routing itself happens inside the ingress replicas with a local copy of the
policy (a hop per request would cost more than the decision); the replicas
long-poll `watch` here and swap their copy as soon as the live version changes.
The live version is the registry's `champion`: every router replica follows it
(checked every `governance.sync_s`, and at once when told by `refresh`), and
runs review and operator operations (one typed method each, raising typed
errors), so MLflow is needed only by the router and the learner, never on the
request path. Nothing else makes a config live: every change goes through the
governor and its audit trail. When MLflow cannot be reached, the last known
champion stays live. When the live configs' `resources` change, the router applies them to
the app's agent deployments (flywheel.services.resources: Serve's config update, in place).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from ray import serve

from flywheel.registry.learned_config import LearnedConfig, initial_config
from flywheel.registry.views import HistoryView
from flywheel.services.governance import ChampionSync, GovernanceOps
from flywheel.services.governance_api import (
    AuditReport,
    ChangeResult,
    GovernanceDisabled,
    ProposalDetail,
    ProposalList,
)
from flywheel.services.resources import NotDeclarative, ResourceApplier
from flywheel.services.runtime import load_workflows
from flywheel.services.settings import AppSettings

log = logging.getLogger("ray.serve")
T = TypeVar("T")


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
        self._applier: ResourceApplier | None = None
        if self.settings.learning.enabled:
            self._applier = ResourceApplier(self.settings, serve.get_replica_context().app_name)
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
                await self.apply_resources()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("following the registry failed; retrying")

    async def apply_resources(self) -> list[str] | None:
        """Apply the live configs' resources to the agent deployments if they changed; returns the
        deployments changed (None: the app is not running yet, or resources are not applied)."""
        if self._applier is None:
            return None
        try:
            return await asyncio.to_thread(self._applier.follow, [c for c, _ in self._configs.values()])
        except NotDeclarative as e:
            log.warning("resources are not applied: %s", e)
            self._applier = None
            return None

    async def _set(self, config: LearnedConfig, state: bytes | None) -> None:
        async with self._changed:
            self._configs[config.workflow] = (config, state)
            self._changed.notify_all()

    async def _op(self, call: Callable[[], T]) -> T:
        """Run a GovernanceOps call in a thread; its typed errors cross the handle as they are."""
        if self._ops is None:
            raise GovernanceDisabled()
        return await asyncio.to_thread(call)

    async def _live(self, call: Callable[[], ChangeResult]) -> ChangeResult:
        """A change of what is live: the live version follows the champion at once."""
        result = await self._op(call)
        await self.refresh(result.workflow)
        try:
            await self.apply_resources()
        except Exception:  # the change is live; the follow loop applies the resources again
            log.exception("applying the live resources failed; retrying")
        return result

    # -- review and operators (see GovernanceOps) ---------------------------------

    async def proposals(self, workflow: str | None = None) -> ProposalList:
        return await self._op(lambda: self._ops.proposals(workflow))

    async def show(self, workflow: str, version: int | None = None) -> ProposalDetail:
        return await self._op(lambda: self._ops.show(workflow, version))

    async def approve(self, workflow: str, version: int | None, *, actor: str, reason: str) -> ChangeResult:
        return await self._live(lambda: self._ops.approve(workflow, version, actor=actor, reason=reason))

    async def reject(self, workflow: str, version: int | None, *, actor: str, reason: str) -> ChangeResult:
        return await self._op(lambda: self._ops.reject(workflow, version, actor=actor, reason=reason))

    async def pin(self, workflow: str, version: int, *, actor: str, reason: str) -> ChangeResult:
        return await self._live(lambda: self._ops.pin(workflow, version, actor=actor, reason=reason))

    async def unpin(self, workflow: str, *, actor: str, reason: str) -> ChangeResult:
        return await self._live(lambda: self._ops.unpin(workflow, actor=actor, reason=reason))

    async def rollback(self, workflow: str, to: int | None, *, actor: str, reason: str,
                       pin: bool = False) -> ChangeResult:
        return await self._live(lambda: self._ops.rollback(workflow, to, actor=actor, reason=reason, pin=pin))

    async def history(self, workflow: str) -> HistoryView:
        return await self._op(lambda: self._ops.history(workflow))

    async def audit_verify(self) -> AuditReport:
        return await self._op(lambda: self._ops.audit_verify())

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
