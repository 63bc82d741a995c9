"""The GovernanceClient of the ingress on Serve: the router deployment's typed methods over its handle.

Ray wraps an exception raised in a replica in `RayTaskError`; the client raises the
original `GovernanceError` again (its `.cause`), so its type, `status` and `loc` reach
the HTTP layer as they left the router.
"""

from __future__ import annotations

from typing import Any

from ray.exceptions import RayTaskError

from flywheel.registry.governor import GovernanceError
from flywheel.registry.views import HistoryView
from flywheel.services.governance_api import AuditReport, ChangeResult, ProposalDetail, ProposalList


async def unwrapped(response: Any) -> Any:
    """Await a handle call's response; a GovernanceError raised in the replica is raised here as itself."""
    try:
        return await response
    except RayTaskError as e:
        if isinstance(e.cause, GovernanceError):
            raise e.cause from None
        raise


class ServeGovernance:
    """Review and operator operations on the router deployment (which follows the champion)."""

    def __init__(self, router: Any):
        self.router = router  # a serve DeploymentHandle of the router deployment

    async def proposals(self, workflow: str | None = None) -> ProposalList:
        return await unwrapped(self.router.proposals.remote(workflow))

    async def show(self, workflow: str, version: int | None = None) -> ProposalDetail:
        return await unwrapped(self.router.show.remote(workflow, version))

    async def approve(self, workflow: str, version: int | None, *, actor: str, reason: str) -> ChangeResult:
        return await unwrapped(self.router.approve.remote(workflow, version, actor=actor, reason=reason))

    async def reject(self, workflow: str, version: int | None, *, actor: str, reason: str) -> ChangeResult:
        return await unwrapped(self.router.reject.remote(workflow, version, actor=actor, reason=reason))

    async def pin(self, workflow: str, version: int, *, actor: str, reason: str) -> ChangeResult:
        return await unwrapped(self.router.pin.remote(workflow, version, actor=actor, reason=reason))

    async def unpin(self, workflow: str, *, actor: str, reason: str) -> ChangeResult:
        return await unwrapped(self.router.unpin.remote(workflow, actor=actor, reason=reason))

    async def rollback(self, workflow: str, to: int | None, *, actor: str, reason: str,
                       pin: bool = False) -> ChangeResult:
        return await unwrapped(self.router.rollback.remote(workflow, to, actor=actor, reason=reason, pin=pin))

    async def history(self, workflow: str) -> HistoryView:
        return await unwrapped(self.router.history.remote(workflow))

    async def audit_verify(self) -> AuditReport:
        return await unwrapped(self.router.audit_verify.remote())
