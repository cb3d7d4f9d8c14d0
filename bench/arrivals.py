"""The shipments on their way (``/orders/arrivals``) over the orders data set (``bench/orders_data.py``).

Adds a ship notice to every other order of the data set (100,000 notices, one line each: one in ten in
transit, a third of those with half their goods arrived, the rest received), requests the page through the portal as a buyer with each filter (test client,
one connection, a real session record), 30 times after 5 to warm up, and prints p50 / p95; then removes the
notices again, so the orders benchmark finds its data set as it was built.

Usage: python bench/arrivals.py   (after python bench/orders_data.py)
"""

from __future__ import annotations

import os
import sys
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

DB = "portal_bench_orders"
CARRIER = "BENCH ARRIVALS"  # marks the notices this script adds, to remove them after

ADD = f"""
INSERT INTO ship_notices (tenant_id, order_id, supplier_id, number, ship_date, expected_arrival, carrier,
                          tracking_number, packing_slip, state, created_at)
SELECT 1, o.id, o.supplier_id, o.number || '-ASN1', o.order_date + 5, o.order_date + 8, '{CARRIER}',
       'JD' || o.id, '', CASE WHEN o.id % 20 = 0 THEN 'sent' ELSE 'received' END, now()
FROM purchase_orders o WHERE o.tenant_id = 1 AND o.id % 2 = 0
ON CONFLICT DO NOTHING;
INSERT INTO ship_notice_lines (tenant_id, notice_id, line_id, quantity, received_quantity)
SELECT 1, n.id, l.id, l.quantity,
       CASE WHEN n.state = 'received' THEN l.quantity WHEN n.id % 3 = 0 THEN floor(l.quantity / 2) ELSE 0 END
FROM ship_notices n
JOIN purchase_order_lines l ON l.order_id = n.order_id AND l.position = 1 WHERE n.carrier = '{CARRIER}';
ANALYZE ship_notices;
ANALYZE ship_notice_lines;
"""
REMOVE = f"""
DELETE FROM ship_notice_lines WHERE notice_id IN (SELECT id FROM ship_notices WHERE carrier = '{CARRIER}');
DELETE FROM ship_notices WHERE carrier = '{CARRIER}';
"""


def run(owner, sql: str) -> None:  # type: ignore[no-untyped-def]
    with owner.begin() as conn:
        conn.execute(text("SELECT set_config('app.tenant_id', '1', true)"))
        for statement in filter(str.strip, sql.split(";")):
            conn.execute(text(statement))


def main() -> None:
    from bench.dashboard import in_process_env, p50_p95, signed_in_buyer

    owner = create_engine(f"postgresql+psycopg://portal_owner@127.0.0.1:5432/{DB}")
    run(owner, REMOVE)
    run(owner, ADD)
    try:
        os.environ.update(in_process_env(DB, "/tmp/bench-arrivals"))
        from portal import create_app

        client = signed_in_buyer(create_app())
        with owner.begin() as conn:
            conn.execute(text("SELECT set_config('app.tenant_id', '1', true)"))
            warehouse = conn.execute(text("SELECT id FROM warehouses ORDER BY id LIMIT 1")).scalar()
            supplier = conn.execute(text(f"SELECT supplier_id FROM ship_notices WHERE carrier = '{CARRIER}' "
                                         "AND state = 'sent' ORDER BY id LIMIT 1")).scalar()  # fmt: skip
            transit = conn.execute(text("SELECT count(*) FROM ship_notices WHERE state = 'sent'")).scalar()
        reference = min(timeit.repeat("sum(range(10**6))", number=5, repeat=5)) / 5
        print(
            f"CPU reference: sum(range(10**6)), best of 25: {reference * 1000:.1f} ms; {transit:,} notices in transit"
        )
        cases = {
            "every shipment, page 1": "/orders/arrivals",
            "every shipment, page 100": "/orders/arrivals?page=100",
            "one ship-to": f"/orders/arrivals?warehouse={warehouse}",
            "arriving in one week": "/orders/arrivals?from=2026-01-01&to=2026-01-07",
            "one supplier (a link)": f"/orders/arrivals?supplier={supplier}",
            "a supplier search": "/orders/arrivals?supplier_q=Supplier%200001",
        }
        for name, url in cases.items():
            p50, p95 = p50_p95(client, url)
            print(f"{name:<28} p50 {p50 * 1000:6.1f} ms   p95 {p95 * 1000:6.1f} ms")
    finally:
        run(owner, REMOVE)


if __name__ == "__main__":
    main()
