"""HTTP endpoints of review (mlops) and operators: proposals, approve, reject, pin, unpin,
rollback, history, audit verification. The actor of every change is the caller's token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

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


def governance_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["governance"])

    async def call(request: Request, op: str, args: dict[str, Any]) -> Any:
        runtime = await request.app.state.holder.get()
        if runtime.govern is None:
            return JSONResponse(status_code=503, content={"detail": [
                {"loc": ["service"], "msg": "governance needs the registry (learning.enabled)"}]})
        result = await runtime.govern(op, args)
        if "error" in result:
            e = result["error"]
            loc = ["path", "workflow"] if e["status"] == 404 and "workflow:" in e["message"] else ["path"]
            return JSONResponse(status_code=e["status"], content={"detail": [{"loc": loc, "msg": e["message"]}]})
        return result

    @router.get("/proposals")
    async def list_proposals(
        request: Request,
        workflow: str | None = Query(default=None, description="Only this workflow's proposals."),
        who: Principal = Depends(require(*REVIEWERS)),
    ) -> Any:
        """Versions waiting for review, with status, what proposed them and the policy's notes."""
        return await call(request, "proposals", {"workflow": workflow})

    @router.get("/workflows/{workflow}/versions/{number}")
    async def show_version(request: Request, workflow: str, number: int,
                           who: Principal = Depends(require(*REVIEWERS))) -> Any:
        """A version with its diff against the champion, its evidence (outcomes, estimated gain
        and its standard error, drift events) and what proposed it."""
        return await call(request, "show", {"workflow": workflow, "number": number})

    @router.post("/workflows/{workflow}/versions/{number}/approve", response_model=ChangeOut)
    async def approve(request: Request, workflow: str, number: int, body: ReviewRequest,
                      who: Principal = Depends(require("mlops"))) -> Any:
        """Make a pending version champion; the caller's token names the reviewer."""
        return await call(request, "approve",
                          {"workflow": workflow, "number": number, "actor": who.name, "reason": body.reason})

    @router.post("/workflows/{workflow}/versions/{number}/reject", response_model=ChangeOut)
    async def reject(request: Request, workflow: str, number: int, body: ReviewRequest,
                     who: Principal = Depends(require("mlops"))) -> Any:
        """Reject a pending version, with the reason."""
        return await call(request, "reject",
                          {"workflow": workflow, "number": number, "actor": who.name, "reason": body.reason})

    @router.post("/workflows/{workflow}/pin", response_model=ChangeOut)
    async def pin(request: Request, workflow: str, body: PinRequest,
                  who: Principal = Depends(require("operator"))) -> Any:
        """Hold a version live: learners keep proposing, nothing goes live until unpinned."""
        return await call(request, "pin",
                          {"workflow": workflow, "number": body.version, "actor": who.name, "reason": body.reason})

    @router.post("/workflows/{workflow}/unpin", response_model=ChangeOut)
    async def unpin(request: Request, workflow: str, body: UnpinRequest,
                    who: Principal = Depends(require("operator"))) -> Any:
        """Release the pin; the newest version held meanwhile goes live if policy allows."""
        return await call(request, "unpin", {"workflow": workflow, "actor": who.name, "reason": body.reason})

    @router.post("/workflows/{workflow}/rollback", response_model=ChangeOut)
    async def rollback(request: Request, workflow: str, body: RollbackRequest,
                       who: Principal = Depends(require("operator"))) -> Any:
        """Restore an earlier version exactly (default: the previous champion)."""
        return await call(request, "rollback", {"workflow": workflow, "to": body.to, "actor": who.name,
                                                "reason": body.reason, "pin": body.pin})

    @router.get("/workflows/{workflow}/history")
    async def history(request: Request, workflow: str, who: Principal = Depends(require(*REVIEWERS))) -> Any:
        """Every version (status, who proposed, reviewed or pinned it, why) and every audited change."""
        return await call(request, "history", {"workflow": workflow})

    @router.get("/audit/verify", response_model=AuditVerifyOut)
    async def audit_verify(request: Request, who: Principal = Depends(require(*REVIEWERS))) -> Any:
        """Check the hash chain of the audit trail: names any edited, inserted or deleted entry."""
        return await call(request, "audit_verify", {})

    return router
