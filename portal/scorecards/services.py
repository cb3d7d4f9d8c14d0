"""Scorecard figures computed in SQL (the same numbers on PostgreSQL and SQLite).

``delivery_rows`` is the evidence: one row per delivery (an active promise of a line),
with what arrived against it (kept on the delivery: ``portal.orders.outcomes``);
``figures`` aggregates the same rows per supplier with GROUP BY. Rates are ``None`` when
nothing was counted: "no data", never 0 % or 100 %.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    Float,
    Integer,
    String,
    and_,
    bindparam,
    case,
    cast,
    event,
    func,
    literal,
    null,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ClauseElement, ColumnElement, Executable, FunctionElement

from portal.db import CUSTOM_PLAN, planned_per_run
from portal.orders.models import DeliverySchedule, PurchaseOrder, PurchaseOrderLine
from portal.scorecards.definitions import DEFAULT_EARLY_DAYS, DEFAULT_LATE_DAYS, VERSION
from portal.suppliers.models import Supplier

ZERO = Decimal("0")


class _PerDialect(FunctionElement[Any]):
    """An expression written per dialect: ``SQL[dialect]`` is a template of its arguments, ``{a}`` (the first)
    and ``{b}`` (the second)."""

    inherit_cache = True
    SQL: dict[str, str] = {}


@compiles(_PerDialect)
def _per_dialect(element: _PerDialect, compiler: Any, **kw: Any) -> str:
    arguments = dict(zip("ab", (compiler.process(clause, **kw) for clause in element.clauses), strict=False))
    return element.SQL[compiler.dialect.name].format(**arguments)


class days_between(_PerDialect):
    """Whole days from the second date to the first (positive when the first is later)."""

    type = Integer()
    inherit_cache = True
    SQL = {"postgresql": "({a} - {b})", "sqlite": "CAST(julianday({a}) - julianday({b}) AS INTEGER)"}


class hours_between(_PerDialect):
    """Hours from the second timestamp to the first."""

    type = Float()
    inherit_cache = True
    SQL = {
        "postgresql": "(EXTRACT(EPOCH FROM ({a} - {b})) / 3600.0)",
        "sqlite": "((julianday({a}) - julianday({b})) * 24.0)",
    }


class months_since_year_zero(_PerDialect):
    """A date's month, numbered from January of year 0 (as ``key_of_period``). PostgreSQL's ``date_part`` gives a
    float, its ``EXTRACT`` a numeric, which made the recompute's grouped pass 0.1-0.2 s slower (of 4.3 s)."""

    type = Integer()
    inherit_cache = True
    SQL = {
        "postgresql": "(CAST(date_part('year', {a}) AS INTEGER) * 12 + CAST(date_part('month', {a}) AS INTEGER) - 1)",
        "sqlite": "(CAST(strftime('%Y', {a}) AS INTEGER) * 12 + CAST(strftime('%m', {a}) AS INTEGER) - 1)",
    }


def period_key(day: Any, kind: str) -> ColumnElement[int]:
    """A period's number from a date column: months since year 0, or quarters (months // 3)."""
    months = months_since_year_zero(day)
    return months if kind == "month" else months // 3


def key_of_period(start: date, kind: str) -> int:
    months = start.year * 12 + start.month - 1
    return months if kind == "month" else months // 3


def median_by(values: Any, groups: tuple[str, ...], dialect: str) -> Any:
    """Median of the ``value`` column of ``values`` per group: the middle value, or the mean of the middle two,
    of each group's ordered values. PostgreSQL's ``percentile_cont(0.5)`` is that median in one sort-based
    aggregate (1.4 s instead of 2.1 s over 700,000 values); SQLite has no percentile_cont, so there it is
    found with row_number and count windows. Both give the same medians (tested on both)."""
    v = values.subquery("v")
    parts = [v.c[name] for name in groups]
    if dialect == "postgresql":
        return select(*parts, func.percentile_cont(0.5).within_group(v.c.value).label("median")).group_by(*parts)
    ranked = select(
        *parts,
        v.c.value,
        func.row_number().over(partition_by=parts, order_by=v.c.value).label("rn"),
        func.count().over(partition_by=parts).label("n"),
    ).subquery("ranked")
    keys = [ranked.c[name] for name in groups]
    middle = ranked.c.rn.in_([(ranked.c.n + 1) // 2, (ranked.c.n + 2) // 2])
    return select(*keys, func.avg(ranked.c.value).label("median")).where(middle).group_by(*keys)


@dataclass(frozen=True)
class Window:
    start: date
    end: date  # exclusive
    early_days: int = DEFAULT_EARLY_DAYS
    late_days: int = DEFAULT_LATE_DAYS
    today: date | None = None

    @property
    def closed_before(self) -> date:
        """Deliveries promised before this day have had their whole on-time window."""
        return (self.today or date.today()) - timedelta(days=self.late_days)

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


def _delivery_query(
    tenant_id: Any,
    window: Window | BoundWindow,
    supplier_id: Any,
    company_id: int | None = None,
    period_kind: str | None = None,
) -> Any:
    """One row per active delivery promised in the window, with its outcome (what arrived, kept on the
    delivery as receipts come: ``portal.orders.outcomes``) and, with ``period_kind``, the number of the
    month or quarter of its promised date."""
    schedule, line = DeliverySchedule, PurchaseOrderLine
    columns = [
        schedule.id.label("delivery_id"),
        schedule.line_id,
        schedule.supplier_id,
        schedule.promised_date,
        schedule.first_promised_date,
        schedule.counted_quantity.label("quantity"),
        schedule.first_arrival_on.label("first_arrival"),
        schedule.completed_on,
        schedule.delivered_quantity,
    ]
    if period_kind is None:
        # The evidence lists name each delivery's order and product; the recompute's sums need neither.
        columns[2:2] = [line.order_id, line.product_code]
    else:
        columns.append(period_key(schedule.promised_date, period_kind).label("period_key"))
    rows = select(*columns).where(
        schedule.tenant_id == tenant_id,
        schedule.active.is_(True),
        schedule.promised_date >= window.start,
        schedule.promised_date < window.end,
    )
    if period_kind is None:
        rows = rows.join(line, and_(line.id == schedule.line_id, line.tenant_id == tenant_id))
    if supplier_id is not None:
        rows = rows.where(schedule.supplier_id == supplier_id)
    if company_id is not None:
        rows = rows.where(
            schedule.line_id.in_(
                select(line.id)
                .join(PurchaseOrder, and_(PurchaseOrder.id == line.order_id, PurchaseOrder.tenant_id == tenant_id))
                .where(line.tenant_id == tenant_id, PurchaseOrder.company_id == company_id)
            )
        )
    return rows.subquery("rows")


class BoundWindow:
    """A window whose values are bound parameters, to build a statement once and run it with any window
    (``params`` gives the values); stands in for ``Window`` in the statement builders."""

    # Rendered into the SQL at execution (``literal_execute``: dates and integers only): the planner then
    # estimates with the values themselves, which measured faster here than server-side parameters.
    start = bindparam("w_start", type_=Date, literal_execute=True)
    end = bindparam("w_end", type_=Date, literal_execute=True)
    early_days = bindparam("w_early", type_=Integer, literal_execute=True)
    late_days = bindparam("w_late", type_=Integer, literal_execute=True)
    closed_before = bindparam("w_closed", type_=Date, literal_execute=True)
    today = bindparam("w_today", type_=Date, literal_execute=True)

    @staticmethod
    def params(window: Window) -> dict[str, Any]:
        return {"w_start": window.start, "w_end": window.end, "w_early": window.early_days,
                "w_late": window.late_days, "w_closed": window.closed_before,
                "w_today": window.today or date.today()}  # fmt: skip


def _judged(rows: Any, window: Window | BoundWindow) -> dict[str, ColumnElement[Any]]:
    counted = and_(
        rows.c.quantity > 0,
        (rows.c.completed_on.is_not(None)) | (rows.c.promised_date < window.closed_before),
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
    delivered = rows.c.delivered_quantity
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
    notice_days: float | None = None
    lead_error_days: float | None = None
    documents: float | None = None
    score: float | None = None
    grade: str | None = None
    version: int = VERSION

    def as_dict(self) -> dict[str, Any]:
        values = dict(self.__dict__)
        del values["supplier_id"]
        return values


@dataclass
class Sums:
    """The additive parts of the figures: a quarter's are the sum of its months'."""

    deliveries: int = 0
    on_time: int = 0
    in_full: int = 0
    otif: int = 0
    delivered: Decimal = ZERO
    committed: Decimal = ZERO
    changed: int = 0
    slip_total: int = 0
    lead_total: int = 0
    orders: int = 0
    answered: int = 0

    def figures(self, supplier_id: int) -> Figures:
        return Figures(supplier_id, *_counted_figures(tuple(getattr(self, name) for name in SUM_FIELDS)))


# The order of a ``Sums``' fields as a tuple (the recompute keeps its sums as plain tuples).
SUM_FIELDS = tuple(f.name for f in fields(Sums))
# A snapshot's figures in ``Figures``' order (the stored document's keys).
FIGURE_FIELDS = tuple(f.name for f in fields(Figures) if f.name != "supplier_id")


def _counted_figures(sums: tuple[Any, ...]) -> tuple[Any, ...]:
    """The figures that come from the sums (``SUM_FIELDS`` order), in ``FIGURE_FIELDS`` order up to
    ``lead_error_days``; the medians are left None. Live pages and the recompute both use this."""
    deliveries, on_time, in_full, otif, delivered, committed, changed, slip_total, lead_total, orders, answered = sums
    return (
        deliveries,
        _rate(on_time, deliveries),
        _rate(in_full, deliveries),
        _rate(otif, deliveries),
        _rate(delivered, committed),
        orders,
        _rate(answered, orders),
        None,  # ack_hours: a median
        _rate(deliveries - changed, deliveries),
        _mean(slip_total, changed),
        None,  # notice_days: a median
        _mean(lead_total, in_full),  # over the deliveries complete
    )


def _rate(part: Any, whole: Any) -> float | None:
    return None if not whole else float(part) * 100.0 / float(whole)


def _mean(total: Any, count: int) -> float | None:
    if not count:
        return None
    return tenths(_decimal(total) / count)


_TENTH = Decimal("0.1")


def tenths(value: Decimal | float) -> float:
    """``value`` to one decimal, halves away from zero (2.25 -> 2.3, -2.25 -> -2.3), exactly as PostgreSQL's
    ``round(numeric, 1)``, which the recompute uses in SQL: an exact quotient as it is, a float (a median, the
    score) first written with 15 significant digits, as PostgreSQL converts a float to numeric. Python's
    ``round`` would round 0.35 down (the float is just below it) and 0.25 to even."""
    exact = value if isinstance(value, Decimal) else Decimal(format(value, ".15g"))
    return float(exact.quantize(_TENTH, ROUND_HALF_UP))


def _decimal(value: Any) -> Decimal:
    """PostgreSQL's sums arrive as Decimal already; SQLite's as int or float."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _sum_columns(rows: Any, window: Window | BoundWindow, over_all_rows: bool = False) -> list[Any]:
    """The additive parts as aggregates (GROUP BY), or as window aggregates over every row of the result
    (``over_all_rows``: each row of a page carries the totals of the whole list)."""
    judged = _judged(rows, window)
    counted = judged["counted"]

    # Aggregates with FILTER rather than sums of CASE: each row is judged once per aggregate either way, but
    # a count adds no numbers and a sum adds only its rows (0.3 s of the recompute's 4.3 s grouped pass).
    def aggregated(aggregate: Any) -> Any:
        return func.coalesce(aggregate.over() if over_all_rows else aggregate, 0)

    def total_if(condition: ColumnElement[Any], value: Any) -> Any:
        return aggregated(func.sum(value).filter(condition))

    def count_if(condition: ColumnElement[Any]) -> Any:
        return aggregated(func.count().filter(and_(counted, condition)))

    return [
        aggregated(func.count().filter(counted)).label("deliveries"),
        count_if(judged["on_time"]).label("on_time"),
        count_if(judged["in_full"]).label("in_full"),
        count_if(judged["otif"]).label("otif"),
        total_if(counted, judged["delivered"]).label("delivered"),
        total_if(counted, rows.c.quantity).label("committed"),
        count_if(judged["changed"]).label("changed"),
        total_if(
            and_(counted, judged["changed"]), days_between(rows.c.promised_date, rows.c.first_promised_date)
        ).label("slip_total"),
        total_if(
            and_(counted, judged["in_full"]), func.abs(days_between(rows.c.completed_on, rows.c.promised_date))
        ).label("lead_total"),
    ]


def _sum_values(row: Any) -> list[Any]:
    """A grouped row's nine delivery sums as numbers (``_sum_columns`` order)."""
    deliveries, on_time, in_full, otif, delivered, committed, changed, slip_total, lead_total = row
    return [int(deliveries), int(on_time), int(in_full), int(otif), _decimal(delivered), _decimal(committed),
            int(changed), int(slip_total), int(lead_total)]  # fmt: skip


def _sums(row: Any) -> Sums:
    return Sums(
        deliveries=int(row.deliveries), on_time=int(row.on_time), in_full=int(row.in_full), otif=int(row.otif),
        delivered=_decimal(row.delivered), committed=_decimal(row.committed), changed=int(row.changed),
        slip_total=int(row.slip_total), lead_total=int(row.lead_total),
    )  # fmt: skip


def _ack_hours_values(tenant_id: Any, start: Any, end: Any, supplier_id: Any, company_id: Any,
                      kind: str | None) -> Any:  # fmt: skip
    """One supplier's (or every supplier's) hours from order to answer (values or bound parameters)."""
    order = PurchaseOrder
    stmt = select(
        order.supplier_id.label("supplier_id"),
        *([period_key(order.order_date, kind).label("period_key")] if kind else []),
        hours_between(order.responded_at, order.created_at).label("value"),
    ).where(
        order.tenant_id == tenant_id,
        order.order_date >= start,
        order.order_date < end,
        order.responded_at.is_not(None),
        order.responded_at >= order.created_at,
    )
    if supplier_id is not None:
        stmt = stmt.where(order.supplier_id == supplier_id)
    if company_id is not None:
        stmt = stmt.where(order.company_id == company_id)
    return stmt


def _notice_values(tenant_id: Any, start: Any, end: Any, supplier_id: Any, company_id: Any,
                   kind: str | None) -> Any:  # fmt: skip
    """Days of notice given before changed promises (values or bound parameters)."""
    schedule = DeliverySchedule
    stmt = select(
        schedule.supplier_id.label("supplier_id"),
        *([period_key(schedule.promised_date, kind).label("period_key")] if kind else []),
        schedule.notice_days.label("value"),
    ).where(
        schedule.tenant_id == tenant_id,
        schedule.active.is_(True),
        schedule.promised_date >= start,
        schedule.promised_date < end,
        schedule.notice_days.is_not(None),
    )
    if supplier_id is not None:
        stmt = stmt.where(schedule.supplier_id == supplier_id)
    if company_id is not None:
        line = PurchaseOrderLine
        stmt = stmt.join(line, and_(line.id == schedule.line_id, line.tenant_id == tenant_id)).where(
            line.order_id.in_(
                select(PurchaseOrder.id).where(
                    PurchaseOrder.tenant_id == tenant_id, PurchaseOrder.company_id == company_id
                )
            )
        )
    return stmt


def _numbered(sources: dict[str, Any]) -> tuple[list[str], Any]:
    """The sources' values in one UNION ALL, each row with its source's number in ``field`` (sorting on a
    number instead of the name measured 1.0 s instead of 1.4 s), and the names by number."""
    values = union_all(*(source.add_columns(literal(i).label("field")) for i, source in enumerate(sources.values())))
    return list(sources), values


def _medians_statement(sources: dict[str, Any], by_period: bool, dialect: str) -> tuple[list[str], Any]:
    """The statement of ``_medians`` and the sources' names by number."""
    names, values = _numbered(sources)
    groups = ("field", "supplier_id", "period_key") if by_period else ("field", "supplier_id")
    return names, planned_per_run(median_by(values, groups, dialect))


def _medians(
    session: Session,
    sources: dict[str, Any],
    by_period: bool,
    statement: tuple[list[str], Any] | None = None,
    params: dict[str, Any] | None = None,
) -> dict[str, dict[Any, float]]:
    """Each source's medians per supplier (and period), all in one statement (``statement``: built earlier by
    ``_medians_statement`` with bound ``params``)."""
    names, stmt = statement or _medians_statement(sources, by_period, session.get_bind().dialect.name)
    found: dict[str, dict[Any, float]] = {field: {} for field in names}
    for row in session.execute(stmt, params):
        key = (row.supplier_id, row.period_key) if by_period else row.supplier_id
        found[names[row.field]][key] = tenths(float(row.median))
    return found


def _period_medians_query(tenant_id: int, start: date, end: date) -> Any:
    """PostgreSQL: both medians of every supplier for every month and every quarter of [start, end), computed
    in one sort (GROUPING SETS: a row of one set has the other's key NULL); one row per period kind
    ('month' or 'quarter'), supplier and period key, with a column per median (NULL: no value)."""
    sources = {"ack_hours": _ack_hours_values, "notice_days": _notice_values}
    names, values = _numbered({f: make(tenant_id, start, end, None, None, "month") for f, make in sources.items()})
    v = values.subquery("v")
    quarter = v.c.period_key // 3
    found = (
        select(
            v.c.field,
            v.c.supplier_id,
            v.c.period_key,
            quarter.label("quarter_key"),
            func.percentile_cont(0.5).within_group(v.c.value).label("median"),
        )
        .group_by(
            func.grouping_sets(
                tuple_(v.c.field, v.c.supplier_id, v.c.period_key), tuple_(v.c.field, v.c.supplier_id, quarter)
            )
        )
        .subquery("found")
    )
    kind = case((found.c.period_key.is_not(None), literal("month")), else_=literal("quarter"))
    key = func.coalesce(found.c.period_key, found.c.quarter_key)
    return select(
        kind.label("kind"),
        found.c.supplier_id,
        key.label("key"),
        *(func.max(found.c.median).filter(found.c.field == number).label(name) for number, name in enumerate(names)),
    ).group_by(kind, found.c.supplier_id, key)


def figures(
    session: Session,
    *,
    tenant_id: int,
    window: Window,
    supplier_id: int | None = None,
    company_id: int | None = None,
) -> dict[int, Figures]:
    """Every supplier's figures for the window (GROUP BY: one query for the deliveries, one for the
    acknowledgements, one per median); ``company_id`` keeps the orders of one of the tenant's companies."""
    rows = _delivery_query(tenant_id, window, supplier_id, company_id)
    stmt = select(rows.c.supplier_id, *_sum_columns(rows, window)).group_by(rows.c.supplier_id)
    sums: dict[int, Sums] = {row.supplier_id: _sums(row) for row in session.execute(planned_per_run(stmt))}
    return _complete(session, tenant_id, window, sums, supplier_id, company_id)


def _complete(
    session: Session,
    tenant_id: int,
    window: Window,
    sums: dict[int, Sums],
    supplier_id: int | None,
    company_id: int | None,
) -> dict[int, Figures]:
    """The delivery sums completed by the acknowledgements, the medians, documents and the score."""
    acknowledgements, medians_statement = _completing_statements(session, supplier_id is not None,
                                                                 company_id is not None)  # fmt: skip
    params = {"c_tenant": tenant_id, "c_start": window.start, "c_end": window.end, "c_supplier": supplier_id,
              "c_company": company_id}  # fmt: skip
    for supplier, ordered, answered in session.execute(acknowledgements, params):
        part = sums.setdefault(supplier, Sums())
        part.orders, part.answered = int(ordered), int(answered or 0)
    result = {supplier: part.figures(supplier) for supplier, part in sums.items()}
    medians = _medians(session, {}, by_period=False, statement=medians_statement, params=params)
    for field, by_supplier in medians.items():
        for supplier, value in by_supplier.items():
            setattr(result.setdefault(supplier, Figures(supplier_id=supplier)), field, value)
    for supplier, share in document_compliance(session, tenant_id, window, supplier_id).items():
        result.setdefault(supplier, Figures(supplier_id=supplier)).documents = share
    settings = settings_for(session, tenant_id)
    for figure in result.values():
        figure.score, figure.grade = overall(figure, settings.weights, settings.grades)
    return result


# The statements that complete the figures (acknowledgements, both medians), built once per shape (one
# supplier or all, one company or all, the database) with bound parameters: building them again for each
# scorecard page cost more CPU than running them (about 5 ms of the page's 30).
_COMPLETING: dict[tuple[bool, bool, str], tuple[Any, tuple[list[str], Any]]] = {}


def _completing_statements(
    session: Session, for_supplier: bool, for_company: bool
) -> tuple[Any, tuple[list[str], Any]]:
    dialect = session.get_bind().dialect.name
    shape = (for_supplier, for_company, dialect)
    found = _COMPLETING.get(shape)
    if found is None:
        tenant = bindparam("c_tenant", type_=BigInteger)
        start, end = bindparam("c_start", type_=Date), bindparam("c_end", type_=Date)
        supplier = bindparam("c_supplier", type_=BigInteger) if for_supplier else None
        company = bindparam("c_company", type_=BigInteger) if for_company else None
        span = (tenant, start, end, supplier, company, None)
        medians = _medians_statement(
            {"ack_hours": _ack_hours_values(*span), "notice_days": _notice_values(*span)}, False, dialect
        )
        found = _COMPLETING[shape] = (_acknowledgements_query(tenant, start, end, supplier, company), medians)
    return found


def document_compliance(
    session: Session, tenant_id: int, window: Window, supplier_id: int | None = None
) -> dict[int, float | None]:
    """Share of the documents required of each supplier that were valid on the period's last day."""
    last_day = window.end - timedelta(days=1)
    return compliance_on_days(session, tenant_id, [last_day], supplier_id).get(last_day, {})


@dataclass(frozen=True)
class _Holdings:
    """What document compliance is computed from: each supplier's required document types (with the day each
    requirement was set) and the periods in which it held a valid document of a type."""

    required: dict[int, list[tuple[int, date]]]
    held_since: dict[tuple[int, int], list[tuple[date, date | None]]]
    type_names: dict[int, str]

    def held_on(self, supplier_id: int, document_type: int, day: date) -> list[tuple[date, date | None]]:
        return [(created, expiry) for created, expiry in self.held_since.get((supplier_id, document_type), ())
                if created <= day and (expiry is None or expiry >= day)]  # fmt: skip


_HOLDINGS = "portal.scorecard_holdings"


@event.listens_for(Session, "after_flush")
@event.listens_for(Session, "after_transaction_end")
def _forget_holdings(session: Session, *_: Any) -> None:
    session.info.pop(_HOLDINGS, None)


def _holdings(session: Session, tenant_id: int, days: list[date], supplier_id: int | None) -> _Holdings | None:
    """The holdings for ``days``, read once until the session next writes: a scorecard page reads them for the
    figure and again for its evidence."""
    key = (tenant_id, tuple(days), supplier_id)
    remembered = session.info.setdefault(_HOLDINGS, {})
    if key not in remembered:
        remembered[key] = _read_holdings(session, tenant_id, days, supplier_id)
    return remembered[key]


def _read_holdings(session: Session, tenant_id: int, days: list[date], supplier_id: int | None) -> _Holdings | None:
    from portal.documents.models import Document, DocumentStatus, DocumentType, Requirement
    from portal.documents.services import applies_to, footprint, scoped_suppliers

    found = session.execute(
        select(Requirement, DocumentType.name)
        .join(DocumentType, DocumentType.id == Requirement.document_type_id)
        .where(Requirement.tenant_id == tenant_id)
    ).all()
    if not found or not days:
        return None
    requirements = [requirement for requirement, _ in found]
    documents_query = select(
        Document.supplier_id, Document.document_type_id, Document.created_at, Document.expiry_date
    ).where(
        Document.tenant_id == tenant_id,
        Document.status.in_([DocumentStatus.APPROVED, DocumentStatus.EXPIRED, DocumentStatus.SUPERSEDED]),
        Document.created_at <= datetime.combine(max(days), datetime.max.time(), tzinfo=UTC),
        (Document.expiry_date.is_(None)) | (Document.expiry_date >= min(days)),
    )
    if supplier_id is not None:
        documents_query = documents_query.where(Document.supplier_id == supplier_id)
    suppliers = scoped_suppliers(session, tenant_id, supplier_id)
    held_since: dict[tuple[int, int], list[tuple[date, date | None]]] = {}
    for supplier, document_type, created_at, expiry in session.execute(planned_per_run(documents_query)):
        held_since.setdefault((supplier, document_type), []).append((_as_date(created_at), expiry))
    prints = footprint(
        session, tenant_id=tenant_id, requirements=requirements,
        supplier_ids=None if supplier_id is None else [supplier_id],
    )  # fmt: skip
    # A requirement counts from the day it was set (version 4): a period that ended before it could not have
    # met it, and a new requirement does not lower the figures of the months before it.
    required = {supplier.id: [(r.document_type_id, _as_date(r.created_at)) for r in requirements
                              if applies_to(r, supplier, prints)]
                for supplier in suppliers}  # fmt: skip
    names = {requirement.document_type_id: name for requirement, name in found}
    return _Holdings(required, held_since, names)


def compliance_on_days(
    session: Session, tenant_id: int, days: list[date], supplier_id: int | None = None
) -> dict[date, dict[int, float | None]]:
    """Document compliance on each of ``days`` (the last days of periods), reading the documents once."""
    holdings = _holdings(session, tenant_id, days, supplier_id)
    if holdings is None:
        return {}
    shares: dict[date, dict[int, float | None]] = {}
    for day in days:
        on_day = shares.setdefault(day, {})
        for supplier, types in holdings.required.items():
            in_force = [document_type for document_type, since in types if since <= day]
            held = sum(1 for document_type in in_force if holdings.held_on(supplier, document_type, day))
            on_day[supplier] = _rate(held, len(in_force))
    return shares


@dataclass(frozen=True)
class DocumentEvidence:
    """One document required of a supplier on a period's last day, and whether it held a valid one then."""

    document_type: str
    required_since: date
    held: bool
    valid_until: date | None  # the latest expiry among those held that day (None: none held, or no expiry)


def document_evidence(session: Session, *, tenant_id: int, window: Window, supplier_id: int) -> list[DocumentEvidence]:
    """The documents behind one supplier's document compliance: each requirement in force on the period's last
    day, missing ones first."""
    last_day = window.end - timedelta(days=1)
    holdings = _holdings(session, tenant_id, [last_day], supplier_id)
    if holdings is None:
        return []
    found = []
    for document_type, since in holdings.required.get(supplier_id, []):
        if since > last_day:
            continue
        held = holdings.held_on(supplier_id, document_type, last_day)
        expiries = [expiry for _, expiry in held]
        until = None if not held or None in expiries else max(e for e in expiries if e is not None)
        found.append(DocumentEvidence(holdings.type_names[document_type], since, bool(held), until))
    return sorted(found, key=lambda evidence: (evidence.held, evidence.document_type))


SCORED = ("otif", "fill_rate", "ack_rate", "promise_kept", "documents")
WEIGHT_KEYS = {"otif": "otif", "fill_rate": "fill_rate", "ack_rate": "ack_rate", "promise_kept": "reliability",
               "documents": "documents"}  # fmt: skip


def overall(figure: Figures, weights: dict[str, int], grades: list[list[Any]]) -> tuple[float | None, str | None]:
    """Weighted mean of the figures that have data (weights of the others are left out), and its grade; no
    score when the figures with data carry less than half of the weights (``enough_weight``)."""
    return row_scorer(weights, grades)([getattr(figure, name) for name in FIGURE_FIELDS])


def enough_weight(with_data: Any, all_weights: int) -> Any:
    """Whether figures with data carrying ``with_data`` of ``all_weights`` make a score (definition version 5):
    at least half of the weights. A supplier with no delivery in the period would otherwise be graded on its
    documents alone (a "0.0, D" beside suppliers scored on their deliveries). Python ints or SQL expressions."""
    return with_data * 2 >= all_weights


def row_scorer(weights: dict[str, int], grades: list[list[Any]]) -> Any:
    """The score and grade of figures given as a list in ``FIGURE_FIELDS`` order (the recompute scores
    every one of its rows this way, without building ``Figures``)."""
    weighted = [(FIGURE_FIELDS.index(name), int(weights.get(WEIGHT_KEYS[name], 0))) for name in SCORED]
    weighted = [(index, weight) for index, weight in weighted if weight > 0]
    bands = [(float(floor), str(grade)) for floor, grade in sorted(grades, key=lambda g: -float(g[0]))]
    all_weights = sum(weight for _, weight in weighted)

    def score(values: list[Any]) -> tuple[float | None, str | None]:
        total = 0
        weighted_sum = 0.0
        for index, weight in weighted:
            value = values[index]
            if value is not None:
                total += weight
                weighted_sum += float(value) * weight
        if not total or not enough_weight(total, all_weights):
            return None, None
        result = tenths(weighted_sum / total)
        for floor, grade in bands:
            if result >= floor:
                return result, grade
        return result, None

    return score


def settings_for(session: Session, tenant_id: int) -> Any:
    """The tenant's scorecard settings (defaults when never saved), read once per transaction: a page asks
    for them for every period it shows."""
    from portal.scorecards.models import DEFAULT_GRADES, DEFAULT_WEIGHTS, ScorecardSettings

    cache = session.info.setdefault("scorecard_settings", {})
    if tenant_id in cache:
        return cache[tenant_id]
    found = session.execute(
        select(ScorecardSettings).where(ScorecardSettings.tenant_id == tenant_id)
    ).scalar_one_or_none()
    if found is None:
        found = ScorecardSettings(
            tenant_id=tenant_id, early_days=DEFAULT_EARLY_DAYS, late_days=DEFAULT_LATE_DAYS,
            weights=dict(DEFAULT_WEIGHTS), grades=[list(g) for g in DEFAULT_GRADES],
        )  # fmt: skip
    cache[tenant_id] = found
    return found


def _acknowledged_in_time(tenant_id: Any) -> ColumnElement[bool]:
    from portal.tenancy.models import Tenant

    # The tenant's "unconfirmed after" days, read by the statement itself (no round trip of its own).
    days = select(Tenant.unconfirmed_after_days).where(Tenant.id == tenant_id).scalar_subquery()
    order = PurchaseOrder
    return and_(order.responded_at.is_not(None), days_between(func.date(order.responded_at), order.order_date) <= days)


def _acknowledgements_query(tenant_id: Any, start: Any, end: Any, supplier_id: Any, company_id: Any) -> Any:
    """Per supplier: the orders placed in [start, end) and those answered in time (values or bound
    parameters; ``supplier_id`` and ``company_id`` None for all)."""
    order = PurchaseOrder
    in_time = _acknowledged_in_time(tenant_id)
    stmt = (
        select(order.supplier_id, func.count(order.id), func.sum(case((in_time, 1), else_=0)))
        .where(order.tenant_id == tenant_id, order.order_date >= start, order.order_date < end)
        .group_by(order.supplier_id)
    )
    if supplier_id is not None:
        stmt = stmt.where(order.supplier_id == supplier_id)
    if company_id is not None:
        stmt = stmt.where(order.company_id == company_id)
    return planned_per_run(stmt)


def _acknowledgements_by_month_query(session: Session, tenant_id: int, span: Window) -> Any:
    """Per supplier and month of the span (``key``): the orders placed (``orders``) and those answered in time
    (``answered``)."""
    order = PurchaseOrder
    month = period_key(order.order_date, "month")
    return (
        select(
            order.supplier_id,
            month.label("key"),
            func.count(order.id).label("orders"),
            func.sum(case((_acknowledged_in_time(tenant_id), 1), else_=0)).label("answered"),
        )
        .where(order.tenant_id == tenant_id, order.order_date >= span.start, order.order_date < span.end)
        .group_by(order.supplier_id, month)
    )


def _acknowledgements_by_month(session: Session, tenant_id: int, span: Window) -> list[tuple[int, int, int, int]]:
    stmt = _acknowledgements_by_month_query(session, tenant_id, span)
    return [(s, int(k), int(n), int(a or 0)) for s, k, n, a in session.execute(planned_per_run(stmt))]


@dataclass(frozen=True)
class OrderEvidence:
    """One order behind a supplier's acknowledgement figures: placed in the period, answered in time or not."""

    order_id: int
    order_number: str
    order_date: date
    arrived_at: datetime
    answered_at: datetime | None
    in_time: bool
    hours: float | None  # from arrival in the portal to the first answer


def order_evidence(
    session: Session, *, tenant_id: int, window: Window, supplier_id: int, limit: int | None = None
) -> tuple[list[OrderEvidence], int]:
    """The orders behind the acknowledgement rate and the median time to respond (those placed in the window),
    the ones not answered in time first, then by order date; the first ``limit`` of them and how many there are
    in all (one statement)."""
    order = PurchaseOrder
    in_time = _acknowledged_in_time(tenant_id)
    stmt = (
        select(order.id, order.number, order.order_date, order.created_at, order.responded_at,
               in_time.label("in_time"), hours_between(order.responded_at, order.created_at).label("hours"),
               func.count().over().label("listed"))
        .where(order.tenant_id == tenant_id, order.supplier_id == supplier_id, order.order_date >= window.start,
               order.order_date < window.end)
        .order_by(case((in_time, 1), else_=0), order.order_date, order.id)
        .limit(limit)
    )  # fmt: skip
    rows = session.execute(planned_per_run(stmt)).all()
    listed = int(rows[0].listed) if rows else 0
    return [
        OrderEvidence(r.id, r.number, _as_date(r.order_date), r.created_at, r.responded_at, bool(r.in_time),
                      None if r.responded_at is None else float(r.hours))
        for r in rows
    ], listed  # fmt: skip


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
    listed: int = 0  # how many deliveries the whole list has (a limited list shows fewer)


def evidence(
    session: Session,
    *,
    tenant_id: int,
    window: Window,
    supplier_id: int,
    limit: int | None = None,
    offset: int = 0,
    misses_first: bool = False,
) -> list[Evidence]:
    """The deliveries behind one supplier's figures, each with how it was judged (in promised-date order;
    ``misses_first``: the counted deliveries that were not OTIF lead; ``offset``/``limit``: one page)."""
    stmt, params = _evidence_statement(tenant_id, window, supplier_id, limit, offset, misses_first, with_sums=False)
    return [_evidence(row) for row in session.execute(stmt, params)]


def live_card(
    session: Session,
    *,
    tenant_id: int,
    window: Window,
    supplier_id: int,
    limit: int | None = None,
    offset: int = 0,
) -> tuple[Figures, list[Evidence]]:
    """One supplier's figures for the window computed live, and one page of its evidence (the deliveries that
    cost points first), from one pass over its deliveries: each row of the page carries the totals."""
    stmt, params = _evidence_statement(tenant_id, window, supplier_id, limit, offset, True, with_sums=True)
    rows = session.execute(stmt, params).all()
    if rows:
        sums = {supplier_id: _sums(rows[0])}
    elif offset:  # past the last page: the totals need their own pass
        return figures(session, tenant_id=tenant_id, window=window, supplier_id=supplier_id).get(
            supplier_id, Figures(supplier_id=supplier_id)
        ), []
    else:  # no delivery in the window
        sums = {}
    found = _complete(session, tenant_id, window, sums, supplier_id, None)
    return found.get(supplier_id, Figures(supplier_id=supplier_id)), [_evidence(row) for row in rows]


# Built once per shape with bound parameters: building these statements costs more than running them. Not
# planned per run (``planned_per_run``): the tenant and the supplier are written into the statement
# (``literal_execute``), so each supplier's evidence is a statement of its own, prepared on a connection after
# five runs with a plan for that supplier's size; only the window's dates, alike from one period to the next,
# remain parameters. Planning it on every run took 4 ms of the 50 ms scorecard page.
_EVIDENCE_STATEMENTS: dict[tuple[bool, bool, bool], Any] = {}


def _evidence_statement(
    tenant_id: int,
    window: Window,
    supplier_id: int,
    limit: int | None,
    offset: int,
    misses_first: bool,
    with_sums: bool,
) -> tuple[Any, dict[str, Any]]:
    shape = (misses_first, with_sums, limit is not None)
    stmt = _EVIDENCE_STATEMENTS.get(shape)
    if stmt is None:
        stmt = _EVIDENCE_STATEMENTS[shape] = _build_evidence_statement(*shape)
    params = {**BoundWindow.params(window), "tenant_id": tenant_id, "supplier_id": supplier_id, "offset": offset}
    if limit is not None:
        params["limit"] = limit
    return stmt, params


def _build_evidence_statement(misses_first: bool, with_sums: bool, limited: bool) -> Any:
    tenant_id = bindparam("tenant_id", type_=BigInteger, literal_execute=True)
    window = BoundWindow()
    rows = _delivery_query(tenant_id, window, bindparam("supplier_id", type_=BigInteger, literal_execute=True))
    judged = _judged(rows, window)
    # Late by its completion, or else its first goods; one that has received nothing, by the days since its
    # promise so far (a cancelled one, nothing to receive, is not late).
    arrived = func.coalesce(rows.c.completed_on, rows.c.first_arrival)
    lateness = case(
        (arrived.is_not(None), days_between(arrived, rows.c.promised_date)),
        (rows.c.quantity > 0, days_between(window.today, rows.c.promised_date)),
    )
    is_counted = judged["counted"]
    is_otif = judged["otif"]
    miss = case((is_otif, 1), (is_counted, 0), else_=1)  # counted and not OTIF (NULL-safe)
    listed = (
        select(
            rows,
            is_counted.label("is_counted"),
            judged["on_time"].label("is_on_time"),
            judged["in_full"].label("is_in_full"),
            is_otif.label("is_otif"),
            lateness.label("days_late"),
            (miss if misses_first else literal(0)).label("miss_first"),
            func.count().over().label("listed"),
            *(_sum_columns(rows, window, over_all_rows=True) if with_sums else ()),
        )
        .order_by(*([miss] if misses_first else []), rows.c.promised_date, rows.c.delivery_id)
        .offset(bindparam("offset", type_=Integer, literal_execute=True))
    )
    if limited:
        listed = listed.limit(bindparam("limit", type_=Integer, literal_execute=True))
    page = listed.subquery("page")
    # The order numbers of the page's rows only: joined after the limit (50 lookups instead of one per
    # delivery of the window).
    return (
        select(*(c for c in page.c if c.key != "miss_first"), PurchaseOrder.number)
        .join(PurchaseOrder, and_(PurchaseOrder.id == page.c.order_id, PurchaseOrder.tenant_id == tenant_id))
        .order_by(page.c.miss_first, page.c.promised_date, page.c.delivery_id)
    )


def _evidence(row: Any) -> Evidence:
    return Evidence(
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
        listed=int(row.listed),
    )


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def ranking_page(
    session: Session,
    *,
    tenant_id: int,
    window: Window,
    sort: str = "otif",
    kind: str = "month",
    today: date | None = None,
    company_id: int | None = None,
    category: str = "",
    offset: int = 0,
    limit: int | None = None,
) -> tuple[list[tuple[Supplier, Figures]], int]:
    """One page of the ranking and the number of suppliers in it. A closed period with a snapshot is
    sorted and paged by the database; the current period and one company's figures are computed live."""
    from portal.scorecards.models import FIGURE_COLUMNS, ScorecardSnapshot

    today = today or date.today()
    suppliers = select(Supplier).where(Supplier.tenant_id == tenant_id)
    if category:
        suppliers = suppliers.where(Supplier.category == category)
    snapshot = and_(
        ScorecardSnapshot.tenant_id == tenant_id,
        ScorecardSnapshot.period == kind,
        ScorecardSnapshot.period_start == window.start,
        ScorecardSnapshot.version == VERSION,
    )
    stored = (
        company_id is None
        and window.end <= today
        and session.execute(select(ScorecardSnapshot.supplier_id).where(snapshot).limit(1)).first() is not None
    )
    if stored:
        total = session.execute(planned_per_run(select(func.count()).select_from(suppliers.subquery()))).scalar_one()
        value = getattr(ScorecardSnapshot, sort if sort in FIGURE_COLUMNS else "score")
        page = (
            suppliers.add_columns(ScorecardSnapshot.supplier_id, *_snapshot_columns())
            .outerjoin(ScorecardSnapshot, and_(snapshot, ScorecardSnapshot.supplier_id == Supplier.id))
            .order_by(value.is_(None), value.desc(), Supplier.name, Supplier.id)
            .offset(offset)
            .limit(limit)
        )
        return [
            (supplier, _snapshot_figures(supplier.id, values) if found is not None else Figures(supplier.id))
            for supplier, found, *values in session.execute(planned_per_run(page))
        ], total
    by_supplier = figures(session, tenant_id=tenant_id, window=window, company_id=company_id)
    rows = [
        (s, by_supplier.get(s.id, Figures(supplier_id=s.id)))
        for s in session.execute(planned_per_run(suppliers)).scalars()
    ]

    def key(item: tuple[Supplier, Figures]) -> tuple[bool, float, str, int]:
        value = getattr(item[1], sort, None)
        # Suppliers with no data go last, whatever the order.
        return (value is None, -(value or 0.0), item[0].name, item[0].id)

    rows.sort(key=key)
    return rows[offset : None if limit is None else offset + limit], len(rows)


# --- snapshots of closed periods ---------------------------------------------------------


def _settle_for_big_queries(session: Session) -> None:
    """The recompute's few big grouped queries: JIT compilation costs seconds and never pays back here, and the
    medians' sort spills to disk with the default work_mem (only for this transaction).
    No parallel workers: the recompute keeps both cores busy with its two connections already, and workers
    beside them only competed for the cores (the rebuild 5.6 -> 5.3 s).
    Each of its statements is planned for its own tenant and periods (``CUSTOM_PLAN``): a job that runs for
    every tenant on one connection would otherwise get generic plans from the sixth run on."""
    session.connection().execution_options(**{CUSTOM_PLAN: True})
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL jit = off"))
        session.execute(text("SET LOCAL work_mem = '64MB'"))
        session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))


def _on_other_session(reader: Callable[[], AbstractContextManager[Session]], read: Callable[[Session], Any]) -> Any:
    with reader() as other:
        return read(other)


def recompute(
    session: Session,
    *,
    tenant_id: int,
    months: int = 24,
    today: date | None = None,
    reader: Callable[[], AbstractContextManager[Session]] | None = None,
) -> int:
    """Store every supplier's figures for the closed months and quarters of the last ``months`` months; returns
    how many snapshots were computed.

    One grouped pass over the deliveries of the whole span gives every month's additive parts (a quarter's
    are the sum of its months'); the medians, the acknowledgements and document compliance are one query each.
    This definition version's rows of those periods become exactly what was computed: new rows are inserted,
    changed ones updated, rows no longer computed deleted, identical rows left alone (so a rebuild of
    unchanged history writes nothing, and ``computed_at`` says when a row's figures last changed); rows of
    other versions are left as they were.

    On PostgreSQL the figures are computed and stored in SQL (``_recompute_in_sql``); elsewhere (the embedded
    SQLite mode: a few suppliers) the sums are turned into figures by the same functions as the live pages.
    Both give the same numbers (tested on both).

    ``reader`` (PostgreSQL) opens another session of the same tenant on its own connection: when given, the
    medians and document compliance are read on it while the grouped pass runs, and then a part of the
    grouped pass itself, so that PostgreSQL works on both cores (each query runs on one). It reads committed
    rows only, which is what the job sees anyway; the tests' savepoint sessions, whose rows are not
    committed, leave it out.
    """
    today = today or date.today()
    periods = {
        "month": previous_periods(session, tenant_id, "month", today, months),
        "quarter": previous_periods(session, tenant_id, "quarter", today, max(1, months // 3)),
    }
    if not periods["month"]:
        return 0
    first = min(p[0].start for p in periods.values())
    last = max(p[-1].end for p in periods.values())
    span = replace(periods["month"][0], start=first, end=last)
    if session.get_bind().dialect.name == "postgresql":
        return _recompute_in_sql(session, tenant_id, periods, span, reader)
    return _recompute_in_python(session, tenant_id, periods, span)


def snapshots_missing(session: Session, *, tenant_id: int, today: date) -> bool:
    """Whether the tenant's last closed month has no snapshot of the current definition version: the monthly
    job has not run since it closed, or ran under another version. (A tenant with nothing to show for that month
    is recomputed each time it is asked: for such a tenant that is little work.)"""
    from portal.scorecards.models import ScorecardSnapshot

    closed = previous_periods(session, tenant_id, "month", today, 1)
    if not closed:
        return False
    found = session.execute(
        select(ScorecardSnapshot.supplier_id)
        .where(
            ScorecardSnapshot.tenant_id == tenant_id,
            ScorecardSnapshot.version == VERSION,
            ScorecardSnapshot.period == "month",
            ScorecardSnapshot.period_start == closed[-1].start,
        )
        .limit(1)
    ).first()
    return found is None


def _recompute_in_python(session: Session, tenant_id: int, periods: dict[str, list[Window]], span: Window) -> int:
    # Additive parts per supplier and month, in one pass: plain tuples in ``SUM_FIELDS`` order (a quarter's
    # are the sum of its months'), turned into figures by the same ``_counted_figures`` as the live pages.
    rows = _delivery_query(tenant_id, span, None, period_kind="month")
    stmt = select(rows.c.supplier_id, rows.c.period_key, *_sum_columns(rows, span)).group_by(
        rows.c.supplier_id, rows.c.period_key
    )
    by_month: dict[tuple[int, int], list[Any]] = {
        (supplier, key): [*_sum_values(sums), 0, 0] for supplier, key, *sums in session.execute(stmt)
    }
    no_sums = [0, 0, 0, 0, ZERO, ZERO, 0, 0, 0, 0, 0]
    for supplier, key, ordered, answered in _acknowledgements_by_month(session, tenant_id, span):
        part = by_month.setdefault((supplier, key), list(no_sums))
        part[-2:] = ordered, answered
    period_medians = {
        kind: _medians(session, {field: make(tenant_id, span.start, span.end, None, None, kind)
                                 for field, make in (("ack_hours", _ack_hours_values),
                                                     ("notice_days", _notice_values))}, by_period=True)
        for kind in periods
    }  # fmt: skip
    period_ends = [w.end - timedelta(days=1) for windows in periods.values() for w in windows]
    documents = compliance_on_days(session, tenant_id, period_ends)

    settings = settings_for(session, tenant_id)
    score = row_scorer(settings.weights, settings.grades)
    ack_hours, notice_days, documents_at = (FIGURE_FIELDS.index(name) for name in ("ack_hours", "notice_days",
                                                                                     "documents"))  # fmt: skip
    nothing_counted = _counted_figures(tuple(no_sums))  # what ``Figures`` defaults to
    snapshots: list[tuple[int, str, date, dict[str, Any]]] = []
    for kind, windows in periods.items():
        sums: dict[tuple[int, int], list[Any]] = by_month if kind == "month" else {}
        if kind == "quarter":
            for (supplier, month), part in by_month.items():
                quarter = (supplier, month // 3)
                total = sums.get(quarter)
                sums[quarter] = list(part) if total is None else [a + b for a, b in zip(total, part, strict=True)]
        medians = period_medians[kind]
        present: dict[int, set[int]] = {}
        for supplier, key in [*sums, *(k for found in medians.values() for k in found)]:
            present.setdefault(key, set()).add(supplier)
        for window in windows:
            key = key_of_period(window.start, kind)
            shares = documents.get(window.end - timedelta(days=1), {})
            for supplier in present.get(key, set()) | set(shares):
                counted = sums.get((supplier, key))
                values = [*(_counted_figures(tuple(counted)) if counted is not None else nothing_counted),
                          None, None, None, VERSION]  # fmt: skip
                values[ack_hours] = medians["ack_hours"].get((supplier, key))
                values[notice_days] = medians["notice_days"].get((supplier, key))
                values[documents_at] = shares.get(supplier)
                values[-3:-1] = score(values)
                snapshots.append((supplier, kind, window.start, dict(zip(FIGURE_FIELDS, values, strict=True))))
    _replace_snapshots(session, tenant_id, snapshots, [(kind, w.start) for kind, ws in periods.items() for w in ws])
    return len(snapshots)


def _replace_snapshots(
    session: Session,
    tenant_id: int,
    snapshots: list[tuple[int, str, date, dict[str, Any]]],
    periods: list[tuple[str, date]],
) -> None:
    """Make this version's rows of ``periods`` (kind, start) the given ones (supplier, kind, start, figures):
    rows whose figures did not change are left alone."""
    from portal.scorecards.models import ScorecardSnapshot

    existing = {
        (row.supplier_id, row.period, row.period_start): row
        for row in session.scalars(
            select(ScorecardSnapshot).where(
                ScorecardSnapshot.tenant_id == tenant_id,
                ScorecardSnapshot.version == VERSION,
                tuple_(ScorecardSnapshot.period, ScorecardSnapshot.period_start).in_(periods),
            )
        )
    }
    computed_at = datetime.now(UTC)
    for supplier, kind, start, figures_of in snapshots:
        row = existing.pop((supplier, kind, start), None)
        if row is None:
            session.add(ScorecardSnapshot(tenant_id=tenant_id, supplier_id=supplier, period=kind, period_start=start,
                                          version=VERSION, figures=figures_of, computed_at=computed_at))  # fmt: skip
        elif row.figures != figures_of:
            row.figures, row.computed_at = figures_of, computed_at
    for row in existing.values():
        session.delete(row)
    session.flush()


# --- the recompute on PostgreSQL: temporary tables on two connections, set-based storing --


def _recompute_in_sql(
    session: Session,
    tenant_id: int,
    periods: dict[str, list[Window]],
    span: Window,
    reader: Callable[[], AbstractContextManager[Session]] | None,
) -> int:
    """The recompute in PostgreSQL: figures, score and grade are computed where the sums are, and stored from
    there (no row travels to Python and back).

    Three steps. The grouped pass writes every supplier's month sums (deliveries, orders placed and answered)
    into a temporary table, and both medians of every month and quarter go into another. When ``reader`` is
    given, its connection works beside the pass, so that PostgreSQL uses both cores: it reads the medians and
    the document compliance (which applies each requirement's scope in Python), about as long as the grouped
    pass takes since the deliveries keep their outcomes; its medians join the main connection's as COPY
    text. Then one statement sums the quarters,
    joins the medians and documents (the shares passed as arrays) and computes every figure into a temporary
    table of incoming rows, which ``_storing_statements`` store. With ``reader``, that statement runs on both
    connections at once, each for a share of the suppliers (``_supplier_split``; the other's sums and medians
    go over, and its rows come back, as COPY text). Returns the number of snapshots computed."""

    period_ends = sorted({w.end - timedelta(days=1) for windows in periods.values() for w in windows})
    _settle_for_big_queries(session)

    medians_query = _period_medians_query(tenant_id, span.start, span.end)

    def read_alongside(on: Session) -> tuple[list[bytes], dict[date, dict[int, float | None]]]:
        _settle_for_big_queries(on)
        return _copied_out(on, medians_query), compliance_on_days(on, tenant_id, period_ends)

    wanted = [(kind, key_of_period(w.start, kind), w.start, w.end - timedelta(days=1))
              for kind, windows in periods.items() for w in windows]  # fmt: skip
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scorecards") if reader is not None else None
    try:
        alongside = None if pool is None or reader is None else pool.submit(_on_other_session, reader, read_alongside)
        month_sums = _month_sums_query(session, tenant_id, span)
        session.execute(_CreateTemporaryTable(_MONTH_SUMS, month_sums))
        if alongside is None:
            session.execute(_CreateTemporaryTable(_MEDIANS, medians_query))
            documents = compliance_on_days(session, tenant_id, period_ends)
        else:
            median_blocks, documents = alongside.result()
            # The other connection's rows arrive as COPY text: sending 150,000 medians back as array
            # parameters took 1.3 s, mostly adapting the values.
            session.execute(_CreateTemporaryTable(_MEDIANS, medians_query, empty=True))
            _copy_in(session, _MEDIANS, median_blocks)
        sums_table, medians_table = _table_of(_MONTH_SUMS, month_sums), _table_of(_MEDIANS, medians_query)
        shares = [(supplier, day, share) for day, by_supplier in documents.items()
                  for supplier, share in by_supplier.items()]  # fmt: skip

        def figures_into_table(on: Session, suppliers: Callable[[int], bool]) -> tuple[Any, int]:
            """This connection's incoming rows (of the suppliers its sums and medians hold) into a temporary
            table; the statement and the number of rows."""
            chosen = [(supplier, day, share) for supplier, day, share in shares if suppliers(supplier)]
            incoming = _incoming_query(on, tenant_id, wanted, sums_table, medians_table)
            created: Any = on.execute(_CreateTemporaryTable(_INCOMING, incoming), {
                "doc_suppliers": [supplier for supplier, _, _ in chosen],
                "doc_days": [day for _, day, _ in chosen],
                "doc_shares": [share for _, _, share in chosen],
            })  # fmt: skip
            return incoming, int(created.rowcount)  # CREATE TABLE AS reports its rows as SELECT does

        other_half = None
        split = None if pool is None else _supplier_split(session, sums_table)
        if pool is not None and reader is not None and split is not None:
            # The other connection computes the figures of the upper part of the suppliers (by their months
            # with sums) meanwhile: its sums and medians go over as COPY text, its rows come back the same way.
            upper = [_copied_out(session, select(source).where(source.c.supplier_id >= split))
                     for source in (sums_table, medians_table)]  # fmt: skip
            for source in (sums_table, medians_table):
                session.execute(source.delete().where(source.c.supplier_id >= split))

            def upper_half(on: Session) -> tuple[list[bytes], int]:
                _settle_for_big_queries(on)
                on.execute(_CreateTemporaryTable(_MONTH_SUMS, month_sums, empty=True))
                on.execute(_CreateTemporaryTable(_MEDIANS, medians_query, empty=True))
                _copy_in(on, _MONTH_SUMS, upper[0])
                _copy_in(on, _MEDIANS, upper[1])
                incoming, count = figures_into_table(on, lambda supplier: supplier >= split)
                return _copied_out(on, select(_table_of(_INCOMING, incoming))), count

            other_half = pool.submit(_on_other_session, reader, upper_half)
        incoming, computed = figures_into_table(session, lambda supplier: split is None or supplier < split)
        if other_half is not None:
            blocks, counted = other_half.result()
            _copy_in(session, _INCOMING, blocks)
            computed += counted
    finally:
        if pool is not None:
            pool.shutdown()
    # Not analysed: the planner estimates a never-analysed table's rows from its size, which is all the hashed
    # joins below need (ANALYZE took 0.2-0.3 s and changed no statement's time).
    for statement in _storing_statements(tenant_id, wanted, _table_of(_INCOMING, incoming)):
        session.execute(statement, {"computed_at": datetime.now(UTC)})
    # A second recompute in this transaction makes them again.
    session.execute(text(f"DROP TABLE {_MONTH_SUMS}, {_MEDIANS}, {_INCOMING}"))
    return int(computed)


_MONTH_SUMS = "scorecard_month_sums"
_MEDIANS = "scorecard_medians"
_INCOMING = "scorecard_incoming"


def _table_of(name: str, query: Any) -> Any:
    """The temporary table ``name`` made from ``query``, with its columns, to select from."""
    from sqlalchemy import column, table

    return table(name, *(column(c.name, c.type) for c in query.selected_columns))


# The main connection's share of the suppliers' months when both compute figures: the other one first copies
# its sums and medians in (about a quarter of the time it then spends on the figures).
_MAIN_FIGURES_SHARE = 0.57


def _supplier_split(session: Session, sums: Any) -> int | None:
    """The supplier id that splits the suppliers' months with sums (``sums``: their table, a row per supplier
    and month) into the main connection's share and the other one's (the suppliers from this id on); None
    without any sums."""
    split = func.percentile_disc(_MAIN_FIGURES_SHARE).within_group(sums.c.supplier_id)
    return session.execute(select(split)).scalar_one()


def _copied_out(session: Session, query: Any) -> list[bytes]:
    """The rows of ``query`` as COPY text blocks: another connection's rows reach this one as bytes, without
    turning 45,000 rows of sums into Python values and back (0.9 s as an INSERT of arrays, 0.05 s this way).
    COPY takes no server-side parameters: psycopg binds them into the statement itself."""
    compiled = query.compile(dialect=session.get_bind().dialect)
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY ({compiled}) TO STDOUT", compiled.params) as copy:
        return [bytes(block) for block in copy]


def _copy_in(session: Session, table_name: str, blocks: list[bytes]) -> None:
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {table_name} FROM STDIN") as copy:
        for block in blocks:
            copy.write(block)


class _CreateTemporaryTable(Executable, ClauseElement):
    """``CREATE TEMPORARY TABLE name ON COMMIT DROP AS query`` (the query's parameters bound as usual);
    ``empty``: only the query's columns, for rows copied in."""

    inherit_cache = False

    def __init__(self, name: str, query: Any, empty: bool = False) -> None:
        self.name = name
        self.query = query
        self.empty = empty


@compiles(_CreateTemporaryTable)
def _create_temporary_table(element: _CreateTemporaryTable, compiler: Any, **kw: Any) -> str:
    # Gone with the transaction: the connections go back to the pool, and the next recompute makes them again.
    empty = " WITH NO DATA" if element.empty else ""
    return f"CREATE TEMPORARY TABLE {element.name} ON COMMIT DROP AS {compiler.process(element.query, **kw)}{empty}"


def _month_sums_query(session: Session, tenant_id: int, span: Window) -> Any:
    """Every supplier's month sums over the span (``SUM_FIELDS``): the grouped pass over the deliveries, with
    the orders placed and answered in time."""
    rows = _delivery_query(tenant_id, span, None, period_kind="month")
    monthly = (
        select(rows.c.supplier_id, rows.c.period_key.label("key"), *_sum_columns(rows, span))
        .group_by(rows.c.supplier_id, rows.c.period_key)
        .cte("monthly")
    )
    delivery_sums = SUM_FIELDS[:-2]  # the nine of ``_sum_columns``; orders and answered come from ``acks``
    acks = _acknowledgements_by_month_query(session, tenant_id, span).cte("acks")
    return select(
        func.coalesce(monthly.c.supplier_id, acks.c.supplier_id).label("supplier_id"),
        func.coalesce(monthly.c.key, acks.c.key).label("key"),
        *(func.coalesce(monthly.c[name], 0).label(name) for name in delivery_sums),
        func.coalesce(acks.c.orders, 0).label("orders"),
        func.coalesce(acks.c.answered, 0).label("answered"),
    ).select_from(
        monthly.join(acks, and_(monthly.c.supplier_id == acks.c.supplier_id, monthly.c.key == acks.c.key), full=True)
    )


def _incoming_query(
    session: Session, tenant_id: int, wanted: list[tuple[str, int, date, date]], by_month: Any, by_period_medians: Any
) -> Any:
    """The statement that turns the month sums (``by_month``: a table of ``_month_sums_query``'s columns), the
    medians (``by_period_medians``: a table of ``_period_medians_query``'s) and the document shares (array
    parameters) into this version's snapshots of the ``wanted`` periods (kind, key, first day, last day): one
    row per supplier and period, with every stored figure."""
    from sqlalchemy import ARRAY, DOUBLE_PRECISION, Numeric, column, values

    from portal.scorecards.models import FIGURE_COLUMNS

    float8: DOUBLE_PRECISION[float] = DOUBLE_PRECISION()
    quarter = by_month.c.key // 3
    months = select(
        literal("month").label("kind"), by_month.c.supplier_id, by_month.c.key, *(by_month.c[n] for n in SUM_FIELDS)
    )
    quarters = select(
        literal("quarter"), by_month.c.supplier_id, quarter, *(func.sum(by_month.c[n]).label(n) for n in SUM_FIELDS)
    ).group_by(by_month.c.supplier_id, quarter)
    sums = union_all(months, quarters).cte("sums")

    def unnested(name: str, arrays: dict[str, Any]) -> Any:
        parts = (bindparam(parameter, type_=ARRAY(kind)) for parameter, kind in arrays.items())
        return func.unnest(*parts).table_valued(*arrays).render_derived(name=name, with_types=False)

    periods = (
        values(column("kind", String), column("key", Integer), column("period_start", Date),
               column("last_day", Date), name="periods")
        .data(wanted)
    )  # fmt: skip
    shares = unnested("shares", {"doc_suppliers": BigInteger, "doc_days": Date, "doc_shares": float8})
    documents = (
        select(periods.c.kind, periods.c.key, shares.c.doc_suppliers.label("supplier_id"),
               shares.c.doc_shares.label("share"))
        .join_from(periods, shares, shares.c.doc_days == periods.c.last_day)
        .cte("documents")
    )  # fmt: skip
    # Every supplier and period with anything to show (as the page shows it: deliveries, orders, a median or a
    # document requirement): the sums, the medians and the documents joined in full, each row keyed by the
    # first source that has it. A union of the three sources' keys, then a join to each, made the statement
    # 1.54 s instead of 1.34 s on one connection over 155,000 rows.
    medians_c = by_period_medians.c

    def first_of(name: str) -> Any:
        return func.coalesce(sums.c[name], medians_c[name], documents.c[name])

    same_as_sums = and_(medians_c.kind == sums.c.kind, medians_c.key == sums.c.key,
                        medians_c.supplier_id == sums.c.supplier_id)  # fmt: skip
    same_as_either = and_(*(documents.c[name] == func.coalesce(sums.c[name], medians_c[name])
                            for name in ("kind", "key", "supplier_id")))  # fmt: skip
    joined = sums.outerjoin(by_period_medians, same_as_sums, full=True).outerjoin(documents, same_as_either, full=True)

    def total(name: str) -> Any:
        return func.coalesce(sums.c[name], 0)

    def rate(part: Any, whole: Any) -> Any:
        # As ``_rate``: float(part) * 100.0 / float(whole), the same IEEE operations in the same order.
        return case((whole == 0, None), else_=cast(part, float8) * cast(literal(100.0), float8) / cast(whole, float8))

    def mean(part: Any, count: Any) -> Any:
        return case((count == 0, None), else_=func.round(cast(part, Numeric) / count, 1))

    deliveries = total("deliveries")
    values_by_name = {
        "deliveries": deliveries,
        "on_time": rate(total("on_time"), deliveries),
        "in_full": rate(total("in_full"), deliveries),
        "otif": rate(total("otif"), deliveries),
        "fill_rate": rate(total("delivered"), total("committed")),
        "orders": total("orders"),
        "ack_rate": rate(total("answered"), total("orders")),
        "ack_hours": func.round(cast(by_period_medians.c.ack_hours, Numeric), 1),
        "promise_kept": rate(deliveries - total("changed"), deliveries),
        "slip_days": mean(total("slip_total"), total("changed")),
        "notice_days": func.round(cast(by_period_medians.c.notice_days, Numeric), 1),
        "lead_error_days": mean(total("lead_total"), total("in_full")),
        "documents": documents.c.share,
    }
    figured = (
        select(first_of("supplier_id").label("supplier_id"), periods.c.kind, periods.c.period_start,
               *(value.label(name) for name, value in values_by_name.items()))
        .select_from(joined)
        .join(periods, and_(periods.c.kind == first_of("kind"), periods.c.key == first_of("key")))
        .cte("figured")
        .prefix_with("MATERIALIZED")
    )  # fmt: skip
    # Each step materialized: the score reads each figure once, and the grade's bands read the score once
    # (inlined, every reference would compute its expression again: 3 s instead of 0.3 s for 155,000 rows).
    settings = settings_for(session, tenant_id)
    scored = (
        select(figured, _score_column(settings, figured, float8, Numeric).label("score"))
        .cte("scored")
        .prefix_with("MATERIALIZED")
    )
    computed: dict[str, Any] = {**{name: scored.c[name] for name in values_by_name}, "score": scored.c.score,
                                "grade": _grade_column(settings, scored.c.score, float8)}  # fmt: skip
    return select(
        scored.c.supplier_id,
        scored.c.kind.label("period"),
        scored.c.period_start,
        *(computed[name].label(name) for name in FIGURE_COLUMNS),
    )


def _storing_statements(tenant_id: int, wanted: list[tuple[str, int, date, date]], incoming: Any) -> list[Any]:
    """The statements that make this version's rows of the ``wanted`` periods exactly the ``incoming`` ones (a
    table of ``_incoming_query``'s columns): rows no longer computed are deleted, rows whose figures changed
    are updated, new rows are inserted; identical rows are left alone (a rebuild of unchanged history writes
    nothing; ``computed_at`` says when a row's figures last changed).

    Three set-based statements rather than one INSERT ... ON CONFLICT: that probes the unique index and locks
    every conflicting row one by one, even when nothing changed (4.2 s of 5.5 s for 155,774 unchanged rows);
    a hashed join compares them all at once. The NOT IN are hashed subplans whatever the estimates (NOT EXISTS
    became a nested loop over an unindexed side when the statistics still said it was empty)."""
    from sqlalchemy import delete, insert, update

    from portal.scorecards.models import FIGURE_COLUMNS, ScorecardSnapshot

    stored: Any = ScorecardSnapshot.__table__
    periods = [(kind, start) for kind, _, start, _ in wanted]
    this_version = and_(stored.c.tenant_id == tenant_id, stored.c.version == VERSION,
                        tuple_(stored.c.period, stored.c.period_start).in_(periods))  # fmt: skip
    stored_key = tuple_(stored.c.supplier_id, stored.c.period, stored.c.period_start)
    incoming_key = tuple_(incoming.c.supplier_id, incoming.c.period, incoming.c.period_start)
    gone = delete(stored).where(this_version, stored_key.not_in(select(*incoming_key.clauses)))
    changed = (
        update(stored)
        .where(this_version, stored.c.supplier_id == incoming.c.supplier_id, stored.c.period == incoming.c.period,
               stored.c.period_start == incoming.c.period_start,
               tuple_(*(stored.c[name] for name in FIGURE_COLUMNS)).is_distinct_from(
                   tuple_(*(incoming.c[name] for name in FIGURE_COLUMNS))))
        .values({**{name: incoming.c[name] for name in FIGURE_COLUMNS}, "computed_at": bindparam("computed_at")})
    )  # fmt: skip
    new = insert(stored).from_select(
        ["tenant_id", "supplier_id", "period", "period_start", "version", *FIGURE_COLUMNS, "computed_at"],
        select(literal(tenant_id), incoming.c.supplier_id, incoming.c.period, incoming.c.period_start,
               literal(VERSION), *(incoming.c[name] for name in FIGURE_COLUMNS), bindparam("computed_at"))
        .where(incoming_key.not_in(select(*stored_key.clauses).where(this_version)))
        # Stored period by period: the ranking reads one period's 5,000 rows from about 100 table pages
        # instead of one page per row or so (its statement 33 -> 22 ms).
        .order_by(incoming.c.period, incoming.c.period_start, incoming.c.supplier_id),
    )  # fmt: skip
    return [gone, changed, new]


def _score_column(settings: Any, figured: Any, float8: Any, numeric: Any) -> Any:
    """``row_scorer``'s score in SQL: the weighted mean of the scored figures that have data, rounded as
    ``tenths`` (NULL without any, or when they carry less than half of the weights)."""
    weighted = [(figured.c[name], int(settings.weights.get(WEIGHT_KEYS[name], 0))) for name in SCORED]
    weighted = [(value, weight) for value, weight in weighted if weight > 0]
    if not weighted:
        return cast(null(), numeric)
    # Python adds float(value) * weight in this order from 0.0, skipping figures without data: adding 0.0
    # instead changes no sum, so both give the same float.
    zero = cast(literal(0.0), float8)
    weighted_sum: Any = zero
    weight_total: Any = literal(0)
    for value, weight in weighted:
        weighted_sum = weighted_sum + func.coalesce(value * cast(literal(weight), float8), zero)
        weight_total = weight_total + case((value.is_(None), 0), else_=weight)
    mean = cast(weighted_sum / cast(weight_total, float8), numeric)
    all_weights = sum(weight for _, weight in weighted)
    return case((weight_total == 0, None), (~enough_weight(weight_total, all_weights), None), else_=func.round(mean, 1))


def _grade_column(settings: Any, score: Any, float8: Any) -> Any:
    """``row_scorer``'s grade in SQL: the first band (highest floor first) the rounded score reaches."""
    bands = sorted(((float(floor), str(grade)) for floor, grade in settings.grades), key=lambda band: -band[0])
    no_grade = cast(null(), String)
    if not bands:
        return no_grade
    return case(*((cast(score, float8) >= floor, cast(literal(label), String)) for floor, label in bands),
                else_=no_grade)  # fmt: skip


def _snapshot_columns() -> list[Any]:
    """A snapshot's figure columns in ``FIGURE_COLUMNS`` order (read as ``_snapshot_figures``)."""
    from portal.scorecards.models import FIGURE_COLUMNS, ScorecardSnapshot

    return [getattr(ScorecardSnapshot, name) for name in FIGURE_COLUMNS]


def _snapshot_figures(supplier_id: int, values: Any) -> Figures:
    from portal.scorecards.models import FIGURE_COLUMNS

    return Figures(supplier_id, **dict(zip(FIGURE_COLUMNS, values, strict=True)))


def stored_figures(
    session: Session, *, tenant_id: int, kind: str, window: Window, supplier_id: int | None = None
) -> dict[int, Figures] | None:
    """The snapshot of a closed period (None when it was never computed)."""
    from portal.scorecards.models import ScorecardSnapshot

    query = select(ScorecardSnapshot.supplier_id, *_snapshot_columns()).where(
        ScorecardSnapshot.tenant_id == tenant_id,
        ScorecardSnapshot.period == kind,
        ScorecardSnapshot.period_start == window.start,
        ScorecardSnapshot.version == VERSION,
    )
    if supplier_id is not None:
        exists = session.execute(query.with_only_columns(ScorecardSnapshot.supplier_id).limit(1)).first()
        if exists is None:
            return None
        query = query.where(ScorecardSnapshot.supplier_id == supplier_id)
    rows = session.execute(planned_per_run(query)).all()
    if not rows and supplier_id is None:
        return None
    return {supplier: _snapshot_figures(supplier, values) for supplier, *values in rows}


def trend(
    session: Session,
    *,
    tenant_id: int,
    supplier_id: int,
    kind: str,
    today: date,
    count: int = 12,
    current_figures: Figures | None = None,
) -> list[tuple[Window, Figures | None]]:
    """The last ``count`` periods, oldest first, the current one last: snapshots, then live
    (``current_figures``: the current period's, when the caller has them already)."""
    from portal.scorecards.models import ScorecardSnapshot

    windows = previous_periods(session, tenant_id, kind, today, count - 1)
    stored = {
        start: _snapshot_figures(supplier_id, values)
        for start, *values in session.execute(
            select(ScorecardSnapshot.period_start, *_snapshot_columns()).where(
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
        found = stored.get(window.start)
        if found is None:  # never snapshotted: computed now
            found = figures(session, tenant_id=tenant_id, window=window, supplier_id=supplier_id).get(supplier_id)
        points.append((window, found))
    current = tenant_window(session, tenant_id, kind, today, today)
    if current_figures is None:
        current_figures = figures(session, tenant_id=tenant_id, window=current, supplier_id=supplier_id).get(
            supplier_id
        )
    points.append((current, current_figures))
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
    session.info.setdefault("scorecard_settings", {})[tenant_id] = current
    actor.audit(
        session, "scorecard.settings_changed", tenant_id=tenant_id, object_type="scorecard_settings",
        object_id=current.id, before=before, after=values,
    )  # fmt: skip
