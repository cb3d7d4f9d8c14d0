"""Baseline for the inbox: plain Flask + SQLAlchemy Core + Jinja running the same
inbox query (tab counts and one page of 50 orders for one supplier), without the
portal's session, tenant resolution, permissions or layout. Its database connections are the portal's
(``make_engine``: statements prepared after five runs, PostgreSQL's plan choice), and its page query is planned
for each run as the portal's is."""

from __future__ import annotations

import os

from flask import Flask
from sqlalchemy import text

from portal.db import make_engine, planned_per_run

app = Flask(__name__)
engine = make_engine(os.environ["BENCH_APP_URL"])
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
