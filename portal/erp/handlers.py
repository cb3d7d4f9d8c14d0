"""Outbox handlers and periodic work of the ERP sync (run by the workers)."""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.db import Database
from portal.erp import services
from portal.erp.base import ErpConflict, ErpError
from portal.erp.models import ErpLineSync, SyncStatus
from portal.orders.models import ChangeRequest
from portal.outbox import GiveUp, OutboxEvent, Retry, handler

log = logging.getLogger(__name__)

# An ERP may be down for a day: about 24 h of attempts (back-off doubling up to an hour)
# before the push is marked failed for an administrator to retry.
SYNC_ATTEMPTS = 30


@handler("commitment.changed")
def queue_push_of_commitment(session: Session, event: OutboxEvent) -> None:
    if event.payload.get("kind") == "revised":
        # The buyer revised the line (in the ERP or here): the ERP holds the buyer's terms, and the supplier's
        # next answer is what will be written.
        return
    services.request_sync(session, tenant_id=event.tenant_id, line_id=int(event.payload["line_id"]))


@handler("change_request.decided")
def queue_push_of_decision(session: Session, event: OutboxEvent) -> None:
    # An approved rejection changes what the ERP must hold (an approved new promise already
    # wrote a ledger entry, whose own event queues the push; a second request is harmless).
    request = session.execute(
        select(ChangeRequest).where(
            ChangeRequest.tenant_id == event.tenant_id, ChangeRequest.id == int(event.payload["change_request_id"])
        )
    ).scalar_one_or_none()
    if request is not None and event.payload.get("decision") == "approved":
        services.request_sync(session, tenant_id=event.tenant_id, line_id=request.line_id)


def _sync_failed(session: Session, event: OutboxEvent, exc: BaseException) -> None:
    sync = session.execute(
        select(ErpLineSync).where(
            ErpLineSync.tenant_id == event.tenant_id, ErpLineSync.line_id == int(event.payload["line_id"])
        )
    ).scalar_one_or_none()
    if sync is None:
        return
    sync.attempts = event.attempts
    final = event.attempts >= SYNC_ATTEMPTS or isinstance(exc, GiveUp)  # as the outbox decides it
    sync.status = SyncStatus.FAILED if final else SyncStatus.WAITING
    sync.error = str(exc)[:2000]


@handler("erp.sync_line", max_attempts=SYNC_ATTEMPTS, backoff_base=5.0, backoff_cap=3600.0, on_failure=_sync_failed)
def push_line(session: Session, event: OutboxEvent) -> None:
    connection = services.get_connection(session, event.tenant_id)
    if connection is None or not connection.active:
        return
    adapter = services.adapter_for(connection, timeout=_timeout())
    try:
        services.sync_line(
            session,
            tenant_id=event.tenant_id,
            line_id=int(event.payload["line_id"]),
            adapter=adapter,
            force=bool(event.payload.get("force")),
        )
        services.close_failed_pushes(session, tenant_id=event.tenant_id, line_id=int(event.payload["line_id"]))
    except ErpConflict as exc:
        # A buyer's edit in the ERP: every attempt would stop at it. Failed at once, on the administrators'
        # failed-jobs page, for a retry once the order is checked in the ERP.
        raise GiveUp(f"{exc.kind}: {exc}") from exc
    except ErpError as exc:
        # Expected failures (ERP down, wrong password): retried with back-off,
        # the reason shown on the line and on the administrators' failed-sync page.
        raise Retry(f"{exc.kind}: {exc}") from exc
    finally:
        adapter.close()


def _timeout() -> float:
    return float(current_app.extensions["portal.settings"].erp_timeout)


def pull_tenant(database: Database, tenant_id: int) -> services.PullReport | None:
    """The periodic intake of one tenant: orders, then receipts. A failure is recorded on the connection."""
    try:
        with database.transaction(tenant_id=tenant_id) as session:
            connection = services.get_connection(session, tenant_id)
            if connection is None or not connection.active:
                return None
            adapter = services.adapter_for(connection, timeout=_timeout())
            try:
                return services.pull(session, tenant_id=tenant_id, connection=connection, adapter=adapter)
            finally:
                adapter.close()
    except ErpError as exc:
        log.warning("ERP pull of tenant %s failed: %s", tenant_id, exc)
        with database.transaction(tenant_id=tenant_id) as session:
            connection = services.get_connection(session, tenant_id)
            if connection is not None:
                services.mark_pull_failed(connection, f"{exc.kind}: {exc}")
        return None


def connected_tenants(database: Database) -> list[int]:
    from portal.erp.models import ErpConnection
    from portal.tenancy.models import Tenant

    with database.transaction() as session:
        tenant_ids = list(session.execute(select(Tenant.id)).scalars())
    found = []
    for tenant_id in tenant_ids:
        with database.transaction(tenant_id=tenant_id) as session:
            if session.execute(
                select(ErpConnection.id).where(ErpConnection.tenant_id == tenant_id, ErpConnection.active.is_(True))
            ).first():
                found.append(tenant_id)
    return found
