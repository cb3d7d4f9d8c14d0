from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Date, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, BigID, TenantOwned, str_enum, utcnow


class SupplierStatus(enum.StrEnum):
    ACTIVE = "active"
    ON_HOLD = "on_hold"
    INACTIVE = "inactive"


class Supplier(TenantOwned, Base):
    """A supplier account inside one tenant.

    The same real-world company serving two distributors has two supplier
    accounts, one per tenant; its people are linked to both through memberships.
    """

    __tablename__ = "suppliers"
    # (tenant_id, id): the target of keys that also prove a row's supplier is its tenant's own.
    __table_args__ = (UniqueConstraint("tenant_id", "code"), UniqueConstraint("tenant_id", "id"))

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(80), default="")
    erp_ref: Mapped[str | None] = mapped_column(String(80))
    status: Mapped[SupplierStatus] = mapped_column(
        str_enum(SupplierStatus, 20),
        default=SupplierStatus.ACTIVE,
    )
    # A buyer may let a supplier confirm orders despite missing documents, until a date (audited).
    gating_override_until: Mapped[date | None] = mapped_column(Date)
    gating_override_reason: Mapped[str] = mapped_column(String(500), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
