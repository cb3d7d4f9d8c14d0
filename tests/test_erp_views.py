"""The administrators' ERP pages, the failed-jobs page, sync status on the order page,
and a supplier's confirmation while the queue (Redis) is unreachable."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from portal import outbox
from portal.audit import AuditEvent
from portal.auth.permissions import Role
from portal.db import set_context, utcnow
from portal.erp import services as erp_services
from portal.erp.models import ErpConnection, ErpKind, ErpLineSync, SyncStatus
from portal.orders import services as svc
from portal.outbox import OutboxEvent
from tests.factories import PASSWORD, make_member, make_order, make_supplier, make_tenant
from tests.helpers import PortalClient, csrf_from


def _admin(app, session):  # type: ignore[no-untyped-def]
    tenant = make_tenant(session, "Northwind ERP")
    admin = make_member(session, tenant, Role.TENANT_ADMIN)
    client = PortalClient(app.test_client())
    client.sign_in(admin.email, PASSWORD, admin.secret)
    return tenant, client


def test_settings_refuse_bad_input_and_store_the_secret_encrypted(app, session):
    tenant, client = _admin(app, session)
    form = {"kind": "tryton", "url": "not a url", "database": "erp", "login": "admin", "secret": "s3cret-pass"}
    bad = client.submit("/settings/erp", form)
    assert bad.status_code == 422 and "Enter a full address." in bad.text
    set_context(session, tenant_id=tenant.id)
    assert session.execute(select(ErpConnection)).first() is None

    missing = client.submit("/settings/erp", {**form, "url": "http://erp.internal:8000", "secret": ""})
    assert missing.status_code == 422 and "Enter the password or API key" in missing.text

    ok = client.submit("/settings/erp", {**form, "url": "http://erp.internal:8000/", "active": "y"})
    assert ok.status_code == 302
    connection = session.execute(select(ErpConnection)).scalar_one()
    assert connection.url == "http://erp.internal:8000" and connection.kind == ErpKind.TRYTON
    assert "s3cret-pass" not in connection.secret_encrypted and connection.secret_encrypted
    page = client.get("/settings/erp").text
    assert "s3cret-pass" not in page and connection.secret_encrypted not in page
    # Saving without a secret keeps the stored one.
    stored = connection.secret_encrypted
    assert client.submit("/settings/erp", {**form, "url": "http://erp.internal:8000", "secret": ""}).status_code == 302
    session.refresh(connection)
    assert connection.secret_encrypted == stored
    audit = session.execute(select(AuditEvent).where(AuditEvent.action == "erp.connection_saved")).scalars().all()
    assert audit and all("s3cret-pass" not in str(a.after) for a in audit)


def test_test_connection_button_reports_tryton(app, session, tryton):
    _tenant, client = _admin(app, session)
    form = {"kind": "tryton", "url": tryton.url, "database": tryton.database, "login": "admin",
            "secret": tryton.password, "active": "y"}  # fmt: skip
    assert client.submit("/settings/erp", form).status_code == 302
    response = client.submit("/settings/erp/test", {}, page="/settings/erp")
    assert response.status_code == 302
    page = client.get("/settings/erp").text
    assert "Connected: Tryton 8.2" in page and "can read purchases" in page


FAILURES = {
    "bad_credentials": "bad_credentials: Tryton refused the login",
    "conflict": "conflict: line 5 was changed in Odoo at 2026-11-28 10:00:00 after the portal read it",
}


@pytest.mark.parametrize("failure", list(FAILURES))
def test_failed_jobs_are_listed_and_can_be_retried(app, session, failure):
    """A retried push starts its attempts again; after a conflict (a buyer's edit in the ERP, checked there by
    the administrator who retries) it also forgets the ERP line as last seen, so that it writes over the edit."""
    tenant, client = _admin(app, session)
    supplier = make_supplier(session, tenant)
    order = make_order(session, tenant, supplier)
    order.erp_ref = "77"
    line = svc.order_lines(session, order)[0]
    set_context(session, tenant_id=tenant.id)
    seen = {"erp_write_date": "2026-11-27 09:00:00", "erp_terms": "100|2026-12-05|2.5"}
    session.add(ErpLineSync(tenant_id=tenant.id, line_id=line.id, order_id=order.id, status=SyncStatus.FAILED,
                            error=FAILURES[failure], **seen))  # fmt: skip
    event = OutboxEvent(tenant_id=tenant.id, topic="erp.sync_line", payload={"line_id": line.id}, attempts=30,
                        failed_at=utcnow(), last_error=FAILURES[failure])  # fmt: skip
    session.add(event)
    session.flush()
    page = client.get("/settings/jobs").text
    assert "erp.sync_line" in page and FAILURES[failure].split(": ", 1)[1].split(" at ")[0] in page
    order_page = client.get(f"/orders/{order.id}").text
    assert "ERP:" in order_page and f"failed: {failure}" in order_page
    assert "1 line failed" in order_page  # the order-level summary
    sent: list[int] = []
    previous = outbox._publisher, outbox._batch_publisher
    outbox.set_publisher(lambda t, e, d: sent.append(e))
    try:
        assert client.submit(f"/settings/jobs/{event.id}/retry", {}, page="/settings/jobs").status_code == 302
    finally:
        outbox.set_publisher(*previous)
    session.refresh(event)
    assert event.failed_at is None and event.attempts == 0 and sent == [event.id]
    sync = session.execute(select(ErpLineSync).where(ErpLineSync.line_id == line.id)).scalar_one()
    assert sync.status == SyncStatus.WAITING
    kept = {"erp_write_date": sync.erp_write_date, "erp_terms": sync.erp_terms}
    assert kept == ({"erp_write_date": None, "erp_terms": None} if failure == "conflict" else seen)
    assert "No failed jobs." in client.get("/settings/jobs").text

    # Failed again, then answered by a later push of the same line: no longer listed.
    event.failed_at = utcnow()
    session.flush()
    assert "No failed jobs." not in client.get("/settings/jobs").text
    assert erp_services.close_failed_pushes(session, tenant_id=tenant.id, line_id=line.id) == 1
    session.flush()
    assert "No failed jobs." in client.get("/settings/jobs").text


def test_a_supplier_confirms_while_the_queue_is_down(app, session):
    """Redis unreachable: the answer is saved, the page works, the events wait for the relay."""
    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    order = make_order(session, tenant, supplier)
    seller = make_member(session, tenant, Role.SUPPLIER_USER, supplier=supplier)
    client = PortalClient(app.test_client())
    client.sign_in(seller.email, PASSWORD, seller.secret)

    def queue_down(tenant_id: int, event_id: int, delay: int) -> None:
        raise ConnectionError("Error 111 connecting to redis:6379. Connection refused.")

    previous = outbox._publisher, outbox._batch_publisher
    outbox.set_publisher(queue_down)
    try:
        html = client.get(f"/orders/{order.id}").text
        version = re.search(r'name="version" value="(\d+)"', html).group(1)  # type: ignore[union-attr]
        response = client.post(f"/orders/{order.id}/accept-all", {"csrf_token": csrf_from(html), "version": version})
    finally:
        outbox.set_publisher(*previous)
    assert response.status_code == 302
    set_context(session, tenant_id=tenant.id)
    waiting = session.execute(select(OutboxEvent.topic).where(OutboxEvent.done_at.is_(None))).scalars().all()
    assert "order.responded" in waiting and "commitment.changed" in waiting
