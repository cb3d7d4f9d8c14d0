"""Suppliers' own webhooks: ``webhooks.supplier_id`` (none: the tenant's).

Revision ID: 0030
Revises: 0029
Create Date: 2026-11-29 09:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Nullable: every webhook so far is its tenant's.
def upgrade() -> None:
    with op.batch_alter_table("webhooks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("supplier_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True)
        )
        batch_op.create_index(batch_op.f("ix_webhooks_supplier_id"), ["supplier_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_webhooks_supplier_id_suppliers"), "suppliers", ["supplier_id"], ["id"], ondelete="CASCADE"
        )


def downgrade() -> None:
    with op.batch_alter_table("webhooks", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_webhooks_supplier_id_suppliers"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_webhooks_supplier_id"))
        batch_op.drop_column("supplier_id")
