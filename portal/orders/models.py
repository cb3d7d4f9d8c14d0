"""Purchase orders, their lines, the supplier's commitments and what follows.

Line states (one line, from the supplier's first answer to the end)::

    awaiting_response --answer inside tolerance------------------> confirmed
    awaiting_response --answer outside tolerance, price, reject--> changes_pending
    changes_pending   --buyer approves----------------------------> confirmed (or rejected), or as below
    changes_pending   --buyer rejects or counters-----------------> back to the state before the request
    confirmed         --new date inside tolerance-----------------> confirmed (ledger keeps the old promise)
    confirmed         --new date outside tolerance----------------> changes_pending
    confirmed         --ship notice for part / all----------------> partially_shipped / shipped
    shipped, partially_shipped --receipts (ERP or import)---------> partially_received / received
    partially_received --ship notice, new promise for the rest----> partially_received
    any open state    --buyer cancels-----------------------------> cancelled
    any open state    --buyer revises the line--------------------> awaiting_response
    received, rejected --buyer closes-----------------------------> closed

``closed`` and ``cancelled`` are final: nothing changes afterwards. The order's
state is derived from its lines (see ``services.derive_order_state``).

Once answered, a line is where its quantities put it (``services.line_state_from_quantities``:
received in part or in full once goods arrived, else shipped in part or all of what is
committed, else confirmed), after any change: a receipt, a ship notice sent or cancelled,
a new promise (one cut to what has shipped leaves the line shipped), a decision. A line
waiting for the buyer stays ``changes_pending`` whatever ships or arrives meanwhile; the
decision then places it by its quantities (an unanswered line with goods received is
received, as a receipt makes it). A line revised after goods shipped or arrived against it
keeps them committed (``services.revise_line``) and waits for the supplier's answer to its
new terms whatever arrives meanwhile; the answer places it by its quantities.

Invariants kept by ``portal.orders.services`` and checked by a Hypothesis state
machine: committed quantity <= ordered quantity x (1 + over-delivery tolerance);
shipped <= committed; every change of a commitment writes exactly one ledger
entry and one audit entry, and an outbox event in the same transaction; a line is
``changes_pending`` exactly while a change request of it is open, and otherwise in
the state its quantities give (or, revised after goods went out, waiting for an answer with
exactly what the revision kept committed).
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.db import Base, BigID, TenantOwned, str_enum, utcnow
from portal.outbox import OutboxEvent as OutboxEvent  # re-exported: written by every order change

Quantity = Numeric(14, 3)
Money = Numeric(14, 4)


class LineState(enum.StrEnum):
    AWAITING_RESPONSE = "awaiting_response"
    CHANGES_PENDING = "changes_pending"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    PARTIALLY_RECEIVED = "partially_received"
    RECEIVED = "received"
    CLOSED = "closed"
    CANCELLED = "cancelled"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


FINAL_LINE_STATES = frozenset({LineState.CLOSED, LineState.CANCELLED})
# The states an answered line's quantities decide (committed, shipped, received): see
# ``services.line_state_from_quantities``. A line waiting for the buyer's decision stays ``changes_pending``
# whatever ships or arrives meanwhile, and a rejected or final one keeps its state.
QUANTITY_LINE_STATES = frozenset(
    {
        LineState.CONFIRMED,
        LineState.PARTIALLY_SHIPPED,
        LineState.SHIPPED,
        LineState.PARTIALLY_RECEIVED,
        LineState.RECEIVED,
    }
)
# Lines still waiting for goods (an answer given, not all received): the exceptions' late and at-risk lines.
DELIVERING_LINE_STATES = (
    LineState.CONFIRMED,
    LineState.PARTIALLY_SHIPPED,
    LineState.SHIPPED,
    LineState.PARTIALLY_RECEIVED,
    LineState.CHANGES_PENDING,
)
# Every line the buyers' exceptions list may show: those above and the unanswered ones (a partial index).
EXCEPTION_LINE_STATES = (*DELIVERING_LINE_STATES, LineState.AWAITING_RESPONSE)


class OrderState(enum.StrEnum):
    AWAITING_RESPONSE = "awaiting_response"
    CHANGES_PENDING = "changes_pending"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    SHIPPED = "shipped"
    RECEIVED = "received"
    CLOSED = "closed"
    CANCELLED = "cancelled"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


class Source(enum.StrEnum):
    PORTAL = "portal"
    SPREADSHEET = "spreadsheet"
    API = "api"
    ERP = "erp"


class DelayReason(enum.StrEnum):
    PRODUCTION_DELAY = "production_delay"
    MATERIAL_SHORTAGE = "material_shortage"
    TRANSPORT = "transport"
    CUSTOMER_REQUEST = "customer_request"
    OTHER = "other"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


class RejectReason(enum.StrEnum):
    DISCONTINUED = "discontinued"
    NO_CAPACITY = "no_capacity"
    PRICE = "price"
    LEAD_TIME = "lead_time"
    OTHER = "other"

    @property
    def label(self) -> str:
        return {"no_capacity": "No capacity", "lead_time": "Lead time too short"}.get(
            self.value, self.value.replace("_", " ").capitalize()
        )


class ChangeKind(enum.StrEnum):
    COMMITMENT = "commitment"  # quantity and/or dates outside tolerance
    REJECT = "reject"
    PRICE = "price"


class ChangeState(enum.StrEnum):
    OPEN = "open"
    APPROVED = "approved"
    REJECTED = "rejected"
    COUNTERED = "countered"
    WITHDRAWN = "withdrawn"


class ShipNoticeState(enum.StrEnum):
    SENT = "sent"
    CANCELLED = "cancelled"
    RECEIVED = "received"


class TolerancePolicy(TenantOwned, Base):
    """Tolerances for supplier answers; ``supplier_id`` NULL is the tenant default."""

    __tablename__ = "tolerance_policies"
    __table_args__ = (UniqueConstraint("tenant_id", "supplier_id"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    supplier_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("suppliers.id", ondelete="CASCADE"))
    quantity_under_pct: Mapped[Decimal] = mapped_column(Numeric(6, 2), default=Decimal("0"))
    quantity_over_pct: Mapped[Decimal] = mapped_column(Numeric(6, 2), default=Decimal("0"))
    days_earlier: Mapped[int] = mapped_column(Integer, default=0)
    days_later: Mapped[int] = mapped_column(Integer, default=0)
    price_pct: Mapped[Decimal] = mapped_column(Numeric(6, 2), default=Decimal("0"))


class PurchaseOrder(TenantOwned, Base):
    __tablename__ = "purchase_orders"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number"),
        # Inbox tab counts: an index-only scan over one supplier's orders.
        Index("ix_purchase_orders_tenant_supplier_state", "tenant_id", "supplier_id", "state", "due_date"),
        # The inbox's default order: a supplier's orders by due date, read in index order.
        Index("ix_purchase_orders_tenant_supplier_due", "tenant_id", "supplier_id", "due_date", "id"),
        # Scorecards: one supplier's orders placed in a period (acknowledgements).
        Index("ix_purchase_orders_tenant_supplier_ordered", "tenant_id", "supplier_id", "order_date"),
        # A buyer's inbox (every supplier's orders): each sort read in index order (backwards for the latest
        # or largest first), the one-state tabs and the tab counts by state; the tabs of several states sorted
        # by due date or order date, each state read in order and merged (``queries.MERGED_SORTS``).
        Index("ix_purchase_orders_tenant_due", "tenant_id", "due_date", "id"),
        Index("ix_purchase_orders_tenant_state_due", "tenant_id", "state", "due_date", "id"),
        Index("ix_purchase_orders_tenant_ordered", "tenant_id", "order_date", "id"),
        Index("ix_purchase_orders_tenant_state_ordered", "tenant_id", "state", "order_date", "id"),
        Index("ix_purchase_orders_tenant_value", "tenant_id", "total_value", "id"),
        # Search by the beginning of an order number (LIKE 'PO-12%' whatever the database's collation).
        Index(
            "ix_purchase_orders_tenant_number_prefix",
            "tenant_id",
            "number",
            postgresql_ops={"number": "text_pattern_ops"},
        ),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    company_id: Mapped[int] = mapped_column(BigID, ForeignKey("companies.id"))
    warehouse_id: Mapped[int] = mapped_column(BigID, ForeignKey("warehouses.id"))
    supplier_id: Mapped[int] = mapped_column(BigID, ForeignKey("suppliers.id"))
    buyer_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("users.id", ondelete="SET NULL"))
    number: Mapped[str] = mapped_column(String(40))
    erp_ref: Mapped[str | None] = mapped_column(String(80))
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    order_date: Mapped[date] = mapped_column(Date)
    state: Mapped[OrderState] = mapped_column(str_enum(OrderState), default=OrderState.AWAITING_RESPONSE)
    # Bumped by every write; a form carries the version it was opened at.
    version: Mapped[int] = mapped_column(Integer, default=1)
    # Earliest requested date of an open line: the inbox's "due" column and filter.
    due_date: Mapped[date | None] = mapped_column(Date)
    total_value: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    responded_at: Mapped[datetime | None]
    # When the supplier was last reminded to answer, by a buyer (once a day at most) or by exception detection,
    # and how many times in all (automatic reminders stop at the tenant's ``reminder_limit``).
    reminded_at: Mapped[datetime | None]
    reminder_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    lines: Mapped[list[PurchaseOrderLine]] = relationship(
        back_populates="order", order_by="PurchaseOrderLine.position", lazy="raise"
    )


_OPEN_LINES = "state IN ({})".format(", ".join(f"'{state.value}'" for state in EXCEPTION_LINE_STATES))


class PurchaseOrderLine(TenantOwned, Base):
    __tablename__ = "purchase_order_lines"
    __table_args__ = (
        UniqueConstraint("order_id", "position"),
        Index("ix_purchase_order_lines_tenant_supplier_product", "tenant_id", "supplier_id", "product_code"),
        # A buyer's search by product code, ours or the supplier's.
        Index("ix_purchase_order_lines_tenant_product", "tenant_id", "product_code"),
        Index("ix_purchase_order_lines_tenant_supplier_code", "tenant_id", "supplier_product_code"),
        # The exceptions list reads the lines still open (about a tenth of them), never the delivered history.
        Index(
            "ix_purchase_order_lines_tenant_open",
            "tenant_id",
            "id",
            postgresql_where=text(_OPEN_LINES),
            sqlite_where=text(_OPEN_LINES),
        ),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    order_id: Mapped[int] = mapped_column(BigID, ForeignKey("purchase_orders.id", ondelete="CASCADE"), index=True)
    # Copied from the order so supplier-scoped queries need no join.
    supplier_id: Mapped[int] = mapped_column(BigID, ForeignKey("suppliers.id"))
    position: Mapped[int] = mapped_column(Integer)
    product_code: Mapped[str] = mapped_column(String(64))
    product_name: Mapped[str] = mapped_column(String(255))
    supplier_product_code: Mapped[str | None] = mapped_column(String(64))
    quantity: Mapped[Decimal] = mapped_column(Quantity)
    unit: Mapped[str] = mapped_column(String(16), default="pc")
    unit_price: Mapped[Decimal] = mapped_column(Money)
    requested_date: Mapped[date] = mapped_column(Date)
    received_quantity: Mapped[Decimal] = mapped_column(Quantity, default=Decimal("0"))
    shipped_quantity: Mapped[Decimal] = mapped_column(Quantity, default=Decimal("0"))
    state: Mapped[LineState] = mapped_column(str_enum(LineState), default=LineState.AWAITING_RESPONSE)
    erp_ref: Mapped[str | None] = mapped_column(String(80))
    # The earliest and latest promised dates of the line's active deliveries (None before an answer), kept by
    # ``services.commit_lines`` with the deliveries: the exceptions list tells late and at-risk lines from them
    # without looking up each open line's deliveries (1.2 s over a million lines).
    promised_from: Mapped[date | None] = mapped_column(Date)
    promised_to: Mapped[date | None] = mapped_column(Date)
    # The earliest promised date of an active delivery not yet complete (None when every one is): what the line
    # is late against. Set with the deliveries, and folded again with their outcomes as goods arrive
    # (``outcomes.refresh``). Read it with a query: the fold writes it with SQL.
    open_from: Mapped[date | None] = mapped_column(Date)
    # The day the supplier was last asked to answer the line, when that was after the order date: a line added
    # to the order later, or revised by the buyer after an answer (``services.revise_line``). The "unconfirmed
    # after N days" exception counts from it, not from the order date.
    asked_on: Mapped[date | None] = mapped_column(Date)
    # When a buyer last asked the supplier for an update on the line from the exceptions: once a day at most per
    # line, whoever asks (``services.ask_for_updates``); the exceptions show it.
    update_asked_at: Mapped[datetime | None]

    order: Mapped[PurchaseOrder] = relationship(back_populates="lines", lazy="raise")
    schedules: Mapped[list[DeliverySchedule]] = relationship(
        back_populates="line", order_by="DeliverySchedule.position", lazy="raise"
    )


class DeliverySchedule(TenantOwned, Base):
    """One dated delivery the supplier committed to; a split line has several."""

    __tablename__ = "delivery_schedules"
    __table_args__ = (
        UniqueConstraint("line_id", "position"),
        # Scorecards: the deliveries promised in a period.
        Index("ix_delivery_schedules_tenant_promised", "tenant_id", "promised_date", "line_id"),
        # Scorecards: one supplier's deliveries promised in a period.
        Index("ix_delivery_schedules_tenant_supplier_promised", "tenant_id", "supplier_id", "promised_date"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    line_id: Mapped[int] = mapped_column(BigID, ForeignKey("purchase_order_lines.id", ondelete="CASCADE"), index=True)
    # Copied from the line (as the line copies it from the order): one supplier's deliveries need no join.
    supplier_id: Mapped[int] = mapped_column(BigID, ForeignKey("suppliers.id"))
    position: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[Decimal] = mapped_column(Quantity)
    promised_date: Mapped[date] = mapped_column(Date)
    first_promised_date: Mapped[date] = mapped_column(Date)
    # Days from the day this promise's date was last changed to the date it replaced (negative: the old
    # promise had already passed); None while the date was never changed after the first answer.
    notice_days: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # What became of this delivery: the line's receipts set against its deliveries in date order, kept
    # current by ``portal.orders.outcomes`` whenever the line's deliveries, receipts or state change (the
    # scorecards read them instead of folding every receipt again). ``counted_quantity``: the quantity the
    # delivery is judged on (of a cancelled line, only what arrived); ``delivered_quantity``: how much of it
    # arrived; ``first_arrival_on`` / ``completed_on``: the day the first part / the last part arrived.
    # A new delivery starts as "nothing arrived yet"; a line with receipts is folded again on flush.
    counted_quantity: Mapped[Decimal] = mapped_column(
        Quantity, default=lambda context: context.get_current_parameters()["quantity"]
    )
    delivered_quantity: Mapped[Decimal] = mapped_column(Quantity, default=Decimal(0))
    first_arrival_on: Mapped[date | None] = mapped_column(Date)
    completed_on: Mapped[date | None] = mapped_column(Date)

    line: Mapped[PurchaseOrderLine] = relationship(back_populates="schedules", lazy="raise")


class CommitmentEntry(TenantOwned, Base):
    """The commitment ledger: append-only, one row for every change of a line's promise.

    ``schedules`` is the line's whole commitment after the change
    (``[{"quantity": "10", "date": "2026-01-31"}, ...]``), ``previous`` the one before.
    """

    __tablename__ = "commitment_ledger"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    order_id: Mapped[int] = mapped_column(BigID, ForeignKey("purchase_orders.id", ondelete="CASCADE"), index=True)
    line_id: Mapped[int] = mapped_column(BigID, ForeignKey("purchase_order_lines.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    schedules: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    previous: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    committed_quantity: Mapped[Decimal] = mapped_column(Quantity)
    reason_code: Mapped[str] = mapped_column(String(32), default="")
    comment: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[Source] = mapped_column(str_enum(Source, 16), default=Source.PORTAL)
    actor_user_id: Mapped[int | None] = mapped_column(BigID)
    actor: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChangeRequest(TenantOwned, Base):
    """A supplier answer that needs the buyer: outside tolerance, a rejection or a new price."""

    __tablename__ = "change_requests"
    __table_args__ = (Index("ix_change_requests_tenant_state", "tenant_id", "state"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    order_id: Mapped[int] = mapped_column(BigID, ForeignKey("purchase_orders.id", ondelete="CASCADE"), index=True)
    line_id: Mapped[int] = mapped_column(BigID, ForeignKey("purchase_order_lines.id", ondelete="CASCADE"), index=True)
    supplier_id: Mapped[int] = mapped_column(BigID, ForeignKey("suppliers.id"))
    kind: Mapped[ChangeKind] = mapped_column(str_enum(ChangeKind))
    state: Mapped[ChangeState] = mapped_column(str_enum(ChangeState), default=ChangeState.OPEN)
    # The line's state before the request, to return to when the buyer says no.
    previous_state: Mapped[LineState] = mapped_column(str_enum(LineState))
    proposed_schedules: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    proposed_price: Mapped[Decimal | None] = mapped_column(Money)
    reason_code: Mapped[str] = mapped_column(String(32), default="")
    comment: Mapped[str] = mapped_column(Text, default="")
    outside: Mapped[list[str]] = mapped_column(JSON, default=list)
    source: Mapped[Source] = mapped_column(str_enum(Source, 16), default=Source.PORTAL)
    created_by_id: Mapped[int | None] = mapped_column(BigID)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by_id: Mapped[int | None] = mapped_column(BigID)
    decided_at: Mapped[datetime | None]
    decision_comment: Mapped[str] = mapped_column(Text, default="")


class ShipNotice(TenantOwned, Base):
    """A shipment the supplier announced. ``sent`` until its goods have arrived (receipts matched to it by
    ``services.settle_ship_notices``: then ``received``; the goods of a line cancelled or closed since it shipped
    are not awaited) or it is withdrawn (``cancelled``)."""

    __tablename__ = "ship_notices"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number"),
        # The arrivals list: the notices in transit, the soonest expected first.
        Index(
            "ix_ship_notices_in_transit",
            "tenant_id",
            "expected_arrival",
            postgresql_where=text("state = 'sent'"),
            sqlite_where=text("state = 'sent'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    order_id: Mapped[int] = mapped_column(BigID, ForeignKey("purchase_orders.id", ondelete="CASCADE"), index=True)
    supplier_id: Mapped[int] = mapped_column(BigID, ForeignKey("suppliers.id"))
    number: Mapped[str] = mapped_column(String(40))
    ship_date: Mapped[date] = mapped_column(Date)
    expected_arrival: Mapped[date] = mapped_column(Date)
    carrier: Mapped[str] = mapped_column(String(120), default="")
    tracking_number: Mapped[str] = mapped_column(String(120), default="")
    packing_slip: Mapped[str] = mapped_column(String(120), default="")
    state: Mapped[ShipNoticeState] = mapped_column(str_enum(ShipNoticeState), default=ShipNoticeState.SENT)
    created_by_id: Mapped[int | None] = mapped_column(BigID)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    lines: Mapped[list[ShipNoticeLine]] = relationship(back_populates="notice", lazy="raise")


class ShipNoticeLine(TenantOwned, Base):
    __tablename__ = "ship_notice_lines"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    notice_id: Mapped[int] = mapped_column(BigID, ForeignKey("ship_notices.id", ondelete="CASCADE"), index=True)
    line_id: Mapped[int] = mapped_column(BigID, ForeignKey("purchase_order_lines.id", ondelete="CASCADE"), index=True)
    quantity: Mapped[Decimal] = mapped_column(Quantity)
    # What of it has arrived (receipts matched to the notice, ``services.settle_ship_notices``): kept as receipts
    # come, so the pages and the API show a shipment's progress without matching receipts again.
    received_quantity: Mapped[Decimal] = mapped_column(Quantity, default=Decimal("0"), server_default="0")

    notice: Mapped[ShipNotice] = relationship(back_populates="lines", lazy="raise")


class Receipt(TenantOwned, Base):
    """Goods received against a line (from the ERP, or imported)."""

    __tablename__ = "receipts"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    line_id: Mapped[int] = mapped_column(BigID, ForeignKey("purchase_order_lines.id", ondelete="CASCADE"), index=True)
    quantity: Mapped[Decimal] = mapped_column(Quantity)
    received_on: Mapped[date] = mapped_column(Date)
    source: Mapped[Source] = mapped_column(str_enum(Source, 16), default=Source.ERP)
    erp_ref: Mapped[str | None] = mapped_column(String(80))
    # The ship notice the goods came with, when the receipt names one (its number scanned from the packing slip
    # into the ERP's receipt, a column of an imported file, chosen in the portal): those goods go to that notice.
    # Receipts without one are matched to notices by line and date (``services.match_receipts``).
    ship_notice_id: Mapped[int | None] = mapped_column(
        BigID, ForeignKey("ship_notices.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OrderMessage(TenantOwned, Base):
    __tablename__ = "order_messages"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    order_id: Mapped[int] = mapped_column(BigID, ForeignKey("purchase_orders.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("users.id", ondelete="SET NULL"))
    author: Mapped[str] = mapped_column(String(254))
    from_supplier: Mapped[bool] = mapped_column(Boolean)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set by ``services.post_message`` on the message it writes; pages and the API read files with the messages
    # in one statement, so a load of its own here is a bug.
    files: Mapped[list[OrderMessageFile]] = relationship(lazy="raise_on_sql", order_by="OrderMessageFile.id")


class OrderMessageFile(TenantOwned, Base):
    """A file attached to an order message (a drawing, a specification, a quality report), under the upload
    policy of compliance documents; stored as they are, by a generated key."""

    __tablename__ = "order_message_files"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    order_id: Mapped[int] = mapped_column(BigID, ForeignKey("purchase_orders.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[int] = mapped_column(BigID, ForeignKey("order_messages.id", ondelete="CASCADE"), index=True)
    storage_key: Mapped[str] = mapped_column(String(80), unique=True)
    original_name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(100))
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AlertKind(enum.StrEnum):
    LATE = "late"
    AT_RISK = "at_risk"
    NO_SHIP_NOTICE = "no_ship_notice"
    REPEATED_SLIPS = "repeated_slips"
    PARTIAL = "partial"
    UNCONFIRMED = "unconfirmed"

    @property
    def label(self) -> str:
        return {
            "late": "Late",
            "at_risk": "At risk: promised after the requested date",
            "no_ship_notice": "At risk: no ship notice yet",
            "repeated_slips": "At risk: promise slipped repeatedly",
            "partial": "Partially received",
            "unconfirmed": "Unconfirmed",
        }[self.value]


class LineAlert(TenantOwned, Base):
    """One alert per condition per line while the condition holds (``key`` says which version of it).

    The detection job opens an alert when a condition appears or changes (a new
    promised date makes a new "late"), and resolves it when the condition is gone.
    """

    __tablename__ = "line_alerts"
    __table_args__ = (
        Index(
            "uq_line_alerts_open",
            "line_id",
            "kind",
            unique=True,
            postgresql_where=text("resolved_at IS NULL"),
            sqlite_where=text("resolved_at IS NULL"),
        ),
        Index("ix_line_alerts_tenant_open", "tenant_id", "resolved_at"),
        # The order page's open alerts. It matches all three conditions, so PostgreSQL takes it even before a
        # first detection run's rows have statistics: the tenant's index above, picked then, read every open
        # alert of the tenant (10 ms per order page with 100,000 of them).
        Index(
            "ix_line_alerts_order_open",
            "tenant_id",
            "order_id",
            postgresql_where=text("resolved_at IS NULL"),
            sqlite_where=text("resolved_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    line_id: Mapped[int] = mapped_column(BigID, ForeignKey("purchase_order_lines.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(BigID, ForeignKey("purchase_orders.id", ondelete="CASCADE"), index=True)
    supplier_id: Mapped[int] = mapped_column(BigID, ForeignKey("suppliers.id"))
    kind: Mapped[AlertKind] = mapped_column(str_enum(AlertKind))
    key: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[str] = mapped_column(String(500), default="")
    value_at_risk: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
