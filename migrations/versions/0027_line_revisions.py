"""Buyers' revisions of answered lines: the day a line was last put to the supplier
(``purchase_order_lines.asked_on``) and a buyer's change in the ERP waiting for a decision
(``erp_line_syncs.revised_terms`` and ``revised_write_date``).

Revision ID: 0027
Revises: 0026
Create Date: 2026-11-29 07:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Nullable and without a default: added in place on both databases; existing rows have none.
def upgrade() -> None:
    op.add_column("purchase_order_lines", sa.Column("asked_on", sa.Date(), nullable=True))
    op.add_column("erp_line_syncs", sa.Column("revised_terms", sa.String(length=120), nullable=True))
    op.add_column("erp_line_syncs", sa.Column("revised_write_date", sa.String(length=40), nullable=True))


def downgrade() -> None:
    op.drop_column("erp_line_syncs", "revised_write_date")
    op.drop_column("erp_line_syncs", "revised_terms")
    op.drop_column("purchase_order_lines", "asked_on")
