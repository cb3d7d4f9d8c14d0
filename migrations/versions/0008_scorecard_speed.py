"""Scorecards: deliveries carry their supplier and the notice of their last date change; indexes for one
supplier's orders of a period and for ranking a period's snapshots.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 05:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("delivery_schedules", schema=None) as batch_op:
        batch_op.add_column(sa.Column("supplier_id", BigID, nullable=True))
        batch_op.add_column(sa.Column("notice_days", sa.Integer(), nullable=True))
    # Existing rows take their line's supplier. FORCE RLS would hide both tables' rows from the owner (no
    # tenant is set here): lifted for the copy, inside this migration's transaction.
    if postgres:
        for table in ("delivery_schedules", "purchase_order_lines"):
            op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(
            "UPDATE delivery_schedules s SET supplier_id = l.supplier_id "
            "FROM purchase_order_lines l WHERE l.id = s.line_id"
        )
        for table in ("delivery_schedules", "purchase_order_lines"):
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    else:
        op.execute(
            "UPDATE delivery_schedules SET supplier_id = "
            "(SELECT supplier_id FROM purchase_order_lines l WHERE l.id = delivery_schedules.line_id)"
        )
    with op.batch_alter_table("delivery_schedules", schema=None) as batch_op:
        batch_op.alter_column("supplier_id", existing_type=BigID, nullable=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_delivery_schedules_supplier_id_suppliers"), "suppliers", ["supplier_id"], ["id"]
        )
        batch_op.create_index(
            "ix_delivery_schedules_tenant_supplier_promised",
            ["tenant_id", "supplier_id", "promised_date"],
            unique=False,
        )
    with op.batch_alter_table("purchase_orders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_purchase_orders_tenant_supplier_ordered", ["tenant_id", "supplier_id", "order_date"], unique=False
        )
    if postgres:  # the ranking sorts by one figure: JSONB reads it without re-parsing the document
        op.alter_column(
            "scorecard_snapshots",
            "figures",
            existing_type=sa.JSON(),
            type_=JSONB(),
            postgresql_using="figures::jsonb",
        )
    with op.batch_alter_table("scorecard_snapshots", schema=None) as batch_op:
        batch_op.create_index(
            "ix_scorecard_snapshots_tenant_period",
            ["tenant_id", "period", "period_start", "version", "supplier_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("scorecard_snapshots", schema=None) as batch_op:
        batch_op.drop_index("ix_scorecard_snapshots_tenant_period")
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "scorecard_snapshots", "figures", existing_type=JSONB(), type_=sa.JSON(), postgresql_using="figures::json"
        )
    with op.batch_alter_table("purchase_orders", schema=None) as batch_op:
        batch_op.drop_index("ix_purchase_orders_tenant_supplier_ordered")
    with op.batch_alter_table("delivery_schedules", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_schedules_tenant_supplier_promised")
        batch_op.drop_constraint(batch_op.f("fk_delivery_schedules_supplier_id_suppliers"), type_="foreignkey")
        batch_op.drop_column("notice_days")
        batch_op.drop_column("supplier_id")
