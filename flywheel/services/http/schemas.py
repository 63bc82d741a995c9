"""Request and response models of the HTTP API (/v1)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flywheel.ledger.records import OutcomeLimits, RunRecord, RunView, StoredOutcome
from flywheel.services.runtime import HUMAN_EVENT_PREFIX
from flywheel.workflows.engine import FAILURE_EVENT_PREFIX

RESERVED_EVENT_PREFIXES = (HUMAN_EVENT_PREFIX, FAILURE_EVENT_PREFIX)
"""Event id namespaces the service writes itself: a client may not post into them."""


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunRequest(_In):
    input: dict[str, Any] = Field(description="The run's input: the workflow's declared fields.")
    metadata: dict[str, str] = Field(
        default_factory=dict,
        description="Opaque tags stored with the run and passed to agents (e.g. a trace id, sim_tick).",
    )


class DecisionTrace(_Out):
    step: str = Field(description="The route step that decided.")
    arm: str = Field(description="The chosen arm (agent).")
    propensity: float = Field(description="Probability of the chosen arm under the policy.")
    scores: dict[str, float] = Field(description="Every arm's score.")
    config_version: str = Field(description="Version of the learned config that decided.")


class StepOut(_Out):
    seq: int = Field(description="Position of the step in the run's execution.")
    step: str = Field(description="Step id from the workflow spec.")
    kind: str = Field(description="route, agent, gate, human or finish.")
    status: str = Field(description="done, waiting or failed.")
    output: dict[str, Any] = Field(description="What the step produced.")
    started_at: float = Field(description="Unix time the step started.")
    ended_at: float | None = Field(description="Unix time the step ended (None while waiting).")


class OutcomeOut(_Out):
    position: int = Field(description="Position of the outcome in the ledger.")
    event_id: str = Field(description="The event's idempotency key.")
    success: bool | None = Field(description="Whether the run succeeded.")
    quality: float | None = Field(description="Quality score in [0, 1].")
    cost: float | None = Field(description="Cost in USD.")
    latency_s: float | None = Field(description="Latency in seconds.")
    human_override: bool = Field(description="Whether a human overrode the answer.")
    source: str = Field(description="Who reported it.")
    reward: float = Field(description="The workflow's objective applied to the outcome.")
    received_at: float = Field(description="Unix time the ledger stored it.")


class RunOut(_Out):
    run_id: str = Field(description="Id of the run.")
    workflow: str = Field(description="Workflow name.")
    status: str = Field(description="running, waiting, completed, rejected or failed.")
    answer: dict[str, Any] | None = Field(description="The answer (None when failed or rejected before one).")
    waiting_step: str | None = Field(description="The human step the run waits at, if waiting.")
    decision: DecisionTrace | None = Field(description="The routing decision.")
    created_at: float = Field(description="Unix time the run started.")
    updated_at: float = Field(description="Unix time of the run's last change.")
    trace_id: str | None = Field(default=None, description="W3C trace id of the run (from its traceparent, or new).")


class RunDetail(RunOut):
    input: dict[str, Any] = Field(description="The run's input.")
    metadata: dict[str, str] = Field(description="Tags given with the run.")
    steps: list[StepOut] = Field(description="Executed steps, in order.")
    outcomes: list[OutcomeOut] = Field(description="Outcomes received for the run.")


class ResumeRequest(_In):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={  # the rule of _edit_needs_answer, for clients and schema-driven tests
            "if": {"properties": {"decision": {"const": "edit"}}, "required": ["decision"]},
            "then": {"required": ["answer"], "properties": {"answer": {"type": "object"}}},
            "else": {"properties": {"answer": {"type": "null"}}},
        },
    )

    decision: Literal["approve", "reject", "edit"] = Field(description="The human's decision.")
    reviewer: str | None = Field(
        default=None,
        max_length=200,
        deprecated=True,
        description="Ignored: the reviewer is the name of the caller's token (kept so old clients still work).",
    )
    answer: dict[str, Any] | None = Field(
        default=None, description="The edited answer (required for edit); nested at most limits.max_json_depth."
    )
    comment: str = Field(default="", max_length=4000, description="Why (at most limits.max_comment_chars).")

    @model_validator(mode="after")
    def _edit_needs_answer(self) -> "ResumeRequest":
        if self.decision == "edit" and self.answer is None:
            raise ValueError("answer: an edit must carry the edited answer")
        if self.decision != "edit" and self.answer is not None:
            raise ValueError("answer: only an edit carries an answer")
        return self


_LIMITS = OutcomeLimits()


class OutcomeIn(_In):
    """One outcome as posted. Every number reaches the learners, so each is strict (a boolean is
    not a number, a string not a boolean), finite (NaN and infinities are refused) and bounded;
    cost and latency within the settings' `outcome_limits` (see `check_outcome_limits`)."""

    event_id: str = Field(
        min_length=1,
        max_length=200,
        strict=True,
        description="Idempotency key: a repeat is a duplicate. Ids starting with `human:` are the service's own.",
    )
    run_id: str = Field(min_length=1, max_length=64, strict=True, description="The run the outcome is about.")
    success: bool | None = Field(default=None, strict=True, description="Whether the run's result was right.")
    quality: float | None = Field(
        default=None, ge=0, le=1, strict=True, allow_inf_nan=False, description="Quality score in [0, 1]."
    )
    cost: float | None = Field(
        default=None,
        ge=0,
        strict=True,
        allow_inf_nan=False,
        description=(
            "Cost of the run in USD, finite, in [0, outcome_limits.max_cost_usd] "
            f"(default max {_LIMITS.max_cost_usd:g} USD per run); default: the agent's reported cost."
        ),
    )
    latency_s: float | None = Field(
        default=None,
        ge=0,
        strict=True,
        allow_inf_nan=False,
        description=(
            "Latency of the run in seconds, finite, in [0, outcome_limits.max_latency_s] "
            f"(default max {_LIMITS.max_latency_s:g} s: one day); default: the agent's reported latency."
        ),
    )
    human_override: bool = Field(default=False, strict=True, description="Whether a human overrode the answer.")
    source: str = Field(default="service", max_length=200, strict=True, description="Who reports it.")
    occurred_at: float | None = Field(
        default=None, ge=0, strict=True, allow_inf_nan=False, description="Unix time the outcome happened (seconds)."
    )

    @field_validator("event_id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        for prefix in RESERVED_EVENT_PREFIXES:
            if value.startswith(prefix):
                raise ValueError(f"event ids starting with {prefix!r} are written by the service (resumes, failed runs) only")
        return value


class OutcomeBatch(_In):
    events: list[OutcomeIn] = Field(
        min_length=1, max_length=10000, description="Outcome events (at most limits.max_outcome_batch)."
    )


def check_outcome_limits(batch: OutcomeBatch, limits: OutcomeLimits) -> None:
    """Raise RequestValidationError (HTTP 422, nothing stored) naming every event's cost or
    latency beyond `limits` (the settings' outcome_limits: the model cannot know them)."""
    errors = []
    for i, e in enumerate(batch.events):
        for name, value, most in (("cost", e.cost, limits.max_cost_usd), ("latency_s", e.latency_s, limits.max_latency_s)):
            if value is not None and value > most:
                errors.append({
                    "type": "less_than_equal",
                    "loc": ("body", "events", i, name),
                    "msg": f"Input should be less than or equal to {most:g}",
                })
    if errors:
        raise RequestValidationError(errors)


class RejectionOut(_Out):
    event_id: str = Field(description="The rejected event.")
    reason: str = Field(description="Why it was rejected.")


class OutcomeReportOut(_Out):
    new: int = Field(description="Events stored now.")
    duplicate: int = Field(description="Events already stored (or repeated in the batch).")
    rejected: list[RejectionOut] = Field(description="Events not stored, each with its reason.")


class WorkflowOut(_Out):
    name: str = Field(description="Workflow name.")
    description: str = Field(description="What it does.")
    arms: list[str] = Field(description="Agents the router chooses among.")
    inputs: list[dict[str, Any]] = Field(description="Declared input fields.")
    config_version: str = Field(description="The live learned config's version.")


class StatsOut(_Out):
    workflow: str = Field(description="Workflow name.")
    runs: int = Field(description="Runs started.")
    waiting: int = Field(description="Runs waiting for a human.")
    outcomes: int = Field(description="Outcomes received.")
    mean_reward: float | None = Field(description="Mean reward over outcomes.")
    route_shares: dict[str, float] = Field(description="Share of decisions per arm.")
    config_version: str = Field(description="The live learned config's version.")


class HealthOut(_Out):
    status: str = Field(description="ok.")
    workflows: int = Field(description="Workflows loaded.")
    config_versions: dict[str, str] = Field(description="Live config version per workflow.")


def run_out(run: RunRecord, decision_run: RunRecord | None = None) -> dict[str, Any]:
    d = (decision_run or run).decision
    return dict(
        run_id=run.run_id,
        workflow=run.workflow,
        status=run.status,
        answer=run.answer,
        waiting_step=run.waiting_step,
        decision=None
        if d is None
        else DecisionTrace(
            step=d.step_id,
            arm=d.arm,
            propensity=d.propensity,
            scores=d.scores,
            config_version=d.config_version,
        ),
        created_at=run.created_at,
        updated_at=run.updated_at,
        trace_id=(decision_run or run).trace_id,
    )


def outcome_out(o: StoredOutcome) -> OutcomeOut:
    return OutcomeOut(
        position=o.position,
        event_id=o.event_id,
        success=o.success,
        quality=o.quality,
        cost=o.cost,
        latency_s=o.latency_s,
        human_override=o.human_override,
        source=o.source,
        reward=o.reward,
        received_at=o.received_at,
    )


def run_detail(view: RunView) -> RunDetail:
    run = view.run
    return RunDetail(
        **run_out(run),
        input=run.input,
        metadata=run.metadata,
        steps=[
            StepOut(
                seq=s.seq,
                step=s.step_id,
                kind=s.kind,
                status=s.status,
                output=s.output,
                started_at=s.started_at,
                ended_at=s.ended_at,
            )
            for s in run.steps
        ],
        outcomes=[outcome_out(o) for o in view.outcomes],
    )
