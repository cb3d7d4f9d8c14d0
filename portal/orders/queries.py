"""Read side of orders: the inbox with its tabs, and everything the order page shows,
each in a fixed number of queries whatever the number of rows."""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Date,
    Integer,
    Select,
    and_,
    bindparam,
    func,
    or_,
    select,
    true,
    union,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from portal.auth.models import User
from portal.db import plain_rows, planned_per_run, read_columns
from portal.orders.models import (
    FINAL_LINE_STATES,
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
    ShipNotice,
    ShipNoticeLine,
    ShipNoticeState,
    Source,
)
from portal.suppliers.models import Supplier
from portal.suppliers.services import supplier_filter
from portal.tenancy.models import Company, Warehouse
from portal.web import PortalContext

PAGE_SIZE = 50
OPEN_STATES = (OrderState.AWAITING_RESPONSE, OrderState.CHANGES_PENDING, OrderState.CONFIRMED, OrderState.SHIPPED)


# The inbox's tabs by the order states they hold; "late" also needs a due date before today.
TAB_STATES: dict[str, tuple[OrderState, ...]] = {
    "needs_response": (OrderState.AWAITING_RESPONSE,),
    "changes_pending": (OrderState.CHANGES_PENDING,),
    "open": (OrderState.CONFIRMED,),
    "late": OPEN_STATES,
    "shipped": (OrderState.SHIPPED, OrderState.RECEIVED),
    "closed": (OrderState.CLOSED, OrderState.CANCELLED, OrderState.REJECTED),
}
LATE_TABS = frozenset({"late"})


def tab_conditions(today: date | ColumnElement[date]) -> dict[str, Any]:
    conditions: dict[str, Any] = {}
    for tab, states in TAB_STATES.items():
        in_tab = PurchaseOrder.state == states[0] if len(states) == 1 else PurchaseOrder.state.in_(states)
        conditions[tab] = and_(PurchaseOrder.due_date < today, in_tab) if tab in LATE_TABS else in_tab
    return conditions


def tab_counts(by_state: dict[Any, tuple[int, int]]) -> dict[str, int]:
    """Each tab's count from the orders counted per state (all of them, and those due before today)."""
    counts = {
        tab: sum(by_state.get(state, (0, 0))[1 if tab in LATE_TABS else 0] for state in states)
        for tab, states in TAB_STATES.items()
    }
    counts["all"] = sum(total for total, _ in by_state.values())
    return counts


TAB_LABELS = {
    "needs_response": "Needs response",
    "changes_pending": "Changes pending",
    "open": "Open",
    "late": "Late",
    "shipped": "Shipped",
    "closed": "Closed",
    "all": "All",
}

SORTS = {
    "due": (PurchaseOrder.due_date.asc().nulls_last(), PurchaseOrder.id),
    # Latest first, orders without a due date before them: the index of a supplier's orders by due date read
    # backwards (with those without last, the biggest supplier's first page sorted 5,000 orders: 9.6 -> 1.0 ms).
    "-due": (PurchaseOrder.due_date.desc().nulls_first(), PurchaseOrder.id.desc()),
    "number": (PurchaseOrder.number,),
    "-date": (PurchaseOrder.order_date.desc(), PurchaseOrder.id.desc()),
    # Largest first, the later order first among equal values: a buyer's inbox reads its index backwards.
    "-value": (PurchaseOrder.total_value.desc(), PurchaseOrder.id.desc()),
}

# A buyer's tab of several states (late, shipped, closed) sorted by a date: each state's orders are read in that
# order from an index of the tenant's orders by state and date, and PostgreSQL merges the first ones of each
# (a Merge Append). The index by date alone, read until a page of the tab's states turned up, passed every order
# of the other states first: the closed orders latest first took 55 ms a page over 200,000 orders, 0.2 ms so.
MERGED_SORTS: dict[str, Any] = {
    "due": lambda c: (c.due_date.asc().nulls_last(), c.id),
    "-due": lambda c: (c.due_date.desc().nulls_first(), c.id.desc()),
    "-date": lambda c: (c.order_date.desc(), c.id.desc()),
}


@dataclass
class InboxFilters:
    tab: str = "needs_response"
    q: str = ""
    warehouse_id: int | None = None
    buyer_id: int | None = None
    supplier_id: int | None = None
    # A buyer's supplier search: a part of the code or of the name (a tenant may have thousands).
    supplier_q: str = ""
    due_from: date | None = None
    due_to: date | None = None
    sort: str = "due"
    page: int = 1
    errors: list[str] = field(default_factory=list)


def number_starts_with(prefix: str, dialect: str | None) -> ColumnElement[bool]:
    """Order numbers beginning with ``prefix`` (``%`` and ``_`` are characters). On PostgreSQL with bounds an
    index can answer: under row-level security it uses no index for LIKE, whose operator is not leakproof,
    but does for the pattern comparisons (``~>=~``, ``~<~``: byte order, the order numbers' text_pattern_ops
    index); LIKE stays, for SQLite and to say exactly what matches."""
    like = PurchaseOrder.number.startswith(prefix, autoescape=True)
    if dialect != "postgresql" or not prefix:
        return like
    last = ord(prefix[-1]) + 1
    last = 0xE000 if 0xD800 <= last <= 0xDFFF else last  # past the surrogates, which UTF-8 cannot hold
    bounds = [PurchaseOrder.number.op("~>=~", is_comparison=True)(prefix)]
    if last <= 0x10FFFF:
        bounds.append(PurchaseOrder.number.op("~<~", is_comparison=True)(prefix[:-1] + chr(last)))
    return and_(*bounds, like)


def _filter_conditions(
    filters: InboxFilters, context: PortalContext, session: Session | None = None
) -> list[ColumnElement[bool]]:
    """The conditions the inbox's filters add to its statements (none for an unfiltered inbox). With the
    ``session``, a supplier search is looked up first and the order number search gets its index bounds on
    PostgreSQL (see ``suppliers.services.supplier_filter`` and :func:`number_starts_with`)."""
    dialect = None if session is None else session.get_bind().dialect.name
    conditions: list[ColumnElement[bool]] = []
    if filters.warehouse_id:
        conditions.append(PurchaseOrder.warehouse_id == filters.warehouse_id)
    if filters.buyer_id:
        conditions.append(PurchaseOrder.buyer_id == filters.buyer_id)
    if context.supplier_id is None:  # a supplier's people see their own orders only
        conditions += supplier_filter(PurchaseOrder.supplier_id, tenant_id=context.tenant_id,
                                      supplier_id=filters.supplier_id, search=filters.supplier_q,
                                      session=session)  # fmt: skip
    if filters.due_from:
        conditions.append(PurchaseOrder.due_date >= filters.due_from)
    if filters.due_to:
        conditions.append(PurchaseOrder.due_date <= filters.due_to)
    if filters.q:
        # Order number prefix, any line with that product code (ours or the supplier's), or a ship notice's number
        # (scanned from its packing slip at goods receipt). One set of order ids from four index lookups: as
        # "number LIKE .. OR id IN (..)" PostgreSQL read every order of the tenant (a buyer's search took a
        # second over 200,000 orders).
        line, tenant, supplier = PurchaseOrderLine, context.tenant_id, context.supplier_id
        own = (line.supplier_id == supplier,) if supplier is not None else ()
        own_notice = (ShipNotice.supplier_id == supplier,) if supplier is not None else ()
        found = union(
            select(PurchaseOrder.id).where(PurchaseOrder.tenant_id == tenant, number_starts_with(filters.q, dialect)),
            select(line.order_id).where(line.tenant_id == tenant, line.product_code == filters.q, *own),
            select(line.order_id).where(line.tenant_id == tenant, line.supplier_product_code == filters.q, *own),
            select(ShipNotice.order_id).where(ShipNotice.tenant_id == tenant, ShipNotice.number == filters.q,
                                              *own_notice),
        )  # fmt: skip
        conditions.append(PurchaseOrder.id.in_(found))
    return conditions


# A buyer's inbox counts each tab of the tenant's orders up to this many: counting all 200,000 orders of a
# tenant took 45-60 ms a page, a tab beyond the cap shows "10,000+" (and pages up to it; filters narrow it).
COUNT_CAP = 10_000


@dataclass
class InboxPage:
    counts: dict[str, int]
    rows: list[Any]
    total: int
    pages: int
    # Counted up to this many (a buyer's inbox), or exactly (None: a supplier's own orders).
    cap: int | None = None

    @property
    def cap_label(self) -> str:
        return f"{self.cap:,}" if self.cap is not None else ""

    def count_label(self, tab: str) -> str:
        count = self.counts.get(tab, 0)
        return f"{self.cap_label}+" if self.cap is not None and count > self.cap else f"{count:,}"

    @property
    def capped(self) -> bool:
        """Whether the tab shown has more orders than it counted (its pages end at the cap)."""
        return self.cap is not None and self.total > self.cap


def _inbox_statements(
    filters: InboxFilters, context: PortalContext, conditions: list[ColumnElement[bool]]
) -> tuple[Select[Any], Select[Any]]:
    """The tab counts (one grouped query) and the page query for this tab and sort with the filters'
    ``conditions``, with the tenant, supplier, day, page size and offset as bound parameters."""
    scoped = context.supplier_id is not None
    base = select(PurchaseOrder).where(PurchaseOrder.tenant_id == bindparam("tenant_id"), *conditions)
    if scoped:
        base = base.where(PurchaseOrder.supplier_id == bindparam("supplier_id"))
    today = bindparam("today", type_=Date)
    tabs = tab_conditions(today)
    if scoped:
        # One supplier's orders, counted per state (a few rows; the tabs are sums of them): one comparison
        # per order where seven filtered counts made fifteen (a 5,000-order supplier: 1.1 ms instead of 1.5).
        counted = cast(
            Select[Any],
            base.with_only_columns(
                PurchaseOrder.state, func.count(), func.count().filter(PurchaseOrder.due_date < today)
            ).group_by(PurchaseOrder.state),
        )
    else:
        # The tenant's orders: each tab counted on its own up to the cap (one more row tells it is over),
        # each from the index of the tenant's orders by state.
        cap = bindparam("count_cap", type_=Integer)

        def capped(condition: Any) -> Any:
            limited = base.with_only_columns(PurchaseOrder.id).where(condition).limit(cap).subquery()
            return select(func.count()).select_from(limited).scalar_subquery()

        counted = select(*(capped(tabs[tab]).label(tab) for tab in TAB_STATES), capped(true()).label("all"))
    shown = (
        PurchaseOrder.id,
        PurchaseOrder.number,
        PurchaseOrder.order_date,
        PurchaseOrder.due_date,
        PurchaseOrder.state,
        PurchaseOrder.total_value,
        PurchaseOrder.currency,
        PurchaseOrder.version,
        Warehouse.name.label("warehouse"),
        Supplier.name.label("supplier"),
        User.name.label("buyer"),
    )
    states = TAB_STATES.get(filters.tab, ())
    if not scoped and not conditions and len(states) > 1 and filters.sort in MERGED_SORTS:
        ordered = MERGED_SORTS[filters.sort]
        late = (PurchaseOrder.due_date < today,) if filters.tab in LATE_TABS else ()
        # Each state's first (offset + limit) orders, merged in order; the page's rows joined to their names.
        # Each part a subquery of its own: SQLite refuses ORDER BY and LIMIT on the parts of a compound SELECT
        # (PostgreSQL plans both forms alike).
        firsts = [
            select(
                *base.with_only_columns(PurchaseOrder.id, PurchaseOrder.due_date, PurchaseOrder.order_date)
                .where(PurchaseOrder.state == state, *late)
                .order_by(*ordered(PurchaseOrder))
                .limit(bindparam("reach", type_=Integer))
                .subquery(f"first_{state.value}")
                .c
            )
            for state in states
        ]
        picked = union_all(*firsts).subquery("picked")
        order_by = ordered(picked.c)
        rows = (
            select(*shown)
            .select_from(picked)
            .join(
                PurchaseOrder, and_(PurchaseOrder.id == picked.c.id, PurchaseOrder.tenant_id == bindparam("tenant_id"))
            )
        )
    else:
        order_by = SORTS.get(filters.sort, SORTS["due"])
        rows = (base.where(tabs[filters.tab]) if filters.tab in tabs else base).with_only_columns(*shown)
    page_stmt = cast(
        Select[Any],
        (
            rows.join(Warehouse, Warehouse.id == PurchaseOrder.warehouse_id)
            .join(Supplier, Supplier.id == PurchaseOrder.supplier_id)
            .outerjoin(User, User.id == PurchaseOrder.buyer_id)
            .order_by(*order_by)
            .limit(bindparam("limit", type_=Integer))
            .offset(bindparam("offset", type_=Integer))
        ),
    )
    # The page is planned for each run: whether to follow an index of the supplier's orders or to sort the ones
    # that match depends on how many there are. A generic plan made for the average supplier (40 orders) may
    # sort all 5,000 orders of the biggest one: seen at 8.8 ms instead of 0.3 ms.
    page_stmt = planned_per_run(page_stmt)
    if conditions or not scoped:
        # Counted over a search or filter, or over the whole tenant for a buyer: planned for how many match.
        # One supplier's unfiltered counts have one plan whatever its size (its orders' index by state).
        counted = planned_per_run(counted)
    return counted, page_stmt


# The inbox without filters (how it is opened nearly every time), per tab, sort and whether the viewer is a
# supplier: built once, as building the statements cost more than running them (1.2 ms of CPU a request).
_UNFILTERED_INBOX: dict[tuple[str, str, bool], tuple[Select[Any], Select[Any]]] = {}


def _statements(session: Session, context: PortalContext, filters: InboxFilters) -> tuple[Select[Any], Select[Any]]:
    conditions = _filter_conditions(filters, context, session)
    shape = (filters.tab, filters.sort, context.supplier_id is not None)
    statements = None if conditions else _UNFILTERED_INBOX.get(shape)
    if statements is None:
        statements = _inbox_statements(filters, context, conditions)
        if not conditions:
            _UNFILTERED_INBOX[shape] = statements
    return statements


def _counts(session: Session, context: PortalContext, counted: Select[Any], params: dict[str, Any]) -> dict[str, int]:
    if context.supplier_id is not None:
        by_state = read_columns(session, counted, params)
        return tab_counts({state: (total, due) for state, total, due in by_state})
    return dict(read_columns(session, counted, params).one()._mapping)


def inbox_counts(session: Session, context: PortalContext, today: date) -> InboxPage:
    """The inbox's tab counts alone (its one counting statement), as the tabs show them: the home page's
    figures link to those tabs and agree with them. The page has no rows."""
    counted, _ = _statements(session, context, InboxFilters(tab="all"))
    params = {"tenant_id": context.tenant_id, "supplier_id": context.supplier_id, "today": today,
              "count_cap": COUNT_CAP + 1}  # fmt: skip
    counts = _counts(session, context, counted, params)
    return InboxPage(counts, [], counts["all"], 1, None if context.supplier_id is not None else COUNT_CAP)


def inbox(session: Session, context: PortalContext, filters: InboxFilters, today: date) -> InboxPage:
    """Tab counts (one grouped query) and one page of orders with their names (one query)."""
    counted, page_stmt = _statements(session, context, filters)
    params = {"tenant_id": context.tenant_id, "supplier_id": context.supplier_id, "today": today,
              "limit": PAGE_SIZE, "offset": (filters.page - 1) * PAGE_SIZE, "count_cap": COUNT_CAP + 1,
              "reach": filters.page * PAGE_SIZE}  # fmt: skip
    cap = None if context.supplier_id is not None else COUNT_CAP
    counts = _counts(session, context, counted, params)
    rows = plain_rows(read_columns(session, page_stmt, params))
    total = counts.get(filters.tab, counts["all"]) if filters.tab in counts else counts["all"]
    paged = total if cap is None else min(total, cap)
    return InboxPage(counts, rows, total, max(1, -(-paged // PAGE_SIZE)), cap)


@dataclass(frozen=True)
class TimelineEvent:
    """A change request's step in a line's history, beside the ledger's commitments (which it reads like): what the
    supplier asked for, and what the buyer answered when the answer made no commitment (a counter, a rejection,
    an approved price)."""

    created_at: datetime
    kind: str
    schedules: list[dict[str, Any]]
    reason_code: str
    comment: str
    actor: str
    source: Source
    price: Any = None
    previous: None = None
    request_step: bool = True  # the history tells these from the ledger's entries


# How the page names a request's steps: what the supplier asked (by kind), what its answer was (by kind), and
# the buyer's decisions that commit nothing.
_ASKED = {ChangeKind.COMMITMENT: "proposed", ChangeKind.REJECT: "asked to reject", ChangeKind.PRICE: "proposed a price"}
ANSWER_NOUNS = {ChangeKind.COMMITMENT: "proposal", ChangeKind.REJECT: "rejection", ChangeKind.PRICE: "price change"}
TURNED_DOWN = {ChangeState.COUNTERED: "countered", ChangeState.REJECTED: "turned down"}


@dataclass
class OrderView:
    order: PurchaseOrder
    lines: list[PurchaseOrderLine]
    schedules: dict[int, list[DeliverySchedule]]
    ledger: dict[int, list[CommitmentEntry]]
    requests: list[ChangeRequest]
    notices: list[tuple[ShipNotice, list[ShipNoticeLine]]]
    messages: list[OrderMessage]
    warehouse: Warehouse
    supplier: Supplier
    # ERP sync state per line (lines that came from the ERP) and the line's open alerts.
    syncs: dict[int, Any] = field(default_factory=dict)
    alerts: dict[int, list[Any]] = field(default_factory=dict)
    # Who asked for and who decided each change request (their e-mail addresses), by request id.
    request_people: dict[int, tuple[str, str]] = field(default_factory=dict)
    # The files attached to each message, by message id.
    message_files: dict[int, list[OrderMessageFile]] = field(default_factory=dict)
    # The buying company's name; the buyer's name (their e-mail address when they gave none) and address, or "".
    company_name: str = ""
    buyer_name: str = ""
    buyer_email: str = ""

    def receipt_notices(self, line_id: int) -> list[ShipNotice]:
        """The notices (not cancelled) that ship the line: what a receipt of it may name."""
        return [
            notice
            for notice, items in self.notices
            if notice.state != ShipNoticeState.CANCELLED and any(item.line_id == line_id for item in items)
        ]

    def timeline(self, line_id: int) -> list[Any]:
        """The line's history, oldest first: the ledger's commitments and the change requests' steps that
        made none (the supplier's proposals, the buyer's counters and refusals, approved prices)."""
        events: list[Any] = list(self.ledger.get(line_id, []))
        for r in self.requests:
            if r.line_id != line_id:
                continue
            asked_by, decided_by = self.request_people.get(r.id, ("", ""))
            # A price change carries the deliveries as they were (it changes no quantity or date): the price only.
            asked = [] if r.kind == ChangeKind.PRICE else (r.proposed_schedules or [])
            events.append(TimelineEvent(r.created_at, _ASKED[r.kind], asked, r.reason_code, r.comment, asked_by,
                                        r.source, r.proposed_price))  # fmt: skip
            decided = TURNED_DOWN.get(r.state)
            if decided is None and r.state == ChangeState.APPROVED and r.kind == ChangeKind.PRICE:
                decided = "approved the price"  # an approved quantity or date is the ledger's own entry
            if decided is not None and r.decided_at is not None:
                price = r.proposed_price if r.kind == ChangeKind.PRICE else None
                events.append(TimelineEvent(r.decided_at, decided, [], "", r.decision_comment, decided_by,
                                            Source.PORTAL, price))  # fmt: skip
        return sorted(events, key=lambda event: event.created_at)

    def open_requests(self) -> list[ChangeRequest]:
        return [r for r in self.requests if r.state == ChangeState.OPEN]

    def answer_turned_down(self, line_id: int) -> ChangeRequest | None:
        """The line's latest change request when the buyer rejected or countered it and the supplier has not
        answered since (the page shows what the buyer said where the supplier answers again)."""
        latest = next((r for r in self.requests if r.line_id == line_id), None)  # newest first
        if latest is None or latest.state not in TURNED_DOWN:
            return None
        entries = self.ledger.get(line_id, [])
        answered_since = latest.decided_at is not None and entries and entries[-1].created_at > latest.decided_at
        return None if answered_since else latest

    def committed(self, line_id: int) -> Any:
        return sum((s.quantity for s in self.schedules.get(line_id, []) if s.active), 0)

    def first_promise(self, line_id: int) -> date | None:
        """The first promise to the line's terms as they are: a buyer's revision starts the promises afresh."""
        entries = self.ledger.get(line_id, [])
        revised = [index for index, e in enumerate(entries) if e.kind == "revised"]
        entries = [e for e in entries[revised[-1] + 1 if revised else 0 :] if e.schedules]
        return min((date.fromisoformat(d["date"]) for d in entries[0].schedules), default=None) if entries else None


class _OrderPageStatements:
    """The order page's statements, built once with the tenant and the order as bound parameters (building
    them for every page cost about a millisecond of CPU, as much as running several of them)."""

    def __init__(self) -> None:
        from portal.erp.models import ErpLineSync
        from portal.orders.models import LineAlert

        tenant, order = bindparam("tenant_id", type_=BigInteger), bindparam("order_id", type_=BigInteger)
        self.lines = (
            select(PurchaseOrderLine)
            .where(PurchaseOrderLine.order_id == order, PurchaseOrderLine.tenant_id == tenant)
            .order_by(PurchaseOrderLine.position)
        )
        self.schedules = (
            select(DeliverySchedule)
            .where(DeliverySchedule.tenant_id == tenant,
                   DeliverySchedule.line_id.in_(bindparam("line_ids", expanding=True)))
            .order_by(DeliverySchedule.line_id, DeliverySchedule.position)
        )  # fmt: skip
        self.ledger = (
            select(CommitmentEntry)
            .where(CommitmentEntry.tenant_id == tenant, CommitmentEntry.order_id == order)
            .order_by(CommitmentEntry.id)
        )
        asked_by, decided_by = aliased(User), aliased(User)
        self.requests = (
            select(ChangeRequest, asked_by.email, decided_by.email)
            .outerjoin(asked_by, asked_by.id == ChangeRequest.created_by_id)
            .outerjoin(decided_by, decided_by.id == ChangeRequest.decided_by_id)
            .where(ChangeRequest.tenant_id == tenant, ChangeRequest.order_id == order)
            .order_by(ChangeRequest.id.desc())
        )
        self.notices = (
            select(ShipNotice, ShipNoticeLine)
            .join(ShipNoticeLine, ShipNoticeLine.notice_id == ShipNotice.id)
            .where(ShipNotice.tenant_id == tenant, ShipNotice.order_id == order)
            .order_by(ShipNotice.id, ShipNoticeLine.id)
        )
        # Each message with its files, if any (one row per file): no statement more for them.
        self.messages = (
            select(OrderMessage, OrderMessageFile)
            .outerjoin(OrderMessageFile, and_(OrderMessageFile.message_id == OrderMessage.id,
                                              OrderMessageFile.tenant_id == tenant))
            .where(OrderMessage.tenant_id == tenant, OrderMessage.order_id == order)
            .order_by(OrderMessage.id, OrderMessageFile.id)
        )  # fmt: skip
        # The parties with the places: the buying company (the legal entity the order binds) and the buyer, whom
        # the supplier contacts about it, as any purchase order names them.
        self.places = (
            select(Warehouse, Supplier, Company.name, User.name, User.email)
            .select_from(PurchaseOrder)
            .join(Warehouse, Warehouse.id == PurchaseOrder.warehouse_id)
            .join(Supplier, Supplier.id == PurchaseOrder.supplier_id)
            .join(Company, and_(Company.id == PurchaseOrder.company_id, Company.tenant_id == tenant))
            .outerjoin(User, User.id == PurchaseOrder.buyer_id)
            .where(PurchaseOrder.id == order, PurchaseOrder.tenant_id == tenant)
        )
        self.syncs = select(ErpLineSync).where(ErpLineSync.tenant_id == tenant, ErpLineSync.order_id == order)
        self.alerts = (
            select(LineAlert)
            .where(LineAlert.tenant_id == tenant, LineAlert.order_id == order, LineAlert.resolved_at.is_(None))
            .order_by(LineAlert.kind)
        )


@functools.cache
def _order_page_statements() -> _OrderPageStatements:
    return _OrderPageStatements()


def order_view(session: Session, order: PurchaseOrder) -> OrderView:
    """Everything the order page shows, in a fixed number of queries (eight, nine for ERP orders)."""
    statements = _order_page_statements()
    params: dict[str, Any] = {"tenant_id": order.tenant_id, "order_id": order.id}
    lines = list(session.execute(statements.lines, params).scalars())
    schedules: dict[int, list[DeliverySchedule]] = defaultdict(list)
    for s in session.execute(statements.schedules, {**params, "line_ids": [line.id for line in lines]}).scalars():
        schedules[s.line_id].append(s)
    ledger: dict[int, list[CommitmentEntry]] = defaultdict(list)
    for e in session.execute(statements.ledger, params).scalars():
        ledger[e.line_id].append(e)
    requests, request_people = [], {}
    for request, asked_by, decided_by in session.execute(statements.requests, params).all():
        requests.append(request)
        request_people[request.id] = (asked_by or "", decided_by or "")
    grouped: dict[int, tuple[ShipNotice, list[ShipNoticeLine]]] = {}
    for notice, item in session.execute(statements.notices, params).all():
        grouped.setdefault(notice.id, (notice, []))[1].append(item)
    messages: dict[int, OrderMessage] = {}
    message_files: dict[int, list[OrderMessageFile]] = defaultdict(list)
    for message, attached in session.execute(statements.messages, params).all():
        messages.setdefault(message.id, message)
        if attached is not None:
            message_files[message.id].append(attached)
    warehouse, supplier, company_name, buyer_name, buyer_email = session.execute(statements.places, params).one()
    syncs = {}
    if order.erp_ref:
        syncs = {sync.line_id: sync for sync in session.execute(statements.syncs, params).scalars()}
    alerts: dict[int, list[Any]] = defaultdict(list)
    for alert in session.execute(statements.alerts, params).scalars():
        alerts[alert.line_id].append(alert)
    return OrderView(
        order, lines, schedules, ledger, requests, list(grouped.values()), list(messages.values()), warehouse,
        supplier, syncs, alerts, request_people, message_files,
        company_name=company_name,
        buyer_name=buyer_name or buyer_email or "",
        buyer_email=buyer_email or "",
    )  # fmt: skip


@dataclass(frozen=True)
class OrderParties:
    """Who an order binds and where it goes: what a printed document's header names."""

    warehouse: Warehouse
    supplier: Supplier
    company_name: str
    buyer_name: str


def order_parties(session: Session, order: PurchaseOrder) -> OrderParties:
    """The order's ship-to, supplier, company and buyer, in the order page's one statement for them."""
    params = {"tenant_id": order.tenant_id, "order_id": order.id}
    warehouse, supplier, company_name, buyer_name, buyer_email = session.execute(
        _order_page_statements().places, params
    ).one()
    return OrderParties(warehouse, supplier, company_name, buyer_name or buyer_email or "")


def message_file(session: Session, order: PurchaseOrder, message_id: int, file_id: int) -> OrderMessageFile | None:
    """A file attached to a message on ``order`` (already loaded through the tenant and the supplier account):
    looked for only among that order's messages, so an id alone reaches nothing."""
    return session.execute(
        select(OrderMessageFile).where(
            OrderMessageFile.tenant_id == order.tenant_id,
            OrderMessageFile.order_id == order.id,
            OrderMessageFile.message_id == message_id,
            OrderMessageFile.id == file_id,
        )
    ).scalar_one_or_none()


def ship_notice_with_lines(
    session: Session, order: PurchaseOrder, notice_id: int
) -> tuple[ShipNotice, list[Any]] | None:
    """A ship notice of ``order`` (already loaded through the tenant and the supplier account) with what it
    ships, line by line in the order's sequence (position, product codes and name, unit, ordered and shipped
    quantities): what its packing slip lists. Looked for only among that order's notices."""
    notice = session.execute(
        select(ShipNotice).where(
            ShipNotice.tenant_id == order.tenant_id, ShipNotice.order_id == order.id, ShipNotice.id == notice_id
        )
    ).scalar_one_or_none()
    if notice is None:
        return None
    line = PurchaseOrderLine
    items = session.execute(
        select(line.position, line.product_code, line.product_name, line.supplier_product_code, line.unit,
               line.quantity.label("ordered"), ShipNoticeLine.quantity.label("shipped"))
        .join(line, and_(line.id == ShipNoticeLine.line_id, line.tenant_id == order.tenant_id))
        .where(ShipNoticeLine.tenant_id == order.tenant_id, ShipNoticeLine.notice_id == notice.id)
        .order_by(line.position, ShipNoticeLine.id)
    ).all()  # fmt: skip
    return notice, list(items)


ARRIVALS_PER_PAGE = 50


@dataclass
class ArrivalFilters:
    warehouse_id: int | None = None
    supplier_id: int | None = None
    supplier_q: str = ""
    arriving_from: date | None = None
    arriving_to: date | None = None
    page: int = 1


@dataclass
class ArrivalsPage:
    rows: list[Any]
    total: int
    overdue: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // ARRIVALS_PER_PAGE))


def arrivals(session: Session, context: PortalContext, filters: ArrivalFilters, today: date) -> ArrivalsPage:
    """Shipments on their way: the ship notices sent and not yet received (``services.settle_ship_notices``)
    or cancelled, the soonest expected first, with their order, supplier, ship-to, carrier and what they hold;
    a supplier's people see their own. Counted, with the overdue ones (expected before ``today``), in one
    statement, the page's rows read in another; both find the notices through one index (migration 0035)."""
    notice = ShipNotice
    conditions = [notice.tenant_id == context.tenant_id, notice.state == ShipNoticeState.SENT]
    if context.supplier_id is not None:
        conditions.append(notice.supplier_id == context.supplier_id)
    else:
        conditions += supplier_filter(
            notice.supplier_id, tenant_id=context.tenant_id, supplier_id=filters.supplier_id,
            search=filters.supplier_q, session=session,
        )  # fmt: skip
    if filters.arriving_from:
        conditions.append(notice.expected_arrival >= filters.arriving_from)
    if filters.arriving_to:
        conditions.append(notice.expected_arrival <= filters.arriving_to)
    if filters.warehouse_id:
        in_warehouse = select(PurchaseOrder.id).where(
            PurchaseOrder.tenant_id == context.tenant_id, PurchaseOrder.warehouse_id == filters.warehouse_id
        )
        conditions.append(notice.order_id.in_(in_warehouse))
    total, overdue = session.execute(
        select(func.count(), func.count().filter(notice.expected_arrival < today)).where(*conditions)
    ).one()
    if not total:
        return ArrivalsPage([], 0, 0)
    page = min(filters.page, max(1, -(-total // ARRIVALS_PER_PAGE)))
    # Each notice's lines counted beside it (50 index lookups), not every notice line of the tenant grouped:
    # all of them, those whose goods have all arrived, and those of which some have.
    item = ShipNoticeLine

    def lines_where(*conditions: Any) -> Any:
        return (
            select(func.count())
            .where(item.tenant_id == context.tenant_id, item.notice_id == notice.id, *conditions)
            .scalar_subquery()
        )

    lines = lines_where()
    lines_arrived = lines_where(item.received_quantity >= item.quantity)
    lines_arriving = lines_where(item.received_quantity > 0, item.received_quantity < item.quantity)
    # The page's notices are chosen from the notices alone, in the index's order, then joined to their orders,
    # suppliers and ship-tos (as the exceptions choose their lines first).
    chosen = (
        select(notice.id)
        .where(*conditions)
        .order_by(notice.expected_arrival, notice.id)
        .limit(ARRIVALS_PER_PAGE)
        .offset((page - 1) * ARRIVALS_PER_PAGE)
        .subquery("chosen")
    )
    rows = session.execute(
        select(notice.id, notice.number, notice.ship_date, notice.expected_arrival, notice.carrier,
               notice.tracking_number, notice.packing_slip, PurchaseOrder.id.label("order_id"),
               PurchaseOrder.number.label("order_number"), Supplier.name.label("supplier"),
               Warehouse.name.label("warehouse"), lines.label("lines"), lines_arrived.label("lines_arrived"),
               lines_arriving.label("lines_arriving"))
        .select_from(chosen)
        .join(notice, and_(notice.id == chosen.c.id, notice.tenant_id == context.tenant_id))
        .join(PurchaseOrder, and_(PurchaseOrder.id == notice.order_id, PurchaseOrder.tenant_id == context.tenant_id))
        .join(Supplier, Supplier.id == notice.supplier_id)
        .join(Warehouse, Warehouse.id == PurchaseOrder.warehouse_id)
        .order_by(notice.expected_arrival, notice.id)
    ).all()  # fmt: skip
    return ArrivalsPage(list(rows), int(total), int(overdue))


EXCEPTION_KINDS = {
    "late": "Late",
    "at_risk": "At risk",
    "partially_received": "Partially received",
    "unconfirmed": "Unconfirmed",
}


@dataclass
class ExceptionFilters:
    kind: str = ""
    supplier_id: int | None = None
    supplier_q: str = ""
    company_id: int | None = None
    warehouse_id: int | None = None
    buyer_id: int | None = None


EXCEPTIONS_SHOWN = 200
EXCEPTIONS_EXPORTED = 20_000


def exceptions(
    session: Session,
    context: PortalContext,
    filters: ExceptionFilters,
    today: date,
    unconfirmed_after_days: int,
    limit: int = EXCEPTIONS_SHOWN,
) -> list[Any]:
    """Open lines that need the buyer, with their kinds, ranked by value at risk (one query; the first
    ``limit``: the page shows 200, its CSV up to 20,000).

    late: the promised date of a delivery not yet complete has passed (``open_from``);
    at_risk: a promise is later than the requested date; partially_received: received
    some but not all; unconfirmed: still unanswered N days after the order date.
    """
    from datetime import timedelta

    from portal.orders.models import DELIVERING_LINE_STATES, EXCEPTION_LINE_STATES

    line = PurchaseOrderLine
    # The promises' earliest and latest dates are kept on the line (``promised_from``/``promised_to``).
    delivering = and_(line.state.in_(DELIVERING_LINE_STATES), line.received_quantity < line.quantity)
    # Late against the earliest delivery not yet complete (``open_from``): one that arrived in full is not late.
    late = and_(delivering, line.open_from < today)
    at_risk = and_(delivering, line.promised_to > line.requested_date)
    # Some received, not all: partially received, or waiting for the buyer's decision on a change meanwhile.
    partial = and_(delivering, line.received_quantity > 0)
    unconfirmed = and_(
        line.state == LineState.AWAITING_RESPONSE,
        # A line added to the order later, or revised by the buyer, was asked for on its own day.
        func.coalesce(line.asked_on, PurchaseOrder.order_date) <= today - timedelta(days=unconfirmed_after_days),
    )
    kinds = {"late": late, "at_risk": at_risk, "partially_received": partial, "unconfirmed": unconfirmed}
    value_at_risk = (line.quantity - line.received_quantity) * line.unit_price
    # The page's lines are chosen first, then joined to their orders, suppliers and ship-tos: PostgreSQL may
    # expect far fewer late lines than there are (the late ones: 134-140 -> 199-248 ms when it joined them all
    # before sorting; chosen first, 105-107 ms). The choice reads the lines alone unless a filter or the kind
    # needs their orders.
    chosen = (
        select(line.id.label("line_id"), value_at_risk.label("value_at_risk"))
        # The open lines only (a partial index of them; the kinds below imply it, PostgreSQL needs it said).
        .where(line.tenant_id == context.tenant_id, line.state.in_(EXCEPTION_LINE_STATES))
        .where(kinds[filters.kind] if filters.kind in kinds else or_(*kinds.values()))
    )
    chosen = chosen.where(*supplier_filter(line.supplier_id, tenant_id=context.tenant_id,
                                           supplier_id=filters.supplier_id, search=filters.supplier_q,
                                           session=session))  # fmt: skip
    by_order = {PurchaseOrder.warehouse_id: filters.warehouse_id, PurchaseOrder.company_id: filters.company_id,
                PurchaseOrder.buyer_id: filters.buyer_id}  # fmt: skip
    if filters.kind not in ("late", "at_risk", "partially_received") or any(by_order.values()):
        chosen = chosen.join(PurchaseOrder, PurchaseOrder.id == line.order_id)
        chosen = chosen.where(*(column == value for column, value in by_order.items() if value))
    top = chosen.order_by(value_at_risk.desc(), line.id).limit(limit).subquery("top")
    stmt = (
        select(
            line.id,
            line.position,
            line.product_code,
            line.product_name,
            line.quantity,
            line.received_quantity,
            line.requested_date,
            line.promised_from,
            line.promised_to,
            line.open_from,
            line.state,
            line.update_asked_at,
            PurchaseOrder.id.label("order_id"),
            PurchaseOrder.number,
            PurchaseOrder.currency,
            Supplier.name.label("supplier"),
            Warehouse.name.label("warehouse"),
            User.name.label("buyer"),
            top.c.value_at_risk,
            *[cond.label(name) for name, cond in kinds.items()],
        )
        .select_from(top)
        .join(line, and_(line.id == top.c.line_id, line.tenant_id == context.tenant_id))
        .join(PurchaseOrder, PurchaseOrder.id == line.order_id)
        .join(Supplier, Supplier.id == line.supplier_id)
        .join(Warehouse, Warehouse.id == PurchaseOrder.warehouse_id)
        .outerjoin(User, User.id == PurchaseOrder.buyer_id)
        .order_by(top.c.value_at_risk.desc(), line.id)
    )
    return plain_rows(read_columns(session, planned_per_run(stmt)))


QUEUE_SIZE = 200


def response_queue(
    session: Session, tenant_id: int, buyer_id: int | None = None
) -> tuple[list[Any], list[Any], list[Any]]:
    """The buyers' queue: open change requests with their line and order (oldest first), lines a buyer changed
    in the ERP after the supplier answered (the oldest first), and orders awaiting their supplier's answer (the
    longest-waiting first); of one buyer's orders when ``buyer_id`` is given. All are planned for how many the
    tenant has."""
    from portal.erp.models import ErpLineSync

    # Each list is of orders, so one buyer's part of it is the orders placed by that buyer.
    of_buyer = [PurchaseOrder.buyer_id == buyer_id] if buyer_id else []

    changes = session.execute(
        planned_per_run(
            select(
                ChangeRequest,
                PurchaseOrder.number,
                PurchaseOrder.version,
                PurchaseOrderLine.position,
                PurchaseOrderLine.product_name,
                PurchaseOrderLine.quantity,
                PurchaseOrderLine.requested_date,
                PurchaseOrderLine.unit_price,
                Supplier.name,
            )
            .join(PurchaseOrder, PurchaseOrder.id == ChangeRequest.order_id)
            .join(PurchaseOrderLine, PurchaseOrderLine.id == ChangeRequest.line_id)
            .join(Supplier, Supplier.id == ChangeRequest.supplier_id)
            .where(ChangeRequest.tenant_id == tenant_id, ChangeRequest.state == ChangeState.OPEN, *of_buyer)
            .order_by(ChangeRequest.created_at)
            .limit(QUEUE_SIZE)
        )
    ).all()
    revisions = read_columns(
        session,
        planned_per_run(
            select(
                ErpLineSync.revised_terms,
                PurchaseOrderLine.id.label("line_id"),
                PurchaseOrderLine.position,
                PurchaseOrderLine.product_name,
                PurchaseOrderLine.quantity,
                PurchaseOrderLine.requested_date,
                PurchaseOrderLine.unit_price,
                PurchaseOrderLine.state,
                PurchaseOrder.id.label("order_id"),
                PurchaseOrder.number,
                Supplier.name.label("supplier"),
            )
            .join(PurchaseOrderLine, PurchaseOrderLine.id == ErpLineSync.line_id)
            .join(PurchaseOrder, PurchaseOrder.id == ErpLineSync.order_id)
            .join(Supplier, Supplier.id == PurchaseOrder.supplier_id)
            .where(
                ErpLineSync.tenant_id == tenant_id,
                ErpLineSync.revised_terms.is_not(None),
                PurchaseOrderLine.state.not_in(FINAL_LINE_STATES),
                *of_buyer,
            )
            .order_by(ErpLineSync.id)
            .limit(QUEUE_SIZE)
        ),
    )
    # An order's wait counts from the day its longest-unanswered line was asked (the order date, unless the
    # line was added later or revised).
    asked = (
        select(func.min(func.coalesce(PurchaseOrderLine.asked_on, PurchaseOrder.order_date)))
        .where(
            PurchaseOrderLine.tenant_id == tenant_id,
            PurchaseOrderLine.order_id == PurchaseOrder.id,
            PurchaseOrderLine.state == LineState.AWAITING_RESPONSE,
        )
        .scalar_subquery()
    )
    awaiting = read_columns(
        session,
        planned_per_run(
            select(
                PurchaseOrder.id,
                PurchaseOrder.number,
                PurchaseOrder.order_date,
                asked.label("asked_on"),
                PurchaseOrder.total_value,
                PurchaseOrder.currency,
                Supplier.name.label("supplier"),
                User.name.label("buyer"),
                PurchaseOrder.reminded_at,
                PurchaseOrder.reminder_count,
            )
            .join(Supplier, Supplier.id == PurchaseOrder.supplier_id)
            .outerjoin(User, User.id == PurchaseOrder.buyer_id)
            .where(PurchaseOrder.tenant_id == tenant_id, PurchaseOrder.state == OrderState.AWAITING_RESPONSE, *of_buyer)
            .order_by(PurchaseOrder.order_date, PurchaseOrder.id)
            .limit(QUEUE_SIZE)
        ),
    )
    return list(changes), plain_rows(revisions), plain_rows(awaiting)
