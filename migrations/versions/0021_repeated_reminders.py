"""Repeated reminders: how many times a supplier was reminded of an order (``purchase_orders.reminder_count``,
which caps the automatic ones), and every how many days exception detection repeats its reminder while an order
stays unanswered (``tenants.reminder_repeat_days``; 0, the default, reminds once as before).

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-28 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from portal.rls import owner_sees_every_row

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE on both databases (SQLite adds and, from 3.35, drops a column in place); on PostgreSQL a
# column with a constant default is added without rewriting the table.
def upgrade() -> None:
    op.add_column("tenants", sa.Column("reminder_repeat_days", sa.Integer(), server_default="0", nullable=False))
    op.add_column("purchase_orders", sa.Column("reminder_count", sa.Integer(), server_default="0", nullable=False))
    # An order reminded before this revision was reminded once: the reminders since 0018 kept only the last time.
    with owner_sees_every_row("purchase_orders"):
        op.execute("UPDATE purchase_orders SET reminder_count = 1 WHERE reminded_at IS NOT NULL")


def downgrade() -> None:
    op.drop_column("purchase_orders", "reminder_count")
    op.drop_column("tenants", "reminder_repeat_days")
