"""Generate the orders data set in PostgreSQL: 1 tenant, 5,000 suppliers, 200,000
orders, 1,000,000 lines, with realistic dates and states, server-side with
generate_series (a few minutes at most).

The benchmark supplier (code BENCH) gets 6,500 of the orders, 4,500 of them still
awaiting its answer (for the confirmation POSTs), and one order with 20 lines.

Usage: python bench/orders_data.py [--database portal_bench_orders]
Prints the rows made and the seconds taken, and the ids the load script needs as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.dashboard import prepare_database
from portal.orders import outcomes

ROOT = Path(__file__).resolve().parent.parent
ORDERS, LINES_PER_ORDER, SUPPLIERS, BENCH_ORDERS, BENCH_AWAITING = 200_000, 5, 5_000, 6_500, 4_500


def _fold_outcomes(conn) -> None:  # type: ignore[no-untyped-def]
    with Session(bind=conn) as session:
        outcomes.refresh(session, tenant_id=1)
        session.commit()


STEPS = [
    (
        "tenant, companies, warehouses",
        """
        INSERT INTO tenants (id, name, slug, mfa_policy, unconfirmed_after_days, created_at)
        VALUES (1, 'Bench Distribution', 'bench', 'required_for_all', 3, now());
        SELECT set_config('app.tenant_id', '1', false);
        INSERT INTO companies (tenant_id, code, name, created_at)
        SELECT 1, 'C' || g, 'Company ' || g, now() FROM generate_series(1, 3) g;
        INSERT INTO warehouses (tenant_id, company_id, code, name, city, created_at)
        SELECT 1, (SELECT min(id) FROM companies) + (g % 3), 'W' || g, 'Warehouse ' || g, 'City ' || g, now()
        FROM generate_series(1, 5) g;
    """,
    ),
    (
        "suppliers",
        f"""
        INSERT INTO suppliers (tenant_id, code, name, category, erp_ref, status, created_at)
        SELECT 1, CASE WHEN g = 1 THEN 'BENCH' ELSE 'S' || g END, 'Supplier ' || g, 'Category ' || (g % 20),
               'res.partner,' || g, 'active', now()
        FROM generate_series(1, {SUPPLIERS}) g;
    """,
    ),
    (
        "orders",
        f"""
        INSERT INTO purchase_orders (tenant_id, company_id, warehouse_id, supplier_id, number, currency, order_date,
                                     state, version, due_date, total_value, created_at, updated_at)
        SELECT 1, w.company_id, w.id, s.id, 'PO' || lpad(g::text, 7, '0'), 'EUR', o.order_date,
               o.state, 1, o.order_date + 14, 0, now(), now()
        FROM generate_series(1, {ORDERS}) g
        CROSS JOIN LATERAL (SELECT CASE WHEN g <= {BENCH_ORDERS} THEN 1 ELSE 2 + (g % ({SUPPLIERS} - 1)) END AS n) pick
        JOIN suppliers s ON s.code = CASE WHEN pick.n = 1 THEN 'BENCH' ELSE 'S' || pick.n END
        JOIN warehouses w ON w.code = 'W' || (1 + g % 5)
        CROSS JOIN LATERAL (
            SELECT CURRENT_DATE - ((g * 7919) % 730) AS order_date
        ) d
        CROSS JOIN LATERAL (
            SELECT d.order_date,
                   CASE
                     WHEN g <= {BENCH_AWAITING} THEN 'awaiting_response'
                     WHEN CURRENT_DATE - d.order_date > 60 THEN (ARRAY['closed','closed','closed','received'])[1 + g % 4]
                     WHEN CURRENT_DATE - d.order_date > 15 THEN (ARRAY['confirmed','shipped','received'])[1 + g % 3]
                     ELSE (ARRAY['awaiting_response','changes_pending','confirmed'])[1 + g % 3]
                   END AS state
        ) o;
    """,
    ),
    (
        "lines",
        f"""
        INSERT INTO purchase_order_lines (tenant_id, order_id, supplier_id, position, product_code, product_name,
                                          supplier_product_code, quantity, unit, unit_price, requested_date,
                                          received_quantity, shipped_quantity, state)
        SELECT 1, o.id, o.supplier_id, p, 'P-' || ((o.id * 31 + p) % 20000), 'Product ' || ((o.id * 31 + p) % 20000),
               'SP-' || ((o.id * 17 + p) % 20000), q.qty, 'pc', round((1 + (o.id + p) % 97) * 0.37, 2),
               o.order_date + 7 + p * 3,
               CASE WHEN o.state IN ('received', 'closed') THEN q.qty ELSE 0 END,
               CASE WHEN o.state IN ('shipped', 'received', 'closed') THEN q.qty ELSE 0 END,
               CASE WHEN o.state = 'changes_pending' AND p = 1 THEN 'changes_pending'
                    WHEN o.state = 'changes_pending' THEN 'confirmed' ELSE o.state END
        FROM purchase_orders o
        CROSS JOIN generate_series(1, {LINES_PER_ORDER}) p
        CROSS JOIN LATERAL (SELECT (10 * (1 + (o.id + p) % 50))::numeric AS qty) q;
    """,
    ),
    (
        "delivery schedules",
        """
        INSERT INTO delivery_schedules (tenant_id, line_id, supplier_id, position, quantity, promised_date,
                                        first_promised_date, notice_days, active, counted_quantity,
                                        delivered_quantity)
        SELECT 1, l.id, l.supplier_id, 1, l.quantity, l.requested_date + (l.id % 4)::int, l.requested_date,
               CASE WHEN l.id % 4 <> 0 THEN (l.id % 15) - 3 END, true, l.quantity, 0
        FROM purchase_order_lines l WHERE l.state NOT IN ('awaiting_response');
    """,
    ),
    (
        "the lines' earliest and latest promised dates (one delivery each, none arrived yet), as the portal keeps them",
        """
        UPDATE purchase_order_lines l SET promised_from = s.promised_date, promised_to = s.promised_date,
                                          open_from = s.promised_date
        FROM delivery_schedules s WHERE s.line_id = l.id AND s.active;
    """,
    ),
    (
        "receipts (received lines: one arrival each, from 4 days early to 6 days late; every 7th line short)",
        """
        INSERT INTO receipts (tenant_id, line_id, quantity, received_on, source, created_at)
        SELECT 1, l.id, CASE WHEN l.id % 7 = 0 THEN l.received_quantity * 0.8 ELSE l.received_quantity END,
               s.promised_date + ((l.id * 13) % 11 - 4)::int, 'erp', now()
        FROM purchase_order_lines l JOIN delivery_schedules s ON s.line_id = l.id
        WHERE l.received_quantity > 0;
    """,
    ),
    (
        "what arrived against each delivery (the portal keeps it as receipts arrive)",
        lambda conn: _fold_outcomes(conn),
    ),
    (
        "order totals",
        """
        UPDATE purchase_orders o SET total_value = t.total, due_date = t.due
        FROM (SELECT order_id, sum(quantity * unit_price) AS total, min(requested_date) AS due
              FROM purchase_order_lines GROUP BY order_id) t
        WHERE t.order_id = o.id;
    """,
    ),
    (
        "a 20-line order for the bench supplier",
        """
        INSERT INTO purchase_order_lines (tenant_id, order_id, supplier_id, position, product_code, product_name,
                                          quantity, unit, unit_price, requested_date, received_quantity,
                                          shipped_quantity, state)
        SELECT 1, o.id, o.supplier_id, p, 'P-X' || p, 'Extra product ' || p, 10, 'pc', 1.5, o.order_date + 10 + p,
               0, 0, 'awaiting_response'
        FROM purchase_orders o CROSS JOIN generate_series(6, 20) p
        WHERE o.number = 'PO' || lpad('{big}'::text, 7, '0');
    """.replace("{big}", str(BENCH_AWAITING + 1)),
    ),
    # Sets the visibility map too, so index-only scans work as on a settled database.
    ("vacuum analyze", "VACUUM ANALYZE;"),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default="portal_bench_orders")
    args = parser.parse_args()
    db = args.database
    prepare_database(db)
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://portal_owner@127.0.0.1:5432/{db}",
        "FLASK_APP": "wsgi",
        "PORTAL_INSTANCE_PATH": "/tmp/portal-bench-orders",
    }
    subprocess.run(
        [str(Path(sys.executable).parent / "flask"), "db-upgrade"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    owner = create_engine(f"postgresql+psycopg://portal_owner@127.0.0.1:5432/{db}", isolation_level="AUTOCOMMIT")
    started = time.perf_counter()
    with owner.connect() as conn:
        # The owner is subject to (forced) row-level security too: work inside the tenant.
        conn.execute(text("SELECT set_config('app.tenant_id', '1', false)"))
        for name, sql in STEPS:
            step = time.perf_counter()
            if callable(sql):
                sql(conn)
            else:
                conn.execute(text(sql))
            print(f"  {name:<40} {time.perf_counter() - step:6.1f} s", flush=True)
        counts = {
            t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in (
                "suppliers",
                "purchase_orders",
                "purchase_order_lines",
                "delivery_schedules",
            )
        }
        bench_supplier = conn.execute(text("SELECT id FROM suppliers WHERE code = 'BENCH'")).scalar_one()
        big_order = conn.execute(
            text("SELECT id FROM purchase_orders WHERE number = :n"), {"n": f"PO{BENCH_AWAITING + 1:07d}"}
        ).scalar_one()
        awaiting = (
            conn.execute(
                text(
                    "SELECT id FROM purchase_orders WHERE supplier_id = :s AND state = 'awaiting_response' AND id <> :b "
                    "ORDER BY id"
                ),
                {"s": bench_supplier, "b": big_order},
            )
            .scalars()
            .all()
        )
    owner.dispose()
    print(f"rows: {json.dumps(counts)}; built in {time.perf_counter() - started:.1f} s")
    info = {"database": db, "supplier_id": bench_supplier, "big_order_id": big_order, "awaiting_order_ids": awaiting}
    Path("/tmp/portal-bench-orders.json").write_text(json.dumps(info))


if __name__ == "__main__":
    main()
