"""Orders: indexes for the inbox's search (order number prefix, product code, supplier's product code).

A buyer's search read every order of the tenant: a second over 200,000 orders. The search becomes one set of
order ids from three index lookups. The order number's index uses text_pattern_ops so that a prefix (LIKE
'PO-12%') can use it whatever the database's collation. Built without locking out writes on PostgreSQL
(CONCURRENTLY, outside the migration's transaction).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-27 20:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ix_purchase_orders_tenant_number_prefix": ("purchase_orders", ["tenant_id", "number"]),
    "ix_purchase_order_lines_tenant_product": ("purchase_order_lines", ["tenant_id", "product_code"]),
    "ix_purchase_order_lines_tenant_supplier_code": ("purchase_order_lines", ["tenant_id", "supplier_product_code"]),
}


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, (table, columns) in INDEXES.items():
            options = {"postgresql_ops": {"number": "text_pattern_ops"}} if "number" in columns else {}
            op.create_index(name, table, columns, postgresql_concurrently=True, **options)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, (table, _) in INDEXES.items():
            op.drop_index(name, table_name=table, postgresql_concurrently=True)
