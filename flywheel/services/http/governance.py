"""HTTP endpoints of review (mlops) and operators: proposals, approve, reject, pin, unpin,
rollback, history, audit verification. The actor of every change is the caller's token.

Each endpoint calls one typed method of the runtime's GovernanceClient; a GovernanceError
becomes the response from its `status` and `loc` (the request field it concerns)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from flywheel.registry.governor import GovernanceError
from flywheel.services.governance_api import GovernanceClient, GovernanceDisabled
from flywheel.services.http.auth import Principal, require
from flywheel.services.http.errors import AUTHED, error, refuse, responses

MAX_VERSION = 2**31 - 1
"""Largest version number taken: larger ones are 422 here, never a question to the registry."""
MAX_REASON_HARD = 100_000
"""Longest reason the schema takes at all; ``limits.max_reason_chars`` is the configured bound."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReviewRequest(_Body):
    reason: str = Field(
        min_length=1, max_length=MAX_REASON_HARD,
        description="Why: kept with the version and in the audit trail (at most limits.max_reason_chars).",
    )


class PinRequest(_Body):
    version: int = Field(ge=1, le=MAX_VERSION, description="Version number to hold live.")
    reason: str = Field(
        min_length=1, max_length=MAX_REASON_HARD, description="Why it is pinned (at most limits.max_reason_chars)."
    )


class UnpinRequest(_Body):
    reason: str = Field(
        min_length=1, max_length=MAX_REASON_HARD,
        description="Why the pin is released (at most limits.max_reason_chars).",
    )


class RollbackRequest(_Body):
    to: int | None = Field(
        default=None, ge=1, le=MAX_VERSION, description="Version to restore; default: the previous champion."
    )
    reason: str = Field(
        min_length=1, max_length=MAX_REASON_HARD, description="Why it is rolled back (at most limits.max_reason_chars)."
    )
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


VersionNumber = Path(ge=1, le=MAX_VERSION, description="A version number of the workflow's learned config.")


def _reason_fits(request: Request, reason: str) -> None:
    most = request.app.state.limits.max_reason_chars
    if len(reason) > most:
        refuse(["body", "reason"], f"longer than {most} characters", "string_too_long")


class _Disabled:
    """Stands in for the governance client when this service has no registry: every operation
    raises GovernanceDisabled (503), after the request was validated (a bad one is still 422)."""

    def __getattr__(self, name: str) -> Any:
        async def operation(*args: Any, **kwargs: Any) -> Any:
            raise GovernanceDisabled()

        return operation


async def _client(request: Request) -> GovernanceClient:
    """The runtime's governance client, or one whose operations are 503 when there is no registry."""
    runtime = await request.app.state.holder.get()
    return runtime.governance or _Disabled()  # type: ignore[return-value]


async def _answer(call: Awaitable[Any]) -> Any:
    """The operation's result, or its GovernanceError as a response from the error's typed fields."""
    try:
        return await call
    except GovernanceError as e:
        return error(e.status, list(e.loc) or ["path", "workflow"], str(e), type(e).__name__.lower())


def governance_router(route_class: type[APIRoute] = APIRoute) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["governance"], route_class=route_class)
    reading = responses(*AUTHED, 404, 503)
    changing = responses(*AUTHED, 404, 409, 413, 503)
    Client = Depends(_client)

    @router.get("/proposals", responses=reading)
    async def list_proposals(
        workflow: str | None = Query(default=None, description="Only this workflow's proposals."),
        who: Principal = Depends(require(*REVIEWERS)),
        gov: GovernanceClient = Client,
    ) -> Any:
        """Versions waiting for review, with status, what proposed them and the policy's notes."""
        return await _answer(gov.proposals(workflow))

    @router.get("/workflows/{workflow}/versions/{version}", responses=reading)
    async def show_version(workflow: str, version: int = VersionNumber, who: Principal = Depends(require(*REVIEWERS)),
                           gov: GovernanceClient = Client) -> Any:
        """A version with its diff against the champion, its evidence (outcomes, estimated gain
        and its standard error, drift events) and what proposed it."""
        return await _answer(gov.show(workflow, version))

    @router.post("/workflows/{workflow}/versions/{version}/approve", response_model=ChangeOut, responses=changing)
    async def approve(request: Request, workflow: str, body: ReviewRequest, version: int = VersionNumber,
                      who: Principal = Depends(require("mlops")), gov: GovernanceClient = Client) -> Any:
        """Make a pending version champion; the caller's token names the reviewer."""
        _reason_fits(request, body.reason)
        return await _answer(gov.approve(workflow, version, actor=who.name, reason=body.reason))

    @router.post("/workflows/{workflow}/versions/{version}/reject", response_model=ChangeOut, responses=changing)
    async def reject(request: Request, workflow: str, body: ReviewRequest, version: int = VersionNumber,
                     who: Principal = Depends(require("mlops")), gov: GovernanceClient = Client) -> Any:
        """Reject a pending version, with the reason."""
        _reason_fits(request, body.reason)
        return await _answer(gov.reject(workflow, version, actor=who.name, reason=body.reason))

    @router.post("/workflows/{workflow}/pin", response_model=ChangeOut, responses=changing)
    async def pin(request: Request, workflow: str, body: PinRequest, who: Principal = Depends(require("operator")),
                  gov: GovernanceClient = Client) -> Any:
        """Hold a version live: learners keep proposing, nothing goes live until unpinned."""
        _reason_fits(request, body.reason)
        return await _answer(gov.pin(workflow, body.version, actor=who.name, reason=body.reason))

    @router.post("/workflows/{workflow}/unpin", response_model=ChangeOut, responses=changing)
    async def unpin(request: Request, workflow: str, body: UnpinRequest, who: Principal = Depends(require("operator")),
                    gov: GovernanceClient = Client) -> Any:
        """Release the pin; the newest version held meanwhile goes live if policy allows."""
        _reason_fits(request, body.reason)
        return await _answer(gov.unpin(workflow, actor=who.name, reason=body.reason))

    @router.post("/workflows/{workflow}/rollback", response_model=ChangeOut, responses=changing)
    async def rollback(request: Request, workflow: str, body: RollbackRequest, who: Principal = Depends(require("operator")),
                       gov: GovernanceClient = Client) -> Any:
        """Restore an earlier version exactly (default: the previous champion)."""
        _reason_fits(request, body.reason)
        return await _answer(gov.rollback(workflow, body.to, actor=who.name, reason=body.reason, pin=body.pin))

    @router.get("/workflows/{workflow}/history", responses=reading)
    async def history(workflow: str, who: Principal = Depends(require(*REVIEWERS)),
                      gov: GovernanceClient = Client) -> Any:
        """Every version (status, who proposed, reviewed or pinned it, why) and every audited change."""
        return await _answer(gov.history(workflow))

    @router.get("/audit/verify", response_model=AuditVerifyOut, responses=responses(*AUTHED, 503))
    async def audit_verify(who: Principal = Depends(require(*REVIEWERS)), gov: GovernanceClient = Client) -> Any:
        """Check the hash chain of the audit trail: names any edited, inserted or deleted entry."""
        return await _answer(gov.audit_verify())

    return router
