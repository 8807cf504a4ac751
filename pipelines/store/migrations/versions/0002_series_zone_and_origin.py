"""series: time zone, grid origin (backfilled from the first stored timestamp), last write time

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("series", sa.Column("tz", sa.String(32), nullable=True))
    op.add_column("series", sa.Column("origin", sa.BigInteger, nullable=True))
    op.add_column("series", sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    # series stored before this revision: their grid runs through their first observation
    op.execute(
        "UPDATE series SET origin = (SELECT min(o.ts) FROM observations o WHERE o.series_id = series.id), "
        "updated_at = created_at"
    )


def downgrade() -> None:
    with op.batch_alter_table("series") as batch:
        batch.drop_column("updated_at")
        batch.drop_column("origin")
        batch.drop_column("tz")
