"""The step engine: executes a workflow's steps for one run.

Orchestration is deterministic given the policy's choice and the agent's answer;
the side effects (the agent call) go through an injected caller, and the engine
returns the run as a RunRecord for the caller to write to the ledger in one go.
No Ray, no MLflow: the engine is plain Python.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from flywheel.workflows.agent_io import AgentCaller, AgentError, AgentRequest
from flywheel.workflows.inputs import features_of
from flywheel.ledger.records import DecisionRecord, OutcomeEvent, RunRecord, StepRecord
from flywheel.workflows.prompts import PromptTemplate
from flywheel.workflows.routing import Policy
from flywheel.workflows.spec import (
    AgentStep,
    FinishStep,
    GateStep,
    HumanStep,
    RouteStep,
    WorkflowSpec,
)

HumanVerdict = Literal["approve", "reject", "edit"]

FAILURE_EVENT_PREFIX = "failure:"
"""Outcome event ids in this namespace are the service's own: a failed run's outcome (``failure:<run_id>``)."""


def failure_outcomes(run: RunRecord) -> list[OutcomeEvent]:
    """The outcome a run reports on itself: for a failed run (the agent raised or timed out),
    a failure, so the learner hears of it without waiting for a client; none otherwise."""
    if run.status != "failed":
        return []
    return [OutcomeEvent(event_id=f"{FAILURE_EVENT_PREFIX}{run.run_id}", run_id=run.run_id, success=False,
                         source="service:agent_failed")]


@dataclass(slots=True)
class LiveConfig:
    """What a run is decided with: the policy, the gates' thresholds and their version."""

    version: str
    policy: Policy
    thresholds: dict[str, float]


@dataclass(slots=True)
class HumanDecision:
    verdict: HumanVerdict
    reviewer: str
    answer: dict[str, Any] | None = None  # the edited answer, for "edit"
    comment: str = ""


@dataclass(slots=True)
class _State:
    """Durable state of a run in progress: what later steps need from earlier ones."""

    arm: str | None = None
    answer: dict[str, Any] | None = None
    confidence: float | None = None
    steps: list[StepRecord] = field(default_factory=list)
    prompts: dict[str, PromptTemplate] = field(default_factory=dict)  # by agent step id
    on_decided: Callable[[RunRecord], None] | None = None  # told the run once its route step decided
    on_delta: Callable[[str], None] | None = None  # the agent's answer text as it streams


class Engine:
    """Runs one workflow's steps; one engine per workflow spec."""

    def __init__(
        self,
        spec: WorkflowSpec,
        agents: AgentCaller,
        clock: Callable[[], float] = time.time,
    ):
        self.spec = spec
        self.agents = agents
        self.clock = clock

    async def start(
        self,
        run_id: str,
        data: dict[str, Any],
        config: LiveConfig,
        metadata: dict[str, str] | None = None,
        prompts: dict[str, PromptTemplate] | None = None,
        on_decided: Callable[[RunRecord], None] | None = None,
        on_delta: Callable[[str], None] | None = None,
    ) -> RunRecord:
        """Execute from the first step until the run finishes, fails or waits for a human.

        `prompts` (by agent step id, from the learned config) override the spec's templates.
        `on_decided(run)` is called once the route step has decided (before any agent is
        called); `on_delta(text)` gets the agent's answer as it streams, where its backend can.
        """
        now = self.clock()
        run = RunRecord(
            run_id=run_id,
            workflow=self.spec.name,
            status="running",
            input=data,
            answer=None,
            config_version=config.version,
            created_at=now,
            updated_at=now,
            metadata=dict(metadata or {}),
        )
        state = _State(prompts={**self.spec.prompts, **(prompts or {})}, on_decided=on_decided, on_delta=on_delta)
        await self._execute(run, state, self.spec.steps[0].id, config)
        return run

    async def resume(self, run: RunRecord, decision: HumanDecision) -> RunRecord:
        """Continue a run that waits at a human step, with the human's decision.

        Returns the updated run with only the steps this call executed; the caller
        writes it with a compare-and-set on status "waiting" so it acts once.
        """
        if run.status != "waiting" or run.waiting_step is None:
            raise ValueError(f"run {run.run_id} is {run.status}, not waiting for a human")
        step = self.spec.step(run.waiting_step)
        assert isinstance(step, HumanStep)
        now = self.clock()
        answer = run.answer
        if decision.verdict == "edit":
            answer = decision.answer
        resumed = RunRecord(
            run_id=run.run_id,
            workflow=run.workflow,
            status="running",
            input=run.input,
            answer=answer,
            config_version=run.config_version,
            created_at=run.created_at,
            updated_at=now,
            metadata=run.metadata,
        )
        state = _State(answer=answer)
        seq = len(run.steps)
        state.steps.append(
            StepRecord(
                run_id=run.run_id,
                seq=seq,
                step_id=step.id,
                kind="human",
                status="done",
                output={
                    "verdict": decision.verdict,
                    "reviewer": decision.reviewer,
                    "comment": decision.comment,
                    "answer": answer,
                },
                started_at=now,
                ended_at=now,
            )
        )
        resumed.steps = state.steps
        if decision.verdict == "reject":
            resumed.status = "rejected"
            return resumed
        # A config is only needed by route/gate steps, which never follow a human step
        # in a valid graph walk of a resumed run; pass the run's own version for logging.
        await self._execute(
            resumed, state, step.next or self.spec.next_of(step.id), None, seq_start=seq + 1
        )
        return resumed

    async def _execute(
        self,
        run: RunRecord,
        state: _State,
        step_id: str | None,
        config: LiveConfig | None,
        seq_start: int = 0,
    ) -> None:
        run.steps = state.steps  # appended to in place as steps execute
        seq = seq_start
        visited = 0
        while step_id is not None:
            visited += 1
            if visited > 4 * len(self.spec.steps):
                raise RuntimeError(f"workflow {self.spec.name}: step graph loops at {step_id!r}")
            step = self.spec.step(step_id)
            started = self.clock()
            output: dict[str, Any]
            status = "done"
            next_id: str | None
            if isinstance(step, RouteStep):
                if config is None:
                    raise RuntimeError(f"step {step.id!r}: a route step needs a live config")
                x = features_of(self.spec, run.input)
                choice = config.policy.decide(x, key=run.run_id, arms=step.arms)
                state.arm = choice.arm
                run.decision = DecisionRecord(
                    run_id=run.run_id,
                    step_id=step.id,
                    workflow=self.spec.name,
                    arm=choice.arm,
                    propensity=choice.propensity,
                    scores=choice.scores,
                    features=x,
                    config_version=config.version,
                    created_at=started,
                )
                output = {"arm": choice.arm, "propensity": choice.propensity}
                if state.on_decided is not None:
                    state.on_decided(run)
                next_id = step.next or self.spec.next_of(step.id)
            elif isinstance(step, AgentStep):
                if state.arm is None:
                    raise RuntimeError(f"step {step.id!r}: no arm chosen before the agent step")
                request = AgentRequest(
                    workflow=self.spec.name,
                    run_id=run.run_id,
                    prompt=str(run.input.get(self.spec.prompt_field, "")),
                    input=run.input,
                    metadata=run.metadata,
                    on_delta=state.on_delta,
                )
                template = state.prompts.get(step.id)
                if template is not None:
                    request.messages = template.messages(run.input)
                    request.output_schema = template.schema
                    request.decisive = template.decisive
                    request.max_tokens = template.max_tokens
                try:
                    result = await self.agents(state.arm, request)
                except Exception as e:  # AgentError, or what a dead replica or a timeout raised: the run failed
                    kind = "" if isinstance(e, AgentError) else f"{type(e).__name__}: "
                    output = {"agent": state.arm, "error": f"{kind}{e}"}
                    state.steps.append(_step(run, seq, step, "failed", output, started, self.clock()))
                    run.status = "failed"
                    run.updated_at = self.clock()
                    return
                state.answer = result.answer
                state.confidence = result.confidence
                run.answer = result.answer
                output = {
                    "agent": state.arm,
                    "model": result.model,
                    "answer": result.answer,
                    "confidence": result.confidence,
                    "tokens_in": result.tokens_in,
                    "tokens_out": result.tokens_out,
                    "cost": result.cost,
                    "latency_s": result.latency_s,
                }
                if template is not None:
                    output["prompt_version"] = template.version()
                next_id = step.next or self.spec.next_of(step.id)
            elif isinstance(step, GateStep):
                if config is None:
                    raise RuntimeError(f"step {step.id!r}: a gate step needs a live config")
                threshold = config.thresholds.get(step.id, step.threshold)
                confidence = state.confidence if state.confidence is not None else 0.0
                passed = confidence >= threshold
                output = {"confidence": confidence, "threshold": threshold, "passed": passed}
                next_id = step.on_pass if passed else step.on_fail
            elif isinstance(step, HumanStep):
                output = {"answer": state.answer}
                state.steps.append(_step(run, seq, step, "waiting", output, started, None))
                run.status = "waiting"
                run.waiting_step = step.id
                run.updated_at = self.clock()
                return
            elif isinstance(step, FinishStep):
                output = {"answer": state.answer}
                state.steps.append(_step(run, seq, step, "done", output, started, self.clock()))
                run.status = "completed"
                run.answer = state.answer
                run.waiting_step = None
                run.updated_at = self.clock()
                return
            else:  # pragma: no cover - the discriminated union is exhaustive
                raise TypeError(f"unknown step {step!r}")
            state.steps.append(_step(run, seq, step, status, output, started, self.clock()))
            seq += 1
            step_id = next_id
        run.status = "completed"
        run.updated_at = self.clock()


def _step(
    run: RunRecord,
    seq: int,
    step: Any,
    status: str,
    output: dict[str, Any],
    started: float,
    ended: float | None,
) -> StepRecord:
    return StepRecord(
        run_id=run.run_id,
        seq=seq,
        step_id=step.id,
        kind=step.kind,
        status=status,
        output=output,
        started_at=started,
        ended_at=ended,
    )
