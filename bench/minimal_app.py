"""The baseline for the portal's overhead: a plain Flask page doing the dashboard's own work for a buyer (in
one transaction with the tenant set for RLS: the suppliers and the supplier changes to decide counted in one
statement, the orders counted per inbox tab up to the inbox's cap in another; a template of the same size) with
none of the portal's session, tenant resolution, permission checks or layout."""

from __future__ import annotations

import os

from flask import Flask
from sqlalchemy import text

from portal.config import load_settings
from portal.db import make_engine

app = Flask(__name__)
# The portal's connections: statements prepared after five runs, PostgreSQL's plan choice.
engine = make_engine(
    os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1),
    pre_ping=load_settings().database_pre_ping,
)
TENANT = os.environ.get("BENCH_TENANT_ID", "1")

PAGE = """<!doctype html><html><head><title>Home</title></head><body><main>
<h1>Northwind Distribution</h1><p>Signed in as buyer.</p><h2>What needs you</h2>
<div class="tiles"><a href="/orders?tab=needs_response"><span>{{ tabs.needs_response }}</span> orders waiting</a>
<a href="/orders?tab=late"><span>{{ tabs.late }}</span> late orders</a>
<a href="/orders/queue"><span>{{ decisions }}</span> supplier changes to decide</a></div>
<h2>Northwind Distribution</h2><div class="tiles"><a href="/suppliers"><span>{{ suppliers }}</span> suppliers</a></div>
</main></body></html>"""

COMPILED = app.jinja_env.from_string(PAGE)  # compiled once, as render_template caches it

FIGURES = text(
    "SELECT (SELECT count(*) FROM suppliers WHERE tenant_id = :t),"
    " (SELECT count(*) FROM (SELECT id FROM change_requests WHERE tenant_id = :t AND state = 'open') AS open)"
)
# The inbox's tabs for a buyer: each counted from the index of the tenant's orders by state, up to the cap.
TABS = {
    "needs_response": "state = 'awaiting_response'",
    "changes_pending": "state = 'changes_pending'",
    "open": "state = 'confirmed'",
    "late": "due_date < CURRENT_DATE AND state IN ('awaiting_response', 'changes_pending', 'confirmed', 'shipped')",
    "shipped": "state IN ('shipped', 'received')",
    "closed": "state IN ('closed', 'cancelled', 'rejected')",
    "all": "true",
}
TAB_COUNTS = text(
    "SELECT "
    + ", ".join(
        f"(SELECT count(*) FROM (SELECT id FROM purchase_orders WHERE tenant_id = :t AND {condition} LIMIT 10001)"
        f" AS counted) AS {tab}"
        for tab, condition in TABS.items()
    )
)


@app.route("/")
def page() -> str:
    with engine.begin() as conn:
        conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": TENANT})
        suppliers, decisions = conn.execute(FIGURES, {"t": int(TENANT)}).one()
        tabs = conn.execute(TAB_COUNTS, {"t": int(TENANT)}).one()
    return COMPILED.render(suppliers=suppliers, decisions=decisions, tabs=tabs)


@app.route("/healthz")
def bare() -> str:
    return "ok"
