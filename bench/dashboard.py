"""Signed-in dashboard vs. a minimal page doing the same work vs. a bare route.

Loads the demo data into a fresh PostgreSQL database, runs the portal and the
minimal baseline under gunicorn (4 sync workers each) and measures each URL with
wrk (2 threads, 32 connections) in interleaved rounds; prints req/s and p95 and
the medians' ratios. Usage: .venv/bin/python bench/dashboard.py [--seconds 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pyotp
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DB = "portal_bench"
PORTAL_PORT, MINIMAL_PORT = 8071, 8072
CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def prepare_database(name: str = DB) -> None:
    """Roles as in production (owner, and an application role under RLS) and an empty database."""
    engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for role, opts in (("portal_owner", "LOGIN"), ("portal_app", "LOGIN NOSUPERUSER NOBYPASSRLS")):
            if not conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar():
                conn.execute(text(f"CREATE ROLE {role} {opts}"))
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {name} OWNER portal_owner"))
    engine.dispose()


def env(instance: str) -> dict[str, str]:
    return {
        **os.environ,
        "PORTAL_ENV": "development",
        "PORTAL_DEMO": "1",
        "SECRET_KEY": "bench-secret-key-0123456789-0123456789",
        "DATABASE_URL": f"postgresql://portal_app@127.0.0.1:5432/{DB}",
        "DATABASE_OWNER_URL": f"postgresql://portal_owner@127.0.0.1:5432/{DB}",
        "REDIS_URL": "redis://127.0.0.1:6379/14",
        "SECURE_COOKIES": "0",
        "PORTAL_INSTANCE_PATH": instance,
        "FLASK_APP": "wsgi",
    }


def in_process_env(database: str, instance: str) -> dict[str, str]:
    """The settings of a portal built in the benchmark's own process over ``database`` (no demo data, no
    in-process workers), for pages measured through the test client."""
    return {
        "PORTAL_ENV": "development",
        "PORTAL_WORKERS": "external",
        "PORTAL_DEMO": "0",
        "SECRET_KEY": "bench-secret-key-0123456789-0123456789",
        "DATABASE_URL": f"postgresql://portal_app@127.0.0.1:5432/{database}",
        "PORTAL_INSTANCE_PATH": instance,
    }


def start(app: str, port: int, environment: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [str(VENV_BIN / "gunicorn"), "--workers", "4", "--bind", f"127.0.0.1:{port}", "--log-level", "warning", app],
        cwd=ROOT,
        env=environment,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"{app} did not start")


def sign_in(base: str, email: str, password: str, secret: str) -> str:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def post(path: str, fields: dict[str, str]) -> str:
        page = opener.open(base + path).read().decode()
        data = urllib.parse.urlencode({"csrf_token": CSRF.search(page).group(1), **fields}).encode()
        return opener.open(base + path, data=data).geturl()

    post("/login", {"email": email, "password": password})
    landed = post("/login/verify", {"code": pyotp.TOTP(secret).now()})
    assert landed.rstrip("/") == base, f"sign-in ended at {landed}"
    return "; ".join(f"{c.name}={c.value}" for c in jar)


def signed_in_buyer(app, tenant_id: int = 1):  # type: ignore[no-untyped-def]
    """A test client of ``app`` signed in as the bench buyer of ``tenant_id`` through a real session record
    (the user and membership are made on first use): for pages measured in one process."""
    from portal.auth import sessions
    from portal.auth.models import Membership, User
    from portal.auth.permissions import Role
    from portal.db import utcnow
    from portal.web import CONTEXT_SESSION_KEY

    database = app.extensions["portal.db"]
    with database.transaction() as s:
        user = s.query(User).filter_by(email="bench-buyer@bench.example").one_or_none()
        if user is None:
            user = User(
                email="bench-buyer@bench.example", name="Bench", password_hash="x", password_changed_at=utcnow()
            )
            s.add(user)
            s.flush()
    with database.transaction(tenant_id=tenant_id) as s:
        membership = s.query(Membership).filter_by(user_id=user.id, tenant_id=tenant_id).one_or_none()
        if membership is None:
            membership = Membership(tenant_id=tenant_id, user_id=user.id, role=Role.BUYER)
            s.add(membership)
            s.flush()
        user = s.get(User, user.id)
        token = sessions.start_session(s, user, ip="127.0.0.1", user_agent="bench", auth_method="totp")
        membership_id = membership.id
    client = app.test_client()
    with client.session_transaction() as cookie:
        cookie["_user_id"] = token
        cookie["_fresh"] = True
        cookie[CONTEXT_SESSION_KEY] = [membership_id, tenant_id]
    return client


def p50_p95(client, url: str, warm: int = 5, runs: int = 30) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Seconds a page takes through a test client, median and 95th percentile of ``runs`` after ``warm``."""
    for _ in range(warm):
        assert client.get(url).status_code == 200, url
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        client.get(url)
        times.append(time.perf_counter() - started)
    times.sort()
    return statistics.median(times), times[round(0.95 * (len(times) - 1))]


def wrk(url: str, seconds: int, cookie: str | None = None, headers: tuple[str, ...] = ()) -> dict[str, float]:
    command = ["wrk", "-t2", "-c32", f"-d{seconds}s", "-s", str(ROOT / "bench" / "report.lua"), url]
    for header in (*((f"Cookie: {cookie}",) if cookie else ()), *headers):
        command[1:1] = ["-H", header]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if result["errors"]:
        raise SystemExit(f"{url}: {result['errors']} errors (non-2xx or socket)\n{out}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk")

    prepare_database()
    instance = tempfile.mkdtemp(prefix="portal-bench-")
    environment = env(instance)
    subprocess.run([str(VENV_BIN / "flask"), "db-upgrade"], cwd=ROOT, env=environment, check=True)
    subprocess.run([str(VENV_BIN / "flask"), "demo"], cwd=ROOT, env=environment, check=True, capture_output=True)
    tenant_id = subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            DB,
            "-tAc",
            "SELECT id FROM tenants WHERE slug='northwind'",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    portal = start("wsgi:app", PORTAL_PORT, environment)
    minimal = start("bench.minimal_app:app", MINIMAL_PORT, {**environment, "BENCH_TENANT_ID": tenant_id})
    try:
        from portal.demo import DEMO_PASSWORD, demo_secret

        base = f"http://127.0.0.1:{PORTAL_PORT}"
        cookie = sign_in(base, "buyer@northwind.example", DEMO_PASSWORD, demo_secret("buyer@northwind.example"))
        targets = {
            "portal dashboard (signed in)": (f"{base}/", cookie),
            "minimal page, same work": (f"http://127.0.0.1:{MINIMAL_PORT}/", None),
            "bare route (portal server)": (f"{base}/healthz", None),
        }
        for url, c in targets.values():  # warm-up
            wrk(url, 2, c)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, (url, c) in targets.items():
                runs[name].append(wrk(url, args.seconds, c))
    finally:
        portal.terminate()
        minimal.terminate()
        portal.wait()
        minimal.wait()

    print(f"\nwrk -t2 -c32, {args.rounds} rounds x {args.seconds} s, gunicorn 4 sync workers, medians:")
    medians = {}
    for name, results in runs.items():
        rps = statistics.median(r["rps"] for r in results)
        p95 = statistics.median(r["p95_ms"] for r in results)
        medians[name] = rps
        print(f"  {name:<32} {rps:8.0f} req/s   p95 {p95:6.1f} ms")
    dash, minimal_rps, bare = (medians[n] for n in targets)
    print(f"  dashboard / bare route          {dash / bare:8.2f}")
    print(
        f"  dashboard / minimal page        {dash / minimal_rps:8.2f}  (portal overhead {1 - dash / minimal_rps:.0%})"
    )


if __name__ == "__main__":
    main()
