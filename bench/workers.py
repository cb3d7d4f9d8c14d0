"""Workers benchmark: the outbox relay, ERP sync throughput and latency, exception
detection over the 1,000,000-line data set, and pushes to a real Tryton server.

Measured in one run, on PostgreSQL and Redis, with real dramatiq worker processes:

1. relay: outbox rows sent to Redis by the sweep (events/s), and no-op events run by
   the workers end to end (events/s: two short transactions each);
2. ERP sync against OdooProtocolDouble answering every request in 20 ms: syncs/s, ERP
   requests/s and their ratio to the concurrency limit (worker threads / 20 ms);
3. confirmation-to-ERP latency (commit of the supplier's answer to the ERP receiving the
   note) p50/p95, idle and while a bulk of confirmations is being pushed;
4. the detection job over the orders data set (``bench/orders_data.py``): first run
   (opens every alert) and a steady-state rerun, seconds;
5. commitments/s pushed to the real Tryton 8.2 server of the tests.

Usage: python bench/workers.py [--lines 2000] [--processes 2] [--threads 8] [--skip-detection] [--skip-tryton]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, select, text  # noqa: E402

from bench.dashboard import prepare_database  # noqa: E402

DB = "portal_bench_workers"
ORDERS_DB = "portal_bench_orders"
REDIS_URL = "redis://127.0.0.1:6379/13"
NAMESPACE = "portal-bench"
SECRET = "bench-secret-key-0123456789-0123456789"


def environment(instance: str) -> dict[str, str]:
    return {
        **os.environ,
        "PORTAL_ENV": "development",
        "PORTAL_DEMO": "0",
        "PORTAL_WORKERS": "external",
        "SECRET_KEY": SECRET,
        "DATABASE_URL": f"postgresql://portal_app@127.0.0.1:5432/{DB}",
        "DATABASE_OWNER_URL": f"postgresql://portal_owner@127.0.0.1:5432/{DB}",
        "REDIS_URL": REDIS_URL,
        "PORTAL_QUEUE_NAMESPACE": NAMESPACE,
        "PORTAL_INSTANCE_PATH": instance,
        "ERP_TIMEOUT": "10",
    }


def start_workers(env: dict[str, str], processes: int, threads: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "workers.actors", "--processes", str(processes), "--threads", str(threads)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(Path(env["PORTAL_INSTANCE_PATH"]) / "workers.log", "ab"),
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def wait(predicate, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--relay-events", type=int, default=20000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--tryton-lines", type=int, default=200)
    parser.add_argument("--skip-detection", action="store_true")
    parser.add_argument("--skip-tryton", action="store_true")
    args = parser.parse_args()

    instance = tempfile.mkdtemp(prefix="bench-workers-")
    env = environment(instance)
    # Set before the portal is imported: the queue (workers.broker) is chosen from the environment.
    os.environ.update(env)
    prepare_database(DB)
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db-upgrade"], cwd=ROOT, env=env, check=True,
                   capture_output=True)  # fmt: skip
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()

    from portal import create_app, outbox
    from portal.config import load_settings

    # Publishes to Redis after each commit, as a web process does.
    app = create_app(load_settings(env))
    database = app.extensions["portal.db"]
    results: list[tuple[str, str]] = []
    threads_total = args.processes * args.threads

    # --- 1. relay ---------------------------------------------------------------------------
    from portal.outbox import OutboxEvent
    from portal.tenancy.models import Tenant

    with database.transaction() as s:
        tenant = Tenant(name="Bench Workers", slug="bench-workers")
        s.add(tenant)
        s.flush()
        tenant_id = tenant.id
    with database.transaction(tenant_id=tenant_id) as s:
        s.execute(
            OutboxEvent.__table__.insert(),
            [{"tenant_id": tenant_id, "topic": "bench.noop", "payload": {"n": i}, "attempts": 0, "last_error": "",
              "created_at": outbox.utcnow(), "available_at": outbox.utcnow()} for i in range(args.relay_events)],
        )  # fmt: skip
    started = time.perf_counter()
    sent = 0
    while True:
        batch = outbox.sweep(database, now=outbox.utcnow() + timedelta(minutes=5), limit=1000)
        if not batch:
            break
        sent += batch
    relay_seconds = time.perf_counter() - started
    results.append(
        (
            "relay: outbox rows sent to Redis by the sweep",
            f"{sent / relay_seconds:,.0f} events/s ({sent} in {relay_seconds:.2f} s)",
        )
    )

    def open_events() -> int:
        with database.transaction(tenant_id=tenant_id) as s:
            return int(s.execute(select(func.count(OutboxEvent.id)).where(OutboxEvent.done_at.is_(None))).scalar_one())

    workers = start_workers(env, args.processes, args.threads)
    try:
        seconds = wait(lambda: open_events() == 0, 600, "the no-op events")
        results.append((f"relay: no-op events run by {args.processes}x{args.threads} workers",
                        f"{args.relay_events / seconds:,.0f} events/s ({seconds:.1f} s)"))  # fmt: skip

        # --- 2. and 3. ERP sync against an ERP double answering in 20 ms ------------------------
        from tests.odoo_double import API_KEY, DATABASE, LOGIN, OdooProtocolDouble

        def restart_workers() -> None:
            nonlocal workers
            stop(workers)
            workers = start_workers(env, args.processes, args.threads)

        with OdooProtocolDouble(19, latency=0.020) as odoo:
            results += erp_sync(app, database, odoo, API_KEY, DATABASE, LOGIN, args.lines, threads_total,
                                pause=lambda: stop(workers), resume=restart_workers)  # fmt: skip
        if not args.skip_tryton:
            results += tryton_push(app, database, args.tryton_lines)
    finally:
        stop(workers)
    if not args.skip_detection:
        results += detection()

    width = max(len(name) for name, _ in results)
    print()
    for name, value in results:
        print(f"{name:<{width}}  {value}")


def _connected_tenant(app, database, name: str, kind, url: str, db: str, login: str, secret: str) -> int:  # type: ignore[no-untyped-def]
    from portal.auth.services import Actor
    from portal.erp import services
    from portal.tenancy.models import Company, Tenant, Warehouse

    with database.transaction() as s:
        tenant = Tenant(name=name, slug=name.lower().replace(" ", "-"))
        s.add(tenant)
        s.flush()
        tenant_id = tenant.id
    with app.app_context(), database.transaction(tenant_id=tenant_id) as s:
        company = Company(tenant_id=tenant_id, code="NW", name="Northwind")
        s.add(company)
        s.flush()
        s.add(Warehouse(tenant_id=tenant_id, company_id=company.id, code="WH", name="Main"))
        services.save_connection(s, tenant_id=tenant_id, kind=kind, url=url, database=db, login=login, secret=secret,
                                 active=True, actor=Actor(None, "bench", ""))  # fmt: skip
    return tenant_id


def _pull_and_settle(app, database, tenant_id: int) -> None:  # type: ignore[no-untyped-def]
    from portal.erp import handlers
    from portal.outbox import OutboxEvent

    with app.app_context():
        handlers.pull_tenant(database, tenant_id)
    # The intake's own events (new-order notifications) are not what is measured here.
    with database.transaction(tenant_id=tenant_id) as s:
        s.execute(OutboxEvent.__table__.update().where(OutboxEvent.tenant_id == tenant_id).values(done_at=outbox_now()))


def outbox_now():  # type: ignore[no-untyped-def]
    from portal.db import utcnow

    return utcnow()


def _confirm_orders(app, database, tenant_id: int, order_ids: list[int], split: bool = False) -> list[float]:  # type: ignore[no-untyped-def]
    """Accept (or split) every line of each order, one transaction per order; the commit times."""
    from portal.auth.services import Actor
    from portal.orders import services as orders
    from portal.orders.models import PurchaseOrder
    from portal.orders.services import Delivery, LineAnswer

    actor = Actor(None, "bench supplier", "")
    committed = []
    for order_id in order_ids:
        with app.app_context(), database.transaction(tenant_id=tenant_id) as s:
            order = s.execute(select(PurchaseOrder).where(PurchaseOrder.id == order_id)).scalar_one()
            answers = []
            for line in orders.order_lines(s, order):
                if split:
                    half = (line.quantity / 2).quantize(Decimal("1"))
                    answers.append(LineAnswer(line.id, "change", (
                        Delivery(half, line.requested_date), Delivery(line.quantity - half, line.requested_date + timedelta(days=7)))))  # fmt: skip
                else:
                    answers.append(LineAnswer(line.id, "accept"))
            orders.respond(s, order=order, expected_version=None, actor=actor, answers=answers)
            if split:
                from portal.orders.models import ChangeRequest

                for request in s.execute(select(ChangeRequest).where(ChangeRequest.order_id == order.id)).scalars():
                    orders.decide(s, request=request, order=order, decision="approve", comment="",
                                  expected_version=None, actor=actor)  # fmt: skip
        committed.append(time.monotonic())
    return committed


def _synced(database, tenant_id: int) -> int:  # type: ignore[no-untyped-def]
    from portal.erp.models import ErpLineSync, SyncStatus

    with database.transaction(tenant_id=tenant_id) as s:
        return int(
            s.execute(
                select(func.count(ErpLineSync.id)).where(
                    ErpLineSync.status == SyncStatus.SYNCED, ErpLineSync.synced_ledger_id.is_not(None)
                )
            ).scalar_one()
        )


def erp_sync(app, database, odoo, key: str, db: str, login: str, lines: int, threads_total: int, pause, resume):  # type: ignore[no-untyped-def]
    from portal.erp.models import ErpKind
    from portal.orders.models import PurchaseOrder

    results = []
    soon = (date.today() + timedelta(days=20)).isoformat()
    per_order = 4
    for n in range(lines // per_order):
        odoo.state.make_order(f"Supplier {n % 50}", [(f"P{n}-{i}", 10 + i, 1.0, soon) for i in range(per_order)])
    tenant_id = _connected_tenant(app, database, "Bench Odoo", ErpKind.ODOO, odoo.url, db, login, key)
    _pull_and_settle(app, database, tenant_id)
    with database.transaction(tenant_id=tenant_id) as s:
        order_ids = list(s.execute(select(PurchaseOrder.id).order_by(PurchaseOrder.id)).scalars())

    # The workers' capacity: every line is confirmed (queued) first, then the workers start.
    pause()
    _confirm_orders(app, database, tenant_id, order_ids)
    total = len(order_ids) * per_order
    calls_before = len(odoo.state.calls)
    resume()
    started = time.monotonic()
    # While pushing: from the first line synced (the worker processes have started and the events queued
    # ahead of the pushes have run) to the last.
    first_synced = {}

    def all_synced() -> bool:
        done = _synced(database, tenant_id)
        if done and not first_synced:
            first_synced.update(at=time.monotonic(), count=done, calls=len(odoo.state.calls))
        return done >= total

    wait(all_synced, 1800, "the ERP pushes")
    finished = time.monotonic()
    elapsed = finished - started
    requests = len(odoo.state.calls) - calls_before
    limit = threads_total / 0.020
    per_sync = requests / total
    steady = finished - first_synced["at"]
    steady_requests = len(odoo.state.calls) - first_synced["calls"]
    results.append((f"ERP sync ({total} lines queued, ERP double at 20 ms/request), while pushing",
                    f"{(total - first_synced['count']) / steady:,.1f} syncs/s; {steady_requests / steady:,.0f} ERP "
                    f"requests/s ({per_sync:.1f} per sync); {steady_requests / steady / limit:.0%} of the limit "
                    f"{limit:,.0f} req/s ({threads_total} threads / 20 ms)"))  # fmt: skip
    results.append(("  the whole run: worker start-up and the events queued ahead of the pushes included",
                    f"{total / elapsed:,.1f} syncs/s; {requests / elapsed / limit:.0%} of the limit"))  # fmt: skip
    # Where "while pushing" starts: with each tenant's fair share of the queue, the lines of the events within
    # the share sync while the rest of the events are still being handled, so that window holds event handling
    # too; in one shared queue every event runs before the first push. Compare the whole runs.
    results.append(("  the first line synced",
                    f"{first_synced['at'] - started:,.1f} s after the workers started "
                    f"({first_synced['count']} synced by then)"))  # fmt: skip

    # Latency: commit of a confirmation to the note's arrival in the ERP.
    def one_latency(order_id: int, tenant: int = tenant_id, erp=odoo) -> float:  # type: ignore[no-untyped-def]
        committed = _confirm_orders(app, database, tenant, [order_id])[0]
        with database.transaction(tenant_id=tenant) as s:
            from portal.orders.models import CommitmentEntry

            ledger = max(s.execute(select(CommitmentEntry.id).where(CommitmentEntry.order_id == order_id)).scalars())
        marker = f"[portal commitment-{ledger}]"
        wait(lambda: marker in erp.state.posted_at, 120, "the note")
        return erp.state.posted_at[marker] - committed

    extra: list[int] = []
    for n in range(90):
        odoo.state.make_order("Latency Supplier", [(f"L{n}", 5, 1.0, soon)])
    _pull_and_settle(app, database, tenant_id)
    with database.transaction(tenant_id=tenant_id) as s:
        extra = [
            i
            for i in s.execute(select(PurchaseOrder.id).order_by(PurchaseOrder.id)).scalars()
            if i not in set(order_ids)
        ]
    idle = []
    for order_id in extra[:30]:
        idle.append(one_latency(order_id))
        time.sleep(0.3)
    results.append(("confirmation-to-ERP latency, idle (30)",
                    f"p50 {statistics.median(idle) * 1000:,.0f} ms, p95 {pct(idle, 0.95) * 1000:,.0f} ms"))  # fmt: skip

    # Under load: a bulk of 1,000 more lines is being confirmed and pushed meanwhile.
    for n in range(250):
        odoo.state.make_order(f"Load Supplier {n % 20}", [(f"X{n}-{i}", 7, 1.0, soon) for i in range(4)])
    _pull_and_settle(app, database, tenant_id)
    with database.transaction(tenant_id=tenant_id) as s:
        known = set(order_ids) | set(extra)
        bulk = [i for i in s.execute(select(PurchaseOrder.id).order_by(PurchaseOrder.id)).scalars() if i not in known]
    loader = threading.Thread(target=_confirm_orders, args=(app, database, tenant_id, bulk), daemon=True)
    loader.start()
    time.sleep(1.0)
    loaded = [one_latency(order_id) for order_id in extra[30:60]]
    loader.join()
    results.append(("confirmation-to-ERP latency, under load (30, with 1,000 lines being pushed)",
                    f"p50 {statistics.median(loaded) * 1000:,.0f} ms, p95 {pct(loaded, 0.95) * 1000:,.0f} ms"))  # fmt: skip
    wait(lambda: _synced(database, tenant_id) >= total + 4 * len(bulk) + 60, 1800, "the first bulk")

    # Another tenant's confirmations while this tenant's next 1,000 lines are pushed: beyond its fair share,
    # this tenant's events wait in the bulk queue (PORTAL_QUEUE_FAIR_SHARE=1000000000 gives every tenant room in
    # the shared queue: one FIFO queue, as before the shares).
    from portal.erp.models import ErpKind
    from tests.odoo_double import API_KEY, DATABASE, LOGIN, OdooProtocolDouble

    with OdooProtocolDouble(19, latency=0.020) as other_erp:
        for n in range(30):
            other_erp.state.make_order("Other Supplier", [(f"O{n}", 5, 1.0, soon)])
        other = _connected_tenant(app, database, "Bench Other Tenant", ErpKind.ODOO, other_erp.url, DATABASE, LOGIN,
                                  API_KEY)  # fmt: skip
        _pull_and_settle(app, database, other)
        with database.transaction(tenant_id=other) as s:
            other_orders = list(s.execute(select(PurchaseOrder.id).order_by(PurchaseOrder.id)).scalars())
        for n in range(250):
            odoo.state.make_order(f"Load Supplier {n % 20}", [(f"Y{n}-{i}", 7, 1.0, soon) for i in range(4)])
        _pull_and_settle(app, database, tenant_id)
        with database.transaction(tenant_id=tenant_id) as s:
            known |= set(bulk)
            second_bulk = [i for i in s.execute(select(PurchaseOrder.id).order_by(PurchaseOrder.id)).scalars()
                           if i not in known]  # fmt: skip
        loader = threading.Thread(target=_confirm_orders, args=(app, database, tenant_id, second_bulk), daemon=True)
        loader.start()
        time.sleep(1.0)
        others = [one_latency(order_id, other, other_erp) for order_id in other_orders]
        loader.join()
    share = os.environ.get("PORTAL_QUEUE_FAIR_SHARE", "100")
    results.append((f"another tenant's confirmation-to-ERP latency, under this load (30; share {share} / 10 s)",
                    f"p50 {statistics.median(others) * 1000:,.0f} ms, p95 {pct(others, 0.95) * 1000:,.0f} ms"))  # fmt: skip
    return results


def tryton_push(app, database, lines: int):  # type: ignore[no-untyped-def]
    from portal.erp.models import ErpKind
    from portal.orders.models import PurchaseOrder
    from tests.tryton_server import TrytonData, start_server

    server = start_server(Path(tempfile.mkdtemp(prefix="bench-tryton-")))
    try:
        erp = TrytonData(server.client())
        soon = date.today() + timedelta(days=15)
        for n in range(lines // 2):
            erp.purchase(f"Tryton Supplier {n % 10}", [(f"T{n}-A", 100, "1.00", soon), (f"T{n}-B", 50, "2.00", soon)])
        tenant_id = _connected_tenant(app, database, "Bench Tryton", ErpKind.TRYTON, server.url, server.database,
                                      server.login, server.password)  # fmt: skip
        _pull_and_settle(app, database, tenant_id)
        with database.transaction(tenant_id=tenant_id) as s:
            order_ids = list(s.execute(select(PurchaseOrder.id).order_by(PurchaseOrder.id)).scalars())
        started = time.monotonic()
        _confirm_orders(app, database, tenant_id, order_ids, split=True)
        wait(lambda: _synced(database, tenant_id) >= lines, 1800, "the Tryton pushes")
        elapsed = time.monotonic() - started
        return [(f"Tryton 8.2 push ({lines} split commitments, SQLite-backed server)",
                 f"{lines / elapsed:,.1f} commitments/s ({elapsed:.1f} s)")]  # fmt: skip
    finally:
        server.stop()


def detection():  # type: ignore[no-untyped-def]
    from portal.db import Database, set_context
    from portal.orders.alerts import detect

    engine = create_engine(f"postgresql+psycopg://portal_owner@127.0.0.1:5432/{ORDERS_DB}")
    try:
        with engine.connect() as conn:
            # Row-level security is forced on the owner too: count as tenant 1.
            conn.execute(text("SELECT set_config('app.tenant_id', '1', false)"))
            lines = conn.execute(text("SELECT count(*) FROM purchase_order_lines")).scalar_one()
            conn.execute(text("DELETE FROM line_alerts"))
            conn.execute(text("DELETE FROM outbox_events WHERE topic IN ('alerts.opened', 'order.reminded')"))
            conn.execute(
                text("UPDATE purchase_orders SET reminded_at = NULL, reminder_count = 0 WHERE reminded_at IS NOT NULL")
            )
            conn.execute(text("UPDATE tenants SET reminder_repeat_days = 0 WHERE id = 1"))
            conn.commit()
    except Exception as exc:
        return [("detection", f"skipped: run bench/orders_data.py first ({exc.__class__.__name__})")]
    database = Database(f"postgresql+psycopg://portal_app@127.0.0.1:5432/{ORDERS_DB}")
    timings = []
    repeated = "rerun, the tenant repeating reminders every 2 days and the first ones 2 days old"
    for label in ("first run, opens every alert", "rerun, nothing changed", repeated):
        if label == repeated:
            with engine.begin() as conn:
                conn.execute(text("SELECT set_config('app.tenant_id', '1', true)"))
                conn.execute(text("UPDATE tenants SET reminder_repeat_days = 2 WHERE id = 1"))
                conn.execute(text("UPDATE purchase_orders SET reminded_at = reminded_at - interval '2 days' "
                                  "WHERE reminded_at IS NOT NULL"))  # fmt: skip
        started = time.perf_counter()
        with database.transaction(tenant_id=1) as s:
            set_context(s, tenant_id=1)
            run = detect(s, tenant_id=1, today=date(2026, 11, 27))
        seconds = time.perf_counter() - started
        timings.append((f"detection over {lines:,} lines, {label}",
                        f"{seconds:.1f} s ({run.opened:,} opened, {run.resolved:,} resolved, {run.open_total:,} open, "
                        f"{run.reminded:,} orders reminded to their suppliers)"))  # fmt: skip
    with engine.begin() as conn:  # the tenant as the data set has it
        conn.execute(text("UPDATE tenants SET reminder_repeat_days = 0 WHERE id = 1"))
    engine.dispose()
    return timings


if __name__ == "__main__":
    main()
