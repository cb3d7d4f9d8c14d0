"""Baselines for the orders benchmark, in plain Flask + SQLAlchemy Core + Jinja, without the portal's session,
tenant resolution, permissions or layout. Its database connections are the portal's (``make_engine``: statements
prepared after five runs, PostgreSQL's plan choice, a pooled connection pinged only when the portal's
DATABASE_PRE_PING says so).

- ``GET /``: the inbox's query (tab counts and one page of 50 orders for one supplier), its page query planned
  for each run as the portal's is.
- ``POST /orders/<id>/accept-all``: the durable work of the portal's "accept all as requested" in one
  transaction, as plain statements: the order and its lines read, the order's version claimed, one ledger entry,
  one delivery schedule and one line update per line, the order's new state, one outbox event per line and one
  for the order, the tenant's audit chain extended (head locked, one hash-chained event per line, head moved),
  the commit, then the events' ids pushed to Redis as the portal hands its events to the workers. It checks
  nothing the portal checks beyond the order's supplier, the lines awaiting an answer and the version: the
  floor under what a confirmation can cost here (``bench/confirm_floor.py``)."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime

import redis
from flask import Flask, abort, redirect
from sqlalchemy import JSON, BigInteger, Column, DateTime, Integer, MetaData, Numeric, String, Table, insert, text

from portal.config import load_settings
from portal.db import make_engine, planned_per_run

app = Flask(__name__)
engine = make_engine(os.environ["BENCH_APP_URL"], pre_ping=load_settings().database_pre_ping)
SUPPLIER = int(os.environ["BENCH_SUPPLIER_ID"])

COUNTS = text("""
SELECT state, count(*), count(*) FILTER (WHERE due_date < CURRENT_DATE)
FROM purchase_orders WHERE tenant_id = 1 AND supplier_id = :s GROUP BY state
""")
TABS = {
    "needs_response": ("awaiting_response",), "changes_pending": ("changes_pending",), "open": ("confirmed",),
    "late": ("awaiting_response", "changes_pending", "confirmed", "shipped"), "shipped": ("shipped", "received"),
    "closed": ("closed", "cancelled", "rejected"),
}  # fmt: skip
PAGE = planned_per_run(
    text("""
SELECT o.id, o.number, o.order_date, o.due_date, o.state, o.total_value, o.currency, w.name AS warehouse,
       s.name AS supplier, u.name AS buyer
FROM purchase_orders o JOIN warehouses w ON w.id = o.warehouse_id JOIN suppliers s ON s.id = o.supplier_id
LEFT JOIN users u ON u.id = o.buyer_id
WHERE o.tenant_id = 1 AND o.supplier_id = :s ORDER BY o.due_date NULLS LAST, o.id LIMIT 50
""")
)
TEMPLATE = """<!doctype html><html><head><title>Orders</title></head><body><main><h1>Purchase orders</h1>
<nav>{% for c in counts %}<a href="#">tab <span>{{ c }}</span></a>{% endfor %}</nav>
<table><thead><tr><th>Order</th><th>Ordered</th><th>Due</th><th>Ship-to</th><th>Buyer</th><th>State</th><th>Value</th></tr></thead>
<tbody>{% for o in rows %}<tr><td><a href="/orders/{{ o.id }}">{{ o.number }}</a></td><td>{{ o.order_date }}</td>
<td>{{ o.due_date }}</td><td>{{ o.warehouse }}</td><td>{{ o.buyer or '-' }}</td><td>{{ o.state }}</td>
<td>{{ '{:,.2f}'.format(o.total_value) }} {{ o.currency }}</td></tr>{% endfor %}</tbody></table></main></body></html>"""

COMPILED = app.jinja_env.from_string(TEMPLATE)  # compiled once, as render_template caches it


@app.route("/")
def inbox() -> str:
    with engine.begin() as conn:
        conn.execute(text("SELECT set_config('app.tenant_id', '1', true)"))
        by_state = {state: (total, late) for state, total, late in conn.execute(COUNTS, {"s": SUPPLIER})}
        rows = conn.execute(PAGE, {"s": SUPPLIER}).all()
    counts = [sum(by_state.get(state, (0, 0))[tab == "late"] for state in states) for tab, states in TABS.items()]
    counts.append(sum(total for total, _ in by_state.values()))
    return COMPILED.render(counts=counts, rows=rows)


@app.route("/healthz")
def healthz() -> str:
    return "ok"


# --- the confirmation's floor -------------------------------------------------------

USER = int(os.environ.get("BENCH_USER_ID", "0")) or None
QUEUE = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14"))
CHAIN = "tenant:1"

CONTEXT = text("SELECT set_config('app.tenant_id', '1', true), set_config('app.user_id', :u, true)")
ORDER = text("SELECT id, number, version, responded_at FROM purchase_orders WHERE tenant_id = 1 AND id = :id "
             "AND supplier_id = :s")  # fmt: skip
LINES = text("SELECT id, position, quantity, requested_date, state, supplier_id FROM purchase_order_lines "
             "WHERE tenant_id = 1 AND order_id = :id ORDER BY position")  # fmt: skip
CLAIM = text("UPDATE purchase_orders SET version = version + 1, updated_at = :now WHERE id = :id AND version = :v "
             "RETURNING version")  # fmt: skip
# Both inserts with RETURNING go out as one statement for all rows, as the portal's do (SQLAlchemy's
# "insertmanyvalues").
_ID, _TEXT, _AT = BigInteger(), String(), DateTime(timezone=True)
LEDGER_COLUMNS = {"tenant_id": _ID, "order_id": _ID, "line_id": _ID, "kind": _TEXT, "committed_quantity": Numeric(),
                  "reason_code": _TEXT, "comment": _TEXT, "source": _TEXT, "actor_user_id": _ID, "actor": _TEXT,
                  "created_at": _AT}  # fmt: skip
OUTBOX_COLUMNS = {"tenant_id": _ID, "topic": _TEXT, "created_at": _AT, "available_at": _AT, "attempts": Integer(),
                  "last_error": _TEXT}  # fmt: skip
TABLES = MetaData()


def returning_ids(name: str, json_column: str, others: dict):  # type: ignore[no-untyped-def]
    written = Table(name, TABLES, Column("id", BigInteger, primary_key=True), Column(json_column, JSON),
                    *(Column(other, kind) for other, kind in others.items()))  # fmt: skip
    return insert(written).returning(written.c.id, sort_by_parameter_order=True)


LEDGER = returning_ids("commitment_ledger", "schedules", LEDGER_COLUMNS)
LINE_CONFIRMED = text("UPDATE purchase_order_lines SET state = 'confirmed', promised_from = :day, promised_to = :day, "
                      "open_from = :day WHERE id = :id")  # fmt: skip
SCHEDULE = text(
    "INSERT INTO delivery_schedules (tenant_id, line_id, supplier_id, position, quantity, promised_date, "
    "first_promised_date, notice_days, active, counted_quantity, delivered_quantity) VALUES (1, :line_id, "
    ":supplier_id, 1, :quantity, :day, :day, NULL, true, :quantity, 0)"
)
ORDER_CONFIRMED = text("UPDATE purchase_orders SET state = 'confirmed', due_date = NULL, responded_at = :now "
                       "WHERE id = :id")  # fmt: skip
OUTBOX = returning_ids("outbox_events", "payload", OUTBOX_COLUMNS)
HEAD = text("SELECT last_seq, last_hash FROM audit_chain_heads WHERE chain_key = :k FOR UPDATE")
AUDIT = text(
    "INSERT INTO audit_events (chain_key, seq, tenant_id, actor_user_id, actor, occurred_at, ip, action, "
    "object_type, object_id, before, after, reason, prev_hash, hash) VALUES (:chain, :seq, 1, :user, "
    "'Bench Supplier', :at, '127.0.0.1', 'commitment.accepted', 'order_line', :object_id, NULL, "
    "CAST(:after AS json), '', :prev_hash, :hash)"
)
HEAD_MOVED = text("UPDATE audit_chain_heads SET last_seq = :seq, last_hash = :hash WHERE chain_key = :k")


@app.post("/orders/<int:order_id>/accept-all")
def accept_all(order_id: int):  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(CONTEXT, {"u": str(USER or "")})
        order = conn.execute(ORDER, {"id": order_id, "s": SUPPLIER}).first()
        if order is None:
            abort(404)
        lines = [line for line in conn.execute(LINES, {"id": order_id}) if line.state == "awaiting_response"]
        if not lines or conn.execute(CLAIM, {"id": order_id, "v": order.version, "now": now}).first() is None:
            abort(409)
        schedules = [[{"quantity": str(line.quantity), "date": line.requested_date.isoformat()}] for line in lines]
        ledger_ids = conn.execute(LEDGER, [
            {"tenant_id": 1, "order_id": order_id, "line_id": line.id, "kind": "accepted", "schedules": shown,
             "committed_quantity": line.quantity, "reason_code": "", "comment": "", "source": "portal",
             "actor_user_id": USER, "actor": "Bench Supplier", "created_at": now}
            for line, shown in zip(lines, schedules, strict=True)
        ]).scalars().all()  # fmt: skip
        conn.execute(SCHEDULE, [{"line_id": line.id, "supplier_id": line.supplier_id, "quantity": line.quantity,
                                 "day": line.requested_date} for line in lines])  # fmt: skip
        conn.execute(LINE_CONFIRMED, [{"id": line.id, "day": line.requested_date} for line in lines])
        conn.execute(ORDER_CONFIRMED, {"id": order_id, "now": now})
        events = [("commitment.changed", {"order_id": order_id, "line_id": line.id, "ledger_id": ledger_id,
                                          "kind": "accepted", "schedules": shown})
                  for line, ledger_id, shown in zip(lines, ledger_ids, schedules, strict=True)]  # fmt: skip
        events.append(("order.responded", {"order_id": order_id, "confirmed": [line.id for line in lines],
                                           "pending": []}))  # fmt: skip
        event_ids = conn.execute(OUTBOX, [
            {"tenant_id": 1, "topic": topic, "payload": payload, "created_at": now, "available_at": now, "attempts": 0,
             "last_error": ""} for topic, payload in events
        ]).scalars().all()  # fmt: skip
        # The audit chain last, as the portal appends it just before the commit: its head stays locked briefly.
        seq, last_hash = conn.execute(HEAD, {"k": CHAIN}).one()
        rows = []
        for line, shown in zip(lines, schedules, strict=True):
            seq += 1
            after = {"schedules": shown, "order": order.number, "position": line.position}
            at = datetime.now(UTC)
            body = json.dumps({"chain": CHAIN, "seq": seq, "tenant_id": 1, "actor_user_id": USER,
                               "actor": "Bench Supplier", "occurred_at": at.isoformat(timespec="microseconds"),
                               "ip": "127.0.0.1", "action": "commitment.accepted", "object_type": "order_line",
                               "object_id": str(line.id), "before": None, "after": after, "reason": ""},
                              sort_keys=True, separators=(",", ":"))  # fmt: skip
            digest = hashlib.sha256(last_hash.encode() + body.encode()).hexdigest()
            rows.append({"chain": CHAIN, "seq": seq, "user": USER, "at": at, "object_id": str(line.id),
                         "after": json.dumps(after), "prev_hash": last_hash, "hash": digest})  # fmt: skip
            last_hash = digest
        conn.execute(AUDIT, rows)
        conn.execute(HEAD_MOVED, {"seq": seq, "hash": last_hash, "k": CHAIN})
    # After the commit, as the portal hands its events to the workers (one message for the batch).
    QUEUE.rpush("bench:confirmed-events", json.dumps(list(event_ids)))
    return redirect(f"/orders/{order_id}", 303)
