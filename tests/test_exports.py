"""Exports made by a worker with progress: asked for through the real forms, followed, downloaded;
each person sees only their own; a failing export says why; old ones are pruned."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from portal.auth.permissions import Role
from portal.db import utcnow
from portal.exports import services
from portal.exports.models import Export, ExportState
from portal.suppliers.models import Supplier
from portal.tenancy.models import Tenant
from tests.conftest import drain, tenant_session
from tests.factories import PASSWORD, make_member
from tests.helpers import PortalClient
from tests.test_scorecards import build


def signed_in(app, session, tenant_id: int, role: Role, supplier_id: int | None = None) -> tuple[PortalClient, int]:  # type: ignore[no-untyped-def]
    tenant = session.get(Tenant, tenant_id)
    supplier = session.get(Supplier, supplier_id) if supplier_id else None
    person = make_member(session, tenant, role, supplier=supplier)
    client = PortalClient(app.test_client())
    client.sign_in(person.email, PASSWORD, person.secret)
    return client, person.user.id


def export_id_of(response) -> int:  # type: ignore[no-untyped-def]
    assert response.status_code == 302, response.status_code
    found = re.search(r"/exports/(\d+)$", response.headers["Location"])
    assert found, response.headers["Location"]
    return int(found.group(1))


def test_the_ranking_exported_in_the_background_matches_the_direct_csv(app, db, session):
    ids = build(session)
    client, _ = signed_in(app, session, ids["tenant_id"], Role.BUYER)
    query = {"kind": "scorecards.ranking_csv", "period": "month", "at": "2026-01-20", "sort": "otif"}
    export_id = export_id_of(client.submit("/exports", query, page="/scorecards?period=month&at=2026-01-20"))

    waiting = client.get(f"/exports/{export_id}")
    assert waiting.status_code == 200 and 'data-state="queued"' in waiting.text
    assert 'http-equiv="refresh"' in waiting.text  # the page follows the progress by itself
    assert client.get(f"/exports/{export_id}/download").status_code == 404  # not ready yet

    with app.app_context():
        assert "export.requested" in drain(db, ids["tenant_id"])
    ready = client.get(f"/exports/{export_id}")
    assert 'data-state="done"' in ready.text and "100 %" in ready.text and 'http-equiv="refresh"' not in ready.text
    download = client.get(f"/exports/{export_id}/download")
    direct = client.get("/scorecards.csv?period=month&at=2026-01-20&sort=otif")
    assert download.status_code == 200 and download.mimetype == "text/csv"
    assert download.data == direct.data and b"Acme" in download.data
    assert "scorecards-2026-01-01.csv" in download.headers["Content-Disposition"]
    assert "Supplier ranking, January 2026" in client.get("/exports").text  # the period as its pages name it


def test_a_supplier_exports_only_its_own_card_and_nobody_else_sees_it(app, db, session):
    ids = build(session)
    supplier_client, _ = signed_in(app, session, ids["tenant_id"], Role.SUPPLIER_USER, ids["acme"])
    # The form names another supplier: a supplier's export is always its own card.
    data = {"kind": "scorecards.card_pdf", "period": "month", "at": "2026-01-20", "supplier_id": str(ids["quiet"])}
    export_id = export_id_of(supplier_client.submit("/exports", data, page="/scorecard?period=month&at=2026-01-20"))
    with app.app_context():
        drain(db, ids["tenant_id"])
    pdf = supplier_client.get(f"/exports/{export_id}/download")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    assert "scorecard-ACME-2026-01-01.pdf" in pdf.headers["Content-Disposition"]

    colleague, _ = signed_in(app, session, ids["tenant_id"], Role.BUYER)
    for url in (f"/exports/{export_id}", f"/exports/{export_id}/download"):
        assert colleague.get(url).status_code == 404  # another person's export
    assert "ACME" not in colleague.get("/exports").text


def test_a_buyer_cannot_export_another_tenants_supplier(app, session):
    ids = build(session)
    other = build(session)
    client, _ = signed_in(app, session, ids["tenant_id"], Role.BUYER)
    data = {"kind": "scorecards.card_csv", "period": "month", "supplier_id": str(other["acme"])}
    assert client.submit("/exports", data, page="/exports").status_code == 404
    bad = {"kind": "scorecards.card_csv", "period": "month", "at": "not-a-date", "supplier_id": str(ids["acme"])}
    assert client.submit("/exports", bad, page="/exports").status_code == 400
    with tenant_session(app.extensions["portal.db"], ids["tenant_id"]) as s:
        assert s.execute(select(Export)).first() is None  # nothing was asked for


def test_progress_is_visible_while_an_export_runs_and_a_failure_says_why(app, db, session):
    ids = build(session)
    _, user_id = signed_in(app, session, ids["tenant_id"], Role.BUYER)
    seen: list[tuple[int, str]] = []

    def slow(s, export, progress):  # type: ignore[no-untyped-def]
        progress(1, 4, "first quarter")
        # What another connection (the page) sees, mid-export:
        with tenant_session(db, export.tenant_id) as other:
            row = other.execute(select(Export.progress, Export.step).where(Export.id == export.id)).one()
            seen.append((row.progress, row.step))
        raise RuntimeError("the disk is full")

    services.EXPORTERS["test.slow"] = services.Exporter("test.slow", slow)
    try:
        with tenant_session(db, ids["tenant_id"]) as s:
            export = services.request_export(s, tenant_id=ids["tenant_id"], user_id=user_id, kind="test.slow",
                                             title="Slow", params={})  # fmt: skip
            export_id = export.id
        with app.app_context():
            for _ in range(3):  # every attempt fails; the back-off is skipped by making the event due again
                drain(db, ids["tenant_id"])
                with tenant_session(db, ids["tenant_id"]) as s:
                    from portal.outbox import OutboxEvent

                    s.execute(update(OutboxEvent).values(available_at=utcnow()))
    finally:
        del services.EXPORTERS["test.slow"]
    assert seen and seen[0] == (25, "first quarter")
    with tenant_session(db, ids["tenant_id"]) as s:
        failed = s.get(Export, export_id)
        assert failed.state == ExportState.FAILED and "the disk is full" in failed.error


def test_unknown_kinds_are_refused_and_old_exports_pruned(app, db, session):
    ids = build(session)
    _, user_id = signed_in(app, session, ids["tenant_id"], Role.BUYER)
    with tenant_session(db, ids["tenant_id"]) as s:
        with pytest.raises(ValueError, match="unknown export"):
            services.request_export(s, tenant_id=ids["tenant_id"], user_id=user_id, kind="nope", title="x", params={})
        old = Export(tenant_id=ids["tenant_id"], user_id=user_id, kind="scorecards.ranking_csv", title="Old",
                     params={}, created_at=utcnow() - timedelta(days=8))  # fmt: skip
        new = Export(tenant_id=ids["tenant_id"], user_id=user_id, kind="scorecards.ranking_csv", title="New", params={})
        s.add_all([old, new])
    assert services.prune(db) >= 1
    with tenant_session(db, ids["tenant_id"]) as s:
        assert [e.title for e in s.execute(select(Export)).scalars()] == ["New"]
