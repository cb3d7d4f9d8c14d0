"""The baseline for the portal's overhead: a plain Flask page doing the dashboard's
own work (the same three counts in one transaction with the tenant set for RLS,
and a template of the same size) with none of the portal's session, tenant
resolution, permission checks or layout."""

from __future__ import annotations

import os

from flask import Flask
from sqlalchemy import text

from portal.db import make_engine

app = Flask(__name__)
# The portal's connections: statements prepared after five runs, PostgreSQL's plan choice.
engine = make_engine(os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1))
TENANT = os.environ.get("BENCH_TENANT_ID", "1")

PAGE = """<!doctype html><html><head><title>Home</title></head><body><main>
<h1>Northwind Distribution</h1><p>Signed in as buyer.</p>
<div class="tiles"><a href="/suppliers"><span>{{ suppliers }}</span> suppliers</a>
<a href="/people"><span>{{ people }}</span> people</a>
<a href="/people"><span>{{ invitations }}</span> invitations</a></div>
</main></body></html>"""

COMPILED = app.jinja_env.from_string(PAGE)  # compiled once, as render_template caches it


@app.route("/")
def page() -> str:
    with engine.begin() as conn:
        conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": TENANT})
        suppliers, people, invitations = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM suppliers WHERE tenant_id = :t),"
                " (SELECT count(*) FROM memberships WHERE tenant_id = :t AND disabled_at IS NULL),"
                " (SELECT count(*) FROM invitations WHERE tenant_id = :t AND accepted_at IS NULL"
                "  AND revoked_at IS NULL AND expires_at > now())"
            ),
            {"t": int(TENANT)},
        ).one()
    return COMPILED.render(suppliers=suppliers, people=people, invitations=invitations)


@app.route("/healthz")
def bare() -> str:
    return "ok"
