"""API keys: a supplier's system acting for one person in one supplier account."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
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
