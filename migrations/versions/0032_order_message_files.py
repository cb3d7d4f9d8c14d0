"""Files attached to order messages (``order_message_files``), under the tenant's row-level security.

Revision ID: 0032
Revises: 0031
Create Date: 2026-11-29 14:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import portal.db
from portal.rls import enable_tenant_rls

revision: str = "0032"
down_revision: str | None = "0031"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "order_message_files",
        sa.Column("id", ID, nullable=False),
        sa.Column("order_id", ID, nullable=False),
        sa.Column("message_id", ID, nullable=False),
        sa.Column("storage_key", sa.String(length=80), nullable=False),
        sa.Column("original_name", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(length=40), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", portal.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["order_messages.id"],
            name=op.f("fk_order_message_files_message_id_order_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["purchase_orders.id"],
            name=op.f("fk_order_message_files_order_id_purchase_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_order_message_files_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_message_files")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_order_message_files_storage_key")),
    )
    with op.batch_alter_table("order_message_files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_order_message_files_message_id"), ["message_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_order_message_files_order_id"), ["order_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_order_message_files_tenant_id"), ["tenant_id"], unique=False)
    # The application role gets its rights from the default privileges that 0001 set for new tables.
    enable_tenant_rls("order_message_files")


def downgrade() -> None:
    with op.batch_alter_table("order_message_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_order_message_files_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_order_message_files_order_id"))
        batch_op.drop_index(batch_op.f("ix_order_message_files_message_id"))
    op.drop_table("order_message_files")
