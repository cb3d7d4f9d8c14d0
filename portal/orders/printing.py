"""The orders' documents to download: the purchase order and a ship notice's packing slip, as PDFs (WeasyPrint
with the fetcher that loads only the portal's own files, ``portal/pdf.py``), and the files on order messages.
The portal's pages and the supplier API give the same documents, through these functions."""

from __future__ import annotations

import re

import werkzeug.wrappers
from flask import Response, abort, render_template
from sqlalchemy.orm import Session

from portal.db import utcnow
from portal.orders import queries
from portal.orders.models import PurchaseOrder, ShipNotice
from portal.pdf import ASSET_BASE, code128_svg, html_to_pdf


def order_pdf(session: Session, order: PurchaseOrder, tenant_name: str) -> bytes:
    """The order to file or print: the parties, the lines with their current promises, the total."""
    view = queries.order_view(session, order)
    html = render_template(
        "orders/pdf.html", asset_base=ASSET_BASE, v=view, o=order, tenant_name=tenant_name,
        company_name=view.company_name, buyer_name=view.buyer_name, printed=_printed(),
    )  # fmt: skip
    return html_to_pdf(html)


def packing_slip_pdf(
    session: Session, order: PurchaseOrder, notice_id: int, tenant_name: str
) -> tuple[ShipNotice, bytes] | None:
    """A ship notice of ``order`` (loaded through the tenant and the supplier account) as its packing slip, to
    put in the shipment: the parties, the shipment, what it holds line by line, and the notice's number as a
    Code 128 barcode that goods receipt scans into the orders search. None when the order has no such notice."""
    found = queries.ship_notice_with_lines(session, order, notice_id)
    if found is None:
        return None
    notice, items = found
    parties = queries.order_parties(session, order)  # the header's names only, not the whole order page
    html = render_template(
        "orders/packing_slip.html", asset_base=ASSET_BASE, v=parties, o=order, notice=notice, items=items,
        barcode=code128_svg(notice.number), tenant_name=tenant_name, company_name=parties.company_name,
        buyer_name=parties.buyer_name, printed=_printed(),
    )  # fmt: skip
    return notice, html_to_pdf(html)


def packing_slip_download(session: Session, order: PurchaseOrder, notice_id: int, tenant_name: str) -> Response:
    """The packing slip of ``order``'s notice ``notice_id`` to download (the order page's and the API's): 404
    when the order has no such notice."""
    printed = packing_slip_pdf(session, order, notice_id, tenant_name)
    if printed is None:
        abort(404)
    notice, data = printed
    return pdf_response(data, "packing-slip", notice.number)


def message_file_download(
    session: Session, order: PurchaseOrder, message_id: int, file_id: int
) -> werkzeug.wrappers.Response:
    """A file attached to a message on ``order`` (loaded through the tenant and the supplier account), as sent:
    404 unless it is one of that order's messages' files."""
    from portal.documents.views import send_stored

    attached = queries.message_file(session, order, message_id, file_id)
    if attached is None:
        abort(404)
    return send_stored(attached.storage_key, attached.content_type, attached.original_name)


def pdf_response(data: bytes, stem: str, number: str) -> Response:
    """A PDF to download, named ``<stem>-<number>.pdf`` (the number reduced to what a header's file name holds)."""
    response = Response(data, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{stem}-{file_safe(number)}.pdf"'
    return response


def file_safe(text: str) -> str:
    """Letters, digits, dots, dashes and underscores only (a file name in a header)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "order"


def _printed() -> str:
    return utcnow().strftime("%Y-%m-%d %H:%M")
