"""An export asked for by one person, made by a worker."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, BigID, TenantOwned, str_enum, utcnow


class ExportState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def label(self) -> str:
        return {"queued": "Waiting", "running": "In progress", "done": "Ready", "failed": "Failed"}[self.value]


class Export(TenantOwned, Base):
    __tablename__ = "exports"
    __table_args__ = (Index("ix_exports_tenant_user_created", "tenant_id", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigID, ForeignKey("users.id", ondelete="CASCADE"))
    # The supplier account it was asked for (a supplier's own card), so a later check can re-apply it.
    supplier_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("suppliers.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[ExportState] = mapped_column(str_enum(ExportState, 16), default=ExportState.QUEUED)
    progress: Mapped[int] = mapped_column(Integer, default=0)  # percent
    step: Mapped[str] = mapped_column(String(200), default="")
    filename: Mapped[str] = mapped_column(String(200), default="")
    content_type: Mapped[str] = mapped_column(String(100), default="")
    # Loaded only by the download: the list and the self-refreshing progress page never read the file.
    content: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
