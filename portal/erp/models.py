"""ERP connections and what the portal knows of each line's sync."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, BigID, TenantOwned, str_enum, utcnow


class ErpKind(enum.StrEnum):
    ODOO = "odoo"
    TRYTON = "tryton"

    @property
    def label(self) -> str:
        return {"odoo": "Odoo", "tryton": "Tryton"}[self.value]


class SyncStatus(enum.StrEnum):
    WAITING = "waiting"
    SYNCED = "synced"
    FAILED = "failed"


class ErpConnection(TenantOwned, Base):
    """One ERP per tenant. The password or API key is stored encrypted (``portal.crypto``)."""

    __tablename__ = "erp_connections"
    __table_args__ = (UniqueConstraint("tenant_id"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    kind: Mapped[ErpKind] = mapped_column(str_enum(ErpKind, 16))
    url: Mapped[str] = mapped_column(String(500))
    database: Mapped[str] = mapped_column(String(120), default="")
    login: Mapped[str] = mapped_column(String(254), default="")
    secret_encrypted: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Odoo: "json2" (19+) or "xmlrpc" (up to 18); chosen by the connection test.
    protocol: Mapped[str] = mapped_column(String(16), default="")
    # Incremental intake: the newest ERP modification time already pulled.
    orders_cursor: Mapped[datetime | None]
    last_pull_at: Mapped[datetime | None]
    last_pull_error: Mapped[str] = mapped_column(Text, default="")
    last_test_at: Mapped[datetime | None]
    last_test: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ErpLineSync(TenantOwned, Base):
    """A portal line that came from the ERP: what was last written back, and how that went."""

    __tablename__ = "erp_line_syncs"
    __table_args__ = (
        UniqueConstraint("line_id"),
        # The buyers' response queue lists the ERP changes waiting for a decision: few, among every ERP line.
        Index("ix_erp_line_syncs_revised", "tenant_id", "id", postgresql_where=text("revised_terms IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    line_id: Mapped[int] = mapped_column(BigID, ForeignKey("purchase_order_lines.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(BigID, ForeignKey("purchase_orders.id", ondelete="CASCADE"), index=True)
    status: Mapped[SyncStatus] = mapped_column(str_enum(SyncStatus, 16), default=SyncStatus.SYNCED)
    # The newest ledger entry whose commitment the ERP holds (its note is posted).
    synced_ledger_id: Mapped[int | None] = mapped_column(BigID)
    synced_rejection: Mapped[bool] = mapped_column(Boolean, default=False)
    synced_at: Mapped[datetime | None]
    error: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The ERP line's modification stamp as the portal last saw or wrote it: a newer one
    # means a buyer changed the line in the ERP, and the push stops rather than overwrite.
    erp_write_date: Mapped[str | None] = mapped_column(String(40))
    # What the ERP line held (``base.erp_terms``: quantity, date, unit price) when the portal last saw or wrote
    # it. An intake takes the line's newer stamp only while these are the same (a receipt moves the stamp and
    # nothing else), or while the supplier has not answered (the portal takes the buyer's change then).
    erp_terms: Mapped[str | None] = mapped_column(String(120))
    # Where the ERP kept the commitment when the portal last wrote it (``ErpLine.stage``): an intake that finds
    # the line elsewhere now (a Tryton quotation confirmed since) writes the commitment again.
    erp_stage: Mapped[str | None] = mapped_column(String(16))
    # A buyer's change in the ERP to a line the supplier has answered, as an intake found it (``erp_terms`` and
    # the stamp), until a buyer decides on the order page: revise the line to it (the supplier confirms again),
    # or keep the supplier's commitment (written back over it). None when the ERP holds what the portal knows.
    revised_terms: Mapped[str | None] = mapped_column(String(120))
    revised_write_date: Mapped[str | None] = mapped_column(String(40))
