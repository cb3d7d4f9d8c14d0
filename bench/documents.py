"""Compliance documents under load: a 5 MB PDF upload (p95, sniffing, PDF parsing and
hashing included) and the review queue over 50,000 documents (req/s and p95 with wrk, 32 connections),
on PostgreSQL under gunicorn (4 sync workers); then the compliance gaps of those 1,000 suppliers against 8
requirements, requested one after another (median and p95).

Usage: .venv/bin/python bench/documents.py [--uploads 40] [--seconds 10] [--rounds 3] [--gap-requests 30]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pyotp
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.dashboard import ROOT, VENV_BIN, prepare_database, sign_in, start, wrk
from portal.auth.passwords import hash_password
from tests.pdfs import build_pdf

DB = "portal_bench_docs"
PORT = 8091
PASSWORD = "bench-documents-password"
SUPPLIER_SECRET, OFFICER_SECRET = pyotp.random_base32(), pyotp.random_base32()


def seed(documents: int) -> None:
    import subprocess

    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://portal_owner@127.0.0.1:5432/{DB}",
        "FLASK_APP": "wsgi",
        "PORTAL_INSTANCE_PATH": "/tmp/portal-bench-docs",
    }
    subprocess.run([str(VENV_BIN / "flask"), "db-upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
    owner = create_engine(f"postgresql+psycopg://portal_owner@127.0.0.1:5432/{DB}", isolation_level="AUTOCOMMIT")
    password = hash_password(PASSWORD)
    with owner.connect() as conn:
        conn.execute(text("SELECT set_config('app.tenant_id', '1', false)"))
        conn.execute(
            text("""
            INSERT INTO tenants (id, name, slug, mfa_policy, unconfirmed_after_days, document_gating, created_at)
            VALUES (1, 'Bench Docs', 'bench-docs', 'required_for_all', 3, 'off', now());
            INSERT INTO suppliers (tenant_id, code, name, category, status, gating_override_reason, created_at)
            SELECT 1, 'S' || g, 'Supplier ' || g, 'Category ' || (g % 10), 'active', '', now()
            FROM generate_series(1, 1000) g;
            INSERT INTO document_types (tenant_id, code, name, created_at)
            SELECT 1, 'T' || g, 'Type ' || g, now() FROM generate_series(1, 8) g;
            INSERT INTO document_requirements (tenant_id, document_type_id, scope, category, supplier_ids, product_codes,
                                      warehouse_ids, reminder_days, grace_days, created_at)
            SELECT 1, id, 'all', '', '[]', '[]', '[]', '[60, 30, 7]', 0, now() FROM document_types;
        """)
        )
        conn.execute(
            text(f"""
            INSERT INTO documents (tenant_id, supplier_id, document_type_id, title, issuer, certificate_number,
                                   issue_date, expiry_date, status, storage_key, original_name, size, content_type,
                                   sha256, created_at)
            SELECT 1, s.id, t.id, 'Certificate ' || g, 'Issuer', 'C-' || g, CURRENT_DATE - (g % 700),
                   CURRENT_DATE + (g % 900) - 200,
                   (ARRAY['approved','approved','approved','pending_review','rejected','expired'])[1 + g % 6],
                   md5(g::text) || 'aa', 'cert-' || g || '.pdf', 250000, 'application/pdf', md5(g::text) || md5(g::text),
                   now() - (g % 400) * interval '1 day'
            FROM generate_series(1, {documents}) g
            JOIN suppliers s ON s.code = 'S' || (1 + g % 1000)
            JOIN document_types t ON t.code = 'T' || (1 + g % 8);
        """)
        )
        for email, role, supplier, secret in (
            ("officer@bench.example", "compliance_officer", None, OFFICER_SECRET),
            ("supplier@bench.example", "supplier_admin", "S1", SUPPLIER_SECRET),
        ):
            user_id = conn.execute(
                text(
                    "INSERT INTO users (email, name, password_hash, totp_secret, totp_last_step, mfa_enabled_at, is_demo,"
                    " is_platform_admin, created_at) VALUES (:e, :e, :p, :s, 0, now(), false, false, now()) RETURNING id"
                ),
                {"e": email, "p": password, "s": secret},
            ).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO memberships (tenant_id, user_id, role, supplier_id, created_at) VALUES "
                    "(1, :u, :r, (SELECT id FROM suppliers WHERE code = :c), now())"
                ),
                {"u": user_id, "r": role, "c": supplier},
            )
        conn.execute(text("VACUUM ANALYZE documents"))
    owner.dispose()


def multipart(fields: dict[str, str], file_field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
        f"Content-Type: application/pdf\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uploads", type=int, default=40)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gap-requests", type=int, default=30)
    args = parser.parse_args()
    prepare_database(DB)
    started = time.perf_counter()
    seed(50_000)
    print(f"seeded 50,000 documents in {time.perf_counter() - started:.1f} s")
    environment = {
        **os.environ,
        "PORTAL_ENV": "development",
        "PORTAL_DEMO": "0",
        "SECURE_COOKIES": "0",
        "SECRET_KEY": "bench-secret-key-0123456789-0123456789",
        "REDIS_URL": "redis://127.0.0.1:6379/13",
        "DATABASE_URL": f"postgresql://portal_app@127.0.0.1:5432/{DB}",
        "PORTAL_INSTANCE_PATH": "/tmp/portal-bench-docs",
    }
    server = start("wsgi:app", PORT, environment)
    try:
        base = f"http://127.0.0.1:{PORT}"
        pdf = build_pdf(extra_objects=("<< /Length 5242880 >>\nstream\n" + "0" * 5_242_880 + "\nendstream",))
        supplier_cookie = sign_in(base, "supplier@bench.example", PASSWORD, SUPPLIER_SECRET)
        page = urllib.request.urlopen(urllib.request.Request(f"{base}/compliance", headers={"Cookie": supplier_cookie}))
        html = page.read().decode()
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
        type_id = re.search(r'<option value="(\d+)"', html).group(1)
        timings = []
        for n in range(args.uploads):
            body, content_type = multipart(
                {"csrf_token": token, "document_type_id": type_id, "title": f"Upload {n}"},
                "file",
                "certificate.pdf",
                pdf,
            )
            request = urllib.request.Request(
                f"{base}/compliance",
                data=body,
                method="POST",
                headers={"Cookie": supplier_cookie, "Content-Type": content_type},
            )
            t0 = time.perf_counter()
            response = urllib.request.urlopen(request)
            response.read()
            timings.append((time.perf_counter() - t0) * 1000)
            if "uploaded" not in response.geturl() and response.status != 200:
                raise SystemExit(f"upload {n} failed: {response.status}")
        timings.sort()
        officer_cookie = sign_in(base, "officer@bench.example", PASSWORD, OFFICER_SECRET)
        queue_url = f"{base}/documents/review?status=all"
        wrk(queue_url, 2, officer_cookie)
        runs = [wrk(queue_url, args.seconds, officer_cookie) for _ in range(args.rounds)]
        # The gap list is a report a few compliance officers open, not a page under constant load: timed as one
        # person sees it, one request after another (after 3 to warm up).
        gap_timings = []
        for n in range(3 + args.gap_requests):
            t0 = time.perf_counter()
            with urllib.request.urlopen(
                urllib.request.Request(f"{base}/documents/gaps", headers={"Cookie": officer_cookie})
            ) as response:
                gap_page = response.read().decode()
            if n >= 3:
                gap_timings.append((time.perf_counter() - t0) * 1000)
        gap_count = re.search(r"([\d,]+ gaps at [\d,]+ suppliers)", gap_page).group(1)
    finally:
        server.terminate()
        server.wait()
    p95 = timings[int(0.95 * (len(timings) - 1))]
    print(
        f"\nupload of a {len(pdf) / 1e6:.1f} MB PDF, {len(timings)} sequential uploads: "
        f"median {statistics.median(timings):.0f} ms, p95 {p95:.0f} ms"
    )
    print(
        f"review queue over 50,000 documents (a page of 50), wrk -t2 -c32, {args.rounds} x {args.seconds} s: "
        f"{statistics.median(r['rps'] for r in runs):.0f} req/s, p95 {statistics.median(r['p95_ms'] for r in runs):.0f} ms"
    )
    gap_timings.sort()
    print(
        f"compliance gaps, 1,000 suppliers x 8 requirements over 50,000 documents ({gap_count}, a page of 50), "
        f"{len(gap_timings)} requests one after another: median {statistics.median(gap_timings):.0f} ms, "
        f"p95 {gap_timings[int(0.95 * (len(gap_timings) - 1))]:.0f} ms"
    )


if __name__ == "__main__":
    main()
