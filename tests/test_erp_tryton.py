"""End to end against a real Tryton 8.2 server: purchases made in Tryton come into the
portal, the supplier answers (split, partial, re-date, reject), the worker writes each
commitment back exactly once, and receipts done in Tryton drive partial and late alerts."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from portal.auth.services import Actor
from portal.erp import handlers, services
from portal.erp.models import ErpKind, ErpLineSync, SyncStatus
from portal.orders import services as orders
from portal.orders.alerts import detect
from portal.orders.models import (
    AlertKind,
    ChangeRequest,
    LineAlert,
    LineState,
    PurchaseOrder,
    PurchaseOrderLine,
    Receipt,
)
from portal.orders.services import Delivery, LineAnswer
from portal.outbox import OutboxEvent
from portal.suppliers.models import Supplier
from portal.tenancy.models import Company, Warehouse
from tests.conftest import drain, tenant_session
from tests.factories import make_tenant
from tests.tryton_server import TrytonData

SUPPLIER_ACTOR = Actor(None, "anna@acme.example", "")
BUYER_ACTOR = Actor(None, "buyer@northwind.example", "")
D = Decimal


@pytest.fixture
def portal_tenant(committed_app, committed_db, tryton):  # type: ignore[no-untyped-def]
    """A tenant with the Tryton warehouse's code and a saved connection to the test server."""
    with tenant_session(committed_db, None) as s:
        tenant = make_tenant(s)
    with committed_app.app_context(), tenant_session(committed_db, tenant.id) as s:
        company = Company(tenant_id=tenant.id, code="NW", name="Northwind Distribution")
        s.add(company)
        s.flush()
        s.add(Warehouse(tenant_id=tenant.id, company_id=company.id, code="WH", name="Main warehouse"))
        services.save_connection(
            s,
            tenant_id=tenant.id,
            kind=ErpKind.TRYTON,
            url=tryton.url,
            database=tryton.database,
            login=tryton.login,
            secret=tryton.password,
            active=True,
            actor=BUYER_ACTOR,
        )
    return tenant.id


@pytest.fixture
def erp(tryton) -> TrytonData:  # type: ignore[no-untyped-def]
    return TrytonData(tryton.client())


def _portal_lines(database, tenant_id: int, purchase_id: int) -> list[PurchaseOrderLine]:  # type: ignore[no-untyped-def]
    with tenant_session(database, tenant_id) as s:
        order = s.execute(select(PurchaseOrder).where(PurchaseOrder.erp_ref == str(purchase_id))).scalar_one()
        return list(
            s.execute(
                select(PurchaseOrderLine)
                .where(PurchaseOrderLine.order_id == order.id)
                .order_by(PurchaseOrderLine.position)
            ).scalars()
        )


def _answer_and_approve(app, database, tenant_id: int, purchase: int, answers: list[LineAnswer]) -> None:  # type: ignore[no-untyped-def]
    """The supplier answers the pulled purchase; outside the (zero) tolerance, the buyer approves every request."""
    with app.app_context(), tenant_session(database, tenant_id) as s:
        order = s.execute(select(PurchaseOrder).where(PurchaseOrder.erp_ref == str(purchase))).scalar_one()
        orders.respond(s, order=order, expected_version=None, actor=SUPPLIER_ACTOR, answers=answers)
        for request in s.execute(select(ChangeRequest).where(ChangeRequest.order_id == order.id)).scalars():
            orders.decide(
                s, request=request, order=order, decision="approve", comment="ok", expected_version=None,
                actor=BUYER_ACTOR,
            )  # fmt: skip


def _repromise(app, database, tenant_id: int, purchase: int, line_id: int, delivery: Delivery) -> None:  # type: ignore[no-untyped-def]
    """The supplier changes a confirmed line's promise (production delay); outside the (zero) tolerance it is a
    change request, which the buyer approves."""
    with app.app_context(), tenant_session(database, tenant_id) as s:
        order = s.execute(select(PurchaseOrder).where(PurchaseOrder.erp_ref == str(purchase))).scalar_one()
        line = s.execute(select(PurchaseOrderLine).where(PurchaseOrderLine.id == line_id)).scalar_one()
        result = orders.change_promise(
            s, order=order, line=line, deliveries=[delivery], reason_code="production_delay",
            comment="Press down", expected_version=None, actor=SUPPLIER_ACTOR,
        )  # fmt: skip
        if isinstance(result, ChangeRequest):
            orders.decide(
                s, request=result, order=order, decision="approve", comment="", expected_version=None,
                actor=BUYER_ACTOR,
            )  # fmt: skip


def _pull(app, database, tenant_id: int):  # type: ignore[no-untyped-def]
    with app.app_context():
        report = handlers.pull_tenant(database, tenant_id)
        drain(database, tenant_id)
    return report


def test_connection_test_reports_version_and_each_failure(committed_app, committed_db, portal_tenant, tryton):
    with committed_app.app_context(), tenant_session(committed_db, portal_tenant) as s:
        connection = services.get_connection(s, portal_tenant)
        report = services.test_connection(s, connection, actor=BUYER_ACTOR)
        assert report.ok and report.version == "8.2"
        assert "can read purchases" in report.details
        assert connection.last_test["ok"] is True

        services.save_connection(
            s, tenant_id=portal_tenant, kind=ErpKind.TRYTON, url=tryton.url, database=tryton.database,
            login="admin", secret="wrong-password", active=True, actor=BUYER_ACTOR,
        )  # fmt: skip
        report = services.test_connection(s, connection, actor=BUYER_ACTOR)
        assert not report.ok and report.error_kind == "bad_credentials"

        from tests.tryton_server import free_port

        services.save_connection(
            s, tenant_id=portal_tenant, kind=ErpKind.TRYTON, url=f"http://127.0.0.1:{free_port()}",
            database=tryton.database, login="admin", secret=tryton.password, active=True, actor=BUYER_ACTOR,
        )  # fmt: skip
        report = services.test_connection(s, connection, actor=BUYER_ACTOR)
        assert not report.ok and report.error_kind == "unreachable"
        assert "cannot reach Tryton" in report.error


def test_intake_brings_confirmed_purchases_once_and_maps_the_supplier(committed_app, committed_db, portal_tenant, erp):
    soon = date.today() + timedelta(days=10)
    purchase, line_ids = erp.purchase("Intake Supplier", [("BOLT-1", 100, "1.50", soon), ("NUT-1", 40, "0.20", soon)])
    report = _pull(committed_app, committed_db, portal_tenant)
    assert report is not None and report.orders_created >= 1
    lines = _portal_lines(committed_db, portal_tenant, purchase)
    assert [(line.product_code, line.quantity, line.requested_date) for line in lines] == [
        ("BOLT-1", D("100"), soon),
        ("NUT-1", D("40"), soon),
    ]
    assert [line.erp_ref for line in lines] == [str(i) for i in line_ids]
    with tenant_session(committed_db, portal_tenant) as s:
        supplier = s.execute(select(Supplier).where(Supplier.name == "Intake Supplier")).scalar_one()
        assert supplier.erp_ref is not None
        order = s.execute(select(PurchaseOrder).where(PurchaseOrder.erp_ref == str(purchase))).scalar_one()
        assert order.supplier_id == supplier.id
        warehouse = s.execute(select(Warehouse).where(Warehouse.id == order.warehouse_id)).scalar_one()
        assert warehouse.code == "WH"
        topics = set(s.execute(select(OutboxEvent.topic)).scalars())
        assert "order.created" in topics
    # A second pull (the cursor is past these purchases) creates nothing twice.
    again = _pull(committed_app, committed_db, portal_tenant)
    assert again is not None and again.orders_created == 0
    with tenant_session(committed_db, portal_tenant) as s:
        count = s.execute(select(PurchaseOrder).where(PurchaseOrder.erp_ref == str(purchase))).all()
        assert len(count) == 1


def test_commitments_reach_tryton_exactly_once_and_receipts_drive_alerts(
    committed_app, committed_db, portal_tenant, erp
):
    today = date.today()
    requested = today + timedelta(days=10)
    purchase, (split_id, partial_id, redate_id, reject_id) = erp.purchase(
        "Acme Fasteners",
        [("HB-M8", 100, "1.50", requested), ("HB-M10", 50, "2.00", requested),
         ("WS-8", 200, "0.05", requested), ("NUT-8", 30, "0.10", requested)],
    )  # fmt: skip
    _pull(committed_app, committed_db, portal_tenant)
    split, partial, redate, reject = _portal_lines(committed_db, portal_tenant, purchase)

    # The supplier answers: split one line, commit less on another, accept one, reject one.
    first, second = today + timedelta(days=8), today + timedelta(days=20)
    _answer_and_approve(
        committed_app,
        committed_db,
        portal_tenant,
        purchase,
        [
            LineAnswer(split.id, "change", (Delivery(D("60"), first), Delivery(D("40"), second))),
            LineAnswer(partial.id, "change", (Delivery(D("30"), requested),)),
            LineAnswer(redate.id, "accept"),
            LineAnswer(reject.id, "reject", reason_code="discontinued", comment="No longer made"),
        ],
    )
    with committed_app.app_context():
        ran = drain(committed_db, portal_tenant)
    assert ran.count("erp.sync_line") >= 4

    assert erp.open_moves(split_id) == [(D("60"), first), (D("40"), second)]
    assert erp.open_moves(partial_id) == [(D("30"), requested)]
    cancelled = [m for m in erp.moves(partial_id) if m["state"] == "cancelled"]
    assert [D(str(m["quantity"])) for m in cancelled] == [D("20")]  # the part not committed: Tryton's exception
    assert erp.open_moves(redate_id) == [(D("200"), requested)]
    assert erp.open_moves(reject_id) == []
    assert "[portal rejection-" in erp.note(reject_id)
    for line_id in (split_id, partial_id, redate_id):
        assert erp.note(line_id).count("[portal commitment-") >= 1

    # The supplier re-dates a confirmed line inside nothing: a change request, approved.
    later = today + timedelta(days=15)
    _repromise(committed_app, committed_db, portal_tenant, purchase, redate.id, Delivery(D("200"), later))
    with committed_app.app_context():
        drain(committed_db, portal_tenant)
    assert erp.open_moves(redate_id) == [(D("200"), later)]
    notes_before = {i: erp.note(i) for i in (split_id, partial_id, redate_id, reject_id)}
    moves_before = {i: erp.moves(i) for i in (split_id, partial_id, redate_id, reject_id)}

    # Exactly once: pushing every line again (a redelivery, a retry) changes nothing in Tryton.
    with committed_app.app_context(), tenant_session(committed_db, portal_tenant) as s:
        for line in (split, partial, redate, reject):
            services.request_sync(s, tenant_id=portal_tenant, line_id=line.id, force=True)
    with committed_app.app_context():
        drain(committed_db, portal_tenant)
    assert {i: erp.note(i) for i in notes_before} == notes_before
    assert {i: erp.moves(i) for i in moves_before} == moves_before
    with tenant_session(committed_db, portal_tenant) as s:
        statuses = set(s.execute(select(ErpLineSync.status)).scalars())
        assert statuses == {SyncStatus.SYNCED}

    # A receipt in Tryton: the first delivery of the split line arrives today.
    first_move = next(m["id"] for m in erp.moves(split_id) if m["state"] == "draft")
    erp.receive([first_move], "Acme Fasteners", today)
    _pull(committed_app, committed_db, portal_tenant)
    _pull(committed_app, committed_db, portal_tenant)  # twice: the receipt is recorded once
    with tenant_session(committed_db, portal_tenant) as s:
        receipts = list(s.execute(select(Receipt).where(Receipt.line_id == split.id)).scalars())
        assert [(r.quantity, r.received_on) for r in receipts] == [(D("60"), today)]
        line = s.execute(select(PurchaseOrderLine).where(PurchaseOrderLine.id == split.id)).scalar_one()
        assert line.received_quantity == D("60") and line.state == LineState.PARTIALLY_RECEIVED
    # The promise for the rest is still what the supplier said (re-applied after the receipt).
    assert erp.open_moves(split_id) == [(D("40"), second)]

    # Detection: the rest is late once its promise has passed; the partial receipt is flagged.
    with tenant_session(committed_db, portal_tenant) as s:
        run = detect(s, tenant_id=portal_tenant, today=second + timedelta(days=1))
        assert run.opened >= 2
        kinds = {
            a.kind
            for a in s.execute(
                select(LineAlert).where(LineAlert.line_id == split.id, LineAlert.resolved_at.is_(None))
            ).scalars()
        }
        assert {AlertKind.LATE, AlertKind.PARTIAL} <= kinds
    with tenant_session(committed_db, portal_tenant) as s:
        # The receipt moved the lines' dates in Tryton (they follow the moves): no conflict for that, and no
        # buyer's change for the buyers to decide on either (the portal's own pushes moved them too).
        assert set(s.execute(select(ErpLineSync.status)).scalars()) == {SyncStatus.SYNCED}
        assert s.execute(select(ErpLineSync.line_id).where(ErpLineSync.revised_terms.is_not(None))).all() == []
        assert s.execute(select(OutboxEvent.id).where(OutboxEvent.topic == "order.revised_in_erp")).all() == []


def test_a_receipt_whose_shipment_names_a_ship_notice_settles_that_notice(
    committed_app, committed_db, portal_tenant, erp
):
    """The receiving clerk scans the packing slip's ship notice number into the Tryton shipment's reference: the
    pulled receipt names that notice and settles it, though an earlier notice of the same line waits too. A
    reference that names no notice (the carrier's delivery note) still brings the receipt, matched by date."""
    from portal.orders.models import ShipNotice, ShipNoticeState
    from portal.orders.services import ShipmentInput

    today = date.today()
    purchase, (line_id,) = erp.purchase("Acme Fasteners", [("HB-M12", 100, "1.20", today + timedelta(days=10))])
    _pull(committed_app, committed_db, portal_tenant)
    (line,) = _portal_lines(committed_db, portal_tenant, purchase)
    deliveries = (Delivery(D("50"), today + timedelta(days=9)), Delivery(D("50"), today + timedelta(days=10)))
    _answer_and_approve(committed_app, committed_db, portal_tenant, purchase,
                        [LineAnswer(line.id, "change", deliveries)])  # fmt: skip
    with committed_app.app_context():
        drain(committed_db, portal_tenant)
    assert erp.open_moves(line_id) == [(d.quantity, d.date) for d in deliveries]
    with committed_app.app_context(), tenant_session(committed_db, portal_tenant) as s:
        order = s.execute(select(PurchaseOrder).where(PurchaseOrder.erp_ref == str(purchase))).scalar_one()
        early, later = (
            orders.create_ship_notice(s, order=order, quantities={line.id: D("50")},
                                      shipment=ShipmentInput(today - timedelta(days=n), today),
                                      expected_version=None, actor=SUPPLIER_ACTOR)
            for n in (2, 1)
        )  # fmt: skip
        numbers = early.number, later.number
    first_move, second_move = (m["id"] for m in erp.moves(line_id) if m["state"] == "draft")
    erp.receive([first_move], "Acme Fasteners", today, reference=numbers[1])
    _pull(committed_app, committed_db, portal_tenant)
    with tenant_session(committed_db, portal_tenant) as s:
        receipt = s.execute(select(Receipt).where(Receipt.line_id == line.id)).scalar_one()
        found = s.execute(select(ShipNotice).where(ShipNotice.order_id == line.order_id)).scalars()
        notices = {n.number: n for n in found}
        assert receipt.ship_notice_id == notices[numbers[1]].id
        assert [notices[n].state for n in numbers] == [ShipNoticeState.SENT, ShipNoticeState.RECEIVED]

    erp.receive([second_move], "Acme Fasteners", today, reference="DHL delivery 0042")
    _pull(committed_app, committed_db, portal_tenant)
    with tenant_session(committed_db, portal_tenant) as s:
        receipts = s.execute(select(Receipt).where(Receipt.line_id == line.id).order_by(Receipt.id)).scalars().all()
        assert [(r.quantity, r.ship_notice_id is None) for r in receipts] == [(D("50"), False), (D("50"), True)]
        states = s.execute(select(ShipNotice.state).where(ShipNotice.order_id == line.order_id)
                           .order_by(ShipNotice.id)).scalars().all()  # fmt: skip
        assert states == [ShipNoticeState.RECEIVED, ShipNoticeState.RECEIVED]


def _quotation_in_portal(app, database, tenant_id: int, erp: TrytonData, code: str, requested: date):  # type: ignore[no-untyped-def]
    """A one-line Tryton quotation (20 units of ``code``), pulled: its id, its line's, and the portal's line."""
    purchase, (line_id,) = erp.purchase(f"Quote {code}", [(code, 20, "3.00", requested)], confirm=False)
    erp.client.call("purchase.purchase", "quote", [purchase])
    _pull(app, database, tenant_id)
    (line,) = _portal_lines(database, tenant_id, purchase)
    return purchase, line_id, line


def _accept_and_push(app, database, tenant_id: int, purchase: int) -> None:  # type: ignore[no-untyped-def]
    """The supplier accepts the pulled purchase as requested; the worker pushes it."""
    with app.app_context(), tenant_session(database, tenant_id) as s:
        order = s.execute(select(PurchaseOrder).where(PurchaseOrder.erp_ref == str(purchase))).scalar_one()
        orders.accept_all(s, order=order, expected_version=None, actor=SUPPLIER_ACTOR)
    with app.app_context():
        drain(database, tenant_id)


def _line_date(erp: TrytonData, line_id: int) -> date:
    return erp.client.search_read("purchase.line", [("id", "=", line_id)], ["delivery_date"])[0]["delivery_date"]


def test_a_buyers_edit_in_tryton_to_an_answered_line_stops_the_push_until_an_administrator_retries(
    committed_app, committed_db, portal_tenant, erp
):
    """Tryton's line stamp moves with every note the portal writes, so the push compares the line's terms: the
    buyer's new date on a quotation line the supplier has answered stops the supplier's next push (a conflict,
    failed at once) and the buyer's date stands; the administrator's retry, after checking, writes it over."""
    requested = date.today() + timedelta(days=10)
    purchase, line_id, line = _quotation_in_portal(committed_app, committed_db, portal_tenant, erp, "QT-1", requested)
    _accept_and_push(committed_app, committed_db, portal_tenant, purchase)
    assert "[portal commitment-" in erp.note(line_id)  # the acceptance's note moved Tryton's stamp: no conflict

    # The buyer moves the quotation line's date in Tryton; an intake does not take it (the line is answered).
    buyer_date = requested + timedelta(days=5)
    erp.client.call("purchase.line", "write", [line_id], {"delivery_date_edit": True, "delivery_date": buyer_date})
    _pull(committed_app, committed_db, portal_tenant)
    (line,) = _portal_lines(committed_db, portal_tenant, purchase)
    assert line.requested_date == requested

    promised = requested + timedelta(days=2)
    _repromise(committed_app, committed_db, portal_tenant, purchase, line.id, Delivery(D("20"), promised))
    with committed_app.app_context():
        drain(committed_db, portal_tenant)
    assert _line_date(erp, line_id) == buyer_date  # the buyer's edit stands
    with tenant_session(committed_db, portal_tenant) as s:
        sync = s.execute(select(ErpLineSync).where(ErpLineSync.line_id == line.id)).scalar_one()
        assert sync.status == SyncStatus.FAILED
        assert sync.error.startswith("conflict:") and "the date of line" in sync.error
        failed = list(
            s.execute(
                select(OutboxEvent.id, OutboxEvent.payload)
                .where(OutboxEvent.topic == "erp.sync_line", OutboxEvent.failed_at.is_not(None))
                .order_by(OutboxEvent.id)
            )
        )
        # The promise's change request and the buyer's approval each asked for a push: both stopped.
        assert [payload["line_id"] for _, payload in failed] == [line.id, line.id]

    with committed_app.app_context(), tenant_session(committed_db, portal_tenant) as s:
        event = s.execute(select(OutboxEvent).where(OutboxEvent.id == failed[-1].id)).scalar_one()
        services.retry_job(s, event)
    with committed_app.app_context():
        drain(committed_db, portal_tenant)
    assert _line_date(erp, line_id) == promised
    with tenant_session(committed_db, portal_tenant) as s:
        sync = s.execute(select(ErpLineSync).where(ErpLineSync.line_id == line.id)).scalar_one()
        assert (sync.status, sync.error) == (SyncStatus.SYNCED, "")
        # The push that went through wrote the whole commitment: the other failed push is answered by it.
        still_failed = s.execute(
            select(OutboxEvent.id).where(OutboxEvent.failed_at.is_not(None), OutboxEvent.done_at.is_(None))
        ).all()
        assert still_failed == []


def test_a_buyers_edit_in_tryton_sent_to_the_supplier_is_answered_and_pushed_without_a_conflict(
    committed_app, committed_db, portal_tenant, erp
):
    """The intake keeps the buyer's new date aside; a buyer sends it to the supplier, whose new answer reaches
    Tryton with no conflict and no note for the withdrawn commitment (the buyer made that change there)."""
    requested = date.today() + timedelta(days=12)
    purchase, line_id, line = _quotation_in_portal(committed_app, committed_db, portal_tenant, erp, "QT-R", requested)
    _accept_and_push(committed_app, committed_db, portal_tenant, purchase)
    buyer_date = requested + timedelta(days=6)
    erp.client.call("purchase.line", "write", [line_id], {"delivery_date_edit": True, "delivery_date": buyer_date})
    _pull(committed_app, committed_db, portal_tenant)
    with committed_app.app_context(), tenant_session(committed_db, portal_tenant) as s:
        order = s.execute(select(PurchaseOrder).where(PurchaseOrder.erp_ref == str(purchase))).scalar_one()
        line = s.execute(select(PurchaseOrderLine).where(PurchaseOrderLine.id == line.id)).scalar_one()
        sync = s.execute(select(ErpLineSync).where(ErpLineSync.line_id == line.id)).scalar_one()
        assert services.revision_of(sync) == orders.LineTerms(D("20"), buyer_date, D("3"))
        services.take_revision(
            s, order=order, line=line, quantity=D("20"), requested_date=buyer_date, comment="", expected_version=None,
            actor=BUYER_ACTOR,
        )  # fmt: skip
    with committed_app.app_context():
        drain(committed_db, portal_tenant)
    _accept_and_push(committed_app, committed_db, portal_tenant, purchase)
    assert _line_date(erp, line_id) == buyer_date
    assert erp.note(line_id).count("[portal commitment-") == 2  # the two acceptances
    with tenant_session(committed_db, portal_tenant) as s:
        sync = s.execute(select(ErpLineSync).where(ErpLineSync.line_id == line.id)).scalar_one()
        assert (sync.status, sync.error, sync.revised_terms) == (SyncStatus.SYNCED, "", None)
        assert s.execute(select(OutboxEvent.id).where(OutboxEvent.failed_at.is_not(None))).first() is None


def test_a_smaller_commitment_on_a_quotation_reaches_the_moves_once_the_buyer_confirms(
    committed_app, committed_db, portal_tenant, erp
):
    """Tryton takes a line's quantity in draft only: on a quotation the push writes the promised date and the
    notes, and leaves the quantity (no failed push). Once the buyer confirms the purchase in Tryton, the next
    intake has the commitment written again: the moves made from the line's quantity become what the supplier
    committed, the rest cancelled (Tryton's exception); a further intake asks for nothing more."""
    requested = date.today() + timedelta(days=10)
    purchase, line_id, line = _quotation_in_portal(committed_app, committed_db, portal_tenant, erp, "QP-1", requested)
    promised = requested + timedelta(days=3)
    answer = LineAnswer(line.id, "change", (Delivery(D("12"), promised),))
    _answer_and_approve(committed_app, committed_db, portal_tenant, purchase, [answer])
    with committed_app.app_context():
        drain(committed_db, portal_tenant)
    quoted = erp.client.search_read("purchase.line", [("id", "=", line_id)], ["quantity", "delivery_date"])[0]
    assert (quoted["quantity"], quoted["delivery_date"]) == (20, promised)
    assert "12 on " in erp.note(line_id)  # the smaller quantity, for the buyer
    with tenant_session(committed_db, portal_tenant) as s:
        sync = s.execute(select(ErpLineSync).where(ErpLineSync.line_id == line.id)).scalar_one()
        assert (sync.status, sync.erp_stage) == (SyncStatus.SYNCED, "line")

    # The buyer confirms the purchase in Tryton: its moves are made from the line (20).
    erp.client.call("purchase.purchase", "confirm", [purchase])
    assert erp.open_moves(line_id) == [(D("20"), promised)]
    with committed_app.app_context():
        handlers.pull_tenant(committed_db, portal_tenant)
        ran = drain(committed_db, portal_tenant)
    assert ran.count("erp.sync_line") == 1
    assert erp.open_moves(line_id) == [(D("12"), promised)]
    assert [D(str(m["quantity"])) for m in erp.moves(line_id) if m["state"] == "cancelled"] == [D("8")]
    with tenant_session(committed_db, portal_tenant) as s:
        sync = s.execute(select(ErpLineSync).where(ErpLineSync.line_id == line.id)).scalar_one()
        assert (sync.status, sync.erp_stage) == (SyncStatus.SYNCED, "moves")
    with committed_app.app_context():
        handlers.pull_tenant(committed_db, portal_tenant)
        assert "erp.sync_line" not in drain(committed_db, portal_tenant)


def test_a_quotation_cancelled_in_tryton_after_the_suppliers_answer_asks_for_no_push(
    committed_app, committed_db, portal_tenant, erp
):
    """A cancelled purchase keeps no commitment anywhere: the intake cancels the answered line and asks for no
    push (one would only fail against the cancelled purchase, again and again)."""
    requested = date.today() + timedelta(days=10)
    purchase, _, line = _quotation_in_portal(committed_app, committed_db, portal_tenant, erp, "QC-1", requested)
    _accept_and_push(committed_app, committed_db, portal_tenant, purchase)

    def pushes() -> int:
        with tenant_session(committed_db, portal_tenant) as s:
            return len(s.execute(select(OutboxEvent.id).where(OutboxEvent.topic == "erp.sync_line")).all())

    before = pushes()
    erp.client.call("purchase.purchase", "cancel", [purchase])
    _pull(committed_app, committed_db, portal_tenant)
    (line,) = _portal_lines(committed_db, portal_tenant, purchase)
    assert line.state == LineState.CANCELLED
    assert pushes() == before
