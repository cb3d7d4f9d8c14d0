"""A buyer's inbox over the orders data set (``bench/orders_data.py``: 200,000 orders of 5,000 suppliers).

A buyer's inbox lists the orders of every supplier of the tenant. Each tab with each sort is requested
through the portal (test client, one connection, signed in through a real session record), 30 times after 5
to warm up; prints p50 / p95 per tab and sort, and the tab counts' query on its own.

Usage: python bench/buyer_inbox.py   (after python bench/orders_data.py)
"""

from __future__ import annotations

import os
import sys
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB = "portal_bench_orders"
TABS = ("all", "needs_response", "changes_pending", "open", "late", "shipped", "closed")
SORTS = ("due", "-due", "number", "-date", "-value")


def main() -> None:
    from bench.dashboard import in_process_env, p50_p95, signed_in_buyer

    os.environ.update(in_process_env(DB, "/tmp/bench-buyer-inbox"))
    from portal import create_app

    client = signed_in_buyer(create_app())

    reference = min(timeit.repeat("sum(range(10**6))", number=5, repeat=5)) / 5
    print(f"CPU reference: sum(range(10**6)), best of 25: {reference * 1000:.1f} ms")
    print(f"{'tab':<16}" + "".join(f"{sort:>18}" for sort in SORTS) + "    (p50 / p95 ms)")
    worst = 0.0
    for tab in TABS:
        cells = []
        for sort in SORTS:
            p50, p95 = p50_p95(client, f"/orders?tab={tab}&sort={sort}")
            worst = max(worst, p95)
            cells.append(f"{p50 * 1000:7.0f} / {p95 * 1000:4.0f}")
        print(f"{tab:<16}" + "".join(f"{cell:>18}" for cell in cells))
    print(f"slowest p95: {worst * 1000:.0f} ms")


if __name__ == "__main__":
    main()
