"""Governance operations with typed arguments, results and errors, and how routers follow the champion.

`GovernanceOps` runs one Governor or view operation per method and raises a
`GovernanceError` placed at the request field it concerns (`loc`); the router
deployment and `LocalGovernance` (the in-process client) call it.
`ChampionSync` reads the registry's champion of a workflow when it differs from
the live one; routers apply what it returns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from flywheel.registry.governor import GovernanceError, Governor, NotFound
from flywheel.registry.learned_config import LearnedConfig
from flywheel.registry.mlflow_registry import MlflowRegistry, RegistryUnavailable, version_label
from flywheel.registry import views
from flywheel.registry.views import HistoryView
from flywheel.learners.config_book import ConfigBook
from flywheel.services.governance_api import (
    AuditReport,
    ChangeResult,
    ProposalDetail,
    ProposalList,
    RegistryDown,
)

if TYPE_CHECKING:
    from flywheel.services.settings import AppSettings
    from flywheel.ledger import Ledger

log = logging.getLogger(__name__)

Loc = tuple[str, ...]
WORKFLOW: Loc = ("path", "workflow")
VERSION: Loc = ("path", "version")


class GovernanceOps:
    """The operations of review and operators, over one registry and ledger.

    Each method names where its arguments come from in the HTTP request, so an error
    about an argument (`GovernanceError.about`) leaves here with its `loc`."""

    def __init__(self, governor: Governor, workflows: list[str]):
        self.governor = governor
        self.workflows = workflows

    @classmethod
    def from_settings(cls, settings: "AppSettings", ledger: "Ledger", workflows: list[str]) -> "GovernanceOps":
        from flywheel.registry.policy import load_policies

        learning = settings.learning
        registry = MlflowRegistry(learning.mlflow_tracking_uri, learning.mlflow_artifacts)
        return cls(Governor(registry, ledger, load_policies(settings.governance.policies)), workflows)

    @contextmanager
    def _placed(self, workflow: str | None, workflow_at: Loc = WORKFLOW, **at: Loc) -> Iterator[None]:
        """Check the workflow; place errors at their request field; hide the tracking URI."""
        if workflow is not None and workflow not in self.workflows:
            raise NotFound(f"unknown workflow {workflow!r}").at(workflow_at)
        try:
            yield
        except GovernanceError as e:
            if not e.loc:
                e.at(at.get(e.about, workflow_at))
            raise
        except RegistryUnavailable as e:
            log.warning("governance: %s", e)  # the URI (maybe with credentials) goes only to the log
            raise RegistryDown() from None

    def proposals(self, workflow: str | None = None) -> ProposalList:
        with self._placed(workflow, ("query", "workflow")):
            wfs = [workflow] if workflow else self.workflows
            return ProposalList(views.proposals(self.governor.registry, wfs))

    def show(self, workflow: str, version: int | None = None) -> ProposalDetail:
        with self._placed(workflow, number=VERSION):
            return ProposalDetail.of(views.proposal(self.governor.registry, workflow, version))

    def approve(self, workflow: str, version: int | None, *, actor: str, reason: str) -> ChangeResult:
        with self._placed(workflow, number=VERSION):
            return ChangeResult.of(self.governor.approve(workflow, version, reviewer=actor, reason=reason))

    def reject(self, workflow: str, version: int | None, *, actor: str, reason: str) -> ChangeResult:
        with self._placed(workflow, number=VERSION):
            return ChangeResult.of(self.governor.reject(workflow, version, reviewer=actor, reason=reason))

    def pin(self, workflow: str, version: int, *, actor: str, reason: str) -> ChangeResult:
        with self._placed(workflow, number=("body", "version")):
            return ChangeResult.of(self.governor.pin(workflow, version, actor=actor, reason=reason))

    def unpin(self, workflow: str, *, actor: str, reason: str) -> ChangeResult:
        with self._placed(workflow):
            return ChangeResult.of(self.governor.unpin(workflow, actor=actor, reason=reason))

    def rollback(self, workflow: str, to: int | None, *, actor: str, reason: str, pin: bool = False) -> ChangeResult:
        with self._placed(workflow, to=("body", "to")):
            return ChangeResult.of(self.governor.rollback(workflow, to, actor=actor, reason=reason, pin=pin))

    def history(self, workflow: str) -> HistoryView:
        with self._placed(workflow):
            return views.history(self.governor.registry, self.governor.ledger, workflow)

    def audit_verify(self) -> AuditReport:
        with self._placed(None):
            entries = self.governor.ledger.audit_entries()
            problems = self.governor.ledger.verify_audit()
            return AuditReport(entries=len(entries), intact=not problems, problems=problems)


class LocalGovernance:
    """The GovernanceClient over in-process operations (`flywheel up --local`, tests): runs each
    in a thread, and after a change of what is live calls `follow(workflow)` so the runtime
    serves the new champion at once."""

    def __init__(self, ops: GovernanceOps, follow: Callable[[str], Awaitable[None]]):
        self.ops = ops
        self.follow = follow

    async def _changed(self, result: ChangeResult) -> ChangeResult:
        await self.follow(result.workflow)
        return result

    async def proposals(self, workflow: str | None = None) -> ProposalList:
        return await asyncio.to_thread(self.ops.proposals, workflow)

    async def show(self, workflow: str, version: int | None = None) -> ProposalDetail:
        return await asyncio.to_thread(self.ops.show, workflow, version)

    async def approve(self, workflow: str, version: int | None, *, actor: str, reason: str) -> ChangeResult:
        return await self._changed(
            await asyncio.to_thread(self.ops.approve, workflow, version, actor=actor, reason=reason))

    async def reject(self, workflow: str, version: int | None, *, actor: str, reason: str) -> ChangeResult:
        return await asyncio.to_thread(self.ops.reject, workflow, version, actor=actor, reason=reason)

    async def pin(self, workflow: str, version: int, *, actor: str, reason: str) -> ChangeResult:
        return await self._changed(
            await asyncio.to_thread(self.ops.pin, workflow, version, actor=actor, reason=reason))

    async def unpin(self, workflow: str, *, actor: str, reason: str) -> ChangeResult:
        return await self._changed(await asyncio.to_thread(self.ops.unpin, workflow, actor=actor, reason=reason))

    async def rollback(self, workflow: str, to: int | None, *, actor: str, reason: str,
                       pin: bool = False) -> ChangeResult:
        return await self._changed(
            await asyncio.to_thread(self.ops.rollback, workflow, to, actor=actor, reason=reason, pin=pin))

    async def history(self, workflow: str) -> HistoryView:
        return await asyncio.to_thread(self.ops.history, workflow)

    async def audit_verify(self) -> AuditReport:
        return await asyncio.to_thread(self.ops.audit_verify)


class ChampionSync:
    """Fetches a workflow's champion from the registry when it is not the live version."""

    def __init__(self, registry: MlflowRegistry):
        self.registry = registry
        self._warned_at = 0.0

    def fetch(self, workflow: str, live_version: str | None) -> tuple[LearnedConfig, bytes | None] | None:
        """(config, policy state) of the champion if it differs from `live_version` and can decide;
        None when it is the same, there is none, or MLflow cannot be reached (serving goes on)."""
        try:
            number = self.registry.champion_number(workflow)
            if number is None or version_label(workflow, number) == live_version:
                return None
            found = self.registry.version(workflow, number, learner=False)
        except Exception as e:  # MLflow down: keep the last known champion
            if time.monotonic() - self._warned_at > 30:
                self._warned_at = time.monotonic()
                log.warning("registry unreachable; routing stays on the last known champion: %s", e)
            return None
        try:
            ConfigBook([]).apply(found.config, found.policy_state)  # it can decide
        except Exception:
            log.exception("champion %s cannot be used; the live version stays", found.config.version)
            return None
        return found.config, found.policy_state
