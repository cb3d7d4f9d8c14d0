"""The worker's side of exports."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import update
from sqlalchemy.orm import Session

from portal.exports import services
from portal.exports.models import Export, ExportState
from portal.orders.models import OutboxEvent
from portal.outbox import handler

ATTEMPTS = 3


def _failed(session: Session, event: OutboxEvent, exc: BaseException) -> None:
    export_id = int(event.payload["export_id"])
    reason = f"{type(exc).__name__}: {exc}"
    if event.attempts >= ATTEMPTS:
        services.mark_failed(session, event.tenant_id, export_id, reason)
        return
    # Shown on the export's page while the outbox tries again (the cause may pass).
    session.execute(
        update(Export)
        .where(Export.tenant_id == event.tenant_id, Export.id == export_id, Export.state != ExportState.DONE)
        .values(state=ExportState.QUEUED, step=f"Trying again after an error: {reason}"[:200])
        .execution_options(synchronize_session=False)
    )


@handler("export.requested", max_attempts=ATTEMPTS, backoff_base=5.0, on_failure=_failed)
def make_export(session: Session, event: OutboxEvent) -> None:
    services.make(current_app.extensions["portal.db"], session, event.tenant_id, int(event.payload["export_id"]))
