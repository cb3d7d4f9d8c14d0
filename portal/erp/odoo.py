"""Odoo: JSON-2 for Odoo 19 and newer, XML-RPC up to 18 (see the README's ERP section).

Field names differ between versions, so they are resolved per connection with
``fields_get`` (unit of measure ``product_uom`` / ``product_uom_id`` / ``uom_id``,
promised date ``date_promised`` where it exists, done quantity ``quantity_done`` /
``quantity``, acknowledgement ``acknowledged`` + ``action_acknowledge`` or the older
``mail_reception_confirmed``). Only public methods are called.

A commitment is reconciled, never replayed:

* the first delivery goes on the ERP line itself (``product_qty``, ``date_planned``
  and ``date_promised``); each further delivery of a split is a sibling line of the
  same product and price whose description ends with ``[portal <line>/<n>]`` (the
  pattern of OCA's ``purchase_update_proposal``); an existing sibling is updated,
  a missing one created, one no longer wanted set to zero;
* notes are ``message_post`` on the order with ``[portal <key>]`` in the body, and
  a key already in the order's chatter is not posted again;
* the line's ``write_date`` is compared with the one the portal last saw: a buyer's
  edit in Odoo since then stops the push (``ErpConflict``) instead of being overwritten.
"""

from __future__ import annotations

import hashlib
import itertools
import time
import xmlrpc.client
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx

from portal.erp.base import (
    CommitmentPush,
    ConnectionReport,
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
    erp_terms,
)
from portal.erp.http import shared_client

NO_API = (
    "this Odoo answers no external API (on Odoo Online the external API needs the Custom plan, "
    "on other hosting check that /xmlrpc or /json/2 is not blocked)"
)
PULLED_STATES = ["sent", "to approve", "purchase", "done", "cancel"]
# Field names change only with an Odoo upgrade: ask again every ten minutes, not on every job.
FIELDS_TTL = 600.0
_FIELDS_CACHE: dict[tuple[str, str, str], tuple[float, frozenset[str]]] = {}
_UIDS: dict[tuple[str, str, str, str], int] = {}


def _parse_stamp(value: Any) -> datetime:
    if not value:
        return datetime.now(UTC)
    text = str(value).replace("T", " ")
    return datetime.fromisoformat(text[:19]).replace(tzinfo=UTC)


def _day(value: Any) -> date | None:
    if not value:
        return None
    return date.fromisoformat(str(value)[:10])


def _m2o(value: Any) -> tuple[int | None, str]:
    if isinstance(value, list | tuple) and value:
        return int(value[0]), str(value[1]) if len(value) > 1 else ""
    if isinstance(value, int) and not isinstance(value, bool):
        return value, ""
    return None, ""


class _Json2:
    """``POST /json/2/<model>/<method>`` with a bearer API key (Odoo 19+)."""

    name = "json2"

    def __init__(self, url: str, database: str, key: str, timeout: float) -> None:
        self.url, self.database = url, database
        self.http = shared_client(timeout)
        self.headers = {"Authorization": f"bearer {key}", **({"X-Odoo-Database": database} if database else {})}

    def authenticate(self) -> int | None:
        user = self.call("res.users", "context_get")
        return user.get("uid") if isinstance(user, dict) else None

    def call(self, model: str, method: str, ids: list[int] | None = None, **params: Any) -> Any:
        body: dict[str, Any] = dict(params)
        if ids is not None:
            body["ids"] = ids
        try:
            response = self.http.post(f"{self.url}/json/2/{model}/{method}", json=body, headers=self.headers)
        except httpx.TimeoutException as exc:
            raise ErpServerError("Odoo did not answer in time") from exc
        except httpx.TransportError as exc:
            raise ErpUnreachable(f"cannot reach Odoo at {self.url}: {exc}") from exc
        if response.status_code == 200:
            return response.json()
        message = _json_error(response)
        if response.status_code == 401:
            raise ErpBadCredentials(f"Odoo refused the API key: {message}")
        if response.status_code == 403:
            raise ErpMissingRights(f"Odoo refused {model}.{method}: {message}")
        if response.status_code == 404:
            raise ErpNoApi(NO_API) if "/json/2" not in message else ErpNoApi(message)
        if response.status_code >= 500:
            raise ErpServerError(f"Odoo answered {response.status_code} to {model}.{method}: {message}")
        raise ErpRejected(f"Odoo refused {model}.{method}: {message}")

    def close(self) -> None:
        """The HTTP client is shared by the process; nothing to release."""


def _json_error(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(data, dict):
        return str(data.get("message") or data.get("name") or data)[:300]
    return str(data)[:300]


class _TimeoutTransport(xmlrpc.client.Transport):
    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def make_connection(self, host: Any) -> Any:
        connection = super().make_connection(host)
        connection.timeout = self.timeout
        return connection


class _SafeTimeoutTransport(_TimeoutTransport, xmlrpc.client.SafeTransport):
    """HTTPS with the same timeout (the MRO puts SafeTransport's connection under ours)."""


class _XmlRpc:
    """``/xmlrpc/2/common`` and ``/xmlrpc/2/object`` (Odoo up to 18; deprecated in 19)."""

    name = "xmlrpc"

    def __init__(self, url: str, database: str, login: str, key: str, timeout: float) -> None:
        self.url, self.database, self.login, self.key = url, database, login, key
        self.timeout = timeout
        # The uid of an earlier job of this process with the same credentials (one round trip less).
        self.uid: int | None = _UIDS.get(self._key)

    @property
    def _key(self) -> tuple[str, str, str, str]:
        return (self.url, self.database, self.login, hashlib.sha256(self.key.encode()).hexdigest())

    def _proxy(self, endpoint: str) -> xmlrpc.client.ServerProxy:
        transport: xmlrpc.client.Transport = (
            _SafeTimeoutTransport(self.timeout) if self.url.startswith("https") else _TimeoutTransport(self.timeout)
        )
        return xmlrpc.client.ServerProxy(f"{self.url}/xmlrpc/2/{endpoint}", transport=transport, allow_none=True)

    def _guard(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except xmlrpc.client.Fault as fault:
            raise _fault(what, fault) from fault
        except xmlrpc.client.ProtocolError as exc:
            if exc.errcode == 404:
                raise ErpNoApi(NO_API) from exc
            if exc.errcode in (401, 403):
                raise ErpMissingRights(f"Odoo refused {what} ({exc.errcode})") from exc
            raise ErpServerError(f"Odoo answered {exc.errcode} to {what}") from exc
        except TimeoutError as exc:
            raise ErpServerError("Odoo did not answer in time") from exc
        except OSError as exc:
            raise ErpUnreachable(f"cannot reach Odoo at {self.url}: {exc}") from exc

    def version(self) -> dict[str, Any]:
        return self._guard("version", lambda: self._proxy("common").version())

    def authenticate(self) -> int | None:
        uid = self._guard(
            "authenticate", lambda: self._proxy("common").authenticate(self.database, self.login, self.key, {})
        )
        if not uid:
            _UIDS.pop(self._key, None)
            raise ErpBadCredentials("Odoo refused the login or API key")
        self.uid = _UIDS[self._key] = int(uid)
        return self.uid

    def call(self, model: str, method: str, ids: list[int] | None = None, **params: Any) -> Any:
        if self.uid is None:
            self.authenticate()
        args: list[Any] = [ids] if ids is not None else []
        # Positional arguments where Odoo's signatures want them; the rest by name.
        if method in ("search_read", "search", "search_count") and "domain" in params:
            args = [params.pop("domain")]
        elif method == "write":
            args.append(params.pop("vals"))
        elif method == "create":
            args = [params.pop("vals_list")]
        return self._guard(
            f"{model}.{method}",
            lambda: self._proxy("object").execute_kw(self.database, self.uid, self.key, model, method, args, params),
        )

    def close(self) -> None:
        pass


def _fault(what: str, fault: xmlrpc.client.Fault) -> ErpError:
    text = str(fault.faultString)
    first = text.strip().splitlines()[-1] if text.strip() else text
    if "AccessDenied" in text or "Access Denied" in text:
        return ErpBadCredentials("Odoo refused the login or API key")
    if "AccessError" in text:
        return ErpMissingRights(f"Odoo refused {what}: {first[:300]}")
    if "UserError" in text or "ValidationError" in text:
        return ErpRejected(f"Odoo refused {what}: {first[:300]}")
    return ErpServerError(f"Odoo failed on {what}: {first[:300]}")


class OdooAdapter:
    kind = "odoo"

    def __init__(
        self, url: str, database: str, login: str, key: str, *, protocol: str = "", timeout: float = 20.0
    ) -> None:
        self.url = url.rstrip("/")
        self.database, self.login, self.key, self.timeout = database, login, key, timeout
        self.protocol = protocol
        self._transport: _Json2 | _XmlRpc | None = None
        self._fields: dict[str, set[str]] = {}
        self._ids = itertools.count(1)

    # --- transport and field names ---------------------------------------------------

    def _detect(self) -> str:
        """JSON-2 when the server is 19 or newer, else XML-RPC (remembered like the field names)."""
        cached = _FIELDS_CACHE.get((self.url, self.database, "@protocol"))
        if cached is not None and cached[0] >= time.monotonic():
            return next(iter(cached[1]))
        protocol = self._ask_version()
        _FIELDS_CACHE[(self.url, self.database, "@protocol")] = (time.monotonic() + FIELDS_TTL, frozenset({protocol}))
        return protocol

    def _ask_version(self) -> str:
        try:
            response = httpx.get(f"{self.url}/web/version", timeout=self.timeout)
            if response.status_code == 200:
                major = int(str(response.json().get("version_info", [0])[0]).split("~")[-1] or 0)
                return "json2" if major >= 19 else "xmlrpc"
        except (httpx.HTTPError, ValueError, TypeError):
            pass
        return "xmlrpc"

    @property
    def transport(self) -> _Json2 | _XmlRpc:
        if self._transport is None:
            self.protocol = self.protocol or self._detect()
            if self.protocol == "json2":
                self._transport = _Json2(self.url, self.database, self.key, self.timeout)
            else:
                self._transport = _XmlRpc(self.url, self.database, self.login, self.key, self.timeout)
        return self._transport

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def call(self, model: str, method: str, ids: list[int] | None = None, **params: Any) -> Any:
        try:
            return self.transport.call(model, method, ids, **params)
        except ErpRejected as error:
            if "Invalid field" in str(error):
                # The server's fields changed (an Odoo upgrade at the same address): the next attempt reads
                # them again instead of failing until the cached names expire.
                self.forget_fields()
            raise

    def forget_fields(self) -> None:
        self._fields.clear()
        for key in [key for key in _FIELDS_CACHE if key[:2] == (self.url, self.database)]:
            _FIELDS_CACHE.pop(key, None)

    def fields(self, model: str) -> set[str]:
        """The model's field names on this server, cached for a while across adapters (one per job)."""
        if model not in self._fields:
            key = (self.url, self.database, model)
            cached = _FIELDS_CACHE.get(key)
            if cached is None or cached[0] < time.monotonic():
                described = self.call(model, "fields_get", attributes=["type"])
                cached = (time.monotonic() + FIELDS_TTL, frozenset(described))
                _FIELDS_CACHE[key] = cached
            self._fields[model] = set(cached[1])
        return self._fields[model]

    def unit_field(self) -> str:
        names = self.fields("purchase.order.line")
        return next(n for n in ("uom_id", "product_uom_id", "product_uom") if n in names)

    def done_quantity_field(self) -> str:
        names = self.fields("stock.move")
        return "quantity_done" if "quantity_done" in names else "quantity"

    # --- connection -------------------------------------------------------------------

    def test_connection(self) -> ConnectionReport:
        try:
            version = ""
            transport = self.transport
            if isinstance(transport, _XmlRpc):
                version = str(transport.version().get("server_version", ""))
            else:
                version = str(httpx.get(f"{self.url}/web/version", timeout=self.timeout).json().get("version", ""))
            transport.authenticate()
            details = [f"Odoo {version} over {'JSON-2' if self.protocol == 'json2' else 'XML-RPC'}"]
            self.call("purchase.order", "search_read", domain=[], fields=["id"], limit=1)
            details.append("can read purchase orders")
            details.append(f"line unit field: {self.unit_field()}")
            if "date_promised" in self.fields("purchase.order.line"):
                details.append("promised dates go to date_promised")
            if "acknowledged" in self.fields("purchase.order"):
                details.append("acknowledgement with action_acknowledge")
            return ConnectionReport(ok=True, version=version, details=details)
        except ErpError as exc:
            return ConnectionReport(ok=False, error=str(exc), error_kind=exc.kind)

    # --- reading ----------------------------------------------------------------------

    def pull_orders(self, since: datetime | None) -> list[ErpOrder]:
        domain: list[Any] = [["state", "in", PULLED_STATES]]
        if since is not None:
            domain.append(["write_date", ">", since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")])
        orders = self.call(
            "purchase.order",
            "search_read",
            domain=domain,
            fields=["name", "partner_id", "company_id", "currency_id", "user_id", "state", "date_order", "write_date"],
            order="id asc",
        )
        if not orders:
            return []
        unit = self.unit_field()
        line_fields = [
            "order_id",
            "sequence",
            "display_type",
            "product_id",
            "name",
            "product_qty",
            unit,
            "price_unit",
            "date_planned",
            "write_date",
        ]
        lines = self.call(
            "purchase.order.line",
            "search_read",
            domain=[["order_id", "in", [o["id"] for o in orders]]],
            fields=line_fields,
            order="order_id asc, sequence asc, id asc",
        )
        product_ids = sorted({p for p in (_m2o(line["product_id"])[0] for line in lines) if p})
        codes = {
            p["id"]: p.get("default_code") or ""
            for p in (self.call("product.product", "read", product_ids, fields=["default_code"]) if product_ids else [])
        }
        by_order: dict[int, list[dict[str, Any]]] = {}
        for line in lines:
            by_order.setdefault(_m2o(line["order_id"])[0] or 0, []).append(line)
        result = []
        for order in orders:
            erp_lines = []
            position = 0
            for line in by_order.get(order["id"], []):
                if line.get("display_type") or "[portal " in (line.get("name") or ""):
                    continue  # sections, notes, and the portal's own split lines
                position += 1
                product_id, product_name = _m2o(line["product_id"])
                erp_lines.append(
                    ErpLine(
                        erp_id=str(line["id"]),
                        position=position,
                        product_code=codes.get(product_id or 0) or f"O{product_id}",
                        product_name=(line.get("name") or product_name)[:255],
                        quantity=Decimal(str(line["product_qty"])),
                        unit=(_m2o(line.get(unit))[1] or "Units")[:16],
                        unit_price=Decimal(str(line.get("price_unit") or 0)),
                        requested_date=_day(line.get("date_planned")) or _day(order["date_order"]) or date.today(),
                        write_date=str(line.get("write_date") or ""),
                    )
                )
            state = {"cancel": "cancelled", "done": "done"}.get(order["state"], "open")
            partner_id, partner_name = _m2o(order["partner_id"])
            result.append(
                ErpOrder(
                    erp_id=str(order["id"]),
                    number=order["name"],
                    partner_id=str(partner_id),
                    partner_name=partner_name or f"Partner {partner_id}",
                    currency=(_m2o(order.get("currency_id"))[1] or "EUR")[:3],
                    order_date=_day(order["date_order"]) or date.today(),
                    write_date=max(
                        [_parse_stamp(order["write_date"])]
                        + [_parse_stamp(line["write_date"]) for line in by_order.get(order["id"], [])]
                    ),
                    state=state,
                    lines=erp_lines,
                    company_name=_m2o(order.get("company_id"))[1],
                )
            )
        return result

    def pull_receipts(self, line_erp_ids: list[str]) -> list[ErpReceipt]:
        if not line_erp_ids:
            return []
        quantity = self.done_quantity_field()
        moves = self.call(
            "stock.move",
            "search_read",
            domain=[["purchase_line_id", "in", [int(i) for i in line_erp_ids]], ["state", "=", "done"]],
            fields=["purchase_line_id", quantity, "date"],
            order="id asc",
        )
        return [
            ErpReceipt(
                erp_id=f"move-{move['id']}",
                line_erp_id=str(_m2o(move["purchase_line_id"])[0]),
                quantity=Decimal(str(move[quantity])),
                received_on=_day(move.get("date")) or date.today(),
            )
            for move in moves
        ]

    # --- writing ----------------------------------------------------------------------

    def push_commitment(self, push: CommitmentPush) -> PushResult:
        result = PushResult()
        line_id, order_id = int(push.line_erp_id), int(push.order_erp_id)
        line_fields = self.fields("purchase.order.line")
        promised = "date_promised" in line_fields
        read_fields = ["order_id", "product_id", "name", "product_qty", "qty_received", "price_unit", "date_planned"]
        read_fields += ["write_date", self.unit_field()] + (["date_promised"] if promised else [])
        found = self.call("purchase.order.line", "read", [line_id], fields=read_fields)
        if not found:
            raise ErpRejected(f"purchase order line {line_id} no longer exists in Odoo")
        line = found[0]
        if push.known_write_date and str(line.get("write_date")) != push.known_write_date:
            raise ErpConflict(
                f"line {line_id} was changed in Odoo at {line.get('write_date')} after the portal read it; "
                "check the order in Odoo, then retry the sync"
            )
        order = self.call("purchase.order", "read", [order_id], fields=self._order_fields())[0]
        if order.get("state") == "cancel" or order.get("locked"):
            raise ErpRejected(f"purchase order {order.get('name')} is {order.get('state')} or locked in Odoo")
        marker = f"[portal {line_id}/"
        siblings = {
            int(str(s["name"]).split(marker, 1)[1].split("]", 1)[0]): s
            for s in self.call(
                "purchase.order.line",
                "search_read",
                domain=[["order_id", "=", order_id], ["name", "like", marker]],
                fields=["name", "product_qty", "qty_received", "date_planned"]
                + (["date_promised"] if promised else []),
            )
        }
        deliveries = sorted(push.deliveries, key=lambda d: d.date)
        if not push.rejected and deliveries:
            first = deliveries[0]
            self._set_line(line_id, line, first.quantity, first.date, promised, result)
            for index, delivery in enumerate(deliveries[1:], start=2):
                sibling = siblings.get(index)
                if sibling is not None:
                    self._set_line(sibling["id"], sibling, delivery.quantity, delivery.date, promised, result)
                    continue
                values: dict[str, Any] = {
                    "order_id": order_id,
                    "product_id": _m2o(line["product_id"])[0],
                    "name": f"{line['name']} {marker}{index}]",
                    "product_qty": float(delivery.quantity),
                    "price_unit": line["price_unit"],
                    "date_planned": f"{delivery.date.isoformat()} 12:00:00",
                    self.unit_field(): _m2o(line.get(self.unit_field()))[0],
                }
                if promised:
                    values["date_promised"] = values["date_planned"]
                created = self.call("purchase.order.line", "create", vals_list=[values])
                result.changed.append(f"line {created} added for delivery {index}")
        keep = 1 + (len(deliveries) - 1 if deliveries and not push.rejected else 0)
        for index, sibling in siblings.items():
            if index > keep and Decimal(str(sibling["product_qty"])) != Decimal(str(sibling.get("qty_received") or 0)):
                self.call(
                    "purchase.order.line", "write", [sibling["id"]], vals={"product_qty": sibling["qty_received"]}
                )
                result.changed.append(f"line {sibling['id']} no longer wanted: set to what was received")
        self._acknowledge(order, result)
        self._post_notes(order_id, push.notes, result)
        if push.rejected:
            self._flag_rejection(order_id, line, result)
        after = self.call(
            "purchase.order.line", "read", [line_id], fields=["write_date", "product_qty", "date_planned", "price_unit"]
        )
        if after:
            result.write_date = str(after[0]["write_date"])
            # As an intake reads them: a later intake that finds other terms knows the buyer changed the line.
            planned = _day(after[0].get("date_planned"))
            if planned is not None:
                quantity, price = (Decimal(str(after[0].get(name) or 0)) for name in ("product_qty", "price_unit"))
                result.terms = erp_terms(quantity, planned, price)
        return result

    def _order_fields(self) -> list[str]:
        names = self.fields("purchase.order")
        return ["name", "state"] + [n for n in ("acknowledged", "mail_reception_confirmed", "locked") if n in names]

    def _set_line(
        self, line_id: int, line: dict[str, Any], quantity: Any, day: date, promised: bool, result: PushResult
    ) -> None:
        values: dict[str, Any] = {}
        received = Decimal(str(line.get("qty_received") or 0))
        wanted = max(Decimal(str(quantity)), received)
        if Decimal(str(line["product_qty"])) != wanted:
            values["product_qty"] = float(wanted)
        stamp = f"{day.isoformat()} 12:00:00"
        if _day(line.get("date_planned")) != day:
            values["date_planned"] = stamp
        if promised and _day(line.get("date_promised")) != day:
            values["date_promised"] = stamp
        if values:
            self.call("purchase.order.line", "write", [line_id], vals=values)
            result.changed.append(f"line {line_id}: {sorted(values)}")

    def _acknowledge(self, order: dict[str, Any], result: PushResult) -> None:
        if "acknowledged" in order:
            if not order["acknowledged"]:
                self.call("purchase.order", "action_acknowledge", [order["id"]])
                result.changed.append("order acknowledged")
        elif "mail_reception_confirmed" in order and not order["mail_reception_confirmed"]:
            self.call("purchase.order", "write", [order["id"]], vals={"mail_reception_confirmed": True})
            result.changed.append("order acknowledged")

    def _post_notes(self, order_id: int, notes: list[tuple[str, str]], result: PushResult) -> None:
        if not notes:
            return
        posted = self.call(
            "mail.message",
            "search_read",
            domain=[["model", "=", "purchase.order"], ["res_id", "=", order_id], ["body", "like", "[portal "]],
            fields=["body"],
        )
        bodies = " ".join(str(m.get("body") or "") for m in posted)
        for key, text in notes:
            if f"[portal {key}]" in bodies:
                continue
            self.call("purchase.order", "message_post", [order_id], body=f"[portal {key}] {text}")
            result.changed.append(f"note {key}")

    def _flag_rejection(self, order_id: int, line: dict[str, Any], result: PushResult) -> None:
        summary = f"Supplier rejected: {line['name'][:80]}"
        existing = self.call(
            "mail.activity",
            "search_read",
            domain=[["res_model", "=", "purchase.order"], ["res_id", "=", order_id], ["summary", "=", summary]],
            fields=["id"],
        )
        if not existing:
            self.call("purchase.order", "activity_schedule", [order_id], summary=summary)
            result.changed.append("buyer activity scheduled")
