"""Server-side session records behind flask-login.

flask-login's signed cookie alone cannot be revoked, so ``User.get_id()`` returns
a random session token whose SHA-256 names a ``UserSession`` row. Every request
reloads that row: a revoked row (logout, password or MFA change, a disabled
user, "end this session"), one idle for 30 minutes or older than 12 hours no
longer signs anybody in.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from portal.auth.models import User, UserSession
from portal.db import apply_context, context_columns, context_parameter, context_was_set, utcnow

IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_LIFETIME = timedelta(hours=12)
# last_seen_at is written at most this often, so most requests write nothing.
TOUCH_EVERY = timedelta(seconds=60)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, user: User, *, ip: str, user_agent: str, auth_method: str) -> str:
    token = secrets.token_urlsafe(32)
    record = UserSession(
        user_id=user.id,
        token_hash=_digest(token),
        ip=ip[:64],
        user_agent=user_agent[:255],
        auth_method=auth_method,
    )
    session.add(record)
    session.flush()
    user.session_token = token
    user.session_record = record
    return token


# Built once: every signed-in request runs it.
_BY_TOKEN_HASH = select(UserSession).where(UserSession.token_hash == bindparam("token_hash"))
_BY_TOKEN_HASH_SETTING_CONTEXT = _BY_TOKEN_HASH.add_columns(*context_columns(UserSession.user_id))


def load_session_user(session: Session, token: str, *, tenant_id: int | None = None) -> User | None:
    """The user whose valid session record ``token`` names, or None.

    On PostgreSQL the lookup also sets the transaction's RLS context to ``tenant_id`` (the tenant the person
    last worked in, from the signed cookie, which the caller validates against their memberships next) and the
    record's user: the request's first statement then needs no round trip of its own for it. A record that
    does not sign anybody in takes that context back at once."""
    if not token or len(token) > 128:
        return None
    params = {"token_hash": _digest(token)}
    carries_context = session.get_bind().dialect.name == "postgresql"
    if carries_context:
        found = session.execute(_BY_TOKEN_HASH_SETTING_CONTEXT, params | context_parameter(tenant_id)).first()
        record = None if found is None else found[0]
    else:
        record = session.execute(_BY_TOKEN_HASH, params).scalar_one_or_none()
    user = _signed_in_user(record)
    if carries_context and record is not None:
        if user is None:
            apply_context(session, session.connection())  # back to the context recorded before the lookup
        else:
            context_was_set(session, tenant_id=tenant_id, user_id=record.user_id)
    if user is not None:
        user.session_token = token
    return user


def _signed_in_user(record: UserSession | None) -> User | None:
    """The record's user if the record still signs them in (touching it at most every minute); a record past
    its lifetime or idle too long is revoked."""
    if record is None or record.revoked_at is not None:
        return None
    now = utcnow()
    if now - record.created_at > ABSOLUTE_LIFETIME or now - record.last_seen_at > IDLE_TIMEOUT:
        record.revoked_at = now
        return None
    if now - record.last_seen_at > TOUCH_EVERY:
        record.last_seen_at = now
    user = record.user
    user.session_record = record
    return user


def revoke(session: Session, record: UserSession) -> None:
    if record.revoked_at is None:
        record.revoked_at = utcnow()


def revoke_all(session: Session, user_id: int, *, except_id: int | None = None) -> int:
    stmt = update(UserSession).where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
    if except_id is not None:
        stmt = stmt.where(UserSession.id != except_id)
    result = session.execute(stmt.values(revoked_at=utcnow()).execution_options(synchronize_session=False))
    return result.rowcount  # type: ignore[attr-defined]


def active_sessions(session: Session, user_id: int) -> list[UserSession]:
    now = utcnow()
    rows = session.execute(
        select(UserSession)
        .where(
            UserSession.user_id == user_id,
            UserSession.revoked_at.is_(None),
            UserSession.created_at > now - ABSOLUTE_LIFETIME,
            UserSession.last_seen_at > now - IDLE_TIMEOUT,
        )
        .order_by(UserSession.last_seen_at.desc())
    ).scalars()
    return list(rows.unique())
