"""Order lines: the earliest promised date of a delivery not yet complete (``open_from``).

A line split into dated deliveries counted as late as soon as its first delivery's date passed, even when
that delivery had arrived in full and the rest was due weeks later. The deliveries' outcomes (what arrived
against each, kept as receipts arrive) give the earliest delivery still to come: kept on the line with
them, so that the exceptions list and detection tell late lines from the line alone, as before.

Revision ID: 0024
Revises: 0023
Create Date: 2026-11-29 04:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from portal.rls import owner_sees_every_row

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL = """
UPDATE purchase_order_lines SET
    open_from = (SELECT min(s.promised_date) FROM delivery_schedules s
                 WHERE s.line_id = purchase_order_lines.id AND s.active
                   AND s.delivered_quantity < s.counted_quantity)
WHERE state <> 'awaiting_response'
"""


def upgrade() -> None:
    with op.batch_alter_table("purchase_order_lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("open_from", sa.Date(), nullable=True))
    with owner_sees_every_row("purchase_order_lines", "delivery_schedules"):
        op.execute(BACKFILL)


def downgrade() -> None:
    with op.batch_alter_table("purchase_order_lines", schema=None) as batch_op:
        batch_op.drop_column("open_from")
