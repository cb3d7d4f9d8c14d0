"""Where the ERP kept a line's commitment when the portal last wrote it (``erp_line_syncs.erp_stage``).

Tryton keeps a quotation's commitment on the line (its date; the quantity only in draft) and a confirmed
purchase's on its incoming moves, which confirmation creates from the line. A commitment written while the
purchase was a quotation is written again, to the moves, once an intake finds the purchase confirmed.

Revision ID: 0026
Revises: 0025
Create Date: 2026-11-29 06:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Nullable and without a default: added in place on both databases; lines pushed before it have none.
def upgrade() -> None:
    op.add_column("erp_line_syncs", sa.Column("erp_stage", sa.String(length=16), nullable=True))


def downgrade() -> None:
    op.drop_column("erp_line_syncs", "erp_stage")
