"""OdooProtocolDouble: a test double of Odoo's external API (Odoo itself cannot run here).

It implements, over real HTTP, the documented endpoints the portal uses and the
field differences of versions 16 to 19 (``shared`` reference notes on Odoo):

* JSON-2 (19+): ``POST /json/2/<model>/<method>``, ``Authorization: bearer <key>``,
  named parameters, real HTTP status codes (401 bad key, 403 access, 404 unknown,
  422 business error); ``GET /web/version``.
* XML-RPC (up to 18): ``/xmlrpc/2/common`` (``version``, ``authenticate``) and
  ``/xmlrpc/2/object`` ``execute_kw``; errors as XML-RPC faults.
* Field names: line unit ``product_uom`` (16, 17), ``product_uom_id`` (18),
  ``uom_id`` (19); ``date_promised`` only in 19; acknowledgement
  ``mail_reception_confirmed`` (16-18, ``mail_reception_declined`` from 18) or
  ``acknowledged`` + ``action_acknowledge`` (19); done quantity ``quantity_done``
  (16, 17) or ``quantity`` (18, 19); no ``done`` state but ``locked`` in 19.
* Private methods (``_...``) are refused; ``write_date`` changes on every write.

What it does not model (and the adapter does not rely on): access rules beyond a
read-only user, onchanges, stock picking workflows (receipts are injected with
:meth:`receive`). Faults can be injected: a 500, a slow answer, or an answer lost
after the write was committed (the connection is closed without a response).
"""

from __future__ import annotations

import contextlib
import http.server
import io
import itertools
import json
import socket
import sys
import threading
import time
import xmlrpc.client
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from werkzeug.wrappers import Request, Response

API_KEY = "odoo-api-key-0123456789"
LOGIN = "portal-sync@northwind.example"
DATABASE = "northwind"


# Fields the double indexes (they are never changed by a write), so searches stay fast in benchmarks.
INDEXED = ("order_id", "res_id", "purchase_line_id")


class OdooUserError(Exception):
    pass


class OdooAccessError(Exception):
    pass


class LoseAnswer(Exception):
    """Close the connection after committing, without answering."""


@dataclass
class Faults:
    fail_next: int = 0
    fail_status: int = 500
    delay_next: float = 0.0
    lose_answer_on: str | None = None  # "model.method": commit, then drop the connection, once

    def take(self) -> tuple[int, float]:
        status, delay = 0, 0.0
        if self.fail_next:
            self.fail_next -= 1
            status = self.fail_status
        if self.delay_next:
            delay, self.delay_next = self.delay_next, 0.0
        return status, delay


@dataclass
class OdooState:
    version: int
    records: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    ids: Any = field(default_factory=lambda: itertools.count(1))
    clock: datetime = field(default_factory=lambda: datetime(2026, 11, 1, 8, 0, 0))
    calls: list[tuple[str, str]] = field(default_factory=list)
    api_enabled: bool = True
    read_only: bool = False
    index: dict[tuple[str, str], dict[Any, set[int]]] = field(default_factory=dict)
    # When each note arrived ("[portal <key>]" -> time.monotonic()), for latency measurements.
    posted_at: dict[str, float] = field(default_factory=dict)

    # --- version-specific names -------------------------------------------------------
    @property
    def unit_field(self) -> str:
        return {16: "product_uom", 17: "product_uom", 18: "product_uom_id"}.get(self.version, "uom_id")

    @property
    def done_field(self) -> str:
        return "quantity_done" if self.version <= 17 else "quantity"

    def fields(self, model: str) -> list[str]:
        common = {
            "purchase.order": ["name", "partner_id", "company_id", "currency_id", "user_id", "state", "date_order",
                               "date_approve", "date_planned", "receipt_status", "order_line", "write_date"],
            "purchase.order.line": ["order_id", "sequence", "display_type", "product_id", "name", "product_qty",
                                    self.unit_field, "price_unit", "date_planned", "qty_received", "move_ids",
                                    "write_date"],
            "stock.move": ["purchase_line_id", "state", "date", self.done_field, "write_date"],
            "product.product": ["name", "default_code"],
            "res.partner": ["name"],
            "mail.message": ["model", "res_id", "body"],
            "mail.activity": ["res_model", "res_id", "summary"],
            "res.users": ["login"],
        }[model]  # fmt: skip
        if model == "purchase.order":
            if self.version >= 19:
                common += ["acknowledged", "locked"]
            else:
                common += ["mail_reminder_confirmed", "mail_reception_confirmed"]
                if self.version >= 18:
                    common += ["mail_reception_declined"]
        if model == "purchase.order.line" and self.version >= 19:
            common.append("date_promised")
        return common

    # --- storage --------------------------------------------------------------------------
    def stamp(self) -> str:
        self.clock += timedelta(seconds=1)
        return self.clock.strftime("%Y-%m-%d %H:%M:%S")

    def add(self, model: str, values: dict[str, Any]) -> int:
        record_id = next(self.ids)
        self.records.setdefault(model, {})[record_id] = {"id": record_id, **values, "write_date": self.stamp()}
        for name in INDEXED:
            if name in values:
                self.index.setdefault((model, name), {}).setdefault(values[name], set()).add(record_id)
        return record_id

    def candidates(self, model: str, domain: list[Any]) -> list[dict[str, Any]]:
        """Records that may match: through an index on an equality term when there is one."""
        table = self.table(model)
        for term in domain:
            if isinstance(term, list | tuple) and term[0] in INDEXED and term[1] in ("=", "in"):
                index = self.index.get((model, term[0]), {})
                keys = term[2] if term[1] == "in" else [term[2]]
                ids = set().union(*(index.get(k, set()) for k in keys)) if keys else set()
                return [table[i] for i in ids if i in table]
        return list(table.values())

    def table(self, model: str) -> dict[int, dict[str, Any]]:
        if model not in self.records and model not in (
            "purchase.order", "purchase.order.line", "stock.move", "product.product", "res.partner",
            "mail.message", "mail.activity", "res.users",
        ):  # fmt: skip
            raise OdooUserError(f"Object {model} doesn't exist")
        return self.records.setdefault(model, {})

    def display(self, model: str, record_id: int | None) -> Any:
        if not record_id:
            return False
        target = {
            "partner_id": "res.partner",
            "product_id": "product.product",
            "order_id": "purchase.order",
            "purchase_line_id": "purchase.order.line",
        }.get(model)
        if target is None:
            return [record_id, f"#{record_id}"]
        record = self.records.get(target, {}).get(record_id, {})
        return [record_id, record.get("name", f"#{record_id}")]

    def render(self, model: str, record: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
        allowed = set(self.fields(model)) | {"id"}
        names = fields or sorted(allowed)
        out: dict[str, Any] = {"id": record["id"]}
        for name in names:
            if name not in allowed:
                raise OdooUserError(f"Invalid field {name!r} on model {model!r}")
            value = record.get(name, False)
            if name in ("partner_id", "product_id", "order_id", "purchase_line_id"):
                value = self.display(name, value)
            elif name in ("company_id", "currency_id", "user_id", self.unit_field) and value:
                value = [value, {"currency_id": "EUR", self.unit_field: "Units"}.get(name, f"#{value}")]
            elif name == "order_line":
                value = sorted(
                    i for i, line in self.table("purchase.order.line").items() if line["order_id"] == record["id"]
                )
            out[name] = value
        return out

    def matches(self, record: dict[str, Any], domain: list[Any]) -> bool:
        for term in domain:
            if isinstance(term, str):
                continue  # "&" is implicit; the portal sends no "|"
            name, op, value = term
            actual = record.get(name, False)
            if op == "=" and actual != value:
                return False
            if op == "!=" and actual == value:
                return False
            if op == "in" and actual not in value:
                return False
            if op == ">" and not (actual and str(actual) > str(value)):
                return False
            if op == "like" and str(value) not in str(actual or ""):
                return False
        return True

    # --- methods --------------------------------------------------------------------------
    def call(self, model: str, method: str, ids: list[int] | None, params: dict[str, Any]) -> Any:
        self.calls.append((model, method))
        if method.startswith("_"):
            raise OdooAccessError(f"Private methods (such as {model}.{method}) cannot be called remotely.")
        writes = {"write", "create", "message_post", "action_acknowledge", "activity_schedule", "unlink"}
        if self.read_only and method in writes:
            raise OdooAccessError(f"You are not allowed to modify '{model}' records.")
        table = self.table(model)
        if method == "fields_get":
            return {name: {"type": "char"} for name in self.fields(model)}
        if method == "context_get":
            return {"uid": 2, "lang": "en_US", "tz": "UTC"}
        if method == "search_read":
            domain = params.get("domain") or []
            found = [r for r in self.candidates(model, domain) if self.matches(r, domain)]
            found.sort(key=lambda r: r["id"])
            if params.get("limit"):
                found = found[: params["limit"]]
            return [self.render(model, r, params.get("fields")) for r in found]
        if method == "read":
            return [self.render(model, table[i], params.get("fields")) for i in ids or [] if i in table]
        if method == "write":
            vals = params["vals"]
            for record_id in ids or []:
                record = table[record_id]
                lowered = "product_qty" in vals and float(vals["product_qty"]) < float(record.get("qty_received") or 0)
                if model == "purchase.order.line" and lowered:
                    raise OdooUserError("You cannot decrease the ordered quantity below the received quantity.")
                unknown = set(vals) - set(self.fields(model))
                if unknown:
                    raise OdooUserError(f"Invalid field {sorted(unknown)[0]!r} on model {model!r}")
                record.update(vals)
                record["write_date"] = self.stamp()
            return True
        if method == "create":
            created = []
            for vals in params["vals_list"]:
                unknown = set(vals) - set(self.fields(model))
                if unknown:
                    raise OdooUserError(f"Invalid field {sorted(unknown)[0]!r} on model {model!r}")
                created.append(self.add(model, {"qty_received": 0, **vals} if model == "purchase.order.line" else vals))
            return created
        if method == "message_post":
            self.posted_at.setdefault(str(params["body"]).split("]", 1)[0] + "]", time.monotonic())
            posted = [
                self.add("mail.message", {"model": model, "res_id": i, "body": params["body"]}) for i in ids or []
            ]
            return posted[0] if len(posted) == 1 else posted
        if method == "activity_schedule":
            for i in ids or []:
                self.add("mail.activity", {"res_model": model, "res_id": i, "summary": params.get("summary", "")})
            return True
        if method == "action_acknowledge" and model == "purchase.order" and self.version >= 19:
            for i in ids or []:
                table[i]["acknowledged"] = True
                table[i]["write_date"] = self.stamp()
            return True
        raise OdooUserError(f"The method '{method}' does not exist on the model '{model}'")

    # --- buyer-side helpers for tests -------------------------------------------------------
    def make_order(self, partner: str, lines: list[tuple[str, float, float, str]], state: str = "purchase") -> int:
        partner_id = next((i for i, p in self.table("res.partner").items() if p["name"] == partner), None) or self.add(
            "res.partner", {"name": partner}
        )
        values: dict[str, Any] = {
            "name": f"P{len(self.table('purchase.order')) + 1:05d}",
            "partner_id": partner_id,
            "company_id": 1,
            "currency_id": 1,
            "user_id": 2,
            "state": state,
            "date_order": "2026-11-20 09:00:00",
        }
        if self.version >= 19:
            values.update({"acknowledged": False, "locked": False})
        else:
            values.update({"mail_reminder_confirmed": False, "mail_reception_confirmed": False})
        order_id = self.add("purchase.order", values)
        for sequence, (code, qty, price, planned) in enumerate(lines, start=1):
            self.add_line(order_id, sequence, code, qty, price, planned)
        return order_id

    def add_line(self, order_id: int, sequence: int, code: str, qty: float, price: float, planned: str) -> int:
        """A line the buyer adds to the order (the order's ``write_date`` moves, as Odoo's does)."""
        product_id = next(
            (i for i, p in self.table("product.product").items() if p["default_code"] == code), None
        ) or self.add("product.product", {"name": f"Product {code}", "default_code": code})
        line: dict[str, Any] = {
            "order_id": order_id,
            "sequence": sequence,
            "display_type": False,
            "product_id": product_id,
            "name": f"Product {code}",
            "product_qty": qty,
            self.unit_field: 1,
            "price_unit": price,
            "date_planned": f"{planned} 12:00:00",
            "qty_received": 0,
        }
        if self.version >= 19:
            line["date_promised"] = False
        line_id = self.add("purchase.order.line", line)
        self.table("purchase.order")[order_id]["write_date"] = self.stamp()
        return line_id

    def lines(self, order_id: int) -> list[dict[str, Any]]:
        return sorted(
            (r for r in self.table("purchase.order.line").values() if r["order_id"] == order_id), key=lambda r: r["id"]
        )

    def receive(self, line_id: int, quantity: float, day: str) -> int:
        line = self.table("purchase.order.line")[line_id]
        line["qty_received"] = float(line.get("qty_received") or 0) + quantity
        line["write_date"] = self.stamp()
        return self.add(
            "stock.move",
            {"purchase_line_id": line_id, "state": "done", "date": f"{day} 10:00:00", self.done_field: quantity},
        )

    def messages(self, order_id: int) -> list[str]:
        return [
            m["body"]
            for m in self.table("mail.message").values()
            if m["model"] == "purchase.order" and m["res_id"] == order_id
        ]


class _KeepAliveHandler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, as Odoo behind its usual proxy answers, in front of the double's WSGI app.

    Not werkzeug's development server: it closes every connection (and drains the socket after each
    answer, which would swallow the next request), so every request had cost a new TCP connection and a
    server thread. Each body here is read in full before the app runs, so the next request follows.
    """

    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle kept-alive connection is closed after a minute, as a proxy would
    disable_nagle_algorithm = True  # headers and body leave as two writes: no 40 ms delayed-ACK stall

    def setup(self) -> None:
        super().setup()
        self.server.open_sockets.add(self.connection)  # type: ignore[attr-defined]

    def finish(self) -> None:
        self.server.open_sockets.discard(self.connection)  # type: ignore[attr-defined]
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no access log line per request

    def _serve(self) -> None:
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(length),
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": str(self.server.server_address[1]),
            "SERVER_PROTOCOL": self.request_version,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(self.rfile.read(length)),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "werkzeug.socket": self.connection,  # LoseAnswer closes it: the work done, no answer sent
        }
        for name, value in self.headers.items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [status, headers]
            return lambda data: None

        chunks = self.server.app(environ, start_response)  # type: ignore[attr-defined]
        body = b"".join(chunks)
        try:
            code, _, reason = started[0].partition(" ")
            self.send_response(int(code), reason)
            for name, value in started[1]:
                if name.lower() not in ("content-length", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True

    do_GET = do_POST = _serve


class _KeepAliveServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, app: Any) -> None:
        super().__init__(("127.0.0.1", 0), _KeepAliveHandler)
        self.app = app
        self.open_sockets: set[socket.socket] = set()
        self.server_port = self.server_address[1]

    def close_connections(self) -> None:
        for sock in list(self.open_sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class OdooProtocolDouble:
    """Serves :class:`OdooState` over HTTP on a free port, in a thread."""

    def __init__(self, version: int, *, latency: float = 0.0) -> None:
        self.latency = latency  # seconds added to every answer (benchmarks: an ERP answering in 20 ms)
        self.state = OdooState(version)
        self.faults = Faults()
        self.lock = threading.Lock()
        self.server = _KeepAliveServer(self.wsgi)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> OdooProtocolDouble:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.close_connections()
        self.server.server_close()

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            response = self.route(request)
        except LoseAnswer:
            # The work is committed; the client sees the connection close with no answer.
            sock = environ.get("werkzeug.socket")
            if sock is not None:
                sock.close()
            response = Response("", status=500)
        return response(environ, start_response)

    def route(self, request: Request) -> Response:
        path = request.path
        if not self.state.api_enabled and (path.startswith("/json/2") or path.startswith("/xmlrpc")):
            return Response("Not Found", status=404)
        status, delay = self.faults.take()
        if delay or self.latency:
            time.sleep(delay + self.latency)
        if status:
            return Response(json.dumps({"name": "werkzeug.exceptions.InternalServerError"}), status=status)
        if path == "/web/version" and request.method == "GET":
            if self.state.version < 19:
                return Response("Not Found", status=404)
            return Response(json.dumps({"version": "19.0", "version_info": [19, 0, 0, "final", 0, ""]}))
        if path.startswith("/json/2/"):
            return self.json2(request)
        if path == "/xmlrpc/2/common":
            return self.xmlrpc_common(request)
        if path == "/xmlrpc/2/object":
            return self.xmlrpc_object(request)
        return Response("Not Found", status=404)

    def _dispatch(self, model: str, method: str, ids: list[int] | None, params: dict[str, Any]) -> Any:
        with self.lock:
            result = self.state.call(model, method, ids, params)
        if self.faults.lose_answer_on == f"{model}.{method}":
            self.faults.lose_answer_on = None
            raise LoseAnswer
        return result

    def json2(self, request: Request) -> Response:
        if request.headers.get("Authorization", "") != f"bearer {API_KEY}":
            return Response(json.dumps({"name": "odoo.exceptions.AccessDenied", "message": "Access Denied"}), 401)
        _, _, _, model, method = request.path.split("/", 4)
        body = request.get_json(silent=True) or {}
        ids = body.pop("ids", None)
        body.pop("context", None)
        try:
            result = self._dispatch(model, method, ids, body)
        except OdooAccessError as exc:
            return Response(json.dumps({"name": "odoo.exceptions.AccessError", "message": str(exc)}), 403)
        except OdooUserError as exc:
            return Response(json.dumps({"name": "odoo.exceptions.UserError", "message": str(exc)}), 422)
        return Response(json.dumps(result), content_type="application/json")

    def _xml(self, value: Any) -> Response:
        return Response(xmlrpc.client.dumps((value,), methodresponse=True, allow_none=True), content_type="text/xml")

    def _fault(self, kind: str, message: str) -> Response:
        text = f"Traceback (most recent call last):\n  ...\nodoo.exceptions.{kind}: {message}"
        return Response(xmlrpc.client.dumps(xmlrpc.client.Fault(1, text), allow_none=True), content_type="text/xml")

    def xmlrpc_common(self, request: Request) -> Response:
        params, method = xmlrpc.client.loads(request.get_data())
        if method == "version":
            return self._xml({"server_version": f"{self.state.version}.0", "protocol_version": 1})
        if method == "authenticate":
            db, login, key, _ = params
            return self._xml(2 if (db, login, key) == (DATABASE, LOGIN, API_KEY) else False)
        return self._fault("UserError", f"unknown method {method}")

    def xmlrpc_object(self, request: Request) -> Response:
        params, _ = xmlrpc.client.loads(request.get_data())
        db, uid, key, model, method, args, kwargs = (*params, {})[:7]
        if (db, uid, key) != (DATABASE, 2, API_KEY):
            return self._fault("AccessDenied", "Access Denied")
        ids: list[int] | None = None
        named = dict(kwargs or {})
        if method in ("search_read", "search", "search_count"):
            named["domain"] = args[0] if args else named.get("domain", [])
        elif method == "create":
            named["vals_list"] = args[0]
        elif method in ("write",):
            ids, named["vals"] = args[0], args[1]
        elif args:
            ids = args[0]
        try:
            return self._xml(self._dispatch(model, method, ids, named))
        except OdooAccessError as exc:
            return self._fault("AccessError", str(exc))
        except OdooUserError as exc:
            return self._fault("UserError", str(exc))
