"""A tenant's scorecard settings and the stored figures of closed periods."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKeyConstraint, Index, Integer, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, BigID, TenantOwned, utcnow

DEFAULT_WEIGHTS = {"otif": 40, "fill_rate": 20, "ack_rate": 15, "reliability": 15, "documents": 10}
DEFAULT_GRADES = [[90, "A"], [80, "B"], [70, "C"], [0, "D"]]


class ScorecardSettings(TenantOwned, Base):
    __tablename__ = "scorecard_settings"
    __table_args__ = (UniqueConstraint("tenant_id"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    early_days: Mapped[int] = mapped_column(Integer, default=2)
    late_days: Mapped[int] = mapped_column(Integer, default=0)
    weights: Mapped[dict[str, int]] = mapped_column(JSON, default=lambda: dict(DEFAULT_WEIGHTS))
    grades: Mapped[list[list[Any]]] = mapped_column(JSON, default=lambda: [list(g) for g in DEFAULT_GRADES])
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ScorecardSnapshot(TenantOwned, Base):
    """One supplier's figures for one closed period, as computed by one definition version.

    A rebuild replaces the rows of its version; a new definition version adds rows and
    leaves the old ones (history is never rewritten).

    The monthly job writes 150,000 of these rows at once for a large tenant, so the table carries no more
    checks and indexes than it needs: one foreign key on (tenant, supplier), which also proves the supplier
    is the tenant's own (and removes the rows with the supplier, or with the tenant through its suppliers),
    the unique key (which serves one supplier's trend) and the ranking's index. A separate key to tenants and
    indexes on the tenant alone or the supplier alone cost a third of the insert time and served nothing."""

    __tablename__ = "scorecard_snapshots"
    __table_args__ = (
        UniqueConstraint("tenant_id", "supplier_id", "period", "period_start", "version"),
        ForeignKeyConstraint(["tenant_id", "supplier_id"], ["suppliers.tenant_id", "suppliers.id"], ondelete="CASCADE"),
        # The ranking: one period's snapshots of every supplier.
        Index("ix_scorecard_snapshots_tenant_period", "tenant_id", "period", "period_start", "version", "supplier_id"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(BigID)  # checked through the (tenant, supplier) key above
    supplier_id: Mapped[int] = mapped_column(BigID)
    period: Mapped[str] = mapped_column(String(8))  # month | quarter
    period_start: Mapped[date] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer)
    # JSONB on PostgreSQL: the ranking sorts a period's rows by one figure, which plain JSON re-parses per row.
    figures: Mapped[dict[str, Any]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)
