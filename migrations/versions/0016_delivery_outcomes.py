"""Orders: each delivery keeps its outcome (the quantity it is judged on, how much arrived, the day its first
part arrived, the day it was complete), folded from its line's receipts as they arrive; filled here for the
deliveries that exist.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-28 10:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from portal.rls import owner_sees_every_row

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Quantity = sa.Numeric(14, 3)

# A line's receipts set against its active deliveries in promised-date order (as portal.orders.outcomes
# does; written out here so that this migration keeps doing what it did when the code moves on).
FOLD = """
UPDATE delivery_schedules SET counted_quantity = f.counted, delivered_quantity = f.delivered,
       first_arrival_on = f.first_arrival, completed_on = f.completed
FROM (
    SELECT d.id,
           d.counted,
           CASE WHEN coalesce(max(r.running), 0) - d.before_qty <= 0 THEN 0
                WHEN coalesce(max(r.running), 0) - d.before_qty >= d.counted THEN d.counted
                ELSE coalesce(max(r.running), 0) - d.before_qty END AS delivered,
           min(CASE WHEN r.running > d.before_qty THEN r.received_on END) AS first_arrival,
           min(CASE WHEN r.running >= d.before_qty + d.counted THEN r.received_on END) AS completed
    FROM (
        SELECT s.id, s.line_id, s.before_qty,
               CASE WHEN s.state = 'cancelled' THEN
                        CASE WHEN s.received_quantity - s.before_qty <= 0 THEN 0
                             WHEN s.received_quantity - s.before_qty >= s.quantity THEN s.quantity
                             ELSE s.received_quantity - s.before_qty END
                    ELSE s.quantity END AS counted
        FROM (
            SELECT s.id, s.line_id, s.quantity, l.state, l.received_quantity,
                   coalesce(sum(s.quantity) OVER (PARTITION BY s.line_id ORDER BY s.promised_date, s.position
                                                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before_qty
            FROM delivery_schedules s JOIN purchase_order_lines l ON l.id = s.line_id
            WHERE s.active AND (l.state = 'cancelled' OR l.received_quantity <> 0)
        ) s
    ) d
    LEFT JOIN (
        SELECT line_id, received_on, sum(quantity) OVER (PARTITION BY line_id ORDER BY received_on, id) AS running
        FROM receipts
    ) r ON r.line_id = d.line_id
    GROUP BY d.id, d.counted, d.before_qty
) f
WHERE delivery_schedules.id = f.id
"""


def upgrade() -> None:
    with op.batch_alter_table("delivery_schedules", schema=None) as batch_op:
        batch_op.add_column(sa.Column("counted_quantity", Quantity, nullable=True))
        batch_op.add_column(sa.Column("delivered_quantity", Quantity, nullable=True))
        batch_op.add_column(sa.Column("first_arrival_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("completed_on", sa.Date(), nullable=True))
    with owner_sees_every_row("delivery_schedules", "purchase_order_lines", "receipts"):
        # Nothing arrived yet, unless the line has receipts or was cancelled: those are folded.
        op.execute("UPDATE delivery_schedules SET counted_quantity = quantity, delivered_quantity = 0")
        op.execute(FOLD)
    with op.batch_alter_table("delivery_schedules", schema=None) as batch_op:
        batch_op.alter_column("counted_quantity", existing_type=Quantity, nullable=False)
        batch_op.alter_column("delivered_quantity", existing_type=Quantity, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("delivery_schedules", schema=None) as batch_op:
        for column in ("completed_on", "first_arrival_on", "delivered_quantity", "counted_quantity"):
            batch_op.drop_column(column)
