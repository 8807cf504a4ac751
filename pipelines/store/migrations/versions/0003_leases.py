"""leases: named, expiring locks held by one process at a time (retraining passes)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(256), nullable=True),
        sa.Column("host", sa.String(256), nullable=True),
        sa.Column("pid", sa.Integer, nullable=True),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("last_tick", sa.Double, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("leases")
