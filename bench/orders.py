"""Orders under load, on the 1,000,000-line data set (bench/orders_data.py builds it).

Measured side by side in one run with wrk (2 threads, 32 connections), gunicorn
with 4 sync workers: the supplier inbox (50 rows), the order page (20 lines), the
confirmation POST (accept-all, a different awaiting order each time), and a
minimal Flask + SQLAlchemy + Jinja page running the inbox's query. Prints req/s,
p95 and the targets: inbox >= 0.7x the minimal page, inbox p95 <= 60 ms,
confirmation p95 <= 100 ms; and, for the pages, the CPU each request cost the
web server's workers and PostgreSQL (from /proc), which tells where time goes.

Usage: .venv/bin/python bench/orders.py [--rebuild] [--seconds 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import urllib.request
from pathlib import Path

import pyotp
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.dashboard import ROOT, VENV_BIN, sign_in, start, wrk
from portal.auth.passwords import hash_password

INFO = Path("/tmp/portal-bench-orders.json")
EMAIL, PASSWORD = "bench-supplier@example.com", "bench-supplier-password"
SECRET = pyotp.random_base32()
PORTAL_PORT, MINIMAL_PORT = 8081, 8082


def add_bench_user(db: str, supplier_id: int) -> None:
    owner = create_engine(f"postgresql+psycopg://portal_owner@127.0.0.1:5432/{db}")
    with owner.begin() as conn:
        conn.execute(text("SELECT set_config('app.tenant_id', '1', true)"))
        conn.execute(
            text("DELETE FROM memberships WHERE user_id IN (SELECT id FROM users WHERE email = :e)"), {"e": EMAIL}
        )
        conn.execute(text("DELETE FROM users WHERE email = :e"), {"e": EMAIL})
        user_id = conn.execute(
            text(
                "INSERT INTO users (email, name, password_hash, totp_secret, totp_last_step, mfa_enabled_at, is_demo, "
                "is_platform_admin, created_at) VALUES (:e, 'Bench Supplier', :h, :s, 0, now(), false, false, now()) "
                "RETURNING id"
            ),
            {"e": EMAIL, "h": hash_password(PASSWORD), "s": SECRET},
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO memberships (tenant_id, user_id, role, supplier_id, created_at) "
                "VALUES (1, :u, 'supplier_admin', :s, now())"
            ),
            {"u": user_id, "s": supplier_id},
        )
    owner.dispose()


def awaiting_orders(db: str, supplier_id: int, skip: int) -> list[int]:
    """Orders of the bench supplier whose every line still awaits an answer (earlier runs used some)."""
    owner = create_engine(f"postgresql+psycopg://portal_owner@127.0.0.1:5432/{db}")
    with owner.begin() as conn:
        conn.execute(text("SELECT set_config('app.tenant_id', '1', true)"))
        ids = (
            conn.execute(
                text(
                    "SELECT o.id FROM purchase_orders o WHERE o.supplier_id = :s AND o.id <> :b "
                    "AND o.state = 'awaiting_response' AND NOT EXISTS (SELECT 1 FROM purchase_order_lines l "
                    "WHERE l.order_id = o.id AND l.state <> 'awaiting_response') ORDER BY o.id"
                ),
                {"s": supplier_id, "b": skip},
            )
            .scalars()
            .all()
        )
    owner.dispose()
    return list(ids)


def data_set(needed: int, *, rebuild: bool = False) -> dict:
    """The orders data set's description, built (again) first when asked, missing, or left with fewer than
    ``needed`` awaiting orders (every confirmation POST uses one up)."""
    if rebuild or not INFO.exists():
        subprocess.run([sys.executable, str(ROOT / "bench" / "orders_data.py")], check=True)
    info = json.loads(INFO.read_text())
    if len(awaiting_orders(info["database"], info["supplier_id"], info["big_order_id"])) < needed:
        print(f"fewer than {needed} awaiting orders left: rebuilding the data set", flush=True)
        subprocess.run([sys.executable, str(ROOT / "bench" / "orders_data.py")], check=True)
        info = json.loads(INFO.read_text())
    return info


def servers_environment(db: str, supplier_id: int) -> dict[str, str]:
    """The environment of the portal's and the minimal app's gunicorn over the orders data set."""
    return {
        **os.environ,
        "PORTAL_ENV": "development",
        "PORTAL_DEMO": "0",
        "SECURE_COOKIES": "0",
        "SECRET_KEY": "bench-secret-key-0123456789-0123456789",
        "REDIS_URL": "redis://127.0.0.1:6379/14",
        "DATABASE_URL": f"postgresql://portal_app@127.0.0.1:5432/{db}",
        "PORTAL_INSTANCE_PATH": "/tmp/portal-bench-o",
        "BENCH_APP_URL": f"postgresql+psycopg://portal_app@127.0.0.1:5432/{db}",
        "BENCH_SUPPLIER_ID": str(supplier_id),
    }


def cpu_seconds(pattern: str) -> float:
    """CPU time (user + system) used so far by the processes whose command line matches ``pattern``."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if re.search(pattern, command):
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def measured(
    url: str, seconds: int, cookie: str | None, database: str, headers: tuple[str, ...] = ()
) -> dict[str, float]:
    """``wrk`` on ``url``, with the CPU that each request cost the web server's workers and PostgreSQL."""
    server, backends = r"gunicorn", rf"postgres: .*portal_app {database} "
    before = cpu_seconds(server), cpu_seconds(backends)
    result = wrk(url, seconds, cookie, headers)
    requests = result["rps"] * seconds
    result["server_ms"] = (cpu_seconds(server) - before[0]) * 1000 / requests
    result["database_ms"] = (cpu_seconds(backends) - before[1]) * 1000 / requests
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--post-seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    # Every confirmation POST uses up an awaiting order (earlier runs used some): with too few left, wrk would
    # come back to confirmed ones and count their refusals as errors.
    info = data_set(args.rounds * (args.post_seconds * 250 + 64), rebuild=args.rebuild)  # up to 250/s
    db = info["database"]
    add_bench_user(db, info["supplier_id"])
    environment = servers_environment(db, info["supplier_id"])
    subprocess.run(["redis-cli", "-n", "14", "flushdb"], check=False, capture_output=True)
    portal = start("wsgi:app", PORTAL_PORT, environment)
    minimal = start("bench.minimal_inbox_app:app", MINIMAL_PORT, environment)
    try:
        base = f"http://127.0.0.1:{PORTAL_PORT}"
        cookie = sign_in(base, EMAIL, PASSWORD, SECRET)
        request = urllib.request.Request(f"{base}/orders/{info['big_order_id']}", headers={"Cookie": cookie})
        page = urllib.request.urlopen(request).read().decode()
        assert page.count('<tr id="line-') == 20, "the order page should show 20 lines"
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        ids = awaiting_orders(db, info["supplier_id"], info["big_order_id"])
        gets = {
            "supplier inbox (50 rows)": (f"{base}/orders?tab=all", cookie),
            "minimal page, inbox query": (f"http://127.0.0.1:{MINIMAL_PORT}/", None),
            "order page (20 lines)": (f"{base}/orders/{info['big_order_id']}", cookie),
        }
        for url, c in gets.values():
            wrk(url, 2, c)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in [*gets, "confirmation POST"]}
        used = 0
        for _ in range(args.rounds):
            for name, (url, c) in gets.items():
                runs[name].append(measured(url, args.seconds, c, db))
            os.environ.update(BENCH_ORDER_IDS=",".join(map(str, ids)), BENCH_CSRF=token, BENCH_START=str(used))
            result = wrk_post(base, cookie, args.post_seconds)
            used += int(result["span"]) + 64
            if used >= len(ids):
                raise SystemExit("ran out of awaiting orders: rebuild with --rebuild or lower --post-seconds")
            runs["confirmation POST"].append(result)
    finally:
        for process in (portal, minimal):
            process.terminate()
            process.wait()

    print(f"\nwrk -t2 -c32, {args.rounds} rounds, gunicorn 4 sync workers, 1,000,015 lines; medians:")
    med = {}
    for name, results in runs.items():
        med[name] = (statistics.median(r["rps"] for r in results), statistics.median(r["p95_ms"] for r in results))
        print(f"  {name:<30} {med[name][0]:8.0f} req/s   p95 {med[name][1]:7.1f} ms")
    print("  each round, in the order they ran (req/s, p95 ms):")
    for name, results in runs.items():
        print(f"  {name:<30} " + "   ".join(f"{r['rps']:5.0f} {r['p95_ms']:6.1f}" for r in results))
    print("  CPU per request (medians): web server workers + PostgreSQL")
    for name, results in runs.items():
        if "server_ms" in results[0]:
            server = statistics.median(r["server_ms"] for r in results)
            database = statistics.median(r["database_ms"] for r in results)
            print(f"  {name:<30} {server:5.2f} + {database:5.2f} ms")
    ratio = med["supplier inbox (50 rows)"][0] / med["minimal page, inbox query"][0]
    print(f"  inbox / minimal page            {ratio:.2f}  (target >= 0.7)")
    print(f"  inbox p95                       {med['supplier inbox (50 rows)'][1]:.1f} ms (target <= 60)")
    print(f"  confirmation p95                {med['confirmation POST'][1]:.1f} ms (target <= 100)")


def wrk_post(base: str, cookie: str | None, seconds: int, headers: tuple[str, ...] = ()) -> dict[str, float]:
    """``confirm.lua``'s accept-all POSTs (the form with ``cookie``, or the API's with BENCH_API and ``headers``)."""
    command = ["wrk", "-t2", "-c32", f"-d{seconds}s", "-s", str(ROOT / "bench" / "confirm.lua"), base]
    for header in (*((f"Cookie: {cookie}",) if cookie else ()), *headers):
        command[1:1] = ["-H", header]
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=os.environ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if result["errors"]:
        raise SystemExit(f"confirmation POSTs: {result['errors']} errors\n{out}")
    return result


if __name__ == "__main__":
    _ = VENV_BIN
    main()
