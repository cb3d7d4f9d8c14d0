"""The scorecard exports a worker makes with progress: the ranking as CSV, one card as CSV or PDF."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.csvfiles import csv_bytes
from portal.exports.models import Export
from portal.exports.services import Made, Progress, exporter
from portal.scorecards import services
from portal.scorecards.views import (
    PDF_EVIDENCE_ROWS,
    RANKING_HEADER,
    build_card,
    card_csv,
    pdf_name,
    ranking_filters,
    ranking_lines,
    render_pdf,
)
from portal.suppliers.models import Supplier
from portal.tenancy.models import Tenant

CHUNK = 500  # suppliers written between two progress reports


class ExportRefused(Exception):
    """The export asks for something its tenant no longer has."""


def _window(session: Session, tenant_id: int, params: dict[str, Any]) -> tuple[str, services.Window]:
    kind = "quarter" if params.get("period") == "quarter" else "month"
    at = date.fromisoformat(params["at"]) if params.get("at") else date.today()
    return kind, services.tenant_window(session, tenant_id, kind, at)


def _supplier(session: Session, export: Export) -> Supplier:
    # Loaded through the tenant: an id of another tenant finds nothing.
    supplier = session.execute(
        select(Supplier).where(Supplier.tenant_id == export.tenant_id, Supplier.id == int(export.params["supplier_id"]))
    ).scalar_one_or_none()
    if supplier is None or (export.supplier_id is not None and export.supplier_id != supplier.id):
        raise ExportRefused("this supplier is not part of the export's customer any more")
    return supplier


@exporter("scorecards.ranking_csv")
def ranking(session: Session, export: Export, progress: Progress) -> Made:
    kind, window = _window(session, export.tenant_id, export.params)
    sort, category, company = ranking_filters(export.params)
    progress(1, 10, "Computing every supplier's figures")
    rows, total = services.ranking_page(
        session, tenant_id=export.tenant_id, window=window, sort=sort, kind=kind, company_id=company,
        category=category,
    )  # fmt: skip
    lines: list[list[Any]] = []
    for start in range(0, total, CHUNK):
        lines += ranking_lines(rows[start : start + CHUNK], window)
        progress(2 + 8 * (start + CHUNK) // max(total, 1), 10, f"Written {min(start + CHUNK, total):,} of {total:,}")
    return Made(f"scorecards-{window.start}.csv", "text/csv", csv_bytes(RANKING_HEADER, lines))


def _card(session: Session, export: Export, evidence_rows: int | None) -> dict[str, Any]:
    kind, window = _window(session, export.tenant_id, export.params)
    card = build_card(
        session, tenant_id=export.tenant_id, supplier=_supplier(session, export), kind=kind, window=window,
        today=date.today(), evidence_rows=evidence_rows, at=str(export.params.get("at", "")),
    )  # fmt: skip
    assert card is not None  # page 1 always exists
    return card


@exporter("scorecards.card_csv")
def card_as_csv(session: Session, export: Export, progress: Progress) -> Made:
    progress(1, 3, "Computing the figures and their deliveries")
    name, content = card_csv(_card(session, export, None))
    return Made(name, "text/csv", content)


@exporter("scorecards.card_pdf")
def card_as_pdf(session: Session, export: Export, progress: Progress) -> Made:
    progress(1, 3, "Computing the figures")
    card = _card(session, export, PDF_EVIDENCE_ROWS)
    progress(2, 3, "Laying out the PDF")
    tenant = session.execute(select(Tenant.name).where(Tenant.id == export.tenant_id)).scalar_one()
    return Made(pdf_name(card), "application/pdf", render_pdf(card, tenant))
