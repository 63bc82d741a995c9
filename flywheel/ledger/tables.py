"""SQLAlchemy models of the ledger: runs, steps, decisions, outcomes, audit and API tokens.

These classes never leave the ledger package; callers see the records of
:mod:`flywheel.ledger.records`. The Alembic migration in ``migrations/``
creates exactly this schema (a test compares the two), so a change here needs
a new migration.

Timestamps are float unix seconds (double precision). Text columns have no
length limit, except the 36-character run id and the 64-character hashes. JSON
columns use the portable :class:`sqlalchemy.JSON`, which is JSON on PostgreSQL
and text on SQLite. Constraint and index names follow :data:`NAMING_CONVENTION`, so that the
migration can name them identically.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import (
    JSON,
    Boolean,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

RUN_ID_LENGTH = 36
"""Length of a run id (a UUID in its 36-character text form)."""


class Base(DeclarativeBase):
    """Declarative base of the ledger's tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RunRow(Base):
    """One run of a workflow; its mutable part is status, answer and waiting step."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_workflow_status", "workflow", "status"),)

    run_id: Mapped[str] = mapped_column(String(RUN_ID_LENGTH), primary_key=True)
    workflow: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(String)
    input: Mapped[dict[str, Any]] = mapped_column(JSON)
    answer: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    meta: Mapped[dict[str, str]] = mapped_column("metadata", JSON)
    config_version: Mapped[str] = mapped_column(String)
    waiting_step: Mapped[str | None] = mapped_column(String, nullable=True)
    created_at: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)


class StepRow(Base):
    """One executed step of a run; (run_id, seq) is unique."""

    __tablename__ = "steps"
    __table_args__ = (UniqueConstraint("run_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(RUN_ID_LENGTH), ForeignKey("runs.run_id"))
    seq: Mapped[int] = mapped_column(Integer)
    step_id: Mapped[str] = mapped_column(String)
    kind: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(String)
    output: Mapped[dict[str, Any]] = mapped_column(JSON)
    started_at: Mapped[float] = mapped_column(Double)
    ended_at: Mapped[float | None] = mapped_column(Double, nullable=True)


class DecisionRow(Base):
    """One routing choice: the arm taken, its propensity and what the router saw."""

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_workflow_arm", "workflow", "arm"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(
        String(RUN_ID_LENGTH), ForeignKey("runs.run_id"), index=True
    )
    step_id: Mapped[str] = mapped_column(String)
    workflow: Mapped[str] = mapped_column(String)
    arm: Mapped[str] = mapped_column(String)
    propensity: Mapped[float] = mapped_column(Double)
    scores: Mapped[dict[str, float]] = mapped_column(JSON)
    features: Mapped[dict[str, Any]] = mapped_column(JSON)
    config_version: Mapped[str] = mapped_column(String)
    created_at: Mapped[float] = mapped_column(Double)


class OutcomeRow(Base):
    """One outcome event with its reward; ``position`` only ever grows."""

    __tablename__ = "outcomes"
    __table_args__ = (
        Index("ix_outcomes_workflow_position", "workflow", "position"),
        {"sqlite_autoincrement": True},
    )

    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String, unique=True)
    run_id: Mapped[str] = mapped_column(
        String(RUN_ID_LENGTH), ForeignKey("runs.run_id"), index=True
    )
    workflow: Mapped[str] = mapped_column(String)
    success: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    quality: Mapped[float | None] = mapped_column(Double, nullable=True)
    cost: Mapped[float | None] = mapped_column(Double, nullable=True)
    latency_s: Mapped[float | None] = mapped_column(Double, nullable=True)
    human_override: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String)
    reward: Mapped[float] = mapped_column(Double)
    occurred_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    received_at: Mapped[float] = mapped_column(Double)


class AuditRow(Base):
    """One append-only, hash-chained audit entry."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Double)
    actor: Mapped[str] = mapped_column(String)
    action: Mapped[str] = mapped_column(String)
    subject: Mapped[str] = mapped_column(String)
    before: Mapped[str | None] = mapped_column(Text, nullable=True)
    after: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class LearningEventRow(Base):
    """Something the learners noticed (a drift on an arm's reward), kept as evidence."""

    __tablename__ = "learning_events"
    __table_args__ = (Index("ix_learning_events_workflow_id", "workflow", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Double)
    workflow: Mapped[str] = mapped_column(String)
    kind: Mapped[str] = mapped_column(String)
    arm: Mapped[str | None] = mapped_column(String, nullable=True)
    position: Mapped[int] = mapped_column(Integer)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class VersionOutboxRow(Base):
    """A learned-config version proposed by a learner, kept until the registry (MLflow) has it.

    Rows are published in id order; once published, the states are dropped and
    the row keeps the registry's version number. A publisher claims a row first
    (``claimed_by``, ``claimed_at``: a lease, see :mod:`flywheel.ledger.versions`).
    """

    __tablename__ = "version_outbox"
    __table_args__ = (Index("ix_version_outbox_published_number_id", "published_number", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[float] = mapped_column(Double)
    workflow: Mapped[str] = mapped_column(String)
    proposed_by: Mapped[str] = mapped_column(String)
    position: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    learner_state: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    policy_state: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    published_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    published_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String, nullable=True)
    claimed_at: Mapped[float | None] = mapped_column(Double, nullable=True)


class TokenRow(Base):
    """An API token: its role and the sha256 of its secret (the secret itself is never stored)."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String, unique=True)
    role: Mapped[str] = mapped_column(String)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Double)
    created_by: Mapped[str] = mapped_column(String)
    revoked_at: Mapped[float | None] = mapped_column(Double, nullable=True)


runs = cast(Table, RunRow.__table__)
steps = cast(Table, StepRow.__table__)
decisions = cast(Table, DecisionRow.__table__)
outcomes = cast(Table, OutcomeRow.__table__)
audit = cast(Table, AuditRow.__table__)
learning_events = cast(Table, LearningEventRow.__table__)
tokens = cast(Table, TokenRow.__table__)
version_outbox = cast(Table, VersionOutboxRow.__table__)
