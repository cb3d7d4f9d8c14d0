"""Tenants: whether exception detection reminds a supplier by itself when an order becomes unconfirmed
(``remind_unconfirmed``, on unless the tenant's administrators turn it off in the settings).

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-28 16:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE on both databases: SQLite adds and (from 3.35) drops a column in place, without batch
# mode's copy of the table.
def upgrade() -> None:
    op.add_column("tenants", sa.Column("remind_unconfirmed", sa.Boolean(), server_default="1", nullable=False))


def downgrade() -> None:
    op.drop_column("tenants", "remind_unconfirmed")  # SQLite 3.35 and later drop a column in place
