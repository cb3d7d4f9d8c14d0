"""Append-only audit trail with a hash chain.

Each tenant has its own chain (``tenant:<id>``) and identity events that belong to
no tenant (sign-in, MFA and password changes) go to the ``global`` chain. Rows of
one chain carry a gap-free sequence; appends are serialised by locking the
chain's head row, and each row's hash is
``SHA-256(previous hash || canonical JSON of the row)``. On PostgreSQL the
application role may insert audit rows but never update or delete them
(migration grants), and row-level security limits a tenant to its own chain.

``verify_chains`` recomputes every chain and names the first broken row.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    String,
    Text,
    UniqueConstraint,
    bindparam,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from portal.db import Base, BigID, current_tenant_id, read_columns, tenant_scope, utcnow

GLOBAL_CHAIN = "global"
GENESIS = "0" * 64
_SECRET_WORDS = ("password", "secret", "token", "code", "cookie", "api_key", "apikey")


def chain_key(tenant_id: int | None) -> str:
    return GLOBAL_CHAIN if tenant_id is None else f"tenant:{tenant_id}"


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (UniqueConstraint("chain_key", "seq"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    chain_key: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(BigInteger)
    # NULL for identity events of the global chain.
    tenant_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("tenants.id", ondelete="RESTRICT"), index=True)
    actor_user_id: Mapped[int | None] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(254), default="")
    occurred_at: Mapped[datetime]
    ip: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(80), index=True)
    object_type: Mapped[str] = mapped_column(String(40), default="")
    object_id: Mapped[str] = mapped_column(String(64), default="")
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text, default="")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """The last sequence number and hash of each chain; its row lock serialises appends."""

    __tablename__ = "audit_chain_heads"

    chain_key: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64), default=GENESIS)


def redact(values: dict[str, Any] | None) -> dict[str, Any] | None:
    """Drop anything that looks like a secret; audit rows must never hold one."""
    if values is None:
        return None
    clean: dict[str, Any] = {}
    for key, value in values.items():
        if any(word in key.lower() for word in _SECRET_WORDS):
            clean[key] = "[redacted]"
        elif isinstance(value, dict):
            clean[key] = redact(value)
        else:
            clean[key] = value
    return clean


def canonical(row: AuditEvent | SimpleNamespace) -> bytes:
    body = {
        "chain": row.chain_key,
        "seq": row.seq,
        "tenant_id": row.tenant_id,
        "actor_user_id": row.actor_user_id,
        "actor": row.actor,
        "occurred_at": row.occurred_at.isoformat(timespec="microseconds"),
        "ip": row.ip,
        "action": row.action,
        "object_type": row.object_type,
        "object_id": row.object_id,
        "before": row.before,
        "after": row.after,
        "reason": row.reason,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def compute_hash(prev_hash: str, row: AuditEvent | SimpleNamespace) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical(row)).hexdigest()


def _lock_head(session: Session, key: str) -> AuditChainHead:
    """The chain's head row, locked until the transaction ends (created on the chain's first event): one round
    trip once the chain exists, which is every time but the first."""
    locked = (
        select(AuditChainHead)
        .where(AuditChainHead.chain_key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    head = session.execute(locked).scalar_one_or_none()
    if head is not None:
        return head
    dialect = session.get_bind().dialect.name
    insert_head = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert_head(AuditChainHead)
        .values(chain_key=key, last_seq=0, last_hash=GENESIS)
        .on_conflict_do_nothing(index_elements=["chain_key"])
    )
    return session.execute(locked).scalar_one()


def record(
    session: Session,
    action: str,
    *,
    tenant_id: int | None,
    actor_user_id: int | None = None,
    actor: str = "",
    ip: str = "",
    object_type: str = "",
    object_id: object = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str = "",
) -> AuditEvent:
    """Append one event to the tenant's chain (or the global one) in the session's transaction."""
    fields = {
        "actor_user_id": actor_user_id,
        "actor": actor,
        "ip": ip,
        "object_type": object_type,
        "object_id": object_id,
        "before": before,
        "after": after,
        "reason": reason,
    }
    return append(session, tenant_id, [(action, fields)])[0]


# The columns an appended row fills (all but the generated id).
_STORED = tuple(column.key for column in AuditEvent.__table__.columns if column.key != "id")


def _stored_fields(
    key: str, seq: int, tenant_id: int | None, action: str, fields: dict[str, Any], prev_hash: str
) -> dict[str, Any]:
    """An event's columns but its hash (and generated id), secrets redacted."""
    object_id = fields.get("object_id", "")
    return {
        "chain_key": key,
        "seq": seq,
        "tenant_id": tenant_id,
        "actor_user_id": fields.get("actor_user_id"),
        "actor": fields.get("actor", ""),
        "occurred_at": utcnow(),  # stored and hashed at microsecond precision, the same on both databases
        "ip": fields.get("ip", ""),
        "action": action,
        "object_type": fields.get("object_type", ""),
        "object_id": "" if object_id is None else str(object_id),
        "before": redact(fields.get("before")),
        "after": redact(fields.get("after")),
        "reason": fields.get("reason", ""),
        "prev_hash": prev_hash,
    }


def append(
    session: Session, tenant_id: int | None, events: list[tuple[str, dict[str, Any]]], *, keep_rows: bool = True
) -> list[AuditEvent]:
    """Append events to one chain: the head is locked once for all of them.

    ``keep_rows=False`` (events written at commit, which nobody reads back): see :func:`_append_rows`; the
    rows are not returned."""
    if tenant_id is None and current_tenant_id(session) is not None:
        # Global-chain rows are only visible without a tenant, and PostgreSQL checks
        # INSERT ... RETURNING against the read policy: write them outside the tenant.
        with tenant_scope(session, None):
            return append(session, None, events, keep_rows=keep_rows)
    key = chain_key(tenant_id)
    if not keep_rows:
        _append_rows(session, key, tenant_id, events)
        return []
    head = _lock_head(session, key)
    written = []
    for action, fields in events:
        row = AuditEvent(**_stored_fields(key, head.last_seq + 1, tenant_id, action, fields, head.last_hash))
        row.hash = compute_hash(head.last_hash, row)
        session.add(row)
        head.last_seq, head.last_hash = row.seq, row.hash
        written.append(row)
    session.flush()
    return written


# The deferred appends' statements (plain columns: no session objects for rows nobody reads back).
_HEAD_LOCKED = (
    select(AuditChainHead.last_seq, AuditChainHead.last_hash)
    .where(AuditChainHead.chain_key == bindparam("chain"))
    .with_for_update()
)
_HEAD_MOVED = (
    update(AuditChainHead)
    .where(AuditChainHead.chain_key == bindparam("chain"))
    .values(last_seq=bindparam("new_seq"), last_hash=bindparam("new_hash"))
)


def _append_rows(session: Session, key: str, tenant_id: int | None, events: list[tuple[str, dict[str, Any]]]) -> None:
    """``append`` for events nobody reads back: the head read, the rows inserted (one statement) and the head
    moved with plain statements on the session's connection (the ORM's objects and flush were a third of an
    order answer's audit time)."""
    head = read_columns(session, _HEAD_LOCKED, {"chain": key}).first()
    if head is None:
        _lock_head(session, key)  # creates the chain's head (its first event ever), then reads it locked
        head = read_columns(session, _HEAD_LOCKED, {"chain": key}).one()
    seq, last_hash = head
    rows = []
    for action, fields in events:
        seq += 1
        row = SimpleNamespace(**_stored_fields(key, seq, tenant_id, action, fields, last_hash))
        row.hash = last_hash = compute_hash(last_hash, row)
        rows.append({name: getattr(row, name) for name in _STORED})
    connection = session.connection()
    connection.execute(insert(AuditEvent), rows)
    connection.execute(_HEAD_MOVED, {"chain": key, "new_seq": seq, "new_hash": last_hash})


# --- deferred appends -------------------------------------------------------------
#
# Appending locks the chain's head row until the transaction ends, which
# serialises every writer of a tenant. Services therefore *defer* their events:
# they are appended just before the commit, in the same transaction (so they
# still commit or roll back with the change), holding the lock only briefly.

_PENDING = "portal.audit_pending"


def defer(session: Session, action: str, *, tenant_id: int | None, **fields: Any) -> None:
    """Queue an event to be appended at commit (see :func:`write_pending`)."""
    transaction = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_PENDING, []).append((transaction, action, tenant_id, fields))


def write_pending(session: Session) -> int:
    """Append every queued event now: per chain in one batch, under that tenant's RLS context."""
    pending = session.info.pop(_PENDING, [])
    by_chain: dict[int | None, list[tuple[str, dict[str, Any]]]] = {}
    for _, action, tenant_id, fields in pending:
        by_chain.setdefault(tenant_id, []).append((action, fields))
    for tenant_id, events in by_chain.items():
        with tenant_scope(session, tenant_id):
            append(session, tenant_id, events, keep_rows=False)
    return len(pending)


@event.listens_for(Session, "before_commit")
def _write_pending_before_commit(session: Session) -> None:
    if session.info.get(_PENDING):
        write_pending(session)


def _within(transaction: Any, ancestor: Any) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction: Any) -> None:
    """Events queued inside a rolled-back (savepoint) transaction never happened."""
    pending = session.info.get(_PENDING)
    if pending:
        session.info[_PENDING] = [p for p in pending if p[0] is not None and not _within(p[0], previous_transaction)]


@dataclass(frozen=True)
class ChainResult:
    chain_key: str
    rows: int
    ok: bool
    first_broken_id: int | None = None
    first_broken_seq: int | None = None
    problem: str = ""


def verify_chain(session: Session, key: str) -> ChainResult:
    expected_prev = GENESIS
    expected_seq = 1
    rows = 0
    stmt = select(AuditEvent).where(AuditEvent.chain_key == key).order_by(AuditEvent.seq)
    for row in session.execute(stmt.execution_options(yield_per=1000)).scalars():
        rows += 1
        problem = ""
        if row.seq != expected_seq:
            problem = f"sequence gap: expected {expected_seq}, found {row.seq}"
        elif row.prev_hash != expected_prev:
            problem = "previous-hash link does not match the row before"
        elif compute_hash(row.prev_hash, row) != row.hash:
            problem = "row content does not match its hash"
        if problem:
            return ChainResult(key, rows, False, row.id, row.seq, problem)
        expected_prev = row.hash
        expected_seq += 1
    head = session.get(AuditChainHead, key)
    if head is not None and (head.last_seq != expected_seq - 1 or head.last_hash != expected_prev):
        return ChainResult(key, rows, False, None, expected_seq, "rows are missing after the last one")
    return ChainResult(key, rows, True)


def verify_chains(session: Session, tenant_ids: list[int]) -> list[ChainResult]:
    """Verify the global chain and every tenant's chain, each under its RLS context."""
    results = []
    with tenant_scope(session, None):
        results.append(verify_chain(session, GLOBAL_CHAIN))
    for tenant_id in tenant_ids:
        with tenant_scope(session, tenant_id):
            results.append(verify_chain(session, chain_key(tenant_id)))
    return results
