"""Compliance documents: the virus scan (fail closed), replacing a document, and the
reviewer's sandboxed preview."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import func, select

from portal.auth.permissions import Role
from portal.documents.models import Document, DocumentStatus
from tests.clamd_double import EICAR, ClamdProtocolDouble
from tests.conftest import _free_port
from tests.factories import PASSWORD, make_member, make_supplier
from tests.helpers import PortalClient, csrf_from
from tests.pdfs import CLEAN_PDF, PNG, build_pdf
from tests.test_documents import compliance_world, upload  # noqa: F401  (a fixture)

INFECTED_PDF = build_pdf(extra_objects=(f"<< /Length {len(EICAR)} >>\nstream\n{EICAR.decode()}\nendstream",))


@pytest.fixture
def clamd():  # type: ignore[no-untyped-def]
    double = ClamdProtocolDouble()
    yield double
    double.close()


def _with_scanner(app, address: str):  # type: ignore[no-untyped-def]
    settings = app.extensions["portal.settings"]
    app.extensions["portal.settings"] = replace(settings, clamd_address=address)
    return settings


def _count(session) -> int:  # type: ignore[no-untyped-def]
    return int(session.execute(select(func.count(Document.id))).scalar_one())


def test_a_clean_file_is_scanned_then_stored(compliance_world, app, clamd):  # noqa: F811
    session, _, _, iso, seller, _, _root = compliance_world
    previous = _with_scanner(app, clamd.address)
    try:
        assert upload(seller, iso.id, "cert.pdf", CLEAN_PDF).status_code == 302
    finally:
        app.extensions["portal.settings"] = previous
    assert clamd.scanned == [CLEAN_PDF]
    assert _count(session) == 1


def test_a_flagged_file_is_refused_and_nothing_is_stored(compliance_world, app, clamd):  # noqa: F811
    session, _, _, iso, seller, _, root = compliance_world
    previous = _with_scanner(app, clamd.address)
    try:
        response = upload(seller, iso.id, "cert.pdf", INFECTED_PDF)
    finally:
        app.extensions["portal.settings"] = previous
    assert response.status_code == 422
    assert "The virus scanner found Eicar-Test-Signature in this file; it was not stored." in response.text
    assert _count(session) == 0
    assert not root.exists() or not any(p.is_file() for p in root.rglob("*"))


@pytest.mark.parametrize("failure", ["unreachable", "error"])
def test_no_scan_no_storage(compliance_world, app, clamd, failure):  # noqa: F811
    """Fail closed: a scanner that cannot be reached, or that errs, stores nothing (503)."""
    session, _, _, iso, seller, _, _root = compliance_world
    address = f"127.0.0.1:{_free_port()}" if failure == "unreachable" else clamd.address
    clamd.broken = failure == "error"
    previous = _with_scanner(app, address)
    try:
        response = upload(seller, iso.id, "cert.pdf", CLEAN_PDF)
    finally:
        app.extensions["portal.settings"] = previous
    assert response.status_code == 503
    expected = "cannot be reached" if failure == "unreachable" else "could not check this file"
    assert expected in response.text and "it was not stored" in response.text.replace(
        "the file was not stored", "it was not stored"
    )
    assert _count(session) == 0


def test_a_supplier_replaces_a_document_and_the_old_one_is_superseded_on_approval(compliance_world):  # noqa: F811
    session, _, _, iso, seller, officer, _ = compliance_world
    assert upload(seller, iso.id, "old.pdf", CLEAN_PDF).status_code == 302
    old = session.execute(select(Document)).scalar_one()
    page = seller.get("/compliance").text
    assert f"/compliance?replace={old.id}" in page
    form = seller.get(f"/compliance?replace={old.id}").text
    assert "Replacing “Quality certificate” (old.pdf)" in form and f'value="{old.id}"' in form
    token = csrf_from(form)
    import io

    response = seller.client.post(
        "/compliance",
        data={"csrf_token": token, "document_type_id": str(iso.id), "title": "Quality certificate 2027",
              "supersedes_id": str(old.id), "file": (io.BytesIO(PNG), "new.png")},
        content_type="multipart/form-data",
    )  # fmt: skip
    assert response.status_code == 302
    new = session.execute(select(Document).where(Document.id != old.id)).scalar_one()
    assert new.supersedes_id == old.id and new.status == DocumentStatus.PENDING_REVIEW
    session.refresh(old)
    assert old.status == DocumentStatus.PENDING_REVIEW  # unchanged until the new one is approved
    decided = officer.submit(
        f"/documents/{new.id}", {"decision": "approve", "comment": ""}, page=f"/documents/{new.id}"
    )
    assert decided.status_code == 302
    session.refresh(old)
    assert old.status == DocumentStatus.SUPERSEDED


def test_another_suppliers_document_cannot_be_replaced(compliance_world, app):  # noqa: F811
    session, tenant, _, iso, seller, _, _ = compliance_world
    assert upload(seller, iso.id, "mine.pdf", CLEAN_PDF).status_code == 302
    document = session.execute(select(Document)).scalar_one()
    other = make_member(session, tenant, Role.SUPPLIER_USER, supplier=make_supplier(session, tenant))
    neighbour = PortalClient(app.test_client())
    neighbour.sign_in(other.email, PASSWORD, other.secret)
    assert neighbour.get(f"/compliance?replace={document.id}").status_code == 404
    response = upload(neighbour, iso.id, "theirs.pdf", CLEAN_PDF, supersedes_id=str(document.id))
    assert response.status_code == 404
    assert _count(session) == 1


def test_the_reviewer_sees_a_sandboxed_picture_of_each_page(compliance_world):  # noqa: F811
    session, _, _, iso, seller, officer, _ = compliance_world
    assert upload(seller, iso.id, "cert.pdf", CLEAN_PDF).status_code == 302
    document = session.execute(select(Document)).scalar_one()
    detail = officer.get(f"/documents/{document.id}").text
    assert f'src="/documents/{document.id}/preview/1"' in detail
    assert f"/documents/{document.id}/preview/2" not in detail  # a one-page PDF
    picture = officer.get(f"/documents/{document.id}/preview/1")
    assert picture.status_code == 200 and picture.mimetype == "image/png"
    assert picture.data.startswith(b"\x89PNG\r\n\x1a\n") and picture.data != CLEAN_PDF
    assert picture.headers["Content-Security-Policy"].startswith("sandbox")
    assert picture.headers["X-Content-Type-Options"] == "nosniff"
    assert officer.get(f"/documents/{document.id}/preview/2").status_code == 404
    # An image is shown as it is, with the same headers.
    assert upload(seller, iso.id, "scan.png", PNG).status_code == 302
    image = session.execute(select(Document).where(Document.id != document.id)).scalar_one()
    shown = officer.get(f"/documents/{image.id}/preview/1")
    assert (
        shown.data == PNG
        and shown.mimetype == "image/png"
        and shown.headers["Content-Security-Policy"].startswith("sandbox")
    )


def test_requirements_for_named_suppliers_products_and_sites(compliance_world, app):  # noqa: F811
    from portal.documents import services
    from portal.documents.models import Requirement
    from tests.factories import make_order

    session, tenant, supplier, iso, _, officer, _ = compliance_world
    other = make_supplier(session, tenant, "Other Supplier")
    order = make_order(session, tenant, supplier, [("10", "1.00", 5)])  # supplier ships P-001 to this warehouse
    session.execute(Requirement.__table__.delete().where(Requirement.tenant_id == tenant.id))
    page = officer.get("/documents/types").text
    assert "Named suppliers" in page and "Only suppliers of these products" in page
    refused = officer.submit(
        "/documents/types",
        {"req-document_type_id": str(iso.id), "req-scope": "suppliers", "req-reminder_days": "30", "req-submit": "1"},
    )
    assert refused.status_code == 422 and "Choose at least one supplier." in refused.text
    assert session.execute(select(func.count(Requirement.id))).scalar_one() == 0
    made = officer.submit(
        "/documents/types",
        {"req-document_type_id": str(iso.id), "req-scope": "all", "req-product_codes": "P-001, P-999",
         "req-warehouse_ids": str(order.warehouse_id), "req-reminder_days": "30", "req-submit": "1"},
    )  # fmt: skip
    assert made.status_code == 302
    requirement = session.execute(select(Requirement)).scalar_one()
    assert requirement.product_codes == ["P-001", "P-999"] and requirement.warehouse_ids == [order.warehouse_id]
    from datetime import date

    # The supplier of P-001 to that site is asked for it; the other supplier (no such orders) is not.
    asked = services.compliance(session, tenant_id=tenant.id, supplier=supplier, today=date.today())
    assert [s.document_type.id for s in asked] == [iso.id]
    assert services.compliance(session, tenant_id=tenant.id, supplier=other, today=date.today()) == []
    dashboard = services.dashboard(session, tenant_id=tenant.id, today=date.today())
    assert [row[1:] for row in dashboard.by_requirement] == [("ISO 9001", 1, 0)]
    # Named suppliers: only the one chosen.
    requirement.product_codes, requirement.warehouse_ids = [], []
    requirement.scope, requirement.supplier_ids = services.RequirementScope.SUPPLIERS, [other.id]
    session.flush()
    assert services.compliance(session, tenant_id=tenant.id, supplier=supplier, today=date.today()) == []
    assert len(services.compliance(session, tenant_id=tenant.id, supplier=other, today=date.today())) == 1
