from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, BigID, TenantOwned, str_enum, utcnow


class MfaPolicy(enum.StrEnum):
    # Second factor for everybody (the default).
    REQUIRED_FOR_ALL = "required_for_all"
    # The lowest policy a tenant may choose: supplier users and tenant admins
    # must use MFA; buyers, compliance officers and viewers may skip it.
    REQUIRED_FOR_SUPPLIERS_AND_ADMINS = "required_for_suppliers_and_admins"


class DocumentGating(enum.StrEnum):
    OFF = "off"
    WARN = "warn"  # confirmations go through with a warning naming the documents
    BLOCK = "block"  # confirmations are refused until the documents are valid (or a buyer overrides)


class Tenant(Base):
    """A buying organisation. Not tenant-owned itself: it *is* the tenant."""

    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    mfa_policy: Mapped[MfaPolicy] = mapped_column(
        str_enum(MfaPolicy, 40),
        default=MfaPolicy.REQUIRED_FOR_ALL,
    )
    # An order line still unanswered this many days after the order date is an exception.
    unconfirmed_after_days: Mapped[int] = mapped_column(Integer, default=3, server_default="3")
    # Whether exception detection reminds the supplier, once, when an order becomes unconfirmed.
    remind_unconfirmed: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    # Every how many days that reminder is repeated while the order stays unanswered (0: never), until the
    # order has had ``reminder_limit`` reminders in all (a buyer's count too).
    reminder_repeat_days: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reminder_limit: Mapped[int] = mapped_column(Integer, default=5, server_default="5")
    # A confirmed line with no ship notice this many days before its promise is at risk.
    ship_notice_lead_days: Mapped[int] = mapped_column(Integer, default=2, server_default="2")
    document_gating: Mapped[DocumentGating] = mapped_column(
        str_enum(DocumentGating, 8),
        default=DocumentGating.OFF,
        server_default="off",
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Company(TenantOwned, Base):
    """A legal entity of the tenant."""

    __tablename__ = "companies"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Warehouse(TenantOwned, Base):
    """A site (ship-to address) that belongs to one company."""

    __tablename__ = "warehouses"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    company_id: Mapped[int] = mapped_column(BigID, ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    city: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
