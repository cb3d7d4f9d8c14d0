"""ERP connection settings, intake (orders and receipts) and the commitment push.

Services take the session and the tenant explicitly and never commit. The
worker-side entry points (``pull``, ``sync_line``) are called by the outbox
handlers and the periodic jobs in ``portal.erp.handlers``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.auth.services import Actor, ServiceError
from portal.crypto import decrypt, encrypt
from portal.db import utcnow
from portal.erp.base import (
    CommitmentPush,
    ConnectionReport,
    Delivery,
    ErpAdapter,
    ErpConflict,
    ErpLine,
    ErpOrder,
    PushResult,
    changed_terms,
    erp_terms,
    parse_terms,
)
from portal.erp.models import ErpConnection, ErpKind, ErpLineSync, SyncStatus
from portal.orders.models import (
    FINAL_LINE_STATES,
    CommitmentEntry,
    DeliverySchedule,
    LineState,
    PurchaseOrder,
    PurchaseOrderLine,
    Receipt,
    Source,
)
from portal.orders.services import LineTerms, revise_line
from portal.outbox import OutboxEvent, emit, retry
from portal.suppliers.models import Supplier
from portal.tenancy.models import Company, Warehouse

SYSTEM = Actor(user_id=None, label="ERP sync", ip="")


# --- connection settings ------------------------------------------------------------


def get_connection(session: Session, tenant_id: int) -> ErpConnection | None:
    return session.execute(select(ErpConnection).where(ErpConnection.tenant_id == tenant_id)).scalar_one_or_none()


def save_connection(
    session: Session,
    *,
    tenant_id: int,
    kind: ErpKind,
    url: str,
    database: str,
    login: str,
    secret: str | None,
    active: bool,
    actor: Actor,
) -> ErpConnection:
    """Create or change the tenant's connection; ``secret`` None keeps the stored one."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ServiceError("The ERP address must start with http:// or https://.")
    connection = get_connection(session, tenant_id)
    if connection is None:
        if not secret:
            raise ServiceError("Enter the password or API key for the ERP user.")
        connection = ErpConnection(tenant_id=tenant_id, kind=kind, url=url)
        session.add(connection)
    before = {
        "kind": connection.kind,
        "url": connection.url,
        "database": connection.database,
        "login": connection.login,
    }
    connection.kind = kind
    connection.url = url
    connection.database = database.strip()
    connection.login = login.strip()
    connection.active = active
    connection.protocol = "" if before["kind"] != kind or before["url"] != url else connection.protocol
    if secret:
        connection.secret_encrypted = encrypt(secret)
    connection.updated_at = utcnow()
    session.flush()
    actor.audit(
        session,
        "erp.connection_saved",
        tenant_id=tenant_id,
        object_type="erp_connection",
        object_id=connection.id,
        before=before if before["kind"] else None,
        # The secret never goes to the audit trail; only that it changed.
        after={"kind": kind.value, "url": url, "database": database, "login": login, "secret_changed": bool(secret)},
    )
    return connection


def adapter_for(connection: ErpConnection, *, timeout: float = 20.0) -> ErpAdapter:
    secret = decrypt(connection.secret_encrypted)
    if connection.kind == ErpKind.TRYTON:
        from portal.erp.tryton import TrytonAdapter

        return TrytonAdapter(connection.url, connection.database, connection.login, secret, timeout=timeout)
    from portal.erp.odoo import OdooAdapter

    return OdooAdapter(
        connection.url, connection.database, connection.login, secret, protocol=connection.protocol, timeout=timeout
    )


def test_connection(session: Session, connection: ErpConnection, *, actor: Actor) -> ConnectionReport:
    adapter = adapter_for(connection, timeout=10.0)
    try:
        report = adapter.test_connection()
    finally:
        adapter.close()
    protocol = getattr(adapter, "protocol", "")
    if report.ok and protocol:
        connection.protocol = protocol
    connection.last_test_at = utcnow()
    connection.last_test = {
        "ok": report.ok,
        "version": report.version,
        "details": report.details,
        "error": report.error,
        "error_kind": report.error_kind,
    }
    actor.audit(
        session,
        "erp.connection_tested",
        tenant_id=connection.tenant_id,
        object_type="erp_connection",
        object_id=connection.id,
        after={"ok": report.ok, "version": report.version, "error_kind": report.error_kind},
    )
    return report


# --- intake ---------------------------------------------------------------------------


@dataclass
class PullReport:
    orders_created: int = 0
    orders_updated: int = 0
    lines_created: int = 0
    receipts: int = 0
    skipped: list[str] = field(default_factory=list)


def pull(session: Session, *, tenant_id: int, connection: ErpConnection, adapter: ErpAdapter) -> PullReport:
    """Bring new and changed orders, then receipts, from the ERP (idempotent)."""
    report = PullReport()
    orders = adapter.pull_orders(connection.orders_cursor)
    for erp_order in orders:
        _upsert_order(session, tenant_id, erp_order, report)
    if orders:
        newest = max(o.write_date for o in orders)
        if connection.orders_cursor is None or newest > connection.orders_cursor:
            connection.orders_cursor = newest
    pull_receipts(session, tenant_id=tenant_id, adapter=adapter, report=report)
    connection.last_pull_at = utcnow()
    connection.last_pull_error = ""
    return report


def _supplier_for(session: Session, tenant_id: int, erp_order: ErpOrder) -> Supplier:
    supplier = session.execute(
        select(Supplier).where(Supplier.tenant_id == tenant_id, Supplier.erp_ref == erp_order.partner_id)
    ).scalar_one_or_none()
    if supplier is None:
        # A vendor the portal has not seen: create its account (no users yet; the buyer invites them).
        supplier = Supplier(
            tenant_id=tenant_id,
            code=f"ERP-{erp_order.partner_id}"[:32],
            name=erp_order.partner_name[:200],
            erp_ref=erp_order.partner_id,
        )
        session.add(supplier)
        session.flush()
    return supplier


def _site_for(session: Session, tenant_id: int, erp_order: ErpOrder) -> tuple[int, int]:
    """The warehouse whose code matches the ERP's, else the first of the company named, else the first."""
    rows = session.execute(
        select(Warehouse.id, Warehouse.code, Warehouse.company_id, Company.name)
        .join(Company, Company.id == Warehouse.company_id)
        .where(Warehouse.tenant_id == tenant_id)
        .order_by(Warehouse.id)
    ).all()
    if not rows:
        raise ServiceError("The tenant has no warehouse to receive ERP orders.")
    for warehouse_id, code, company_id, _ in rows:
        if erp_order.warehouse_code and code == erp_order.warehouse_code:
            return company_id, warehouse_id
    for warehouse_id, _, company_id, company_name in rows:
        if erp_order.company_name and company_name == erp_order.company_name:
            return company_id, warehouse_id
    return rows[0][2], rows[0][0]


def _upsert_order(session: Session, tenant_id: int, erp_order: ErpOrder, report: PullReport) -> None:
    # A known order is locked before its lines are read: a supplier answering it now (whose write claims the
    # order's version first) waits, or has answered already and its lines are read as answered.
    order = session.execute(
        select(PurchaseOrder)
        .where(PurchaseOrder.tenant_id == tenant_id, PurchaseOrder.erp_ref == erp_order.erp_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if order is None:
        if erp_order.state != "open" or not erp_order.lines:
            return  # never seen and already over: nothing for the supplier to do
        supplier = _supplier_for(session, tenant_id, erp_order)
        company_id, warehouse_id = _site_for(session, tenant_id, erp_order)
        number = erp_order.number
        if session.execute(
            select(PurchaseOrder.id).where(PurchaseOrder.tenant_id == tenant_id, PurchaseOrder.number == number)
        ).first():
            number = f"{number}-{erp_order.erp_id}"
        order = PurchaseOrder(
            tenant_id=tenant_id,
            company_id=company_id,
            warehouse_id=warehouse_id,
            supplier_id=supplier.id,
            number=number[:40],
            erp_ref=erp_order.erp_id,
            currency=erp_order.currency,
            order_date=erp_order.order_date,
            due_date=min(line.requested_date for line in erp_order.lines),
            total_value=sum((line.quantity * line.unit_price for line in erp_order.lines), Decimal("0")),
        )
        session.add(order)
        session.flush()
        for erp_line in erp_order.lines:
            _add_line(session, order, erp_line)
            report.lines_created += 1
        emit(session, tenant_id, "order.created", {"order_id": order.id, "source": "erp"})
        report.orders_created += 1
        return
    # Known order: take the buyer's changes to lines the supplier has not answered yet, add new lines, and
    # cancel what the ERP cancelled. Any of these moves the order's version: a supplier's answer form opened
    # before it is refused as "changed since you opened it" (it would accept a quantity it never saw).
    lines = {
        line.erp_ref: line
        for line in session.execute(
            select(PurchaseOrderLine).where(
                PurchaseOrderLine.tenant_id == tenant_id, PurchaseOrderLine.order_id == order.id
            )
        ).scalars()
    }
    # Locked too: a push of one of them still writing to the ERP is waited for, and its terms are read as it left
    # them (not as they were before it, which the ERP no longer holds).
    syncs = {
        sync.line_id: sync
        for sync in session.execute(
            select(ErpLineSync)
            .where(ErpLineSync.tenant_id == tenant_id, ErpLineSync.order_id == order.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalars()
    }
    # The positions of the lines added, changed and cancelled, for the supplier's people.
    news: dict[str, list[int]] = {"added": [], "changed": [], "cancelled": []}
    # The positions of answered lines the buyer changed in the ERP (for the buyers to decide on).
    revised: list[int] = []
    for erp_line in erp_order.lines:
        line = lines.get(erp_line.erp_id)
        if line is None:
            position = 1 + max((existing.position for existing in lines.values()), default=0)
            lines[erp_line.erp_id] = _add_line(session, order, erp_line, position=position)
            lines[erp_line.erp_id].asked_on = date.today()  # unconfirmed counts from today, not the order date
            report.lines_created += 1
            news["added"].append(position)
        else:
            if line.state == LineState.AWAITING_RESPONSE and _take_erp_change(session, order, line, erp_line):
                news["changed"].append(line.position)
            sync = syncs.get(line.id)
            if _remember_erp_line(sync, line, erp_line):
                revised.append(line.position)
            if erp_order.state == "open" and _commitment_moved(sync, line, erp_line):
                request_sync(session, tenant_id=tenant_id, line_id=line.id, force=True)
    from portal.orders.services import cancel_claimed_line, claim_version, order_lines, refresh_order

    if erp_order.state == "cancelled":
        for line in lines.values():
            if line.state not in FINAL_LINE_STATES and line.received_quantity == 0:
                cancel_claimed_line(
                    session, order=order, line=line, reason="cancelled in the ERP", actor=SYSTEM, announced=False
                )
                news["cancelled"].append(line.position)
    if any(news.values()):
        claim_version(session, order, None)  # the row is locked above: this cannot conflict
        refresh_order(session, order, order_lines(session, order))
        emit(session, tenant_id, "order.changed_in_erp", {"order_id": order.id, **news})
        report.orders_updated += 1
    if revised and erp_order.state == "open":
        emit(session, tenant_id, "order.revised_in_erp", {"order_id": order.id, "positions": revised})


def _take_erp_change(session: Session, order: PurchaseOrder, line: PurchaseOrderLine, erp_line: ErpLine) -> bool:
    """The buyer's change in the ERP of a line the supplier has not answered (quantity, requested date, unit
    price), audited with what it was; False when nothing changed."""
    before = {"quantity": line.quantity, "requested_date": line.requested_date, "unit_price": line.unit_price}
    after = {
        "quantity": erp_line.quantity,
        "requested_date": erp_line.requested_date,
        "unit_price": erp_line.unit_price,
    }
    if after == before:
        return False
    line.quantity = erp_line.quantity
    line.requested_date = erp_line.requested_date
    line.unit_price = erp_line.unit_price
    changes = [key for key in before if before[key] != after[key]]
    SYSTEM.audit(
        session,
        "order_line.changed_in_erp",
        tenant_id=order.tenant_id,
        object_type="order_line",
        object_id=line.id,
        before={key: str(before[key]) for key in changes},
        after={"order": order.number, "position": line.position} | {key: str(after[key]) for key in changes},
    )
    return True


def _add_line(
    session: Session, order: PurchaseOrder, erp_line: ErpLine, position: int | None = None
) -> PurchaseOrderLine:
    line = PurchaseOrderLine(
        tenant_id=order.tenant_id,
        order_id=order.id,
        supplier_id=order.supplier_id,
        position=position or erp_line.position,
        product_code=erp_line.product_code[:64],
        product_name=erp_line.product_name[:255],
        supplier_product_code=erp_line.supplier_product_code,
        quantity=erp_line.quantity,
        unit=erp_line.unit[:16],
        unit_price=erp_line.unit_price,
        requested_date=erp_line.requested_date,
        erp_ref=erp_line.erp_id,
    )
    session.add(line)
    session.flush()
    session.add(
        ErpLineSync(
            tenant_id=order.tenant_id,
            line_id=line.id,
            order_id=order.id,
            status=SyncStatus.SYNCED,
            erp_write_date=erp_line.write_date,
            erp_terms=erp_terms(erp_line.quantity, erp_line.requested_date, erp_line.unit_price),
        )
    )
    return line


def _remember_erp_line(sync: ErpLineSync | None, line: PurchaseOrderLine, erp_line: ErpLine) -> bool:
    """Take the ERP line's modification stamp (and terms) as seen, so that the next push does not stop at it:
    a receipt or a note moves the stamp and nothing else. Not when the buyer changed the terms of a line the
    supplier has answered: the portal keeps them aside (``revised_terms``) for a buyer to decide on the order
    page, whether the supplier confirms the line again on those terms or its commitment is written back over
    them; until then a push stops with a conflict rather than overwrite the buyer's edit. True when such a
    change is new (not seen by an earlier intake)."""
    if sync is None:
        return False
    if erp_line.write_date and sync.erp_write_date and erp_line.write_date < sync.erp_write_date:
        # Read before the portal's last write to the line (a push that ended while this intake ran): the ERP holds
        # the pushed terms now, not these.
        return False
    terms = erp_terms(erp_line.quantity, erp_line.requested_date, erp_line.unit_price)
    answered = line.state != LineState.AWAITING_RESPONSE
    if answered and changed_terms(sync.erp_terms, terms, erp_line.buyer_terms):
        # A date that is not the buyer's (it follows the commitment) stays the one the supplier was asked for.
        day = erp_line.requested_date if "date" in erp_line.buyer_terms else line.requested_date
        revised = erp_terms(erp_line.quantity, day, erp_line.unit_price)
        new = sync.revised_terms != revised
        sync.revised_terms, sync.revised_write_date = revised, erp_line.write_date
        return new and line.state not in FINAL_LINE_STATES
    # The ERP holds what the portal knows (again: a buyer may undo an edit): nothing is left to decide.
    sync.revised_terms = sync.revised_write_date = None
    sync.erp_terms = terms
    if erp_line.write_date:
        sync.erp_write_date = erp_line.write_date
    return False


def _commitment_moved(sync: ErpLineSync | None, line: PurchaseOrderLine, erp_line: ErpLine) -> bool:
    """Whether the ERP keeps the open line's commitment elsewhere than where the portal last wrote it (a Tryton
    quotation confirmed since: its moves were made from the line, not from the supplier's deliveries). Not
    while a push is waiting or stopped: the one waiting writes it where it is now, and a stopped one waits for
    the administrator."""
    return (
        sync is not None
        and line.state not in FINAL_LINE_STATES
        and sync.status == SyncStatus.SYNCED
        and bool(sync.erp_stage)
        and bool(erp_line.stage)
        and sync.erp_stage != erp_line.stage
    )


def pull_receipts(session: Session, *, tenant_id: int, adapter: ErpAdapter, report: PullReport) -> None:
    """Record the ERP's receipts on open ERP lines; each ERP receipt once (keyed on its ERP id). A receipt whose
    shipment reference names a ship notice of its order that ships its line (the number scanned from the packing
    slip, or the supplier's own packing slip number) settles that notice; any other reference (the carrier's,
    a typo) is kept out of the matching, never a reason to refuse the receipt."""
    from portal.orders.services import InvalidAnswers, receipt_notice, record_receipt

    open_states = [s for s in LineState if s not in FINAL_LINE_STATES and s != LineState.AWAITING_RESPONSE]
    lines = {
        line.erp_ref: line
        for line in session.execute(
            select(PurchaseOrderLine).where(
                PurchaseOrderLine.tenant_id == tenant_id,
                PurchaseOrderLine.erp_ref.is_not(None),
                PurchaseOrderLine.state.in_(open_states),
            )
        ).scalars()
    }
    if not lines:
        return
    receipts = adapter.pull_receipts([ref for ref in lines if ref])
    if not receipts:
        return
    known = set(
        session.execute(
            select(Receipt.erp_ref).where(
                Receipt.tenant_id == tenant_id, Receipt.erp_ref.in_([r.erp_id for r in receipts])
            )
        ).scalars()
    )
    touched: set[int] = set()
    for receipt in receipts:
        line = lines.get(receipt.line_erp_id)
        if line is None or receipt.erp_id in known or line.state in FINAL_LINE_STATES:
            continue
        order = session.execute(
            select(PurchaseOrder).where(PurchaseOrder.tenant_id == tenant_id, PurchaseOrder.id == line.order_id)
        ).scalar_one()
        notice = None
        if receipt.shipment_reference.strip():
            try:
                notice = receipt_notice(session, order=order, line=line, reference=receipt.shipment_reference)
            except InvalidAnswers:
                notice = None  # matched by line and date, as a receipt naming no notice
        record_receipt(
            session,
            order=order,
            line=line,
            quantity=receipt.quantity,
            received_on=receipt.received_on,
            actor=SYSTEM,
            source=Source.ERP,
            erp_ref=receipt.erp_id,
            ship_notice=notice,
        )
        report.receipts += 1
        touched.add(line.id)
    for line_id in sorted(touched):
        # Some ERPs (Tryton) re-date the backorder after a partial receipt: push the promise again.
        request_sync(session, tenant_id=tenant_id, line_id=line_id, force=True)


# --- the push ---------------------------------------------------------------------------


def request_sync(session: Session, *, tenant_id: int, line_id: int, force: bool = False) -> bool:
    """Queue the push of a line's commitment if the line came from an active ERP connection."""
    sync = session.execute(
        select(ErpLineSync).where(ErpLineSync.tenant_id == tenant_id, ErpLineSync.line_id == line_id)
    ).scalar_one_or_none()
    connection = get_connection(session, tenant_id)
    if sync is None or connection is None or not connection.active:
        return False
    sync.status = SyncStatus.WAITING
    sync.error = ""
    emit(session, tenant_id, "erp.sync_line", {"line_id": line_id, "force": force})
    return True


def describe(entry: CommitmentEntry) -> str:
    deliveries = "; ".join(f"{Decimal(d['quantity']).normalize():f} on {d['date']}" for d in entry.schedules)
    text = f"{entry.kind.replace('_', ' ')} by {entry.actor or 'the supplier'}: {deliveries or 'nothing'}"
    if entry.reason_code:
        text += f" (reason: {entry.reason_code.replace('_', ' ')})"
    if entry.comment:
        text += f" - {entry.comment[:300]}"
    return text


def build_push(session: Session, tenant_id: int, line: PurchaseOrderLine, sync: ErpLineSync) -> CommitmentPush | None:
    order = session.execute(
        select(PurchaseOrder).where(PurchaseOrder.tenant_id == tenant_id, PurchaseOrder.id == line.order_id)
    ).scalar_one()
    if not order.erp_ref or not line.erp_ref:
        return None
    query = select(CommitmentEntry).where(CommitmentEntry.tenant_id == tenant_id, CommitmentEntry.line_id == line.id)
    if sync.synced_ledger_id is not None:
        query = query.where(CommitmentEntry.id > sync.synced_ledger_id)
    entries = list(session.execute(query.order_by(CommitmentEntry.id)).scalars())
    schedules = session.execute(
        select(DeliverySchedule)
        .where(
            DeliverySchedule.tenant_id == tenant_id,
            DeliverySchedule.line_id == line.id,
            DeliverySchedule.active.is_(True),
        )
        .order_by(DeliverySchedule.position)
    ).scalars()
    rejected = line.state == LineState.REJECTED
    notes = [(f"commitment-{entry.id}", describe(entry)) for entry in entries]
    if rejected:
        notes.append((f"rejection-{line.id}", "the supplier rejected this line; the buyer approved the rejection"))
    return CommitmentPush(
        order_erp_id=order.erp_ref,
        line_erp_id=line.erp_ref,
        ordered_quantity=line.quantity,
        deliveries=[] if rejected else [Delivery(s.quantity, s.promised_date) for s in schedules],
        rejected=rejected,
        notes=notes,
        known_write_date=sync.erp_write_date,
        known_terms=sync.erp_terms,
    )


def sync_line(
    session: Session, *, tenant_id: int, line_id: int, adapter: ErpAdapter, force: bool = False
) -> PushResult | None:
    """Write the line's current commitment to the ERP. Running it again changes nothing."""
    line = session.execute(
        select(PurchaseOrderLine).where(PurchaseOrderLine.tenant_id == tenant_id, PurchaseOrderLine.id == line_id)
    ).scalar_one_or_none()
    # The row lock serialises two pushes of one line (two workers, two events): the second
    # waits, then finds the ERP up to date.
    sync = session.execute(
        select(ErpLineSync).where(ErpLineSync.tenant_id == tenant_id, ErpLineSync.line_id == line_id).with_for_update()
    ).scalar_one_or_none()
    if line is None or sync is None:
        return None
    latest = session.execute(
        select(func.max(CommitmentEntry.id)).where(
            CommitmentEntry.tenant_id == tenant_id, CommitmentEntry.line_id == line_id
        )
    ).scalar()
    rejected = line.state == LineState.REJECTED
    if latest is None and not rejected:
        sync.status = SyncStatus.SYNCED
        return None  # nothing committed yet
    up_to_date = latest == sync.synced_ledger_id and rejected == sync.synced_rejection
    if up_to_date and not force:
        sync.status = SyncStatus.SYNCED
        return None
    push = build_push(session, tenant_id, line, sync)
    if push is None:
        return None
    result = adapter.push_commitment(push)
    if result.write_date:
        sync.erp_write_date = result.write_date
    if result.terms:
        sync.erp_terms = result.terms
    if result.stage:
        sync.erp_stage = result.stage
    sync.synced_ledger_id = latest
    sync.synced_rejection = rejected
    sync.status = SyncStatus.SYNCED
    sync.synced_at = utcnow()
    sync.error = ""
    return result


def retry_job(session: Session, event: OutboxEvent) -> None:
    """An administrator's retry of a failed job (the caller has checked the event is the tenant's and failed).
    A line's push that stopped at a conflict goes through this time: the administrator has checked the buyer's
    edit in the ERP, so the retried push writes the commitment over it."""
    retry(session, event)
    if event.topic != "erp.sync_line":
        return
    sync = session.execute(
        select(ErpLineSync).where(
            ErpLineSync.tenant_id == event.tenant_id, ErpLineSync.line_id == int(event.payload["line_id"])
        )
    ).scalar_one_or_none()
    if sync is not None:
        sync.status = SyncStatus.WAITING
        if sync.error.startswith(f"{ErpConflict.kind}:"):
            sync.erp_write_date = sync.erp_terms = None


def close_failed_pushes(session: Session, *, tenant_id: int, line_id: int) -> int:
    """After a push of a line went through, its earlier pushes that failed are answered (each push writes the
    line's whole commitment): they leave the administrators' list of failed jobs, their error kept."""
    failed = session.execute(
        select(OutboxEvent).where(
            OutboxEvent.tenant_id == tenant_id,
            OutboxEvent.topic == "erp.sync_line",
            OutboxEvent.failed_at.is_not(None),
            OutboxEvent.done_at.is_(None),
        )
    ).scalars()
    answered = [event for event in failed if int(event.payload.get("line_id", 0)) == line_id]
    for event in answered:
        event.done_at = utcnow()
    return len(answered)


# --- a buyer's change in the ERP to an answered line ---------------------------------------


def revision_of(sync: ErpLineSync | None) -> LineTerms | None:
    """The terms the buyer gave the line in the ERP after the supplier answered, while no buyer has decided."""
    if sync is None or not sync.revised_terms:
        return None
    return LineTerms(*parse_terms(sync.revised_terms))


def _revised_sync(session: Session, line: PurchaseOrderLine) -> ErpLineSync:
    """The line's sync with a buyer's change waiting, locked."""
    sync = session.execute(
        select(ErpLineSync)
        .where(ErpLineSync.tenant_id == line.tenant_id, ErpLineSync.line_id == line.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if sync is None or not sync.revised_terms:
        raise _nothing_to_decide(line)
    return sync


def _nothing_to_decide(line: PurchaseOrderLine) -> ServiceError:
    return ServiceError(
        f"Line {line.position} has no change from the ERP to decide on (another buyer may have decided)."
    )


def take_revision(
    session: Session,
    *,
    order: PurchaseOrder,
    line: PurchaseOrderLine,
    quantity: Decimal,
    requested_date: date,
    comment: str,
    expected_version: int | None,
    actor: Actor,
) -> None:
    """The buyer sends the ERP's change of an answered line to the supplier: the line is revised to it and waits
    for the supplier's answer (``orders.services.revise_line``). The unit price is the ERP's; the quantity and
    date are the buyer's, prefilled with the ERP's (where the portal split a line into dated deliveries the ERP
    line holds the first one, so its quantity may not be the order's). The ERP holds the buyer's terms: they
    become what the portal knows of it, and nothing is pushed until the supplier answers."""
    seen = revision_of(sync_summary(session, line.tenant_id, [line.id]).get(line.id))
    if seen is None:
        raise _nothing_to_decide(line)
    entry_id = revise_line(
        session, order=order, line=line, terms=LineTerms(quantity, requested_date, seen.unit_price),
        comment=comment, expected_version=expected_version, actor=actor, source=Source.ERP,
    )  # fmt: skip
    # The order's row is locked now (its version claimed), as an intake locks it before the line's sync: the sync
    # is locked second here too (the other way round, the two could wait for each other). An intake that changed
    # the ERP's terms before the claim is seen here.
    sync = _revised_sync(session, line)
    if revision_of(sync) != seen:
        raise ServiceError(f"Line {line.position} changed in the ERP again meanwhile: look at it again.")
    sync.erp_terms, sync.revised_terms = sync.revised_terms, None
    sync.erp_write_date = sync.revised_write_date or sync.erp_write_date
    sync.revised_write_date = None
    if entry_id is not None:
        sync.synced_ledger_id = entry_id  # the withdrawn commitment: nothing of it is left to write
    sync.synced_rejection = False
    sync.status, sync.error = SyncStatus.SYNCED, ""
    close_failed_pushes(session, tenant_id=line.tenant_id, line_id=line.id)


def keep_commitment(session: Session, *, order: PurchaseOrder, line: PurchaseOrderLine, actor: Actor) -> None:
    """The buyer keeps the supplier's commitment over the ERP's change: it is written back to the ERP line
    (forced: the push does not stop at the buyer's edit, as after an administrator's retry)."""
    sync = _revised_sync(session, line)
    revised = sync.revised_terms
    sync.revised_terms = sync.revised_write_date = None
    sync.erp_terms = sync.erp_write_date = None
    actor.audit(
        session,
        "order_line.erp_change_overruled",
        tenant_id=line.tenant_id,
        object_type="order_line",
        object_id=line.id,
        before={"erp_terms": revised},
        after={"order": order.number, "position": line.position},
    )
    if not request_sync(session, tenant_id=line.tenant_id, line_id=line.id, force=True):
        raise ServiceError("The ERP connection is switched off: switch it on to write the commitment back.")


def sync_summary(session: Session, tenant_id: int, line_ids: list[int]) -> dict[int, ErpLineSync]:
    if not line_ids:
        return {}
    return {
        sync.line_id: sync
        for sync in session.execute(
            select(ErpLineSync).where(ErpLineSync.tenant_id == tenant_id, ErpLineSync.line_id.in_(line_ids))
        ).scalars()
    }


def mark_pull_failed(connection: ErpConnection, error: str, when: datetime | None = None) -> None:
    connection.last_pull_error = error[:2000]
    connection.last_pull_at = when or utcnow()
