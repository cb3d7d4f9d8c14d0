"""A tenant's scorecard settings and the stored figures of closed periods."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, Float, ForeignKeyConstraint, Index, Integer, String, UniqueConstraint
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
    the primary key (which serves one supplier's trend) and the ranking's index. A separate key to tenants and
    indexes on the tenant alone or the supplier alone cost a third of the insert time and served nothing."""

    __tablename__ = "scorecard_snapshots"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "supplier_id"], ["suppliers.tenant_id", "suppliers.id"], ondelete="CASCADE"),
        # The ranking: one period's snapshots of every supplier.
        Index("ix_scorecard_snapshots_tenant_period", "tenant_id", "period", "period_start", "version", "supplier_id"),
    )

    # The key (which also serves one supplier's trend); no surrogate id: nothing refers to a snapshot, and its
    # index and sequence cost a sixth of a first build's insert.
    tenant_id: Mapped[int] = mapped_column(BigID, primary_key=True)  # checked through the (tenant, supplier) key
    supplier_id: Mapped[int] = mapped_column(BigID, primary_key=True)
    period: Mapped[str] = mapped_column(String(8), primary_key=True)  # month | quarter
    period_start: Mapped[date] = mapped_column(Date, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The figures (``services.Figures``), a column each: the monthly job computes and writes them in SQL
    # (building a JSON document per row took 1.1 s of its 7.6), and the ranking sorts by one of them. A
    # definition version that adds a figure adds a column; older rows keep it empty.
    deliveries: Mapped[int] = mapped_column(Integer, default=0)
    on_time: Mapped[float | None] = mapped_column(Float)
    in_full: Mapped[float | None] = mapped_column(Float)
    otif: Mapped[float | None] = mapped_column(Float)
    fill_rate: Mapped[float | None] = mapped_column(Float)
    orders: Mapped[int] = mapped_column(Integer, default=0)
    ack_rate: Mapped[float | None] = mapped_column(Float)
    ack_hours: Mapped[float | None] = mapped_column(Float)
    promise_kept: Mapped[float | None] = mapped_column(Float)
    slip_days: Mapped[float | None] = mapped_column(Float)
    notice_days: Mapped[float | None] = mapped_column(Float)
    lead_error_days: Mapped[float | None] = mapped_column(Float)
    documents: Mapped[float | None] = mapped_column(Float)
    score: Mapped[float | None] = mapped_column(Float)
    grade: Mapped[str | None] = mapped_column(String(8))
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def figures(self) -> dict[str, Any]:
        """The figures as ``services.Figures``' fields (with the version)."""
        return {**{name: getattr(self, name) for name in FIGURE_COLUMNS}, "version": self.version}

    @figures.setter
    def figures(self, values: dict[str, Any]) -> None:
        for name in FIGURE_COLUMNS:
            setattr(self, name, values.get(name, 0 if name in COUNT_COLUMNS else None))


# ``services.Figures``' fields but the version, in their order (a test keeps them the same).
FIGURE_COLUMNS = (
    "deliveries", "on_time", "in_full", "otif", "fill_rate", "orders", "ack_rate", "ack_hours", "promise_kept",
    "slip_days", "notice_days", "lead_error_days", "documents", "score", "grade",
)  # fmt: skip
COUNT_COLUMNS = ("deliveries", "orders")
