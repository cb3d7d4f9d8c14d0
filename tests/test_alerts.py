"""Exception detection: one alert per condition per line, opened when the condition
appears or changes, resolved when it goes; buyers hear one summary per supplier."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from portal.auth.services import Actor
from portal.db import set_context
from portal.orders import services as orders
from portal.orders.alerts import detect
from portal.orders.models import AlertKind, LineAlert, PurchaseOrder
from portal.orders.services import Delivery, LineAnswer
from portal.outbox import OutboxEvent
from tests.factories import make_order, make_supplier, make_tenant

ACTOR = Actor(None, "test", "")
TODAY = date(2026, 11, 27)
D = Decimal


def _open(session, line_id: int) -> dict[AlertKind, LineAlert]:  # type: ignore[no-untyped-def]
    return {
        a.kind: a
        for a in session.execute(
            select(LineAlert).where(LineAlert.line_id == line_id, LineAlert.resolved_at.is_(None))
        ).scalars()
    }


def _buyer(tenant):  # type: ignore[no-untyped-def]
    """A buyer's context in ``tenant``, for the exceptions list read without a request."""
    from portal.auth.permissions import Role
    from portal.web import PortalContext

    return PortalContext(membership_id=0, tenant_id=tenant.id, tenant_name=tenant.name, role=Role.BUYER,
                         supplier_id=None, supplier_name=None)  # fmt: skip


def _setup(session, *, days_requested: int = 14, ordered: date = TODAY):  # type: ignore[no-untyped-def]
    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant, "Acme")
    order = make_order(session, tenant, supplier, [("100", "2.00", days_requested)], order_date=ordered)
    set_context(session, tenant_id=tenant.id)
    (line,) = orders.order_lines(session, order)
    return tenant, supplier, order, line


def test_unconfirmed_after_the_tenants_days_then_resolved_by_an_answer(session):
    tenant, _, order, line = _setup(session, ordered=TODAY - timedelta(days=5))
    assert detect(session, tenant_id=tenant.id, today=TODAY - timedelta(days=4)).opened == 0  # 1 day: not yet
    run = detect(session, tenant_id=tenant.id, today=TODAY)
    assert run.opened == 1 and set(_open(session, line.id)) == {AlertKind.UNCONFIRMED}
    assert detect(session, tenant_id=tenant.id, today=TODAY).opened == 0  # one alert per condition
    orders.respond(session, order=order, expected_version=None, actor=ACTOR, answers=[LineAnswer(line.id, "accept")])
    run = detect(session, tenant_id=tenant.id, today=TODAY)
    assert run.resolved == 1 and AlertKind.UNCONFIRMED not in _open(session, line.id)


def test_late_at_risk_and_a_new_promise_makes_a_new_late_alert(session):
    tenant, _, order, line = _setup(session, days_requested=5)
    requested = line.requested_date
    promised = requested + timedelta(days=3)
    orders.respond(
        session, order=order, expected_version=None, actor=ACTOR,
        answers=[LineAnswer(line.id, "change", (Delivery(D("100"), promised),))],
    )  # fmt: skip
    request = session.execute(select(orders.ChangeRequest)).scalar_one()
    orders.decide(session, request=request, order=order, decision="approve", comment="", expected_version=None,
                  actor=ACTOR)  # fmt: skip
    kinds = _open(session, line.id)
    assert kinds == {}
    detect(session, tenant_id=tenant.id, today=TODAY)
    assert set(_open(session, line.id)) == {AlertKind.AT_RISK}
    after = promised + timedelta(days=1)
    detect(session, tenant_id=tenant.id, today=after)
    late = _open(session, line.id)[AlertKind.LATE]
    assert late.key == promised.isoformat() and late.value_at_risk == D("200.00")
    # The supplier promises again (with a reason): the old late alert resolves, a new one opens when it passes.
    again = after + timedelta(days=4)
    result = orders.change_promise(
        session, order=order, line=line, deliveries=[Delivery(D("100"), again)], reason_code="transport",
        comment="", expected_version=None, actor=ACTOR,
    )  # fmt: skip
    if isinstance(result, orders.ChangeRequest):
        orders.decide(session, request=result, order=order, decision="approve", comment="", expected_version=None,
                      actor=ACTOR)  # fmt: skip
    detect(session, tenant_id=tenant.id, today=after)
    assert AlertKind.LATE not in _open(session, line.id)
    detect(session, tenant_id=tenant.id, today=again + timedelta(days=1))
    assert _open(session, line.id)[AlertKind.LATE].key == again.isoformat()
    history = session.execute(select(LineAlert).where(LineAlert.kind == AlertKind.LATE)).scalars().all()
    assert len(history) == 2 and sum(1 for a in history if a.resolved_at is None) == 1


def test_no_ship_notice_close_to_the_promise_and_partial_receipt(session):
    tenant, _, order, line = _setup(session, days_requested=10)
    orders.respond(session, order=order, expected_version=None, actor=ACTOR, answers=[LineAnswer(line.id, "accept")])
    promise = line.requested_date
    assert detect(session, tenant_id=tenant.id, today=promise - timedelta(days=5)).opened == 0
    detect(session, tenant_id=tenant.id, today=promise - timedelta(days=2))
    assert set(_open(session, line.id)) == {AlertKind.NO_SHIP_NOTICE}
    orders.create_ship_notice(
        session, order=order, quantities={line.id: D("100")},
        shipment=orders.ShipmentInput(promise - timedelta(days=2), promise), expected_version=None, actor=ACTOR,
    )  # fmt: skip
    orders.record_receipt(session, order=order, line=line, quantity=D("60"), received_on=promise, actor=ACTOR)
    detect(session, tenant_id=tenant.id, today=promise)
    kinds = _open(session, line.id)
    assert set(kinds) == {AlertKind.PARTIAL}
    assert kinds[AlertKind.PARTIAL].value_at_risk == D("80.00")


def test_goods_arriving_while_a_change_waits_for_the_buyer_are_a_partial_receipt(app, session):
    """The line stays "changes pending" until the buyer decides; what arrived short is still told, by detection
    and on the exceptions list."""
    from portal.orders.models import LineState
    from portal.orders.queries import ExceptionFilters, exceptions

    tenant, _, order, line = _setup(session, days_requested=10)
    orders.respond(session, order=order, expected_version=None, actor=ACTOR, answers=[LineAnswer(line.id, "accept")])
    request = orders.change_promise(
        session, order=order, line=line, deliveries=[Delivery(D("100"), line.requested_date + timedelta(days=30))],
        reason_code="transport", comment="", expected_version=None, actor=ACTOR,
    )  # fmt: skip
    assert isinstance(request, orders.ChangeRequest)
    orders.record_receipt(session, order=order, line=line, quantity=D("60"), received_on=TODAY, actor=ACTOR)
    assert line.state == LineState.CHANGES_PENDING
    detect(session, tenant_id=tenant.id, today=TODAY)
    partial = _open(session, line.id)[AlertKind.PARTIAL]
    assert partial.key == "60.000" and partial.value_at_risk == D("80.00")
    buyer = _buyer(tenant)
    listed = exceptions(session, buyer, ExceptionFilters(kind="partially_received"), TODAY, unconfirmed_after_days=3)
    assert [row.id for row in listed] == [line.id]


def test_a_split_line_whose_first_delivery_arrived_is_late_only_when_the_next_one_is(app, session):
    """60 promised for one day and 40 for ten days later: the 60 arrive on time. The line is not late the day
    after (the exceptions list and detection agree), and is late, counted from the 40's date, once that passes."""
    from portal.orders.queries import ExceptionFilters, exceptions

    tenant, _, order, line = _setup(session, days_requested=10)
    first, second = line.requested_date, line.requested_date + timedelta(days=10)
    orders.respond(
        session,
        order=order,
        expected_version=None,
        actor=ACTOR,
        answers=[LineAnswer(line.id, "change", (Delivery(D("60"), first), Delivery(D("40"), second)))],
    )
    request = session.execute(select(orders.ChangeRequest)).scalar_one()  # 10 days later: outside, for the buyer
    orders.decide(session, request=request, order=order, decision="approve", comment="", expected_version=None,
                  actor=ACTOR)  # fmt: skip
    orders.record_receipt(session, order=order, line=line, quantity=D("60"), received_on=first, actor=ACTOR)
    buyer = _buyer(tenant)

    def late_on(day: date) -> list[tuple[int, date]]:
        detect(session, tenant_id=tenant.id, today=day)
        listed = exceptions(session, buyer, ExceptionFilters(kind="late"), day, unconfirmed_after_days=3)
        assert (AlertKind.LATE in _open(session, line.id)) == bool(listed)
        return [(row.id, row.open_from) for row in listed]

    assert late_on(first + timedelta(days=1)) == []
    assert AlertKind.PARTIAL in _open(session, line.id)
    assert late_on(second + timedelta(days=1)) == [(line.id, second)]
    assert _open(session, line.id)[AlertKind.LATE].key == second.isoformat()


def test_repeated_slips(session):
    tenant, _, order, line = _setup(session, days_requested=10)
    orders.respond(session, order=order, expected_version=None, actor=ACTOR, answers=[LineAnswer(line.id, "accept")])
    day = line.requested_date
    for slip in (1, 2):
        result = orders.change_promise(
            session, order=order, line=line, deliveries=[Delivery(D("100"), day + timedelta(days=slip))],
            reason_code="production_delay", comment="", expected_version=None, actor=ACTOR,
        )  # fmt: skip
        if isinstance(result, orders.ChangeRequest):
            orders.decide(session, request=result, order=order, decision="approve", comment="",
                          expected_version=None, actor=ACTOR)  # fmt: skip
    detect(session, tenant_id=tenant.id, today=TODAY)
    assert AlertKind.REPEATED_SLIPS in _open(session, line.id)


def test_buyers_hear_one_summary_per_supplier_and_run(session):
    tenant = make_tenant(session)
    acme, bolt = make_supplier(session, tenant, "Acme"), make_supplier(session, tenant, "Bolt")
    old = TODAY - timedelta(days=10)
    for supplier, count in ((acme, 3), (bolt, 1)):
        for _ in range(count):
            make_order(session, tenant, supplier, [("10", "1.00", 5)], order_date=old)
    set_context(session, tenant_id=tenant.id)
    run = detect(session, tenant_id=tenant.id, today=TODAY)
    assert run.opened == 4
    events = session.execute(select(OutboxEvent).where(OutboxEvent.topic == "alerts.opened")).scalars().all()
    by_supplier = {e.payload["supplier_id"]: e.payload for e in events}
    assert by_supplier[acme.id]["counts"] == {"unconfirmed": 3} and by_supplier[bolt.id]["counts"] == {"unconfirmed": 1}
    numbers = set(session.execute(select(PurchaseOrder.number).where(PurchaseOrder.supplier_id == acme.id)).scalars())
    assert set(by_supplier[acme.id]["orders"]) == numbers


def test_alerts_of_another_tenant_are_untouched(session):
    tenant, _, _, _line = _setup(session, ordered=TODAY - timedelta(days=9))
    other, _, _, other_line = _setup(session, ordered=TODAY - timedelta(days=9))
    set_context(session, tenant_id=tenant.id)
    assert detect(session, tenant_id=tenant.id, today=TODAY).opened == 1
    session.flush()
    set_context(session, tenant_id=other.id)
    assert _open(session, other_line.id) == {}
    assert detect(session, tenant_id=other.id, today=TODAY).opened == 1


def test_a_newly_unconfirmed_order_reminds_its_supplier_once(session):
    """When an order becomes unconfirmed the supplier is reminded on its own, once (``order.reminded``,
    audited as the system's); not when a buyer reminded it already; and not for an order long overdue when
    detection first sees it (a first run on an existing tenant would remind of every old order at once)."""
    from portal import audit
    from portal.audit import AuditEvent

    tenant, supplier, order, _ = _setup(session, ordered=TODAY - timedelta(days=3))
    reminded_by_buyer = make_order(session, tenant, supplier, [("5", "1.00", 14)], order_date=TODAY - timedelta(days=3))
    orders.remind_supplier(session, order=reminded_by_buyer, actor=ACTOR)
    long_overdue = make_order(session, tenant, supplier, [("5", "1.00", 14)], order_date=TODAY - timedelta(days=30))
    set_context(session, tenant_id=tenant.id)

    def reminders() -> list[dict]:  # type: ignore[type-arg]
        events = select(OutboxEvent).where(OutboxEvent.topic == "order.reminded").order_by(OutboxEvent.id)
        return [event.payload for event in session.execute(events).scalars()]

    # The day before: only the long overdue order is unconfirmed, first seen now, and not reminded.
    run = detect(session, tenant_id=tenant.id, today=TODAY - timedelta(days=1))
    assert (run.opened, run.reminded) == (1, 0)
    run = detect(session, tenant_id=tenant.id, today=TODAY)
    assert (run.opened, run.reminded) == (2, 1)
    assert reminders() == [
        {"order_id": reminded_by_buyer.id, "reminder": 1},
        {"order_id": order.id, "reminder": 1, "automatic": True},
    ]
    session.expire_all()
    assert order.reminded_at is not None and long_overdue.reminded_at is None
    audit.write_pending(session)
    assert session.execute(
        select(AuditEvent.actor).where(AuditEvent.action == "order.reminded", AuditEvent.object_id == str(order.id))
    ).scalars().all() == ["system"]
    assert detect(session, tenant_id=tenant.id, today=TODAY + timedelta(days=1)).reminded == 0  # once
    assert len(reminders()) == 2


@pytest.mark.parametrize("limit", [5, 3])
def test_a_tenant_that_repeats_reminders_gets_one_every_few_days_up_to_its_limit(session, limit):
    """With ``reminder_repeat_days`` set, an unconfirmed order's reminder comes again once its last reminder (a
    buyer's too) is that old, until the order has had the tenant's ``reminder_limit`` (five unless set); never
    for an order never reminded (the first reminder's window rules that), nor once the order is answered; other
    tenants' orders are untouched."""
    from portal.tenancy.models import Tenant

    tenant, supplier, order, _ = _setup(session, ordered=TODAY - timedelta(days=3))
    never_reminded = make_order(session, tenant, supplier, [("5", "1.00", 14)], order_date=TODAY - timedelta(days=30))
    answered = make_order(session, tenant, supplier, [("5", "1.00", 14)], order_date=TODAY - timedelta(days=3))
    other, _, other_order, _ = _setup(session, ordered=TODAY - timedelta(days=3))
    for each in (tenant, other):
        session.get(Tenant, each.id).reminder_repeat_days = 2
    if limit != 5:
        session.get(Tenant, tenant.id).reminder_limit = limit
    session.flush()
    set_context(session, tenant_id=other.id)
    assert detect(session, tenant_id=other.id, today=TODAY).reminded == 1  # its first reminder, today
    session.flush()
    set_context(session, tenant_id=tenant.id)
    first = detect(session, tenant_id=tenant.id, today=TODAY)
    assert first.reminded == 2  # the order and the one answered below, each the first time
    orders.accept_all(session, order=answered, expected_version=None, actor=ACTOR)
    session.flush()

    def age_last_reminders(days: int) -> None:
        """Detection's "now" is the clock's: the reminders are made older instead (the other tenant's too)."""
        session.flush()  # detection's events, under its own tenant
        for each in (other, tenant):
            set_context(session, tenant_id=each.id)
            _age_reminders(session, each.id, timedelta(days=days))

    age_last_reminders(1)
    assert detect(session, tenant_id=tenant.id, today=TODAY + timedelta(days=1)).reminded == 0  # a day: too soon
    counts = []
    for day in range(2, 12, 2):
        age_last_reminders(1 if day == 2 else 2)
        counts.append(detect(session, tenant_id=tenant.id, today=TODAY + timedelta(days=day)).reminded)
    assert counts == [1] * (limit - 1) + [0] * (6 - limit)  # reminders 2 to the limit, then no more
    session.expire_all()
    assert (order.reminder_count, never_reminded.reminder_count, answered.reminder_count) == (limit, 0, 1)
    events = (
        select(OutboxEvent.payload)
        .where(OutboxEvent.topic == "order.reminded", OutboxEvent.tenant_id == tenant.id)
        .order_by(OutboxEvent.id)  # in the order they were written (without it, PostgreSQL's order is any)
    )
    numbered = [p["reminder"] for p in session.execute(events).scalars() if p["order_id"] == order.id]
    assert numbered == list(range(1, limit + 1))
    set_context(session, tenant_id=other.id)
    assert other_order.reminder_count == 1  # due again long since, but its tenant's detection never ran again


def test_a_tenant_that_does_not_repeat_reminders_reminds_once(session):
    tenant, _, order, _ = _setup(session, ordered=TODAY - timedelta(days=3))
    assert detect(session, tenant_id=tenant.id, today=TODAY).reminded == 1
    _age_reminders(session, tenant.id, timedelta(days=30))
    assert detect(session, tenant_id=tenant.id, today=TODAY + timedelta(days=30)).reminded == 0
    session.expire_all()
    assert order.reminder_count == 1


def _age_reminders(session, tenant_id: int, by: timedelta) -> None:  # type: ignore[no-untyped-def]
    """Move the tenant's orders' last reminders ``by`` into the past."""
    reminded = select(PurchaseOrder).where(PurchaseOrder.tenant_id == tenant_id, PurchaseOrder.reminded_at.is_not(None))
    for order in session.execute(reminded).scalars():
        order.reminded_at -= by
    session.flush()


def test_a_tenant_that_turned_reminders_off_gets_none_from_detection(session):
    from portal.tenancy.models import Tenant

    tenant, _, order, _ = _setup(session, ordered=TODAY - timedelta(days=3))
    session.get(Tenant, tenant.id).remind_unconfirmed = False
    session.flush()
    run = detect(session, tenant_id=tenant.id, today=TODAY)
    assert (run.opened, run.reminded) == (1, 0)  # the exception is still raised for the buyers
    assert session.execute(select(OutboxEvent).where(OutboxEvent.topic == "order.reminded")).first() is None
    session.expire_all()
    assert order.reminded_at is None


def test_the_order_pages_open_alerts_are_read_through_their_own_index(session):
    """The order page reads an order's open alerts through (tenant, order) among open alerts, the index that
    matches all its conditions: through the tenant's open-alerts index, picked on a first detection run's rows
    before their statistics, it read every open alert of the tenant (10 ms per page with 100,000)."""
    import json

    from sqlalchemy import text

    from portal.orders.queries import _order_page_statements

    tenant, _, order, _ = _setup(session, ordered=TODAY - timedelta(days=5))
    assert detect(session, tenant_id=tenant.id, today=TODAY).opened == 1
    session.execute(text("SET LOCAL enable_seqscan = off"))  # the test's few rows would be read whole
    statement = _order_page_statements().alerts
    compiled = statement.compile(dialect=session.get_bind().dialect)
    params = {**compiled.params, "tenant_id": tenant.id, "order_id": order.id}
    plan = session.connection().exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", params).scalar_one()

    def indexes(node: dict) -> set[str]:  # type: ignore[type-arg]
        return {node.get("Index Name", ""), *(name for child in node.get("Plans", []) for name in indexes(child))}

    assert "ix_line_alerts_order_open" in indexes((plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"])
