"""Asking for an export, making it (in a worker, with progress), and pruning old ones."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from portal.db import Database, utcnow
from portal.exports.models import Export, ExportState
from portal.outbox import delete_per_tenant, emit

KEEP_FOR = timedelta(days=7)

# Progress(done, total, step): the exporter reports how far it got; each report commits on its own.
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Made:
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class Exporter:
    """``make(session, export, progress)`` builds the file; it runs in the worker, with the tenant set."""

    kind: str
    make: Callable[[Session, Export, Progress], Made]


EXPORTERS: dict[str, Exporter] = {}


def exporter(kind: str) -> Callable[[Callable[[Session, Export, Progress], Made]], Callable[..., Made]]:
    def register(fn: Callable[[Session, Export, Progress], Made]) -> Callable[..., Made]:
        EXPORTERS[kind] = Exporter(kind, fn)
        return fn

    return register


def request_export(
    session: Session,
    *,
    tenant_id: int,
    user_id: int,
    kind: str,
    title: str,
    params: dict[str, Any],
    supplier_id: int | None = None,
) -> Export:
    """Record the request; the worker starts once it is committed."""
    if kind not in EXPORTERS:
        raise ValueError(f"unknown export {kind!r}")
    export = Export(
        tenant_id=tenant_id, user_id=user_id, supplier_id=supplier_id, kind=kind, title=title, params=params
    )
    session.add(export)
    session.flush()
    emit(session, tenant_id, "export.requested", {"export_id": export.id})
    return export


def own_export(session: Session, *, tenant_id: int, user_id: int, export_id: int) -> Export | None:
    """One person's export: another person's id, or another tenant's, finds nothing."""
    return session.execute(
        select(Export).where(Export.tenant_id == tenant_id, Export.user_id == user_id, Export.id == export_id)
    ).scalar_one_or_none()


def recent(session: Session, *, tenant_id: int, user_id: int, limit: int = 50) -> list[Export]:
    return list(
        session.execute(
            select(Export)
            .where(Export.tenant_id == tenant_id, Export.user_id == user_id)
            .order_by(Export.created_at.desc(), Export.id.desc())
            .limit(limit)
        ).scalars()
    )


def make(database: Database, session: Session, tenant_id: int, export_id: int) -> None:
    """Build one export (the worker's handler). Idempotent: a finished export is left alone.

    Progress is written in short transactions of its own so the page sees it while the export runs;
    the file and the final state commit with the handler's transaction.
    """
    export = session.execute(
        select(Export).where(Export.tenant_id == tenant_id, Export.id == export_id)
    ).scalar_one_or_none()
    if export is None or export.state in (ExportState.DONE, ExportState.FAILED):
        return

    def progress(done: int, total: int, step: str) -> None:
        percent = max(0, min(99, int(done * 100 / total) if total else 0))
        with database.transaction(tenant_id=tenant_id, relaxed_commit=True) as own:
            own.execute(
                update(Export)
                .where(Export.tenant_id == tenant_id, Export.id == export_id)
                .values(state=ExportState.RUNNING, progress=percent, step=step[:200])
                .execution_options(synchronize_session=False)
            )

    progress(0, 1, "Started")
    made = EXPORTERS[export.kind].make(session, export, progress)
    session.refresh(export)
    export.filename = made.filename
    export.content_type = made.content_type
    export.content = made.content
    export.state = ExportState.DONE
    export.progress = 100
    export.step = "Ready"
    export.finished_at = utcnow()


def mark_failed(session: Session, tenant_id: int, export_id: int, reason: str) -> None:
    session.execute(
        update(Export)
        .where(Export.tenant_id == tenant_id, Export.id == export_id, Export.state != ExportState.DONE)
        .values(state=ExportState.FAILED, error=reason[:2000], step="Failed", finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def prune(database: Database, *, older_than: timedelta = KEEP_FOR) -> int:
    """Delete exports after a week (the files are copies of what the portal shows anyway)."""
    cutoff = utcnow() - older_than
    return delete_per_tenant(
        database, lambda tenant_id: delete(Export).where(Export.tenant_id == tenant_id, Export.created_at < cutoff)
    )
