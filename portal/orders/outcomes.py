"""What became of each delivery, kept current as receipts arrive.

A line's receipts are set against its active deliveries in promised-date order: the first delivery is
filled first, whatever day each receipt came. For each delivery this gives the quantity it is judged on
(of a cancelled line, only what arrived), how much of it arrived, the day its first part arrived and the
day it was complete. The scorecards judge deliveries on these four values; folding every receipt of
every line again for each recompute cost more than the rest of the recompute together.

They are stored on the delivery (``DeliverySchedule``) and folded again, in one statement per flush, for
every line whose deliveries, receipts or cancellation changed in that flush: a session's ``after_flush``
hook collects the lines, whoever wrote them (services, imports, the ERP pull, tests), and
``after_flush_postexec`` runs the fold. A line with nothing received and not cancelled needs no fold when
its deliveries are answered, moved or replaced: a new delivery starts as "nothing arrived" (the columns'
defaults), which is all such a line's deliveries can say. Deliveries written as bulk statements (a
commitment's new deliveries, ``services.commit_lines``) are not seen by the hook: the writer folds the lines
that have goods received with :func:`refresh` itself.

The fold writes with SQL: a ``DeliverySchedule`` loaded before it keeps the outcome it was loaded with. Read
outcomes with a query, as the scorecards do (expiring the loaded deliveries of the folded lines would mean
walking the whole identity map at every receipt: quadratic over an ERP pull of thousands).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import Table, and_, case, event, func, inspect, literal, select, update
from sqlalchemy.orm import Session

from portal.orders.models import DeliverySchedule, LineState, PurchaseOrderLine, Receipt

OUTCOME_COLUMNS = ("counted_quantity", "delivered_quantity", "first_arrival_on", "completed_on")
# What a delivery's outcome depends on of its own (besides its line's receipts, received quantity and state).
_SCHEDULE_INPUTS = ("active", "quantity", "promised_date", "position", "line_id")
_PENDING = "portal.delivery_outcomes_pending"


def _clamped(value: Any, high: Any) -> Any:
    return case((value <= 0, literal(0)), (value >= high, high), else_=value)


def outcomes_query(tenant_id: int, line_ids: Iterable[int] | None = None) -> Any:
    """Each active delivery's outcome (``delivery_id`` and ``OUTCOME_COLUMNS``), for the tenant's lines
    ``line_ids`` (all of them with None): one pass over the deliveries and receipts, no correlated subquery."""
    schedule, line = DeliverySchedule, PurchaseOrderLine
    ids = None if line_ids is None else sorted(set(line_ids))
    before = func.coalesce(
        func.sum(schedule.quantity).over(
            partition_by=schedule.line_id, order_by=(schedule.promised_date, schedule.position), rows=(None, -1)
        ),
        0,
    )
    deliveries = (
        select(
            schedule.id.label("delivery_id"),
            schedule.line_id,
            schedule.quantity,
            line.state,
            line.received_quantity,
            before.label("before_qty"),
        )
        .join(line, and_(line.id == schedule.line_id, line.tenant_id == tenant_id))
        .where(schedule.tenant_id == tenant_id, schedule.active.is_(True))
    )
    receipts = select(
        Receipt.line_id,
        Receipt.received_on,
        func.sum(Receipt.quantity).over(partition_by=Receipt.line_id, order_by=(Receipt.received_on, Receipt.id))
        .label("running"),
    ).where(Receipt.tenant_id == tenant_id)  # fmt: skip
    if ids is not None:
        deliveries = deliveries.where(schedule.line_id.in_(ids))
        receipts = receipts.where(Receipt.line_id.in_(ids))
    d, r = deliveries.subquery("d"), receipts.subquery("r")
    # Of a cancelled line only what arrived counts.
    counted = case(
        (d.c.state == LineState.CANCELLED.value, _clamped(d.c.received_quantity - d.c.before_qty, d.c.quantity)),
        else_=d.c.quantity,
    )
    received = func.coalesce(func.max(r.c.running), 0) - d.c.before_qty
    return (
        select(
            d.c.delivery_id,
            counted.label("counted_quantity"),
            _clamped(received, counted).label("delivered_quantity"),
            func.min(case((r.c.running > d.c.before_qty, r.c.received_on))).label("first_arrival_on"),
            func.min(case((r.c.running >= d.c.before_qty + counted, r.c.received_on))).label("completed_on"),
        )
        .select_from(d.outerjoin(r, r.c.line_id == d.c.line_id))
        .group_by(d.c.delivery_id, d.c.state, d.c.received_quantity, d.c.quantity, d.c.before_qty)
    )


def refresh(session: Session, *, tenant_id: int, line_ids: Iterable[int] | None = None) -> int:
    """Fold the receipts of the tenant's lines ``line_ids`` (every line with None) into their deliveries'
    outcomes, and each line's ``open_from`` (its earliest delivery not yet complete) from them; returns the
    number of deliveries written. Flushes nothing: the hook calls it mid-flush."""
    ids = None if line_ids is None else sorted(set(line_ids))
    folded = outcomes_query(tenant_id, ids).subquery("folded")
    table = cast(Table, DeliverySchedule.__table__)
    statement = (
        update(table)
        .where(table.c.id == folded.c.delivery_id, table.c.tenant_id == tenant_id)
        .values({name: folded.c[name] for name in OUTCOME_COLUMNS})
    )
    written = session.connection().execute(statement).rowcount
    # Grouped once, then joined (a subquery per line took minutes over a million lines).
    earliest = select(
        table.c.line_id,
        func.min(table.c.promised_date)
        .filter(table.c.delivered_quantity < table.c.counted_quantity)
        .label("open_from"),
    ).where(table.c.tenant_id == tenant_id, table.c.active.is_(True))
    if ids is not None:
        earliest = earliest.where(table.c.line_id.in_(ids))
    grouped = earliest.group_by(table.c.line_id).subquery("earliest")
    lines = cast(Table, PurchaseOrderLine.__table__)
    session.connection().execute(
        update(lines)
        .where(
            lines.c.id == grouped.c.line_id,
            lines.c.tenant_id == tenant_id,
            # Only the lines it moves: a row written again for nothing is a new row version all the same.
            lines.c.open_from.is_distinct_from(grouped.c.open_from),
        )
        .values(open_from=grouped.c.open_from)
    )
    return written


def _changed(obj: Any, names: tuple[str, ...]) -> bool:
    attrs = inspect(obj).attrs
    return any(attrs[name].history.has_changes() for name in names)


def _may_have_arrivals(session: Session, line_id: int) -> bool:
    """Whether the line's deliveries may have an outcome other than "nothing arrived": unless the line (as this
    session knows it) has nothing received and is not cancelled, its new, moved or replaced deliveries are
    folded again; a line the session has not loaded is folded to be safe."""
    line = session.identity_map.get(inspect(PurchaseOrderLine).identity_key_from_primary_key((line_id,)))
    if not isinstance(line, PurchaseOrderLine):
        return True
    known = inspect(line).dict  # read without loading: nothing is queried mid-flush
    if "received_quantity" not in known or "state" not in known:
        return True
    return bool(known["received_quantity"]) or known["state"] == LineState.CANCELLED


def _cancelled_changed(line: PurchaseOrderLine) -> bool:
    history = inspect(line).attrs.state.history
    return LineState.CANCELLED in (*history.added, *history.deleted)


@event.listens_for(Session, "after_flush")
def _collect_touched_lines(session: Session, _context: Any) -> None:
    touched: set[tuple[int, int]] = set()
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, Receipt):
            touched.add((obj.tenant_id, obj.line_id))
        elif isinstance(obj, DeliverySchedule):
            new = obj in session.new
            if not (new or obj in session.deleted or _changed(obj, _SCHEDULE_INPUTS)):
                continue
            # A quantity changed in place changes what the delivery is judged on, received or not.
            if _may_have_arrivals(session, obj.line_id) or (not new and _changed(obj, ("quantity",))):
                touched.add((obj.tenant_id, obj.line_id))
        elif (
            isinstance(obj, PurchaseOrderLine)
            and obj not in session.new
            and (_changed(obj, ("received_quantity",)) or _cancelled_changed(obj))
        ):
            touched.add((obj.tenant_id, obj.id))
    if touched:
        session.info.setdefault(_PENDING, set()).update(touched)


@event.listens_for(Session, "after_flush_postexec")
def _fold_touched_lines(session: Session, _context: Any) -> None:
    pending: set[tuple[int, int]] | None = session.info.pop(_PENDING, None)
    if not pending:
        return
    by_tenant: dict[int, list[int]] = {}
    for tenant_id, line_id in pending:
        by_tenant.setdefault(tenant_id, []).append(line_id)
    for tenant_id, line_ids in by_tenant.items():
        refresh(session, tenant_id=tenant_id, line_ids=line_ids)


@event.listens_for(Session, "after_rollback")
def _forget_touched_lines(session: Session) -> None:
    session.info.pop(_PENDING, None)
