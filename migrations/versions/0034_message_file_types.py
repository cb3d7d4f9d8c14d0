"""Files on order messages may be Office documents, whose content types run to 71 characters: the column widens
from 40 to 100 (on PostgreSQL a change of the declared length only, no rewrite).

Revision ID: 0034
Revises: 0033
Create Date: 2026-11-29 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0034"
down_revision: str | None = "0033"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("order_message_files", schema=None) as batch_op:
        batch_op.alter_column(
            "content_type", existing_type=sa.String(length=40), type_=sa.String(length=100), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("order_message_files", schema=None) as batch_op:
        batch_op.alter_column(
            "content_type", existing_type=sa.String(length=100), type_=sa.String(length=40), existing_nullable=False
        )
