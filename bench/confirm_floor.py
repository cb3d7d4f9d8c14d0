"""The confirmation POST against its floor, on the orders data set (bench/orders_data.py builds it).

The portal's "accept all as requested" (``POST /orders/<id>/accept-all``, signed in as the benchmark
supplier, CSRF on) and the same durable work as plain Flask + SQLAlchemy Core statements
(``bench/minimal_inbox_app.py``: the order and its lines read, the version claimed, ledger entries, schedules,
line and order updates, outbox events, the audit chain extended, the commit, the events handed to Redis),
each on a different awaiting order every time, in interleaved rounds: wrk with 2 threads and 32
connections, gunicorn with 4 sync workers each. Prints req/s, p95 and the CPU each confirmation cost the web
server's workers and PostgreSQL, and what the 100 ms p95 target asks: with 32 connections always busy, the
mean latency is 32 / req/s (Little's law), so a p95 of 100 ms needs more than 320 confirmations a second.

Usage: .venv/bin/python bench/confirm_floor.py [--seconds 3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import urllib.request
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.dashboard import sign_in, start
from bench.orders import (
    EMAIL,
    MINIMAL_PORT,
    PASSWORD,
    PORTAL_PORT,
    SECRET,
    add_bench_user,
    awaiting_orders,
    cpu_seconds,
    data_set,
    servers_environment,
    wrk_post,
)


def bench_user_id(db: str) -> int:
    owner = create_engine(f"postgresql+psycopg://portal_owner@127.0.0.1:5432/{db}")
    with owner.begin() as conn:
        user_id = conn.execute(text("SELECT id FROM users WHERE email = :e"), {"e": EMAIL}).scalar_one()
    owner.dispose()
    return int(user_id)


def measured_post(base: str, cookie: str, seconds: int, ids: list[int], start_at: int, token: str, db: str) -> dict:
    """``wrk_post`` on ``base`` over ``ids`` (from ``start_at``), with the CPU each confirmation cost."""
    port = base.rsplit(":", 1)[1]
    server, backends = rf"gunicorn .*127\.0\.0\.1:{port}", rf"postgres: .*portal_app {db} "
    os.environ.update(BENCH_ORDER_IDS=",".join(map(str, ids)), BENCH_CSRF=token, BENCH_START=str(start_at))
    before = cpu_seconds(server), cpu_seconds(backends)
    result = wrk_post(base, cookie, seconds)
    result["server_ms"] = (cpu_seconds(server) - before[0]) * 1000 / result["requests"]
    result["database_ms"] = (cpu_seconds(backends) - before[1]) * 1000 / result["requests"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    # Both sides draw on the same awaiting orders, the portal from the first on, the floor from the last back;
    # together they may confirm up to 700 a second.
    info = data_set(args.rounds * (args.seconds * 700 + 128))
    db = info["database"]
    add_bench_user(db, info["supplier_id"])
    environment = {**servers_environment(db, info["supplier_id"]), "BENCH_USER_ID": str(bench_user_id(db))}
    subprocess.run(["redis-cli", "-n", "14", "flushdb"], check=False, capture_output=True)
    portal = start("wsgi:app", PORTAL_PORT, environment)
    minimal = start("bench.minimal_inbox_app:app", MINIMAL_PORT, environment)
    try:
        base, floor = f"http://127.0.0.1:{PORTAL_PORT}", f"http://127.0.0.1:{MINIMAL_PORT}"
        cookie = sign_in(base, EMAIL, PASSWORD, SECRET)
        request = urllib.request.Request(f"{base}/orders?tab=all", headers={"Cookie": cookie})
        token = re.search(r'name="csrf_token" value="([^"]+)"', urllib.request.urlopen(request).read().decode())
        assert token is not None, "the inbox should carry a CSRF token"
        ids = awaiting_orders(db, info["supplier_id"], info["big_order_id"])
        sides = {
            "portal confirmation POST": (base, cookie, ids),
            "floor: the same writes, plain statements": (floor, "", ids[::-1]),
        }
        runs: dict[str, list[dict]] = {name: [] for name in sides}
        used = dict.fromkeys(sides, 0)
        for _ in range(args.rounds):
            for name, (url, c, own) in sides.items():
                result = measured_post(url, c, args.seconds, own, used[name], token.group(1), db)
                used[name] += int(result["span"]) + 64
                if sum(used.values()) >= len(own):
                    raise SystemExit("ran out of awaiting orders: rebuild the data set or lower --seconds")
                runs[name].append(result)
                print(f"  {name:<42} {result['rps']:6.0f} req/s  p95 {result['p95_ms']:6.1f} ms", flush=True)
    finally:
        for process in (portal, minimal):
            process.terminate()
            process.wait()
        subprocess.run(["redis-cli", "-n", "14", "del", "bench:confirmed-events"], check=False, capture_output=True)

    print(f"\nwrk -t2 -c32, {args.rounds} rounds of {args.seconds} s, gunicorn 4 sync workers; medians:")
    rates = {}
    for name, results in runs.items():
        rates[name] = statistics.median(r["rps"] for r in results)
        p95 = statistics.median(r["p95_ms"] for r in results)
        server = statistics.median(r["server_ms"] for r in results)
        database = statistics.median(r["database_ms"] for r in results)
        print(f"  {name:<42} {rates[name]:6.0f} req/s  p95 {p95:6.1f} ms  CPU {server:5.2f} + {database:5.2f} ms")
    portal_rate, floor_rate = rates.values()
    print(f"  portal / floor                             {portal_rate / floor_rate:.2f}")
    print("  a p95 of 100 ms at 32 connections needs more than 320 confirmations/s (Little's law: 32 / 0.1 s)")


if __name__ == "__main__":
    main()
