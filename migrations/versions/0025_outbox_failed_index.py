"""Outbox: an index of each tenant's failed events not yet answered.

A push of a line that goes through closes the line's earlier failed pushes (each push writes the whole
commitment), so every push looks for them; the administrators' failed-jobs page lists them newest first.
Failed events are few: the partial index keeps both reads from walking a tenant's open events.

Revision ID: 0025
Revises: 0024
Create Date: 2026-11-29 06:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FAILED = "failed_at IS NOT NULL AND done_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_events_failed", ["tenant_id", "failed_at"], unique=False, postgresql_where=sa.text(FAILED)
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_events_failed", postgresql_where=sa.text(FAILED))
