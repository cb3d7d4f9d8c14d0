"""Receipts may name the ship notice their goods came with (``receipts.ship_notice_id``): its number scanned
from the packing slip into the ERP's receipt, a column of an imported file, or chosen in the portal. A nullable
column, so the receipts table is not rewritten; receipts recorded before name none and stay matched by date.

Revision ID: 0036
Revises: 0035
Create Date: 2026-11-29 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import portal.db

revision: str = "0036"
down_revision: str | None = "0035"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("receipts") as batch:
        batch.add_column(sa.Column("ship_notice_id", portal.db.BigID, nullable=True))
        batch.create_foreign_key(
            "fk_receipts_ship_notice_id_ship_notices", "ship_notices", ["ship_notice_id"], ["id"], ondelete="SET NULL"
        )
    op.create_index("ix_receipts_ship_notice_id", "receipts", ["ship_notice_id"])


def downgrade() -> None:
    op.drop_index("ix_receipts_ship_notice_id", table_name="receipts")
    with op.batch_alter_table("receipts") as batch:
        batch.drop_constraint("fk_receipts_ship_notice_id_ship_notices", type_="foreignkey")
        batch.drop_column("ship_notice_id")
