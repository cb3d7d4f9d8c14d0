"""The buyer's revision of a line (a change order): new terms put the line to the supplier again, withdrawing
its commitment and open change requests, with one ledger entry, one audit entry and the events."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text, update

from portal import audit
from portal.audit import AuditEvent
from portal.auth.services import Actor
from portal.orders import services as svc
from portal.orders.alerts import detect
from portal.orders.models import (
    AlertKind,
    ChangeRequest,
    ChangeState,
    CommitmentEntry,
    LineAlert,
    LineState,
    OrderState,
    OutboxEvent,
    Source,
)
from portal.orders.services import LineAnswer, LineTerms, ShipmentInput
from tests.factories import make_order, make_supplier, make_tenant, make_tolerance

SUPPLIER = Actor(None, "supplier@example.org", "127.0.0.1")
BUYER = Actor(None, "buyer@example.org", "127.0.0.1")
D = Decimal


@pytest.fixture
def setup(session):
    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    make_tolerance(session, tenant)  # -10 % / +5 % quantity, 3 days earlier, 2 days later
    order = make_order(session, tenant, supplier)
    return session, tenant, order, svc.order_lines(session, order)


def _events(session, tenant_id: int, topic: str) -> list[dict]:  # type: ignore[type-arg]
    return list(
        session.execute(
            select(OutboxEvent.payload)
            .where(OutboxEvent.tenant_id == tenant_id, OutboxEvent.topic == topic)
            .order_by(OutboxEvent.id)
        ).scalars()
    )


def _counts(session, line_id: int) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    """Ledger entries, audit entries and events of a line: what a refused revision must leave as it was."""
    audit.write_pending(session)
    ledger = session.execute(select(func.count()).where(CommitmentEntry.line_id == line_id)).scalar_one()
    audited = session.execute(
        select(func.count()).where(AuditEvent.object_type == "order_line", AuditEvent.object_id == str(line_id))
    ).scalar_one()
    events = session.execute(select(func.count()).select_from(OutboxEvent)).scalar_one()
    return ledger, audited, events


def test_a_revised_confirmed_line_waits_for_the_supplier_again_and_the_ledger_keeps_what_was_withdrawn(setup):
    session, tenant, order, (first, second) = setup
    svc.accept_all(session, order=order, expected_version=None, actor=SUPPLIER)
    assert order.state == OrderState.CONFIRMED
    version = order.version
    new_date = first.requested_date + timedelta(days=7)
    entry_id = svc.revise_line(
        session, order=order, line=first, terms=LineTerms(D("80"), new_date, first.unit_price),
        comment="forecast cut", expected_version=version, actor=BUYER,
    )  # fmt: skip
    assert (first.quantity, first.requested_date, first.state) == (D("80"), new_date, LineState.AWAITING_RESPONSE)
    assert (first.promised_from, first.promised_to, first.open_from) == (None, None, None)
    assert first.asked_on == date.today()
    assert svc.active_schedules(session, first) == []  # the old commitment is withdrawn
    assert second.state == LineState.CONFIRMED  # the other line keeps its answer
    assert order.state == OrderState.AWAITING_RESPONSE and order.version == version + 1
    assert order.total_value == D("80") * first.unit_price + second.quantity * second.unit_price
    entry = session.get(CommitmentEntry, entry_id)
    assert (entry.kind, entry.schedules, entry.committed_quantity, entry.source) == ("revised", [], 0, Source.PORTAL)
    assert entry.previous == [{"quantity": "100.000", "date": (new_date - timedelta(days=7)).isoformat()}]
    assert entry.comment == f"quantity 100 → 80, requested date {entry.previous[0]['date']} → {new_date}; forecast cut"
    audit.write_pending(session)
    (revised,) = session.execute(select(AuditEvent).where(AuditEvent.action == "commitment.revised")).scalars()
    assert revised.before == {"quantity": "100", "requested date": entry.previous[0]["date"],
                              "schedules": entry.previous}  # fmt: skip
    assert revised.after == {"order": order.number, "position": 1, "quantity": "80",
                             "requested date": new_date.isoformat()}  # fmt: skip
    (told,) = _events(session, tenant.id, "order_line.revised")
    assert told["changes"] == {"quantity": ["100", "80"], "requested date": [entry.previous[0]["date"],
                                                                            new_date.isoformat()]}  # fmt: skip
    assert told["comment"] == "forecast cut" and told["position"] == 1
    assert _events(session, tenant.id, "commitment.changed")[-1]["kind"] == "revised"
    # The supplier answers the new terms; its new promise starts a new history (first promise included).
    svc.respond(session, order=order, expected_version=None, actor=SUPPLIER, answers=[LineAnswer(first.id, "accept")])
    (schedule,) = svc.active_schedules(session, first)
    assert (schedule.quantity, schedule.promised_date, schedule.first_promised_date) == (D("80"), new_date, new_date)
    assert first.state == LineState.CONFIRMED and order.state == OrderState.CONFIRMED


@pytest.mark.parametrize("decision", ["approve", "counter"])
def test_an_answer_to_a_revised_line_that_waits_for_the_buyer_is_decided_after_the_withdrawn_deliveries(
    setup, decision
):
    # The withdrawn delivery keeps its position: the approved (or countered) answer's deliveries come after
    # it, not over it (the line waits for the buyer, so it is no longer "awaiting an answer" when they are made).
    session, _, order, (first, _second) = setup
    svc.accept_all(session, order=order, expected_version=None, actor=SUPPLIER)
    svc.revise_line(
        session, order=order, line=first, terms=LineTerms(D("80"), first.requested_date, first.unit_price),
        comment="", expected_version=None, actor=BUYER,
    )  # fmt: skip
    later = first.requested_date + timedelta(days=10)  # outside the 2 days' tolerance: the buyer decides
    svc.respond(
        session, order=order, expected_version=None, actor=SUPPLIER,
        answers=[LineAnswer(first.id, "change", (svc.Delivery(D("50"), later), svc.Delivery(D("30"), later)))],
    )  # fmt: skip
    assert first.state == LineState.CHANGES_PENDING
    request = session.execute(
        select(ChangeRequest).where(ChangeRequest.line_id == first.id, ChangeRequest.state == ChangeState.OPEN)
    ).scalar_one()
    svc.decide(
        session, order=order, request=request, decision=decision, comment="fine", expected_version=None, actor=BUYER
    )
    if decision == "approve":
        assert [(s.position, s.quantity) for s in svc.active_schedules(session, first)] == [(2, D("50")), (3, D("30"))]
        assert first.state == LineState.CONFIRMED
    else:  # asked again: the supplier's next answer comes after the withdrawn delivery too
        assert first.state == LineState.AWAITING_RESPONSE
        svc.respond(
            session, order=order, expected_version=None, actor=SUPPLIER, answers=[LineAnswer(first.id, "accept")]
        )
        assert [(s.position, s.quantity) for s in svc.active_schedules(session, first)] == [(2, D("80"))]


def test_a_revision_withdraws_the_lines_open_change_request(setup):
    session, _, order, (first, _second) = setup
    svc.respond(
        session, order=order, expected_version=None, actor=SUPPLIER,
        answers=[LineAnswer(first.id, "reject", reason_code="price")],
    )  # fmt: skip
    assert first.state == LineState.CHANGES_PENDING
    svc.revise_line(
        session, order=order, line=first, terms=LineTerms(first.quantity, first.requested_date, D("2.90")),
        comment="", expected_version=None, actor=BUYER,
    )  # fmt: skip
    request = session.execute(select(ChangeRequest).where(ChangeRequest.line_id == first.id)).scalar_one()
    assert request.state == ChangeState.WITHDRAWN
    assert (first.state, first.unit_price) == (LineState.AWAITING_RESPONSE, D("2.90"))


def test_a_line_not_answered_yet_changes_its_terms_without_a_ledger_entry(setup):
    session, tenant, order, (first, _second) = setup
    entry_id = svc.revise_line(
        session, order=order, line=first, terms=LineTerms(D("120"), first.requested_date, first.unit_price),
        comment="", expected_version=None, actor=BUYER,
    )  # fmt: skip
    assert entry_id is None and first.quantity == D("120")
    assert session.execute(select(func.count()).where(CommitmentEntry.line_id == first.id)).scalar_one() == 0
    assert [e["changes"] for e in _events(session, tenant.id, "order_line.revised")] == [{"quantity": ["100", "120"]}]
    assert _events(session, tenant.id, "commitment.changed") == []


def test_bad_revisions_name_the_problem_and_change_nothing(setup):
    session, _, order, (first, second) = setup
    svc.accept_all(session, order=order, expected_version=None, actor=SUPPLIER)
    before_order = order.order_date - timedelta(days=1)
    cases = [
        (LineTerms(D("0"), first.requested_date, first.unit_price), "Enter a quantity above zero."),
        (LineTerms(first.quantity, first.requested_date, D("0")), "Enter a unit price above zero."),
        (LineTerms(first.quantity, before_order, first.unit_price), "cannot be before the order date"),
        (LineTerms.of(first), "These are the line's terms already"),
    ]
    counts = _counts(session, first.id)
    version = order.version
    for terms, message in cases:
        with pytest.raises(svc.InvalidAnswers) as refused:
            svc.revise_line(session, order=order, line=first, terms=terms, comment="", expected_version=None,
                            actor=BUYER)  # fmt: skip
        assert message in " ".join(refused.value.errors[first.id])
    with pytest.raises(svc.Conflict):  # a form opened before someone else's change
        svc.revise_line(
            session, order=order, line=first, terms=LineTerms(D("90"), first.requested_date, first.unit_price),
            comment="", expected_version=version - 1, actor=BUYER,
        )  # fmt: skip
    assert _counts(session, first.id) == counts and order.version == version
    assert first.state == LineState.CONFIRMED and len(svc.active_schedules(session, first)) == 1
    # Goods on the way: the line cannot be ordered down to what has shipped, nor below it.
    svc.create_ship_notice(
        session, order=order, shipment=ShipmentInput(date.today(), date.today() + timedelta(days=2)),
        quantities={second.id: D("10")}, expected_version=None, actor=SUPPLIER,
    )  # fmt: skip
    counts = _counts(session, second.id)
    for quantity in ("10", "4"):
        with pytest.raises(svc.InvalidAnswers) as refused:
            svc.revise_line(
                session, order=order, line=second, terms=LineTerms(D(quantity), second.requested_date,
                second.unit_price), comment="", expected_version=None, actor=BUYER,
            )  # fmt: skip
        assert "10 pc have shipped or arrived already" in refused.value.errors[second.id][0]
    assert second.quantity == D("40") and second.state == LineState.PARTIALLY_SHIPPED
    assert _counts(session, second.id) == counts


def test_a_revised_line_is_unconfirmed_counting_from_its_revision_not_the_order_date(session):
    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    today = date(2026, 11, 27)
    order = make_order(session, tenant, supplier, [("100", "2.00", 30)], order_date=today - timedelta(days=20))
    (line,) = svc.order_lines(session, order)
    svc.accept_all(session, order=order, expected_version=None, actor=SUPPLIER)
    svc.revise_line(
        session, order=order, line=line, terms=LineTerms(D("90"), line.requested_date, line.unit_price),
        comment="", expected_version=None, actor=BUYER, today=today,
    )  # fmt: skip

    def unconfirmed(day: date) -> bool:
        detect(session, tenant_id=tenant.id, today=day)
        return (
            session.execute(
                select(LineAlert.id).where(
                    LineAlert.line_id == line.id,
                    LineAlert.kind == AlertKind.UNCONFIRMED,
                    LineAlert.resolved_at.is_(None),
                )
            ).first()
            is not None
        )

    # Ordered 20 days ago, but asked again today: not overdue until the tenant's days (3) have passed since.
    assert not unconfirmed(today + timedelta(days=2))
    assert unconfirmed(today + timedelta(days=3))


def test_a_revision_starts_the_orders_reminders_over_from_the_day_it_asks_again(session):
    """An old order, reminded before its answer: revised, it is reminded again on its own once the line has gone
    unanswered the tenant's days since the revision, as reminder 1 (not a repeat of the old reminders)."""
    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    today = date(2026, 11, 27)
    order = make_order(session, tenant, supplier, [("100", "2.00", 30)], order_date=today - timedelta(days=20))
    (line,) = svc.order_lines(session, order)
    svc.remind_supplier(session, order=order, actor=BUYER)
    svc.accept_all(session, order=order, expected_version=None, actor=SUPPLIER)
    svc.revise_line(
        session, order=order, line=line, terms=LineTerms(D("90"), line.requested_date, line.unit_price),
        comment="", expected_version=None, actor=BUYER, today=today,
    )  # fmt: skip
    assert (order.reminded_at, order.reminder_count) == (None, 0)

    def automatic() -> list[dict]:  # type: ignore[type-arg]
        return [p for p in _events(session, tenant.id, "order.reminded") if p.get("automatic")]

    assert detect(session, tenant_id=tenant.id, today=today + timedelta(days=2)).reminded == 0
    assert detect(session, tenant_id=tenant.id, today=today + timedelta(days=3)).reminded == 1
    assert automatic() == [{"order_id": order.id, "reminder": 1, "automatic": True}]


def test_an_erp_change_that_moves_again_while_a_buyer_sends_it_is_refused_not_sent_stale(committed_db):
    """A buyer sends the ERP's change to the supplier while an intake, holding the order, finds the line changed
    again: the buyer's send waits for the order (locked before the line's sync, as the intake locks them), then
    sees the newer change and is refused; nothing it did is kept."""
    import threading
    import time

    from portal.auth.services import ServiceError
    from portal.db import set_context
    from portal.erp import services as erp_services
    from portal.erp.models import ErpLineSync
    from portal.orders.models import PurchaseOrder, PurchaseOrderLine
    from tests.conftest import tenant_session

    with tenant_session(committed_db, None) as s:
        tenant = make_tenant(s)
        order = make_order(s, tenant, make_supplier(s, tenant), [("100", "2.50", 14)])
        svc.accept_all(s, order=order, expected_version=None, actor=SUPPLIER)
        (line,) = svc.order_lines(s, order)
        day = line.requested_date.isoformat()
        order.erp_ref, line.erp_ref = "77", "701"
        s.add(ErpLineSync(tenant_id=tenant.id, line_id=line.id, order_id=order.id, erp_terms=f"100|{day}|2.5",
                          revised_terms=f"80|{day}|2.5"))  # fmt: skip
        tenant_id, order_id, line_id, requested = tenant.id, order.id, line.id, line.requested_date

    intake = committed_db.session()
    set_context(intake, tenant_id=tenant_id)
    intake.execute(select(PurchaseOrder.id).where(PurchaseOrder.id == order_id).with_for_update())
    outcome: list[str] = []
    sender_pid: list[int] = []

    def send() -> None:
        with committed_db.transaction(tenant_id=tenant_id) as s:
            sender_pid.append(s.execute(text("SELECT pg_backend_pid()")).scalar_one())
            mine = s.get(PurchaseOrder, order_id)
            line = s.get(PurchaseOrderLine, line_id)
            try:
                erp_services.take_revision(s, order=mine, line=line, quantity=D("80"), requested_date=requested,
                                           comment="", expected_version=None, actor=BUYER)  # fmt: skip
                outcome.append("sent")
            except ServiceError as exc:
                outcome.append(exc.message)
                s.rollback()  # as the request's transaction does on a refusal

    sender = threading.Thread(target=send)
    sender.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # until the send waits for the order's lock
        intake.execute(text("SELECT pg_stat_clear_snapshot()"))  # the view is a snapshot per transaction
        # The sender's own backend: another test running beside this one may be waiting for a lock of its own.
        waiting = (
            sender_pid
            and intake.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid = :pid"),
                {"pid": sender_pid[0]},
            ).scalar_one()
        )
        if waiting:
            break
        time.sleep(0.05)
    intake.execute(update(ErpLineSync).where(ErpLineSync.line_id == line_id).values(revised_terms=f"70|{day}|2.5"))
    intake.commit()
    intake.close()
    sender.join(timeout=20)
    assert outcome == ["Line 1 changed in the ERP again meanwhile: look at it again."]
    with tenant_session(committed_db, tenant_id) as s:
        line = s.get(PurchaseOrderLine, line_id)
        assert (line.state, line.quantity) == (LineState.CONFIRMED, D("100"))
        sync = s.execute(select(ErpLineSync).where(ErpLineSync.line_id == line_id)).scalar_one()
        assert sync.revised_terms == f"70|{day}|2.5"


def test_a_line_revised_after_goods_shipped_keeps_them_committed_and_asks_the_supplier_for_the_rest(setup):
    """A change order on a line part of which is on its way: what shipped stays committed as the delivery it went
    out against, the line waits for the supplier's answer to the new terms (whatever arrives meanwhile), and the
    answer covers the whole line again, at least what has gone."""
    session, _tenant, order, (first, second) = setup
    split = [svc.Delivery(D("60"), first.requested_date), svc.Delivery(D("40"), first.requested_date + timedelta(2))]
    svc.respond(session, order=order, answers=[LineAnswer(first.id, "change", split), LineAnswer(second.id, "accept")],
                expected_version=None, actor=SUPPLIER)  # fmt: skip
    ship = ShipmentInput(date.today(), date.today() + timedelta(days=2))
    svc.create_ship_notice(session, order=order, quantities={first.id: D("70")}, shipment=ship,
                           expected_version=None, actor=SUPPLIER)  # fmt: skip
    svc.record_receipt(session, order=order, line=first, quantity=D("50"), received_on=date.today(), actor=BUYER)
    assert first.state == LineState.PARTIALLY_RECEIVED
    later = first.requested_date + timedelta(days=10)

    entry_id = svc.revise_line(
        session, order=order, line=first, terms=LineTerms(D("150"), later, first.unit_price),
        comment="season extended", expected_version=None, actor=BUYER,
    )  # fmt: skip
    assert first.state == LineState.AWAITING_RESPONSE and first.quantity == D("150")
    assert (first.shipped_quantity, first.received_quantity) == (D("70"), D("50"))
    kept = svc.active_schedules(session, first)
    # The 70 gone went out against the first delivery (60) and 10 of the second, with their promised dates.
    assert [(s.quantity, s.promised_date) for s in kept] == [(D("60"), split[0].date), (D("10"), split[1].date)]
    entry = session.get(CommitmentEntry, entry_id)
    assert entry.kind == "revised" and entry.committed_quantity == D("70")
    kept_in_ledger = [(D(d["quantity"]), d["date"]) for d in entry.schedules]
    assert kept_in_ledger == [(D("60"), split[0].date.isoformat()), (D("10"), split[1].date.isoformat())]
    assert svc.shippable_quantities(session, order, [first])[first.id] == 0  # nothing more ships before an answer
    assert order.state == OrderState.AWAITING_RESPONSE

    # The goods on the way arrive: the line still waits for the answer to its new terms.
    svc.record_receipt(session, order=order, line=first, quantity=D("20"), received_on=date.today(), actor=BUYER)
    assert first.state == LineState.AWAITING_RESPONSE and first.received_quantity == D("70")
    version = order.version
    refused_answers = [
        (LineAnswer(first.id, "reject", reason_code="other"), "have shipped already"),
        (LineAnswer(first.id, "change", (svc.Delivery(D("50"), later),)), "70 pc are shipped already"),
    ]
    for answer, message in refused_answers:
        with pytest.raises(svc.InvalidAnswers) as refused:
            svc.respond(session, order=order, answers=[answer], expected_version=version, actor=SUPPLIER)
        assert message in " ".join(refused.value.errors[first.id])
    assert order.version == version and first.state == LineState.AWAITING_RESPONSE

    svc.respond(session, order=order, answers=[LineAnswer(first.id, "accept")], expected_version=version,
                actor=SUPPLIER)  # fmt: skip
    assert first.state == LineState.PARTIALLY_RECEIVED
    assert svc.committed_quantity(session, first) == D("150")
    assert svc.shippable_quantities(session, order, [first])[first.id] == D("80")
    assert order.state != OrderState.AWAITING_RESPONSE


def test_a_revision_after_shipment_waits_for_the_supplier_even_when_the_buyer_turns_its_answer_down(setup):
    """The supplier's answer to a revised line with goods gone goes to the buyer (outside the tolerance); turned
    down, the line is back to waiting for an answer, its shipped goods still committed."""
    session, _tenant, order, (_first, second) = setup
    svc.accept_all(session, order=order, expected_version=None, actor=SUPPLIER)
    svc.create_ship_notice(session, order=order, quantities={second.id: D("15")},
                           shipment=ShipmentInput(date.today(), date.today()), expected_version=None,
                           actor=SUPPLIER)  # fmt: skip
    svc.record_receipt(session, order=order, line=second, quantity=D("15"), received_on=date.today(), actor=BUYER)
    svc.revise_line(session, order=order, line=second, terms=LineTerms(D("60"), second.requested_date,
                    second.unit_price), comment="", expected_version=None, actor=BUYER)  # fmt: skip
    result = svc.respond(
        session, order=order, answers=[LineAnswer(second.id, "change", (svc.Delivery(D("15"), second.requested_date),),
                                                  reason_code="other", comment="no more this season")],
        expected_version=None, actor=SUPPLIER,
    )  # fmt: skip
    assert result.pending == [second.id] and second.state == LineState.CHANGES_PENDING
    request = session.execute(select(ChangeRequest).where(ChangeRequest.line_id == second.id)).scalar_one()
    svc.decide(session, request=request, order=order, decision="reject", comment="we need 60",
               expected_version=None, actor=BUYER)  # fmt: skip
    assert second.state == LineState.AWAITING_RESPONSE
    assert svc.committed_quantity(session, second) == D("15")


def _revised_after_shipping_then_shipment_cancelled(session, order, line) -> None:  # type: ignore[no-untyped-def]
    """Accepted, 10 shipped, revised to 40 (the 10 kept committed), then the shipment cancelled."""
    svc.accept_all(session, order=order, expected_version=None, actor=SUPPLIER)
    notice = svc.create_ship_notice(session, order=order, quantities={line.id: D("10")},
                                    shipment=ShipmentInput(date.today(), date.today()), expected_version=None,
                                    actor=SUPPLIER)  # fmt: skip
    svc.revise_line(session, order=order, line=line, terms=LineTerms(D("40"), line.requested_date,
                    line.unit_price), comment="", expected_version=None, actor=BUYER)  # fmt: skip
    assert [s.quantity for s in svc.active_schedules(session, line)] == [D("10")]
    svc.cancel_ship_notice(session, order=order, notice=notice, expected_version=None, actor=SUPPLIER)
    assert line.shipped_quantity == 0 and line.state == LineState.AWAITING_RESPONSE


def test_a_revised_lines_kept_delivery_is_withdrawn_by_another_revision_after_its_shipment_was_cancelled(setup):
    """The shipment a revision kept committed is cancelled before the supplier answers: the delivery it kept is
    still the line's commitment until then, and another revision (or the answer, below) replaces it."""
    session, _tenant, order, (first, _second) = setup
    _revised_after_shipping_then_shipment_cancelled(session, order, first)
    assert svc.committed_quantity(session, first) == D("10")  # kept until the supplier answers
    # Revised again: the kept delivery is withdrawn with the rest (one ledger entry), nothing has gone to keep.
    entry_id = svc.revise_line(session, order=order, line=first, terms=LineTerms(D("30"), first.requested_date,
                               first.unit_price), comment="", expected_version=None, actor=BUYER)  # fmt: skip
    entry = session.get(CommitmentEntry, entry_id)
    assert (entry.kind, entry.committed_quantity, len(entry.previous)) == ("revised", 0, 1)
    assert svc.active_schedules(session, first) == [] and first.promised_from is None


def test_an_answer_replaces_the_delivery_a_revision_kept_once_its_shipment_was_cancelled(setup):
    session, _tenant, order, (first, _second) = setup
    _revised_after_shipping_then_shipment_cancelled(session, order, first)
    svc.respond(session, order=order, answers=[LineAnswer(first.id, "accept")], expected_version=None,
                actor=SUPPLIER)  # fmt: skip
    assert [(s.quantity, s.promised_date) for s in svc.active_schedules(session, first)] == [
        (D("40"), first.requested_date)
    ]
    assert svc.committed_quantity(session, first) == D("40") and first.state == LineState.CONFIRMED
    entry = (
        session.execute(
            select(CommitmentEntry).where(CommitmentEntry.line_id == first.id).order_by(CommitmentEntry.id.desc())
        )
        .scalars()
        .first()
    )
    assert entry.kind == "accepted" and entry.previous == [
        {"quantity": "10.000", "date": first.requested_date.isoformat()}
    ]
