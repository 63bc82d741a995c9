"""The version outbox: learned-config versions waiting for the registry.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 00:00:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "version_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("workflow", sa.String(), nullable=False),
        sa.Column("proposed_by", sa.String(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("learner_state", sa.LargeBinary(), nullable=True),
        sa.Column("policy_state", sa.LargeBinary(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("published_number", sa.Integer(), nullable=True),
        sa.Column("published_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_version_outbox"),
    )
    op.create_index(
        "ix_version_outbox_published_number_id", "version_outbox", ["published_number", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_version_outbox_published_number_id", table_name="version_outbox")
    op.drop_table("version_outbox")
