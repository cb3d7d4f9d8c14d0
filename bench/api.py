"""The supplier API against the pages it mirrors, on the orders data set (bench/orders_data.py builds it).

Side by side in interleaved rounds, wrk with 2 threads and 32 connections, gunicorn with 4 sync workers: the
supplier's inbox page and ``GET /api/v1/orders?state=all`` (the same query, 50 orders, as HTML and as JSON),
the order page and ``GET /api/v1/orders/<id>`` (20 lines), and "accept all" as the order page's form and as
``POST /api/v1/orders/<id>/accept-all`` (a different awaiting order each time). The API's calls carry a key of
the bench supplier's person; its per-key limit is lifted for the run (``API_CALLS_PER_MINUTE``). Prints req/s,
p95 and, for the GETs, the CPU each request cost the web server's workers and PostgreSQL.

Usage: .venv/bin/python bench/api.py [--seconds 10] [--post-seconds 5] [--rounds 2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import urllib.request
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.dashboard import sign_in, start, wrk
from bench.orders import (
    EMAIL,
    PASSWORD,
    PORTAL_PORT,
    SECRET,
    add_bench_user,
    awaiting_orders,
    data_set,
    measured,
    servers_environment,
    wrk_post,
)


def add_bench_key(db: str) -> str:
    """An API key for the bench supplier's person (added by ``add_bench_user``), as the keys page issues one."""
    key = f"spk_1_{secrets.token_urlsafe(32)}"
    owner = create_engine(f"postgresql+psycopg://portal_owner@127.0.0.1:5432/{db}")
    with owner.begin() as conn:
        conn.execute(text("SELECT set_config('app.tenant_id', '1', true)"))
        conn.execute(
            text(
                "INSERT INTO api_keys (tenant_id, membership_id, user_id, supplier_id, name, token_hash, hint, "
                "created_at, expires_at) SELECT m.tenant_id, m.id, m.user_id, m.supplier_id, 'bench', :h, :hint, "
                "now(), now() + interval '1 day' FROM memberships m JOIN users u ON u.id = m.user_id "
                "WHERE u.email = :e"
            ),
            {"h": hashlib.sha256(key.encode()).hexdigest(), "hint": key[:10], "e": EMAIL},
        )
    owner.dispose()
    return key


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--post-seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    info = data_set(2 * args.rounds * (args.post_seconds * 200 + 64))  # both sides, up to 200 confirmations/s each
    db = info["database"]
    add_bench_user(db, info["supplier_id"])
    key = add_bench_key(db)
    authorised = (f"Authorization: Bearer {key}",)
    environment = {**servers_environment(db, info["supplier_id"]), "API_CALLS_PER_MINUTE": "1000000"}
    subprocess.run(["redis-cli", "-n", "14", "flushdb"], check=False, capture_output=True)
    portal = start("wsgi:app", PORTAL_PORT, environment)
    try:
        base = f"http://127.0.0.1:{PORTAL_PORT}"
        cookie = sign_in(base, EMAIL, PASSWORD, SECRET)
        big = info["big_order_id"]
        request = urllib.request.Request(f"{base}/api/v1/orders/{big}", headers={"Authorization": authorised[0][15:]})
        assert len(json.loads(urllib.request.urlopen(request).read())["lines"]) == 20
        page = urllib.request.urlopen(urllib.request.Request(f"{base}/orders/{big}", headers={"Cookie": cookie}))
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.read().decode()).group(1)
        gets = {
            "inbox page (50 rows)": (f"{base}/orders?tab=all", cookie, ()),
            "API orders (50)": (f"{base}/api/v1/orders?state=all", None, authorised),
            "order page (20 lines)": (f"{base}/orders/{big}", cookie, ()),
            "API order (20 lines)": (f"{base}/api/v1/orders/{big}", None, authorised),
        }
        for url, c, h in gets.values():
            wrk(url, 2, c, h)
        ids = awaiting_orders(db, info["supplier_id"], big)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in [*gets, "accept all: form", "accept all: API"]}
        used = 0
        for _ in range(args.rounds):
            for name, (url, c, h) in gets.items():
                runs[name].append(measured(url, args.seconds, c, db, h))
            for name, api in (("accept all: form", False), ("accept all: API", True)):
                os.environ.update(BENCH_ORDER_IDS=",".join(map(str, ids)), BENCH_CSRF=token, BENCH_START=str(used))
                os.environ["BENCH_API"] = "1" if api else ""
                result = wrk_post(base, None if api else cookie, args.post_seconds, authorised if api else ())
                used += int(result["span"]) + 64
                if used >= len(ids):
                    raise SystemExit("ran out of awaiting orders: rebuild the data set (bench/orders_data.py)")
                runs[name].append(result)
    finally:
        portal.terminate()
        portal.wait()

    print(f"\nwrk -t2 -c32, {args.rounds} rounds, gunicorn 4 sync workers, 1,000,015 lines; medians:")
    for name, results in runs.items():
        rps, p95 = statistics.median(r["rps"] for r in results), statistics.median(r["p95_ms"] for r in results)
        cpu = ""
        if "server_ms" in results[0]:
            server = statistics.median(r["server_ms"] for r in results)
            database = statistics.median(r["database_ms"] for r in results)
            cpu = f"   CPU {server:5.2f} + {database:5.2f} ms"
        print(f"  {name:<24} {rps:7.0f} req/s   p95 {p95:7.1f} ms{cpu}")


if __name__ == "__main__":
    main()
