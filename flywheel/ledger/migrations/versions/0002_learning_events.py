"""Learning events: drifts and other things the learners noticed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 00:00:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "learning_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("workflow", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("arm", sa.String(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_learning_events"),
    )
    op.create_index("ix_learning_events_workflow_id", "learning_events", ["workflow", "id"])


def downgrade() -> None:
    op.drop_index("ix_learning_events_workflow_id", table_name="learning_events")
    op.drop_table("learning_events")
