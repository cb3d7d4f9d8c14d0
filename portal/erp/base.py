"""What every ERP connector offers the portal, and the errors it reports.

A connector reads open purchase orders (incrementally, by modification date)
and their receipts, and writes a supplier's commitment back. Writes are
*reconciliations*, not commands: the connector reads what the ERP holds for the
line and changes only what differs from the commitment, so running the same push
twice (after a lost answer, a killed worker, a redelivered message) changes
nothing the second time. Notes carry the portal's commitment key and are posted
only when no note with that key exists yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol


class ErpError(Exception):
    """A failure talking to the ERP, with a message an administrator can act on."""

    transient = False
    kind = "error"


class ErpUnreachable(ErpError):
    transient = True
    kind = "unreachable"


class ErpServerError(ErpError):
    """The ERP answered 5xx or timed out: try again later."""

    transient = True
    kind = "server_error"


class ErpBadCredentials(ErpError):
    kind = "bad_credentials"


class ErpNoApi(ErpError):
    kind = "no_api"


class ErpMissingRights(ErpError):
    kind = "missing_rights"


class ErpRejected(ErpError):
    """A business error from the ERP (a locked order, a read-only field)."""

    kind = "rejected"


class ErpConflict(ErpError):
    """The order changed in the ERP since the portal read it: a buyer edited it there."""

    kind = "conflict"


@dataclass(frozen=True)
class ErpLine:
    erp_id: str
    position: int
    product_code: str
    product_name: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    requested_date: date
    supplier_product_code: str | None = None
    write_date: str | None = None
    # Where the ERP keeps the line's commitment, for ERPs where that moves (Tryton: ``line`` on a quotation,
    # ``moves`` once the purchase is confirmed); empty where it does not.
    stage: str = ""
    # Which of the line's terms (``TERM_NAMES``) are the buyer's where the ERP holds the line now: a change to
    # one of them on an answered line is the buyer's edit. Tryton derives a confirmed purchase line's date from
    # its moves, which receipts and the portal's own pushes move: there the date is not the buyer's.
    buyer_terms: tuple[str, ...] = ("quantity", "date", "unit price")


@dataclass(frozen=True)
class ErpOrder:
    erp_id: str
    number: str
    partner_id: str
    partner_name: str
    currency: str
    order_date: date
    write_date: datetime
    state: str  # open | cancelled | done
    lines: list[ErpLine]
    company_name: str = ""
    warehouse_code: str = ""
    buyer_email: str = ""


@dataclass(frozen=True)
class ErpReceipt:
    erp_id: str
    line_erp_id: str
    quantity: Decimal
    received_on: date
    # The reference the receiving clerk gave the ERP's receipt (Tryton: the supplier shipment's reference), where
    # the ship notice number scanned from the packing slip goes: the receipt then settles that notice.
    shipment_reference: str = ""


@dataclass(frozen=True)
class Delivery:
    quantity: Decimal
    date: date


@dataclass(frozen=True)
class CommitmentPush:
    """A line's whole current commitment, and the notes not yet posted."""

    order_erp_id: str
    line_erp_id: str
    ordered_quantity: Decimal
    deliveries: list[Delivery]  # empty when the line is rejected
    rejected: bool
    notes: list[tuple[str, str]]  # (key, readable text), oldest first
    acknowledge: bool = True
    known_write_date: str | None = None
    # The line's terms as the portal last took them from the ERP (``erp_terms``): an adapter whose ERP keeps no
    # usable modification stamp on the line (Tryton) compares these instead.
    known_terms: str | None = None


@dataclass
class PushResult:
    changed: list[str] = field(default_factory=list)  # what was written, for the log
    write_date: str | None = None
    # The line's terms as the push left them (``erp_terms``), where the adapter checks the ERP's stamp.
    terms: str | None = None
    # Where the push wrote the commitment (``ErpLine.stage``).
    stage: str = ""


def erp_terms(quantity: Decimal, day: date, unit_price: Decimal) -> str:
    """An ERP line's quantity, date and unit price as one comparable text (``80|2026-12-05|1.75``)."""
    return f"{quantity.normalize():f}|{day.isoformat()}|{unit_price.normalize():f}"


TERM_NAMES = ("quantity", "date", "unit price")  # the parts of ``erp_terms``, in order


def parse_terms(terms: str) -> tuple[Decimal, date, Decimal]:
    """An ``erp_terms`` text read back: quantity, date and unit price."""
    quantity, day, unit_price = terms.split("|")
    return Decimal(quantity), date.fromisoformat(day), Decimal(unit_price)


def changed_terms(known: str | None, current: str, compared: tuple[str, ...] = TERM_NAMES) -> list[str]:
    """Which of the ``compared`` parts of two ``erp_terms`` texts differ; nothing when ``known`` is empty (the
    portal knows no terms: never seen, or forgotten by an administrator's retry after a conflict)."""
    if not known:
        return []
    pairs = zip(TERM_NAMES, known.split("|"), current.split("|"), strict=True)
    return [name for name, was, now in pairs if name in compared and was != now]


@dataclass
class ConnectionReport:
    ok: bool
    version: str = ""
    details: list[str] = field(default_factory=list)
    error: str = ""
    error_kind: str = ""


class ErpAdapter(Protocol):
    def test_connection(self) -> ConnectionReport: ...

    def pull_orders(self, since: datetime | None) -> list[ErpOrder]: ...

    def pull_receipts(self, line_erp_ids: list[str]) -> list[ErpReceipt]: ...

    def push_commitment(self, push: CommitmentPush) -> PushResult: ...

    def close(self) -> None: ...


def allocate_received(deliveries: list[Delivery], received: Decimal) -> list[Delivery]:
    """What is still to come: received quantity set against the deliveries in date order."""
    remaining: list[Delivery] = []
    left = received
    for delivery in sorted(deliveries, key=lambda d: d.date):
        if left >= delivery.quantity:
            left -= delivery.quantity
            continue
        remaining.append(Delivery(delivery.quantity - left, delivery.date))
        left = Decimal("0")
    return remaining
