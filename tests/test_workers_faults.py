"""Exactly once under faults: a real dramatiq worker process, a private real Redis,
the real Tryton server behind a fault-injecting TCP proxy.

Each scenario ends with the commitment in Tryton exactly once (the right open
moves, one note per commitment), nothing lost, and no error for the supplier.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import redis
from sqlalchemy import or_, select

from portal import outbox
from portal.auth.services import Actor
from portal.db import utcnow
from portal.erp import handlers, services
from portal.erp.models import ErpKind, ErpLineSync, SyncStatus
from portal.orders import services as orders
from portal.orders.models import ChangeRequest, PurchaseOrder, PurchaseOrderLine
from portal.orders.services import Delivery, LineAnswer
from portal.outbox import OutboxEvent
from portal.tenancy.models import Company, Warehouse
from tests.conftest import tenant_session
from tests.factories import make_tenant
from tests.tcp_proxy import TcpProxy
from tests.tryton_server import TrytonData, free_port

ROOT = Path(__file__).resolve().parent.parent
SECRET_KEY = "test-secret-key-that-is-long-enough-0123456789"
D = Decimal
ACTOR = Actor(None, "supplier@acme.example", "")


class PrivateRedis:
    """A redis-server of this test alone, so it can be stopped and started again."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.tmp)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=0.2).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def private_redis(tmp_path, redis_url) -> Iterator[PrivateRedis]:  # type: ignore[no-untyped-def]
    server = PrivateRedis(tmp_path)
    try:
        server.start()
    except (FileNotFoundError, redis.ConnectionError) as exc:
        from tests.conftest import service_missing

        service_missing("redis-server", exc)
    yield server
    server.stop()


class WorkerProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "workers.actors", "--processes", "1", "--threads", "2"],
            cwd=ROOT,
            env=self.env,
            stdout=open(self.log, "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the whole worker (dramatiq's parent and its worker process)."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


@pytest.fixture
def worker(tmp_path, private_redis, pg_database) -> Iterator[WorkerProcess]:  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        "PORTAL_ENV": "test",
        "SECRET_KEY": SECRET_KEY,
        "DATABASE_URL": pg_database["app"],
        "REDIS_URL": private_redis.url,
        "PORTAL_INSTANCE_PATH": str(tmp_path),
        "PORTAL_WORKERS": "external",
        "ERP_TIMEOUT": "3",
        # The worker runs with dramatiq's default timeout, as the documented command does: the portal's broker
        # caps an idle queue's back-off (``workers.broker.IDLE_POLL_MS``), so a lone message after an idle spell
        # is picked up within ~100 ms.
    }
    process = WorkerProcess(env, tmp_path / "worker.log")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def redis_publisher(private_redis) -> Iterator[list[list[int]]]:  # type: ignore[no-untyped-def]
    """Make this (test) process publish outbox events to the private Redis, as a web process would; yields
    the batches sent (a transaction's several events as one message)."""
    from workers import actors
    from workers.broker import build_broker

    broker = build_broker(private_redis.url, namespace="portal")

    def publish(tenant_id: int, event_id: int, delay_ms: int) -> None:
        broker.enqueue(actors.handle_event.message(tenant_id, event_id), delay=delay_ms or None)

    batches: list[list[int]] = []

    def publish_batch(tenant_id: int, event_ids: list[int]) -> None:  # a transaction's events: one message
        batches.append(event_ids)
        broker.enqueue(actors.handle_events.message(tenant_id, event_ids))

    previous = outbox._publisher, outbox._batch_publisher
    outbox.set_publisher(publish, batch=publish_batch)
    yield batches
    outbox.set_publisher(*previous)
    broker.close()


@pytest.fixture
def proxy(tryton) -> Iterator[TcpProxy]:  # type: ignore[no-untyped-def]
    host, port = tryton.url.removeprefix("http://").split(":")
    p = TcpProxy(host, int(port))
    yield p
    p.close()


@pytest.fixture
def scenario(committed_app, committed_db, tryton, proxy):  # type: ignore[no-untyped-def]
    """A tenant connected to Tryton through the proxy, with one confirmed purchase of one line pulled in."""
    erp = TrytonData(tryton.client())
    with tenant_session(committed_db, None) as s:
        tenant_id = make_tenant(s).id
    with committed_app.app_context(), tenant_session(committed_db, tenant_id) as s:
        company = Company(tenant_id=tenant_id, code="NW", name="Northwind")
        s.add(company)
        s.flush()
        s.add(Warehouse(tenant_id=tenant_id, company_id=company.id, code="WH", name="Main"))
        services.save_connection(
            s, tenant_id=tenant_id, kind=ErpKind.TRYTON, url=proxy.url, database=tryton.database,
            login=tryton.login, secret=tryton.password, active=True, actor=ACTOR,
        )  # fmt: skip
    requested = date.today() + timedelta(days=12)
    supplier = f"Fault Supplier {tenant_id}"
    purchase, (line_erp_id,) = erp.purchase(supplier, [(f"FX-{tenant_id}", 100, "1.00", requested)])
    with committed_app.app_context():
        # Only this purchase: the cursor starts now-ish, so pull what changed in the last minute.
        with tenant_session(committed_db, tenant_id) as s:
            services.get_connection(s, tenant_id).orders_cursor = utcnow() - timedelta(minutes=1)
        handlers.pull_tenant(committed_db, tenant_id)
    with tenant_session(committed_db, tenant_id) as s:
        for event in s.execute(select(OutboxEvent)).scalars():
            event.done_at = utcnow()
        order = s.execute(select(PurchaseOrder).where(PurchaseOrder.erp_ref == str(purchase))).scalar_one()
        line = s.execute(select(PurchaseOrderLine).where(PurchaseOrderLine.order_id == order.id)).scalar_one()
    return {"tenant_id": tenant_id, "order_id": order.id, "line_id": line.id, "erp": erp, "erp_line": line_erp_id}


def split_line(app, database, sc) -> None:  # type: ignore[no-untyped-def]
    """The supplier splits the line 60 + 40; the buyer approves (outside the zero tolerance)."""
    first, second = date.today() + timedelta(days=10), date.today() + timedelta(days=25)
    with app.app_context(), tenant_session(database, sc["tenant_id"]) as s:
        order = s.execute(select(PurchaseOrder).where(PurchaseOrder.id == sc["order_id"])).scalar_one()
        orders.respond(
            s, order=order, expected_version=None, actor=ACTOR,
            answers=[LineAnswer(sc["line_id"], "change", (Delivery(D("60"), first), Delivery(D("40"), second)))],
        )  # fmt: skip
        for request in s.execute(select(ChangeRequest).where(ChangeRequest.order_id == order.id)).scalars():
            orders.decide(
                s, request=request, order=order, decision="approve", comment="", expected_version=None, actor=ACTOR
            )
    sc["expected"] = [(D("60"), first), (D("40"), second)]


def wait_until_synced(database, sc, timeout: float = 45.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with tenant_session(database, sc["tenant_id"]) as s:
            sync = s.execute(select(ErpLineSync).where(ErpLineSync.line_id == sc["line_id"])).scalar_one()
            open_events = s.execute(
                select(
                    OutboxEvent.topic, OutboxEvent.id, OutboxEvent.attempts, OutboxEvent.available_at,
                    OutboxEvent.sent_at, OutboxEvent.last_error,
                ).where(OutboxEvent.done_at.is_(None), OutboxEvent.failed_at.is_(None))
            ).all()  # fmt: skip
        if sync.status == SyncStatus.SYNCED and sync.synced_ledger_id and not open_events:
            return
        time.sleep(0.2)
    raise AssertionError(
        f"not synced in {timeout} s (now {utcnow()}): {sync.status} {sync.error!r}, open: {open_events}"
    )


def assert_exactly_once(sc) -> None:  # type: ignore[no-untyped-def]
    erp = sc["erp"]
    assert erp.open_moves(sc["erp_line"]) == sc["expected"]
    note = erp.note(sc["erp_line"])
    keys = [part.split("]", 1)[0] for part in note.split("[portal ")[1:]]
    assert keys and len(keys) == len(set(keys)), f"a note was written twice: {note!r}"


def sweep_later(database, seconds: int = 120) -> int:  # type: ignore[no-untyped-def]
    """The relay's periodic sweep, run as if ``seconds`` had passed."""
    return outbox.sweep(database, now=utcnow() + timedelta(seconds=seconds))


def sweep_until_resent(database, sc, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """The relay's periodic sweeps, until every open event has been sent again. The sweep skips rows another
    transaction has locked, and a killed worker's locks last until PostgreSQL notices its connection is gone,
    which a loaded machine may take a moment to do (the next periodic sweep does the rest in production)."""
    deadline = time.monotonic() + timeout
    while True:
        sweep_later(database)
        with tenant_session(database, sc["tenant_id"]) as s:
            not_resent = s.execute(
                select(OutboxEvent.id).where(
                    OutboxEvent.done_at.is_(None),
                    OutboxEvent.failed_at.is_(None),
                    # Sent by the fast path only (no sent_at), or by a sweep before the kill.
                    or_(OutboxEvent.sent_at.is_(None), OutboxEvent.sent_at <= utcnow()),
                )
            ).all()
        if not not_resent:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"events never sent again: {not_resent}")
        time.sleep(0.2)


def test_worker_process_syncs_a_split_through_redis(committed_app, committed_db, scenario, worker, redis_publisher):
    split_line(committed_app, committed_db, scenario)
    # The answer's events went as one message, which the worker turned into one message per event.
    assert any(len(batch) > 1 for batch in redis_publisher)
    wait_until_synced(committed_db, scenario)
    assert_exactly_once(scenario)


def test_erp_500s_are_retried_until_it_answers(committed_app, committed_db, scenario, proxy, worker, redis_publisher):
    proxy.fail_next(3)
    split_line(committed_app, committed_db, scenario)
    wait_until_synced(committed_db, scenario, timeout=60)
    assert_exactly_once(scenario)
    with tenant_session(committed_db, scenario["tenant_id"]) as s:
        attempts = s.execute(select(OutboxEvent.attempts).where(OutboxEvent.topic == "erp.sync_line")).scalars().all()
    assert max(attempts) >= 2


def test_erp_commits_but_the_answer_is_lost(committed_app, committed_db, scenario, proxy, worker, redis_publisher):
    rule = proxy.drop_response_after("model.stock.move.copy")
    split_line(committed_app, committed_db, scenario)
    wait_until_synced(committed_db, scenario, timeout=60)
    assert rule.seen.is_set()
    assert_exactly_once(scenario)


def test_erp_timeout_then_success(committed_app, committed_db, scenario, proxy, worker, redis_publisher):
    rule = proxy.delay_response_after("model.stock.move.write", 5)  # the worker gives up after ERP_TIMEOUT=3 s
    split_line(committed_app, committed_db, scenario)
    wait_until_synced(committed_db, scenario, timeout=60)
    assert rule.seen.is_set()
    assert_exactly_once(scenario)


def test_worker_killed_in_the_middle_of_a_sync(committed_app, committed_db, scenario, proxy, worker, redis_publisher):
    rule = proxy.delay_response_after("model.stock.move.copy", 30)
    split_line(committed_app, committed_db, scenario)
    assert rule.seen.wait(30), "the worker never reached the ERP"
    worker.kill()  # SIGKILL while Tryton has done the write and the answer is held back
    with tenant_session(committed_db, scenario["tenant_id"]) as s:
        unfinished = (
            s.execute(select(OutboxEvent).where(OutboxEvent.topic == "erp.sync_line", OutboxEvent.done_at.is_(None)))
            .scalars()
            .all()
        )
    assert unfinished, "the kill must leave the sync unfinished"
    assert all(event.attempts >= 1 for event in unfinished)  # the attempt was counted before the ERP call
    worker.start()
    # Redis would hand the message back only after its heartbeat timeout; the relay's sweep
    # does it as soon as the row is overdue.
    sweep_until_resent(committed_db, scenario)
    # Generous: a loaded machine restarts the worker and reconnects to Redis slowly.
    wait_until_synced(committed_db, scenario, timeout=120)
    assert_exactly_once(scenario)


def test_redis_down_suppliers_still_confirm_and_nothing_is_lost(
    committed_app, committed_db, scenario, private_redis, worker, redis_publisher
):
    private_redis.stop()
    split_line(committed_app, committed_db, scenario)  # no exception: the send fails quietly
    with tenant_session(committed_db, scenario["tenant_id"]) as s:
        waiting = s.execute(select(OutboxEvent).where(OutboxEvent.done_at.is_(None))).scalars().all()
    assert waiting, "the events must wait in the database"
    private_redis.start()  # a restarted Redis: empty, every queued message is gone
    assert sweep_later(committed_db) >= 1
    wait_until_synced(committed_db, scenario, timeout=90)
    assert_exactly_once(scenario)
