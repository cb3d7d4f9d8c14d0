"""Orders: an index of the tenant's orders by state and order date, for a buyer's tabs of several states
sorted newest first.

Such a tab (late, shipped, closed) sorted by a date reads each state's orders in order and merges the first
ones of each; by due date the index by state and due date (0012) serves, by order date this one. Without it
the closed orders newest first read the tenant's orders by date until a page of closed ones turned up.
Built without locking out writes on PostgreSQL (CONCURRENTLY, outside the migration's transaction).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27 19:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_purchase_orders_tenant_state_ordered"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            NAME, "purchase_orders", ["tenant_id", "state", "order_date", "id"], postgresql_concurrently=True
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(NAME, table_name="purchase_orders", postgresql_concurrently=True)
