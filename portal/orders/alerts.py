"""Exception detection: open and resolve one alert per condition per line.

Conditions (each a set-based query over open lines, no Python loop over rows):

* ``late``: an active promise date has passed and the line is not fully received;
  keyed on the earliest passed promise, so a new promise that passes again is a new alert.
* ``at_risk``: a promise is later than the requested date (keyed on the latest promise).
* ``no_ship_notice``: confirmed, nothing shipped, and the earliest promise is at most
  ``tenant.ship_notice_lead_days`` away.
* ``repeated_slips``: two or more promise changes with a reason after the first confirmation.
* ``partial``: received less than committed after a receipt (keyed on the quantity received).
* ``unconfirmed``: no answer ``tenant.unconfirmed_after_days`` after the order date. The supplier is also
  reminded when an order becomes unconfirmed (not for orders already long overdue when detection first sees
  them: a first run on an existing tenant would otherwise remind of every old unanswered order at once), and
  again every ``tenant.reminder_repeat_days`` if the tenant asks for it, up to ``tenant.reminder_limit`` in all.

An alert opens when its condition appears or its key changes, and resolves itself
when the condition is gone. Each opening emits ``alert.opened`` (buyers are notified).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import Session

from portal.db import planned_per_run, utcnow
from portal.orders.models import (
    EXCEPTION_LINE_STATES,
    AlertKind,
    CommitmentEntry,
    LineAlert,
    LineState,
    OrderState,
    PurchaseOrder,
    PurchaseOrderLine,
)
from portal.outbox import emit
from portal.tenancy.models import Tenant

OPEN_STATES = (
    LineState.CONFIRMED,
    LineState.CHANGES_PENDING,
    LineState.PARTIALLY_SHIPPED,
    LineState.SHIPPED,
    LineState.PARTIALLY_RECEIVED,
)


@dataclass
class DetectionRun:
    opened: int = 0
    resolved: int = 0
    open_total: int = 0
    reminded: int = 0  # orders whose supplier was reminded on the tenant's behalf (first or repeated reminders)


def current_conditions(session: Session, *, tenant_id: int, today: date) -> dict[tuple[int, str], dict[str, Any]]:
    tenant = session.execute(select(Tenant).where(Tenant.id == tenant_id)).scalar_one()
    line = PurchaseOrderLine
    found: dict[tuple[int, str], dict[str, Any]] = {}
    at_risk_value = (line.quantity - line.received_quantity) * line.unit_price

    def collect(kind: AlertKind, stmt: Any, detail: str) -> None:
        # A scan of the tenant's open lines: planned for this tenant's size, not kept from another's.
        for row in session.execute(planned_per_run(stmt)):
            found[(row.line_id, kind.value)] = {
                "order_id": row.order_id,
                "supplier_id": row.supplier_id,
                "key": str(row.key),
                "value": row.value or Decimal("0"),
                "detail": detail.format(key=row.key),
            }

    base = (line.id.label("line_id"), line.order_id.label("order_id"), line.supplier_id.label("supplier_id"))
    # Open lines only (their partial index; the states below are among them, PostgreSQL needs it said).
    in_index = and_(line.tenant_id == tenant_id, line.state.in_(EXCEPTION_LINE_STATES))
    open_line = and_(in_index, line.state.in_(OPEN_STATES), line.received_quantity < line.quantity)
    # A line's earliest and latest active promises are kept on it (``promised_from``, ``promised_to``): the
    # three conditions on promise dates read the lines alone, without joining their deliveries.
    collect(
        AlertKind.LATE,
        # Late against the earliest delivery not yet complete: one that arrived in full is not late.
        select(*base, line.open_from.label("key"), at_risk_value.label("value")).where(
            open_line, line.open_from < today
        ),
        "promised for {key}, not fully received",
    )
    collect(
        AlertKind.AT_RISK,
        select(*base, line.promised_to.label("key"), at_risk_value.label("value")).where(
            open_line, line.promised_to > line.requested_date
        ),
        "promised for {key}, later than requested",
    )
    horizon = today + timedelta(days=tenant.ship_notice_lead_days)
    collect(
        AlertKind.NO_SHIP_NOTICE,
        select(*base, line.promised_from.label("key"), at_risk_value.label("value")).where(
            in_index,
            line.state == LineState.CONFIRMED,
            line.shipped_quantity == 0,
            line.received_quantity == 0,
            line.promised_from <= horizon,
            line.promised_from >= today,
        ),
        "no ship notice for the delivery promised on {key}",
    )
    ledger = CommitmentEntry
    collect(
        AlertKind.REPEATED_SLIPS,
        select(*base, func.count(ledger.id).label("key"), at_risk_value.label("value"))
        .join(ledger, and_(ledger.line_id == line.id, ledger.tenant_id == tenant_id))
        .where(open_line, ledger.kind.in_(("repromised", "approved_change")), ledger.reason_code != "")
        .group_by(line.id, line.order_id, line.supplier_id, line.quantity, line.received_quantity, line.unit_price)
        .having(func.count(ledger.id) >= 2),
        "the promise changed {key} times",
    )
    collect(
        AlertKind.PARTIAL,
        # Some received, not all: partially received, or waiting for the buyer's decision on a change meanwhile.
        select(*base, line.received_quantity.label("key"), at_risk_value.label("value")).where(
            open_line, line.received_quantity > 0
        ),
        "{key} received, less than committed",
    )
    # A line added to the order later, or revised by the buyer, was asked for on its own day.
    asked = func.coalesce(line.asked_on, PurchaseOrder.order_date)
    collect(
        AlertKind.UNCONFIRMED,
        select(*base, asked.label("key"), (line.quantity * line.unit_price).label("value"))
        .join(PurchaseOrder, PurchaseOrder.id == line.order_id)
        .where(
            line.tenant_id == tenant_id,
            line.state == LineState.AWAITING_RESPONSE,
            asked <= today - timedelta(days=tenant.unconfirmed_after_days),
        ),
        "asked on {key}, no answer yet",
    )
    return found


def detect(session: Session, *, tenant_id: int, today: date | None = None) -> DetectionRun:
    today = today or date.today()
    run = DetectionRun()
    current = current_conditions(session, tenant_id=tenant_id, today=today)
    open_alerts = {
        (alert.line_id, alert.kind.value): alert
        for alert in session.execute(
            select(LineAlert).where(LineAlert.tenant_id == tenant_id, LineAlert.resolved_at.is_(None))
        ).scalars()
    }
    now = utcnow()
    for key, alert in open_alerts.items():
        condition = current.get(key)
        if condition is None or condition["key"] != alert.key:
            alert.resolved_at = now
            run.resolved += 1
        elif alert.value_at_risk != condition["value"]:
            alert.value_at_risk = condition["value"]
    session.flush()
    fresh: list[LineAlert] = []
    for (line_id, kind), condition in current.items():
        existing = open_alerts.get((line_id, kind))
        if existing is not None and existing.resolved_at is None:
            continue
        alert = LineAlert(
            tenant_id=tenant_id,
            line_id=line_id,
            order_id=condition["order_id"],
            supplier_id=condition["supplier_id"],
            kind=AlertKind(kind),
            key=condition["key"][:64],
            detail=condition["detail"][:500],
            value_at_risk=condition["value"],
        )
        session.add(alert)
        fresh.append(alert)
    session.flush()
    run.opened = len(fresh)
    run.open_total = len(current)
    _announce(session, tenant_id, fresh)
    run.reminded = _remind_unanswered(session, tenant_id, fresh, today)
    return run


# Days past the tenant's "unconfirmed after" within which a newly unconfirmed order still gets its automatic
# reminder: detection runs every 15 minutes, so this only covers a day or so without it.
AUTOMATIC_REMINDER_GRACE_DAYS = 1


def _remind_unanswered(session: Session, tenant_id: int, fresh: list[LineAlert], today: date) -> int:
    """Remind suppliers of unanswered orders on the tenant's behalf (``order.reminded``, audited as the
    system's); returns how many orders. Unless the tenant turned it off (``remind_unconfirmed``):

    * each order that has just become unconfirmed, unless someone reminded it already;
    * if the tenant repeats reminders (``reminder_repeat_days``), each unconfirmed order whose last reminder, a
      buyer's or this one, is that many days old, until it has had ``reminder_limit`` in all. An order
      never reminded is not: the first reminder's window keeps a first run from reminding of every old order.

    Each is one ``UPDATE`` that decides, as a buyer's reminder does."""
    from portal.auth.services import SYSTEM
    from portal.orders.services import record_reminder

    days, reminds, repeat_days, limit = session.execute(
        select(
            Tenant.unconfirmed_after_days, Tenant.remind_unconfirmed, Tenant.reminder_repeat_days, Tenant.reminder_limit
        ).where(Tenant.id == tenant_id)
    ).one()
    if not reminds:  # the tenant's administrators turned it off
        return 0
    now = utcnow()
    awaiting = (PurchaseOrder.tenant_id == tenant_id, PurchaseOrder.state == OrderState.AWAITING_RESPONSE)
    reminded: list[tuple[int, str, int]] = []
    order_ids = sorted({alert.order_id for alert in fresh if alert.kind == AlertKind.UNCONFIRMED})
    placed_since = today - timedelta(days=days + AUTOMATIC_REMINDER_GRACE_DAYS)
    # Placed within the window, or asked again within it (a line added later, or revised by the buyer).
    asked_since = or_(
        PurchaseOrder.order_date >= placed_since,
        exists().where(
            PurchaseOrderLine.tenant_id == tenant_id,
            PurchaseOrderLine.order_id == PurchaseOrder.id,
            PurchaseOrderLine.state == LineState.AWAITING_RESPONSE,
            PurchaseOrderLine.asked_on >= placed_since,
        ),
    )
    for start in range(0, len(order_ids), 5000):
        reminded += _claim_reminders(
            session,
            now,
            *awaiting,
            PurchaseOrder.id.in_(order_ids[start : start + 5000]),
            PurchaseOrder.reminded_at.is_(None),
            asked_since,
        )
    if repeat_days:
        # Those just reminded above are not due again: their reminder is "now".
        reminded += _claim_reminders(
            session,
            now,
            *awaiting,
            PurchaseOrder.order_date <= today - timedelta(days=days),
            PurchaseOrder.reminder_count.between(1, limit - 1),
            PurchaseOrder.reminded_at <= now - timedelta(days=repeat_days),
        )
    for order_id, number, count in reminded:
        record_reminder(session, tenant_id=tenant_id, order_id=order_id, number=number, actor=SYSTEM, count=count,
                        automatic=True)  # fmt: skip
    return len(reminded)


def _claim_reminders(session: Session, now: datetime, *conditions: Any) -> list[tuple[int, str, int]]:
    """Mark the orders matching ``conditions`` reminded ``now``: their ids, numbers and reminder counts."""
    rows = session.execute(
        update(PurchaseOrder)
        .where(*conditions)
        .values(reminded_at=now, reminder_count=PurchaseOrder.reminder_count + 1)
        .returning(PurchaseOrder.id, PurchaseOrder.number, PurchaseOrder.reminder_count)
        .execution_options(synchronize_session=False)
    ).all()
    return [(order_id, number, count) for order_id, number, count in rows]


def _announce(session: Session, tenant_id: int, fresh: list[LineAlert]) -> None:
    """One event per supplier and run (not per line): buyers hear "Acme: 3 late, 1 partial"."""
    if not fresh:
        return
    by_supplier: dict[int, list[LineAlert]] = {}
    for alert in fresh:
        by_supplier.setdefault(alert.supplier_id, []).append(alert)
    order_ids = sorted({alert.order_id for alert in fresh})
    numbers: dict[int, str] = {}
    for start in range(0, len(order_ids), 5000):
        chunk = order_ids[start : start + 5000]
        numbers.update(
            session.execute(
                select(PurchaseOrder.id, PurchaseOrder.number).where(
                    PurchaseOrder.tenant_id == tenant_id, PurchaseOrder.id.in_(chunk)
                )
            ).all()
        )
    for supplier_id, alerts in by_supplier.items():
        counts: dict[str, int] = {}
        for alert in alerts:
            counts[alert.kind.value] = counts.get(alert.kind.value, 0) + 1
        orders = sorted({numbers.get(alert.order_id, "") for alert in alerts})
        emit(
            session,
            tenant_id,
            "alerts.opened",
            {"supplier_id": supplier_id, "counts": counts, "orders": orders[:50], "alert_count": len(alerts)},
        )


def open_alerts_for_order(session: Session, tenant_id: int, order_id: int) -> list[LineAlert]:
    return list(
        session.execute(
            select(LineAlert)
            .where(LineAlert.tenant_id == tenant_id, LineAlert.order_id == order_id, LineAlert.resolved_at.is_(None))
            .order_by(LineAlert.line_id, LineAlert.kind)
        ).scalars()
    )
