"""The dashboard: its JSON API under /v1/dashboard (who am I, a workflow's loop over time,
recent runs) and the page itself under /ui (static files of the package; no CDN).

The page also calls the governance endpoints (proposals, versions, approve, reject, pin,
unpin, rollback, history, audit verification), whose role checks decide what each token
may do; `GET /v1/dashboard/me` tells the page which buttons to show.
"""

from __future__ import annotations

import asyncio
import time
from importlib.resources import files
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from flywheel.ledger import dashboard as queries
from flywheel.services.http.errors import AUTHED, responses
from flywheel.services.http.auth import Principal, require
from flywheel.services.runtime import Runtime

REVIEWERS = ("mlops", "operator")
STATIC = files("flywheel.services") / "ui" / "static"


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MeOut(_Out):
    name: str = Field(description="The token's name.")
    role: str = Field(description="The token's role.")
    can_review: bool = Field(description="May see versions, proposals, history and the audit trail.")
    can_approve: bool = Field(description="May approve or reject proposals (mlops).")
    can_operate: bool = Field(description="May pin, unpin and roll back (operator).")
    workflows: list[str] = Field(description="The workflows this service runs.")


class BucketOut(_Out):
    start: float = Field(description="Unix time the bucket starts.")
    runs: int = Field(description="Runs started in the bucket.")
    runs_per_min: float = Field(description="Runs per minute over the bucket.")
    route_shares: dict[str, float] = Field(description="Share of the bucket's runs routed to each arm.")
    threshold: float | None = Field(description="The gate's threshold in force (highest seen in the bucket).")
    human_share: float | None = Field(description="Share of gated runs sent to a human.")
    outcomes: int = Field(description="Outcomes received in the bucket.")
    mean_reward: float | None = Field(description="Mean reward of those outcomes.")
    unattended_error_rate: float | None = Field(description="Errors among judged unattended runs' outcomes.")


class MarkOut(_Out):
    at: float = Field(description="Unix time.")
    kind: str = Field(description="drift, or what governance did (auto-promote, approve, rollback, pin...).")
    label: str = Field(description="What it concerns (the arm, the version).")
    actor: str = Field(description="Who did it (empty for drifts).")


class SeriesOut(_Out):
    workflow: str = Field(description="The workflow.")
    since: float = Field(description="Start of the window, unix time.")
    bucket_s: float = Field(description="Seconds per bucket.")
    target: float = Field(description="The workflow's max_unattended_error_rate.")
    arms: list[str] = Field(description="The workflow's arms.")
    buckets: list[BucketOut] = Field(description="The window's buckets, oldest first.")
    marks: list[MarkOut] = Field(description="Drift events and version changes in the window.")


class RunRowOut(_Out):
    run_id: str = Field(description="The run.")
    status: str = Field(description="Its status.")
    arm: str | None = Field(description="The arm it was routed to.")
    config_version: str = Field(description="The config version that decided it.")
    to_human: bool | None = Field(description="Whether the gate sent it to a human.")
    created_at: float = Field(description="Unix time it started.")
    trace_id: str | None = Field(description="Its W3C trace id.")


async def _runtime(request: Request) -> Runtime:
    return await request.app.state.holder.get()


def _bucket_out(b: queries.Bucket, bucket_s: float) -> BucketOut:
    return BucketOut(
        start=b.start, runs=b.runs, runs_per_min=b.runs * 60.0 / bucket_s,
        route_shares={a: n / b.runs for a, n in sorted(b.arms.items())} if b.runs else {},
        threshold=b.threshold, human_share=b.to_human / b.gated if b.gated else None,
        outcomes=b.outcomes, mean_reward=b.mean_reward,
        unattended_error_rate=b.unattended_errors / b.unattended_judged if b.unattended_judged else None,
    )


def dashboard_router() -> APIRouter:
    router = APIRouter()
    reviewer = Depends(require(*REVIEWERS))

    @router.get("/v1/dashboard/me", response_model=MeOut, tags=["dashboard"], responses=responses(*AUTHED))
    async def me(who: Principal = Depends(require()), rt: Runtime = Depends(_runtime)) -> MeOut:
        """The caller's token and what the dashboard lets it see and do."""
        admin = who.role == "admin"
        return MeOut(name=who.name, role=who.role, can_review=admin or who.role in REVIEWERS,
                     can_approve=admin or who.role == "mlops", can_operate=admin or who.role == "operator",
                     workflows=sorted(rt.specs))

    @router.get("/v1/dashboard/workflows/{workflow}/series", response_model=SeriesOut, tags=["dashboard"],
                dependencies=[reviewer], responses=responses(*AUTHED, 404))
    async def series(
        workflow: str,
        window_s: float = Query(default=3600.0, gt=0, le=90 * 86400, description="Seconds back from now."),
        buckets: int = Query(default=60, ge=1, le=500, description="Number of time buckets."),
        rt: Runtime = Depends(_runtime),
    ) -> SeriesOut:
        """A workflow over the window: runs/minute, route shares, gate threshold, share to humans,
        mean reward, unattended error rate vs target, drifts and version changes."""
        spec = rt.spec(workflow)
        until = time.time()
        found = await asyncio.to_thread(queries.series, rt.ledger.engine, workflow,
                                        since=until - window_s, until=until, buckets=buckets)
        return SeriesOut(
            workflow=workflow, since=found.since, bucket_s=found.bucket_s,
            target=spec.targets.max_unattended_error_rate, arms=list(spec.arms),
            buckets=[_bucket_out(b, found.bucket_s) for b in found.buckets],
            marks=[MarkOut(at=m.at, kind=m.kind, label=m.label, actor=m.actor) for m in found.marks],
        )

    @router.get("/v1/dashboard/workflows/{workflow}/runs", response_model=list[RunRowOut], tags=["dashboard"],
                dependencies=[reviewer], responses=responses(*AUTHED, 404))
    async def runs(
        workflow: str,
        status: Literal["running", "waiting", "completed", "rejected", "failed"] | None = Query(
            default=None, description="Only runs of this status."),
        arm: str | None = Query(default=None, description="Only runs routed to this arm."),
        version: str | None = Query(default=None, description="Only runs decided by this config version."),
        limit: int = Query(default=50, ge=1, le=500, description="How many, newest first."),
        rt: Runtime = Depends(_runtime),
    ) -> list[RunRowOut]:
        """The newest runs of a workflow, filtered; a run's trace is GET /v1/runs/{run_id}/trace."""
        rt.spec(workflow)
        found = await asyncio.to_thread(queries.recent_runs, rt.ledger.engine, workflow,
                                        status=status, arm=arm, version=version, limit=limit)
        return [RunRowOut(run_id=r.run_id, status=r.status, arm=r.arm, config_version=r.config_version,
                          to_human=r.to_human, created_at=r.created_at, trace_id=r.trace_id) for r in found]

    @router.get("/ui", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    return router


def mount_ui(app) -> None:
    """Serve the page's assets under /ui/static (from the package)."""
    app.mount("/ui/static", StaticFiles(directory=str(STATIC)), name="ui-static")
