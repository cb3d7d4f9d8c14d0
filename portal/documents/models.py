"""Compliance documents: types, requirements, uploaded documents and their reviews."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, BigID, TenantOwned, str_enum, utcnow


class DocumentStatus(enum.StrEnum):
    PENDING_REVIEW = "pending_review"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


class RequirementScope(enum.StrEnum):
    ALL = "all"
    CATEGORY = "category"
    SUPPLIERS = "suppliers"


class DocumentType(TenantOwned, Base):
    __tablename__ = "document_types"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Requirement(TenantOwned, Base):
    """Which suppliers must hold a valid document of a type."""

    __tablename__ = "document_requirements"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    document_type_id: Mapped[int] = mapped_column(BigID, ForeignKey("document_types.id", ondelete="CASCADE"))
    scope: Mapped[RequirementScope] = mapped_column(str_enum(RequirementScope), default=RequirementScope.ALL)
    category: Mapped[str] = mapped_column(String(80), default="")
    supplier_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    # Optional narrowing: only suppliers that supply one of these products, or ship to one of
    # these warehouses (sites), on some order of the tenant. Empty: no narrowing.
    product_codes: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    warehouse_ids: Mapped[list[int]] = mapped_column(JSON, default=list, server_default="[]")
    # Used when the document carries no expiry date of its own.
    validity_months: Mapped[int | None] = mapped_column(Integer)
    reminder_days: Mapped[list[int]] = mapped_column(JSON, default=lambda: [60, 30, 7])
    grace_days: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Document(TenantOwned, Base):
    __tablename__ = "documents"
    __table_args__ = (
        # The review queue: newest-first within a status, or across all statuses.
        Index("ix_documents_tenant_status", "tenant_id", "status", "created_at"),
        Index("ix_documents_tenant_created", "tenant_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    supplier_id: Mapped[int] = mapped_column(BigID, ForeignKey("suppliers.id", ondelete="CASCADE"), index=True)
    document_type_id: Mapped[int] = mapped_column(BigID, ForeignKey("document_types.id"))
    title: Mapped[str] = mapped_column(String(200))
    issuer: Mapped[str] = mapped_column(String(200), default="")
    certificate_number: Mapped[str] = mapped_column(String(80), default="")
    issue_date: Mapped[date | None] = mapped_column(Date)
    expiry_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[DocumentStatus] = mapped_column(str_enum(DocumentStatus), default=DocumentStatus.PENDING_REVIEW)
    # The file: a generated storage key; the person's file name is metadata only.
    storage_key: Mapped[str] = mapped_column(String(80), unique=True)
    original_name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(40))
    sha256: Mapped[str] = mapped_column(String(64))
    supersedes_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("documents.id", ondelete="SET NULL"))
    uploaded_by_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DocumentReview(TenantOwned, Base):
    __tablename__ = "document_reviews"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    document_id: Mapped[int] = mapped_column(BigID, ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    decision: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str] = mapped_column(Text, default="")
    valid_until: Mapped[date | None] = mapped_column(Date)
    reviewer_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class DocumentReminder(TenantOwned, Base):
    """One reminder per document and lead time: the expiry job sends each only once."""

    __tablename__ = "document_reminders"
    __table_args__ = (UniqueConstraint("document_id", "lead_days"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    document_id: Mapped[int] = mapped_column(BigID, ForeignKey("documents.id", ondelete="CASCADE"))
    lead_days: Mapped[int] = mapped_column(Integer)
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)
