"""Scorecard figures computed in SQL (the same numbers on PostgreSQL and SQLite).

``delivery_rows`` is the evidence: one row per delivery (an active promise of a line),
with the receipts set against it; ``figures`` aggregates the same rows per supplier
with GROUP BY. Rates are ``None`` when nothing was counted: "no data", never 0 % or 100 %.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from statistics import median
from typing import Any

from sqlalchemy import Integer, and_, case, func, insert, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from portal.orders.models import DeliverySchedule, LineState, PurchaseOrder, PurchaseOrderLine, Receipt
from portal.scorecards.definitions import DEFAULT_EARLY_DAYS, DEFAULT_LATE_DAYS, VERSION
from portal.suppliers.models import Supplier

ZERO = Decimal("0")


class days_between(FunctionElement[int]):
    """Whole days from the second date to the first (positive when the first is later)."""

    type = Integer()
    inherit_cache = True


@compiles(days_between, "postgresql")
def _days_pg(element: days_between, compiler: Any, **kw: Any) -> str:
    first, second = list(element.clauses)
    return f"({compiler.process(first, **kw)} - {compiler.process(second, **kw)})"


@compiles(days_between, "sqlite")
def _days_sqlite(element: days_between, compiler: Any, **kw: Any) -> str:
    first, second = list(element.clauses)
    return f"CAST(julianday({compiler.process(first, **kw)}) - julianday({compiler.process(second, **kw)}) AS INTEGER)"


@dataclass(frozen=True)
class Window:
    start: date
    end: date  # exclusive
    early_days: int = DEFAULT_EARLY_DAYS
    late_days: int = DEFAULT_LATE_DAYS
    today: date | None = None

    @property
    def label(self) -> str:
        last = self.end - timedelta(days=1)
        return f"{self.start:%d %b %Y} to {last:%d %b %Y}"


def month_window(day: date, **kwargs: Any) -> Window:
    start = day.replace(day=1)
    end = (start + timedelta(days=32)).replace(day=1)
    return Window(start, end, **kwargs)


def quarter_window(day: date, **kwargs: Any) -> Window:
    start = date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    end = date(start.year + (start.month + 3 > 12), (start.month + 2) % 12 + 1, 1)
    return Window(start, end, **kwargs)


def period_window(kind: str, day: date, **kwargs: Any) -> Window:
    return quarter_window(day, **kwargs) if kind == "quarter" else month_window(day, **kwargs)


def tenant_window(session: Session, tenant_id: int, kind: str, day: date, today: date | None = None) -> Window:
    settings = settings_for(session, tenant_id)
    return period_window(kind, day, early_days=settings.early_days, late_days=settings.late_days, today=today)


def previous_periods(session: Session, tenant_id: int, kind: str, today: date, count: int) -> list[Window]:
    """The ``count`` closed periods before the current one, oldest first."""
    windows = []
    current = tenant_window(session, tenant_id, kind, today, today)
    for _ in range(count):
        current = tenant_window(session, tenant_id, kind, current.start - timedelta(days=1), today)
        windows.append(current)
    return list(reversed(windows))


def _delivery_query(tenant_id: int, window: Window, supplier_id: int | None, company_id: int | None = None) -> Any:
    """One row per active delivery promised in the window, with its receipts set against it."""
    schedule, line = DeliverySchedule, PurchaseOrderLine
    before = func.coalesce(
        func.sum(schedule.quantity).over(
            partition_by=schedule.line_id,
            order_by=(schedule.promised_date, schedule.position),
            rows=(None, -1),
        ),
        0,
    )
    # Only lines with a delivery promised in the window (the index on (tenant, promised date)),
    # but every delivery of those lines: receipts are set against a line's deliveries in order.
    in_window = select(schedule.line_id).where(
        schedule.tenant_id == tenant_id,
        schedule.active.is_(True),
        schedule.promised_date >= window.start,
        schedule.promised_date < window.end,
    )
    if supplier_id is not None:
        # One supplier: start from its lines, not from every delivery of the period.
        in_window = in_window.join(line, and_(line.id == schedule.line_id, line.tenant_id == tenant_id)).where(
            line.supplier_id == supplier_id
        )
    deliveries = (
        select(
            schedule.id.label("delivery_id"),
            schedule.line_id,
            line.order_id,
            line.supplier_id,
            line.product_code,
            line.state,
            line.received_quantity,
            schedule.quantity.label("quantity"),
            schedule.promised_date,
            schedule.first_promised_date,
            before.label("before_qty"),
        )
        .join(line, and_(line.id == schedule.line_id, line.tenant_id == tenant_id))
        .where(schedule.tenant_id == tenant_id, schedule.active.is_(True), schedule.line_id.in_(in_window))
    )
    if supplier_id is not None:
        deliveries = deliveries.where(line.supplier_id == supplier_id)
    if company_id is not None:
        deliveries = deliveries.where(
            line.order_id.in_(
                select(PurchaseOrder.id).where(
                    PurchaseOrder.tenant_id == tenant_id, PurchaseOrder.company_id == company_id
                )
            )
        )
    d = deliveries.subquery("d")
    receipts = select(
        Receipt.line_id,
        Receipt.received_on,
        func.sum(Receipt.quantity)
        .over(partition_by=Receipt.line_id, order_by=(Receipt.received_on, Receipt.id))
        .label("running"),
    ).where(Receipt.tenant_id == tenant_id, Receipt.line_id.in_(in_window))
    if supplier_id is not None:
        receipts = receipts.join(line, and_(line.id == Receipt.line_id, line.tenant_id == tenant_id)).where(
            line.supplier_id == supplier_id
        )
    r = receipts.subquery("r")
    # Of a cancelled line only what arrived counts.
    effective = case(
        (
            d.c.state == LineState.CANCELLED.value,
            case(
                (d.c.received_quantity - d.c.before_qty <= 0, literal(0)),
                (d.c.received_quantity - d.c.before_qty >= d.c.quantity, d.c.quantity),
                else_=d.c.received_quantity - d.c.before_qty,
            ),
        ),
        else_=d.c.quantity,
    )
    # Receipts joined to their line's deliveries and folded per delivery (one pass, no correlated subquery).
    first_arrival = func.min(case((r.c.running > d.c.before_qty, r.c.received_on)))
    completed_on = func.min(case((r.c.running >= d.c.before_qty + effective, r.c.received_on)))
    total_received = func.coalesce(func.max(r.c.running), 0)
    rows = (
        select(
            d.c.delivery_id,
            d.c.line_id,
            d.c.order_id,
            d.c.supplier_id,
            d.c.product_code,
            d.c.promised_date,
            d.c.first_promised_date,
            d.c.before_qty,
            effective.label("quantity"),
            first_arrival.label("first_arrival"),
            completed_on.label("completed_on"),
            total_received.label("total_received"),
        )
        .select_from(d.outerjoin(r, r.c.line_id == d.c.line_id))
        .where(d.c.promised_date >= window.start, d.c.promised_date < window.end)
        .group_by(
            d.c.delivery_id,
            d.c.line_id,
            d.c.order_id,
            d.c.supplier_id,
            d.c.product_code,
            d.c.promised_date,
            d.c.first_promised_date,
            d.c.before_qty,
            d.c.state,
            d.c.received_quantity,
            d.c.quantity,
        )
    )
    return rows.subquery("rows")


def _judged(rows: Any, window: Window) -> dict[str, ColumnElement[Any]]:
    today = window.today or date.today()
    closed_before = today - timedelta(days=window.late_days)
    counted = and_(
        rows.c.quantity > 0,
        (rows.c.completed_on.is_not(None)) | (rows.c.promised_date < closed_before),
    )
    arrived_in_window = and_(
        rows.c.first_arrival.is_not(None),
        days_between(rows.c.first_arrival, rows.c.promised_date) >= -window.early_days,
        days_between(rows.c.first_arrival, rows.c.promised_date) <= window.late_days,
    )
    in_full = rows.c.completed_on.is_not(None)
    otif = and_(
        in_full,
        days_between(rows.c.first_arrival, rows.c.promised_date) >= -window.early_days,
        days_between(rows.c.completed_on, rows.c.promised_date) <= window.late_days,
    )
    received = rows.c.total_received - rows.c.before_qty
    delivered = case(
        (received <= 0, literal(0)),
        (received >= rows.c.quantity, rows.c.quantity),
        else_=received,
    )
    changed = rows.c.promised_date != rows.c.first_promised_date
    return {"counted": counted, "on_time": arrived_in_window, "in_full": in_full, "otif": otif,
            "delivered": delivered, "changed": changed}  # fmt: skip


@dataclass
class Figures:
    supplier_id: int
    deliveries: int = 0
    on_time: float | None = None
    in_full: float | None = None
    otif: float | None = None
    fill_rate: float | None = None
    orders: int = 0
    ack_rate: float | None = None
    ack_hours: float | None = None
    promise_kept: float | None = None
    slip_days: float | None = None
    lead_error_days: float | None = None
    documents: float | None = None
    score: float | None = None
    grade: str | None = None
    version: int = VERSION

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "supplier_id"}


def _rate(part: Any, whole: Any) -> float | None:
    return None if not whole else float(Decimal(str(part)) / Decimal(str(whole)) * 100)


def figures(
    session: Session,
    *,
    tenant_id: int,
    window: Window,
    supplier_id: int | None = None,
    company_id: int | None = None,
) -> dict[int, Figures]:
    """Every supplier's delivery and acknowledgement figures for the window (GROUP BY, one query each);
    ``company_id`` keeps the orders of one of the tenant's companies."""
    rows = _delivery_query(tenant_id, window, supplier_id, company_id)
    judged = _judged(rows, window)
    counted = judged["counted"]

    def count_if(condition: ColumnElement[Any]) -> Any:
        return func.sum(case((and_(counted, condition), 1), else_=0))

    stmt = select(
        rows.c.supplier_id,
        func.sum(case((counted, 1), else_=0)).label("deliveries"),
        count_if(judged["on_time"]).label("on_time"),
        count_if(judged["in_full"]).label("in_full"),
        count_if(judged["otif"]).label("otif"),
        func.sum(case((counted, judged["delivered"]), else_=0)).label("delivered"),
        func.sum(case((counted, rows.c.quantity), else_=0)).label("committed"),
        count_if(judged["changed"]).label("changed"),
        func.avg(
            case((and_(counted, judged["changed"]), days_between(rows.c.promised_date, rows.c.first_promised_date)))
        ).label("slip"),
        func.avg(
            case(
                (
                    and_(counted, rows.c.completed_on.is_not(None)),
                    func.abs(days_between(rows.c.completed_on, rows.c.promised_date)),
                )
            )
        ).label("lead_error"),
    ).group_by(rows.c.supplier_id)
    result: dict[int, Figures] = {}
    for row in session.execute(stmt):
        result[row.supplier_id] = Figures(
            supplier_id=row.supplier_id,
            deliveries=int(row.deliveries or 0),
            on_time=_rate(row.on_time, row.deliveries),
            in_full=_rate(row.in_full, row.deliveries),
            otif=_rate(row.otif, row.deliveries),
            fill_rate=_rate(row.delivered or 0, row.committed),
            promise_kept=_rate((row.deliveries or 0) - (row.changed or 0), row.deliveries),
            slip_days=None if row.slip is None else round(float(row.slip), 1),
            lead_error_days=None if row.lead_error is None else round(float(row.lead_error), 1),
        )
    for supplier, ordered, answered in _acknowledgements(session, tenant_id, window, supplier_id, company_id):
        figure = result.setdefault(supplier, Figures(supplier_id=supplier))
        figure.orders = ordered
        figure.ack_rate = _rate(answered, ordered)
    if supplier_id is not None:
        figure = result.setdefault(supplier_id, Figures(supplier_id=supplier_id))
        figure.ack_hours = _median_response_hours(session, tenant_id, window, supplier_id)
    for supplier, share in document_compliance(session, tenant_id, window, supplier_id).items():
        result.setdefault(supplier, Figures(supplier_id=supplier)).documents = share
    settings = settings_for(session, tenant_id)
    for figure in result.values():
        figure.score, figure.grade = overall(figure, settings.weights, settings.grades)
    return result


def document_compliance(
    session: Session, tenant_id: int, window: Window, supplier_id: int | None = None
) -> dict[int, float | None]:
    """Share of the documents required of each supplier that were valid on the period's last day."""
    from portal.documents.models import Document, DocumentStatus, DocumentType, Requirement
    from portal.documents.services import applies_to, footprint

    last_day = window.end - timedelta(days=1)
    requirements = list(
        session.execute(
            select(Requirement)
            .join(DocumentType, DocumentType.id == Requirement.document_type_id)
            .where(Requirement.tenant_id == tenant_id)
        ).scalars()
    )
    if not requirements:
        return {}
    suppliers_query = select(Supplier).where(Supplier.tenant_id == tenant_id)
    if supplier_id is not None:
        suppliers_query = suppliers_query.where(Supplier.id == supplier_id)
    suppliers = list(session.execute(suppliers_query).scalars())
    valid = {
        (row[0], row[1])
        for row in session.execute(
            select(Document.supplier_id, Document.document_type_id).where(
                Document.tenant_id == tenant_id,
                Document.status.in_([DocumentStatus.APPROVED, DocumentStatus.EXPIRED, DocumentStatus.SUPERSEDED]),
                Document.created_at <= datetime.combine(last_day, datetime.max.time(), tzinfo=UTC),
                (Document.expiry_date.is_(None)) | (Document.expiry_date >= last_day),
            )
        )
    }
    prints = footprint(session, tenant_id=tenant_id, requirements=requirements)
    shares: dict[int, float | None] = {}
    for supplier in suppliers:
        required = [r for r in requirements if applies_to(r, supplier, prints)]
        held = sum(1 for r in required if (supplier.id, r.document_type_id) in valid)
        shares[supplier.id] = _rate(held, len(required))
    return shares


SCORED = ("otif", "fill_rate", "ack_rate", "promise_kept", "documents")
WEIGHT_KEYS = {"otif": "otif", "fill_rate": "fill_rate", "ack_rate": "ack_rate", "promise_kept": "reliability",
               "documents": "documents"}  # fmt: skip


def overall(figure: Figures, weights: dict[str, int], grades: list[list[Any]]) -> tuple[float | None, str | None]:
    """Weighted mean of the figures that have data (weights of the others are left out), and its grade."""
    parts = [
        (float(getattr(figure, name)), int(weights.get(WEIGHT_KEYS[name], 0)))
        for name in SCORED
        if getattr(figure, name) is not None and int(weights.get(WEIGHT_KEYS[name], 0)) > 0
    ]
    total = sum(w for _, w in parts)
    if not total:
        return None, None
    score = round(sum(v * w for v, w in parts) / total, 1)
    for floor, grade in sorted(grades, key=lambda g: -float(g[0])):
        if score >= float(floor):
            return score, str(grade)
    return score, None


def settings_for(session: Session, tenant_id: int) -> Any:
    from portal.scorecards.models import DEFAULT_GRADES, DEFAULT_WEIGHTS, ScorecardSettings

    found = session.execute(
        select(ScorecardSettings).where(ScorecardSettings.tenant_id == tenant_id)
    ).scalar_one_or_none()
    if found is not None:
        return found
    return ScorecardSettings(
        tenant_id=tenant_id, early_days=DEFAULT_EARLY_DAYS, late_days=DEFAULT_LATE_DAYS,
        weights=dict(DEFAULT_WEIGHTS), grades=[list(g) for g in DEFAULT_GRADES],
    )  # fmt: skip


def _acknowledgements(
    session: Session, tenant_id: int, window: Window, supplier_id: int | None, company_id: int | None = None
) -> Any:
    from portal.tenancy.models import Tenant

    days = session.execute(select(Tenant.unconfirmed_after_days).where(Tenant.id == tenant_id)).scalar_one()
    order = PurchaseOrder
    in_time = and_(
        order.responded_at.is_not(None),
        days_between(func.date(order.responded_at), order.order_date) <= days,
    )
    stmt = (
        select(order.supplier_id, func.count(order.id), func.sum(case((in_time, 1), else_=0)))
        .where(order.tenant_id == tenant_id, order.order_date >= window.start, order.order_date < window.end)
        .group_by(order.supplier_id)
    )
    if supplier_id is not None:
        stmt = stmt.where(order.supplier_id == supplier_id)
    if company_id is not None:
        stmt = stmt.where(order.company_id == company_id)
    return [(s, int(n), int(a or 0)) for s, n, a in session.execute(stmt)]


def _median_response_hours(session: Session, tenant_id: int, window: Window, supplier_id: int) -> float | None:
    # One supplier's orders of one period: a few hundred rows at most; the median of their durations.
    pairs = session.execute(
        select(PurchaseOrder.created_at, PurchaseOrder.responded_at).where(
            PurchaseOrder.tenant_id == tenant_id,
            PurchaseOrder.supplier_id == supplier_id,
            PurchaseOrder.order_date >= window.start,
            PurchaseOrder.order_date < window.end,
            PurchaseOrder.responded_at.is_not(None),
        )
    ).all()
    hours = [
        (answered - created).total_seconds() / 3600
        for created, answered in pairs
        if answered is not None and answered >= created
    ]
    return round(median(hours), 1) if hours else None


@dataclass(frozen=True)
class Evidence:
    delivery_id: int
    line_id: int
    order_id: int
    order_number: str
    product_code: str
    promised_date: date
    first_promised_date: date
    quantity: Decimal
    first_arrival: date | None
    completed_on: date | None
    counted: bool
    on_time: bool
    in_full: bool
    otif: bool
    days_late: int | None


def evidence(session: Session, *, tenant_id: int, window: Window, supplier_id: int) -> list[Evidence]:
    """The deliveries behind one supplier's figures, each with how it was judged."""
    rows = _delivery_query(tenant_id, window, supplier_id)
    judged = _judged(rows, window)
    lateness = days_between(func.coalesce(rows.c.completed_on, rows.c.first_arrival), rows.c.promised_date)
    stmt = (
        select(
            rows,
            PurchaseOrder.number,
            judged["counted"].label("is_counted"),
            judged["on_time"].label("is_on_time"),
            judged["in_full"].label("is_in_full"),
            judged["otif"].label("is_otif"),
            lateness.label("days_late"),
        )
        .join(PurchaseOrder, and_(PurchaseOrder.id == rows.c.order_id, PurchaseOrder.tenant_id == tenant_id))
        .order_by(rows.c.promised_date, rows.c.delivery_id)
    )
    return [
        Evidence(
            delivery_id=row.delivery_id,
            line_id=row.line_id,
            order_id=row.order_id,
            order_number=row.number,
            product_code=row.product_code,
            promised_date=_as_date(row.promised_date),
            first_promised_date=_as_date(row.first_promised_date),
            quantity=Decimal(str(row.quantity)),
            first_arrival=_as_date(row.first_arrival) if row.first_arrival else None,
            completed_on=_as_date(row.completed_on) if row.completed_on else None,
            counted=bool(row.is_counted),
            on_time=bool(row.is_on_time) and bool(row.is_counted),
            in_full=bool(row.is_in_full) and bool(row.is_counted),
            otif=bool(row.is_otif) and bool(row.is_counted),
            days_late=int(row.days_late) if row.days_late is not None else None,
        )
        for row in session.execute(stmt)
    ]


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def ranking(
    session: Session,
    *,
    tenant_id: int,
    window: Window,
    sort: str = "otif",
    kind: str = "month",
    today: date | None = None,
    company_id: int | None = None,
) -> list[tuple[Supplier, Figures]]:
    if company_id is not None:  # snapshots are per supplier overall: one company's figures are computed
        by_supplier = figures(session, tenant_id=tenant_id, window=window, company_id=company_id)
    else:
        by_supplier = figures_for(session, tenant_id=tenant_id, kind=kind, window=window, today=today or date.today())
    suppliers = session.execute(select(Supplier).where(Supplier.tenant_id == tenant_id)).scalars().all()
    rows = [(s, by_supplier.get(s.id, Figures(supplier_id=s.id))) for s in suppliers]

    def key(item: tuple[Supplier, Figures]) -> tuple[int, float, str]:
        value = getattr(item[1], sort, None)
        # Suppliers with no data go last, whatever the order.
        return (value is None, -(value or 0.0), item[0].name)

    return sorted(rows, key=key)


# --- snapshots of closed periods ---------------------------------------------------------


def recompute(session: Session, *, tenant_id: int, months: int = 24, today: date | None = None) -> int:
    """Store every supplier's figures for the closed months and quarters of the last ``months`` months.

    A rerun replaces this definition version's rows with identical ones; rows of other
    versions are left as they were.
    """
    from sqlalchemy import delete

    from portal.scorecards.models import ScorecardSnapshot

    today = today or date.today()
    stored = 0
    for kind, count in (("month", months), ("quarter", max(1, months // 3))):
        for window in previous_periods(session, tenant_id, kind, today, count):
            session.execute(
                delete(ScorecardSnapshot).where(
                    ScorecardSnapshot.tenant_id == tenant_id,
                    ScorecardSnapshot.period == kind,
                    ScorecardSnapshot.period_start == window.start,
                    ScorecardSnapshot.version == VERSION,
                )
            )
            rows = [
                {
                    "tenant_id": tenant_id,
                    "supplier_id": figure.supplier_id,
                    "period": kind,
                    "period_start": window.start,
                    "version": VERSION,
                    "figures": figure.as_dict(),
                    "computed_at": datetime.now(UTC),
                }
                for figure in figures(session, tenant_id=tenant_id, window=window).values()
            ]
            if rows:
                session.execute(insert(ScorecardSnapshot), rows)
            stored += len(rows)
    return stored


def _from_snapshot(supplier_id: int, data: dict[str, Any]) -> Figures:
    known = {k: v for k, v in data.items() if k in Figures.__dataclass_fields__}
    return Figures(supplier_id=supplier_id, **known)


def stored_figures(
    session: Session, *, tenant_id: int, kind: str, window: Window, supplier_id: int | None = None
) -> dict[int, Figures] | None:
    """The snapshot of a closed period (None when it was never computed)."""
    from portal.scorecards.models import ScorecardSnapshot

    query = select(ScorecardSnapshot.supplier_id, ScorecardSnapshot.figures).where(
        ScorecardSnapshot.tenant_id == tenant_id,
        ScorecardSnapshot.period == kind,
        ScorecardSnapshot.period_start == window.start,
        ScorecardSnapshot.version == VERSION,
    )
    if supplier_id is not None:
        exists = session.execute(query.with_only_columns(ScorecardSnapshot.id).limit(1)).first()
        if exists is None:
            return None
        query = query.where(ScorecardSnapshot.supplier_id == supplier_id)
    rows = session.execute(query).all()
    if not rows and supplier_id is None:
        return None
    return {supplier_id: _from_snapshot(supplier_id, data) for supplier_id, data in rows}


def figures_for(
    session: Session, *, tenant_id: int, kind: str, window: Window, today: date, supplier_id: int | None = None
) -> dict[int, Figures]:
    """Closed periods from their snapshot when there is one; the current period live (one supplier, or all)."""
    if window.end <= today:
        stored = stored_figures(session, tenant_id=tenant_id, kind=kind, window=window, supplier_id=supplier_id)
        if stored is not None:
            return stored
    return figures(session, tenant_id=tenant_id, window=window, supplier_id=supplier_id)


def trend(
    session: Session, *, tenant_id: int, supplier_id: int, kind: str, today: date, count: int = 12
) -> list[tuple[Window, Figures | None]]:
    """The last ``count`` periods, oldest first, the current one last: snapshots, then live."""
    from portal.scorecards.models import ScorecardSnapshot

    windows = previous_periods(session, tenant_id, kind, today, count - 1)
    stored = {
        start: data
        for start, data in session.execute(
            select(ScorecardSnapshot.period_start, ScorecardSnapshot.figures).where(
                ScorecardSnapshot.tenant_id == tenant_id,
                ScorecardSnapshot.supplier_id == supplier_id,
                ScorecardSnapshot.period == kind,
                ScorecardSnapshot.version == VERSION,
                ScorecardSnapshot.period_start >= (windows[0].start if windows else date.min),
            )
        )
    }
    points: list[tuple[Window, Figures | None]] = []
    for window in windows:
        data = stored.get(window.start)
        if data is None:  # never snapshotted: computed now
            data = figures(session, tenant_id=tenant_id, window=window, supplier_id=supplier_id).get(supplier_id)
            points.append((window, data))
        else:
            points.append((window, _from_snapshot(supplier_id, data)))
    current = tenant_window(session, tenant_id, kind, today, today)
    points.append(
        (current, figures(session, tenant_id=tenant_id, window=current, supplier_id=supplier_id).get(supplier_id))
    )
    return points


def save_settings(session: Session, *, tenant_id: int, values: dict[str, Any], actor: Any) -> None:
    from portal.scorecards.models import ScorecardSettings

    current = session.execute(
        select(ScorecardSettings).where(ScorecardSettings.tenant_id == tenant_id)
    ).scalar_one_or_none()
    before = None
    if current is None:
        current = ScorecardSettings(tenant_id=tenant_id)
        session.add(current)
    else:
        before = {"early_days": current.early_days, "late_days": current.late_days, "weights": current.weights,
                  "grades": current.grades}  # fmt: skip
    current.early_days = int(values["early_days"])
    current.late_days = int(values["late_days"])
    current.weights = dict(values["weights"])
    current.grades = [list(g) for g in values["grades"]]
    current.updated_at = datetime.now(UTC)
    session.flush()
    actor.audit(
        session, "scorecard.settings_changed", tenant_id=tenant_id, object_type="scorecard_settings",
        object_id=current.id, before=before, after=values,
    )  # fmt: skip
