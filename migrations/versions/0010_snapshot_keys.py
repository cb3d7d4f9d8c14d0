"""Scorecard snapshots: one (tenant, supplier) foreign key instead of two, no indexes that serve nothing.

The monthly job inserts a large tenant's 150,000 snapshots at once; measured on 155,774 rows, the key to
tenants and the indexes on tenant_id alone and supplier_id alone took a third of the insert. The composite
key checks more (the supplier belongs to the row's tenant) with one lookup instead of two.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 10:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_SUPPLIER_KEY = "fk_scorecard_snapshots_tenant_id_supplier_id_suppliers"


def upgrade() -> None:
    with op.batch_alter_table("suppliers", schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f("uq_suppliers_tenant_id_id"), ["tenant_id", "id"])
    with op.batch_alter_table("scorecard_snapshots", schema=None) as batch_op:
        batch_op.drop_constraint("fk_scorecard_snapshots_supplier_id_suppliers", type_="foreignkey")
        batch_op.drop_constraint("fk_scorecard_snapshots_tenant_id_tenants", type_="foreignkey")
        batch_op.drop_index("ix_scorecard_snapshots_supplier_id")
        batch_op.drop_index("ix_scorecard_snapshots_tenant_id")
        batch_op.create_foreign_key(
            batch_op.f(TENANT_SUPPLIER_KEY),
            "suppliers",
            ["tenant_id", "supplier_id"],
            ["tenant_id", "id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table("scorecard_snapshots", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f(TENANT_SUPPLIER_KEY), type_="foreignkey")
        batch_op.create_index("ix_scorecard_snapshots_tenant_id", ["tenant_id"], unique=False)
        batch_op.create_index("ix_scorecard_snapshots_supplier_id", ["supplier_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_scorecard_snapshots_tenant_id_tenants", "tenants", ["tenant_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_foreign_key(
            "fk_scorecard_snapshots_supplier_id_suppliers", "suppliers", ["supplier_id"], ["id"], ondelete="CASCADE"
        )
    with op.batch_alter_table("suppliers", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_suppliers_tenant_id_id"), type_="unique")
