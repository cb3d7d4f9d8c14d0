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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

from sqlalchemy import Select, bindparam, event, select, true, update
from sqlalchemy.orm import Session

from portal.auth.models import User, UserSession
from portal.db import apply_context, context_columns, context_parameter, context_was_set, read_columns, utcnow

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


@dataclass(slots=True, eq=False)
class SignedInUser:
    """The person a valid session record signs in: flask-login's ``current_user`` on every request after the
    one that signed them in.

    Read as plain columns with the record. Loading the record and the user as ORM objects, on every page,
    cost 0.2 ms more of CPU than the statement itself. A page that reads or changes the account's secrets
    (password, authenticator) loads the ``User`` row itself (``account_views.account_user``)."""

    id: int
    email: str
    name: str
    session_id: int
    session_token: str
    is_authenticated: ClassVar[bool] = True
    is_active: ClassVar[bool] = True
    is_anonymous: ClassVar[bool] = False

    @property
    def display_name(self) -> str:
        return self.name or self.email

    def get_id(self) -> str:
        return self.session_token


# Built once: every signed-in request runs it.
_BY_TOKEN_HASH = (
    select(
        UserSession.id,
        UserSession.created_at,
        UserSession.last_seen_at,
        UserSession.revoked_at,
        User.id,
        User.email,
        User.name,
    )
    .join(User, User.id == UserSession.user_id)
    .where(UserSession.token_hash == bindparam("token_hash"))
)
_BY_TOKEN_HASH_SETTING_CONTEXT = _BY_TOKEN_HASH.add_columns(*context_columns(UserSession.user_id))
_SET_SEEN = update(UserSession).where(UserSession.id == bindparam("record_id")).values(last_seen_at=bindparam("at"))
_SET_REVOKED = update(UserSession).where(UserSession.id == bindparam("record_id")).values(revoked_at=bindparam("at"))
_REVOKE_IF_VALID = _SET_REVOKED.where(UserSession.revoked_at.is_(None))


def with_rows_of_the_user(rows_of: Callable[[Any], Select[Any]]) -> Select[Any]:
    """The record's lookup (setting the RLS context, as on PostgreSQL) joined to ``rows_of(user id column)``, a
    statement of the user's rows under RLS (the memberships): one row per row of theirs, or one with NULLs.

    The order matters: the user's rows are under RLS, which reads the context the lookup sets. Both sides are
    subqueries with ``OFFSET 0``, which PostgreSQL never merges into the enclosing query: the lookup's row, its
    ``set_config`` columns computed, exists before the lateral subquery, which refers to it, runs for that row
    (a nested loop, the only way to run a lateral subquery that is not merged; a merged one could have been
    hashed before the lookup ran). Were the context not yet set, RLS would show nothing (the settings start
    empty in every transaction), never another user's rows. A test reads the plan."""
    record = _BY_TOKEN_HASH_SETTING_CONTEXT.offset(0).subquery("record")
    user_id = list(record.c)[4]  # the record's user (the fifth of ``_BY_TOKEN_HASH``'s columns)
    theirs = rows_of(user_id).where(record.c.context_user.is_not(None)).offset(0).lateral("theirs")
    return select(record, theirs).select_from(record.outerjoin(theirs, true()))


def load_session_user(
    session: Session, token: str, *, tenant_id: int | None = None, with_rows: Select[Any] | None = None
) -> tuple[SignedInUser | None, list[Any] | None]:
    """The user whose valid session record ``token`` names, or None; and, given ``with_rows`` (a statement of
    :func:`with_rows_of_the_user`) on PostgreSQL, the user's rows read in the same statement (else None).

    A record past its lifetime or idle too long is revoked; a valid one is touched at most every minute.

    On PostgreSQL the lookup also sets the transaction's RLS context to ``tenant_id`` (the tenant the person
    last worked in, from the signed cookie, which the caller validates against their memberships next) and the
    record's user: the request's first statement then needs no round trip of its own for it. A record that
    does not sign anybody in takes that context back at once."""
    if not token or len(token) > 128:
        return None, None
    params = {"token_hash": _digest(token)}
    carries_context = session.get_bind().dialect.name == "postgresql"
    statement = _BY_TOKEN_HASH
    if carries_context:
        statement = _BY_TOKEN_HASH_SETTING_CONTEXT if with_rows is None else with_rows
        params |= context_parameter(tenant_id)
    found = read_columns(session, statement, params).all()
    if not found:
        return None, None
    record = found[0]
    record_id, created_at, last_seen_at, revoked_at, user_id, email, name = record[:7]
    # The user's own rows after the record's nine columns (none: one row of NULLs from the outer join).
    theirs = None if not carries_context or with_rows is None else [row[9:] for row in found if row[9] is not None]
    now = utcnow()
    signs_in = revoked_at is None
    if signs_in and (now - created_at > ABSOLUTE_LIFETIME or now - last_seen_at > IDLE_TIMEOUT):
        read_columns(session, _SET_REVOKED, {"record_id": record_id, "at": now})
        signs_in = False
    if carries_context:
        if signs_in:
            context_was_set(session, tenant_id=tenant_id, user_id=user_id)
        else:
            apply_context(session, session.connection())  # back to the context recorded before the lookup
    if not signs_in:
        return None, None
    if now - last_seen_at > TOUCH_EVERY:
        # Written just before the commit, as the ORM's flush used to: the record's row is then locked while the
        # transaction commits, not for the whole request (another request of the same browser would wait).
        session.info[_TOUCH] = (record_id, now)
    return SignedInUser(user_id, email, name, record_id, token), theirs


_TOUCH = "portal.session_touch"


@event.listens_for(Session, "before_commit")
def _touch_before_commit(session: Session) -> None:
    touch = session.info.pop(_TOUCH, None)
    if touch is not None:
        read_columns(session, _SET_SEEN, {"record_id": touch[0], "at": touch[1]})


@event.listens_for(Session, "after_rollback")
def _no_touch_after_rollback(session: Session) -> None:
    session.info.pop(_TOUCH, None)


def revoke(session: Session, record: UserSession) -> None:
    if record.revoked_at is None:
        record.revoked_at = utcnow()


def revoke_by_id(session: Session, record_id: int | None) -> None:
    """Revoke the session record ``record_id`` (the signed-in person's own, from ``current_user.session_id``)."""
    if record_id is not None:
        read_columns(session, _REVOKE_IF_VALID, {"record_id": record_id, "at": utcnow()})


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
