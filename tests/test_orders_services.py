"""Service-level rules of order collaboration: answers, tolerances, change requests,
re-promises, ship notices, receipts, conflicts; and their ledger, audit and outbox rows."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal import audit
from portal.audit import AuditEvent
from portal.auth.services import Actor, ServiceError
from portal.orders import services as svc
from portal.orders.models import (
    ChangeKind,
    ChangeRequest,
    ChangeState,
    CommitmentEntry,
    DeliverySchedule,
    LineState,
    OrderState,
    OutboxEvent,
    PurchaseOrder,
    PurchaseOrderLine,
    ShipNotice,
    ShipNoticeLine,
    ShipNoticeState,
)
from portal.orders.outcomes import OUTCOME_COLUMNS
from portal.orders.services import Delivery, LineAnswer, ShipmentInput
from tests.conftest import tenant_session
from tests.factories import make_order, make_supplier, make_tenant, make_tolerance

SUPPLIER = Actor(None, "supplier@example.org", "127.0.0.1")
BUYER = Actor(None, "buyer@example.org", "127.0.0.1")


@pytest.fixture
def setup(session):
    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    make_tolerance(session, tenant)  # -10 % / +5 % quantity, 3 days earlier, 2 days later
    order = make_order(session, tenant, supplier)
    return session, tenant, supplier, order


def lines_of(session, order):
    return svc.order_lines(session, order)


def count(session, model, **where) -> int:
    stmt = select(func.count()).select_from(model)
    for key, value in where.items():
        stmt = stmt.where(getattr(model, key) == value)
    return session.execute(stmt).scalar_one()


def d(days: int) -> date:
    return date.today() + timedelta(days=days)


def test_accept_all_confirms_every_line_with_one_ledger_audit_and_event_each(setup):
    session, tenant, _supplier, order = setup
    version = order.version
    result = svc.accept_all(session, order=order, expected_version=version, actor=SUPPLIER)
    lines = lines_of(session, order)
    assert result.confirmed == [line.id for line in lines] and not result.pending
    assert all(line.state == LineState.CONFIRMED for line in lines)
    assert order.state == OrderState.CONFIRMED and order.version == version + 1 and order.responded_at
    audit.write_pending(session)  # what the commit does
    for line in lines:
        schedules = svc.active_schedules(session, line)
        assert [(s.quantity, s.promised_date) for s in schedules] == [(line.quantity, line.requested_date)]
        assert count(session, CommitmentEntry, line_id=line.id) == 1
        assert count(session, AuditEvent, object_type="order_line", object_id=str(line.id)) == 1
    topics = session.execute(select(OutboxEvent.topic).where(OutboxEvent.tenant_id == tenant.id)).scalars().all()
    assert sorted(topics) == ["commitment.changed", "commitment.changed", "order.responded"]


def test_accepting_more_lines_costs_no_more_statements(session):
    """The lines of one answer are flushed together: one batched INSERT per table, whatever their number."""
    from sqlalchemy import event

    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement.split("(")[0].split(" SET ")[0].strip())

    def statements_to_accept(lines: int) -> list[str]:
        order = make_order(session, tenant, supplier, [(str(n), "1", 10 + n) for n in range(1, lines + 1)])
        session.flush()
        statements.clear()
        event.listen(session.connection(), "before_cursor_execute", record)
        try:
            svc.accept_all(session, order=order, expected_version=None, actor=SUPPLIER)
            session.flush()
        finally:
            event.remove(session.connection(), "before_cursor_execute", record)
        assert count(session, CommitmentEntry, order_id=order.id) == lines
        return sorted(statements)

    two, seven = statements_to_accept(2), statements_to_accept(7)
    assert two == seven
    assert seven.count("INSERT INTO commitment_ledger") == 1
    # Accepting as requested is inside any tolerance: the policies are not read.
    make_tolerance(session, tenant)
    assert not [s for s in statements_to_accept(3) if "tolerance_policies" in s]


def test_a_line_answered_twice_is_refused(setup):
    session, _, _, order = setup
    first, _second = lines_of(session, order)
    with pytest.raises(svc.InvalidAnswers) as raised:
        svc.respond(
            session,
            order=order,
            expected_version=order.version,
            actor=SUPPLIER,
            answers=[LineAnswer(first.id, "accept"), LineAnswer(first.id, "reject", reason_code="price")],
        )
    assert "answered twice" in raised.value.errors[first.id][0]
    assert count(session, CommitmentEntry) == 0 and count(session, ChangeRequest) == 0


def test_partial_quantity_inside_tolerance_is_confirmed_at_once(setup):
    session, _, _, order = setup
    first, second = lines_of(session, order)
    result = svc.respond(
        session,
        order=order,
        expected_version=order.version,
        actor=SUPPLIER,
        answers=[
            LineAnswer(first.id, "change", (Delivery(Decimal("92"), first.requested_date),)),
            LineAnswer(second.id, "accept"),
        ],
    )
    assert result.confirmed == [first.id, second.id]
    assert svc.committed_quantity(session, first) == Decimal("92")


def test_answer_outside_tolerance_becomes_a_change_request(setup):
    session, _, _, order = setup
    first, second = lines_of(session, order)
    late = first.requested_date + timedelta(days=5)
    result = svc.respond(
        session,
        order=order,
        expected_version=order.version,
        actor=SUPPLIER,
        answers=[
            LineAnswer(
                first.id,
                "change",
                (Delivery(Decimal("60"), first.requested_date), Delivery(Decimal("40"), late)),
                reason_code="",
                comment="two runs",
            ),
            LineAnswer(second.id, "accept"),
        ],
    )
    assert result.pending == [first.id] and result.confirmed == [second.id]
    assert first.state == LineState.CHANGES_PENDING and order.state == OrderState.CHANGES_PENDING
    request = session.execute(select(ChangeRequest).where(ChangeRequest.line_id == first.id)).scalar_one()
    assert request.kind == ChangeKind.COMMITMENT and "5 days after" in request.outside[0]
    assert count(session, CommitmentEntry, line_id=first.id) == 0  # nothing promised until the buyer decides
    svc.decide(
        session, request=request, order=order, decision="approve", comment="ok", expected_version=None, actor=BUYER
    )
    assert first.state == LineState.CONFIRMED and order.state == OrderState.CONFIRMED
    assert [s.quantity for s in svc.active_schedules(session, first)] == [Decimal("60"), Decimal("40")]


def test_a_commitment_approved_after_goods_arrived_keeps_what_arrived_against_it(setup):
    """Goods may arrive while a change request waits for the buyer: the deliveries the approval writes are set
    against the receipts already there, not left as "nothing arrived"."""
    session, _, _, order = setup
    first, _ = lines_of(session, order)
    late = first.requested_date + timedelta(days=5)
    svc.respond(
        session,
        order=order,
        expected_version=None,
        actor=SUPPLIER,
        answers=[LineAnswer(first.id, "change", (Delivery(Decimal("60"), first.requested_date),
                                                 Delivery(Decimal("40"), late)), comment="two runs")],
    )  # fmt: skip
    request = session.execute(select(ChangeRequest).where(ChangeRequest.line_id == first.id)).scalar_one()
    svc.record_receipt(session, order=order, line=first, quantity=Decimal("70"), received_on=d(1), actor=BUYER)
    svc.decide(
        session, request=request, order=order, decision="approve", comment="ok", expected_version=None, actor=BUYER
    )
    stored = session.execute(
        select(DeliverySchedule.quantity, *(getattr(DeliverySchedule, c) for c in OUTCOME_COLUMNS))
        .where(DeliverySchedule.line_id == first.id, DeliverySchedule.active.is_(True))
        .order_by(DeliverySchedule.promised_date)
    ).all()
    # 70 arrived on day 1: the first delivery (60) in full, 10 of the second (40).
    assert [tuple(row) for row in stored] == [
        (Decimal("60"), Decimal("60"), Decimal("60"), d(1), d(1)),
        (Decimal("40"), Decimal("40"), Decimal("10"), d(1), None),
    ]
    assert first.state == LineState.PARTIALLY_RECEIVED  # not "confirmed" as if nothing had arrived


def test_a_line_waits_for_the_buyer_whatever_arrives_meanwhile_and_then_stands_where_its_goods_are(setup):
    """A receipt does not end a change request's wait: the line stays "changes pending" (and its order with it)
    until the buyer decides. A no sends it back to where it stood, as its quantities say now."""
    session, _, _, order = setup
    first, second = lines_of(session, order)
    svc.respond(
        session,
        order=order,
        expected_version=None,
        actor=SUPPLIER,
        answers=[
            LineAnswer(first.id, "change", (Delivery(Decimal("100"), first.requested_date + timedelta(days=9)),)),
            LineAnswer(second.id, "reject", reason_code="no_capacity"),
        ],
    )
    late, rejection = session.execute(select(ChangeRequest).order_by(ChangeRequest.line_id)).scalars().all()
    svc.record_receipt(session, order=order, line=first, quantity=Decimal("30"), received_on=d(1), actor=BUYER)
    svc.record_receipt(session, order=order, line=second, quantity=Decimal("40"), received_on=d(1), actor=BUYER)
    assert first.state == second.state == LineState.CHANGES_PENDING and order.state == OrderState.CHANGES_PENDING
    for request in (late, rejection):
        svc.decide(
            session, request=request, order=order, decision="counter", comment="ship it as ordered",
            expected_version=None, actor=BUYER,
        )  # fmt: skip
    # Both were unanswered: goods arrived against them since, so they are received (in part and in full), as
    # a receipt makes an unanswered line; not "awaiting response" with goods in the warehouse.
    assert (first.state, second.state) == (LineState.PARTIALLY_RECEIVED, LineState.RECEIVED)


def test_a_cancelled_ship_notice_leaves_a_pending_line_pending_and_a_no_then_counts_what_is_left(setup):
    session, _, _, order = setup
    svc.accept_all(session, order=order, expected_version=None, actor=SUPPLIER)
    first, _ = lines_of(session, order)
    notice = svc.create_ship_notice(
        session, order=order, quantities={first.id: Decimal("40")}, shipment=ShipmentInput(d(1), d(2)),
        expected_version=None, actor=SUPPLIER,
    )  # fmt: skip
    svc.change_promise(
        session, order=order, line=first, deliveries=[Delivery(first.quantity, d(30))], reason_code="transport",
        comment="", expected_version=None, actor=SUPPLIER,
    )  # fmt: skip
    request = session.execute(select(ChangeRequest).where(ChangeRequest.line_id == first.id)).scalar_one()
    assert request.previous_state == LineState.PARTIALLY_SHIPPED
    svc.cancel_ship_notice(session, order=order, notice=notice, expected_version=None, actor=SUPPLIER)
    assert first.state == LineState.CHANGES_PENDING and first.shipped_quantity == 0
    svc.decide(
        session, request=request, order=order, decision="reject", comment="keep the date", expected_version=None,
        actor=BUYER,
    )  # fmt: skip
    assert first.state == LineState.CONFIRMED  # nothing shipped any more: not "partially shipped"


def test_a_promise_cut_to_what_has_shipped_leaves_the_line_shipped(setup):
    session, _, _, order = setup
    svc.accept_all(session, order=order, expected_version=None, actor=SUPPLIER)
    first, _ = lines_of(session, order)
    svc.create_ship_notice(
        session, order=order, quantities={first.id: Decimal("95")}, shipment=ShipmentInput(d(1), d(2)),
        expected_version=None, actor=SUPPLIER,
    )  # fmt: skip
    assert first.state == LineState.PARTIALLY_SHIPPED
    # 95 of 100 is inside the 10 % under-tolerance: committed at once, and all of it has shipped.
    request = svc.change_promise(
        session, order=order, line=first, deliveries=[Delivery(Decimal("95"), first.requested_date)],
        reason_code="material_shortage", comment="", expected_version=None, actor=SUPPLIER,
    )  # fmt: skip
    assert request is None
    assert first.state == LineState.SHIPPED


def test_bad_answers_are_all_reported_and_nothing_changes(setup):
    session, _, _, order = setup
    first, second = lines_of(session, order)
    version = order.version
    too_many = tuple(Delivery(Decimal("1"), first.requested_date) for _ in range(11))
    with pytest.raises(svc.InvalidAnswers) as raised:
        svc.respond(
            session,
            order=order,
            expected_version=version,
            actor=SUPPLIER,
            answers=[
                LineAnswer(first.id, "change", too_many),
                LineAnswer(second.id, "change", (Delivery(Decimal("43"), second.requested_date),)),
            ],
        )
    errors = raised.value.errors
    assert "at most 10 deliveries" in errors[first.id][0]
    assert "at most 42" in errors[second.id][0]  # 40 ordered + 5 %
    session.refresh(order)
    assert order.version == version and count(session, CommitmentEntry) == 0
    assert all(line.state == LineState.AWAITING_RESPONSE for line in lines_of(session, order))
    with pytest.raises(svc.InvalidAnswers) as raised:
        svc.respond(
            session,
            order=order,
            expected_version=version,
            actor=SUPPLIER,
            answers=[
                LineAnswer(first.id, "change", (Delivery(Decimal("0"), first.requested_date),)),
                LineAnswer(second.id, "reject"),
            ],
        )
    assert "above zero" in raised.value.errors[first.id][0] and "why" in raised.value.errors[second.id][0]


def test_rejection_always_goes_to_the_buyer(setup):
    session, _, _, order = setup
    first, second = lines_of(session, order)
    svc.respond(
        session,
        order=order,
        expected_version=None,
        actor=SUPPLIER,
        answers=[
            LineAnswer(first.id, "reject", reason_code="discontinued", comment="end of life"),
            LineAnswer(second.id, "accept"),
        ],
    )
    request = session.execute(select(ChangeRequest).where(ChangeRequest.line_id == first.id)).scalar_one()
    assert request.kind == ChangeKind.REJECT and first.state == LineState.CHANGES_PENDING
    with pytest.raises(svc.InvalidAnswers):
        svc.decide(
            session, request=request, order=order, decision="reject", comment=" ", expected_version=None, actor=BUYER
        )
    svc.decide(
        session, request=request, order=order, decision="approve", comment="", expected_version=None, actor=BUYER
    )
    assert first.state == LineState.REJECTED and request.state == ChangeState.APPROVED
    assert (
        session.execute(select(CommitmentEntry.kind).where(CommitmentEntry.line_id == first.id)).scalar_one()
        == "rejected"
    )
    with pytest.raises(ServiceError, match="decided already"):
        svc.decide(
            session, request=request, order=order, decision="approve", comment="", expected_version=None, actor=BUYER
        )


def test_price_change_needs_the_buyer_and_a_no_returns_the_line(setup):
    session, _, _, order = setup
    first, second = lines_of(session, order)
    svc.respond(
        session,
        order=order,
        expected_version=None,
        actor=SUPPLIER,
        answers=[LineAnswer(first.id, "accept", price=Decimal("2.75"))],
    )
    # "accept" with a price is an answer with a price change: it waits.
    request = session.execute(select(ChangeRequest).where(ChangeRequest.line_id == first.id)).scalar_one()
    assert request.kind == ChangeKind.PRICE and request.proposed_price == Decimal("2.75")
    svc.decide(
        session,
        request=request,
        order=order,
        decision="counter",
        comment="2.60 is our limit",
        expected_version=None,
        actor=BUYER,
    )
    assert first.state == LineState.AWAITING_RESPONSE and request.state == ChangeState.COUNTERED
    svc.respond(
        session,
        order=order,
        expected_version=None,
        actor=SUPPLIER,
        answers=[LineAnswer(first.id, "accept", price=Decimal("2.60"))],
    )
    second_request = session.execute(
        select(ChangeRequest).where(ChangeRequest.line_id == first.id, ChangeRequest.state == ChangeState.OPEN)
    ).scalar_one()
    svc.decide(
        session, request=second_request, order=order, decision="approve", comment="", expected_version=None, actor=BUYER
    )
    assert first.unit_price == Decimal("2.60") and first.state == LineState.CONFIRMED
    # The order's value is its lines' at the price now agreed.
    assert order.total_value == sum(line.quantity * line.unit_price for line in lines_of(session, order))
    assert order.total_value == Decimal("100") * Decimal("2.60") + Decimal("40") * second.unit_price


def test_stale_version_is_a_conflict_and_changes_nothing(setup):
    session, _, _, order = setup
    first, _ = lines_of(session, order)
    stale = order.version
    svc.respond(session, order=order, expected_version=stale, actor=SUPPLIER, answers=[LineAnswer(first.id, "accept")])
    _, second = lines_of(session, order)
    with pytest.raises(svc.Conflict) as raised:
        svc.respond(
            session, order=order, expected_version=stale, actor=SUPPLIER, answers=[LineAnswer(second.id, "accept")]
        )
    assert raised.value.current_version == stale + 1
    assert second.state == LineState.AWAITING_RESPONSE


def test_two_sessions_confirming_the_same_line_at_once_exactly_one_wins(committed_db):
    with tenant_session(committed_db, None) as s:
        tenant = make_tenant(s)
        order = make_order(s, tenant, make_supplier(s, tenant))
        tenant_id, order_id, version = tenant.id, order.id, order.version
        line_id = svc.order_lines(s, order)[0].id
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def answer() -> None:
        with committed_db.transaction(tenant_id=tenant_id) as s:
            mine = s.get(PurchaseOrder, order_id)
            barrier.wait()
            try:
                svc.respond(
                    s, order=mine, expected_version=version, actor=SUPPLIER, answers=[LineAnswer(line_id, "accept")]
                )
                outcomes.append("won")
            except svc.Conflict:
                outcomes.append("conflict")

    threads = [threading.Thread(target=answer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "won"]
    with tenant_session(committed_db, tenant_id) as s:
        assert s.execute(select(func.count()).select_from(CommitmentEntry)).scalar_one() == 1


def test_repromise_after_confirmation_keeps_every_version(setup):
    session, _, _, order = setup
    svc.accept_all(session, order=order, expected_version=None, actor=SUPPLIER)
    first, _ = lines_of(session, order)
    inside = first.requested_date + timedelta(days=2)
    svc.change_promise(
        session,
        order=order,
        line=first,
        deliveries=[Delivery(first.quantity, inside)],
        reason_code="transport",
        comment="truck",
        expected_version=None,
        actor=SUPPLIER,
    )
    entries = (
        session.execute(select(CommitmentEntry).where(CommitmentEntry.line_id == first.id).order_by(CommitmentEntry.id))
        .scalars()
        .all()
    )
    assert [e.kind for e in entries] == ["accepted", "repromised"]
    assert entries[1].previous == entries[0].schedules and entries[1].reason_code == "transport"
    schedule = svc.active_schedules(session, first)[0]
    assert schedule.first_promised_date == first.requested_date and schedule.promised_date == inside
    outside = first.requested_date + timedelta(days=9)
    result = svc.change_promise(
        session,
        order=order,
        line=first,
        deliveries=[Delivery(first.quantity, outside)],
        reason_code="production_delay",
        comment="",
        expected_version=None,
        actor=SUPPLIER,
    )
    assert isinstance(result, ChangeRequest) and first.state == LineState.CHANGES_PENDING
    with pytest.raises(svc.InvalidAnswers, match="attention"):
        svc.change_promise(
            session,
            order=order,
            line=first,
            deliveries=[Delivery(first.quantity, inside)],
            reason_code="",
            comment="",
            expected_version=None,
            actor=SUPPLIER,
        )


def test_ship_notices_respect_committed_quantities_and_can_be_cancelled(setup):
    session, _, _, order = setup
    svc.accept_all(session, order=order, expected_version=None, actor=SUPPLIER)
    first, second = lines_of(session, order)
    shipment = ShipmentInput(d(1), d(3), "DHL", "JD0001")
    with pytest.raises(svc.InvalidAnswers) as raised:
        svc.create_ship_notice(
            session,
            order=order,
            quantities={first.id: Decimal("101")},
            shipment=shipment,
            expected_version=None,
            actor=SUPPLIER,
        )
    assert "At most 100" in raised.value.errors[first.id][0]
    notice = svc.create_ship_notice(
        session,
        order=order,
        quantities={first.id: Decimal("100"), second.id: Decimal("10")},
        shipment=shipment,
        expected_version=None,
        actor=SUPPLIER,
    )
    assert first.state == LineState.SHIPPED and second.state == LineState.PARTIALLY_SHIPPED
    assert order.state == OrderState.CONFIRMED  # line 2 still has 30 to ship
    assert svc.shippable_quantities(session, order, [second])[second.id] == Decimal("30")
    svc.cancel_ship_notice(session, order=order, notice=notice, expected_version=None, actor=SUPPLIER)
    assert first.state == LineState.CONFIRMED and first.shipped_quantity == 0
    with pytest.raises(ServiceError, match="not been received"):
        svc.cancel_ship_notice(session, order=order, notice=notice, expected_version=None, actor=SUPPLIER)


def test_ship_notices_are_received_as_their_goods_arrive_first_in_first_out(setup):
    """Receipts name lines, not notices: each goes to the earliest notice of its line still waiting, so a notice
    is received once each of its lines has what it shipped. Goods that arrived against a notice keep it from
    being cancelled; a notice withdrawn before anything came hands the receipts on to the next."""
    session, _, _, order = setup
    svc.accept_all(session, order=order, expected_version=None, actor=SUPPLIER)
    first, second = lines_of(session, order)

    def ship(quantities: dict[int, str], day: int) -> ShipNotice:
        return svc.create_ship_notice(
            session, order=order, quantities={k: Decimal(v) for k, v in quantities.items()},
            shipment=ShipmentInput(d(day), d(day + 2)), expected_version=None, actor=SUPPLIER,
        )  # fmt: skip

    def receive(line: PurchaseOrderLine, quantity: str, day: int) -> None:
        svc.record_receipt(session, order=order, line=line, quantity=Decimal(quantity), received_on=d(day),
                           actor=BUYER)  # fmt: skip
        session.expire_all()

    def states() -> list[str]:
        return [n.state.value for n in session.execute(select(ShipNotice).order_by(ShipNotice.id)).scalars()]

    def arrived() -> list[tuple[int, int, Decimal]]:
        return [tuple(row) for row in session.execute(  # type: ignore[misc]
            select(ShipNoticeLine.notice_id, ShipNoticeLine.line_id, ShipNoticeLine.received_quantity)
            .order_by(ShipNoticeLine.id)
        )]  # fmt: skip

    early = ship({first.id: "60", second.id: "20"}, 1)
    later = ship({first.id: "40"}, 2)
    receive(first, "50", 3)
    receive(second, "20", 3)
    assert states() == ["sent", "sent"]  # 10 of the first line still to come for the first notice
    # Each notice line keeps what of it has arrived.
    assert arrived() == [(early.id, first.id, 50), (early.id, second.id, 20), (later.id, first.id, 0)]
    receive(first, "10", 3)
    assert states() == ["received", "sent"]
    assert arrived() == [(early.id, first.id, 60), (early.id, second.id, 20), (later.id, first.id, 0)]
    with pytest.raises(ServiceError, match="not been received"):
        svc.cancel_ship_notice(session, order=order, notice=early, expected_version=None, actor=SUPPLIER)
    receive(first, "30", 4)
    assert arrived()[2] == (later.id, first.id, 30)
    with pytest.raises(ServiceError, match=rf"Goods of ship notice {later.number} have arrived \(30 so far\)"):
        svc.cancel_ship_notice(session, order=order, notice=later, expected_version=None, actor=SUPPLIER)
    receive(first, "10", 5)
    assert states() == ["received", "received"]


def test_a_notice_withdrawn_before_its_goods_came_leaves_them_to_the_next(session):
    tenant = make_tenant(session)
    order = make_order(session, tenant, make_supplier(session, tenant), [("100", "1.00", 10)])
    svc.accept_all(session, order=order, expected_version=None, actor=SUPPLIER)
    (line,) = lines_of(session, order)
    notices = [
        svc.create_ship_notice(session, order=order, quantities={line.id: Decimal("50")},
                               shipment=ShipmentInput(d(1), d(2)), expected_version=None, actor=SUPPLIER)
        for _ in range(2)
    ]  # fmt: skip
    svc.cancel_ship_notice(session, order=order, notice=notices[0], expected_version=None, actor=SUPPLIER)
    svc.record_receipt(session, order=order, line=line, quantity=Decimal("50"), received_on=d(2), actor=BUYER)
    session.expire_all()
    assert [n.state for n in notices] == [ShipNoticeState.CANCELLED, ShipNoticeState.RECEIVED]


def per_notice(shipped, receipts):  # type: ignore[no-untyped-def]
    """``match_receipts`` summed per notice: (shipped, arrived)."""
    return svc.notice_totals(svc.match_receipts(shipped, receipts))


def test_matching_receipts_to_notices_by_line_and_date():
    """The matching alone: first in, first out per line, by ship date; a receipt dated before a notice was
    shipped is not its goods; what is left over answers no notice."""

    shipped = [(1, d(1), 10, Decimal("5")), (1, d(1), 11, Decimal("2")), (2, d(3), 10, Decimal("5"))]
    assert per_notice(shipped, []) == {1: (Decimal("7"), 0), 2: (Decimal("5"), 0)}
    assert per_notice(shipped, [(10, Decimal("8"), d(2), None), (11, Decimal("2"), d(2), None)]) == {
        1: (Decimal("7"), Decimal("7")), 2: (Decimal("5"), 0)  # the other 3 came before notice 2 was shipped
    }  # fmt: skip
    assert per_notice(shipped, [(10, Decimal("20"), d(4), None)]) == {
        1: (Decimal("7"), Decimal("5")), 2: (Decimal("5"), Decimal("5"))
    }  # fmt: skip
    assert per_notice(shipped, [(10, Decimal("5"), d(0), None)]) == {1: (Decimal("7"), 0), 2: (Decimal("5"), 0)}
    # Line by line: what each notice shipped of each line, and what of it came.
    assert svc.match_receipts(shipped, [(10, Decimal("8"), d(4), None)]) == {
        (1, 10): (Decimal("5"), Decimal("5")), (1, 11): (Decimal("2"), 0), (2, 10): (Decimal("5"), Decimal("3"))
    }  # fmt: skip


def test_a_receipt_naming_its_notice_settles_that_notice_first():
    """Named goods go to their notice whatever the dates say, before any receipt matched by date, and only up
    to what the notice shipped of that line; the rest, and a notice that does not ship the line, fall back to
    the matching by date."""

    shipped = [(1, d(1), 10, Decimal("5")), (2, d(3), 10, Decimal("5")), (2, d(3), 11, Decimal("4"))]
    # Named notice 2 although notice 1 shipped earlier: notice 1 keeps waiting.
    assert per_notice(shipped, [(10, Decimal("5"), d(4), 2)]) == {
        1: (Decimal("5"), 0), 2: (Decimal("9"), Decimal("5"))
    }  # fmt: skip
    # Named even before its ship date (a notice sent late, after the goods): still its goods.
    assert per_notice(shipped, [(11, Decimal("4"), d(2), 2)]) == {
        1: (Decimal("5"), 0), 2: (Decimal("9"), Decimal("4"))
    }  # fmt: skip
    # An unnamed receipt that came first does not take what a later named one settles: it goes to notice 1.
    assert per_notice(shipped, [(10, Decimal("5"), d(4), None), (10, Decimal("5"), d(5), 2)]) == {
        1: (Decimal("5"), Decimal("5")), 2: (Decimal("9"), Decimal("5"))
    }  # fmt: skip
    # Beyond what notice 2 shipped of line 10, the rest is matched by date (to notice 1).
    assert per_notice(shipped, [(10, Decimal("8"), d(4), 2)]) == {
        1: (Decimal("5"), Decimal("3")), 2: (Decimal("9"), Decimal("5"))
    }  # fmt: skip
    # Notice 1 does not ship line 11 (nor is notice 9 among the live ones): matched by date instead.
    assert per_notice(shipped, [(11, Decimal("4"), d(4), 1), (10, Decimal("2"), d(4), 9)]) == {
        1: (Decimal("5"), Decimal("2")), 2: (Decimal("9"), Decimal("4"))
    }  # fmt: skip


def test_receipts_name_their_notice_by_its_number_or_the_suppliers_packing_slip(setup):
    """A receipt names a notice of its order by the number on the packing slip (any letter case) or the
    supplier's own slip number; it then settles that notice, not the earlier one. Every reference that fits no
    notice is refused with the reason."""
    session, tenant, supplier, order = setup
    svc.accept_all(session, order=order, expected_version=None, actor=SUPPLIER)
    first, second = lines_of(session, order)

    def ship(quantities: dict[int, str], day: int, slip: str = "") -> ShipNotice:
        return svc.create_ship_notice(
            session, order=order, quantities={k: Decimal(v) for k, v in quantities.items()},
            shipment=ShipmentInput(d(day), d(day + 2), packing_slip=slip), expected_version=None, actor=SUPPLIER,
        )  # fmt: skip

    early = ship({first.id: "40"}, 1, slip="DN-77")
    later = ship({first.id: "40"}, 2, slip="DN-78")
    only_second = ship({second.id: "10"}, 2)
    assert svc.receipt_notice(session, order=order, line=first, reference=f" {later.number.lower()} ") == later
    assert svc.receipt_notice(session, order=order, line=first, reference="dn-77") == early
    same_slip = ship({first.id: "10"}, 3, slip="DN-77")
    with pytest.raises(svc.InvalidAnswers) as raised:
        svc.receipt_notice(session, order=order, line=first, reference="DN-77")
    assert raised.value.errors == {first.id: [
        f"Ship notices {early.number}, {same_slip.number} of order {order.number} all carry packing slip 'DN-77': "
        "give the notice's own number."
    ]}  # fmt: skip
    assert svc.receipt_notice(session, order=order, line=first, reference=same_slip.number) == same_slip
    refused = {
        "ASN-404": f"Order {order.number} has no ship notice 'ASN-404'.",
        only_second.number: f"Ship notice {only_second.number} does not ship line {first.position}.",
    }
    for reference, message in refused.items():
        with pytest.raises(svc.InvalidAnswers) as raised:
            svc.receipt_notice(session, order=order, line=first, reference=reference)
        assert raised.value.errors == {first.id: [message]}

    notice = svc.receipt_notice(session, order=order, line=first, reference=later.number)
    receipt = svc.record_receipt(session, order=order, line=first, quantity=Decimal("40"), received_on=d(3),
                                 actor=BUYER, ship_notice=notice)  # fmt: skip
    session.expire_all()
    assert receipt.ship_notice_id == later.id
    assert (early.state, later.state) == (ShipNoticeState.SENT, ShipNoticeState.RECEIVED)
    event = session.execute(
        select(OutboxEvent).where(OutboxEvent.topic == "receipt.recorded").order_by(OutboxEvent.id.desc())
    ).scalars().first()  # fmt: skip
    assert event is not None and event.payload["ship_notice_id"] == later.id
    # The earlier notice can still be withdrawn: nothing of it has arrived.
    svc.cancel_ship_notice(session, order=order, notice=early, expected_version=None, actor=SUPPLIER)
    with pytest.raises(svc.InvalidAnswers) as raised:
        svc.receipt_notice(session, order=order, line=first, reference=early.number)
    assert raised.value.errors == {first.id: [f"Ship notice {early.number} was cancelled."]}
    # Another order's notice is not found through this order, even by its exact number.
    other = make_order(session, tenant, supplier, [("5", "1.00", 10)])
    svc.accept_all(session, order=other, expected_version=None, actor=SUPPLIER)
    (other_line,) = lines_of(session, other)
    foreign = svc.create_ship_notice(
        session, order=other, quantities={other_line.id: Decimal("5")}, shipment=ShipmentInput(d(1), d(2)),
        expected_version=None, actor=SUPPLIER,
    )  # fmt: skip
    with pytest.raises(svc.InvalidAnswers) as raised:
        svc.receipt_notice(session, order=order, line=first, reference=foreign.number)
    assert raised.value.errors == {first.id: [f"Order {order.number} has no ship notice {foreign.number!r}."]}


def test_after_a_partial_receipt_the_rest_can_still_ship_and_be_promised_again(setup):
    """30 of 100 arrive (with no ship notice, as an ERP receipt may): the other 70 can still be shipped, and
    promised for another day; a promise below what arrived is refused."""
    session, _, _, order = setup
    svc.accept_all(session, order=order, expected_version=None, actor=SUPPLIER)
    first, _ = lines_of(session, order)
    svc.record_receipt(session, order=order, line=first, quantity=Decimal("30"), received_on=d(1), actor=BUYER)
    assert first.state == LineState.PARTIALLY_RECEIVED
    assert svc.shippable_quantities(session, order, [first])[first.id] == Decimal("70")
    with pytest.raises(svc.InvalidAnswers) as raised:
        svc.change_promise(
            session, order=order, line=first, deliveries=[Delivery(Decimal("25"), d(9))], reason_code="transport",
            comment="", expected_version=None, actor=SUPPLIER,
        )  # fmt: skip
    assert "30 pc are received already." in raised.value.errors[first.id]
    # The 30 that came and the 70 still to come, two days later than requested (inside the tolerance).
    rest = first.requested_date + timedelta(days=2)
    deliveries = [Delivery(Decimal("30"), first.requested_date), Delivery(Decimal("70"), rest)]
    assert svc.change_promise(
        session, order=order, line=first, deliveries=deliveries, reason_code="transport", comment="",
        expected_version=None, actor=SUPPLIER,
    ) is None  # fmt: skip
    notice = svc.create_ship_notice(
        session, order=order, quantities={first.id: Decimal("70")}, shipment=ShipmentInput(rest, rest),
        expected_version=None, actor=SUPPLIER,
    )  # fmt: skip
    assert notice.number.endswith("-ASN1") and first.shipped_quantity == Decimal("70")
    assert first.state == LineState.PARTIALLY_RECEIVED
    assert notice.state == ShipNoticeState.SENT  # the 30 that came before it are not its goods
    svc.record_receipt(session, order=order, line=first, quantity=Decimal("70"), received_on=rest, actor=BUYER)
    assert first.state == LineState.RECEIVED
    session.refresh(notice)
    assert notice.state == ShipNoticeState.RECEIVED


def test_receipts_then_close_then_nothing_changes(setup):
    session, _, _, order = setup
    svc.accept_all(session, order=order, expected_version=None, actor=SUPPLIER)
    first, second = lines_of(session, order)
    svc.create_ship_notice(
        session,
        order=order,
        quantities={first.id: Decimal("100"), second.id: Decimal("40")},
        shipment=ShipmentInput(d(1), d(2)),
        expected_version=None,
        actor=SUPPLIER,
    )
    svc.record_receipt(session, order=order, line=first, quantity=Decimal("60"), received_on=d(2), actor=BUYER)
    assert first.state == LineState.PARTIALLY_RECEIVED and order.state == OrderState.SHIPPED
    svc.record_receipt(session, order=order, line=first, quantity=Decimal("40"), received_on=d(3), actor=BUYER)
    with pytest.raises(ServiceError, match="still open"):
        svc.close_order(session, order=order, expected_version=None, actor=BUYER)
    svc.record_receipt(session, order=order, line=second, quantity=Decimal("40"), received_on=d(3), actor=BUYER)
    assert order.state == OrderState.RECEIVED
    svc.close_order(session, order=order, expected_version=None, actor=BUYER)
    assert order.state == OrderState.CLOSED
    with pytest.raises(ServiceError, match="cannot change any more"):
        svc.change_promise(
            session,
            order=order,
            line=first,
            deliveries=[Delivery(first.quantity, d(20))],
            reason_code="other",
            comment="",
            expected_version=None,
            actor=SUPPLIER,
        )
    with pytest.raises(ServiceError, match="cannot change any more"):
        svc.record_receipt(session, order=order, line=first, quantity=Decimal("1"), received_on=d(4), actor=BUYER)


def test_supplier_tolerance_overrides_the_tenant_default(session):
    tenant = make_tenant(session)
    strict, relaxed = make_supplier(session, tenant), make_supplier(session, tenant)
    make_tolerance(session, tenant)
    make_tolerance(session, tenant, relaxed, days_later=10)
    assert svc.tolerance_for(session, tenant.id, strict.id).days_later == 2
    assert svc.tolerance_for(session, tenant.id, relaxed.id).days_later == 10
    other = make_tenant(session)
    assert svc.tolerance_for(session, other.id, strict.id) == svc.Tolerance()


def test_cancelled_line_withdraws_its_open_request(setup):
    session, _, _, order = setup
    first, second = lines_of(session, order)
    svc.respond(
        session,
        order=order,
        expected_version=None,
        actor=SUPPLIER,
        answers=[LineAnswer(first.id, "reject", reason_code="no_capacity"), LineAnswer(second.id, "accept")],
    )
    with pytest.raises(svc.InvalidAnswers):
        svc.cancel_line(session, order=order, line=first, reason="", expected_version=None, actor=BUYER)
    svc.cancel_line(session, order=order, line=first, reason="bought elsewhere", expected_version=None, actor=BUYER)
    assert first.state == LineState.CANCELLED
    assert session.execute(select(ChangeRequest.state).where(ChangeRequest.line_id == first.id)).scalar_one() == (
        ChangeState.WITHDRAWN
    )
    assert order.state == OrderState.CONFIRMED
    assert order.total_value == second.quantity * second.unit_price  # a cancelled line is not worth anything


def test_derive_order_state():
    s = LineState
    assert svc.derive_order_state([s.CONFIRMED, s.AWAITING_RESPONSE]) == OrderState.AWAITING_RESPONSE
    assert svc.derive_order_state([s.CONFIRMED, s.CHANGES_PENDING]) == OrderState.CHANGES_PENDING
    assert svc.derive_order_state([s.REJECTED, s.CANCELLED]) == OrderState.REJECTED
    assert svc.derive_order_state([s.CANCELLED]) == OrderState.CANCELLED
    assert svc.derive_order_state([s.SHIPPED, s.RECEIVED]) == OrderState.SHIPPED
    assert svc.derive_order_state([s.RECEIVED, s.CLOSED]) == OrderState.RECEIVED
    assert svc.derive_order_state([s.CLOSED, s.CANCELLED]) == OrderState.CLOSED


def test_ledger_is_insert_only_for_the_application(setup):
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    session, _, _, order = setup
    svc.accept_all(session, order=order, expected_version=None, actor=SUPPLIER)
    nested = session.begin_nested()
    with pytest.raises(DBAPIError, match="permission denied"):
        session.execute(text("UPDATE commitment_ledger SET comment = 'rewritten'"))
    nested.rollback()


def test_every_repromise_keeps_the_first_promise_and_records_the_notice_given(setup):
    session, _, _, order = setup
    svc.accept_all(session, order=order, expected_version=None, actor=SUPPLIER)
    first, _ = lines_of(session, order)
    requested = first.requested_date

    def move(to: date, quantity: Decimal | None = None) -> None:
        svc.change_promise(
            session, order=order, line=first, deliveries=[Delivery(quantity or first.quantity, to)],
            reason_code="transport", comment="", expected_version=None, actor=SUPPLIER,
        )  # fmt: skip

    schedule = svc.active_schedules(session, first)[0]
    assert schedule.supplier_id == first.supplier_id and schedule.notice_days is None  # never moved
    move(requested + timedelta(days=1))
    move(requested + timedelta(days=2))  # a second move: the first promise must survive it
    schedule = svc.active_schedules(session, first)[0]
    assert schedule.first_promised_date == requested and schedule.promised_date == requested + timedelta(days=2)
    # Told today about a promise that was due on requested + 1 day.
    assert schedule.notice_days == (requested + timedelta(days=1) - date.today()).days
    move(requested + timedelta(days=2), first.quantity - 1)  # the quantity alone: the notice stays
    assert svc.active_schedules(session, first)[0].notice_days == schedule.notice_days


def test_a_ship_notice_withdrawn_after_its_line_was_cancelled_leaves_that_line_alone(setup):
    # Found by the state machine: withdrawing the notice brought the cancelled line back to "confirmed".
    session, _, _, order = setup
    svc.accept_all(session, order=order, expected_version=None, actor=SUPPLIER)
    first, second = lines_of(session, order)
    notice = svc.create_ship_notice(
        session,
        order=order,
        quantities={first.id: Decimal("1"), second.id: Decimal("10")},
        shipment=ShipmentInput(d(1), d(3)),
        expected_version=None,
        actor=SUPPLIER,
    )
    svc.cancel_line(session, order=order, line=first, reason="bought elsewhere", expected_version=None, actor=BUYER)
    svc.cancel_ship_notice(session, order=order, notice=notice, expected_version=None, actor=SUPPLIER)
    assert (first.state, first.shipped_quantity) == (LineState.CANCELLED, Decimal("1"))
    assert (second.state, second.shipped_quantity) == (LineState.CONFIRMED, Decimal("0"))
    assert notice.state == ShipNoticeState.CANCELLED


def test_the_cli_folds_again_what_was_loaded_outside_the_portal(committed_app, committed_db, owner_engine):
    """Deliveries or receipts written with plain SQL skip the flush that folds them: ``flask delivery-outcomes``
    sets every delivery's outcome from its line's receipts again."""
    from sqlalchemy import text

    with tenant_session(committed_db, None) as s:
        tenant = make_tenant(s)
        supplier = make_supplier(s, tenant)
        order = make_order(s, tenant, supplier, [("10", "1.00", 5)])
        svc.accept_all(s, order=order, expected_version=None, actor=SUPPLIER)
        (line,) = svc.order_lines(s, order)
        svc.record_receipt(s, order=order, line=line, quantity=Decimal("4"), received_on=d(2), actor=BUYER)
        tenant_id, line_id = tenant.id, line.id

    def outcome() -> tuple:
        with tenant_session(committed_db, tenant_id) as s:
            return s.execute(
                select(*(getattr(DeliverySchedule, c) for c in OUTCOME_COLUMNS)).where(
                    DeliverySchedule.line_id == line_id, DeliverySchedule.active.is_(True)
                )
            ).one()

    folded = outcome()
    assert folded == (Decimal("10"), Decimal("4"), d(2), None)
    with owner_engine.begin() as conn:  # as a bulk load would leave it: nothing arrived
        conn.execute(text("SELECT set_config('app.tenant_id', :t, false)"), {"t": str(tenant_id)})
        conn.execute(
            text("UPDATE delivery_schedules SET delivered_quantity = 0, first_arrival_on = NULL WHERE line_id = :l"),
            {"l": line_id},
        )
    assert outcome() != folded
    result = committed_app.test_cli_runner().invoke(args=["delivery-outcomes"])
    assert result.exit_code == 0 and f"tenant {tenant_id}: 1 delivery" in result.output
    assert outcome() == folded


def test_a_reminder_goes_to_a_waiting_supplier_once_a_day(setup):
    """A buyer reminds the supplier of an unanswered order: recorded, audited, an ``order.reminded`` event for
    the workers; the order's version stays (a supplier's open form stays valid). Again the same day: refused,
    nothing written. A day later: allowed. An answered order: refused."""
    session, _, _, order = setup
    version = order.version
    first = svc.utcnow()
    svc.remind_supplier(session, order=order, actor=BUYER, now=first)
    audit.write_pending(session)
    session.expire_all()
    assert order.reminded_at == first and order.version == version
    assert count(session, OutboxEvent, topic="order.reminded") == 1
    assert count(session, AuditEvent, action="order.reminded", object_id=str(order.id)) == 1

    with pytest.raises(ServiceError, match=f"reminded of order {order.number} on {first:%Y-%m-%d at %H:%M} UTC"):
        svc.remind_supplier(session, order=order, actor=BUYER, now=first + timedelta(hours=23))
    audit.write_pending(session)
    assert count(session, OutboxEvent, topic="order.reminded") == 1
    assert count(session, AuditEvent, action="order.reminded") == 1

    svc.remind_supplier(session, order=order, actor=BUYER, now=first + timedelta(days=1))
    assert count(session, OutboxEvent, topic="order.reminded") == 2
    session.expire_all()
    assert order.reminder_count == 2  # counted: automatic reminders stop at five in all

    svc.accept_all(session, order=order, expected_version=None, actor=SUPPLIER)
    with pytest.raises(ServiceError, match="no longer waiting for the supplier's answer"):
        svc.remind_supplier(session, order=order, actor=BUYER, now=first + timedelta(days=3))
    assert count(session, OutboxEvent, topic="order.reminded") == 2


def test_a_notice_waiting_only_for_a_cancelled_lines_goods_is_received(setup):
    """Goods cannot be recorded on a cancelled line, so a notice whose other goods have all arrived is received
    when the line is cancelled (and announced so), not left on its way for ever."""
    session, _, _, order = setup
    svc.accept_all(session, order=order, expected_version=None, actor=SUPPLIER)
    first, second = lines_of(session, order)
    notice = svc.create_ship_notice(
        session, order=order, quantities={first.id: Decimal("100"), second.id: Decimal("40")},
        shipment=ShipmentInput(d(-2), d(1)), expected_version=None, actor=SUPPLIER,
    )  # fmt: skip
    svc.record_receipt(session, order=order, line=first, quantity=Decimal("100"), received_on=d(0), actor=BUYER)
    session.expire_all()
    assert notice.state == ShipNoticeState.SENT  # the second line's 40 are still to come
    svc.cancel_line(session, order=order, line=second, reason="no longer needed", expected_version=None, actor=BUYER)
    session.expire_all()
    assert notice.state == ShipNoticeState.RECEIVED
    topics = session.execute(select(OutboxEvent.topic).where(OutboxEvent.topic == "ship_notice.received")).all()
    assert len(topics) == 1


def test_a_whole_shipment_is_received_against_its_notice(setup):
    """The receiving team receives a notice in full: each line gets what of it has not arrived yet, naming the
    notice; a line cancelled since it shipped is left out. A cancelled or received notice, a day before it was
    shipped, or a notice with nothing left on an open line is refused, and nothing is recorded."""
    from portal.orders.models import Receipt

    session, tenant, supplier, order = setup
    svc.accept_all(session, order=order, expected_version=None, actor=SUPPLIER)
    first, second = lines_of(session, order)

    def ship(of: PurchaseOrder, quantities: dict[int, str], day: int) -> ShipNotice:
        return svc.create_ship_notice(
            session, order=of, quantities={k: Decimal(v) for k, v in quantities.items()},
            shipment=ShipmentInput(d(day), d(day + 3)), expected_version=None, actor=SUPPLIER,
        )  # fmt: skip

    def refused(of: PurchaseOrder, notice: ShipNotice, day: date, message: str) -> None:
        before = count(session, Receipt)
        with pytest.raises(ServiceError) as raised:
            svc.receive_ship_notice(session, order=of, notice=notice, received_on=day, actor=BUYER)
        assert raised.value.message == message and count(session, Receipt) == before

    early = ship(order, {first.id: "60", second.id: "20"}, -3)
    later = ship(order, {first.id: "40", second.id: "20"}, -2)
    # 25 of the first line came already (an ERP receipt naming no notice: matched by date, to the early one).
    svc.record_receipt(session, order=order, line=first, quantity=Decimal("25"), received_on=d(-1), actor=BUYER)
    session.expire_all()
    refused(order, early, d(-4), f"Ship notice {early.number} was shipped on {d(-3).isoformat()}: its goods cannot "
                                 f"have arrived on {d(-4).isoformat()}.")  # fmt: skip

    done = svc.receive_ship_notice(session, order=order, notice=early, received_on=d(0), actor=BUYER)
    assert [(line.id, rest) for line, rest in done.receipts] == [(first.id, 35), (second.id, 20)]
    assert done.left_out == []
    session.expire_all()
    assert (early.state, later.state) == (ShipNoticeState.RECEIVED, ShipNoticeState.SENT)
    assert (first.received_quantity, second.received_quantity) == (60, 20)
    named = session.execute(select(Receipt.quantity, Receipt.ship_notice_id).where(Receipt.ship_notice_id.is_not(None))
                            .order_by(Receipt.id)).all()  # fmt: skip
    assert [tuple(row) for row in named] == [(35, early.id), (20, early.id)]
    refused(order, early, d(0), f"Ship notice {early.number} has been received already.")

    # The second line is cancelled after it shipped: left out, and the notice no longer waits for its goods.
    svc.cancel_line(session, order=order, line=second, reason="not needed", expected_version=None, actor=BUYER)
    session.expire_all()
    assert later.state == ShipNoticeState.SENT  # the first line's 40 are still to come
    done = svc.receive_ship_notice(session, order=order, notice=later, received_on=d(0), actor=BUYER)
    assert [(line.id, rest) for line, rest in done.receipts] == [(first.id, 40)] and done.left_out == [second]
    session.expire_all()
    assert later.state == ShipNoticeState.RECEIVED

    other = make_order(session, tenant, supplier, [("10", "1.00", 10)])
    svc.accept_all(session, order=other, expected_version=None, actor=SUPPLIER)
    (line,) = lines_of(session, other)
    withdrawn = ship(other, {line.id: "5"}, 0)
    svc.cancel_ship_notice(session, order=other, notice=withdrawn, expected_version=None, actor=SUPPLIER)
    refused(
        other, withdrawn, d(0), f"Ship notice {withdrawn.number} was cancelled: nothing can be received against it."
    )
