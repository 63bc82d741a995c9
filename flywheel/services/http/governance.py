"""HTTP endpoints of review (mlops) and operators: proposals, approve, reject, pin, unpin,
rollback, history, audit verification. The actor of every change is the caller's token.

Each endpoint calls one typed method of the runtime's GovernanceClient; a GovernanceError
becomes the response from its `status` and `loc` (the request field it concerns)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from flywheel.registry.governor import GovernanceError
from flywheel.services.governance_api import GovernanceClient
from flywheel.services.http.auth import Principal, require


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReviewRequest(_Body):
    reason: str = Field(min_length=1, description="Why: kept with the version and in the audit trail.")


class PinRequest(_Body):
    version: int = Field(ge=1, description="Version number to hold live.")
    reason: str = Field(min_length=1, description="Why it is pinned.")


class UnpinRequest(_Body):
    reason: str = Field(min_length=1, description="Why the pin is released.")


class RollbackRequest(_Body):
    to: int | None = Field(default=None, ge=1, description="Version to restore; default: the previous champion.")
    reason: str = Field(min_length=1, description="Why it is rolled back.")
    pin: bool = Field(default=False, description="Also pin the restored version, so learning cannot replace it.")


class ChangeOut(BaseModel):
    """What a governance operation did."""

    workflow: str = Field(description="The workflow.")
    action: str = Field(description="approve, reject, pin, unpin or rollback.")
    number: int | None = Field(description="The version acted on.")
    champion_before: int | None = Field(description="Live version before.")
    champion_after: int | None = Field(description="Live version after.")
    champion_changed: bool = Field(description="Whether what is live changed.")
    live_version: str | None = Field(description="The live version's label after the operation.")
    status: str = Field(description="The acted-on version's status after the operation.")
    reasons: list[str] = Field(description="Policy notes, if any.")


class AuditVerifyOut(BaseModel):
    entries: int = Field(description="Entries in the audit trail.")
    intact: bool = Field(description="True when no entry was edited, inserted or deleted.")
    problems: list[str] = Field(description="Each problem found, naming the entry.")


REVIEWERS = ("mlops", "operator")


def _error(status: int, loc: list[str], message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": [{"loc": loc, "msg": message}]})


async def _client(request: Request) -> GovernanceClient:
    """The runtime's governance client, or a 503 when this service has no registry."""
    runtime = await request.app.state.holder.get()
    if runtime.governance is None:
        raise HTTPException(status_code=503, detail=[
            {"loc": ["service"], "msg": "governance needs the registry (learning.enabled)"}])
    return runtime.governance


async def _answer(call: Awaitable[Any]) -> Any:
    """The operation's result, or its GovernanceError as a response from the error's typed fields."""
    try:
        return await call
    except GovernanceError as e:
        return _error(e.status, list(e.loc) or ["path", "workflow"], str(e))


def governance_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["governance"])
    Client = Depends(_client)

    @router.get("/proposals")
    async def list_proposals(
        workflow: str | None = Query(default=None, description="Only this workflow's proposals."),
        who: Principal = Depends(require(*REVIEWERS)),
        gov: GovernanceClient = Client,
    ) -> Any:
        """Versions waiting for review, with status, what proposed them and the policy's notes."""
        return await _answer(gov.proposals(workflow))

    @router.get("/workflows/{workflow}/versions/{version}")
    async def show_version(workflow: str, version: int, who: Principal = Depends(require(*REVIEWERS)),
                           gov: GovernanceClient = Client) -> Any:
        """A version with its diff against the champion, its evidence (outcomes, estimated gain
        and its standard error, drift events) and what proposed it."""
        return await _answer(gov.show(workflow, version))

    @router.post("/workflows/{workflow}/versions/{version}/approve", response_model=ChangeOut)
    async def approve(workflow: str, version: int, body: ReviewRequest,
                      who: Principal = Depends(require("mlops")), gov: GovernanceClient = Client) -> Any:
        """Make a pending version champion; the caller's token names the reviewer."""
        return await _answer(gov.approve(workflow, version, actor=who.name, reason=body.reason))

    @router.post("/workflows/{workflow}/versions/{version}/reject", response_model=ChangeOut)
    async def reject(workflow: str, version: int, body: ReviewRequest,
                     who: Principal = Depends(require("mlops")), gov: GovernanceClient = Client) -> Any:
        """Reject a pending version, with the reason."""
        return await _answer(gov.reject(workflow, version, actor=who.name, reason=body.reason))

    @router.post("/workflows/{workflow}/pin", response_model=ChangeOut)
    async def pin(workflow: str, body: PinRequest, who: Principal = Depends(require("operator")),
                  gov: GovernanceClient = Client) -> Any:
        """Hold a version live: learners keep proposing, nothing goes live until unpinned."""
        return await _answer(gov.pin(workflow, body.version, actor=who.name, reason=body.reason))

    @router.post("/workflows/{workflow}/unpin", response_model=ChangeOut)
    async def unpin(workflow: str, body: UnpinRequest, who: Principal = Depends(require("operator")),
                    gov: GovernanceClient = Client) -> Any:
        """Release the pin; the newest version held meanwhile goes live if policy allows."""
        return await _answer(gov.unpin(workflow, actor=who.name, reason=body.reason))

    @router.post("/workflows/{workflow}/rollback", response_model=ChangeOut)
    async def rollback(workflow: str, body: RollbackRequest, who: Principal = Depends(require("operator")),
                       gov: GovernanceClient = Client) -> Any:
        """Restore an earlier version exactly (default: the previous champion)."""
        return await _answer(gov.rollback(workflow, body.to, actor=who.name, reason=body.reason, pin=body.pin))

    @router.get("/workflows/{workflow}/history")
    async def history(workflow: str, who: Principal = Depends(require(*REVIEWERS)),
                      gov: GovernanceClient = Client) -> Any:
        """Every version (status, who proposed, reviewed or pinned it, why) and every audited change."""
        return await _answer(gov.history(workflow))

    @router.get("/audit/verify", response_model=AuditVerifyOut)
    async def audit_verify(who: Principal = Depends(require(*REVIEWERS)), gov: GovernanceClient = Client) -> Any:
        """Check the hash chain of the audit trail: names any edited, inserted or deleted entry."""
        return await _answer(gov.audit_verify())

    return router
