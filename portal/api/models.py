"""API keys: a supplier's system acting for one person in one supplier account."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, BigID, TenantOwned, utcnow


class ApiKey(TenantOwned, Base):
    """A key issued to one membership of a supplier role: it acts as that person, in that supplier account only.

    Only the key's SHA-256 is kept; the key itself is shown once, when it is issued. Its tenant is part of the
    key (``spk_<tenant>_<secret>``), so that the lookup runs under that tenant's row-level security like any
    other request: a key naming the wrong tenant finds nothing."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    membership_id: Mapped[int] = mapped_column(BigID, ForeignKey("memberships.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(BigID, ForeignKey("users.id", ondelete="CASCADE"))
    supplier_id: Mapped[int] = mapped_column(BigID, ForeignKey("suppliers.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The key's first characters, so that people can tell their keys apart (never enough to use one).
    hint: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now


class IdempotentWrite(TenantOwned, Base):
    """A write a key made with an ``Idempotency-Key``: its answer, given again to a retry of the same request
    (a client that lost the answer learns what happened without a second write). Kept a day."""

    __tablename__ = "api_idempotent_writes"
    __table_args__ = (UniqueConstraint("api_key_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    api_key_id: Mapped[int] = mapped_column(BigID, ForeignKey("api_keys.id", ondelete="CASCADE"))
    idempotency_key: Mapped[str] = mapped_column(String(100))
    # The SHA-256 of the method, the path and the body: the same key with another request is refused.
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
