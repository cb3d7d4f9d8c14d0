"""Exports made by a worker, with progress; row-level security.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 06:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import portal.db
from portal.rls import enable_tenant_rls, grant_app_role

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "exports",
        sa.Column("id", BigID, nullable=False),
        sa.Column("user_id", BigID, nullable=False),
        sa.Column("supplier_id", BigID, nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column(
            "state",
            sa.Enum("queued", "running", "done", "failed", name="exportstate", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=200), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", portal.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", portal.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", BigID, nullable=False),
        sa.ForeignKeyConstraint(
            ["supplier_id"], ["suppliers.id"], name=op.f("fk_exports_supplier_id_suppliers"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_exports_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_exports_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exports")),
    )
    with op.batch_alter_table("exports", schema=None) as batch_op:
        batch_op.create_index("ix_exports_tenant_user_created", ["tenant_id", "user_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_exports_tenant_id"), ["tenant_id"], unique=False)
    enable_tenant_rls("exports")
    grant_app_role(insert_only=("audit_events", "commitment_ledger", "document_reviews", "webhook_deliveries"))


def downgrade() -> None:
    with op.batch_alter_table("exports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exports_tenant_id"))
        batch_op.drop_index("ix_exports_tenant_user_created")
    op.drop_table("exports")
