"""A tenant's scorecard settings and the stored figures of closed periods."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, UniqueConstraint
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
    leaves the old ones (history is never rewritten)."""

    __tablename__ = "scorecard_snapshots"
    __table_args__ = (
        UniqueConstraint("tenant_id", "supplier_id", "period", "period_start", "version"),
        # The ranking: one period's snapshots of every supplier.
        Index("ix_scorecard_snapshots_tenant_period", "tenant_id", "period", "period_start", "version", "supplier_id"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    supplier_id: Mapped[int] = mapped_column(BigID, ForeignKey("suppliers.id", ondelete="CASCADE"), index=True)
    period: Mapped[str] = mapped_column(String(8))  # month | quarter
    period_start: Mapped[date] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer)
    # JSONB on PostgreSQL: the ranking sorts a period's rows by one figure, which plain JSON re-parses per row.
    figures: Mapped[dict[str, Any]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)
