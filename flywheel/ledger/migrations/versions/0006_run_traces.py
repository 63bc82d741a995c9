"""Runs keep their trace id and, for the dashboard's SQL aggregates, their arm, whether the
gate sent them to a human and the gate's threshold; indexes for time-bucketed queries.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 00:00:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("trace_id", sa.String(32), nullable=True))
    op.add_column("runs", sa.Column("arm", sa.String(), nullable=True))
    op.add_column("runs", sa.Column("to_human", sa.Boolean(), nullable=True))
    op.add_column("runs", sa.Column("gate_threshold", sa.Double(), nullable=True))
    op.create_index("ix_runs_workflow_created_at", "runs", ["workflow", "created_at"])
    op.create_index("ix_outcomes_workflow_received_at", "outcomes", ["workflow", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_outcomes_workflow_received_at", table_name="outcomes")
    op.drop_index("ix_runs_workflow_created_at", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("gate_threshold")
        batch.drop_column("to_human")
        batch.drop_column("arm")
        batch.drop_column("trace_id")
