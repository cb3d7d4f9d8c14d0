"""The Odoo adapter against OdooProtocolDouble (a test double of Odoo's external API,
versions 16 to 19: XML-RPC up to 18, JSON-2 from 19, and their field differences)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from portal.audit import AuditEvent, write_pending
from portal.auth.services import Actor, ServiceError
from portal.erp import handlers, services
from portal.erp.base import CommitmentPush, Delivery, ErpConflict, ErpMissingRights, ErpServerError
from portal.erp.models import ErpKind, ErpLineSync, SyncStatus
from portal.erp.odoo import OdooAdapter
from portal.orders import services as orders
from portal.orders.models import (
    ChangeRequest,
    ChangeState,
    LineState,
    OrderState,
    PurchaseOrder,
    PurchaseOrderLine,
    Receipt,
)
from portal.orders.services import Conflict, LineAnswer
from portal.orders.services import Delivery as Promise
from portal.outbox import OutboxEvent
from portal.tenancy.models import Company, Warehouse
from tests.conftest import drain, tenant_session
from tests.factories import make_company_with_warehouse, make_tenant, make_tolerance
from tests.odoo_double import API_KEY, DATABASE, LOGIN, OdooProtocolDouble

VERSIONS = [16, 17, 18, 19]
D = Decimal
SOON = (date.today() + timedelta(days=14)).isoformat()


@pytest.fixture(params=VERSIONS, ids=[f"odoo{v}" for v in VERSIONS])
def odoo(request):  # type: ignore[no-untyped-def]
    with OdooProtocolDouble(request.param) as double:
        yield double


def adapter(odoo: OdooProtocolDouble, key: str = API_KEY) -> OdooAdapter:
    return OdooAdapter(odoo.url, DATABASE, LOGIN, key, timeout=2.0)


def push_for(odoo, order_id: int, line_id: int, deliveries, *, notes=(), rejected=False, known=None):  # type: ignore[no-untyped-def]
    line = odoo.state.table("purchase.order.line")[line_id]
    return CommitmentPush(
        order_erp_id=str(order_id),
        line_erp_id=str(line_id),
        ordered_quantity=D(str(line["product_qty"])),
        deliveries=[Delivery(D(q), date.fromisoformat(d)) for q, d in deliveries],
        rejected=rejected,
        notes=list(notes),
        known_write_date=known,
    )


def test_connection_picks_the_transport_and_names_the_fields(odoo):
    report = adapter(odoo).test_connection()
    assert report.ok, report.error
    expected_transport = "JSON-2" if odoo.state.version >= 19 else "XML-RPC"
    assert report.details[0] == f"Odoo {odoo.state.version}.0 over {expected_transport}"
    assert f"line unit field: {odoo.state.unit_field}" in report.details
    assert ("promised dates go to date_promised" in report.details) == (odoo.state.version >= 19)


def test_the_double_keeps_connections_alive_as_odoo_behind_its_proxy_does(odoo):
    """Several requests on one TCP connection, each answered with its length and no "Connection: close"."""
    import socket

    with socket.create_connection(("127.0.0.1", odoo.server.server_port), timeout=5) as sock:
        reader = sock.makefile("rb")
        for _ in range(3):
            sock.sendall(b"GET /web/version HTTP/1.1\r\nHost: odoo\r\n\r\n")
            status = reader.readline()
            headers = {}
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = reader.read(int(headers["content-length"]))
            assert status.startswith(b"HTTP/1.1 ") and "connection" not in headers
            assert body  # Odoo 19 answers its version, older ones 404 with a text


def test_connection_failures_are_named(odoo):
    assert adapter(odoo, key="wrong").test_connection().error_kind == "bad_credentials"
    odoo.state.api_enabled = False
    report = adapter(odoo).test_connection()
    assert report.error_kind == "no_api" and "Custom plan" in report.error
    odoo.state.api_enabled = True
    unreachable = OdooAdapter("http://127.0.0.1:9", DATABASE, LOGIN, API_KEY, protocol="xmlrpc", timeout=1.0)
    assert unreachable.test_connection().error_kind == "unreachable"


def test_pull_reads_orders_with_the_versions_unit_field_and_skips_sections(odoo):
    order_id = odoo.state.make_order("Acme Fasteners", [("HB-M8", 100, 1.5, SOON), ("NUT-8", 40, 0.2, SOON)])
    odoo.state.add(
        "purchase.order.line",
        {"order_id": order_id, "sequence": 9, "display_type": "line_section", "name": "Section", "product_qty": 0},
    )
    (order,) = adapter(odoo).pull_orders(None)
    assert order.number == "P00001" and order.partner_name == "Acme Fasteners" and order.state == "open"
    assert [(line.product_code, line.quantity, line.unit, str(line.requested_date)) for line in order.lines] == [
        ("HB-M8", D("100"), "Units", SOON),
        ("NUT-8", D("40"), "Units", SOON),
    ]
    later = adapter(odoo).pull_orders(order.write_date)
    assert later == []


def test_split_is_written_once_and_a_repeat_changes_nothing(odoo):
    order_id = odoo.state.make_order("Acme", [("HB-M8", 100, 1.5, SOON)])
    (line,) = odoo.state.lines(order_id)
    first, second = (date.today() + timedelta(days=10)).isoformat(), (date.today() + timedelta(days=30)).isoformat()
    push = push_for(odoo, order_id, line["id"], [("60", first), ("40", second)], notes=[("commitment-7", "split")])
    result = adapter(odoo).push_commitment(push)
    assert result.changed and result.write_date
    lines = odoo.state.lines(order_id)
    assert [(r["product_qty"], r["date_planned"][:10]) for r in lines] == [(60.0, first), (40.0, second)]
    assert lines[1]["name"].endswith(f"[portal {line['id']}/2]")
    if odoo.state.version >= 19:
        assert [r["date_promised"][:10] for r in lines] == [first, second]
        assert odoo.state.table("purchase.order")[order_id]["acknowledged"] is True
    else:
        assert odoo.state.table("purchase.order")[order_id]["mail_reception_confirmed"] is True
    assert odoo.state.messages(order_id) == ["[portal commitment-7] split"]

    repeat = push_for(
        odoo, order_id, line["id"], [("60", first), ("40", second)], notes=[("commitment-7", "split")],
        known=result.write_date,
    )  # fmt: skip
    again = adapter(odoo).push_commitment(repeat)
    assert again.changed == []
    assert len(odoo.state.lines(order_id)) == 2 and len(odoo.state.messages(order_id)) == 1
    assert ("purchase.order.line", "_update_date_planned_for_lines") not in odoo.state.calls


def test_a_lost_answer_after_commit_is_retried_without_a_duplicate_line(odoo):
    order_id = odoo.state.make_order("Acme", [("HB-M8", 100, 1.5, SOON)])
    (line,) = odoo.state.lines(order_id)
    push = push_for(odoo, order_id, line["id"], [("50", SOON), ("50", SOON)])
    odoo.faults.lose_answer_on = "purchase.order.line.create"
    with pytest.raises(ErpServerError):
        adapter(odoo).push_commitment(push)
    assert len(odoo.state.lines(order_id)) == 2  # Odoo committed the sibling line
    adapter(odoo).push_commitment(push)
    assert len(odoo.state.lines(order_id)) == 2


def test_a_buyers_edit_in_odoo_stops_the_push(odoo):
    order_id = odoo.state.make_order("Acme", [("HB-M8", 100, 1.5, SOON)])
    (line,) = odoo.state.lines(order_id)
    seen = line["write_date"]
    odoo.state.call("purchase.order.line", "write", [line["id"]], {"vals": {"product_qty": 120}})
    with pytest.raises(ErpConflict):
        adapter(odoo).push_commitment(push_for(odoo, order_id, line["id"], [("100", SOON)], known=seen))
    assert odoo.state.lines(order_id)[0]["product_qty"] == 120


def test_missing_rights_are_reported_as_such(odoo):
    order_id = odoo.state.make_order("Acme", [("HB-M8", 100, 1.5, SOON)])
    (line,) = odoo.state.lines(order_id)
    odoo.state.read_only = True
    with pytest.raises(ErpMissingRights):
        adapter(odoo).push_commitment(push_for(odoo, order_id, line["id"], [("90", SOON)]))


def test_field_names_that_changed_on_the_server_are_read_again(odoo):
    """After an upgrade at the same address the cached field names are stale: the call that meets "Invalid
    field" fails (the outbox retries it), and the next one reads the names again and succeeds."""
    from portal.erp import odoo as odoo_adapter
    from portal.erp.base import ErpRejected

    odoo.state.make_order("Acme", [("HB-M8", 100, 1.5, SOON)])
    real = adapter(odoo).fields("purchase.order.line")
    unit = adapter(odoo).unit_field()
    another_versions_unit = "product_uom" if unit != "product_uom" else "product_uom_id"
    key = (odoo.url, DATABASE, "purchase.order.line")
    odoo_adapter._FIELDS_CACHE[key] = (float("inf"), frozenset((real - {unit}) | {another_versions_unit}))
    with pytest.raises(ErpRejected, match="Invalid field"):
        adapter(odoo).pull_orders(None)
    assert key not in odoo_adapter._FIELDS_CACHE
    assert adapter(odoo).pull_orders(None)  # the names read again


def test_a_server_error_is_transient(odoo):
    odoo.faults.fail_next = 5
    with pytest.raises(ErpServerError) as caught:
        adapter(odoo).pull_orders(None)
    assert caught.value.transient


def test_receipts_use_the_versions_done_quantity(odoo):
    order_id = odoo.state.make_order("Acme", [("HB-M8", 100, 1.5, SOON)])
    (line,) = odoo.state.lines(order_id)
    odoo.state.receive(line["id"], 30, "2026-11-20")
    (receipt,) = adapter(odoo).pull_receipts([str(line["id"])])
    assert (receipt.line_erp_id, receipt.quantity, str(receipt.received_on)) == (str(line["id"]), D("30"), "2026-11-20")


@pytest.mark.parametrize("version", [17, 19])
def test_portal_to_odoo_end_to_end(committed_app, committed_db, version):
    """Intake, a split answer, the worker's push, a receipt: through the portal's services and outbox."""
    with OdooProtocolDouble(version) as odoo:
        order_id = odoo.state.make_order("Acme Fasteners", [("HB-M8", 100, 1.5, SOON), ("NUT-8", 40, 0.2, SOON)])
        with tenant_session(committed_db, None) as s:
            tenant_id = make_tenant(s).id
        actor = Actor(None, "test", "")
        with committed_app.app_context(), tenant_session(committed_db, tenant_id) as s:
            company = Company(tenant_id=tenant_id, code="NW", name="Northwind")
            s.add(company)
            s.flush()
            s.add(Warehouse(tenant_id=tenant_id, company_id=company.id, code="WH", name="Main"))
            services.save_connection(
                s, tenant_id=tenant_id, kind=ErpKind.ODOO, url=odoo.url, database=DATABASE, login=LOGIN,
                secret=API_KEY, active=True, actor=actor,
            )  # fmt: skip
        with committed_app.app_context():
            handlers.pull_tenant(committed_db, tenant_id)
        day = date.fromisoformat(SOON)
        with committed_app.app_context(), tenant_session(committed_db, tenant_id) as s:
            order = s.execute(select(PurchaseOrder).where(PurchaseOrder.erp_ref == str(order_id))).scalar_one()
            first, second = s.execute(
                select(PurchaseOrderLine).where(PurchaseOrderLine.order_id == order.id).order_by("position")
            ).scalars()
            orders.respond(
                s, order=order, expected_version=None, actor=actor,
                answers=[LineAnswer(first.id, "accept"), LineAnswer(second.id, "accept")],
            )  # fmt: skip
        with committed_app.app_context():
            drain(committed_db, tenant_id)
        with tenant_session(committed_db, tenant_id) as s:
            assert set(s.execute(select(ErpLineSync.status)).scalars()) == {SyncStatus.SYNCED}
            assert s.execute(select(OutboxEvent).where(OutboxEvent.failed_at.is_not(None))).first() is None
        messages = odoo.state.messages(order_id)
        assert len(messages) == 2 and all(m.startswith("[portal commitment-") for m in messages)
        odoo.state.receive(odoo.state.lines(order_id)[0]["id"], 100, day.isoformat())
        with committed_app.app_context():
            handlers.pull_tenant(committed_db, tenant_id)
            drain(committed_db, tenant_id)
        with tenant_session(committed_db, tenant_id) as s:
            receipts = s.execute(select(Receipt.quantity)).scalars().all()
            assert receipts == [D("100")]


def _pull_into(session, tenant_id: int, odoo: OdooProtocolDouble) -> list[PurchaseOrderLine]:  # type: ignore[no-untyped-def]
    """One pull of the tenant's orders from the double, through the real adapter; the pulled order's lines."""
    connection = services.get_connection(session, tenant_id)
    services.pull(session, tenant_id=tenant_id, connection=connection, adapter=adapter(odoo))
    session.flush()
    return list(session.execute(select(PurchaseOrderLine).order_by(PurchaseOrderLine.position)).scalars())


def _odoo_tenant(session, odoo: OdooProtocolDouble) -> int:  # type: ignore[no-untyped-def]
    tenant = make_tenant(session)
    make_company_with_warehouse(session, tenant)
    make_tolerance(session, tenant)
    services.save_connection(
        session, tenant_id=tenant.id, kind=ErpKind.ODOO, url=odoo.url, database=DATABASE, login=LOGIN, secret=API_KEY,
        active=True, actor=Actor(None, "admin", ""),
    )  # fmt: skip
    return tenant.id


def _edit_in_odoo(odoo: OdooProtocolDouble, order_id: int, **order_values) -> None:  # type: ignore[no-untyped-def]
    order = odoo.state.table("purchase.order")[order_id]
    order.update(order_values, write_date=odoo.state.stamp())


def test_a_buyers_change_in_odoo_reaches_an_unanswered_line_and_refuses_answers_given_before_it(app, session):
    """Quantity, date and price of a line the supplier has not answered follow the ERP (audited, the order's value
    with them); the order's version moves, so an answer form opened before the change is refused."""
    with app.app_context(), OdooProtocolDouble(17) as odoo:
        order_id = odoo.state.make_order("Acme", [("HB-M8", 100, 1.5, SOON), ("NUT-8", 40, 0.25, SOON)])
        tenant_id = _odoo_tenant(session, odoo)
        first, second = _pull_into(session, tenant_id, odoo)
        order = session.get(PurchaseOrder, first.order_id)
        assert order.total_value == D("160")
        opened_at = order.version
        line = odoo.state.lines(order_id)[0]
        line.update(product_qty=80, price_unit=1.75, write_date=odoo.state.stamp())
        _edit_in_odoo(odoo, order_id)
        _pull_into(session, tenant_id, odoo)
        assert (first.quantity, first.unit_price, second.quantity) == (D("80"), D("1.75"), D("40"))
        assert order.total_value == D("150") and order.version > opened_at
        with pytest.raises(Conflict):
            orders.accept_all(session, order=order, expected_version=opened_at, actor=Actor(None, "supplier", ""))
        write_pending(session)
        (changed,) = session.execute(
            select(AuditEvent).where(AuditEvent.action == "order_line.changed_in_erp")
        ).scalars()
        assert changed.object_id == str(first.id) and changed.actor == "ERP sync"
        assert changed.before == {"quantity": "100.000", "unit_price": "1.5000"}
        assert changed.after == {"order": order.number, "position": 1, "quantity": "80", "unit_price": "1.75"}
        # Nothing changed in the ERP since: a pull leaves the order (and its version) alone.
        version = order.version
        _pull_into(session, tenant_id, odoo)
        assert order.version == version
        # Two lines added at once take the next two positions; the supplier's people hear what changed each time.
        odoo.state.add_line(order_id, 3, "WASHER-8", 500, 0.05, SOON)
        odoo.state.add_line(order_id, 4, "NUT-10", 20, 0.5, SOON)
        lines = _pull_into(session, tenant_id, odoo)
        assert [(line.position, line.product_code) for line in lines][2:] == [(3, "WASHER-8"), (4, "NUT-10")]
        assert order.total_value == D("185") and order.state == OrderState.AWAITING_RESPONSE
        told = session.execute(
            select(OutboxEvent.payload).where(OutboxEvent.topic == "order.changed_in_erp").order_by(OutboxEvent.id)
        ).scalars()
        assert [(p["changed"], p["added"], p["cancelled"]) for p in told] == [([1], [], []), ([], [3, 4], [])]


def test_an_order_cancelled_in_odoo_withdraws_what_waited_for_the_buyer(app, session):
    """Its open lines are cancelled as a buyer's cancellation does it: their change requests withdrawn (the queue
    would keep a request nobody can decide), an audit entry each, the order's value without them."""
    with app.app_context(), OdooProtocolDouble(17) as odoo:
        order_id = odoo.state.make_order("Acme", [("HB-M8", 100, 1.5, SOON), ("NUT-8", 40, 0.25, SOON)])
        tenant_id = _odoo_tenant(session, odoo)
        first, second = _pull_into(session, tenant_id, odoo)
        order = session.get(PurchaseOrder, first.order_id)
        late = first.requested_date + timedelta(days=20)
        orders.respond(
            session, order=order, expected_version=None, actor=Actor(None, "supplier", ""),
            answers=[LineAnswer(first.id, "change", (Promise(D("100"), late),)), LineAnswer(second.id, "accept")],
        )  # fmt: skip
        assert first.state == LineState.CHANGES_PENDING
        _edit_in_odoo(odoo, order_id, state="cancel")
        _pull_into(session, tenant_id, odoo)
        assert (first.state, second.state, order.state) == (LineState.CANCELLED,) * 2 + (OrderState.CANCELLED,)
        request = session.execute(select(ChangeRequest).where(ChangeRequest.line_id == first.id)).scalar_one()
        assert request.state == ChangeState.WITHDRAWN and order.total_value == 0
        write_pending(session)
        cancelled = session.execute(
            select(AuditEvent.object_id, AuditEvent.reason).where(AuditEvent.action == "order_line.cancelled")
        ).all()
        assert sorted(cancelled) == sorted(
            [(str(first.id), "cancelled in the ERP"), (str(second.id), "cancelled in the ERP")]
        )
        # The supplier's people hear of it once, with the lines cancelled, not once per line.
        topics = session.execute(
            select(OutboxEvent.topic, OutboxEvent.payload)
            .where(OutboxEvent.topic.in_(["order.changed_in_erp", "order_line.cancelled"]))
            .order_by(OutboxEvent.id)
        ).all()
        assert [(topic, payload.get("announced"), payload.get("cancelled")) for topic, payload in topics] == [
            ("order_line.cancelled", False, None),
            ("order_line.cancelled", False, None),
            ("order.changed_in_erp", None, [1, 2]),
        ]


def test_a_buyers_edit_in_odoo_to_an_answered_line_stops_the_next_push_even_after_an_intake(app, session):
    """The intake does not take the new stamp of a line the supplier answered whose terms the buyer changed in
    Odoo: the next push stops with a conflict instead of writing over the edit. A receipt moves the stamp too,
    but not the terms: after it the push goes through."""
    with app.app_context(), OdooProtocolDouble(17) as odoo:
        order_id = odoo.state.make_order("Acme", [("HB-M8", 100, 1.5, SOON)])
        tenant_id = _odoo_tenant(session, odoo)
        (line,) = _pull_into(session, tenant_id, odoo)
        order = session.get(PurchaseOrder, line.order_id)
        supplier = Actor(None, "supplier", "")
        orders.accept_all(session, order=order, expected_version=None, actor=supplier)
        session.flush()

        def push():  # type: ignore[no-untyped-def]
            return services.sync_line(session, tenant_id=tenant_id, line_id=line.id, adapter=adapter(odoo))

        assert push() is not None  # the acceptance reaches Odoo
        (erp_line,) = odoo.state.lines(order_id)
        odoo.state.receive(erp_line["id"], 30, SOON)  # a receipt: the stamp moves, the terms do not
        _edit_in_odoo(odoo, order_id)
        _pull_into(session, tenant_id, odoo)
        one_day_later = date.fromisoformat(SOON) + timedelta(days=1)
        orders.change_promise(
            session, order=order, line=line, deliveries=[Promise(D("100"), one_day_later)], reason_code="transport",
            comment="", expected_version=None, actor=supplier,
        )  # fmt: skip
        session.flush()
        assert push() is not None and odoo.state.lines(order_id)[0]["date_planned"].startswith(str(one_day_later))
        # The buyer raises the quantity in Odoo; an intake runs before the supplier's next change is pushed.
        odoo.state.call("purchase.order.line", "write", [erp_line["id"]], {"vals": {"product_qty": 120}})
        _edit_in_odoo(odoo, order_id)
        _pull_into(session, tenant_id, odoo)
        assert line.quantity == D("100")  # an answered line keeps its terms in the portal
        orders.change_promise(
            session, order=order, line=line, deliveries=[Promise(D("100"), one_day_later + timedelta(days=1))],
            reason_code="transport", comment="", expected_version=None, actor=supplier,
        )  # fmt: skip
        session.flush()
        with pytest.raises(ErpConflict):
            push()
        assert odoo.state.lines(order_id)[0]["product_qty"] == 120  # the buyer's edit stands


def _accepted_and_pushed(session, odoo: OdooProtocolDouble, lines):  # type: ignore[no-untyped-def]
    """An order from Odoo that the supplier accepted and whose acceptance reached Odoo."""
    order_id = odoo.state.make_order("Acme", lines)
    tenant_id = _odoo_tenant(session, odoo)
    pulled = _pull_into(session, tenant_id, odoo)
    order = session.get(PurchaseOrder, pulled[0].order_id)
    orders.accept_all(session, order=order, expected_version=None, actor=Actor(None, "supplier", ""))
    session.flush()
    for line in pulled:
        assert services.sync_line(session, tenant_id=tenant_id, line_id=line.id, adapter=adapter(odoo)) is not None
    return order_id, tenant_id, order, pulled


def _sync_of(session, line_id: int) -> ErpLineSync:  # type: ignore[no-untyped-def]
    return session.execute(select(ErpLineSync).where(ErpLineSync.line_id == line_id)).scalar_one()


def test_a_buyers_edit_in_odoo_to_an_answered_line_goes_to_the_supplier_once_a_buyer_sends_it(app, session):
    """The intake keeps the edit aside and tells the buyers once; a buyer sends it to the supplier (the line is
    asked again, nothing is pushed meanwhile), and the supplier's new answer reaches Odoo without a conflict."""
    with app.app_context(), OdooProtocolDouble(17) as odoo:
        order_id, tenant_id, order, (line,) = _accepted_and_pushed(session, odoo, [("HB-M8", 100, 1.5, SOON)])
        (erp_line,) = odoo.state.lines(order_id)
        odoo.state.call("purchase.order.line", "write", [erp_line["id"]], {"vals": {"product_qty": 80}})
        _edit_in_odoo(odoo, order_id)
        _pull_into(session, tenant_id, odoo)
        _pull_into(session, tenant_id, odoo)  # seen again: the buyers are not told twice
        sync = _sync_of(session, line.id)
        assert services.revision_of(sync) == orders.LineTerms(D("80"), date.fromisoformat(SOON), D("1.5"))
        assert (line.state, line.quantity) == (LineState.CONFIRMED, D("100"))  # nothing changes until decided
        told = session.execute(select(OutboxEvent.payload).where(OutboxEvent.topic == "order.revised_in_erp"))
        assert [payload["positions"] for payload in told.scalars()] == [[1]]

        services.take_revision(
            session, order=order, line=line, quantity=D("80"), requested_date=date.fromisoformat(SOON),
            comment="demand fell", expected_version=None, actor=Actor(None, "buyer", ""),
        )  # fmt: skip
        assert (line.state, line.quantity, order.state) == (LineState.AWAITING_RESPONSE, D("80"),
                                                            OrderState.AWAITING_RESPONSE)  # fmt: skip
        assert sync.revised_terms is None and sync.erp_terms == "80|" + SOON + "|1.5"
        with pytest.raises(ServiceError, match="no change from the ERP"):  # a second buyer, a second click
            services.take_revision(
                session, order=order, line=line, quantity=D("80"), requested_date=date.fromisoformat(SOON),
                comment="", expected_version=None, actor=Actor(None, "buyer", ""),
            )  # fmt: skip
        # The withdrawn commitment is not written to Odoo: the buyer's terms stand there.
        assert services.sync_line(session, tenant_id=tenant_id, line_id=line.id, adapter=adapter(odoo)) is None
        later = date.fromisoformat(SOON) + timedelta(days=1)
        orders.respond(
            session, order=order, expected_version=None, actor=Actor(None, "supplier", ""),
            answers=[LineAnswer(line.id, "change", (Promise(D("80"), later),))],
        )  # fmt: skip
        session.flush()
        assert services.sync_line(session, tenant_id=tenant_id, line_id=line.id, adapter=adapter(odoo)) is not None
        (erp_line,) = odoo.state.lines(order_id)
        assert erp_line["product_qty"] == 80 and erp_line["date_planned"].startswith(later.isoformat())


def test_a_buyer_keeps_the_suppliers_commitment_over_an_edit_in_odoo_and_an_undone_edit_needs_no_decision(app, session):
    with app.app_context(), OdooProtocolDouble(17) as odoo:
        order_id, tenant_id, order, (first, second) = _accepted_and_pushed(
            session, odoo, [("HB-M8", 100, 1.5, SOON), ("NUT-8", 40, 0.25, SOON)]
        )
        one, two = odoo.state.lines(order_id)
        odoo.state.call("purchase.order.line", "write", [one["id"]], {"vals": {"product_qty": 120}})
        odoo.state.call("purchase.order.line", "write", [two["id"]], {"vals": {"price_unit": 0.3}})
        _edit_in_odoo(odoo, order_id)
        _pull_into(session, tenant_id, odoo)
        assert services.revision_of(_sync_of(session, first.id)) is not None
        assert services.revision_of(_sync_of(session, second.id)) is not None
        # The buyer keeps line 1's commitment: the next push writes it over the edit.
        services.keep_commitment(session, order=order, line=first, actor=Actor(None, "buyer", ""))
        session.flush()
        sync = _sync_of(session, first.id)
        assert (sync.revised_terms, sync.status) == (None, SyncStatus.WAITING)
        (queued,) = session.execute(select(OutboxEvent.payload).where(OutboxEvent.topic == "erp.sync_line")).scalars()
        assert queued == {"line_id": first.id, "force": True}
        services.sync_line(session, tenant_id=tenant_id, line_id=first.id, adapter=adapter(odoo), force=True)
        assert odoo.state.lines(order_id)[0]["product_qty"] == 100
        # Line 2's edit is undone in Odoo before anyone decided: nothing is left to decide.
        odoo.state.call("purchase.order.line", "write", [two["id"]], {"vals": {"price_unit": 0.25}})
        _edit_in_odoo(odoo, order_id)
        _pull_into(session, tenant_id, odoo)
        assert services.revision_of(_sync_of(session, first.id)) is None
        assert services.revision_of(_sync_of(session, second.id)) is None
        write_pending(session)
        (kept,) = session.execute(
            select(AuditEvent).where(AuditEvent.action == "order_line.erp_change_overruled")
        ).scalars()
        assert kept.object_id == str(first.id) and kept.before == {"erp_terms": "120|" + SOON + "|1.5"}


def test_an_intake_that_read_odoo_before_the_portals_own_push_sees_no_buyers_edit_in_it(app, session):
    """The intake reads the ERP first and writes the portal after: a push that ended in between left Odoo (and
    the portal's record of it) newer than what the intake read. Those older terms are not a buyer's change."""
    with app.app_context(), OdooProtocolDouble(17) as odoo:
        _, tenant_id, order, (line,) = _accepted_and_pushed(session, odoo, [("HB-M8", 100, 1.5, SOON)])
        read_before = adapter(odoo).pull_orders(None)  # the intake's read, before the supplier's next promise
        later = date.fromisoformat(SOON) + timedelta(days=2)
        orders.change_promise(
            session, order=order, line=line, deliveries=[Promise(D("100"), later)], reason_code="transport",
            comment="", expected_version=None, actor=Actor(None, "supplier", ""),
        )  # fmt: skip
        session.flush()
        assert services.sync_line(session, tenant_id=tenant_id, line_id=line.id, adapter=adapter(odoo)) is not None
        for erp_order in read_before:
            services._upsert_order(session, tenant_id, erp_order, services.PullReport())
        assert services.revision_of(_sync_of(session, line.id)) is None
        assert session.execute(select(OutboxEvent.id).where(OutboxEvent.topic == "order.revised_in_erp")).all() == []
        # A later intake reads what the push left: nothing to decide either.
        _pull_into(session, tenant_id, odoo)
        assert services.revision_of(_sync_of(session, line.id)) is None
