"""The number of reminders of an order after which exception detection stops repeating its own
(``tenants.reminder_limit``; 5, the default, is the number every tenant had before).

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-29 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# A column with a constant default: added in place on both databases, without rewriting the table.
def upgrade() -> None:
    op.add_column("tenants", sa.Column("reminder_limit", sa.Integer(), server_default="5", nullable=False))


def downgrade() -> None:
    op.drop_column("tenants", "reminder_limit")
