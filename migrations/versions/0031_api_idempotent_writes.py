"""The supplier API's idempotent writes (``api_idempotent_writes``), under the tenant's row-level security.

Revision ID: 0031
Revises: 0030
Create Date: 2026-11-29 09:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import portal.db
from portal.rls import enable_tenant_rls

revision: str = "0031"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_idempotent_writes",
        sa.Column("id", ID, nullable=False),
        sa.Column("api_key_id", ID, nullable=False),
        sa.Column("idempotency_key", sa.String(length=100), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", portal.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_api_idempotent_writes_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_api_idempotent_writes_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_idempotent_writes")),
        sa.UniqueConstraint(
            "api_key_id", "idempotency_key", name=op.f("uq_api_idempotent_writes_api_key_id_idempotency_key")
        ),
    )
    with op.batch_alter_table("api_idempotent_writes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_idempotent_writes_tenant_id"), ["tenant_id"], unique=False)
    # The application role gets its rights from the default privileges that 0001 set for new tables.
    enable_tenant_rls("api_idempotent_writes")


def downgrade() -> None:
    with op.batch_alter_table("api_idempotent_writes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_idempotent_writes_tenant_id"))
    op.drop_table("api_idempotent_writes")
