"""In-app notifications, each person's e-mail choice, webhooks and their delivery log."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, BigID, TenantOwned, str_enum, utcnow


class EmailMode(enum.StrEnum):
    IMMEDIATE = "immediate"
    DIGEST = "digest"
    OFF = "off"

    @property
    def label(self) -> str:
        return {"immediate": "Immediately", "digest": "Daily digest", "off": "Off"}[self.value]


class EmailState(enum.StrEnum):
    NONE = "none"  # the recipient does not want it by e-mail
    QUEUED = "queued"  # an e-mail of its own is on its way
    DIGEST = "digest"  # waits for the next digest
    SENT = "sent"


class Notification(TenantOwned, Base):
    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_user_unread", "tenant_id", "user_id", "read_at", "id"),
        Index("ix_notifications_digest", "tenant_id", "email_state"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigID, ForeignKey("users.id", ondelete="CASCADE"))
    topic: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str] = mapped_column(String(500), default="")
    # Digests group by these.
    supplier_name: Mapped[str] = mapped_column(String(200), default="")
    order_number: Mapped[str] = mapped_column(String(40), default="")
    email_state: Mapped[EmailState] = mapped_column(str_enum(EmailState, 16), default=EmailState.NONE)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]


class NotificationPreference(TenantOwned, Base):
    __tablename__ = "notification_preferences"
    __table_args__ = (UniqueConstraint("tenant_id", "user_id"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigID, ForeignKey("users.id", ondelete="CASCADE"))
    email_mode: Mapped[EmailMode] = mapped_column(str_enum(EmailMode, 16), default=EmailMode.IMMEDIATE)


class Webhook(TenantOwned, Base):
    """A tenant's endpoint, or a supplier account's (``supplier_id``: only events about that supplier's own
    orders, of the topics a supplier may follow); every delivery is signed with HMAC-SHA256 over
    ``timestamp.body``."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    supplier_id: Mapped[int | None] = mapped_column(
        BigID, ForeignKey("suppliers.id", ondelete="CASCADE"), index=True, default=None
    )
    url: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(String(200), default="")
    secret_encrypted: Mapped[str] = mapped_column(Text)
    # Topics delivered; empty means every topic.
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(TenantOwned, Base):
    """One attempt to deliver one event to one webhook: the delivery log."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_hook", "tenant_id", "webhook_id", "id"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(BigID, ForeignKey("webhooks.id", ondelete="CASCADE"))
    delivery_key: Mapped[str] = mapped_column(String(64))  # the same on every attempt of one event
    topic: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(Text, default="")
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
