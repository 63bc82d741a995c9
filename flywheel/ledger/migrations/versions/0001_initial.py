"""The ledger's tables: runs, steps, decisions, outcomes, audit.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the five tables and their indexes."""
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("workflow", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("input", sa.JSON(), nullable=False),
        sa.Column("answer", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("config_version", sa.String(), nullable=False),
        sa.Column("waiting_step", sa.String(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_runs"),
    )
    op.create_index("ix_runs_workflow_status", "runs", ["workflow", "status"])

    op.create_table(
        "steps",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("output", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("ended_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_steps"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name="fk_steps_run_id_runs"),
        sa.UniqueConstraint("run_id", "seq", name="uq_steps_run_id_seq"),
    )

    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("step_id", sa.String(), nullable=False),
        sa.Column("workflow", sa.String(), nullable=False),
        sa.Column("arm", sa.String(), nullable=False),
        sa.Column("propensity", sa.Double(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("config_version", sa.String(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_decisions"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name="fk_decisions_run_id_runs"),
    )
    op.create_index("ix_decisions_run_id", "decisions", ["run_id"])
    op.create_index("ix_decisions_workflow_arm", "decisions", ["workflow", "arm"])

    op.create_table(
        "outcomes",
        sa.Column("position", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("workflow", sa.String(), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=True),
        sa.Column("quality", sa.Double(), nullable=True),
        sa.Column("cost", sa.Double(), nullable=True),
        sa.Column("latency_s", sa.Double(), nullable=True),
        sa.Column("human_override", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("reward", sa.Double(), nullable=False),
        sa.Column("occurred_at", sa.Double(), nullable=True),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("position", name="pk_outcomes"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name="fk_outcomes_run_id_runs"),
        sa.UniqueConstraint("event_id", name="uq_outcomes_event_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_outcomes_run_id", "outcomes", ["run_id"])
    op.create_index("ix_outcomes_workflow_position", "outcomes", ["workflow", "position"])

    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit"),
    )


def downgrade() -> None:
    """Drop the five tables (the audit trail with them)."""
    op.drop_table("audit")
    op.drop_index("ix_outcomes_workflow_position", table_name="outcomes")
    op.drop_index("ix_outcomes_run_id", table_name="outcomes")
    op.drop_table("outcomes")
    op.drop_index("ix_decisions_workflow_arm", table_name="decisions")
    op.drop_index("ix_decisions_run_id", table_name="decisions")
    op.drop_table("decisions")
    op.drop_table("steps")
    op.drop_index("ix_runs_workflow_status", table_name="runs")
    op.drop_table("runs")
