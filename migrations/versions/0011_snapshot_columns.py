"""Scorecard snapshots: the figures in a column each instead of one JSON document.

The monthly job computes the figures in SQL; building a JSON document for each of 155,774 rows took 1.1 s of
its 7.6 s, and comparing the documents made a rebuild of unchanged history slower still. Existing rows (every
definition version) keep their figures: the documents are copied into the columns.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS = ("deliveries", "orders")
SHARES = ("on_time", "in_full", "otif", "fill_rate", "ack_rate", "ack_hours", "promise_kept", "slip_days",
          "notice_days", "lead_error_days", "documents", "score")  # fmt: skip
ORDER = ("deliveries", "on_time", "in_full", "otif", "fill_rate", "orders", "ack_rate", "ack_hours", "promise_kept",
         "slip_days", "notice_days", "lead_error_days", "documents", "score", "grade")  # fmt: skip


def _without_forced_rls(postgres: bool, statement: str) -> None:
    # FORCE RLS would hide every row from the owner (no tenant is set here): lifted for the copy, inside
    # this migration's transaction.
    if postgres:
        op.execute("ALTER TABLE scorecard_snapshots NO FORCE ROW LEVEL SECURITY")
    op.execute(statement)
    if postgres:
        op.execute("ALTER TABLE scorecard_snapshots FORCE ROW LEVEL SECURITY")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("scorecard_snapshots", schema=None) as batch_op:
        for name in ORDER:
            kind = sa.Integer() if name in COUNTS else sa.String(length=8) if name == "grade" else sa.Float()
            batch_op.add_column(sa.Column(name, kind, nullable=True))
    if postgres:
        copied = [f"{n} = COALESCE((figures->>'{n}')::integer, 0)" for n in COUNTS]
        copied += [f"{n} = (figures->>'{n}')::double precision" for n in SHARES] + ["grade = figures->>'grade'"]
    else:
        copied = [f"{n} = COALESCE(json_extract(figures, '$.{n}'), 0)" for n in COUNTS]
        copied += [f"{n} = json_extract(figures, '$.{n}')" for n in (*SHARES, "grade")]
    _without_forced_rls(postgres, "UPDATE scorecard_snapshots SET " + ", ".join(copied))
    with op.batch_alter_table("scorecard_snapshots", schema=None) as batch_op:
        for name in COUNTS:
            batch_op.alter_column(name, existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("figures")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    document = sa.JSON().with_variant(JSONB(), "postgresql")
    with op.batch_alter_table("scorecard_snapshots", schema=None) as batch_op:
        batch_op.add_column(sa.Column("figures", document, nullable=True))
    pairs = ", ".join(f"'{name}', {name}" for name in ORDER)
    build = (
        f"jsonb_build_object({pairs}, 'version', version)" if postgres else f"json_object({pairs}, 'version', version)"
    )
    _without_forced_rls(postgres, f"UPDATE scorecard_snapshots SET figures = {build}")
    with op.batch_alter_table("scorecard_snapshots", schema=None) as batch_op:
        batch_op.alter_column("figures", existing_type=document, nullable=False)
        for name in ORDER:
            batch_op.drop_column(name)
