"""Windows on a running service: `GET /metrics` (Prometheus text, local server) and
`GET /v1/runs/{run_id}/trace`, a run's decision trace: what the router saw, every arm's
score, the propensity, why it chose (flywheel.learners.explain, computed here from the
logged features and the live version's state, not on the decision's path), the gate, the
policy's checks on the version that decided, the agent call and the outcomes."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from flywheel.registry.governor import GovernanceError
from flywheel.services.http.errors import AUTHED, error, responses
from flywheel.services.http.auth import require
from flywheel.services.metrics import PrometheusBackend
from flywheel.services.runtime import Runtime

_VERSION = re.compile(r"^(?P<workflow>.+)@v(?P<number>\d+)$")


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GateTrace(_Out):
    step: str = Field(description="The gate step's id.")
    confidence: float = Field(description="The agent's confidence the gate compared.")
    threshold: float = Field(description="The threshold in force.")
    passed: bool = Field(description="True: finished unattended; False: sent to a human.")


class PolicyTrace(_Out):
    number: int = Field(description="The deciding config's registry version.")
    status: str = Field(description="Its status: auto, approved, pending, refused, rejected...")
    policy_notes: str | None = Field(description="What the promotion policy checked and said.")
    reviewed_by: str | None = Field(description="Who reviewed it, if anyone.")


class StepBrief(_Out):
    step: str = Field(description="Step id.")
    kind: str = Field(description="route, agent, gate, human or finish.")
    status: str = Field(description="done, waiting or failed.")
    started_at: float = Field(description="Unix time the step started.")
    ended_at: float | None = Field(description="Unix time it ended (None: waiting).")


class RunTrace(_Out):
    """Everything that decided a run, one GET away."""

    run_id: str = Field(description="The run.")
    workflow: str = Field(description="Its workflow.")
    status: str = Field(description="Its status now.")
    trace_id: str | None = Field(description="W3C trace id the run belongs to.")
    config_version: str = Field(description="The live config version that decided.")
    arm: str | None = Field(description="The arm chosen.")
    propensity: float | None = Field(description="Probability the policy gave the chosen arm.")
    scores: dict[str, float] = Field(description="Every arm's score.")
    features: dict[str, Any] = Field(description="The features the router saw.")
    gate: GateTrace | None = Field(description="The confidence gate's check, if the run reached one.")
    agent: dict[str, Any] | None = Field(description="The agent call: agent, model, confidence, tokens, cost, latency.")
    policy: PolicyTrace | None = Field(description="The version's policy checks (None without a registry).")
    steps: list[StepBrief] = Field(description="The steps executed, in order.")
    outcomes: list[dict[str, Any]] = Field(description="Outcomes received, with their rewards.")
    explanation: dict[str, Any] | None = Field(
        default=None,
        description="Why it chose: each arm's score in parts (quality, its sd, cost, latency), the runner-up, "
                    "the chosen arm's lead and the features that decided it (weight x value, chosen vs "
                    "runner-up); `state_version` is the version whose state explains it and `exact` whether "
                    "that is the version that decided. None: no learned router decided (a static config).")


def explanation(rt: Runtime, workflow: str, decision: Any, config_version: str) -> dict[str, Any] | None:
    """Why the decision chose, from its logged features and the live version's bandit (None: none)."""
    from flywheel.learners.explain import explain

    try:
        live = rt.configs.live(workflow)
    except KeyError:
        return None
    bandit = getattr(live.policy, "bandit", None)
    if decision is None or bandit is None or decision.arm not in bandit.arms:
        return None
    return {**explain(bandit, decision.features, decision.arm), "state_version": live.version,
            "exact": live.version == config_version}


async def _runtime(request: Request) -> Runtime:
    return await request.app.state.holder.get()


async def _policy(rt: Runtime, config_version: str) -> PolicyTrace | None:
    match = _VERSION.match(config_version)
    if rt.governance is None or match is None:
        return None
    try:
        shown = await rt.governance.show(match["workflow"], int(match["number"]))
    except GovernanceError:
        return None
    v = shown.version
    return PolicyTrace(number=v.number, status=v.status, policy_notes=v.policy_notes, reviewed_by=v.reviewed_by)


def observe_router() -> APIRouter:
    router = APIRouter()

    @router.get("/metrics", tags=["service"], dependencies=[Depends(require())],
                response_class=Response,
                responses={200: {"content": {"text/plain": {}}}, **responses(*AUTHED, 404)})
    async def metrics(rt: Runtime = Depends(_runtime)) -> Response:
        """The service's metrics in Prometheus' text format (the local server; on Ray Serve,
        Ray exports them with its own metrics)."""
        backend = rt.metrics.backend
        if not isinstance(backend, PrometheusBackend):
            return error(404, ["path"], "metrics are exported by Ray's metrics agent on this deployment", "not_found")
        body, content_type = backend.exposition()
        return Response(content=body, media_type=content_type)

    @router.get("/v1/runs/{run_id}/trace", response_model=RunTrace, tags=["runs"], dependencies=[Depends(require())],
                responses=responses(*AUTHED, 404))
    async def run_trace(run_id: str, rt: Runtime = Depends(_runtime)) -> RunTrace:
        """A run's decision trace: features, scores, propensity, gate, policy checks, version."""
        view = await rt.get_run(run_id)
        run, d = view.run, view.run.decision
        gate = next((s for s in run.steps if s.kind == "gate"), None)
        agent = next((s.output for s in run.steps if s.kind == "agent"), None)
        return RunTrace(
            run_id=run.run_id, workflow=run.workflow, status=run.status, trace_id=run.trace_id,
            config_version=run.config_version,
            arm=d.arm if d else None, propensity=d.propensity if d else None,
            scores=d.scores if d else {}, features=d.features if d else {},
            gate=None if gate is None else GateTrace(
                step=gate.step_id, confidence=float(gate.output.get("confidence", 0.0)),
                threshold=float(gate.output.get("threshold", 0.0)), passed=bool(gate.output.get("passed"))),
            agent=None if agent is None else {k: v for k, v in agent.items() if k != "answer"},
            policy=await _policy(rt, run.config_version),
            steps=[StepBrief(step=s.step_id, kind=s.kind, status=s.status, started_at=s.started_at,
                             ended_at=s.ended_at) for s in run.steps],
            outcomes=[{"event_id": o.event_id, "success": o.success, "quality": o.quality, "reward": o.reward,
                       "source": o.source, "received_at": o.received_at} for o in view.outcomes],
            explanation=explanation(rt, run.workflow, d, run.config_version),
        )

    return router
