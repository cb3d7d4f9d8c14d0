"""The transactional outbox: durable events written with the business change.

A service calls :func:`emit` inside its transaction; the row commits (or rolls
back) with the change that caused it. Once the transaction has committed, the
event's id is handed to the queue (``workers.actors.handle_event``; a transaction's
several events go as one ``handle_events`` message, split by a worker). If that send
fails (Redis down, process killed between commit and send) nothing is lost: the
relay's sweep (:func:`sweep`) re-sends every row that is neither done nor failed
and has waited longer than a grace period.

Processing (:func:`process_event`) is at-least-once and every handler is
idempotent. Attempts are counted in the database *before* the handler runs, in a
transaction of their own, so a worker killed in the middle still uses up an
attempt; after ``max_attempts`` the row is marked failed, kept, and listed for
the tenant's administrators, who can retry it (:func:`retry`). A row lock taken
for the handler's transaction keeps two workers from running one event at once.

Handlers that talk to the outside (ERP, SMTP, webhooks) are registered for their
own *internal* topics (``erp.sync_line``, ``email.notification``, ...): a business
event fans out into them by emitting more events, so a failing ERP never makes a
notification go out twice, and each target retries on its own schedule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text, select, text, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from portal.db import Base, BigID, Database, TenantOwned, after_commit, after_commit_collector, utcnow

log = logging.getLogger(__name__)


class OutboxEvent(TenantOwned, Base):
    """Events written with the business change, delivered by the workers after commit."""

    __tablename__ = "outbox_events"
    __table_args__ = (
        Index("ix_outbox_events_unsent", "sent_at", "id"),
        # The sweep: open rows of a tenant whose next attempt is due.
        Index("ix_outbox_events_open", "tenant_id", "available_at", postgresql_where=text("done_at IS NULL")),
        # Failed events not answered since: the failed-jobs page, and a push closing its line's earlier failures.
        Index(
            "ix_outbox_events_failed",
            "tenant_id",
            "failed_at",
            postgresql_where=text("failed_at IS NOT NULL AND done_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    topic: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the relay last handed the event to the queue (the fast path after commit leaves it empty).
    sent_at: Mapped[datetime | None]
    # Not before: the back-off after a failed attempt.
    available_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    done_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]

    @property
    def state(self) -> str:
        if self.done_at is not None:
            return "done"
        if self.failed_at is not None:
            return "failed"
        return "waiting" if self.attempts == 0 else "retrying"


# --- writing ------------------------------------------------------------------------

Publisher = Callable[[int, int, int], None]  # (tenant_id, event_id, delay in ms)
BatchPublisher = Callable[[int, list[int]], None]  # (tenant_id, event ids): one message for them all
_publisher: Publisher | None = None
_batch_publisher: BatchPublisher | None = None


def set_publisher(publisher: Publisher | None, batch: BatchPublisher | None = None) -> None:
    """Installed by ``workers`` (the queue); without one, only the sweep delivers. ``batch`` sends several
    events of a tenant as one message (without it, each event is a message of its own)."""
    global _publisher, _batch_publisher
    _publisher, _batch_publisher = publisher, batch


def publish(tenant_id: int, event_id: int, delay_ms: int = 0) -> None:
    """Hand an event to the queue; never raises (the sweep covers a failed send)."""
    if _publisher is None:
        return
    try:
        _publisher(tenant_id, event_id, delay_ms)
    except Exception as exc:  # the queue is down: the row stays and the sweep re-sends it
        log.warning("queue unavailable, event %s left for the relay: %s", event_id, exc)


def publish_all(events: list[tuple[int, int]]) -> None:
    """Hand events (tenant, id) to the queue: a tenant's several events as one message when a batch
    publisher is installed (a confirmation's six events, an import's thousand: one send from the request).
    Never raises (the sweep covers a failed send)."""
    by_tenant: dict[int, list[int]] = {}
    for tenant_id, event_id in events:
        by_tenant.setdefault(tenant_id, []).append(event_id)
    for tenant_id, event_ids in by_tenant.items():
        if _batch_publisher is None or len(event_ids) == 1:
            for event_id in event_ids:
                publish(tenant_id, event_id)
            continue
        try:
            _batch_publisher(tenant_id, event_ids)
        except Exception as exc:  # the queue is down: the rows stay and the sweep re-sends them
            log.warning("queue unavailable, %s events left for the relay: %s", len(event_ids), exc)


class _Publication:
    """The events a transaction wrote, published together once it has committed."""

    def __init__(self) -> None:
        self.events: list[OutboxEvent] = []

    def __call__(self) -> None:
        publish_all([(event.tenant_id, event.id) for event in self.events])


def emit(session: Session, tenant_id: int, topic: str, payload: dict[str, Any]) -> OutboxEvent:
    """Write an outbox event in the current transaction; it is queued once that commits (with the
    transaction's other events)."""
    event = OutboxEvent(tenant_id=tenant_id, topic=topic, payload=payload)
    session.add(event)
    after_commit_collector(session, _Publication).events.append(event)
    return event


# --- handlers -----------------------------------------------------------------------


class Retry(Exception):
    """Raised by a handler for an expected, temporary failure (ERP down): retried, logged briefly."""


class GiveUp(Retry):
    """Raised by a handler for an expected failure that trying again cannot mend (a buyer's edit in the ERP that
    someone must check first): the event fails at once, for an administrator to retry, logged briefly."""


FailureHook = Callable[[Session, OutboxEvent, BaseException], None]


@dataclass(frozen=True)
class Handler:
    topic: str
    run: Callable[[Session, OutboxEvent], None]
    max_attempts: int = 8
    # Back-off before attempt n+1 is min(base * 2**(n-1), cap) seconds.
    backoff_base: float = 2.0
    backoff_cap: float = 600.0
    on_failure: FailureHook | None = None

    def delay_after(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.backoff_base * 2 ** max(attempts - 1, 0), self.backoff_cap))


HANDLERS: dict[str, list[Handler]] = {}


def handler(
    topic: str,
    *,
    max_attempts: int = 8,
    backoff_base: float = 2.0,
    backoff_cap: float = 600.0,
    on_failure: FailureHook | None = None,
) -> Callable[[Callable[[Session, OutboxEvent], None]], Callable[[Session, OutboxEvent], None]]:
    """Register ``fn(session, event)`` for ``topic``; several handlers of one topic run in one transaction."""

    def register(fn: Callable[[Session, OutboxEvent], None]) -> Callable[[Session, OutboxEvent], None]:
        HANDLERS.setdefault(topic, []).append(Handler(topic, fn, max_attempts, backoff_base, backoff_cap, on_failure))
        return fn

    return register


def _policy(topic: str) -> Handler:
    handlers = HANDLERS.get(topic)
    if not handlers:
        return Handler(topic, lambda s, e: None)
    # Several handlers share one event row: the most patient policy wins.
    return max(handlers, key=lambda h: h.max_attempts)


# --- processing ---------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    status: str  # done | skipped | retry | failed
    error: str = ""
    retry_in: timedelta | None = None


def process_event(database: Database, tenant_id: int, event_id: int) -> Outcome:
    """Run the handlers of one event, once, and record the result.

    Safe to call any number of times, from any number of workers: a done or
    failed event, or one another worker holds, is skipped.
    """
    now = utcnow()
    # 1. Count the attempt in its own transaction: it must survive a crash of step 2.
    # One statement: lock the row unless another worker holds it, count, return what step 2 needs.
    with database.transaction(tenant_id=tenant_id, relaxed_commit=True) as session:
        locked = (
            select(OutboxEvent.id)
            .where(
                OutboxEvent.id == event_id,
                OutboxEvent.tenant_id == tenant_id,
                OutboxEvent.done_at.is_(None),
                OutboxEvent.failed_at.is_(None),
            )
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        row = session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id == locked)
            .values(attempts=OutboxEvent.attempts + 1)
            .returning(OutboxEvent.topic, OutboxEvent.attempts, OutboxEvent.last_error)
            .execution_options(synchronize_session=False)
        ).first()
        if row is None:
            return Outcome("skipped")
        topic, attempts, last_error = row
        policy = _policy(topic)
        if attempts > policy.max_attempts:
            # Every earlier attempt ended without a result (the worker died in it): give up.
            message = last_error or "gave up: the worker stopped during every attempt"
            session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id == event_id, OutboxEvent.tenant_id == tenant_id)
                .values(failed_at=now, attempts=policy.max_attempts, last_error=message)
                .execution_options(synchronize_session=False)
            )
            log.error("event %s (%s) failed for good: %s", event_id, topic, message)
            return Outcome("failed", message)

    # 2. The handlers and the "done" mark commit together, or not at all.
    try:
        with database.transaction(tenant_id=tenant_id, relaxed_commit=True) as session:
            event = _locked(session, tenant_id, event_id)
            if event is None or event.done_at is not None or event.failed_at is not None:
                return Outcome("skipped")
            for registered in HANDLERS.get(topic, []):
                registered.run(session, event)
            event.done_at = utcnow()
            event.last_error = ""
        return Outcome("done")
    except Exception as exc:
        return _record_failure(database, tenant_id, event_id, topic, attempts, exc)


def _locked(session: Session, tenant_id: int, event_id: int) -> OutboxEvent | None:
    # SKIP LOCKED: a second delivery of an event a worker is running right now does nothing.
    return session.execute(
        select(OutboxEvent)
        .where(OutboxEvent.id == event_id, OutboxEvent.tenant_id == tenant_id)
        .with_for_update(skip_locked=True)
    ).scalar_one_or_none()


def _record_failure(
    database: Database, tenant_id: int, event_id: int, topic: str, attempts: int, exc: BaseException
) -> Outcome:
    policy = _policy(topic)
    message = str(exc) if isinstance(exc, Retry) else f"{type(exc).__name__}: {exc}"
    message = message[:2000]
    if isinstance(exc, Retry):
        log.warning("event %s (%s) attempt %s: %s", event_id, topic, attempts, message)
    else:
        log.exception("event %s (%s) attempt %s failed", event_id, topic, attempts)
    with database.transaction(tenant_id=tenant_id, relaxed_commit=True) as session:
        event = session.execute(
            select(OutboxEvent).where(OutboxEvent.id == event_id, OutboxEvent.tenant_id == tenant_id)
        ).scalar_one()
        event.last_error = message
        for registered in HANDLERS.get(topic, []):
            if registered.on_failure is not None:
                registered.on_failure(session, event, exc)
        if attempts >= policy.max_attempts or isinstance(exc, GiveUp):
            event.failed_at = utcnow()
            return Outcome("failed", message)
        delay = policy.delay_after(attempts)
        event.available_at = utcnow() + delay
        return Outcome("retry", message, delay)


# --- the relay's sweep and the administrators' retry ----------------------------------

# A row is the fast path's business until this old; after that the sweep sends it.
GRACE = timedelta(seconds=10)
# A row sent but not done after this long was lost (worker killed, Redis restarted).
REDELIVER_AFTER = timedelta(seconds=60)


def sweep(database: Database, *, now: datetime | None = None, limit: int = 1000) -> int:
    """Send every open event whose attempt is due and that is not on its way already."""
    from portal.tenancy.models import Tenant

    now = now or utcnow()
    with database.transaction() as session:
        tenant_ids = list(session.execute(select(Tenant.id)).scalars())
    sent = 0
    for tenant_id in tenant_ids:
        with database.transaction(tenant_id=tenant_id) as session:
            due = list(
                session.execute(
                    select(OutboxEvent.id)
                    .where(
                        OutboxEvent.tenant_id == tenant_id,
                        OutboxEvent.done_at.is_(None),
                        OutboxEvent.failed_at.is_(None),
                        OutboxEvent.available_at <= now - GRACE,
                        (OutboxEvent.sent_at.is_(None)) | (OutboxEvent.sent_at <= now - REDELIVER_AFTER),
                    )
                    .order_by(OutboxEvent.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                ).scalars()
            )
            if not due:
                continue
            session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id.in_(due), OutboxEvent.tenant_id == tenant_id)
                .values(sent_at=now)
                .execution_options(synchronize_session=False)
            )
        # Sent after the commit: a send that fails leaves sent_at set, and the row is
        # picked up again after REDELIVER_AFTER.
        publish_all([(tenant_id, event_id) for event_id in due])
        sent += len(due)
    return sent


def retry(session: Session, event: OutboxEvent) -> None:
    """An administrator's retry of a failed event: a fresh set of attempts, queued after commit."""
    event.failed_at = None
    event.attempts = 0
    event.available_at = utcnow()
    event.sent_at = None
    after_commit(session, lambda: publish(event.tenant_id, event.id))


def prune(database: Database, *, older_than: timedelta = timedelta(days=30)) -> int:
    """Delete done events after a while (failed ones stay until retried or resolved)."""
    from sqlalchemy import delete

    cutoff = utcnow() - older_than
    return delete_per_tenant(
        database,
        lambda tenant_id: delete(OutboxEvent).where(
            OutboxEvent.tenant_id == tenant_id, OutboxEvent.done_at.is_not(None), OutboxEvent.done_at < cutoff
        ),
    )


def delete_per_tenant(database: Database, statement: Callable[[int], Any]) -> int:
    """Run ``statement(tenant_id)`` (a DELETE) in each tenant's own transaction (RLS); the rows removed."""
    from portal.tenancy.models import Tenant

    with database.transaction() as session:
        tenant_ids = list(session.execute(select(Tenant.id)).scalars())
    removed = 0
    for tenant_id in tenant_ids:
        with database.transaction(tenant_id=tenant_id) as session:
            removed += session.execute(statement(tenant_id)).rowcount  # type: ignore[attr-defined]
    return removed
