"""The HTTP API under /v1, as a FastAPI app over a Runtime.

The same app runs inside the Serve ingress deployment and, for tests and
`flywheel up --local`, on its own; only the runtime's agents differ. Every
endpoint but /v1/health needs a bearer token whose role it allows (see auth.py).
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Awaitable, Callable

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse

from flywheel.services.http import schemas as s
from flywheel.services.http.errors import AUTHED, error, error_body, install_error_handlers, refuse, responses
from flywheel.services.http.guard import BodyLimit, guarded_route
from flywheel.services.http.throttle import Throttle
from flywheel.services.http.tokens import tokens_router
from flywheel.services.http.governance import governance_router
from flywheel.services.http.observe import observe_router
from flywheel.services.http.dashboard import dashboard_router, mount_ui
from flywheel.services.http.auth import Principal, TokenCache, require
from flywheel.services.limit_settings import LimitSettings
from flywheel.services.http.openai_api import openai_router
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


def create_api(factory: RuntimeFactory, limits: LimitSettings | None = None) -> FastAPI:
    """The API over the runtime ``factory`` makes, refusing what exceeds ``limits`` (default: LimitSettings())."""
    limits = limits or LimitSettings()
    holder = RuntimeHolder(factory)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await holder.get()
        yield
        await holder.close()

    route_class = guarded_route(limits.max_json_depth)
    app = FastAPI(
        title="Flywheel",
        version="0.1.0",
        description="Adaptive workflows: routed LLM agents, confidence gates, human checkpoints, outcomes.",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    app.router.route_class = route_class
    app.state.holder = holder
    app.state.limits = limits
    app.state.token_cache = TokenCache()
    app.state.throttle = Throttle(limits.per_token, limits.failed_auth_per_client)
    install_error_handlers(app)
    any_token = [Depends(require())]
    service = [Depends(require("service"))]
    body_errors = (413,)

    async def runtime() -> Runtime:
        return await holder.get()

    @app.exception_handler(UnknownWorkflow)
    async def _unknown_workflow(request: Request, e: UnknownWorkflow) -> JSONResponse:
        return error(404, ["path", "workflow"], str(e), "not_found")

    @app.exception_handler(UnknownRun)
    async def _unknown_run(request: Request, e: UnknownRun) -> JSONResponse:
        return error(404, ["path", "run_id"], str(e), "not_found")

    @app.exception_handler(Conflict)
    async def _conflict(request: Request, e: Conflict) -> JSONResponse:
        return error(409, ["path", "run_id"], str(e), "conflict")

    @app.exception_handler(InvalidInput)
    async def _invalid_input(request: Request, e: InvalidInput) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content=error_body(422, [{"loc": ["body", *loc], "msg": r, "type": "value_error"} for loc, r in e.locs()]),
        )

    @app.get("/v1/health", response_model=s.HealthOut, tags=["service"], responses=responses())
    async def health(rt: Runtime = Depends(runtime)):
        """Liveness, with the live config version of each workflow."""
        return s.HealthOut(
            status="ok", workflows=len(rt.specs), config_versions=rt.configs.versions()
        )

    @app.get(
        "/v1/workflows", response_model=list[s.WorkflowOut], tags=["workflows"], dependencies=any_token,
        responses=responses(*AUTHED),
    )
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
        "/v1/workflows/{workflow}/stats", response_model=s.StatsOut, tags=["workflows"], dependencies=any_token,
        responses=responses(*AUTHED, 404),
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

    @app.post(
        "/v1/workflows/{workflow}/runs", response_model=s.RunOut, tags=["runs"], dependencies=service,
        responses=responses(*AUTHED, *body_errors, 404),
    )
    async def start_run(workflow: str, body: s.RunRequest, rt: Runtime = Depends(runtime),
                        traceparent: str | None = Header(default=None, description="W3C trace context.")):
        """Run the workflow on one input, synchronously: route, call the agent, gate.

        A run whose answer falls below the gate's threshold stops at the human
        step with status `waiting`; resume it with POST /v1/runs/{run_id}/resume.
        """
        run = await rt.start_run(workflow, body.input, body.metadata, traceparent)
        return s.RunOut(**s.run_out(run))

    @app.get(
        "/v1/runs/{run_id}", response_model=s.RunDetail, tags=["runs"], dependencies=service,
        responses=responses(*AUTHED, 404),
    )
    async def get_run(run_id: str, rt: Runtime = Depends(runtime)):
        """A run with its steps, decision and outcomes."""
        return s.run_detail(await rt.get_run(run_id))

    @app.post(
        "/v1/runs/{run_id}/resume", response_model=s.RunOut, tags=["runs"],
        responses=responses(*AUTHED, *body_errors, 404, 409),
    )
    async def resume_run(
        run_id: str, body: s.ResumeRequest, who: Principal = Depends(require("service")),
        rt: Runtime = Depends(runtime),
    ):
        """Apply a human's decision to a run waiting at a human step. Acts once: a second resume is 409.

        The reviewer is the caller's token name (a `reviewer` in the body is ignored). The run's
        new state and the human's outcome (`human:<run_id>`) are stored together or not at all.
        """
        if len(body.comment) > limits.max_comment_chars:
            refuse(["body", "comment"], f"longer than {limits.max_comment_chars} characters", "string_too_long")
        decision = HumanDecision(
            verdict=body.decision, reviewer=who.name, answer=body.answer, comment=body.comment
        )
        updated = await rt.resume(run_id, decision)
        view = await rt.get_run(run_id)
        return s.RunOut(**s.run_out(updated, decision_run=view.run))

    @app.post(
        "/v1/outcomes", response_model=s.OutcomeReportOut, tags=["outcomes"], dependencies=service,
        responses=responses(*AUTHED, *body_errors),
    )
    async def post_outcomes(body: s.OutcomeBatch, rt: Runtime = Depends(runtime)):
        """Outcomes of runs, in a batch; idempotent by event_id. Stored before the response.

        Event ids starting with `human:` are refused (422): resumes write those. A number out of
        bounds (or NaN, infinite, a boolean) is a 422 naming it: nothing is stored.
        """
        if len(body.events) > limits.max_outcome_batch:
            refuse(["body", "events"], f"more than {limits.max_outcome_batch} events", "too_long")
        s.check_outcome_limits(body, rt.ledger.outcome_limits)
        report = await rt.post_outcomes([OutcomeEvent(**e) for e in body.model_dump()["events"]])
        return s.OutcomeReportOut(
            new=report.new,
            duplicate=report.duplicate,
            rejected=[s.RejectionOut(event_id=r.event_id, reason=r.reason) for r in report.rejected],
        )

    app.include_router(tokens_router(route_class))
    app.include_router(governance_router(route_class))
    app.include_router(observe_router())
    app.include_router(dashboard_router())
    app.include_router(openai_router())
    mount_ui(app)
    default_openapi = app.openapi

    def openapi() -> dict:
        """The document, with the outcome limits this deployment enforces stated as maxima."""
        doc = default_openapi()
        rt = holder._runtime
        props = doc.get("components", {}).get("schemas", {}).get("OutcomeIn", {}).get("properties", {})
        if rt is not None:
            for name, most in (("cost", rt.ledger.outcome_limits.max_cost_usd),
                               ("latency_s", rt.ledger.outcome_limits.max_latency_s)):
                for option in props.get(name, {}).get("anyOf", [props.get(name, {})]):
                    if option.get("type") == "number":
                        option["maximum"] = most
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
    return app
