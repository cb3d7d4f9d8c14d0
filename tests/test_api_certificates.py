"""Certificates through the supplier API: a system reads what the customer requires, uploads certificates for
review under the compliance page's rules, follows their review, and is refused cleanly (nothing stored)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from portal.audit import AuditEvent
from portal.auth.permissions import Role
from portal.auth.services import Actor
from portal.db import set_context
from portal.documents import services as documents
from portal.documents.models import Document, DocumentType
from portal.outbox import OutboxEvent
from portal.tenancy.models import DocumentGating, Tenant
from tests.factories import (
    Person,
    issue_api_key,
    make_member,
    make_order,
    make_supplier,
    make_tenant,
    make_tolerance,
    require_document,
)
from tests.pdfs import CLEAN_PDF, JAVASCRIPT_PDF, PNG
from tests.test_orders_views import count_queries


@dataclass
class Desk:
    """A supplier account of a tenant that requires ISO 9001, and its system's key."""

    session: Any
    tenant: Tenant
    iso: DocumentType
    seller: Person
    key: str
    http: Any
    root: Path

    def headers(self, key: str | None = None, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}", **extra}

    def get(self, path: str, key: str | None = None) -> Any:
        return self.http.get(f"/api/v1{path}", headers=self.headers(key))

    def upload(
        self, data: bytes = CLEAN_PDF, name: str = "iso.pdf", key: str | None = None, headers: dict | None = None,
        **fields: str,
    ) -> Any:  # fmt: skip
        form: dict[str, Any] = {"document_type": "ISO9001", "title": "ISO 9001 certificate", **fields}
        form["file"] = (io.BytesIO(data), name)
        return self.http.post(
            "/api/v1/documents", data=form, content_type="multipart/form-data",
            headers={**self.headers(key), **(headers or {})},
        )  # fmt: skip

    def documents(self) -> list[Document]:
        set_context(self.session, tenant_id=self.tenant.id)
        self.session.expire_all()
        return list(self.session.execute(select(Document).order_by(Document.id)).scalars())

    def stored_files(self) -> list[Path]:
        return [p for p in self.root.rglob("*") if p.is_file()] if self.root.exists() else []


@pytest.fixture
def desk(app, session, tmp_path) -> Desk:
    app.config["DOCUMENT_ROOT"] = str(tmp_path / "docs")
    tenant = make_tenant(session, "Northwind Certificates")
    supplier = make_supplier(session, tenant, "Acme Certificates")
    iso = require_document(session, tenant, validity_months=12)
    seller = make_member(session, tenant, Role.SUPPLIER_USER, supplier=supplier)
    key = issue_api_key(session, seller, name="QMS link")
    set_context(session, tenant_id=None)
    return Desk(session, tenant, iso, seller, key, app.test_client(), tmp_path / "docs")


def _review(session, tenant_id: int, document_id: int, decision: str, comment: str = "") -> None:  # type: ignore[no-untyped-def]
    set_context(session, tenant_id=tenant_id)
    document = session.get(Document, document_id)
    documents.review(
        session, document=document, decision=decision, comment=comment, valid_until=None,
        actor=Actor(None, "compliance", ""),
    )  # fmt: skip
    set_context(session, tenant_id=None)


def test_a_supplier_system_uploads_a_certificate_and_follows_its_review(desk):
    status = desk.get("/compliance")
    assert status.status_code == 200
    assert status.json["document_types"] == [{"code": "ISO9001", "name": "ISO 9001"}]
    [requirement] = status.json["requirements"]
    assert requirement["state"] == "missing" and requirement["document"] is None
    assert status.json["confirmations"] == {"gating": "off", "blocked": False, "message": None}

    issued = (date.today() - timedelta(days=10)).isoformat()
    sent = desk.upload(issuer="TÜV", certificate_number="Q-1", issue_date=issued, document_type="iso9001")
    assert sent.status_code == 201, sent.json
    first = sent.json["document"]
    assert first["status"] == "pending_review" and first["issue_date"] == issued and first["issuer"] == "TÜV"
    assert first["document_type"]["code"] == "ISO9001"  # the code is matched in any case
    assert first["file"]["name"] == "iso.pdf" and first["file"]["size"] == len(CLEAN_PDF)
    assert sent.headers["Location"] == first["url"] == f"/api/v1/documents/{first['id']}"
    assert desk.get(f"/documents/{first['id']}/file").data == CLEAN_PDF
    assert desk.get("/compliance").json["requirements"][0]["state"] == "pending"

    # The audit trail names the person and the key; the compliance team hears of it through the outbox.
    set_context(desk.session, tenant_id=desk.tenant.id)
    audit = desk.session.execute(select(AuditEvent).where(AuditEvent.action == "document.uploaded")).scalar_one()
    assert audit.object_id == str(first["id"]) and "QMS link" in audit.actor
    uploaded = desk.session.execute(select(OutboxEvent).where(OutboxEvent.topic == "document.uploaded")).scalar_one()
    assert uploaded.payload == {"document_id": first["id"]}

    _review(desk.session, desk.tenant.id, first["id"], "reject", "The scope is missing page 2.")
    reviewed = desk.get(f"/documents/{first['id']}").json
    assert reviewed["document"]["status"] == "rejected"
    assert [(r["decision"], r["comment"]) for r in reviewed["reviews"]] == [("reject", "The scope is missing page 2.")]
    assert desk.get("/compliance").json["requirements"][0]["detail"] == "reason: The scope is missing page 2."

    # The corrected certificate replaces the rejected one.
    again = desk.upload(replaces=str(first["id"]), issue_date=issued)
    assert again.status_code == 201 and again.json["document"]["replaces"] == first["id"]
    _review(desk.session, desk.tenant.id, again.json["document"]["id"], "approve")
    met = desk.get("/compliance").json["requirements"][0]
    assert met["state"] == "approved" and met["document"]["id"] == again.json["document"]["id"]
    listed = desk.get("/documents").json
    assert [d["id"] for d in listed["documents"]] == [again.json["document"]["id"], first["id"]]
    assert listed["total"] == 2 and listed["pages"] == 1
    assert [d["status"] for d in listed["documents"]] == ["approved", "superseded"]


BAD_UPLOADS = [
    # (what is sent, status, field in error.fields (None: refused as a whole), words of the message)
    ({"title": ""}, 422, "title", "title is required"),
    ({"title": "x" * 201}, 422, "title", "Keep title to 200 characters"),
    ({"title": "bad\x00title"}, 400, None, "NUL character"),
    ({"document_type": "HACCP"}, 422, "document_type", "Unknown document type 'HACCP'; the types are: ISO9001"),
    ({"issue_date": "01/12/2026"}, 422, "issue_date", "issue_date must be a date, YYYY-MM-DD"),
    ({"expiry_date": ""}, 422, "expiry_date", "leave the field out"),
    ({"issue_date": "2026-12-01", "expiry_date": "2026-11-01"}, 422, "expiry_date", "must be after the issue date"),
    ({"replaces": "abc"}, 422, "replaces", "the id of one of your documents"),
    ({"colour": "blue"}, 400, None, "Unknown field 'colour'"),
    ({"data": JAVASCRIPT_PDF}, 422, "file", "active content"),
    ({"data": CLEAN_PDF, "name": "iso.png"}, 422, "file", "does not match its extension (.png)"),
    ({"data": b""}, 422, "file", "The file is empty."),
    ({"data": b"%PDF-1.7\n" + b"0" * (10 * 1024 * 1024)}, 413, "file", "larger than 10 MB"),
]


@pytest.mark.parametrize(
    ("sent", "status", "field", "words"), BAD_UPLOADS, ids=[str(i) for i in range(len(BAD_UPLOADS))]
)
def test_bad_uploads_are_refused_with_the_field_named_and_nothing_stored(desk, sent, status, field, words):
    sent = dict(sent)
    response = desk.upload(sent.pop("data", CLEAN_PDF), sent.pop("name", "iso.pdf"), **sent)
    assert response.status_code == status and response.is_json
    error = response.json["error"]
    if field is None:
        assert words in error["message"]
    else:
        assert any(words in problem for problem in error["fields"][field]), error
    assert desk.documents() == [] and desk.stored_files() == []


def test_what_is_not_an_upload_at_all_is_refused(desk):
    as_json = desk.http.post("/api/v1/documents", json={"title": "x"}, headers=desk.headers())
    assert as_json.status_code == 400 and "multipart/form-data" in as_json.json["error"]["message"]
    no_file = desk.http.post(
        "/api/v1/documents", data={"document_type": "ISO9001", "title": "t"}, content_type="multipart/form-data",
        headers=desk.headers(),
    )  # fmt: skip
    assert no_file.status_code == 400 and "'file'" in no_file.json["error"]["message"]
    twice = desk.http.post(
        "/api/v1/documents", content_type="multipart/form-data", headers=desk.headers(),
        data={"document_type": "ISO9001", "title": ["a", "b"], "file": (io.BytesIO(CLEAN_PDF), "iso.pdf")},
    )  # fmt: skip
    assert twice.status_code == 400 and "Send title once" in twice.json["error"]["message"]
    assert desk.documents() == []


def test_another_accounts_documents_are_out_of_reach(app, desk):
    session = desk.session
    neighbour_supplier = make_supplier(session, desk.tenant, "Neighbour")
    neighbour = make_member(session, desk.tenant, Role.SUPPLIER_USER, supplier=neighbour_supplier)
    neighbour_key = issue_api_key(session, neighbour)
    other_tenant = make_tenant(session, "Elsewhere")
    require_document(session, other_tenant)
    stranger = make_member(session, other_tenant, Role.SUPPLIER_USER, supplier=make_supplier(session, other_tenant))
    stranger_key = issue_api_key(session, stranger)
    set_context(session, tenant_id=None)
    mine = desk.upload().json["document"]["id"]
    for key in (neighbour_key, stranger_key):
        assert desk.get(f"/documents/{mine}", key).status_code == 404
        assert desk.get(f"/documents/{mine}/file", key).status_code == 404
        assert desk.get("/documents", key).json["documents"] == []
    # Replacing a document is for the account's own ones: another's id is refused and nothing is stored.
    refused = desk.upload(key=neighbour_key, replaces=str(mine))
    assert refused.status_code == 422 and refused.json["error"]["fields"]["replaces"] == [
        "The document to replace is not yours."
    ]
    # The other tenant's types are not this key's: the stranger's "ISO9001" is another tenant's row.
    assert [d.supplier_id for d in desk.documents()] == [desk.seller.membership.supplier_id]


def test_a_retried_upload_is_stored_once(desk):
    headers = {"Idempotency-Key": "upload-7f3a"}
    first = desk.upload(PNG, "scan.png", headers=headers)
    retry = desk.upload(PNG, "scan.png", headers=headers)
    assert first.status_code == retry.status_code == 201
    assert retry.headers.get("Idempotent-Replayed") == "true" and retry.json == first.json
    assert len(desk.documents()) == 1 and len(desk.stored_files()) == 1
    other = desk.upload(CLEAN_PDF, "scan.pdf", headers=headers)
    assert other.status_code == 422 and "used for another request" in other.json["error"]["message"]
    assert len(desk.documents()) == 1


def test_compliance_says_when_missing_documents_block_confirmations(desk):
    set_context(desk.session, tenant_id=desk.tenant.id)
    desk.session.get(Tenant, desk.tenant.id).document_gating = DocumentGating.BLOCK
    desk.session.flush()
    set_context(desk.session, tenant_id=None)
    blocked = desk.get("/compliance").json["confirmations"]
    assert blocked["gating"] == "block" and blocked["blocked"] is True
    assert blocked["message"] == "Required documents are missing or expired: ISO 9001 (missing)."
    # The API's answers are refused with the same words until a certificate is approved.
    make_tolerance(desk.session, desk.tenant)
    order = make_order(desk.session, desk.tenant, _supplier(desk), [("5", "1.00", 7)])
    set_context(desk.session, tenant_id=None)
    refused = desk.http.post(
        f"/api/v1/orders/{order.id}/accept-all", json={"version": order.version}, headers=desk.headers()
    )
    assert refused.status_code == 422 and "ISO 9001 (missing)" in refused.json["error"]["message"]
    uploaded = desk.upload().json["document"]["id"]
    _review(desk.session, desk.tenant.id, uploaded, "approve")
    assert desk.get("/compliance").json["confirmations"] == {"gating": "block", "blocked": False, "message": None}
    accepted = desk.http.post(
        f"/api/v1/orders/{order.id}/accept-all", json={"version": order.version}, headers=desk.headers()
    )
    assert accepted.status_code == 200


def _supplier(desk: Desk) -> Any:
    from portal.suppliers.models import Supplier

    set_context(desk.session, tenant_id=desk.tenant.id)
    return desk.session.get(Supplier, desk.seller.membership.supplier_id)


def test_the_document_list_reads_a_fixed_number_of_statements(app, desk):
    engine = app.extensions["portal.db"].engine

    def statements() -> int:
        with count_queries(engine) as counted:
            assert desk.get("/documents").status_code == 200
        return len(counted)

    desk.upload()
    one = statements()
    for _ in range(4):
        desk.upload()
    assert statements() == one
    assert desk.get("/documents").json["total"] == 5
