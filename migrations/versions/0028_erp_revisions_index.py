"""ERP lines: an index of the buyers' changes in the ERP waiting for a decision.

The response queue lists them for each tenant; they are few among every line that came from an ERP, so a
partial index keeps the queue from reading all of them.

Revision ID: 0028
Revises: 0027
Create Date: 2026-11-29 08:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REVISED = "revised_terms IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("erp_line_syncs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_erp_line_syncs_revised", ["tenant_id", "id"], unique=False, postgresql_where=sa.text(REVISED)
        )


def downgrade() -> None:
    with op.batch_alter_table("erp_line_syncs", schema=None) as batch_op:
        batch_op.drop_index("ix_erp_line_syncs_revised", postgresql_where=sa.text(REVISED))
