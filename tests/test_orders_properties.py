"""Hypothesis state machine over the order services: whatever sequence of answers,
decisions, re-promises, shipments, receipts, cancellations and the ERP's changes
happens, the invariants hold."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, select

from portal.audit import AuditEvent
from portal.auth.services import Actor, ServiceError
from portal.erp import services as erp_services
from portal.erp.base import ErpLine, ErpOrder
from portal.orders import services as svc
from portal.orders.models import (
    FINAL_LINE_STATES,
    QUANTITY_LINE_STATES,
    ChangeRequest,
    ChangeState,
    CommitmentEntry,
    DeliverySchedule,
    LineState,
    PurchaseOrderLine,
    Receipt,
    ShipNotice,
    ShipNoticeLine,
    ShipNoticeState,
)
from portal.orders.outcomes import OUTCOME_COLUMNS
from tests.factories import make_order, make_supplier, make_tenant, make_tolerance

ACTOR = Actor(None, "property@example.org", "")
# The states a line's quantities do not decide: a decision pending, a refusal, the final ones.
WITHOUT_QUANTITY_STATES = (LineState.CHANGES_PENDING, LineState.REJECTED, *FINAL_LINE_STATES)


def _clamped(value: Decimal, high: Decimal) -> Decimal:
    return max(Decimal(0), min(value, high))


def _outcomes_by_hand(session, line) -> dict:  # type: ignore[no-untyped-def]
    """Each active delivery's (counted, delivered, first arrival, completed), computed one receipt at a time."""
    schedules = sorted(svc.active_schedules(session, line), key=lambda s: (s.promised_date, s.position))
    receipts = session.execute(
        select(Receipt.received_on, Receipt.quantity)
        .where(Receipt.line_id == line.id)
        .order_by(Receipt.received_on, Receipt.id)
    ).all()
    running, total = [], Decimal(0)
    for day, quantity in receipts:
        total += quantity
        running.append((day, total))
    outcomes, before = {}, Decimal(0)
    for schedule in schedules:
        counted = schedule.quantity
        if line.state == LineState.CANCELLED:
            counted = _clamped(line.received_quantity - before, schedule.quantity)
        first = next((day for day, so_far in running if so_far > before), None)
        completed = next((day for day, so_far in running if so_far >= before + counted), None)
        outcomes[schedule.id] = (counted, _clamped(total - before, counted), first, completed)
        before += schedule.quantity
    return outcomes


@pytest.mark.parametrize("answered_first", [False, True], ids=["from-new", "from-accepted"])
def test_order_invariants_hold_under_any_sequence(session, answered_first):
    # From an accepted order too: most sequences from a new one receive nothing against a delivery.
    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    make_tolerance(session, tenant)
    tolerance = svc.tolerance_for(session, tenant.id, supplier.id)

    class OrderMachine(RuleBasedStateMachine):
        @initialize()
        def new_order(self) -> None:
            # Each example in a savepoint of its own, rolled back at its end: examples do not see each other's
            # rows, and a database error in one (a failure to report) cannot leave the next one a transaction
            # that refuses every statement, which hid the first error behind "current transaction is aborted".
            self.example = session.begin_nested()
            self.order = make_order(
                session, tenant, supplier, [("100", "2.00", 10), ("30", "5.00", 20), ("7", "9.00", 5)]
            )
            self.lines = svc.order_lines(session, self.order)
            # Known to an ERP, whose intake changes lines the supplier has not answered and cancels orders.
            self.order.erp_ref = f"E{self.order.id}"
            for line in self.lines:
                line.erp_ref = f"L{line.id}"
            session.flush()
            if answered_first:
                self._try(svc.accept_all)
            self.final_snapshot: dict[int, tuple] = {}

        def teardown(self) -> None:
            example = getattr(self, "example", None)
            if example is not None and example.is_active:
                example.rollback()

        def _line(self, index: int):  # type: ignore[no-untyped-def]
            return self.lines[index % len(self.lines)]

        def _try(self, fn, **kwargs) -> None:  # type: ignore[no-untyped-def]
            nested = session.begin_nested()
            try:
                fn(session, order=self.order, expected_version=None, actor=ACTOR, **kwargs)
            except ServiceError:
                nested.rollback()
                session.refresh(self.order)
                for line in self.lines:
                    session.refresh(line)
            else:
                nested.commit()

        @rule(
            index=st.integers(0, 2),
            quantities=st.lists(st.integers(1, 120), min_size=1, max_size=3),
            shifts=st.lists(st.integers(-5, 6), min_size=3, max_size=3),
            action=st.sampled_from(["accept", "change", "reject"]),
            price=st.sampled_from([None, None, None, "1.50", "9.50"]),
        )
        def answer(self, index, quantities, shifts, action, price) -> None:  # type: ignore[no-untyped-def]
            # A new price, on an acceptance or a change, always goes to the buyer.
            line = self._line(index)
            deliveries = tuple(
                svc.Delivery(Decimal(q), line.requested_date + timedelta(days=shifts[i]))
                for i, q in enumerate(quantities)
            )
            answer = svc.LineAnswer(
                line.id, action, deliveries, price=None if price is None or action == "reject" else Decimal(price),
                reason_code="other" if action == "reject" else "",
            )  # fmt: skip
            self._try(svc.respond, answers=[answer])

        @rule(decision=st.sampled_from(["approve", "reject", "counter"]))
        def decide(self, decision) -> None:  # type: ignore[no-untyped-def]
            request = (
                session.execute(
                    select(ChangeRequest).where(
                        ChangeRequest.order_id == self.order.id, ChangeRequest.state == ChangeState.OPEN
                    )
                )
                .scalars()
                .first()
            )
            if request is not None:
                self._try(svc.decide, request=request, decision=decision, comment="because")

        @rule(index=st.integers(0, 2), shift=st.integers(-4, 8), cut=st.sampled_from([0, 0, 5, 10, 50]))
        def repromise(self, index, shift, cut) -> None:  # type: ignore[no-untyped-def]
            # The same quantity, or ``cut`` % less (inside the 10 % under-tolerance, or outside it).
            line = self._line(index)
            quantity = line.quantity * (100 - cut) / 100
            deliveries = [svc.Delivery(quantity, line.requested_date + timedelta(days=shift))]
            self._try(svc.change_promise, line=line, deliveries=deliveries, reason_code="transport", comment="")

        @rule(index=st.integers(0, 2), quantity=st.integers(1, 110))
        def ship(self, index, quantity) -> None:  # type: ignore[no-untyped-def]
            line = self._line(index)
            self._try(
                svc.create_ship_notice,
                quantities={line.id: Decimal(quantity)},
                shipment=svc.ShipmentInput(self.order.order_date, self.order.order_date + timedelta(days=2)),
            )

        @rule()
        def cancel_notice(self) -> None:
            notice = (
                session.execute(
                    select(ShipNotice).where(
                        ShipNotice.order_id == self.order.id, ShipNotice.state == ShipNoticeState.SENT
                    )
                )
                .scalars()
                .first()
            )
            if notice is not None:
                self._try(svc.cancel_ship_notice, notice=notice)

        def _sent_notice(self) -> ShipNotice | None:
            return (
                session.execute(
                    select(ShipNotice)
                    .where(ShipNotice.order_id == self.order.id, ShipNotice.state == ShipNoticeState.SENT)
                    .order_by(ShipNotice.id)
                )
                .scalars()
                .first()
            )

        @rule(index=st.integers(0, 2), quantity=st.integers(1, 100), day=st.integers(0, 30), naming=st.booleans())
        def receive(self, index, quantity, day, naming) -> None:  # type: ignore[no-untyped-def]
            # A receipt of the ERP's, naming the ship notice its goods came with or not.
            line = self._line(index)
            notice = self._sent_notice() if naming else None
            self._try(
                lambda s, **kw: svc.record_receipt(
                    s,
                    order=kw["order"],
                    line=line,
                    quantity=Decimal(quantity),
                    received_on=self.order.order_date + timedelta(days=day),
                    actor=ACTOR,
                    ship_notice=notice,
                )
            )

        @rule(day=st.integers(0, 30))
        def receive_notice(self, day) -> None:  # type: ignore[no-untyped-def]
            # The receiving team takes in a whole shipment, its packing slip in hand.
            notice = self._sent_notice()
            if notice is not None:
                self._try(
                    lambda s, **kw: svc.receive_ship_notice(
                        s, order=kw["order"], notice=notice, received_on=self.order.order_date + timedelta(days=day),
                        actor=ACTOR,
                    )
                )  # fmt: skip

        @rule(index=st.integers(0, 2), quantity=st.integers(1, 120), shift=st.integers(-2, 6))
        def revise(self, index, quantity, shift) -> None:  # type: ignore[no-untyped-def]
            # The buyer's change order: the line is asked again; what shipped or arrived stays committed.
            line = self._line(index)
            terms = svc.LineTerms(Decimal(quantity), line.requested_date + timedelta(days=shift), line.unit_price)
            self._try(svc.revise_line, line=line, terms=terms, comment="")

        @rule(index=st.integers(0, 2))
        def cancel(self, index) -> None:  # type: ignore[no-untyped-def]
            self._try(svc.cancel_line, line=self._line(index), reason="no longer needed")

        def _intake(self, state: str, changed: tuple | None = None) -> None:  # type: ignore[type-arg]
            """The ERP's order as an intake reads it (``changed``: one line's new quantity and date) taken in as
            each pulled order is."""
            lines = []
            for line in self.lines:
                quantity, day = changed[1:] if changed is not None and changed[0] is line else (
                    line.quantity, line.requested_date)  # fmt: skip
                lines.append(ErpLine(line.erp_ref, line.position, line.product_code, line.product_name, quantity,
                                     line.unit, line.unit_price, day))  # fmt: skip
            erp_order = ErpOrder(self.order.erp_ref, self.order.number, "P1", "Supplier", "EUR",
                                 self.order.order_date, datetime.now(UTC), state, lines)  # fmt: skip
            tenant_id = self.order.tenant_id
            self._try(lambda s, **_: erp_services._upsert_order(s, tenant_id, erp_order, erp_services.PullReport()))
            session.refresh(self.order)

        @rule(index=st.integers(0, 2), quantity=st.integers(1, 120), shift=st.integers(-2, 6))
        def erp_change(self, index, quantity, shift) -> None:  # type: ignore[no-untyped-def]
            # The buyer changes a line in the ERP. Never below what the line keeps committed while it waits for
            # the supplier (the deliveries a revision kept for goods gone): ERPs refuse a cut below what was
            # received, and a cut below goods only shipped is taken as it comes (not handled yet: that commitment
            # would be above the order).
            line = self._line(index)
            kept = svc.committed_quantity(session, line) if line.state == LineState.AWAITING_RESPONSE else 0
            new_quantity = max(Decimal(quantity), kept)
            self._intake("open", (line, new_quantity, line.requested_date + timedelta(days=shift)))

        @rule()
        def erp_cancel(self) -> None:
            self._intake("cancelled")

        @rule()
        def close(self) -> None:
            self._try(svc.close_order)

        @invariant()
        def committed_within_tolerance_and_shipped_within_committed(self) -> None:
            if not hasattr(self, "order"):
                return
            for line in self.lines:
                committed = svc.committed_quantity(session, line)
                assert committed <= tolerance.max_quantity(line.quantity)
                if line.state not in (LineState.CANCELLED, LineState.CLOSED):
                    assert line.shipped_quantity <= committed or line.state == LineState.REJECTED

        @invariant()
        def lines_keep_the_dates_of_their_active_deliveries(self) -> None:
            # What the exceptions list reads instead of the deliveries themselves.
            if not hasattr(self, "order"):
                return
            for line in self.lines:
                dates = [schedule.promised_date for schedule in svc.active_schedules(session, line)]
                assert (line.promised_from, line.promised_to) == ((min(dates), max(dates)) if dates else (None, None))

        @invariant()
        def deliveries_keep_what_arrived_against_them(self) -> None:
            # The outcome stored on each delivery (portal.orders.outcomes, folded in SQL on flush) is what
            # setting the line's receipts against its deliveries in promised-date order gives, here in Python.
            if not hasattr(self, "order"):
                return
            for line in self.lines:
                stored = {
                    row.id: tuple(row[1:])
                    for row in session.execute(
                        select(DeliverySchedule.id, *(getattr(DeliverySchedule, c) for c in OUTCOME_COLUMNS)).where(
                            DeliverySchedule.line_id == line.id, DeliverySchedule.active.is_(True)
                        )
                    )
                }
                by_hand = _outcomes_by_hand(session, line)
                assert stored == by_hand
                # The earliest delivery not yet complete, kept on the line (written with SQL: read it so).
                dates = [
                    s.promised_date for s in svc.active_schedules(session, line) if by_hand[s.id][1] < by_hand[s.id][0]
                ]
                open_from = session.execute(
                    select(PurchaseOrderLine.open_from).where(PurchaseOrderLine.id == line.id)
                ).scalar_one()
                assert open_from == (min(dates) if dates else None)

        @invariant()
        def line_states_agree_with_quantities_and_open_requests(self) -> None:
            # A line waits for the buyer exactly while it has an open change request; otherwise, once answered,
            # its state is what its committed, shipped and received quantities say.
            if not hasattr(self, "order"):
                return
            for line in self.lines:
                waiting = session.execute(
                    select(func.count())
                    .select_from(ChangeRequest)
                    .where(ChangeRequest.line_id == line.id, ChangeRequest.state == ChangeState.OPEN)
                ).scalar_one()
                assert (line.state == LineState.CHANGES_PENDING) == bool(waiting), (line.state, waiting)
                committed = svc.committed_quantity(session, line)
                if line.state in QUANTITY_LINE_STATES:
                    assert line.state == svc.line_state_from_quantities(line, committed)
                elif line.state == LineState.AWAITING_RESPONSE and committed:
                    # Asked again after goods went out: exactly what the revision kept committed, whatever shipped
                    # or arrived since; the supplier's answer replaces it.
                    last = session.execute(
                        select(CommitmentEntry.kind, CommitmentEntry.committed_quantity)
                        .where(CommitmentEntry.line_id == line.id)
                        .order_by(CommitmentEntry.id.desc())
                        .limit(1)
                    ).one()
                    assert tuple(last) == ("revised", committed)
                elif line.received_quantity and line.state not in WITHOUT_QUANTITY_STATES:
                    raise AssertionError(f"{line.state} with {line.received_quantity} received")

        @invariant()
        def quantities_and_the_order_agree_with_what_was_recorded(self) -> None:
            # Received is the receipts' sum and shipped the live ship notices' (a line cancelled after it shipped
            # keeps what it shipped); the order's state and due date are derived from its lines.
            if not hasattr(self, "order"):
                return
            for line in self.lines:
                received = session.execute(
                    select(func.coalesce(func.sum(Receipt.quantity), 0)).where(Receipt.line_id == line.id)
                ).scalar_one()
                assert line.received_quantity == received
                if line.state not in FINAL_LINE_STATES:
                    shipped = session.execute(
                        select(func.coalesce(func.sum(ShipNoticeLine.quantity), 0))
                        .join(ShipNotice, ShipNotice.id == ShipNoticeLine.notice_id)
                        .where(ShipNoticeLine.line_id == line.id, ShipNotice.state != ShipNoticeState.CANCELLED)
                    ).scalar_one()
                    assert line.shipped_quantity == shipped
            assert self.order.state == svc.derive_order_state([line.state for line in self.lines])
            open_dates = [
                line.requested_date
                for line in self.lines
                if line.state not in (*FINAL_LINE_STATES, LineState.RECEIVED, LineState.REJECTED)
            ]
            assert self.order.due_date == (min(open_dates) if open_dates else None)

        @invariant()
        def final_lines_never_change(self) -> None:
            if not hasattr(self, "order"):
                return
            for line in self.lines:
                now = (line.state, line.shipped_quantity, line.received_quantity, svc.committed_quantity(session, line))
                if line.id in self.final_snapshot:
                    assert now == self.final_snapshot[line.id]
                elif line.state in FINAL_LINE_STATES:
                    self.final_snapshot[line.id] = now

        @invariant()
        def one_ledger_and_one_audit_entry_per_commitment_change(self) -> None:
            if not hasattr(self, "order"):
                return
            ledger = session.execute(
                select(func.count()).select_from(CommitmentEntry).where(CommitmentEntry.order_id == self.order.id)
            ).scalar_one()
            line_ids = [str(line.id) for line in self.lines]
            audited = session.execute(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action.like("commitment.%"), AuditEvent.object_id.in_(line_ids))
            ).scalar_one()
            assert ledger == audited

    run_state_machine_as_test(
        OrderMachine,
        settings=settings(
            max_examples=int(os.environ.get("ORDER_MACHINE_EXAMPLES", "25")),
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
