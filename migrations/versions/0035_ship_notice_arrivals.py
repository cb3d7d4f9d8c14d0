"""Ship notices on their way: an index of the notices still in transit (sent, not received or cancelled) by
tenant and expected arrival, for the arrivals list; and the notices whose goods have already arrived marked
received.

From now on a notice is marked received as receipts come, matched to the notices of each line by date
(``services.settle_ship_notices``). The notices sent before are settled here from the lines' totals: a notice
is received when each of its lines has received at least what every live notice of that line shipped (the
receipts' dates are not weighed: a line still waiting for goods keeps all its notices in transit).

Revision ID: 0035
Revises: 0034
Create Date: 2026-11-29 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from portal.rls import owner_sees_every_row

revision: str = "0035"
down_revision: str | None = "0034"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SETTLE = """
UPDATE ship_notices SET state = 'received'
WHERE state = 'sent' AND NOT EXISTS (
    SELECT 1 FROM ship_notice_lines item JOIN purchase_order_lines line ON line.id = item.line_id
    WHERE item.notice_id = ship_notices.id AND line.received_quantity < line.shipped_quantity
)
"""


def upgrade() -> None:
    with owner_sees_every_row("ship_notices", "ship_notice_lines", "purchase_order_lines"):
        op.execute(SETTLE)
    op.create_index(
        "ix_ship_notices_in_transit",
        "ship_notices",
        ["tenant_id", "expected_arrival"],
        unique=False,
        postgresql_where=sa.text("state = 'sent'"),
        sqlite_where=sa.text("state = 'sent'"),
    )


def downgrade() -> None:
    op.drop_index("ix_ship_notices_in_transit", table_name="ship_notices")
