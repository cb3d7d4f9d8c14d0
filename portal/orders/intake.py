"""Order intake from CSV (until the ERP intake of the workers takes over).

One row per order line; rows with the same ``order_number`` form one order::

    order_number,supplier_code,warehouse_code,order_date,currency,line,product_code,product_name,
    supplier_product_code,quantity,unit,unit_price,requested_date

The import is all or nothing: every row is checked first and each error names its
row; only a clean file creates orders.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.auth.services import Actor
from portal.numbers import MAX_POSITION, whole_number
from portal.orders.forms import parse_date, parse_quantity
from portal.orders.models import PurchaseOrder, PurchaseOrderLine
from portal.outbox import emit
from portal.suppliers.models import Supplier
from portal.tenancy.models import Warehouse

COLUMNS = (
    "order_number",
    "supplier_code",
    "warehouse_code",
    "order_date",
    "currency",
    "line",
    "product_code",
    "product_name",
    "supplier_product_code",
    "quantity",
    "unit",
    "unit_price",
    "requested_date",
)
REQUIRED = tuple(c for c in COLUMNS if c not in ("supplier_product_code", "unit", "currency"))
MAX_ROWS = 20_000


@dataclass
class ImportResult:
    errors: list[str] = field(default_factory=list)
    orders: list[str] = field(default_factory=list)
    lines: int = 0
    # Receipts whose reference (``erp_ref``) is recorded already: a file uploaded again records nothing twice.
    already_recorded: int = 0
    # By row number: each column's problem (the order form shows each next to its field).
    problems: dict[int, dict[str, str]] = field(default_factory=dict)


@dataclass
class _Line:
    row: int
    position: int
    product_code: str
    product_name: str
    supplier_product_code: str | None
    quantity: Decimal
    unit: str
    unit_price: Decimal
    requested_date: date


def read_csv(data: bytes, required: tuple[str, ...] = REQUIRED) -> tuple[list[dict[str, str]], list[str]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return [], ["The file is not UTF-8 text. Save it as CSV (UTF-8)."]
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        return [], ["Missing columns: " + ", ".join(missing) + ". The first row must name the columns."]
    rows: list[dict[str, str]] = []
    for row in reader:
        if len(rows) >= MAX_ROWS:
            return [], [f"At most {MAX_ROWS:,} rows per file."]
        rows.append({k: (v or "").strip() for k, v in row.items() if k})
    if not rows:
        return [], ["The file has no rows."]
    return rows, []


def import_orders(
    session: Session, *, tenant_id: int, rows: list[dict[str, str]], actor: Actor, buyer_id: int | None
) -> ImportResult:
    result = ImportResult()
    suppliers = {
        code: sid
        for code, sid in session.execute(select(Supplier.code, Supplier.id).where(Supplier.tenant_id == tenant_id))
    }
    warehouses = {
        code: (wid, cid)
        for code, wid, cid in session.execute(
            select(Warehouse.code, Warehouse.id, Warehouse.company_id).where(Warehouse.tenant_id == tenant_id)
        ).all()
    }
    existing = set(
        session.execute(
            select(PurchaseOrder.number).where(
                PurchaseOrder.tenant_id == tenant_id,
                PurchaseOrder.number.in_({r.get("order_number", "") for r in rows}),
            )
        ).scalars()
    )
    headers: dict[str, tuple[int, int, int, date, str]] = {}
    lines: dict[str, list[_Line]] = defaultdict(list)
    for index, row in enumerate(rows, start=2):  # row 1 holds the column names
        problems: dict[str, str] = {}  # column: what is wrong with it
        number = row.get("order_number", "")[:40]
        if not number:
            problems["order_number"] = "order_number is empty"
        elif number in existing:
            problems["order_number"] = f"order {number} exists already"
        supplier_id = suppliers.get(row.get("supplier_code", "").upper())
        if supplier_id is None:
            problems["supplier_code"] = f"no supplier with code {row.get('supplier_code', '')!r}"
        place = warehouses.get(row.get("warehouse_code", "").upper())
        if place is None:
            problems["warehouse_code"] = f"no warehouse with code {row.get('warehouse_code', '')!r}"
        order_date, requested = parse_date(row.get("order_date", "")), parse_date(row.get("requested_date", ""))
        if order_date is None:
            problems["order_date"] = "order_date must be YYYY-MM-DD"
        if requested is None:
            problems["requested_date"] = "requested_date must be YYYY-MM-DD"
        quantity, price = parse_quantity(row.get("quantity", "")), parse_quantity(row.get("unit_price", ""))
        if quantity is None or quantity <= 0:
            problems["quantity"] = "quantity must be a number above zero"
        if price is None or price < 0:
            problems["unit_price"] = "unit_price must be a number, zero or more"
        position = row.get("line", "")
        if not whole_number(position, MAX_POSITION):
            problems["line"] = "line must be a whole number from 1"
        if not row.get("product_code") or not row.get("product_name"):
            problems["product"] = "product_code and product_name are required"
        currency = (row.get("currency") or "EUR").upper()
        if len(currency) != 3 or not currency.isalpha():
            problems["currency"] = "currency must be a 3-letter code"
        if problems:
            result.errors.append(f"Row {index}: " + "; ".join(problems.values()) + ".")
            result.problems[index] = problems
            continue
        assert supplier_id and place and order_date and requested and quantity and price is not None
        header = (supplier_id, place[0], place[1], order_date, currency)
        if headers.setdefault(number, header) != header:
            result.errors.append(
                f"Row {index}: order {number} has other supplier, warehouse, date or currency than its first row."
            )
            continue
        if any(existing_line.position == int(position) for existing_line in lines[number]):
            result.errors.append(f"Row {index}: order {number} has line {position} twice.")
            continue
        lines[number].append(
            _Line(
                index,
                int(position),
                row["product_code"][:64],
                row["product_name"][:255],
                row.get("supplier_product_code") or None,
                quantity,
                (row.get("unit") or "pc")[:16],
                price,
                requested,
            )
        )
    if result.errors:
        return result
    for number, (supplier_id, warehouse_id, company_id, order_date, currency) in headers.items():
        order_lines = sorted(lines[number], key=lambda line: line.position)
        order = PurchaseOrder(
            tenant_id=tenant_id,
            company_id=company_id,
            warehouse_id=warehouse_id,
            supplier_id=supplier_id,
            buyer_id=buyer_id,
            number=number,
            currency=currency,
            order_date=order_date,
            due_date=min(line.requested_date for line in order_lines),
            total_value=sum((line.quantity * line.unit_price for line in order_lines), Decimal("0")),
        )
        session.add(order)
        session.flush()
        session.add_all(
            PurchaseOrderLine(
                tenant_id=tenant_id,
                order_id=order.id,
                supplier_id=supplier_id,
                position=line.position,
                product_code=line.product_code,
                product_name=line.product_name,
                supplier_product_code=line.supplier_product_code,
                quantity=line.quantity,
                unit=line.unit,
                unit_price=line.unit_price,
                requested_date=line.requested_date,
            )
            for line in order_lines
        )
        emit(session, tenant_id, "order.created", {"order_id": order.id})
        result.orders.append(number)
        result.lines += len(order_lines)
    session.flush()
    actor.audit(
        session,
        "orders.imported",
        tenant_id=tenant_id,
        object_type="order",
        after={"orders": len(result.orders), "lines": result.lines},
    )
    return result


RECEIPT_COLUMNS = ("order_number", "line", "quantity", "received_on", "erp_ref", "ship_notice")


def import_receipts(session: Session, *, tenant_id: int, rows: list[dict[str, str]], actor: Actor) -> ImportResult:
    """Receipts per line (order_number, line, quantity, received_on[, erp_ref][, ship_notice]), all or nothing.

    A receipt with a reference is recorded once, as the ERP's are: a row whose reference is recorded already
    (the same file uploaded again, a cumulative export) is left out and counted; a reference twice in one file
    is an error. ``ship_notice`` names the notice the goods came with (its number, as the packing slip prints
    it, or the supplier's packing slip number): a notice of another order, a cancelled one, or one that does
    not ship the line is the row's error."""
    from portal.auth.services import ServiceError
    from portal.orders import services as svc
    from portal.orders.models import Receipt, Source

    result = ImportResult()
    references = {(row.get("erp_ref") or "").strip() for row in rows} - {""}
    recorded = set(
        session.execute(
            select(Receipt.erp_ref).where(Receipt.tenant_id == tenant_id, Receipt.erp_ref.in_(references))
        ).scalars()
    )
    first_row_of: dict[str, int] = {}
    numbers = {r.get("order_number", "") for r in rows}
    orders = {
        o.number: o
        for o in session.execute(
            select(PurchaseOrder).where(PurchaseOrder.tenant_id == tenant_id, PurchaseOrder.number.in_(numbers))
        ).scalars()
    }
    lines = {
        (line.order_id, line.position): line
        for line in session.execute(
            select(PurchaseOrderLine).where(
                PurchaseOrderLine.tenant_id == tenant_id,
                PurchaseOrderLine.order_id.in_([o.id for o in orders.values()]),
            )
        ).scalars()
    }
    for index, row in enumerate(rows, start=2):
        reference = (row.get("erp_ref") or "").strip()
        if reference in first_row_of:
            result.errors.append(f"Row {index}: reference {reference!r} is on row {first_row_of[reference]} too.")
            continue
        if reference:
            first_row_of[reference] = index
        if reference in recorded:
            result.already_recorded += 1
            continue
        order = orders.get(row.get("order_number", ""))
        position = row.get("line", "")
        quantity, received_on = parse_quantity(row.get("quantity", "")), parse_date(row.get("received_on", ""))
        problems = []
        number = whole_number(position, MAX_POSITION)
        line = lines.get((order.id, number)) if order and number is not None else None
        if order is None:
            problems.append(f"no order {row.get('order_number', '')!r}")
        elif line is None:
            problems.append(f"order {order.number} has no line {position!r}")
        if quantity is None or quantity <= 0:
            problems.append("quantity must be a number above zero")
        if received_on is None:
            problems.append("received_on must be YYYY-MM-DD")
        elif received_on > svc.latest_receipt_day(date.today()):
            problems.append(f"received_on {received_on.isoformat()} is in the future")
        if problems:
            result.errors.append(f"Row {index}: " + "; ".join(problems) + ".")
            continue
        assert order and line and quantity and received_on
        notice_reference = (row.get("ship_notice") or "").strip()
        try:
            notice = (
                svc.receipt_notice(session, order=order, line=line, reference=notice_reference)
                if notice_reference
                else None
            )
            svc.record_receipt(
                session,
                order=order,
                line=line,
                quantity=quantity,
                received_on=received_on,
                actor=actor,
                source=Source.SPREADSHEET,
                erp_ref=reference or None,
                ship_notice=notice,
            )
        except ServiceError as exc:
            message = exc.errors[line.id][0] if isinstance(exc, svc.InvalidAnswers) else exc.message
            result.errors.append(f"Row {index}: {message}")
            continue
        result.lines += 1
    return result
