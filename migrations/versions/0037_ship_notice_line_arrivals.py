"""Each ship notice line keeps what of it has arrived (``ship_notice_lines.received_quantity``), kept from now on
as receipts come (``services.settle_ship_notices``), so a shipment's progress shows without matching receipts
again.

The lines of received notices have all arrived. For the notices still on their way, the receipts recorded so
far are matched here as the portal matches them: receipts recorded before this change name no notice, so each
goes, in the order they came, to the earliest live notice of its line shipped on or before the day it arrived.
The matching is written out here rather than imported, so this step stays as it is when the portal's changes.

Revision ID: 0037
Revises: 0036
Create Date: 2026-11-29 19:30:00
"""

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

from portal.rls import owner_sees_every_row

revision: str = "0037"
down_revision: str | None = "0036"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUANTITY = sa.Numeric(14, 3)

# Orders with a notice on its way: their live notices' lines (earliest shipped first) and their receipts.
LIVE_NOTICE_LINES = """
SELECT notice.order_id, item.id, item.line_id, item.quantity, notice.ship_date, notice.state
FROM ship_notices notice JOIN ship_notice_lines item ON item.notice_id = notice.id
WHERE notice.state != 'cancelled' AND notice.order_id IN (SELECT order_id FROM ship_notices WHERE state = 'sent')
ORDER BY notice.order_id, notice.ship_date, notice.id, item.id
"""
RECEIPTS = """
SELECT line.order_id, receipt.line_id, receipt.quantity, receipt.received_on
FROM receipts receipt JOIN purchase_order_lines line ON line.id = receipt.line_id
WHERE line.order_id IN (SELECT order_id FROM ship_notices WHERE state = 'sent')
ORDER BY line.order_id, receipt.received_on, receipt.id
"""


def upgrade() -> None:
    op.add_column("ship_notice_lines", sa.Column("received_quantity", QUANTITY, server_default="0", nullable=False))
    with owner_sees_every_row("ship_notices", "ship_notice_lines", "receipts", "purchase_order_lines"):
        op.execute(
            "UPDATE ship_notice_lines SET received_quantity = quantity WHERE notice_id IN "
            "(SELECT id FROM ship_notices WHERE state = 'received')"
        )
        connection = op.get_bind()
        open_items: dict[int, list[list]] = defaultdict(list)  # order -> [item, line, open quantity, ship date, sent]
        for order_id, item_id, line_id, quantity, ship_date, state in connection.execute(sa.text(LIVE_NOTICE_LINES)):
            open_items[order_id].append([item_id, line_id, Decimal(str(quantity)), ship_date, state == "sent"])
        arrived: dict[int, Decimal] = defaultdict(Decimal)
        for order_id, line_id, quantity, received_on in connection.execute(sa.text(RECEIPTS)):
            left = Decimal(str(quantity))
            for item in open_items.get(order_id, []):  # earliest shipped first
                item_id, item_line, still_open, ship_date, _ = item
                if left <= 0 or ship_date > received_on:
                    break
                if item_line != line_id or still_open <= 0:
                    continue
                taken = min(left, still_open)
                item[2] -= taken
                arrived[item_id] += taken
                left -= taken
        updates = [
            {"item": item_id, "arrived": arrived[item_id]}
            for items in open_items.values()
            for item_id, _, _, _, sent in items
            if sent and arrived[item_id] > 0
        ]
        if updates:
            connection.execute(
                sa.text("UPDATE ship_notice_lines SET received_quantity = :arrived WHERE id = :item").bindparams(
                    sa.bindparam("arrived", type_=QUANTITY)
                ),
                updates,
            )


def downgrade() -> None:
    with op.batch_alter_table("ship_notice_lines") as batch:
        batch.drop_column("received_quantity")
