"""Tryton (8.x) over JSON-RPC: ``POST <url>/<database>/rpc/``.

Where a supplier commitment lives in Tryton (facts checked against 8.2):

* before the purchase is confirmed the line's date (``delivery_date`` with
  ``delivery_date_edit``) is writable, its ``quantity`` in draft only: a smaller
  commitment on a quotation is told in the notes, and once an intake finds the
  purchase confirmed (``ErpLine.stage`` moves from ``line`` to ``moves``) the
  commitment is written again, to the moves confirmation made from the line;
* once confirmed (``processing``) the line is read-only and the promise lives on the
  line's open incoming stock moves (``stock.move`` with ``origin =
  purchase.line,<id>``): ``planned_date`` and ``quantity``. A split is one open
  move per delivery (a copy of the first); a smaller commitment or a rejection
  cancels the uncommitted moves, which puts the purchase in Tryton's shipment
  *exception* state: the buyer's signal in the ERP.
* After a partial receipt Tryton makes a backorder move with the line's original
  date; every push reconciles the open moves again against what is still to come.

The portal's mapping is keyed on ``purchase.line`` ids, never on move ids (an
amendment recreates moves). Notes go to ``purchase.line.note`` (writable in every
state) as ``[portal <key>] text``; a note whose key is already there is not
written again.

A buyer's edit in Tryton is not written over: the line's modification stamp moves
with every note the portal writes, so the push compares the line's terms (quantity,
unit price, and before confirmation its date) with those the portal last took
(``erp_terms``) and stops with ``ErpConflict`` when they differ. Once moves exist,
Tryton derives the line's date from them (the earliest planned or effective date),
so a receipt or the portal's own re-dating moves it: the date is compared only
before confirmation, while the line holds its own.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx

from portal.erp.base import (
    TERM_NAMES,
    CommitmentPush,
    ConnectionReport,
    Delivery,
    ErpBadCredentials,
    ErpConflict,
    ErpError,
    ErpLine,
    ErpMissingRights,
    ErpNoApi,
    ErpOrder,
    ErpReceipt,
    ErpRejected,
    ErpServerError,
    ErpUnreachable,
    PushResult,
    allocate_received,
    changed_terms,
    erp_terms,
)
from portal.erp.http import shared_client

OPEN_MOVE_STATES = ["staging", "draft", "assigned"]
# Where a purchase line holds its own date (afterwards it is its moves' earliest).
DATED_LINE_STATES = ("draft", "quotation")
LINE_TERM_FIELDS = ["purchase.state", "purchase.purchase_date", "quantity", "unit_price", "delivery_date", "note"]
_SESSIONS: dict[tuple[str, str, str, str], tuple[str, dict[str, Any]]] = {}
PULLED_STATES = ["quotation", "confirmed", "processing", "done", "cancelled"]


def encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {
            "__class__": "datetime",
            "year": value.year,
            "month": value.month,
            "day": value.day,
            "hour": value.hour,
            "minute": value.minute,
            "second": value.second,
            "microsecond": value.microsecond,
        }
    if isinstance(value, date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    return value


def decode(value: Any) -> Any:
    if isinstance(value, dict):
        kind = value.get("__class__")
        if kind == "date":
            return date(value["year"], value["month"], value["day"])
        if kind == "datetime":
            return datetime(
                value["year"],
                value["month"],
                value["day"],
                value.get("hour", 0),
                value.get("minute", 0),
                value.get("second", 0),
                value.get("microsecond", 0),
            )
        if kind == "Decimal":
            return Decimal(value["decimal"])
        if kind == "bytes":
            return base64.b64decode(value["base64"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


class TrytonClient:
    """A JSON-RPC session with one Tryton database."""

    def __init__(self, url: str, database: str, login: str, password: str, *, timeout: float = 20.0) -> None:
        self.base = url.rstrip("/")
        self.database = database
        self.login_name = login
        self.password = password
        self.http = shared_client(timeout)
        self._ids = itertools.count(1)
        self.session: str | None = None
        self.context: dict[str, Any] = {}
        # A session from an earlier job of this process: Tryton's login hashes the password,
        # which costs the ERP far more than any call the job makes.
        cached = _SESSIONS.get(self._session_key)
        if cached is not None:
            self.session, self.context = cached

    @property
    def _session_key(self) -> tuple[str, str, str, str]:
        return (self.base, self.database, self.login_name, hashlib.sha256(self.password.encode()).hexdigest())

    def close(self) -> None:
        """The HTTP client is shared by the process; nothing to release."""

    def _post(self, path: str, method: str, params: list[Any]) -> Any:
        headers = {}
        if self.session is not None:
            headers["Authorization"] = "Session " + self.session
        body = {"id": next(self._ids), "method": method, "params": encode(params)}
        try:
            response = self.http.post(f"{self.base}/{path}", json=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise ErpServerError(f"Tryton did not answer in time ({exc.__class__.__name__})") from exc
        except httpx.TransportError as exc:
            raise ErpUnreachable(f"cannot reach Tryton at {self.base}: {exc}") from exc
        if response.status_code == 401:
            raise ErpBadCredentials("Tryton refused the login or the session")
        if response.status_code == 403:
            raise ErpMissingRights(f"Tryton refused {method}: {response.text[:200]}")
        if response.status_code == 404:
            raise ErpNoApi(f"no Tryton database {self.database!r} answers at {self.base}")
        if response.status_code >= 500:
            raise ErpServerError(f"Tryton answered {response.status_code} to {method}")
        if response.status_code >= 400:
            raise ErpRejected(f"Tryton answered {response.status_code} to {method}: {response.text[:200]}")
        try:
            data = response.json()
        except ValueError as exc:
            raise ErpServerError(f"Tryton sent something that is not JSON to {method}") from exc
        if data.get("error"):
            raise _error(method, data["error"])
        return decode(data.get("result"))

    def version(self) -> str:
        return str(self._post("rpc/", "common.server.version", []))

    def login(self) -> None:
        result = self._post(
            f"{self.database}/rpc/", "common.db.login", [self.login_name, {"password": self.password}, "en"]
        )
        user_id, session = result[0], result[1]
        token = f"{self.login_name}:{user_id}:{session}".encode()
        self.session = base64.b64encode(token).decode()
        self.context = {}
        preferences = self.call("res.user", "get_preferences", True)
        self.context = {k: v for k, v in preferences.items() if k in ("company", "companies", "language", "groups")}
        _SESSIONS[self._session_key] = (self.session, self.context)

    def call(self, model: str, method: str, *args: Any) -> Any:
        if self.session is None:
            self.login()
        try:
            return self._post(f"{self.database}/rpc/", f"model.{model}.{method}", [*args, self.context])
        except ErpBadCredentials:
            # The session expired (or was never valid): log in again once.
            _SESSIONS.pop(self._session_key, None)
            self.session = None
            self.login()
            return self._post(f"{self.database}/rpc/", f"model.{model}.{method}", [*args, self.context])

    def search_read(
        self,
        model: str,
        domain: list[Any],
        fields: list[str],
        *,
        order: list[Any] | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        return list(self.call(model, "search_read", domain, 0, limit, order, fields))


def _error(method: str, error: Any) -> ErpError:
    kind = error[0] if isinstance(error, list) and error else str(error)
    detail = error[1] if isinstance(error, list) and len(error) > 1 else ""
    message = detail[0] if isinstance(detail, list) and detail else str(detail)
    if kind == "AccessError" or ("access" in str(message).lower() and "denied" in str(message).lower()):
        return ErpMissingRights(f"Tryton refused {method}: {message}")
    if kind in ("UserError", "UserWarning", "AccessError"):
        return ErpRejected(f"Tryton: {message}")
    if kind == "ConcurrencyException":
        return ErpServerError(f"Tryton: {message}")
    return ErpServerError(f"Tryton failed on {method}: {kind}")


def _shipment_id(value: Any) -> int:
    """The id of a move's supplier shipment (0 for none or another kind of shipment)."""
    model, _, record = str(value or "").partition(",")
    return int(record) if model == "stock.shipment.in" and record.isdigit() else 0


def _id(value: Any) -> int | None:
    if isinstance(value, list | tuple):
        return int(value[0]) if value else None
    return int(value) if value not in (None, False) else None


class TrytonAdapter:
    kind = "tryton"

    def __init__(self, url: str, database: str, login: str, password: str, *, timeout: float = 20.0) -> None:
        self.client = TrytonClient(url, database, login, password, timeout=timeout)

    def close(self) -> None:
        self.client.close()

    # --- connection -----------------------------------------------------------------

    def test_connection(self) -> ConnectionReport:
        try:
            version = self.client.version()
            self.client.login()
            details = [f"Tryton {version}, database {self.client.database}"]
            for model, label in (("purchase.purchase", "purchases"), ("stock.move", "stock moves")):
                self.client.search_read(model, [], ["id"], limit=1)
                details.append(f"can read {label}")
            return ConnectionReport(ok=True, version=version, details=details)
        except ErpError as exc:
            return ConnectionReport(ok=False, error=str(exc), error_kind=exc.kind)

    # --- reading --------------------------------------------------------------------

    def pull_orders(self, since: datetime | None) -> list[ErpOrder]:
        domain: list[Any] = [("state", "in", PULLED_STATES)]
        if since is not None:
            stamp = since.astimezone(UTC).replace(tzinfo=None)
            domain.append(["OR", ("write_date", ">", stamp), ("lines.write_date", ">", stamp)])
        purchases = self.client.search_read(
            "purchase.purchase",
            domain,
            [
                "number",
                "reference",
                "party",
                "party.rec_name",
                "company.rec_name",
                "warehouse.code",
                "currency.code",
                "purchase_date",
                "state",
                "write_date",
                "create_date",
                "lines",
            ],
            order=[("id", "ASC")],
        )
        line_ids = [line_id for p in purchases for line_id in p["lines"]]
        lines_by_id: dict[int, dict[str, Any]] = {}
        if line_ids:
            for row in self.client.search_read(
                "purchase.line",
                [("id", "in", line_ids)],
                [
                    "type",
                    "sequence",
                    "product.code",
                    "product.rec_name",
                    "description",
                    "quantity",
                    "unit.symbol",
                    "unit_price",
                    "delivery_date",
                    "write_date",
                    "product_supplier.code",
                ],
            ):
                lines_by_id[row["id"]] = row
        orders = []
        for purchase in purchases:
            lines = []
            for position, line_id in enumerate(purchase["lines"], start=1):
                line = lines_by_id.get(line_id)
                if line is None or line.get("type") != "line" or not line.get("quantity"):
                    continue
                product = line.get("product.") or {}
                supplier_product = line.get("product_supplier.") or {}
                unit = line.get("unit.") or {}
                lines.append(
                    ErpLine(
                        erp_id=str(line_id),
                        position=position,
                        product_code=product.get("code") or f"T{line_id}",
                        product_name=(line.get("description") or product.get("rec_name") or "")[:255],
                        quantity=Decimal(str(line["quantity"])),
                        unit=unit.get("symbol") or "u",
                        unit_price=Decimal(str(line.get("unit_price") or 0)),
                        requested_date=_requested_date(line, purchase.get("purchase_date")),
                        supplier_product_code=supplier_product.get("code"),
                        stage=_stage(purchase["state"]),
                        buyer_terms=_buyer_terms(purchase["state"]),
                    )
                )
            stamps = [purchase.get("write_date") or purchase.get("create_date")]
            stamps += [lines_by_id[i].get("write_date") for i in purchase["lines"] if i in lines_by_id]
            write_date = max(s for s in stamps if s) if any(stamps) else datetime.now(UTC)
            state = {"cancelled": "cancelled", "done": "done"}.get(purchase["state"], "open")
            party = purchase.get("party.") or {}
            orders.append(
                ErpOrder(
                    erp_id=str(purchase["id"]),
                    number=purchase.get("number") or f"TRY-{purchase['id']}",
                    partner_id=str(_id(purchase["party"])),
                    partner_name=party.get("rec_name") or f"Party {purchase['party']}",
                    currency=((purchase.get("currency.") or {}).get("code") or "EUR")[:3],
                    order_date=purchase.get("purchase_date") or date.today(),
                    write_date=write_date.replace(tzinfo=UTC) if write_date.tzinfo is None else write_date,
                    state=state,
                    lines=lines,
                    company_name=(purchase.get("company.") or {}).get("rec_name", ""),
                    warehouse_code=(purchase.get("warehouse.") or {}).get("code") or "",
                )
            )
        return orders

    def pull_receipts(self, line_erp_ids: list[str]) -> list[ErpReceipt]:
        if not line_erp_ids:
            return []
        origins = [f"purchase.line,{line_id}" for line_id in line_erp_ids]
        moves = self.client.search_read(
            "stock.move",
            [("origin", "in", origins), ("state", "=", "done")],
            ["origin", "quantity", "effective_date", "shipment"],
            order=[("id", "ASC")],
        )
        # The supplier shipments' references (where the clerk scans the packing slip's ship notice number), read
        # in one call for all the moves: a move's ``shipment`` is a reference field, "stock.shipment.in,<id>".
        shipment_ids = sorted({_shipment_id(move.get("shipment")) for move in moves} - {0})
        references = {
            shipment["id"]: str(shipment.get("reference") or "")
            for shipment in (self.client.call("stock.shipment.in", "read", shipment_ids, ["reference"])
                             if shipment_ids else [])
        }  # fmt: skip
        return [
            ErpReceipt(
                erp_id=f"move-{move['id']}",
                line_erp_id=str(move["origin"]).split(",", 1)[1],
                quantity=Decimal(str(move["quantity"])),
                received_on=move.get("effective_date") or date.today(),
                shipment_reference=references.get(_shipment_id(move.get("shipment")), ""),
            )
            for move in moves
        ]

    # --- writing --------------------------------------------------------------------

    def push_commitment(self, push: CommitmentPush) -> PushResult:
        client = self.client
        result = PushResult()
        line_id = int(push.line_erp_id)
        lines = client.search_read("purchase.line", [("id", "=", line_id)], LINE_TERM_FIELDS)
        if not lines:
            raise ErpRejected(f"purchase line {line_id} no longer exists in Tryton")
        line = lines[0]
        state = (line.get("purchase.") or {}).get("state")
        changed = changed_terms(push.known_terms, _line_terms(line), _buyer_terms(state))
        if changed:
            raise ErpConflict(
                f"the {' and '.join(changed)} of line {line_id} changed in Tryton after the portal read it; "
                "check the purchase in Tryton, then retry the sync"
            )
        if state in DATED_LINE_STATES:
            self._push_before_confirmation(line_id, line, push, result)
        elif state in ("confirmed", "processing"):
            self._push_to_moves(line_id, push, result)
        else:
            raise ErpRejected(f"the Tryton purchase of line {line_id} is {state}: it takes no commitment")
        self._post_notes(line_id, line.get("note") or "", push.notes, result)
        result.stage = _stage(state)
        # The terms this push left (``line`` holds what it wrote), which the next push compares against. Once
        # confirmed, the line's date Tryton reports follows the moves just written: not compared, as above.
        result.terms = _line_terms(line)
        return result

    def _push_before_confirmation(
        self, line_id: int, line: dict[str, Any], push: CommitmentPush, result: PushResult
    ) -> None:
        """One line takes one date before confirmation: the earliest delivery; and, in draft only (Tryton refuses
        it on a quotation), the total quantity. On a quotation a smaller total is the notes' to tell the buyer;
        once the purchase is confirmed, an intake has the commitment written again, to the moves. ``line`` (as
        read with ``LINE_TERM_FIELDS``) is updated with what was written."""
        if push.rejected or not push.deliveries:
            return  # a rejection before confirmation is a note for the buyer, nothing more
        total = sum((d.quantity for d in push.deliveries), Decimal("0"))
        first = min(d.date for d in push.deliveries)
        values: dict[str, Any] = {}
        if Decimal(str(line["quantity"])) != total:
            if (line.get("purchase.") or {}).get("state") == "draft":
                values["quantity"] = float(total)
            else:
                result.changed.append(f"line {line_id}: {total} committed, left to the buyer on the quotation")
        if line.get("delivery_date") != first:
            values.update({"delivery_date_edit": True, "delivery_date": first})
        if values:
            self.client.call("purchase.line", "write", [line_id], values)
            result.changed.append(f"line {line_id}: {sorted(values)}")
            line.update({key: value for key, value in values.items() if key in ("quantity", "delivery_date")})

    def _push_to_moves(self, line_id: int, push: CommitmentPush, result: PushResult) -> None:
        client = self.client
        origin = f"purchase.line,{line_id}"
        moves = client.search_read(
            "stock.move",
            [("origin", "=", origin)],
            ["state", "quantity", "planned_date"],
            order=[("id", "ASC")],
        )
        done = sum((Decimal(str(m["quantity"])) for m in moves if m["state"] == "done"), Decimal("0"))
        cancelled = sum((Decimal(str(m["quantity"])) for m in moves if m["state"] == "cancelled"), Decimal("0"))
        open_moves = [m for m in moves if m["state"] in OPEN_MOVE_STATES]
        wanted = [] if push.rejected else allocate_received(push.deliveries, done)
        # Pair the open moves (oldest first) with what is still to come (earliest first).
        for index, delivery in enumerate(wanted):
            if index < len(open_moves):
                move = open_moves[index]
                values: dict[str, Any] = {}
                if Decimal(str(move["quantity"])) != delivery.quantity:
                    values["quantity"] = float(delivery.quantity)
                if move.get("planned_date") != delivery.date:
                    values["planned_date"] = delivery.date
                if values:
                    client.call("stock.move", "write", [move["id"]], values)
                    result.changed.append(f"move {move['id']}: {sorted(values)}")
            elif open_moves:
                template = open_moves[0]["id"]
                new_ids = client.call(
                    "stock.move",
                    "copy",
                    [template],
                    {"quantity": float(delivery.quantity), "planned_date": delivery.date, "shipment": None},
                )
                result.changed.append(f"move {new_ids[0]} added for delivery {index + 1}")
            else:
                raise ErpRejected(f"line {line_id} has no open receipt in Tryton to schedule a delivery on")
        surplus = [m["id"] for m in open_moves[len(wanted) :]]
        if surplus:
            # Less committed than Tryton expects (or rejected): cancel, which Tryton flags as a
            # shipment exception for the buyer to handle.
            client.call("stock.move", "cancel", surplus)
            result.changed.append(f"moves {surplus} cancelled")
            cancelled += sum((Decimal(str(m["quantity"])) for m in open_moves[len(wanted) :]), Decimal("0"))
        # Tryton re-creates a move for any part of the line no move accounts for; a smaller
        # commitment is recorded as a cancelled move for the difference instead.
        shortfall = push.ordered_quantity - done - cancelled - sum((d.quantity for d in wanted), Decimal("0"))
        if shortfall > 0 and moves:
            new_ids = client.call(
                "stock.move", "copy", [moves[0]["id"]], {"quantity": float(shortfall), "shipment": None}
            )
            client.call("stock.move", "cancel", new_ids)
            result.changed.append(f"move {new_ids[0]} for the {shortfall} not committed, cancelled")

    def _post_notes(self, line_id: int, note: str, notes: list[tuple[str, str]], result: PushResult) -> None:
        missing = [(key, text) for key, text in notes if f"[portal {key}]" not in note]
        if not missing:
            return
        addition = "\n".join(f"[portal {key}] {text}" for key, text in missing)
        self.client.call("purchase.line", "write", [line_id], {"note": (note + "\n" + addition).strip()})
        result.changed.append(f"line {line_id}: {len(missing)} note(s)")


def _stage(purchase_state: str) -> str:
    """Where a purchase in this state keeps a line's commitment (``ErpLine.stage``); nowhere once it is done or
    cancelled."""
    if purchase_state in DATED_LINE_STATES:
        return "line"
    return "moves" if purchase_state in ("confirmed", "processing") else ""


def _buyer_terms(purchase_state: str | None) -> tuple[str, ...]:
    """The line's terms that are the buyer's in this state (``ErpLine.buyer_terms``): the date only where the line
    holds its own; once confirmed it follows the moves."""
    return TERM_NAMES if purchase_state in DATED_LINE_STATES else ("quantity", "unit price")


def _requested_date(line: dict[str, Any], purchase_date: date | None) -> date:
    return line.get("delivery_date") or purchase_date or date.today()


def _line_terms(line: dict[str, Any]) -> str:
    """A line read with ``LINE_TERM_FIELDS`` as ``erp_terms``, the way an intake reads it."""
    purchase_date = (line.get("purchase.") or {}).get("purchase_date")
    return erp_terms(
        Decimal(str(line.get("quantity") or 0)),
        _requested_date(line, purchase_date),
        Decimal(str(line.get("unit_price") or 0)),
    )


def delivery_from(value: dict[str, Any]) -> Delivery:
    return Delivery(Decimal(str(value["quantity"])), date.fromisoformat(value["date"]))
