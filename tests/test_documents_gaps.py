"""Compliance gaps: who lacks which required document today, the same rule as each supplier's own page."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from itertools import count

import pytest
from sqlalchemy import select

from portal.auth.permissions import Role
from portal.db import set_context
from portal.documents import services
from portal.documents.models import Document, DocumentReview, DocumentStatus, DocumentType, Requirement
from portal.documents.models import RequirementScope as Scope
from tests.factories import make_member, make_supplier, make_tenant
from tests.test_documents import compliance_world  # noqa: F401  (a fixture)

TODAY = date.today()
_keys = count(1)


def _document(session, tenant, supplier, doc_type, status, expiry=None, days_ago=10):  # type: ignore[no-untyped-def]
    from portal.db import utcnow

    document = Document(
        tenant_id=tenant.id, supplier_id=supplier.id, document_type_id=doc_type.id, title=f"{doc_type.name} copy",
        expiry_date=expiry, status=status, storage_key=f"gap-{next(_keys)}", original_name="c.pdf", size=1,
        content_type="application/pdf", sha256="0" * 64, created_at=utcnow() - timedelta(days=days_ago),
    )  # fmt: skip
    session.add(document)
    session.flush()
    return document


@pytest.fixture
def gap_world(compliance_world):  # type: ignore[no-untyped-def]  # noqa: F811
    """Five suppliers against ISO 9001 (everyone) and insurance (category "Freight" only), one in each state."""
    session, tenant, valid, iso, _, officer, _ = compliance_world
    insurance = DocumentType(tenant_id=tenant.id, code="INS", name="Insurance")
    session.add(insurance)
    session.flush()
    session.add(Requirement(tenant_id=tenant.id, document_type_id=insurance.id, scope=Scope.CATEGORY,
                            category="Freight"))  # fmt: skip
    names = ("Bravo Pending", "Charlie Rejected", "Delta Expired", "Echo Nothing")
    pending, rejected, expired, nothing = (make_supplier(session, tenant, name) for name in names)
    nothing.category = "Freight"
    _document(session, tenant, valid, iso, DocumentStatus.APPROVED, TODAY + timedelta(days=200))
    _document(session, tenant, pending, iso, DocumentStatus.PENDING_REVIEW)
    refused = _document(session, tenant, rejected, iso, DocumentStatus.REJECTED)
    session.add_all([
        DocumentReview(tenant_id=tenant.id, document_id=refused.id, decision="reject", comment="Wrong site"),
        DocumentReview(tenant_id=tenant.id, document_id=refused.id, decision="reject", comment="Scan unreadable."),
    ])  # fmt: skip
    lapsed = _document(session, tenant, expired, iso, DocumentStatus.APPROVED, TODAY - timedelta(days=3))
    # The daily job has marked it expired: it still reads "expired on ...", not as never uploaded.
    assert services.mark_expired(session, tenant_id=tenant.id, today=TODAY) == 1
    session.flush()
    people = {"valid": valid, "pending": pending, "rejected": rejected, "expired": expired, "nothing": nothing}
    return session, tenant, people, iso, insurance, officer, lapsed


def test_every_gap_of_the_tenant_with_its_state_and_why(gap_world):  # type: ignore[no-untyped-def]
    session, tenant, people, _, insurance, _, lapsed = gap_world
    found = services.gaps(session, tenant_id=tenant.id, today=TODAY)
    assert [(gap.supplier_name, gap.document_type, gap.state, gap.detail) for gap in found] == [
        ("Bravo Pending", "ISO 9001", "pending", "waiting for review"),
        ("Charlie Rejected", "ISO 9001", "rejected", "reason: Scan unreadable."),  # the latest review's reason
        ("Delta Expired", "ISO 9001", "expired", f"expired on {lapsed.expiry_date}"),
        ("Echo Nothing", "Insurance", "missing", "nothing uploaded"),  # only Echo is in "Freight"
        ("Echo Nothing", "ISO 9001", "missing", "nothing uploaded"),
    ]
    assert found[2].document_id == lapsed.id and found[3].document_id is None
    # The supplier's own page says the same (it said "upload it" for an expired document once the job had run).
    own = services.compliance(session, tenant_id=tenant.id, supplier=people["expired"], today=TODAY)
    assert [(s.state, s.detail) for s in own] == [("expired", f"expired on {lapsed.expiry_date}")]
    # The dashboard's count of fully compliant suppliers agrees: only the valid one.
    assert services.dashboard(session, tenant_id=tenant.id, today=TODAY).fully_compliant == 1
    # Narrowed by type, state and supplier.
    assert [g.supplier_name for g in services.gaps(session, tenant_id=tenant.id, today=TODAY,
                                                   document_type_id=insurance.id)] == ["Echo Nothing"]  # fmt: skip
    assert [g.supplier_name for g in services.gaps(session, tenant_id=tenant.id, today=TODAY,
                                                   state="missing")] == ["Echo Nothing", "Echo Nothing"]  # fmt: skip
    only = services.gaps(session, tenant_id=tenant.id, today=TODAY, supplier_ids=[people["pending"].id])
    assert [g.supplier_name for g in only] == ["Bravo Pending"]
    # Another tenant's rows never show, even asked for by id.
    other = make_tenant(session, "Elsewhere")
    stranger = make_supplier(session, other, "Stranger")
    set_context(session, tenant_id=tenant.id)
    assert services.gaps(session, tenant_id=tenant.id, today=TODAY, supplier_ids=[stranger.id]) == []


def test_the_gap_list_page_its_filters_and_its_csv(gap_world):  # type: ignore[no-untyped-def]
    _, _, people, iso, insurance, officer, lapsed = gap_world
    page = officer.get("/documents/gaps")
    assert page.status_code == 200
    text = page.text
    assert "5 gaps at 4 suppliers." in text
    assert "reason: Scan unreadable." in text and f'href="/documents/{lapsed.id}"' in text
    assert f'href="/suppliers/{people["nothing"].id}"' in text and "Docs Supplier" not in text
    narrowed = officer.get(f"/documents/gaps?type={insurance.id}&state=missing").text
    assert "1 gap at 1 supplier." in narrowed and "Bravo Pending" not in narrowed
    searched = officer.get("/documents/gaps?supplier_q=charlie").text
    assert "Charlie Rejected" in searched and "Bravo Pending" not in searched
    # A state that does not exist is ignored rather than hiding everything.
    assert "5 gaps at 4 suppliers." in officer.get("/documents/gaps?state=bogus").text
    download = officer.get(f"/documents/gaps.csv?type={iso.id}")
    assert download.status_code == 200 and download.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(download.data.decode())))
    assert rows[0] == ["supplier_code", "supplier", "document_type", "state", "detail"]
    assert [(r[1], r[3]) for r in rows[1:]] == [("Bravo Pending", "waiting for review"),
                                               ("Charlie Rejected", "rejected"), ("Delta Expired", "expired"),
                                               ("Echo Nothing", "missing")]  # fmt: skip
    # The dashboard leads there: the compliant tile, and each requirement's count of suppliers without it.
    dashboard = officer.get("/documents/dashboard").text
    assert 'href="/documents/gaps"' in dashboard
    assert f'<a href="/documents/gaps?type={iso.id}">4</a>' in dashboard
    assert f'<a href="/documents/gaps?type={insurance.id}">1</a>' in dashboard


def test_a_tenant_without_gaps_says_so(compliance_world):  # type: ignore[no-untyped-def]  # noqa: F811
    session, tenant, supplier, iso, _, officer, _ = compliance_world
    _document(session, tenant, supplier, iso, DocumentStatus.APPROVED, None)  # no expiry: valid for good
    assert services.gaps(session, tenant_id=tenant.id, today=TODAY) == []
    assert "every supplier holds what is required of it" in officer.get("/documents/gaps").text


def test_a_long_gap_list_comes_in_pages_of_fifty(compliance_world):  # type: ignore[no-untyped-def]  # noqa: F811
    session, tenant, _, _, _, officer, _ = compliance_world
    for n in range(55):
        make_supplier(session, tenant, f"Many {n:02d}")
    first = officer.get("/documents/gaps").text
    assert "56 gaps at 56 suppliers." in first and "Page 1 of 2" in first
    assert first.count('<span class="state missing">') == 50
    second = officer.get("/documents/gaps?page=2").text
    assert "Page 2 of 2" in second and second.count('<span class="state missing">') == 6


def test_the_suppliers_listed_are_asked_for_their_documents_once_a_day(gap_world):  # type: ignore[no-untyped-def]
    """One notification to each administrator of each supplier listed, naming every document and why; nothing
    for a document waiting for review (the reviewer has it); a supplier without an administrator is named so
    that someone invites one; a second click the same day asks nobody twice. Audited per supplier."""
    from portal.audit import AuditEvent
    from portal.notifications.models import Notification
    from portal.outbox import OutboxEvent

    session, tenant, people, _, _, officer, lapsed = gap_world
    admins = {key: make_member(session, tenant, Role.SUPPLIER_ADMIN, supplier=people[key])
              for key in ("pending", "rejected", "expired")}  # fmt: skip
    second_admin = make_member(session, tenant, Role.SUPPLIER_ADMIN, supplier=people["rejected"])
    make_member(session, tenant, Role.SUPPLIER_USER, supplier=people["nothing"])  # a user, not an administrator
    asked = officer.submit("/documents/gaps/request", page="/documents/gaps")
    assert asked.status_code == 303 and asked.headers["Location"].endswith("/documents/gaps")
    page = officer.get("/documents/gaps").text
    assert "Asked 2 suppliers (3 people) for their documents." in page
    assert "Nobody to ask at Echo Nothing: invite an administrator" in page
    notes = session.execute(select(Notification).where(Notification.topic == "document.requested")).scalars().all()
    by_user = {note.user_id: note for note in notes}
    assert set(by_user) == {admins["rejected"].user.id, second_admin.user.id, admins["expired"].user.id}
    rejected_note = by_user[admins["rejected"].user.id]
    assert rejected_note.title == "1 document is required of Charlie Rejected" and rejected_note.url == "/compliance"
    # One full stop after the reviewer's own.
    assert rejected_note.body == "ISO 9001: rejected, reason: Scan unreadable. Upload it under Compliance."
    assert by_user[admins["expired"].user.id].body.startswith(f"ISO 9001: expired on {lapsed.expiry_date}.")
    emails = session.execute(select(OutboxEvent).where(OutboxEvent.topic == "email.notification")).scalars().all()
    assert {e.payload["notification_id"] for e in emails} >= {note.id for note in notes}
    audited = session.execute(
        select(AuditEvent.object_id).where(AuditEvent.action == "documents.requested")
    ).scalars().all()  # fmt: skip
    assert sorted(audited) == sorted([str(people["rejected"].id), str(people["expired"].id)])
    # The same day again: nobody is asked twice.
    again = officer.submit("/documents/gaps/request", page="/documents/gaps")
    assert again.status_code == 303
    page = officer.get("/documents/gaps").text
    assert "Already asked today, not asked again: Charlie Rejected, Delta Expired." in page
    count = select(Notification.id).where(Notification.topic == "document.requested")
    assert len(session.execute(count).all()) == 3
    # Narrowed to waiting documents only: nothing to ask for.
    officer.submit("/documents/gaps/request?state=pending", page="/documents/gaps?state=pending")
    assert "Nothing to ask for: the documents listed wait for review." in officer.get("/documents/gaps").text
    # Without a valid form nothing is sent.
    refused = officer.post("/documents/gaps/request", {"csrf_token": "forged"})
    assert refused.status_code in (303, 400) and len(session.execute(count).all()) == 3


def test_a_long_list_of_suppliers_in_a_message_is_cut_short(compliance_world):  # type: ignore[no-untyped-def]  # noqa: F811
    """Twelve suppliers without an administrator: ten are named, then how many more."""
    session, tenant, _, _, _, officer, _ = compliance_world
    for n in range(11):
        make_supplier(session, tenant, f"Quiet {n:02d}")
    officer.submit("/documents/gaps/request", page="/documents/gaps")
    page = officer.get("/documents/gaps").text
    assert "Nobody to ask at Docs Supplier, Quiet 00, Quiet 01" in page and "Quiet 08 and 2 more: invite" in page


def test_a_supplier_asked_for_two_documents_gets_one_notice_naming_both(compliance_world):  # type: ignore[no-untyped-def]  # noqa: F811
    from portal.notifications.models import Notification

    session, tenant, supplier, _, _, officer, _ = compliance_world
    insurance = DocumentType(tenant_id=tenant.id, code="INS", name="Insurance")
    session.add(insurance)
    session.flush()
    session.add(Requirement(tenant_id=tenant.id, document_type_id=insurance.id))
    admin = make_member(session, tenant, Role.SUPPLIER_ADMIN, supplier=supplier)
    officer.submit("/documents/gaps/request", page="/documents/gaps")
    (note,) = session.execute(select(Notification).where(Notification.user_id == admin.user.id)).scalars().all()
    assert note.title == "2 documents are required of Docs Supplier"
    assert note.body == "Insurance: nothing uploaded. ISO 9001: nothing uploaded. Upload them under Compliance."


def test_the_supplier_list_counts_what_each_supplier_lacks(gap_world, app):  # type: ignore[no-untyped-def]
    from tests.factories import PASSWORD
    from tests.helpers import PortalClient

    session, tenant, people, _, _, officer, _ = gap_world
    rows = officer.get("/suppliers").text
    echo, bravo = people["nothing"].id, people["pending"].id
    assert f'<a href="/documents/gaps?supplier={echo}">2</a>' in rows  # ISO 9001 and insurance
    assert f'<a href="/documents/gaps?supplier={bravo}">1</a>' in rows
    linked = officer.get(f"/documents/gaps?supplier={echo}").text
    assert "2 gaps at 1 supplier." in linked and "Echo Nothing" in linked
    # A buyer sees the figures, without links to a list its role may not open.
    buyer = make_member(session, tenant, Role.BUYER)
    client = PortalClient(app.test_client())
    client.sign_in(buyer.email, PASSWORD, buyer.secret)
    seen = client.get("/suppliers").text
    assert "/documents/gaps" not in seen and "<td>2</td>" in seen and "<td>none</td>" in seen
