"""Identities, memberships, sessions, recovery codes and invitations.

A ``User`` is one global identity per e-mail address; what a person may do lives
on ``Membership`` rows, each inside one tenant. Users, their sessions and their
recovery codes are not tenant-owned (one person may serve several tenants);
memberships and invitations are.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.auth.permissions import Role
from portal.db import Base, BigID, TenantOwned, str_enum, utcnow
from portal.suppliers.models import Supplier
from portal.tenancy.models import Tenant

RoleType = str_enum(Role, 32)


class User(Base):
    __tablename__ = "users"
    # session_token / session_record below are per-request attributes, not columns.
    __allow_unmapped__ = True

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    # Stored lower-cased; unique across the whole portal.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    password_changed_at: Mapped[datetime | None]
    # TOTP: the secret is set when enrolment starts and becomes active when the
    # first code is confirmed (mfa_enabled_at). ``totp_last_step`` is the time
    # step of the last accepted code: a code is accepted only for a later step.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_last_step: Mapped[int] = mapped_column(BigInteger, default=0)
    mfa_enabled_at: Mapped[datetime | None]
    # Demo accounts only: printed by ``flask demo``; never set outside demo mode.
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    is_platform_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    memberships: Mapped[list[Membership]] = relationship(back_populates="user", lazy="raise")

    # flask-login protocol. ``get_id`` is the *session* token set by
    # portal.auth.sessions, so that revoking a session record logs that browser out.
    session_token: str | None = None
    session_record: UserSession | None = None

    @property
    def is_authenticated(self) -> bool:
        return self.session_record is not None

    @property
    def session_id(self) -> int | None:
        """The session record this user was signed in with on this request (as ``sessions.SignedInUser``)."""
        return None if self.session_record is None else self.session_record.id

    @property
    def is_active(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str | None:
        return self.session_token

    @property
    def mfa_enabled(self) -> bool:
        return self.mfa_enabled_at is not None

    @property
    def display_name(self) -> str:
        return self.name or self.email


class Membership(TenantOwned, Base):
    """A user's role in a tenant, or in one supplier account of a tenant."""

    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("tenant_id", "user_id", "supplier_id"),
        Index("ix_memberships_user_id_active", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigID, ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[Role] = mapped_column(RoleType)
    # Set exactly for the supplier roles.
    supplier_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("suppliers.id", ondelete="CASCADE"), index=True)
    disabled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    # Not joined: the context check loads the signed-in person's own memberships,
    # whose user is already in the session. Lists of people join it explicitly.
    user: Mapped[User] = relationship(back_populates="memberships")
    tenant: Mapped[Tenant] = relationship(lazy="joined")
    supplier: Mapped[Supplier | None] = relationship(lazy="joined")

    @property
    def active(self) -> bool:
        return self.disabled_at is None

    # As ``portal.web.ActiveMembership`` has them: what binds a request and what the switcher shows.
    @property
    def tenant_name(self) -> str:
        return self.tenant.name

    @property
    def supplier_name(self) -> str | None:
        return self.supplier.name if self.supplier else None


class RecoveryCode(Base):
    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigID, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # SHA-256 of a 80-bit random code: a slow hash adds nothing at that entropy.
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UserSession(Base):
    """A signed-in browser. The cookie holds the token; we keep its SHA-256."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigID, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(255), default="")
    revoked_at: Mapped[datetime | None]
    # How the second factor was passed: "totp", "recovery_code" or "none".
    auth_method: Mapped[str] = mapped_column(String(32), default="totp")

    user: Mapped[User] = relationship(lazy="joined")


class Invitation(TenantOwned, Base):
    """An invitation to join a tenant (or a supplier account) with a role.

    The link carries a signed token naming this row; ``accepted_at`` makes it
    single use and ``expires_at`` bounds it to 7 days.
    """

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    role: Mapped[Role] = mapped_column(RoleType)
    supplier_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("suppliers.id", ondelete="CASCADE"))
    invited_by_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("users.id", ondelete="SET NULL"))
    nonce: Mapped[str] = mapped_column(String(43))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    tenant: Mapped[Tenant] = relationship(lazy="joined")
    supplier: Mapped[Supplier | None] = relationship(lazy="joined")
