"""Plain typed records that cross the ledger's boundary (no ORM objects leak out)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

RunStatus = Literal["running", "waiting", "completed", "rejected", "failed"]


@dataclass(slots=True)
class StepRecord:
    """One executed step of a run."""

    run_id: str
    seq: int  # 0, 1, 2 ... in execution order within the run
    step_id: str
    kind: str  # route | agent | gate | human | finish
    status: str  # done | waiting | failed
    output: dict[str, Any]
    started_at: float  # unix seconds
    ended_at: float | None


@dataclass(slots=True)
class DecisionRecord:
    """One routing choice, with what it saw and how likely it was."""

    run_id: str
    step_id: str
    workflow: str
    arm: str
    propensity: float
    scores: dict[str, float]  # every arm's score
    features: dict[str, Any]  # what the router saw
    config_version: str
    created_at: float


@dataclass(slots=True)
class RunRecord:
    """A run as written to the ledger: the run row, its new steps and its decision."""

    run_id: str
    workflow: str
    status: RunStatus
    input: dict[str, Any]
    answer: dict[str, Any] | None
    config_version: str
    created_at: float
    updated_at: float
    metadata: dict[str, str] = field(default_factory=dict)
    waiting_step: str | None = None  # the human step a waiting run waits at
    trace_id: str | None = None  # W3C trace id (32 hex digits) the run was part of
    steps: list[StepRecord] = field(default_factory=list)
    decision: DecisionRecord | None = None


@dataclass(slots=True, frozen=True)
class OutcomeLimits:
    """The most an outcome may report; a larger (or non-finite) figure is refused, never stored.

    A reward is quality minus weighted cost and latency: one absurd figure (cost 1e308)
    would make it -inf and poison every learner that averages it, so the ledger and the
    HTTP API refuse outcomes beyond these bounds. The defaults fit any single LLM run.
    """

    max_cost_usd: float = 1000.0  # USD per run
    max_latency_s: float = 86400.0  # one day


@dataclass(slots=True)
class OutcomeEvent:
    """Feedback on a run, as posted; idempotent by event_id."""

    event_id: str
    run_id: str
    success: bool | None = None
    quality: float | None = None  # 0..1
    cost: float | None = None  # USD, within OutcomeLimits; None: the agent's reported cost
    latency_s: float | None = None  # seconds, within OutcomeLimits; None: the agent's reported latency
    human_override: bool = False
    source: str = "service"
    occurred_at: float | None = None  # unix seconds, finite and >= 0


@dataclass(slots=True)
class StoredOutcome:
    """An outcome as the ledger holds it, with its position and reward."""

    position: int  # monotonically increasing id, for learners to resume from
    event_id: str
    run_id: str
    workflow: str
    success: bool | None
    quality: float | None
    cost: float | None
    latency_s: float | None
    human_override: bool
    source: str
    reward: float
    received_at: float


@dataclass(slots=True)
class Rejection:
    event_id: str
    reason: str


@dataclass(slots=True)
class OutcomeReport:
    """What happened to a batch of outcome events."""

    new: int = 0
    duplicate: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    new_positions: list[int] = field(default_factory=list)


@dataclass(slots=True)
class RunView:
    """A run read back with its steps, decision and outcomes."""

    run: RunRecord
    outcomes: list[StoredOutcome]


@dataclass(slots=True)
class WorkflowStats:
    workflow: str
    runs: int
    waiting: int
    outcomes: int
    mean_reward: float | None
    route_shares: dict[str, float]


@dataclass(slots=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    action: str
    subject: str
    before: str | None
    after: str | None
    reason: str
    prev_hash: str
    hash: str


@dataclass(slots=True, frozen=True)
class TokenInfo:
    """An API token as the ledger shows it: never its secret, nor the secret's hash."""

    name: str
    role: str  # service | mlops | operator | admin
    created_at: float
    created_by: str
    revoked_at: float | None = None


@dataclass(slots=True)
class OutboxVersion:
    """A learned-config version waiting in the ledger for the registry."""

    id: int
    created_at: float
    workflow: str
    proposed_by: str
    position: int
    config: dict[str, Any]
    evidence: dict[str, float]
    learner_state: bytes | None
    policy_state: bytes | None
    attempts: int = 0
    last_error: str | None = None
    published_number: int | None = None


@dataclass(slots=True)
class OutcomeJoin:
    """An outcome joined with the decision it judges: what a learner needs, from the ledger."""

    outcome: StoredOutcome
    features: dict[str, Any] | None  # None: the run has no decision (nothing to learn for routing)
    arm: str | None
    propensity: float | None
    config_version: str | None
    confidence: float | None  # the agent's, None when the agent failed
    agent_cost: float
    agent_latency_s: float
    gate_step: str | None
    gate_passed: bool | None
    decision_id: int | None = None  # the decision's ledger id: later decisions have larger ids


@dataclass(slots=True)
class LearningEvent:
    """Something a learner noticed, e.g. kind "drift" on an arm's reward."""

    workflow: str
    kind: str
    arm: str | None
    position: int  # ledger position of the outcome that revealed it
    detail: dict[str, Any]
    at: float = 0.0
    id: int = 0
