"""Business rules of purchase-order collaboration.

Every function takes the session and the tenant's objects explicitly, flushes and
never commits. A write to an order first claims its version with an atomic
``UPDATE ... WHERE version = :expected`` (two people answering the same order at
once: exactly one wins, the other gets :class:`Conflict`), validates *all* input
before changing anything, and records each change of a commitment with exactly
one ledger entry, one audit entry and an outbox event, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, cast

from sqlalchemy import Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from portal.auth.services import Actor, ServiceError
from portal.db import utcnow
from portal.documents.storage import LocalStorage, put_in_transaction
from portal.documents.validation import UploadRejected, check_attachment
from portal.formatting import counted
from portal.formatting import price as price_text
from portal.formatting import quantity as quantity_text
from portal.orders import outcomes
from portal.orders.models import (
    FINAL_LINE_STATES,
    QUANTITY_LINE_STATES,
    ChangeKind,
    ChangeRequest,
    ChangeState,
    CommitmentEntry,
    DeliverySchedule,
    LineState,
    OrderMessage,
    OrderMessageFile,
    OrderState,
    PurchaseOrder,
    PurchaseOrderLine,
    Receipt,
    ShipNotice,
    ShipNoticeLine,
    ShipNoticeState,
    Source,
    TolerancePolicy,
)
from portal.outbox import emit

MAX_DELIVERIES = 10
# Lines with goods still to come under their commitment: a new promise and a ship notice are taken for them,
# after a partial receipt too (the rest is still to ship, perhaps later than promised).
DELIVERING_STATES = (LineState.CONFIRMED, LineState.PARTIALLY_SHIPPED, LineState.PARTIALLY_RECEIVED)
ZERO = Decimal("0")
HUNDRED = Decimal("100")


class Conflict(ServiceError):
    """The order changed since the form was opened."""

    def __init__(self, current_version: int) -> None:
        super().__init__("This order changed since you opened it. The page now shows the current values.")
        self.current_version = current_version


class InvalidAnswers(ServiceError):
    """Input errors, keyed by line id (0 for the order itself); nothing was changed."""

    def __init__(self, errors: dict[int, list[str]]) -> None:
        super().__init__("Some answers need attention; nothing was saved.")
        self.errors = errors


@dataclass(frozen=True)
class Delivery:
    quantity: Decimal
    date: date

    def as_json(self) -> dict[str, str]:
        return {"quantity": str(self.quantity), "date": self.date.isoformat()}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Delivery:
        return cls(Decimal(data["quantity"]), date.fromisoformat(data["date"]))


@dataclass(frozen=True)
class LineAnswer:
    line_id: int
    action: Literal["accept", "change", "reject"]
    deliveries: tuple[Delivery, ...] = ()
    price: Decimal | None = None
    reason_code: str = ""
    comment: str = ""


@dataclass(frozen=True)
class Tolerance:
    quantity_under_pct: Decimal = ZERO
    quantity_over_pct: Decimal = ZERO
    days_earlier: int = 0
    days_later: int = 0
    price_pct: Decimal = ZERO

    def max_quantity(self, ordered: Decimal) -> Decimal:
        return ordered * (1 + self.quantity_over_pct / HUNDRED)

    def min_quantity(self, ordered: Decimal) -> Decimal:
        return ordered * (1 - self.quantity_under_pct / HUNDRED)


@dataclass
class RespondResult:
    confirmed: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)


def tolerance_for(session: Session, tenant_id: int, supplier_id: int) -> Tolerance:
    """The supplier's own tolerances, else the tenant's defaults, else none at all."""
    rows = (
        session.execute(
            select(TolerancePolicy).where(
                TolerancePolicy.tenant_id == tenant_id,
                (TolerancePolicy.supplier_id == supplier_id) | TolerancePolicy.supplier_id.is_(None),
            )
        )
        .scalars()
        .all()
    )
    chosen = next((r for r in rows if r.supplier_id == supplier_id), None) or next(iter(rows), None)
    if chosen is None:
        return Tolerance()
    return Tolerance(
        chosen.quantity_under_pct, chosen.quantity_over_pct, chosen.days_earlier, chosen.days_later, chosen.price_pct
    )


def outside_tolerance(
    line: PurchaseOrderLine, deliveries: Sequence[Delivery], price: Decimal | None, tolerance: Tolerance
) -> list[str]:
    """Why an answer needs the buyer (empty when it is inside every tolerance)."""
    reasons = []
    total = sum((d.quantity for d in deliveries), ZERO)
    if total < tolerance.min_quantity(line.quantity):
        reasons.append(f"quantity {quantity_text(total)} is below the ordered {quantity_text(line.quantity)}")
    if total > line.quantity and total > tolerance.max_quantity(line.quantity):
        reasons.append(f"quantity {quantity_text(total)} is above the ordered {quantity_text(line.quantity)}")
    for d in deliveries:
        days = (d.date - line.requested_date).days
        if days > tolerance.days_later:
            reasons.append(f"{d.date.isoformat()} is {days} days after the requested date")
        elif -days > tolerance.days_earlier:
            reasons.append(f"{d.date.isoformat()} is {-days} days before the requested date")
    if price is not None and price != line.unit_price:
        reasons.append(
            f"price {price_text(price)} instead of {price_text(line.unit_price)} (price changes always go to the buyer)"
        )
    return reasons


def delivery_problems(
    line: PurchaseOrderLine, order: PurchaseOrder, deliveries: Sequence[Delivery], tolerance: Tolerance
) -> list[str]:
    """Hard limits an answer may not pass at all (not even for the buyer to decide)."""
    problems = []
    if not deliveries:
        problems.append("Give at least one delivery.")
    if len(deliveries) > MAX_DELIVERIES:
        problems.append(f"Split into at most {MAX_DELIVERIES} deliveries.")
    for d in deliveries:
        if d.quantity <= 0:
            problems.append("Each delivery needs a quantity above zero.")
        if d.date < order.order_date:
            problems.append(f"{d.date.isoformat()} is before the order date.")
    total = sum((d.quantity for d in deliveries), ZERO)
    limit = tolerance.max_quantity(line.quantity)
    if total > limit:
        problems.append(
            f"You can commit at most {quantity_text(limit)} {line.unit} "
            f"(ordered {quantity_text(line.quantity)} plus tolerance)."
        )
    if total < line.shipped_quantity:
        problems.append(f"{quantity_text(line.shipped_quantity)} {line.unit} are shipped already.")
    if total < line.received_quantity:
        problems.append(f"{quantity_text(line.received_quantity)} {line.unit} are received already.")
    return list(dict.fromkeys(problems))


# --- helpers ---------------------------------------------------------------------


def claim_version(session: Session, order: PurchaseOrder, expected_version: int | None) -> None:
    """Bump the order's version if it is still ``expected_version``; else raise Conflict.

    The UPDATE takes the row lock: a concurrent writer waits, then finds the new
    version and fails cleanly instead of overwriting.
    """
    from sqlalchemy.orm.attributes import set_committed_value

    expected = order.version if expected_version is None else expected_version
    claimed = session.execute(
        update(PurchaseOrder)
        .where(
            PurchaseOrder.tenant_id == order.tenant_id,
            PurchaseOrder.id == order.id,
            PurchaseOrder.version == expected,
        )
        .values(version=PurchaseOrder.version + 1, updated_at=utcnow())
        .returning(PurchaseOrder.version, PurchaseOrder.updated_at)
        .execution_options(synchronize_session=False)
    ).first()
    if claimed is None:
        session.refresh(order)
        raise Conflict(order.version)
    # The new values come back with the UPDATE (no second round trip), as loaded, not as changes to flush.
    set_committed_value(order, "version", claimed.version)
    set_committed_value(order, "updated_at", claimed.updated_at)


def active_schedules(session: Session, line: PurchaseOrderLine) -> list[DeliverySchedule]:
    return list(
        session.execute(
            select(DeliverySchedule)
            .where(
                DeliverySchedule.tenant_id == line.tenant_id,
                DeliverySchedule.line_id == line.id,
                DeliverySchedule.active.is_(True),
            )
            .order_by(DeliverySchedule.position)
        ).scalars()
    )


def committed_quantity(session: Session, line: PurchaseOrderLine) -> Decimal:
    return sum((s.quantity for s in active_schedules(session, line)), ZERO)


def committed_quantities(session: Session, order: PurchaseOrder) -> dict[int, Decimal]:
    """Each line's committed quantity (its active deliveries' sum), for all of an order's lines in one statement;
    a line without any is absent."""
    rows = session.execute(
        select(DeliverySchedule.line_id, func.sum(DeliverySchedule.quantity))
        .join(PurchaseOrderLine, PurchaseOrderLine.id == DeliverySchedule.line_id)
        .where(
            DeliverySchedule.tenant_id == order.tenant_id,
            PurchaseOrderLine.tenant_id == order.tenant_id,
            PurchaseOrderLine.order_id == order.id,
            DeliverySchedule.active.is_(True),
        )
        .group_by(DeliverySchedule.line_id)
    )
    return {line_id: Decimal(total) for line_id, total in rows}


def _snapshot(schedules: Iterable[DeliverySchedule]) -> list[dict[str, str]]:
    return [Delivery(s.quantity, s.promised_date).as_json() for s in schedules]


def order_lines(session: Session, order: PurchaseOrder) -> list[PurchaseOrderLine]:
    return list(
        session.execute(
            select(PurchaseOrderLine)
            .where(PurchaseOrderLine.order_id == order.id, PurchaseOrderLine.tenant_id == order.tenant_id)
            .order_by(PurchaseOrderLine.position)
        ).scalars()
    )


def order_line(session: Session, order: PurchaseOrder, line_id: int) -> PurchaseOrderLine | None:
    """One line of ``order`` by id, through the order's tenant (None when it is not the order's)."""
    return session.execute(
        select(PurchaseOrderLine).where(
            PurchaseOrderLine.id == line_id,
            PurchaseOrderLine.order_id == order.id,
            PurchaseOrderLine.tenant_id == order.tenant_id,
        )
    ).scalar_one_or_none()


def order_ship_notice(session: Session, order: PurchaseOrder, notice_id: int) -> ShipNotice | None:
    """One ship notice of ``order`` by id, through the order's tenant (None when it is not the order's)."""
    return session.execute(
        select(ShipNotice).where(
            ShipNotice.id == notice_id, ShipNotice.order_id == order.id, ShipNotice.tenant_id == order.tenant_id
        )
    ).scalar_one_or_none()


def derive_order_state(states: Sequence[LineState]) -> OrderState:
    """The order's state from its lines' states, most urgent first."""
    live = [s for s in states if s != LineState.CANCELLED]
    if not live:
        return OrderState.CANCELLED
    if all(s == LineState.CLOSED for s in live):
        return OrderState.CLOSED
    if LineState.AWAITING_RESPONSE in live:
        return OrderState.AWAITING_RESPONSE
    if LineState.CHANGES_PENDING in live:
        return OrderState.CHANGES_PENDING
    open_lines = [s for s in live if s not in (LineState.CLOSED, LineState.REJECTED)]
    if not open_lines:
        return OrderState.REJECTED if LineState.REJECTED in live else OrderState.CLOSED
    if any(s in (LineState.CONFIRMED, LineState.PARTIALLY_SHIPPED) for s in open_lines):
        return OrderState.CONFIRMED
    if any(s in (LineState.SHIPPED, LineState.PARTIALLY_RECEIVED) for s in open_lines):
        return OrderState.SHIPPED
    return OrderState.RECEIVED


def refresh_order(session: Session, order: PurchaseOrder, lines: Sequence[PurchaseOrderLine]) -> None:
    """The order's state, due date and value from all its ``lines``: the value counts every line but the
    cancelled ones, at its price now (a price change the buyer approved, an ERP's change)."""
    order.state = derive_order_state([line.state for line in lines])
    order.total_value = sum(
        (line.quantity * line.unit_price for line in lines if line.state != LineState.CANCELLED), ZERO
    )
    open_dates = [
        line.requested_date
        for line in lines
        if line.state not in FINAL_LINE_STATES and line.state not in (LineState.RECEIVED, LineState.REJECTED)
    ]
    order.due_date = min(open_dates) if open_dates else None
    session.flush()


def _require_open(line: PurchaseOrderLine) -> None:
    if line.state in FINAL_LINE_STATES:
        raise ServiceError(f"Line {line.position} is {line.state.label}; it cannot change any more.")


@dataclass(frozen=True)
class Commitment:
    """One line's new commitment, for :func:`commit_lines`."""

    line: PurchaseOrderLine
    deliveries: Sequence[Delivery]
    kind: str
    reason_code: str = ""
    comment: str = ""


def commit_line(
    session: Session,
    *,
    order: PurchaseOrder,
    line: PurchaseOrderLine,
    deliveries: Sequence[Delivery],
    kind: str,
    actor: Actor,
    source: Source,
    reason_code: str = "",
    comment: str = "",
) -> int:
    """Replace the line's commitment with ``deliveries``: one ledger entry, one audit entry, one event; returns
    the ledger entry's id."""
    commitment = Commitment(line, deliveries, kind, reason_code, comment)
    return commit_lines(session, order=order, commitments=[commitment], actor=actor, source=source)[0]


def commit_lines(
    session: Session, *, order: PurchaseOrder, commitments: Sequence[Commitment], actor: Actor, source: Source
) -> list[int]:
    """:func:`commit_line` for several lines of one order, flushed together: the ledger entries, schedules,
    line updates and events of all lines go out as one batched statement per table (a five-line acceptance
    took about 20 statements more when each line was flushed on its own)."""
    today = date.today()
    schedule_rows: list[dict[str, Any]] = []
    entry_rows: list[dict[str, Any]] = []
    staged_lines: list[tuple[Commitment, list[DeliverySchedule]]] = []
    for commitment in commitments:
        line, deliveries = commitment.line, commitment.deliveries
        _require_open(line)
        # A line that was never answered has no schedules yet: no need to look. One revised after goods went
        # out against it keeps the deliveries they went against (see ``revise_line``), even once their ship notice
        # is cancelled; the answer replaces them. A line's promised dates are its active deliveries' (kept with
        # them): an awaiting line without any has none to replace.
        unanswered = line.state == LineState.AWAITING_RESPONSE and line.promised_from is None
        previous = [] if unanswered else active_schedules(session, line)
        # The n-th new delivery continues the n-th old one (in position order, as the answer form lists
        # them): it keeps its first promise, and a moved date records the notice given (days from today to
        # the date it replaces).
        for schedule in previous:
            schedule.active = False
        # The active deliveries are always the line's last (a revision's kept ones are made after all others),
        # so the new ones follow them. With none active, a line asked again (revised) may still hold withdrawn
        # ones, whose positions it keeps: look (one statement) unless it is a first answer to a line never
        # asked again, which has no deliveries at all. The line may wait for the buyer by then (an answer to a
        # revision outside the tolerance, approved), not only for the supplier.
        next_position = max((s.position for s in previous), default=0)
        if not previous and not (unanswered and line.asked_on is None):
            next_position = session.execute(
                select(func.coalesce(func.max(DeliverySchedule.position), 0)).where(
                    DeliverySchedule.tenant_id == line.tenant_id, DeliverySchedule.line_id == line.id
                )
            ).scalar_one()
        for index, delivery in enumerate(deliveries):
            next_position += 1
            before = previous[index] if index < len(previous) else None
            notice = None
            if before is not None:
                notice = (
                    (before.promised_date - today).days if before.promised_date != delivery.date else before.notice_days
                )
            schedule_rows.append(
                {
                    "tenant_id": line.tenant_id,
                    "line_id": line.id,
                    "supplier_id": line.supplier_id,
                    "position": next_position,
                    "quantity": delivery.quantity,
                    "promised_date": delivery.date,
                    "first_promised_date": before.first_promised_date if before is not None else delivery.date,
                    "notice_days": notice,
                }
            )
        dates = [delivery.date for delivery in deliveries]
        line.promised_from, line.promised_to = (min(dates), max(dates)) if dates else (None, None)
        # Nothing arrived against new deliveries: all are still to come (a line with goods received is folded
        # again below, which sets it from what arrived).
        line.open_from = line.promised_from
        # Answered, approved or re-promised, the line stands where its quantities say (a new promise down to
        # what has shipped already leaves nothing more to ship).
        line.state = line_state_from_quantities(line, sum((d.quantity for d in deliveries), ZERO))
        entry_rows.append(
            {
                "tenant_id": line.tenant_id,
                "order_id": order.id,
                "line_id": line.id,
                "kind": commitment.kind,
                "schedules": [d.as_json() for d in deliveries],
                "previous": _snapshot(previous) if previous else None,
                "committed_quantity": sum((d.quantity for d in deliveries), ZERO),
                "reason_code": commitment.reason_code,
                "comment": commitment.comment,
                "source": source,
                "actor_user_id": actor.user_id,
                "actor": actor.label,
            }
        )
        staged_lines.append((commitment, previous))
    # The new deliveries and ledger entries are written as bulk statements, outside the unit of work: as
    # objects, their flush was a third of a confirmation's CPU. The lines' changes and the replaced deliveries
    # go first, so that the fold below reads the line as it now is.
    session.flush()
    if schedule_rows:
        session.execute(insert(DeliverySchedule), schedule_rows)
        # The flush hook that keeps each delivery's outcome does not see bulk rows: a line that already has
        # goods received (a change approved after they arrived) is folded here. Any other starts as "nothing
        # arrived", as the rows' defaults say.
        received = [(line.tenant_id, line.id) for line in (c.line for c, _ in staged_lines) if line.received_quantity]
        for tenant_id in {tenant_id for tenant_id, _ in received}:
            outcomes.refresh(session, tenant_id=tenant_id, line_ids=[i for t, i in received if t == tenant_id])
    # Only the ids come back (the audit entries and events name them): nothing here reads the entries as objects,
    # and an insert that loads them into the session costs more Python than one that does not.
    returning = insert(CommitmentEntry).returning(CommitmentEntry.id, sort_by_parameter_order=True)
    entry_ids = list(session.scalars(returning, entry_rows))
    for (commitment, previous), entry, entry_id in zip(staged_lines, entry_rows, entry_ids, strict=True):
        line = commitment.line
        actor.audit(
            session,
            f"commitment.{commitment.kind}",
            tenant_id=line.tenant_id,
            object_type="order_line",
            object_id=line.id,
            before={"schedules": _snapshot(previous)} if previous else None,
            after={"schedules": entry["schedules"], "order": order.number, "position": line.position},
            reason=" ".join(part for part in (commitment.reason_code, commitment.comment) if part),
        )
        emit(
            session,
            line.tenant_id,
            "commitment.changed",
            {"order_id": order.id, "line_id": line.id, "ledger_id": entry_id, "kind": commitment.kind,
             "schedules": entry["schedules"]},
        )  # fmt: skip
    return entry_ids


def _open_change_request(
    session: Session,
    *,
    order: PurchaseOrder,
    line: PurchaseOrderLine,
    kind: ChangeKind,
    deliveries: Sequence[Delivery] | None,
    price: Decimal | None,
    outside: list[str],
    reason_code: str,
    comment: str,
    actor: Actor,
    source: Source,
) -> ChangeRequest:
    request = ChangeRequest(
        tenant_id=line.tenant_id,
        order_id=order.id,
        line_id=line.id,
        supplier_id=line.supplier_id,
        kind=kind,
        previous_state=line.state,
        proposed_schedules=[d.as_json() for d in deliveries] if deliveries is not None else None,
        proposed_price=price,
        reason_code=reason_code,
        comment=comment,
        outside=outside,
        source=source,
        created_by_id=actor.user_id,
    )
    session.add(request)
    line.state = LineState.CHANGES_PENDING
    session.flush()
    actor.audit(
        session,
        "change_request.created",
        tenant_id=line.tenant_id,
        object_type="change_request",
        object_id=request.id,
        after={"order": order.number, "position": line.position, "kind": kind.value, "outside": outside},
        reason=" ".join(part for part in (reason_code, comment) if part),
    )
    emit(session, line.tenant_id, "change_request.created", {"order_id": order.id, "change_request_id": request.id})
    return request


# --- the supplier's answers ---------------------------------------------------------


def respond(
    session: Session,
    *,
    order: PurchaseOrder,
    answers: Sequence[LineAnswer],
    expected_version: int | None,
    actor: Actor,
    source: Source = Source.PORTAL,
    lines: Sequence[PurchaseOrderLine] | None = None,
) -> RespondResult:
    """The supplier answers lines of an order that await a response (``lines``: the order's, if loaded already)."""
    by_id = {line.id: line for line in (order_lines(session, order) if lines is None else lines)}
    # Accepting a line as requested is inside every tolerance (none is negative) and within its hard limits:
    # the tenant's and the supplier's tolerances are read only when an answer departs from the order.
    departs = any(answer.action != "accept" for answer in answers)
    tolerance = tolerance_for(session, order.tenant_id, order.supplier_id) if departs else Tolerance()
    errors: dict[int, list[str]] = {}
    if not answers:
        errors[0] = ["Answer at least one line."]
    plans: list[tuple[PurchaseOrderLine, LineAnswer, tuple[Delivery, ...], list[str]]] = []
    answered: set[int] = set()
    for answer in answers:
        line = by_id.get(answer.line_id)
        if line is None:
            errors.setdefault(0, []).append("An answer names a line that is not on this order.")
            continue
        if line.state != LineState.AWAITING_RESPONSE:
            errors[line.id] = [f"Line {line.position} is {line.state.label} already."]
            continue
        if answer.line_id in answered:
            errors[line.id] = [f"Line {line.position} is answered twice; give one answer per line."]
            continue
        answered.add(answer.line_id)
        if answer.action == "reject":
            if gone_quantity(line) > 0:
                errors[line.id] = [
                    f"{quantity_text(gone_quantity(line))} {line.unit} of line {line.position} have shipped already: "
                    "answer with what you can deliver in all (at least that), not with a rejection."
                ]
            elif not answer.reason_code:
                errors[line.id] = ["Choose why you reject this line."]
            plans.append((line, answer, (), []))
            continue
        deliveries = answer.deliveries or (Delivery(line.quantity, line.requested_date),)
        if answer.action == "accept":
            deliveries = (Delivery(line.quantity, line.requested_date),)
        problems = delivery_problems(line, order, deliveries, tolerance)
        if answer.price is not None and answer.price <= 0:
            problems.append("A price must be above zero.")
        if problems:
            errors[line.id] = problems
            continue
        plans.append((line, answer, deliveries, outside_tolerance(line, deliveries, answer.price, tolerance)))
    if errors:
        raise InvalidAnswers(errors)
    claim_version(session, order, expected_version)

    result = RespondResult()
    inside: list[Commitment] = []  # confirmed at once, committed together after the loop
    for line, answer, deliveries, outside in plans:
        if answer.action == "reject":
            _open_change_request(
                session,
                order=order,
                line=line,
                kind=ChangeKind.REJECT,
                deliveries=None,
                price=None,
                outside=["rejection"],
                reason_code=answer.reason_code,
                comment=answer.comment,
                actor=actor,
                source=source,
            )
            result.pending.append(line.id)
        elif outside:
            _open_change_request(
                session,
                order=order,
                line=line,
                kind=ChangeKind.PRICE
                if answer.price is not None and answer.price != line.unit_price
                else ChangeKind.COMMITMENT,
                deliveries=deliveries,
                price=answer.price,
                outside=outside,
                reason_code=answer.reason_code,
                comment=answer.comment,
                actor=actor,
                source=source,
            )
            result.pending.append(line.id)
        else:
            kind = "accepted" if answer.action == "accept" else "promised"
            inside.append(Commitment(line, deliveries, kind, answer.reason_code, answer.comment))
            result.confirmed.append(line.id)
    if inside:
        commit_lines(session, order=order, commitments=inside, actor=actor, source=source)
    if order.responded_at is None:
        order.responded_at = utcnow()
    # Emitted before the order's flush, so that the line events and this one go out as one statement.
    emit(
        session,
        order.tenant_id,
        "order.responded",
        {"order_id": order.id, "confirmed": result.confirmed, "pending": result.pending},
    )
    refresh_order(session, order, list(by_id.values()))
    return result


def accept_all(
    session: Session,
    *,
    order: PurchaseOrder,
    expected_version: int | None,
    actor: Actor,
    source: Source = Source.PORTAL,
) -> RespondResult:
    """One click (or one API call): every line still awaiting an answer is accepted as requested."""
    lines = order_lines(session, order)
    answers = [LineAnswer(line.id, "accept") for line in lines if line.state == LineState.AWAITING_RESPONSE]
    if not answers:
        raise InvalidAnswers({0: ["No line is waiting for an answer."]})
    return respond(
        session,
        order=order,
        answers=answers,
        expected_version=expected_version,
        actor=actor,
        source=source,
        lines=lines,
    )


def change_promise(
    session: Session,
    *,
    order: PurchaseOrder,
    line: PurchaseOrderLine,
    deliveries: Sequence[Delivery],
    reason_code: str,
    comment: str,
    expected_version: int | None,
    actor: Actor,
    source: Source = Source.PORTAL,
) -> ChangeRequest | None:
    """After confirmation: new dates (or quantities) with a reason; outside tolerance it waits for the buyer
    (the change request is returned), inside it is committed at once (None)."""
    _require_open(line)
    errors: list[str] = []
    if line.state not in DELIVERING_STATES:
        errors.append(
            f"Line {line.position} is {line.state.label}; only confirmed lines with goods still to come can be "
            "re-promised."
        )
    if not reason_code:
        errors.append("Choose a reason for the change.")
    tolerance = tolerance_for(session, order.tenant_id, order.supplier_id)
    errors += delivery_problems(line, order, deliveries, tolerance)
    if errors:
        raise InvalidAnswers({line.id: errors})
    claim_version(session, order, expected_version)
    outside = outside_tolerance(line, deliveries, None, tolerance)
    result: ChangeRequest | None = None
    if outside:
        result = _open_change_request(
            session,
            order=order,
            line=line,
            kind=ChangeKind.COMMITMENT,
            deliveries=deliveries,
            price=None,
            outside=outside,
            reason_code=reason_code,
            comment=comment,
            actor=actor,
            source=source,
        )
    else:
        commit_line(
            session,
            order=order,
            line=line,
            deliveries=deliveries,
            kind="repromised",
            actor=actor,
            source=source,
            reason_code=reason_code,
            comment=comment,
        )
    refresh_order(session, order, order_lines(session, order))
    return result


# --- the buyer's decisions ----------------------------------------------------------


def decide(
    session: Session,
    *,
    request: ChangeRequest,
    order: PurchaseOrder,
    decision: Literal["approve", "reject", "counter"],
    comment: str,
    expected_version: int | None,
    actor: Actor,
) -> None:
    if request.state != ChangeState.OPEN:
        raise ServiceError("This change request has been decided already.")
    if decision in ("reject", "counter") and not comment.strip():
        raise InvalidAnswers({request.line_id: ["Tell the supplier why (the comment is required)."]})
    line = session.execute(
        select(PurchaseOrderLine).where(
            PurchaseOrderLine.id == request.line_id, PurchaseOrderLine.tenant_id == request.tenant_id
        )
    ).scalar_one()
    _require_open(line)
    claim_version(session, order, expected_version)
    if decision == "approve":
        if request.kind == ChangeKind.REJECT:
            # The commitment becomes "nothing": one ledger entry, audit entry and event, as any change.
            commit_line(
                session,
                order=order,
                line=line,
                deliveries=[],
                kind="rejected",
                actor=actor,
                source=request.source,
                reason_code=request.reason_code,
                comment=request.comment,
            )
            line.state = LineState.REJECTED
        else:
            if request.proposed_price is not None:
                line.unit_price = request.proposed_price
            if request.proposed_schedules is not None:
                commit_line(
                    session,
                    order=order,
                    line=line,
                    deliveries=[Delivery.from_json(d) for d in request.proposed_schedules],
                    kind="approved_change",
                    actor=actor,
                    source=request.source,
                    reason_code=request.reason_code,
                    comment=comment,
                )
            # Goods may have arrived while the request waited: the quantities say where the line stands.
            line.state = line_state_from_quantities(line, committed_quantity(session, line))
        request.state = ChangeState.APPROVED
    else:
        # Back to where the line stood, as its quantities say now: goods may have arrived meanwhile (an
        # unanswered line with goods received is received, as a receipt makes it).
        back = request.previous_state
        if back in QUANTITY_LINE_STATES or line.received_quantity > 0:
            committed = committed_quantity(session, line)
            if not _asked_again_after_goods(back, committed):
                back = line_state_from_quantities(line, committed)
        line.state = back
        request.state = ChangeState.REJECTED if decision == "reject" else ChangeState.COUNTERED
    request.decided_by_id = actor.user_id
    request.decided_at = utcnow()
    request.decision_comment = comment.strip()
    session.flush()
    actor.audit(
        session,
        f"change_request.{request.state.value}",
        tenant_id=request.tenant_id,
        object_type="change_request",
        object_id=request.id,
        after={"order": order.number, "position": line.position, "kind": request.kind.value},
        reason=comment.strip(),
    )
    emit(
        session,
        request.tenant_id,
        "change_request.decided",
        {"order_id": order.id, "change_request_id": request.id, "decision": request.state.value},
    )
    refresh_order(session, order, order_lines(session, order))


# --- the buyer's revision of a line (a change order) ---------------------------------


@dataclass(frozen=True)
class LineTerms:
    """What the buyer asks of a line: its quantity, requested date and unit price."""

    quantity: Decimal
    requested_date: date
    unit_price: Decimal

    @classmethod
    def of(cls, line: PurchaseOrderLine) -> LineTerms:
        return cls(line.quantity, line.requested_date, line.unit_price)

    def changes(self, other: LineTerms) -> dict[str, tuple[str, str]]:
        """The terms that differ from ``other``, named as people read them: ``{"quantity": ("100", "80")}``."""
        shown = {
            "quantity": (quantity_text(self.quantity), quantity_text(other.quantity)),
            "requested date": (self.requested_date.isoformat(), other.requested_date.isoformat()),
            "unit price": (price_text(self.unit_price), price_text(other.unit_price)),
        }
        return {name: pair for name, pair in shown.items() if pair[0] != pair[1]}


def _withdraw_open_requests(session: Session, line: PurchaseOrderLine) -> None:
    """The line's open change requests are withdrawn: what they asked no longer stands (the line was cancelled,
    or revised by the buyer)."""
    for request in session.execute(
        select(ChangeRequest).where(
            ChangeRequest.tenant_id == line.tenant_id,
            ChangeRequest.line_id == line.id,
            ChangeRequest.state == ChangeState.OPEN,
        )
    ).scalars():
        request.state = ChangeState.WITHDRAWN


def changes_text(changes: dict[str, tuple[str, str]]) -> str:
    """A revision's changes as people read them: "quantity 100 → 80, requested date ... → ..."."""
    return ", ".join(f"{name} {was} → {now}" for name, (was, now) in changes.items())


def revisable(line: PurchaseOrderLine) -> bool:
    """Whether the buyer may still change the line's terms: while it is open (goods shipped or received against
    it stay as they are; the revision is about the rest)."""
    return line.state not in FINAL_LINE_STATES


def _asked_again_after_goods(state: LineState, committed: Decimal) -> bool:
    """Whether a line in ``state`` waits for the supplier's answer to a revision made after goods went out against
    it: it keeps those deliveries committed, which a line never answered does not have."""
    return state == LineState.AWAITING_RESPONSE and committed > 0


def gone_quantity(line: PurchaseOrderLine) -> Decimal:
    """What has left the supplier against the line: shipped, or received (an ERP's receipt may come without a ship
    notice). A revision keeps it committed, and the supplier's answer to the new terms cannot go below it."""
    return max(line.shipped_quantity, line.received_quantity)


def revision_problems(order: PurchaseOrder, line: PurchaseOrderLine, terms: LineTerms) -> list[str]:
    """Why the buyer may not revise ``line`` to ``terms`` (nothing when it may)."""
    if line.state in FINAL_LINE_STATES:
        return [f"Line {line.position} is {line.state.label}; it cannot change any more."]
    problems = []
    gone = gone_quantity(line)
    if gone > 0 and terms.quantity <= gone:
        problems.append(
            f"{quantity_text(gone)} {line.unit} have shipped or arrived already: order more than that, or cancel "
            "the rest of the line to stop at it."
        )
    elif terms.quantity <= 0:
        problems.append("Enter a quantity above zero.")
    if terms.unit_price <= 0:
        problems.append("Enter a unit price above zero.")
    if terms.requested_date < order.order_date:
        problems.append(f"The requested date cannot be before the order date ({order.order_date}).")
    if not problems and not LineTerms.of(line).changes(terms):
        problems.append("These are the line's terms already: change the quantity, the date or the price.")
    return problems


def revise_line(
    session: Session,
    *,
    order: PurchaseOrder,
    line: PurchaseOrderLine,
    terms: LineTerms,
    comment: str,
    expected_version: int | None,
    actor: Actor,
    source: Source = Source.PORTAL,
    today: date | None = None,
) -> int | None:
    """The buyer changes a line's terms (a change order, in the portal or in the ERP): the line waits for the
    supplier's answer again. An answered line's commitment is withdrawn (one ledger entry, ``revised``, with the
    deliveries it replaces) and so are its open change requests: the supplier answers the new terms, not the old
    ones. What has shipped or arrived already stays committed, as the deliveries it went out against (the first
    ones, in their order, cut to that quantity, with their promised dates): the supplier's answer covers the
    whole line again and cannot go below it. Returns the ledger entry's id (None for an unanswered line)."""
    problems = revision_problems(order, line, terms)
    if problems:
        raise InvalidAnswers({line.id: problems})
    claim_version(session, order, expected_version)
    changes = LineTerms.of(line).changes(terms)
    # An answered line has a commitment to withdraw; so has one asked again after goods went out (the deliveries
    # kept for what went, which stay after their ship notice is cancelled: they have promised dates), and one
    # never answered that goods went out against (they are kept committed now).
    answered = line.state != LineState.AWAITING_RESPONSE or line.promised_from is not None or gone_quantity(line) > 0
    if order.state != OrderState.AWAITING_RESPONSE:
        # The order asks the supplier again: reminders to answer it start over (not "reminder 3" at once).
        order.reminded_at, order.reminder_count = None, 0
    _withdraw_open_requests(session, line)
    previous = active_schedules(session, line) if answered else []
    for schedule in previous:
        schedule.active = False
    kept = _deliveries_gone(session, line, previous)
    line.quantity, line.requested_date, line.unit_price = terms.quantity, terms.requested_date, terms.unit_price
    line.state = LineState.AWAITING_RESPONSE
    dates = [schedule.promised_date for schedule in kept]
    line.promised_from, line.promised_to = (min(dates), max(dates)) if dates else (None, None)
    # Nothing arrived against the kept deliveries, as far as this assignment knows: a line with goods received
    # is folded again when they are flushed (below), which sets it from what arrived.
    line.open_from = line.promised_from
    line.asked_on = today or date.today()
    session.add_all(kept)
    comment = comment.strip()
    entry_id = None
    if answered:
        entry = CommitmentEntry(
            tenant_id=line.tenant_id,
            order_id=order.id,
            line_id=line.id,
            kind="revised",
            schedules=_snapshot(kept),
            previous=_snapshot(previous) or None,
            committed_quantity=sum((schedule.quantity for schedule in kept), ZERO),
            # What the buyer changed, then why: the history on the order page shows the ledger entry alone.
            comment="; ".join(part for part in (changes_text(changes), comment) if part),
            source=source,
            actor_user_id=actor.user_id,
            actor=actor.label,
        )
        session.add(entry)
        session.flush()
        entry_id = entry.id
    else:
        session.flush()
    actor.audit(
        session,
        # Withdrawing a commitment is a change of it (audited as each one is); an unanswered line had none.
        "commitment.revised" if answered else "order_line.revised",
        tenant_id=line.tenant_id,
        object_type="order_line",
        object_id=line.id,
        before={name: was for name, (was, _) in changes.items()}
        | ({"schedules": _snapshot(previous)} if previous else {}),
        after={"order": order.number, "position": line.position} | {name: now for name, (_, now) in changes.items()},
        reason=comment,
    )
    emit(
        session,
        line.tenant_id,
        "order_line.revised",
        {"order_id": order.id, "line_id": line.id, "position": line.position, "source": source.value,
         "changes": {name: list(pair) for name, pair in changes.items()}, "comment": comment},
    )  # fmt: skip
    if entry_id is not None:
        emit(
            session,
            line.tenant_id,
            "commitment.changed",
            {"order_id": order.id, "line_id": line.id, "ledger_id": entry_id, "kind": "revised",
             "schedules": _snapshot(kept)},
        )  # fmt: skip
    refresh_order(session, order, order_lines(session, order))
    return entry_id


def _deliveries_gone(
    session: Session, line: PurchaseOrderLine, withdrawn: Sequence[DeliverySchedule]
) -> list[DeliverySchedule]:
    """The deliveries that what has gone (shipped or received) went out against, kept committed through a
    revision: the withdrawn ones in their order, the last cut to what is left of it (new rows after all the
    line's deliveries, withdrawn earlier ones too, each keeping its first promise; receipts are folded onto them
    by the flush hook). None when nothing has gone."""
    left = gone_quantity(line)
    if left <= 0:
        return []
    # (quantity, promised date, first promised date, notice days) of each delivery kept.
    pieces: list[tuple[Decimal, date, date, int | None]] = []
    for schedule in withdrawn:
        if left <= 0:
            break
        quantity = min(schedule.quantity, left)
        pieces.append((quantity, schedule.promised_date, schedule.first_promised_date, schedule.notice_days))
        left -= quantity
    if left > 0:
        # More went than was committed (the over-delivery tolerance, or goods received on a line never answered):
        # the rest is kept on the last delivery's date, or the requested date when nothing was promised.
        day = withdrawn[-1].promised_date if withdrawn else line.requested_date
        pieces.append((left, day, day, None))
    last_position = session.execute(
        select(func.coalesce(func.max(DeliverySchedule.position), 0)).where(
            DeliverySchedule.tenant_id == line.tenant_id, DeliverySchedule.line_id == line.id
        )
    ).scalar_one()
    return [
        DeliverySchedule(
            tenant_id=line.tenant_id,
            line_id=line.id,
            supplier_id=line.supplier_id,
            position=last_position + number,
            quantity=quantity,
            promised_date=promised,
            first_promised_date=first_promised,
            notice_days=notice_days,
        )
        for number, (quantity, promised, first_promised, notice_days) in enumerate(pieces, start=1)
    ]


# --- shipping and receiving ---------------------------------------------------------


@dataclass(frozen=True)
class ShipmentInput:
    ship_date: date
    expected_arrival: date
    carrier: str = ""
    tracking_number: str = ""
    packing_slip: str = ""


def shippable_quantities(session: Session, order: PurchaseOrder, lines: list[PurchaseOrderLine]) -> dict[int, Decimal]:
    """What each of the order's ``lines`` can still ship (committed minus shipped), in one statement."""
    committed = committed_quantities(session, order)
    return {line.id: _shippable(line, committed.get(line.id, ZERO)) for line in lines}


def _shippable(line: PurchaseOrderLine, committed: Decimal) -> Decimal:
    """What is committed and neither shipped nor received: goods received without a ship notice (an ERP's
    receipt) were shipped all the same. Receipts are taken against the notices first (the portal does not
    know which notice a receipt answers), so after a receipt without a notice a later notice may leave a
    little more to ship than is left: never less, which would stop a supplier from announcing goods."""
    if line.state not in DELIVERING_STATES:
        return ZERO
    return max(committed - max(line.shipped_quantity, line.received_quantity), ZERO)


def line_state_from_quantities(line: PurchaseOrderLine, committed: Decimal) -> LineState:
    """What an answered line's quantities make it: received (in part or in full) once goods arrived, else
    shipped (in part or all of ``committed``), else confirmed."""
    if line.received_quantity > 0:
        return LineState.RECEIVED if line.received_quantity >= line.quantity else LineState.PARTIALLY_RECEIVED
    if line.shipped_quantity <= 0:
        return LineState.CONFIRMED
    return LineState.SHIPPED if line.shipped_quantity >= committed else LineState.PARTIALLY_SHIPPED


def create_ship_notice(
    session: Session,
    *,
    order: PurchaseOrder,
    quantities: dict[int, Decimal],
    shipment: ShipmentInput,
    expected_version: int | None,
    actor: Actor,
) -> ShipNotice:
    lines = {line.id: line for line in order_lines(session, order)}
    committed = committed_quantities(session, order)
    errors: dict[int, list[str]] = {}
    wanted = {line_id: qty for line_id, qty in quantities.items() if qty}
    if not wanted:
        errors[0] = ["Enter a quantity for at least one line."]
    if shipment.expected_arrival < shipment.ship_date:
        errors.setdefault(0, []).append("The expected arrival cannot be before the ship date.")
    for line_id, qty in wanted.items():
        line = lines.get(line_id)
        if line is None:
            errors.setdefault(0, []).append("A quantity names a line that is not on this order.")
            continue
        available = _shippable(line, committed.get(line_id, ZERO))
        if qty < 0:
            errors[line_id] = ["Quantities cannot be negative."]
        elif qty > available:
            errors[line_id] = [
                f"At most {quantity_text(available)} {line.unit} can ship (committed minus already shipped)."
            ]
    if errors:
        raise InvalidAnswers(errors)
    claim_version(session, order, expected_version)
    count = session.execute(
        select(ShipNotice.id).where(ShipNotice.tenant_id == order.tenant_id, ShipNotice.order_id == order.id)
    ).all()
    notice = ShipNotice(
        tenant_id=order.tenant_id,
        order_id=order.id,
        supplier_id=order.supplier_id,
        number=f"{order.number}-ASN{len(count) + 1}",
        ship_date=shipment.ship_date,
        expected_arrival=shipment.expected_arrival,
        carrier=shipment.carrier.strip(),
        tracking_number=shipment.tracking_number.strip(),
        packing_slip=shipment.packing_slip.strip(),
        created_by_id=actor.user_id,
    )
    session.add(notice)
    session.flush()
    for line_id, qty in wanted.items():
        line = lines[line_id]
        session.add(ShipNoticeLine(tenant_id=order.tenant_id, notice_id=notice.id, line_id=line_id, quantity=qty))
        line.shipped_quantity += qty
        line.state = line_state_from_quantities(line, committed.get(line_id, ZERO))
    session.flush()
    actor.audit(
        session,
        "ship_notice.created",
        tenant_id=order.tenant_id,
        object_type="ship_notice",
        object_id=notice.id,
        after={"order": order.number, "number": notice.number, "lines": {str(k): str(v) for k, v in wanted.items()}},
    )
    emit(session, order.tenant_id, "ship_notice.created", {"order_id": order.id, "ship_notice_id": notice.id})
    refresh_order(session, order, list(lines.values()))
    return notice


def cancel_ship_notice(
    session: Session, *, order: PurchaseOrder, notice: ShipNotice, expected_version: int | None, actor: Actor
) -> None:
    """Withdraw a ship notice nothing was received against: its open lines have that much less shipped. A line
    cancelled after it shipped stays as it was (the goods may still arrive; nothing changes on a final line)."""
    if notice.state != ShipNoticeState.SENT:
        raise ServiceError("Only a ship notice that has not been received can be cancelled.")
    _, came = arrivals_by_notice(session, order).get(notice.id, (ZERO, ZERO))
    if came > 0:
        raise ServiceError(
            f"Goods of ship notice {notice.number} have arrived ({quantity_text(came)} so far): it can no longer be "
            "cancelled."
        )
    claim_version(session, order, expected_version)
    lines = {line.id: line for line in order_lines(session, order)}
    notice_lines = session.execute(
        select(ShipNoticeLine).where(
            ShipNoticeLine.tenant_id == notice.tenant_id, ShipNoticeLine.notice_id == notice.id
        )
    ).scalars()
    for item in notice_lines:
        line = lines[item.line_id]
        if line.state in FINAL_LINE_STATES:
            # Cancelled (or closed) since it shipped: nothing changes on a final line, not even what it shipped.
            continue
        line.shipped_quantity -= item.quantity
        if line.state in QUANTITY_LINE_STATES:  # a line waiting for the buyer's decision keeps waiting
            line.state = line_state_from_quantities(line, committed_quantity(session, line))
    notice.state = ShipNoticeState.CANCELLED
    session.flush()
    # Received quantities the cancelled notice was counting on now go to the notices after it.
    settle_ship_notices(session, order)
    actor.audit(
        session,
        "ship_notice.cancelled",
        tenant_id=order.tenant_id,
        object_type="ship_notice",
        object_id=notice.id,
        after={"order": order.number, "number": notice.number},
    )
    emit(session, order.tenant_id, "ship_notice.cancelled", {"order_id": order.id, "ship_notice_id": notice.id})
    refresh_order(session, order, list(lines.values()))


def record_receipt(
    session: Session,
    *,
    order: PurchaseOrder,
    line: PurchaseOrderLine,
    quantity: Decimal,
    received_on: date,
    actor: Actor,
    source: Source = Source.ERP,
    erp_ref: str | None = None,
    ship_notice: ShipNotice | None = None,
) -> Receipt:
    """Goods received against ``line``; ``ship_notice`` is the notice they came with, when the receipt names one
    (``receipt_notice`` finds it): those goods go to that notice first (``match_receipts``)."""
    _require_open(line)
    if quantity <= 0:
        raise InvalidAnswers({line.id: ["A receipt needs a quantity above zero."]})
    claim_version(session, order, None)
    receipt = _add_receipt(session, order=order, line=line, quantity=quantity, received_on=received_on, actor=actor,
                           source=source, erp_ref=erp_ref, ship_notice=ship_notice)  # fmt: skip
    lines = order_lines(session, order)
    refresh_order(session, order, lines)
    settle_ship_notices(session, order, lines)
    return receipt


def _add_receipt(
    session: Session, *, order: PurchaseOrder, line: PurchaseOrderLine, quantity: Decimal, received_on: date,
    actor: Actor, source: Source, erp_ref: str | None, ship_notice: ShipNotice | None,
) -> Receipt:  # fmt: skip
    """One receipt of an open line of an order whose version the caller has claimed: the row, the line's
    quantities and state, the audit entry and the event. The caller refreshes the order and settles its
    notices once, after all its receipts."""
    receipt = Receipt(
        tenant_id=line.tenant_id,
        line_id=line.id,
        quantity=quantity,
        received_on=received_on,
        source=source,
        erp_ref=erp_ref,
        ship_notice_id=ship_notice.id if ship_notice is not None else None,
    )
    session.add(receipt)
    line.received_quantity += quantity
    # The buyer's decision sets a pending line's state from the quantities; a line asked again after goods went
    # out (a revision) waits for the supplier's answer to its new terms whatever arrives meanwhile.
    if line.state != LineState.CHANGES_PENDING:
        committed = committed_quantity(session, line)
        if not _asked_again_after_goods(line.state, committed):
            line.state = line_state_from_quantities(line, committed)
    session.flush()
    actor.audit(
        session,
        "receipt.recorded",
        tenant_id=line.tenant_id,
        object_type="order_line",
        object_id=line.id,
        after={"order": order.number, "quantity": str(quantity), "received_on": received_on.isoformat()}
        | ({"ship_notice": ship_notice.number} if ship_notice is not None else {}),
    )
    emit(
        session,
        line.tenant_id,
        "receipt.recorded",
        {"order_id": order.id, "line_id": line.id, "receipt_id": receipt.id}
        | ({"ship_notice_id": ship_notice.id} if ship_notice is not None else {}),
    )
    return receipt


def latest_receipt_day(today: date) -> date:
    """The latest day a receipt typed in the portal may carry: tomorrow, as the people receiving may be a time
    zone ahead of the server's day; later is a typo (an ERP's receipts are recorded as they come)."""
    return today + timedelta(days=1)


def future_receipt_day(received_on: date, today: date) -> str | None:
    """Why a receipt typed in the portal cannot carry ``received_on`` (a day after ``latest_receipt_day``),
    or None."""
    if received_on > latest_receipt_day(today):
        return f"{received_on.isoformat()} is in the future: enter the day the goods arrived."
    return None


@dataclass
class ShipmentReceived:
    """What ``receive_ship_notice`` recorded: a receipt per line, and the lines left out (closed or cancelled
    since they shipped: nothing more is received on a final line)."""

    receipts: list[tuple[PurchaseOrderLine, Decimal]]
    left_out: list[PurchaseOrderLine]


def receive_ship_notice(
    session: Session, *, order: PurchaseOrder, notice: ShipNotice, received_on: date, actor: Actor,
    source: Source = Source.PORTAL,
) -> ShipmentReceived:  # fmt: skip
    """Goods receipt against a whole ship notice (the receiving team, its packing slip in hand): each of its
    lines receives what of it has not arrived yet, each receipt naming the notice, so the notice is received.
    Refused for a cancelled or received notice, a day before it was shipped, or when nothing of it is left to
    receive on an open line."""
    if notice.state == ShipNoticeState.CANCELLED:
        raise ServiceError(f"Ship notice {notice.number} was cancelled: nothing can be received against it.")
    if notice.state == ShipNoticeState.RECEIVED:
        raise ServiceError(f"Ship notice {notice.number} has been received already.")
    if received_on < notice.ship_date:
        raise ServiceError(
            f"Ship notice {notice.number} was shipped on {notice.ship_date.isoformat()}: its goods cannot have "
            f"arrived on {received_on.isoformat()}."
        )
    lines = {line.id: line for line in order_lines(session, order)}
    items = session.execute(
        select(ShipNoticeLine.line_id, ShipNoticeLine.quantity - ShipNoticeLine.received_quantity)
        .where(ShipNoticeLine.tenant_id == order.tenant_id, ShipNoticeLine.notice_id == notice.id)
        .order_by(ShipNoticeLine.id)
    ).all()
    done = ShipmentReceived([], [])
    for line_id, rest in items:
        line = lines[line_id]
        if rest <= 0:
            continue
        if line.state in FINAL_LINE_STATES:
            done.left_out.append(line)
        else:
            done.receipts.append((line, rest))
    if not done.receipts:
        raise ServiceError(f"Nothing of ship notice {notice.number} is left to receive on an open line.")
    # One action: the order's version moves once, and it is refreshed and its notices settled once.
    claim_version(session, order, None)
    for line, rest in done.receipts:
        _add_receipt(session, order=order, line=line, quantity=rest, received_on=received_on, actor=actor,
                     source=source, erp_ref=None, ship_notice=notice)  # fmt: skip
    refresh_order(session, order, list(lines.values()))
    settle_ship_notices(session, order, list(lines.values()))
    return done


def receipt_notice(session: Session, *, order: PurchaseOrder, line: PurchaseOrderLine, reference: str) -> ShipNotice:
    """The ship notice of ``order`` that a receipt of ``line`` names: by the notice's number (printed and
    barcoded on its packing slip), or by the supplier's own packing slip number the notice carries; letter case
    and surrounding spaces aside. Raises ``InvalidAnswers`` saying why no notice fits: none of the order's has
    that number, it was cancelled, or it does not ship that line."""
    wanted = reference.strip().upper()
    candidates = session.execute(
        select(ShipNotice).where(
            ShipNotice.tenant_id == order.tenant_id,
            ShipNotice.order_id == order.id,
            or_(func.upper(ShipNotice.number) == wanted,
                and_(ShipNotice.packing_slip != "", func.upper(ShipNotice.packing_slip) == wanted)),
        ).order_by(ShipNotice.id)
    ).scalars().all()  # fmt: skip
    # The portal's own number first: a supplier's packing slip number could repeat another notice's.
    by_number = [notice for notice in candidates if notice.number.upper() == wanted]
    chosen = by_number or candidates
    if not chosen:
        raise InvalidAnswers({line.id: [f"Order {order.number} has no ship notice {reference.strip()!r}."]})
    if len(chosen) > 1:
        raise InvalidAnswers({line.id: [
            f"Ship notices {', '.join(n.number for n in chosen)} of order {order.number} all carry packing slip "
            f"{reference.strip()!r}: give the notice's own number."
        ]})  # fmt: skip
    notice = chosen[0]
    if notice.state == ShipNoticeState.CANCELLED:
        raise InvalidAnswers({line.id: [f"Ship notice {notice.number} was cancelled."]})
    ships_line = session.execute(
        select(ShipNoticeLine.id)
        .where(
            ShipNoticeLine.tenant_id == order.tenant_id,
            ShipNoticeLine.notice_id == notice.id,
            ShipNoticeLine.line_id == line.id,
        )
        .limit(1)
    ).first()
    if ships_line is None:
        raise InvalidAnswers({line.id: [f"Ship notice {notice.number} does not ship line {line.position}."]})
    return notice


def settle_ship_notices(
    session: Session, order: PurchaseOrder, lines: Sequence[PurchaseOrderLine] | None = None
) -> None:
    """Keep what has arrived of each line of the order's notices still waiting for goods
    (``ship_notice_lines.received_quantity``, by ``match_receipts``), and mark the notices received once all
    their goods have, but for those of lines closed or cancelled since, each with a ``ship_notice.received``
    event (the supplier's people are told, and its systems through their webhooks). ``lines``: all the order's
    lines, when the caller has them loaded (their states are not read again)."""
    arrived = notice_line_arrivals(session, order)
    changed = [
        {"notice": notice_id, "line": line_id, "arrived": came}
        for (notice_id, line_id), (_, came, kept) in arrived.items()
        if came != kept
    ]
    if changed:
        table = cast(Table, ShipNoticeLine.__table__)
        session.execute(
            update(table)
            .where(table.c.tenant_id == order.tenant_id, table.c.notice_id == bindparam("notice"),
                   table.c.line_id == bindparam("line"))
            .values(received_quantity=bindparam("arrived")),
            changed,
        )  # fmt: skip
    if not arrived:
        return
    # A line closed or cancelled since it shipped receives nothing more (its goods cannot be recorded): its
    # notices no longer wait for them.
    states = ((line.id, line.state) for line in lines) if lines is not None else session.execute(
        select(PurchaseOrderLine.id, PurchaseOrderLine.state).where(
            PurchaseOrderLine.tenant_id == order.tenant_id, PurchaseOrderLine.order_id == order.id
        )
    )  # fmt: skip
    final = {line_id for line_id, state in states if state in FINAL_LINE_STATES}
    still_waiting = {notice_id for (notice_id, line_id), (shipped, came, _) in arrived.items()
                     if came < shipped and line_id not in final}  # fmt: skip
    done = sorted({notice_id for notice_id, _ in arrived} - still_waiting)
    if not done:
        return
    received = session.execute(
        update(ShipNotice)
        .where(ShipNotice.tenant_id == order.tenant_id, ShipNotice.id.in_(done),
               ShipNotice.state == ShipNoticeState.SENT)
        .values(state=ShipNoticeState.RECEIVED)
        .returning(ShipNotice.id, ShipNotice.number)
    ).all()  # fmt: skip
    for notice_id, number in received:
        emit(session, order.tenant_id, "ship_notice.received",
             {"order_id": order.id, "ship_notice_id": notice_id, "number": number})  # fmt: skip


def arrivals_by_notice(session: Session, order: PurchaseOrder) -> dict[int, tuple[Decimal, Decimal]]:
    """For each ship notice of ``order`` still waiting for its goods: what it shipped and what of it has arrived
    (``notice_line_arrivals``, summed over its lines)."""
    return notice_totals(notice_line_arrivals(session, order))


def notice_totals(arrived: Mapping[tuple[int, int], Sequence[Decimal]]) -> dict[int, tuple[Decimal, Decimal]]:
    """Per notice, the sums of its lines' (shipped, arrived)."""
    totals: dict[int, tuple[Decimal, Decimal]] = {}
    for (notice_id, _), (shipped, came, *_) in arrived.items():
        before = totals.get(notice_id, (ZERO, ZERO))
        totals[notice_id] = (before[0] + shipped, before[1] + came)
    return totals


# (notice, line) -> (shipped, arrived, what the notice line's row keeps)
NoticeLineArrivals = dict[tuple[int, int], tuple[Decimal, Decimal, Decimal]]


def notice_line_arrivals(session: Session, order: PurchaseOrder) -> NoticeLineArrivals:
    """For each line of each ship notice of ``order`` still waiting for its goods (sent, not received or
    cancelled), by (notice, line): what it shipped, what of it has arrived by ``match_receipts`` over the
    order's live notices and receipts, and what its row keeps (two statements; none more when no notice
    waits). Which notice a receipt answers depends on the notice it names, else on its date, so the receipts
    are read, not only the lines' totals."""
    tenant = order.tenant_id
    shipped = session.execute(
        select(ShipNotice.id, ShipNotice.state, ShipNotice.ship_date, ShipNoticeLine.line_id, ShipNoticeLine.quantity,
               ShipNoticeLine.received_quantity)
        .join(ShipNoticeLine, and_(ShipNoticeLine.notice_id == ShipNotice.id, ShipNoticeLine.tenant_id == tenant))
        .where(ShipNotice.tenant_id == tenant, ShipNotice.order_id == order.id,
               ShipNotice.state != ShipNoticeState.CANCELLED)
        .order_by(ShipNotice.ship_date, ShipNotice.id, ShipNoticeLine.id)
    ).all()  # fmt: skip
    waiting = {notice_id for notice_id, state, *_ in shipped if state == ShipNoticeState.SENT}
    if not waiting:
        return {}
    receipts = session.execute(
        select(Receipt.line_id, Receipt.quantity, Receipt.received_on, Receipt.ship_notice_id)
        .join(PurchaseOrderLine, and_(PurchaseOrderLine.id == Receipt.line_id, PurchaseOrderLine.tenant_id == tenant))
        .where(Receipt.tenant_id == tenant, PurchaseOrderLine.order_id == order.id)
        .order_by(Receipt.received_on, Receipt.id)
    ).all()  # fmt: skip
    matched = match_receipts(
        [(notice_id, ship_date, line_id, quantity) for notice_id, _, ship_date, line_id, quantity, _ in shipped],
        [(line_id, quantity, received_on, notice_id) for line_id, quantity, received_on, notice_id in receipts],
    )
    kept = {(notice_id, line_id): recorded for notice_id, _, _, line_id, _, recorded in shipped}
    return {key: (total, came, kept[key]) for key, (total, came) in matched.items() if key[0] in waiting}


def match_receipts(
    shipped: Sequence[tuple[int, date, int, Decimal]], receipts: Sequence[tuple[int, Decimal, date, int | None]]
) -> dict[tuple[int, int], tuple[Decimal, Decimal]]:
    """What each notice shipped of each line and what of it has arrived, by (notice, line).

    A receipt that names its notice (scanned from the packing slip at goods receipt) goes to that notice first,
    whatever the dates say, up to what the notice shipped of that line; those are read before any other, so a
    receipt matched by date never takes what a named one settles. The rest of it, and every receipt naming no
    notice, goes, in the order they came, to the earliest notice (by ship date) of its line that still waits for
    goods and was shipped on or before the day it arrived: goods that came before a notice was sent are not its
    goods. What is left beyond every such notice (goods an ERP received without one) answers none.

    ``shipped``: (notice, ship date, line, quantity), in ship date order; ``receipts``: (line, quantity, day,
    named notice or None), in the order they came."""
    open_quantity: dict[tuple[int, int], Decimal] = {}
    by_line: dict[int, list[tuple[date, int]]] = {}
    for notice_id, ship_date, line_id, quantity in shipped:
        key = (notice_id, line_id)
        if key not in open_quantity:
            by_line.setdefault(line_id, []).append((ship_date, notice_id))
        open_quantity[key] = open_quantity.get(key, ZERO) + quantity
    totals = dict(open_quantity)

    def take(notice_id: int, line_id: int, quantity: Decimal) -> Decimal:
        taken = min(quantity, open_quantity[(notice_id, line_id)])
        open_quantity[(notice_id, line_id)] -= taken
        return quantity - taken

    left_over: list[tuple[int, Decimal, date]] = []
    for line_id, quantity, received_on, named in receipts:
        # A notice that is cancelled, or does not ship this line, is not among ``shipped``: matched by date.
        if named is not None and (named, line_id) in open_quantity:
            quantity = take(named, line_id, quantity)
        left_over.append((line_id, quantity, received_on))
    for line_id, quantity, received_on in left_over:
        for ship_date, notice_id in by_line.get(line_id, []):
            if quantity <= 0 or ship_date > received_on:
                break
            quantity = take(notice_id, line_id, quantity)
    return {key: (total, total - open_quantity[key]) for key, total in totals.items()}


def cancel_line(
    session: Session,
    *,
    order: PurchaseOrder,
    line: PurchaseOrderLine,
    reason: str,
    expected_version: int | None,
    actor: Actor,
) -> None:
    """The buyer cancels an open line (what was shipped stays shipped)."""
    _require_open(line)
    if not reason.strip():
        raise InvalidAnswers({line.id: ["Give a reason for the cancellation."]})
    claim_version(session, order, expected_version)
    cancel_claimed_line(session, order=order, line=line, reason=reason.strip(), actor=actor)
    refresh_order(session, order, order_lines(session, order))


def cancel_claimed_line(
    session: Session,
    *,
    order: PurchaseOrder,
    line: PurchaseOrderLine,
    reason: str,
    actor: Actor,
    announced: bool = True,
) -> None:
    """Cancel an open line of an order whose version the caller has claimed (the buyer in the portal, or the
    ERP's cancellation): its open change requests are withdrawn (nothing is left to decide), with the audit
    entry and the ``order_line.cancelled`` event, which tells the supplier's people unless ``announced`` is
    False (the ERP's intake tells them of all its changes to an order at once). The caller refreshes the
    order."""
    _withdraw_open_requests(session, line)
    line.state = LineState.CANCELLED
    session.flush()
    # A notice waiting only for this line's goods waits no more.
    settle_ship_notices(session, order)
    actor.audit(
        session,
        "order_line.cancelled",
        tenant_id=line.tenant_id,
        object_type="order_line",
        object_id=line.id,
        after={"order": order.number, "position": line.position},
        reason=reason,
    )
    emit(
        session,
        line.tenant_id,
        "order_line.cancelled",
        {"order_id": order.id, "line_id": line.id, "position": line.position, "reason": reason,
         "announced": announced},
    )  # fmt: skip


def close_order(session: Session, *, order: PurchaseOrder, expected_version: int | None, actor: Actor) -> None:
    """Close an order whose lines are all received, rejected or cancelled."""
    lines = order_lines(session, order)
    still_open = [
        line.position
        for line in lines
        if line.state not in (LineState.RECEIVED, LineState.REJECTED, LineState.CANCELLED, LineState.CLOSED)
    ]
    if still_open:
        raise ServiceError("Lines " + ", ".join(map(str, still_open)) + " are still open.")
    claim_version(session, order, expected_version)
    for line in lines:
        if line.state in (LineState.RECEIVED, LineState.REJECTED):
            line.state = LineState.CLOSED
    session.flush()
    actor.audit(
        session,
        "order.closed",
        tenant_id=order.tenant_id,
        object_type="order",
        object_id=order.id,
        after={"order": order.number},
    )
    emit(session, order.tenant_id, "order.closed", {"order_id": order.id})
    refresh_order(session, order, lines)


MESSAGE_MAX_LENGTH = 4000


MESSAGE_FILES = 5  # files attached to one message, each under the document upload policy (PDF, PNG, JPEG, 10 MB)


@dataclass(frozen=True)
class AttachedFile:
    filename: str
    data: bytes


def post_message(
    session: Session,
    *,
    order: PurchaseOrder,
    author_id: int,
    author: str,
    from_supplier: bool,
    body: str,
    files: Sequence[AttachedFile] = (),
    storage: LocalStorage | None = None,
    scan: Callable[[bytes], None] | None = None,
) -> OrderMessage:
    """A message on the order between the supplier and the buyers, with up to five files (a drawing, a
    specification, a delivery plan, a quality report: ``check_attachment``'s kinds). The other side hears of it
    (in the portal and by e-mail, as each person chose) through the ``order.message`` event written with it.

    Every file is checked (raises UploadRejected) and scanned by ``scan`` when a scanner is configured before
    any is stored: one refused file refuses the message, and nothing is kept."""
    text = body.strip()
    if not text and not files:
        raise ServiceError("Write a message or attach a file.")
    if len(text) > MESSAGE_MAX_LENGTH:
        raise ServiceError(f"A message has at most {MESSAGE_MAX_LENGTH:,} characters.")
    if len(files) > MESSAGE_FILES:
        raise ServiceError(f"Attach at most {MESSAGE_FILES} files to a message.")
    if files and storage is None:
        raise ValueError("files need a storage")
    checked = []
    for attached in files:
        try:
            checked.append(check_attachment(attached.filename, attached.data))
        except UploadRejected as exc:
            raise UploadRejected(f"{attached.filename or 'A file'}: {exc.message}", exc.status) from exc
    if scan is not None:
        for attached in files:
            scan(attached.data)
    message = OrderMessage(
        tenant_id=order.tenant_id, order_id=order.id, author_id=author_id, author=author[:254],
        from_supplier=from_supplier, body=text,
    )  # fmt: skip
    session.add(message)
    session.flush()
    stored_files = []
    for attached, check in zip(files, checked, strict=True):
        assert storage is not None
        stored = OrderMessageFile(
            tenant_id=order.tenant_id, order_id=order.id, message_id=message.id,
            storage_key=put_in_transaction(session, storage, attached.data),
            original_name=(attached.filename or "file")[-255:],
            size=check.size, content_type=check.content_type, sha256=check.sha256,
        )  # fmt: skip
        session.add(stored)
        stored_files.append(stored)
    session.flush()
    set_committed_value(message, "files", stored_files)
    emit(session, order.tenant_id, "order.message", {"order_id": order.id, "message_id": message.id})
    return message


UPDATE_REQUEST_LINES = 200  # the exceptions page's lines
UPDATE_REQUEST_INTERVAL = timedelta(days=1)  # a line's supplier is asked for an update once a day at most


@dataclass(frozen=True)
class UpdatesAsked:
    orders: int
    lines: int
    suppliers: int
    # Chosen lines whose supplier was asked about them within the last day, by anyone: not asked again.
    left_out: int = 0


def _line_for_update(line: PurchaseOrderLine) -> str:
    """One line as an update request names it: what is open, and what was promised against what was asked."""
    open_quantity = quantity_text(line.quantity - line.received_quantity)
    promised = "not answered yet"
    if line.promised_from is not None:
        promised = f"promised {line.promised_from.isoformat()}"
        if line.promised_to is not None and line.promised_to != line.promised_from:
            promised += f" to {line.promised_to.isoformat()}"
    return (f"- Line {line.position} · {line.product_code} {line.product_name}: {open_quantity} {line.unit} open, "
            f"{promised}, requested {line.requested_date.isoformat()}")  # fmt: skip


def ask_for_updates(
    session: Session,
    *,
    tenant_id: int,
    line_ids: Sequence[int],
    author_id: int,
    author: str,
    comment: str,
    now: datetime | None = None,
) -> UpdatesAsked:
    """A buyer acting on exceptions: one message on each order of the chosen lines, to its supplier, asking for an
    update on those lines (named with what is open and what was promised), with the buyer's comment. The
    supplier's people hear of it as of any message. Each line is asked about once a day at most, whoever asks
    (``update_asked_at``): lines asked about within the last day are left out, and counted; a double submit
    so sends nothing twice. Raises LookupError when a line is not the tenant's (the page answers 404), and
    ServiceError, before anything is written, when a line is closed or cancelled or when every line was asked
    about within the last day."""
    chosen = sorted(set(line_ids))
    if not chosen:
        raise ServiceError("Tick the lines to ask the suppliers about.")
    if len(chosen) > UPDATE_REQUEST_LINES:
        raise ServiceError(f"Ask about at most {UPDATE_REQUEST_LINES} lines at a time.")
    note = comment.strip()
    if len(note) > 1000:
        raise ServiceError("Keep the comment to 1,000 characters.")
    rows = session.execute(
        select(PurchaseOrderLine, PurchaseOrder)
        .join(PurchaseOrder, PurchaseOrder.id == PurchaseOrderLine.order_id)
        .where(PurchaseOrderLine.tenant_id == tenant_id, PurchaseOrder.tenant_id == tenant_id,
               PurchaseOrderLine.id.in_(chosen))
        .order_by(PurchaseOrder.id, PurchaseOrderLine.position)
    ).all()  # fmt: skip
    if len(rows) != len(chosen):
        raise LookupError("a line of another tenant, or none")
    for line, order in rows:
        if line.state in FINAL_LINE_STATES:
            raise ServiceError(f"Order {order.number} line {line.position} is {line.state.label}: nothing to ask.")
    now = now or utcnow()
    # One statement claims the lines not asked about within the last day: of two buyers asking at once (or a
    # double submit), one asks about each line. It changes nothing the supplier promised, so the orders'
    # versions stay and the suppliers' open answer forms stay valid.
    claimed = set(
        session.execute(
            update(PurchaseOrderLine)
            .where(
                PurchaseOrderLine.tenant_id == tenant_id,
                PurchaseOrderLine.id.in_(chosen),
                PurchaseOrderLine.update_asked_at.is_(None)
                | (PurchaseOrderLine.update_asked_at <= now - UPDATE_REQUEST_INTERVAL),
            )
            .values(update_asked_at=now)
            .returning(PurchaseOrderLine.id)
            .execution_options(synchronize_session=False)
        ).scalars()
    )
    if not claimed:
        # Read again: another buyer may have asked since the lines were read.
        last = session.scalar(
            select(func.max(PurchaseOrderLine.update_asked_at)).where(
                PurchaseOrderLine.tenant_id == tenant_id, PurchaseOrderLine.id.in_(chosen)
            )
        )
        raise ServiceError(
            f"{'This line was' if len(rows) == 1 else 'These lines were'} asked about on {last:%Y-%m-%d at %H:%M} "
            "UTC: their suppliers are asked for an update once a day at most."
        )
    by_order: dict[int, tuple[PurchaseOrder, list[PurchaseOrderLine]]] = {}
    for line, order in rows:
        if line.id in claimed:
            set_committed_value(line, "update_asked_at", now)  # as written: no second UPDATE at the flush
            by_order.setdefault(order.id, (order, []))[1].append(line)
    for order, lines in by_order.values():
        named = [_line_for_update(line) for line in lines]
        head = "Please send us an update on these lines: a new promised date where one has slipped, or a ship notice."
        tail = f"\n\n{note}" if note else ""
        # A long order's list is cut to what a message holds, the rest counted.
        while len(head) + sum(len(n) + 1 for n in named) + len(tail) + 40 > MESSAGE_MAX_LENGTH:
            named.pop()
        if len(named) < len(lines):
            named.append(f"- and {counted(len(lines) - len(named), 'more line', 'more lines')}")
        body = "\n".join([head, *named]) + tail
        post_message(session, order=order, author_id=author_id, author=author, from_supplier=False, body=body)
    suppliers = {order.supplier_id for order, _ in by_order.values()}
    return UpdatesAsked(len(by_order), len(claimed), len(suppliers), left_out=len(rows) - len(claimed))


REMINDER_INTERVAL = timedelta(days=1)


def remind_supplier(session: Session, *, order: PurchaseOrder, actor: Actor, now: datetime | None = None) -> None:
    """Remind the supplier's people that ``order`` waits for their answer (``order.reminded``): at most once a
    day per order, whoever asks, so that a supplier is not flooded. Changes nothing the supplier promised, so
    the order's version stays: a supplier's open answer form stays valid."""
    if order.state != OrderState.AWAITING_RESPONSE:
        raise ServiceError(f"Order {order.number} is no longer waiting for the supplier's answer.")
    now = now or utcnow()
    # One statement decides: of two buyers reminding at once, one reminds and the other is told it was done.
    claimed = session.execute(
        update(PurchaseOrder)
        .where(
            PurchaseOrder.tenant_id == order.tenant_id,
            PurchaseOrder.id == order.id,
            (PurchaseOrder.reminded_at.is_(None)) | (PurchaseOrder.reminded_at <= now - REMINDER_INTERVAL),
        )
        .values(reminded_at=now, reminder_count=PurchaseOrder.reminder_count + 1)
        .returning(PurchaseOrder.reminder_count)
        .execution_options(synchronize_session=False)
    ).first()
    if claimed is None:
        session.refresh(order, ["reminded_at"])
        last = order.reminded_at
        when = f" on {last:%Y-%m-%d at %H:%M} UTC" if last is not None else ""
        raise ServiceError(f"The supplier was reminded of order {order.number}{when}: one reminder a day at most.")
    # As written: no second UPDATE at the flush.
    set_committed_value(order, "reminded_at", now)
    set_committed_value(order, "reminder_count", claimed.reminder_count)
    record_reminder(
        session,
        tenant_id=order.tenant_id,
        order_id=order.id,
        number=order.number,
        actor=actor,
        count=claimed.reminder_count,
    )


def record_reminder(
    session: Session,
    *,
    tenant_id: int,
    order_id: int,
    number: str,
    actor: Actor,
    count: int,
    automatic: bool = False,
) -> None:
    """The audit entry and the ``order.reminded`` event (the supplier's people are told) of the ``count``-th
    reminder of an order, whose ``reminded_at`` was just written: a buyer's, or exception detection's own
    (``automatic``)."""
    flags: dict[str, Any] = {"reminder": count} | ({"automatic": True} if automatic else {})
    actor.audit(
        session,
        "order.reminded",
        tenant_id=tenant_id,
        object_type="order",
        object_id=order_id,
        after={"order": number} | flags,
    )
    emit(session, tenant_id, "order.reminded", {"order_id": order_id} | flags)
