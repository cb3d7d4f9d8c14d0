"""The actors. Start a worker process with ``dramatiq workers.actors``.

Every actor takes ids (never rows), reloads what it needs with the tenant set for
row-level security, and can run twice without doing anything twice. Retries are
the outbox's (counted in the database, see ``portal.outbox``), so the dramatiq
retry middleware is off (``max_retries=0``) and a time limit bounds every run;
HTTP calls made inside have timeouts well below it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from functools import partial
from typing import Any

import dramatiq

import portal.erp.handlers
import portal.exports.handlers
import portal.notifications.handlers  # noqa: F401
from portal import outbox
from workers import context, fairness
from workers.broker import BULK_PRIORITY, BULK_QUEUE, QUEUE, broker

log = logging.getLogger(__name__)

# Longer than any ERP or webhook timeout (30 s at most), short enough that a hung
# run is cut before the relay would redeliver the same event.
TIME_LIMIT_MS = 55_000
# A message older than this is dropped by dramatiq; the relay re-sends the row anyway.
MAX_AGE_MS = 6 * 3600 * 1000


def fair_pair(
    fn: Callable[..., None], actor_name: str, *, broker: dramatiq.Broker | None = None, **options: Any
) -> tuple[dramatiq.Actor[..., None], dramatiq.Actor[..., None]]:
    """``fn`` as two actors: one on the queue every tenant's work shares, one on the bulk queue at a lower
    priority, for what a tenant sends beyond its fair share (``workers.fairness``)."""
    fast = dramatiq.actor(actor_name=actor_name, queue_name=QUEUE, broker=broker, **options)(fn)
    bulk = dramatiq.actor(actor_name=f"{actor_name}_bulk", queue_name=BULK_QUEUE, priority=BULK_PRIORITY,
                          broker=broker, **options)(fn)  # fmt: skip
    return fast, bulk


def _handle_event(tenant_id: int, event_id: int) -> None:
    """Run an outbox event's handlers (see ``portal.outbox.process_event``)."""
    with context.app_context():
        outcome = outbox.process_event(context.database(), tenant_id, event_id)
    if outcome.status == "retry" and outcome.retry_in is not None:
        # A delayed message for a timely retry; the sweep covers it if it is lost.
        publish(tenant_id, event_id, int(outcome.retry_in / timedelta(milliseconds=1)))


def _handle_events(tenant_id: int, event_ids: list[int]) -> None:
    """Several events of one transaction, sent as one message by the request that wrote them: each goes on
    as a message of its own (its own attempts, any worker thread). A send that fails here leaves the rest to
    the relay's sweep."""
    for event_id in event_ids:
        publish(tenant_id, event_id)


EVENT_OPTIONS: dict[str, Any] = {"max_retries": 0, "time_limit": TIME_LIMIT_MS, "max_age": MAX_AGE_MS}
handle_event, handle_event_bulk = fair_pair(_handle_event, "handle_event", **EVENT_OPTIONS)
handle_events, handle_events_bulk = fair_pair(_handle_events, "handle_events", **EVENT_OPTIONS)


@dramatiq.actor(queue_name=QUEUE, max_retries=0, time_limit=TIME_LIMIT_MS)
def sweep_outbox() -> None:
    with context.app_context():
        sent = outbox.sweep(context.database())
    if sent:
        log.info("relay re-sent %s outbox events", sent)


@dramatiq.actor(queue_name=QUEUE, max_retries=0, time_limit=TIME_LIMIT_MS)
def prune_outbox() -> None:
    """Done outbox events after 30 days, exports after 7."""
    from portal.exports.services import prune as prune_exports

    with context.app_context():
        outbox.prune(context.database())
        prune_exports(context.database())


@dramatiq.actor(queue_name=QUEUE, max_retries=0, time_limit=10 * 60_000)
def document_expiry() -> None:
    """The daily expiry pass of compliance documents, for every tenant."""
    from portal.documents import services as documents

    with context.app_context():
        database = context.database()
        today = date.today()
        for tenant_id in context.tenant_ids():
            with database.transaction(tenant_id=tenant_id) as session:
                documents.run_expiry(session, tenant_id=tenant_id, today=today)


# The long per-tenant jobs run from the bulk queue: a tenant's intake or detection never holds up events.
@dramatiq.actor(queue_name=BULK_QUEUE, priority=BULK_PRIORITY, max_retries=0, time_limit=5 * 60_000)
def pull_erp(tenant_id: int) -> None:
    """Intake from the tenant's ERP: new and changed orders, then receipts."""
    from portal.erp.handlers import pull_tenant

    with context.app_context():
        pull_tenant(context.database(), tenant_id)


@dramatiq.actor(queue_name=QUEUE, max_retries=0, time_limit=TIME_LIMIT_MS)
def pull_erp_all() -> None:
    from portal.erp.handlers import connected_tenants

    with context.app_context():
        for tenant_id in connected_tenants(context.database()):
            pull_erp.send(tenant_id)


@dramatiq.actor(queue_name=BULK_QUEUE, priority=BULK_PRIORITY, max_retries=0, time_limit=10 * 60_000)
def detect_exceptions(tenant_id: int) -> None:
    """Open and close the alerts of late, at-risk, partial and unconfirmed lines."""
    from portal.orders.alerts import detect

    with context.app_context():
        database = context.database()
        with database.transaction(tenant_id=tenant_id) as session:
            detect(session, tenant_id=tenant_id)


@dramatiq.actor(queue_name=QUEUE, max_retries=0, time_limit=TIME_LIMIT_MS)
def detect_exceptions_all() -> None:
    with context.app_context():
        for tenant_id in context.tenant_ids():
            detect_exceptions.send(tenant_id)


@dramatiq.actor(queue_name=QUEUE, max_retries=0, time_limit=10 * 60_000)
def send_digests() -> None:
    """The daily e-mail digest for everyone who chose it."""
    from portal.notifications.services import queue_digests

    with context.app_context():
        database = context.database()
        for tenant_id in context.tenant_ids():
            with database.transaction(tenant_id=tenant_id) as session:
                queue_digests(session, tenant_id=tenant_id)


@dramatiq.actor(queue_name=QUEUE, max_retries=0, time_limit=30 * 60_000)
def recompute_scorecards() -> None:
    """Monthly: store the figures of the closed months and quarters (snapshots)."""
    _recompute_scorecards(only_missing=False)


@dramatiq.actor(queue_name=QUEUE, max_retries=0, time_limit=30 * 60_000)
def fill_missing_scorecards(today_text: str | None = None) -> None:
    """Daily: recompute the tenants whose last closed month has no snapshot of the current definition version,
    and leave the others alone. It catches a monthly run that was missed (the scheduler does not catch up) and a
    new definition version deployed mid-month (until then each closed period's pages computed it live)."""
    _recompute_scorecards(only_missing=True, today=date.fromisoformat(today_text) if today_text else None)


def _recompute_scorecards(*, only_missing: bool, today: date | None = None) -> None:
    from portal.scorecards.services import recompute, snapshots_missing

    with context.app_context():
        database = context.database()
        for tenant_id in context.tenant_ids():
            with database.transaction(tenant_id=tenant_id) as session:
                if only_missing and not snapshots_missing(session, tenant_id=tenant_id, today=today or date.today()):
                    continue
                # A second connection shares the work (PostgreSQL runs each query on one core).
                reader = partial(database.transaction, tenant_id=tenant_id)
                recompute(session, tenant_id=tenant_id, months=24, today=today, reader=reader)


# --- publishing ------------------------------------------------------------------------

# After a failed send, skip the queue for a moment: one request that emits ten events
# must not wait ten connect timeouts while Redis is down. The sweep delivers them.
_QUEUE_DOWN_PAUSE = 5.0
_down_until = 0.0
_down_lock = threading.Lock()


_share: fairness.FairShare | None = None


def fair_share() -> fairness.FairShare:
    global _share
    if _share is None:
        _share = fairness.from_environment()
    return _share


def publish(tenant_id: int, event_id: int, delay_ms: int = 0) -> None:
    """Send an outbox event to the workers: on the shared queue while the tenant is within its share, else on
    the bulk queue (each event counts, retries too)."""
    _send(lambda: handle_event if fair_share().admit(tenant_id) else handle_event_bulk, tenant_id, event_id,
          delay_ms=delay_ms)  # fmt: skip


def publish_batch(tenant_id: int, event_ids: list[int]) -> None:
    """A transaction's events as one message; its events are counted when it splits them (``publish``)."""
    _send(lambda: handle_events if fair_share().within(tenant_id, len(event_ids)) else handle_events_bulk,
          tenant_id, list(event_ids))  # fmt: skip


def _send(choose: Callable[[], dramatiq.Actor[..., None]], *args: Any, delay_ms: int = 0) -> None:
    global _down_until
    if time.monotonic() < _down_until:
        raise ConnectionError("queue marked unavailable; the relay will send this event")
    try:
        choose().send_with_options(args=args, delay=delay_ms or None)
    except Exception:
        with _down_lock:
            _down_until = time.monotonic() + _QUEUE_DOWN_PAUSE
        raise


outbox.set_publisher(publish, batch=publish_batch)

__all__ = [
    "broker",
    "detect_exceptions",
    "detect_exceptions_all",
    "document_expiry",
    "fair_pair",
    "fair_share",
    "fill_missing_scorecards",
    "handle_event",
    "handle_event_bulk",
    "handle_events",
    "handle_events_bulk",
    "prune_outbox",
    "publish",
    "publish_batch",
    "pull_erp",
    "pull_erp_all",
    "recompute_scorecards",
    "send_digests",
    "sweep_outbox",
]
