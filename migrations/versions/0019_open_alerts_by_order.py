"""Line alerts: an index of the open alerts by tenant and order, for the order page.

Without it, on a first detection run's 100,000 alerts not yet analysed, PostgreSQL read the order page's open
alerts through the (tenant, resolved) index: every open alert of the tenant, 10 ms per order page (measured by
``bench/orders.py`` after ``bench/workers.py``'s detection run). This index matches all three conditions.

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-28 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_line_alerts_order_open",
        "line_alerts",
        ["tenant_id", "order_id"],
        unique=False,
        postgresql_where=sa.text("resolved_at IS NULL"),
        sqlite_where=sa.text("resolved_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_line_alerts_order_open", table_name="line_alerts")
