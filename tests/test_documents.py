"""Compliance documents: uploads that must be refused (and store nothing), review, status, downloads."""

from __future__ import annotations

import io
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from portal.audit import AuditEvent
from portal.auth.permissions import Role
from portal.auth.services import Actor, ServiceError
from portal.db import set_context
from portal.documents import services
from portal.documents.models import Document, DocumentStatus, DocumentType, Requirement
from tests.factories import PASSWORD, make_member, make_supplier, make_tenant, require_document
from tests.helpers import PortalClient, csrf_from
from tests.pdfs import CLEAN_PDF, EMBEDDED_FILE_PDF, HEX_ESCAPED_PDF, JAVASCRIPT_PDF, JPEG, LAUNCH_PDF, PNG


@pytest.fixture
def compliance_world(app, session, tmp_path):
    app.config["DOCUMENT_ROOT"] = str(tmp_path / "docs")
    tenant = make_tenant(session, "Docs Distribution")
    supplier = make_supplier(session, tenant, "Docs Supplier")
    set_context(session, tenant_id=tenant.id)
    iso = DocumentType(tenant_id=tenant.id, code="ISO9001", name="ISO 9001")
    session.add(iso)
    session.flush()
    session.add(Requirement(tenant_id=tenant.id, document_type_id=iso.id, validity_months=12))
    session.flush()
    seller = make_member(session, tenant, Role.SUPPLIER_USER, supplier=supplier)
    officer = make_member(session, tenant, Role.COMPLIANCE_OFFICER)
    seller_client, officer_client = PortalClient(app.test_client()), PortalClient(app.test_client())
    seller_client.sign_in(seller.email, PASSWORD, seller.secret)
    officer_client.sign_in(officer.email, PASSWORD, officer.secret)
    return session, tenant, supplier, iso, seller_client, officer_client, tmp_path / "docs"


def upload(client: PortalClient, type_id: int, name: str, data: bytes, **fields: str):  # type: ignore[no-untyped-def]
    token = csrf_from(client.get("/compliance").text)
    form = {
        "csrf_token": token,
        "document_type_id": str(type_id),
        "title": "Quality certificate",
        "file": (io.BytesIO(data), name),
        **fields,
    }
    return client.client.post("/compliance", data=form, content_type="multipart/form-data")


BAD_UPLOADS = [
    ("empty.pdf", b"", 422, "The file is empty."),
    ("big.pdf", b"%PDF-1.7\n" + b"0" * (10 * 1024 * 1024), 413, "larger than 10 MB"),
    ("tool.exe", CLEAN_PDF, 422, "Only PDF, PNG or JPEG files are accepted."),
    ("photo.png", CLEAN_PDF, 422, "does not match its extension (.png)"),
    ("scan.pdf", PNG, 422, "does not match its extension (.pdf)"),
    ("notes.pdf", b"just some text", 422, "is not a PDF, PNG or JPEG file"),
    ("polyglot.jpg", JPEG + b"%PDF-1.4 hidden", 422, "hides a second file format"),
    ("zip.png", PNG + b"PK\x03\x04zipped", 422, "hides a second file format"),
    ("js.pdf", JAVASCRIPT_PDF, 422, "active content (JS, JavaScript, OpenAction)"),
    ("hex.pdf", HEX_ESCAPED_PDF, 422, "active content (JS, JavaScript, OpenAction)"),
    ("launch.pdf", LAUNCH_PDF, 422, "active content (Launch, OpenAction)"),
    ("attached.pdf", EMBEDDED_FILE_PDF, 422, "active content (EmbeddedFiles)"),
    ("broken.pdf", b"%PDF-1.7\n1 0 obj <<", 422, "The PDF cannot be read."),
]


@pytest.mark.parametrize(("name", "data", "status", "message"), BAD_UPLOADS, ids=[b[0] for b in BAD_UPLOADS])
def test_bad_uploads_get_a_clear_message_and_store_nothing(compliance_world, name, data, status, message):
    session, _, _, iso, seller, _, root = compliance_world
    response = upload(seller, iso.id, name, data)
    assert response.status_code == status
    assert message in response.text.replace("&#39;", "'")
    assert session.execute(select(func.count()).select_from(Document)).scalar_one() == 0
    assert not root.exists() or not any(p.is_file() for p in root.rglob("*"))


def test_upload_review_and_compliance_status(compliance_world):
    session, _tenant, _supplier, iso, seller, officer, root = compliance_world
    assert "missing" in seller.get("/compliance").text
    done = upload(
        seller,
        iso.id,
        "ISO 9001 cert.pdf",
        CLEAN_PDF,
        issuer="TÜV",
        certificate_number="Q-1",
        issue_date=date.today().isoformat(),
    )
    assert done.status_code == 302
    document = session.execute(select(Document)).scalar_one()
    assert document.status == DocumentStatus.PENDING_REVIEW and document.original_name == "ISO 9001 cert.pdf"
    assert document.storage_key != document.original_name and len(document.sha256) == 64
    assert (root / document.storage_key[:2] / document.storage_key).read_bytes() == CLEAN_PDF
    assert "waiting for review" in seller.get("/compliance").text
    assert "Quality certificate" in officer.get("/documents/review").text
    page = f"/documents/{document.id}"
    no_reason = officer.submit(page, {"decision": "reject", "comment": ""})
    assert no_reason.status_code == 422 and "the reason is required" in no_reason.text
    approved = officer.submit(page, {"decision": "approve", "comment": "ok"})
    assert approved.status_code == 302
    session.expire_all()
    document = session.get(Document, document.id)
    # No expiry on the document: the requirement's 12 months apply from the issue date.
    assert document.status == DocumentStatus.APPROVED
    assert date.today() + timedelta(days=360) < document.expiry_date < date.today() + timedelta(days=370)
    assert "valid until" in seller.get("/compliance").text


def test_downloads_are_attachments_sandboxed_and_scoped(compliance_world, app, session):
    _, tenant, _supplier, iso, seller, officer, _ = compliance_world
    upload(seller, iso.id, "cert «ü».pdf", CLEAN_PDF)
    document = session.execute(select(Document)).scalar_one()
    response = officer.get(f"/documents/{document.id}/download")
    assert response.status_code == 200 and response.data == CLEAN_PDF
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert "filename*=UTF-8''cert%20%C2%AB%C3%BC%C2%BB.pdf" in response.headers["Content-Disposition"]
    assert response.headers["Content-Security-Policy"] == "sandbox"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert seller.get(f"/compliance/documents/{document.id}/download").data == CLEAN_PDF
    other_supplier_user = make_member(session, tenant, Role.SUPPLIER_USER, supplier=make_supplier(session, tenant))
    neighbour = PortalClient(app.test_client())
    neighbour.sign_in(other_supplier_user.email, PASSWORD, other_supplier_user.secret)
    assert neighbour.get(f"/compliance/documents/{document.id}/download").status_code == 404


def test_the_uploader_cannot_approve_their_own_document(session, tmp_path):
    from portal.documents.storage import LocalStorage

    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    set_context(session, tenant_id=tenant.id)
    iso = DocumentType(tenant_id=tenant.id, code="ISO", name="ISO")
    session.add(iso)
    session.flush()
    person = make_member(session, tenant, Role.TENANT_ADMIN)
    me = Actor(person.user.id, person.email, "")
    document = services.upload(
        session,
        LocalStorage(Path(tmp_path)),
        tenant_id=tenant.id,
        supplier_id=supplier.id,
        actor=me,
        data=services.UploadInput(iso.id, "Mine", "", "", None, None, "a.png", PNG),
    )
    with pytest.raises(ServiceError, match="someone else must review it"):
        services.review(session, document=document, decision="approve", comment="", valid_until=None, actor=me)


def test_types_and_requirements_are_managed_by_compliance(compliance_world):
    session, tenant, _, iso, _, officer, _ = compliance_world
    assert (
        officer.submit(
            "/documents/types", {"type-code": "ins", "type-name": "Insurance", "type-submit": "1"}
        ).status_code
        == 302
    )
    again = officer.submit("/documents/types", {"type-code": "INS", "type-name": "Insurance", "type-submit": "1"})
    assert again.status_code == 422 and "in use already" in again.text
    missing_category = officer.submit(
        "/documents/types",
        {
            "req-document_type_id": str(iso.id),
            "req-scope": "category",
            "req-category": "",
            "req-reminder_days": "60,30",
            "req-submit": "1",
        },
    )
    assert missing_category.status_code == 422 and "Name the supplier category" in missing_category.text
    set_context(session, tenant_id=tenant.id)
    assert session.execute(select(DocumentType.code).where(DocumentType.code == "INS")).scalar_one() == "INS"


@pytest.mark.parametrize("mode", ["warn", "block"])
def test_document_gating_warns_or_blocks_confirmations_and_a_buyer_can_override(app, session, mode):
    from portal.orders import services as order_services
    from portal.orders.models import LineState
    from portal.tenancy.models import DocumentGating, Tenant
    from tests.factories import make_order

    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    require_document(session, tenant)
    session.get(Tenant, tenant.id).document_gating = DocumentGating(mode)
    order = make_order(session, tenant, supplier, [("10", "1", 10)])
    seller = make_member(session, tenant, Role.SUPPLIER_USER, supplier=supplier)
    buyer = make_member(session, tenant, Role.BUYER)
    client, buyer_client = PortalClient(app.test_client()), PortalClient(app.test_client())
    client.sign_in(seller.email, PASSWORD, seller.secret)
    buyer_client.sign_in(buyer.email, PASSWORD, buyer.secret)
    page = f"/orders/{order.id}"
    response = client.submit(f"/orders/{order.id}/accept-all", {"version": str(order.version)}, page=page)
    (line,) = order_services.order_lines(session, order)
    session.expire_all()
    if mode == "block":
        assert response.status_code == 422
        assert "Required documents are missing or expired: ISO 9001 (missing)." in response.text
        assert session.get(type(line), line.id).state == LineState.AWAITING_RESPONSE
        refused = buyer_client.submit(
            f"/suppliers/{supplier.id}/document-override",
            {"until": date.today().isoformat(), "reason": ""},
            page=f"/suppliers/{supplier.id}",
        )
        assert refused.status_code == 303
        allowed = buyer_client.submit(
            f"/suppliers/{supplier.id}/document-override",
            {"until": (date.today() + timedelta(days=7)).isoformat(), "reason": "audit booked next week"},
            page=f"/suppliers/{supplier.id}",
        )
        assert allowed.status_code == 302
        version = session.get(type(order), order.id).version
        again = client.submit(f"/orders/{order.id}/accept-all", {"version": str(version)}, page=page)
        assert again.status_code == 302
        assert "A buyer allowed confirmations for now." in client.get(page).text
    else:
        assert response.status_code == 302
        assert "Please upload them under Compliance." in client.get(page).text
        assert session.get(type(line), line.id).state == LineState.CONFIRMED


def test_expiry_job_sends_each_reminder_once_then_expires(app, session):
    from portal.documents.models import DocumentReminder
    from portal.notifications.models import Notification
    from portal.outbox import OutboxEvent

    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant, "Expiring Supplier")
    set_context(session, tenant_id=tenant.id)
    iso = DocumentType(tenant_id=tenant.id, code="ISO", name="ISO 9001")
    session.add(iso)
    session.flush()
    session.add(Requirement(tenant_id=tenant.id, document_type_id=iso.id, reminder_days=[60, 30, 7]))
    boss = make_member(session, tenant, Role.SUPPLIER_ADMIN, supplier=supplier)
    officer = make_member(session, tenant, Role.COMPLIANCE_OFFICER)
    start = date(2026, 1, 1)
    document = Document(
        tenant_id=tenant.id,
        supplier_id=supplier.id,
        document_type_id=iso.id,
        title="ISO cert",
        expiry_date=start + timedelta(days=45),
        status=DocumentStatus.APPROVED,
        storage_key="k1",
        original_name="c.pdf",
        size=1,
        content_type="application/pdf",
        sha256="0" * 64,
    )
    session.add(document)
    session.flush()
    with app.test_request_context():
        first = services.run_expiry(session, tenant_id=tenant.id, today=start)  # 45 days left: the 60-day reminder
        again = services.run_expiry(session, tenant_id=tenant.id, today=start)
        later = services.run_expiry(session, tenant_id=tenant.id, today=start + timedelta(days=20))  # 25 left: 30
        gone = services.run_expiry(session, tenant_id=tenant.id, today=start + timedelta(days=46))
    assert (first.reminders, again.reminders, later.reminders) == (1, 0, 1)
    leads = sorted(session.execute(select(DocumentReminder.lead_days)).scalars())
    assert leads == [30, 60]
    # Through the notifications: in the portal, and an e-mail each (queued in the outbox).
    notes = session.execute(select(Notification.user_id, Notification.title, Notification.url)).all()
    assert {user for user, _, _ in notes} == {boss.user.id, officer.user.id} and len(notes) == 4
    assert all(title == "ISO 9001 of Expiring Supplier expires on 2026-02-15" for _, title, _ in notes)
    assert {url for user, _, url in notes if user == boss.user.id} == {"/compliance"}
    queued = session.execute(select(OutboxEvent).where(OutboxEvent.topic == "email.notification")).scalars().all()
    assert len(queued) == 4
    assert gone.expired == 1 and session.get(Document, document.id).status == DocumentStatus.EXPIRED
    assert services.run_expiry(session, tenant_id=tenant.id, today=start + timedelta(days=47)).expired == 0


def test_expiry_cli_runs_for_every_tenant(committed_app, committed_db):
    from tests.conftest import tenant_session

    with tenant_session(committed_db, None) as s:
        tenant = make_tenant(s)
    result = committed_app.test_cli_runner().invoke(args=["documents-expiry", "--today", "2026-03-01"])
    assert result.exit_code == 0, result.output
    assert f"tenant {tenant.id}: 0 expired, 0 reminders" in result.output


def test_dashboard_and_audit_export(compliance_world):
    import hashlib
    import zipfile

    session, tenant, supplier, iso, seller, officer, _ = compliance_world
    make_supplier(session, tenant, "Second Supplier")
    upload(seller, iso.id, "iso.pdf", CLEAN_PDF)
    upload(seller, iso.id, "photo.png", PNG, title="Second copy")
    first = session.execute(select(Document).order_by(Document.id)).scalars().first()
    officer.submit(f"/documents/{first.id}", {"decision": "approve", "comment": ""})
    page = officer.get("/documents/dashboard").text
    assert "1 / 2" in page  # one of two suppliers holds a valid ISO 9001
    assert "waiting for review (0 for more than 5 days)" in page
    response = officer.get(f"/documents/export?supplier={supplier.id}")
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    names = set(archive.namelist())
    assert {"events.csv", "manifest.sha256", "verification.txt"} <= names
    manifest = archive.read("manifest.sha256").decode().splitlines()
    assert len(manifest) == 2
    for line in manifest:
        digest, name = line.split("  ")[:2]
        assert hashlib.sha256(archive.read(name)).hexdigest() == digest
    events = archive.read("events.csv").decode()
    assert "document.uploaded" in events and "document.approved" in events
    assert archive.read("verification.txt").decode().startswith(f"audit chain tenant:{tenant.id}: ok")
    assert officer.get("/documents/export?from=not-a-date").status_code == 400
    # The form asks for a supplier's code: the same export; an unknown code exports nothing and says so.
    assert 'name="supplier_code"' in page and "Second Supplier" not in page  # no list of every supplier
    by_code = officer.get(f"/documents/export?supplier_code={supplier.code}")
    assert by_code.status_code == 200 and zipfile.ZipFile(io.BytesIO(by_code.data)).read("manifest.sha256")
    exported = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "documents.exported")
    before = session.execute(exported).scalar_one()
    unknown = officer.get("/documents/export?supplier_code=NO-SUCH-CODE")
    assert unknown.status_code == 302 and unknown.headers["Location"].endswith("/documents/dashboard")
    assert "No supplier has the code “NO-SUCH-CODE”" in officer.get("/documents/dashboard").text
    assert session.execute(exported).scalar_one() == before


def test_the_review_queue_filters_by_a_supplier_search_or_a_linked_supplier(app, session):
    """The queue finds suppliers by any part of their code or name (no list of every supplier of the tenant); a
    link to one supplier's documents names it, with a way back to all. Another tenant's supplier finds nothing."""
    tenant = make_tenant(session)
    acme, bolt = make_supplier(session, tenant, "Acme Fasteners"), make_supplier(session, tenant, "Bolt Works")
    foreign = make_supplier(session, make_tenant(session), "Acme Abroad")
    set_context(session, tenant_id=tenant.id)
    kind = DocumentType(tenant_id=tenant.id, code="ISO", name="ISO 9001")
    session.add(kind)
    session.flush()
    for supplier in (acme, bolt):
        stored = {"original_name": "c.pdf", "size": 1, "content_type": "application/pdf", "sha256": "0" * 64}
        title, key = f"Certificate of {supplier.name}", f"key-{supplier.id}"
        session.add(Document(tenant_id=tenant.id, supplier_id=supplier.id, document_type_id=kind.id, title=title,
                             storage_key=key, **stored))  # fmt: skip
    session.flush()
    officer = make_member(session, tenant, Role.COMPLIANCE_OFFICER)
    client = PortalClient(app.test_client())
    client.sign_in(officer.email, PASSWORD, officer.secret)

    searched = client.get("/documents/review?status=all&supplier_q=FASTEN").text
    assert "Certificate of Acme Fasteners" in searched and "Bolt Works" not in searched
    assert 'name="supplier_q" value="FASTEN"' in searched
    linked = client.get(f"/documents/review?status=all&supplier={bolt.id}").text
    assert "Supplier: Bolt Works" in linked and "Certificate of Bolt Works" in linked
    assert "Acme Fasteners" not in linked
    assert 'href="/documents/review?status=all" aria-label="Show every supplier"' in linked
    every = client.get("/documents/review?status=all").text
    assert "Certificate of Acme Fasteners" in every and "Certificate of Bolt Works" in every
    elsewhere = client.get(f"/documents/review?status=all&supplier={foreign.id}").text
    assert "Acme Abroad" not in elsewhere and "Certificate of" not in elsewhere
