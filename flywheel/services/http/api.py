"""The HTTP API under /v1, as a FastAPI app over a Runtime.

The same app runs inside the Serve ingress deployment and, for tests and
`flywheel up --local`, on its own; only the runtime's agents differ. Every
endpoint but /v1/health needs a bearer token whose role it allows (see auth.py).
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Awaitable, Callable

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from flywheel.services.http import schemas as s
from flywheel.services.http.tokens import tokens_router
from flywheel.services.http.governance import governance_router
from flywheel.services.http.openai_api import openai_router
from flywheel.services.http.auth import TokenCache, require
from flywheel.services.runtime import Conflict, InvalidInput, Runtime, UnknownRun, UnknownWorkflow
from flywheel.workflows.engine import HumanDecision
from flywheel.ledger.records import OutcomeEvent

RuntimeFactory = Callable[[], Awaitable[Runtime]]


class RuntimeHolder:
    """Creates the runtime once, on the replica that serves (not at import or build time)."""

    def __init__(self, factory: RuntimeFactory):
        self._factory = factory
        self._runtime: Runtime | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Runtime:
        if self._runtime is None:
            async with self._lock:
                if self._runtime is None:
                    self._runtime = await self._factory()
        return self._runtime

    async def close(self) -> None:
        if self._runtime is not None:
            await self._runtime.close()
            self._runtime = None


def create_api(factory: RuntimeFactory) -> FastAPI:
    holder = RuntimeHolder(factory)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await holder.get()
        yield
        await holder.close()

    app = FastAPI(
        title="Flywheel",
        version="0.1.0",
        description="Adaptive workflows: routed LLM agents, confidence gates, human checkpoints, outcomes.",
        lifespan=lifespan,
    )
    app.state.holder = holder
    app.state.token_cache = TokenCache()
    any_token = [Depends(require())]
    service = [Depends(require("service"))]

    async def runtime() -> Runtime:
        return await holder.get()

    def _error(status: int, field: list[str], message: str) -> JSONResponse:
        return JSONResponse(status_code=status, content={"detail": [{"loc": field, "msg": message}]})

    @app.exception_handler(UnknownWorkflow)
    async def _unknown_workflow(request: Request, e: UnknownWorkflow) -> JSONResponse:
        return _error(404, ["path", "workflow"], str(e))

    @app.exception_handler(UnknownRun)
    async def _unknown_run(request: Request, e: UnknownRun) -> JSONResponse:
        return _error(404, ["path", "run_id"], str(e))

    @app.exception_handler(Conflict)
    async def _conflict(request: Request, e: Conflict) -> JSONResponse:
        return _error(409, ["path", "run_id"], str(e))

    @app.exception_handler(InvalidInput)
    async def _invalid_input(request: Request, e: InvalidInput) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={
                "detail": [{"loc": ["body", "input", f], "msg": r} for f, r in e.problems]
            },
        )

    @app.get("/v1/health", response_model=s.HealthOut, tags=["service"])
    async def health(rt: Runtime = Depends(runtime)):
        """Liveness, with the live config version of each workflow."""
        return s.HealthOut(
            status="ok", workflows=len(rt.specs), config_versions=rt.configs.versions()
        )

    @app.get("/v1/workflows", response_model=list[s.WorkflowOut], tags=["workflows"], dependencies=any_token)
    async def list_workflows(rt: Runtime = Depends(runtime)):
        """The workflows this service runs."""
        return [
            s.WorkflowOut(
                name=spec.name,
                description=spec.description,
                arms=spec.arms,
                inputs=[f.model_dump() for f in spec.inputs],
                config_version=rt.configs.learned(spec.name).version,
            )
            for spec in rt.specs.values()
        ]

    @app.get(
        "/v1/workflows/{workflow}/stats", response_model=s.StatsOut, tags=["workflows"], dependencies=any_token
    )
    async def workflow_stats(workflow: str, rt: Runtime = Depends(runtime)):
        """Runs, outcomes, mean reward and route shares of a workflow."""
        st = await rt.stats(workflow)
        return s.StatsOut(
            workflow=st.workflow,
            runs=st.runs,
            waiting=st.waiting,
            outcomes=st.outcomes,
            mean_reward=st.mean_reward,
            route_shares=st.route_shares,
            config_version=rt.configs.learned(workflow).version,
        )

    @app.post("/v1/workflows/{workflow}/runs", response_model=s.RunOut, tags=["runs"], dependencies=service)
    async def start_run(workflow: str, body: s.RunRequest, rt: Runtime = Depends(runtime)):
        """Run the workflow on one input, synchronously: route, call the agent, gate.

        A run whose answer falls below the gate's threshold stops at the human
        step with status `waiting`; resume it with POST /v1/runs/{run_id}/resume.
        """
        run = await rt.start_run(workflow, body.input, body.metadata)
        return s.RunOut(**s.run_out(run))

    @app.get("/v1/runs/{run_id}", response_model=s.RunDetail, tags=["runs"], dependencies=service)
    async def get_run(run_id: str, rt: Runtime = Depends(runtime)):
        """A run with its steps, decision and outcomes."""
        return s.run_detail(await rt.get_run(run_id))

    @app.post("/v1/runs/{run_id}/resume", response_model=s.RunOut, tags=["runs"], dependencies=service)
    async def resume_run(run_id: str, body: s.ResumeRequest, rt: Runtime = Depends(runtime)):
        """Apply a human's decision to a run waiting at a human step. Acts once: a second resume is 409."""
        decision = HumanDecision(
            verdict=body.decision, reviewer=body.reviewer, answer=body.answer, comment=body.comment
        )
        updated = await rt.resume(run_id, decision)
        view = await rt.get_run(run_id)
        return s.RunOut(**s.run_out(updated, decision_run=view.run))

    @app.post("/v1/outcomes", response_model=s.OutcomeReportOut, tags=["outcomes"], dependencies=service)
    async def post_outcomes(body: s.OutcomeBatch, rt: Runtime = Depends(runtime)):
        """Outcomes of runs, in a batch; idempotent by event_id. Stored before the response."""
        report = await rt.post_outcomes([OutcomeEvent(**e.model_dump()) for e in body.events])
        return s.OutcomeReportOut(
            new=report.new,
            duplicate=report.duplicate,
            rejected=[s.RejectionOut(event_id=r.event_id, reason=r.reason) for r in report.rejected],
        )

    app.include_router(tokens_router())
    app.include_router(governance_router())
    app.include_router(openai_router())
    return app
