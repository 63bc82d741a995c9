"""Claims on outbox rows: which publisher holds a version, since when (a lease).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 00:00:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("version_outbox", sa.Column("claimed_by", sa.String(), nullable=True))
    op.add_column("version_outbox", sa.Column("claimed_at", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("version_outbox") as batch:
        batch.drop_column("claimed_at")
        batch.drop_column("claimed_by")
