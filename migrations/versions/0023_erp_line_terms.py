"""What an ERP line held (quantity, date, unit price) when the portal last saw or wrote it
(``erp_line_syncs.erp_terms``): an intake that finds a line the supplier has answered changed in
the ERP no longer takes its new modification stamp, so the next push stops instead of overwriting
the buyer's edit.

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-29 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Nullable and without a default: added in place on both databases. Lines synced before it have none and
# behave as they did until their next push or intake records it.
def upgrade() -> None:
    op.add_column("erp_line_syncs", sa.Column("erp_terms", sa.String(length=120), nullable=True))


def downgrade() -> None:
    op.drop_column("erp_line_syncs", "erp_terms")
