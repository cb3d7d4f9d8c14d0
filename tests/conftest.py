"""Test fixtures: real PostgreSQL (one database per xdist worker, built by
``alembic upgrade head`` as the owner role; the portal connects as the
non-owner application role so row-level security applies), a savepoint per test,
and the Flask app bound to it.

With ``CI=true`` a missing PostgreSQL, Redis or Chromium fails the tests that
need it; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from portal import create_app
from portal.config import load_settings
from portal.db import SHARED_CONNECTION, Database, apply_context, make_engine, set_context
from tests.helpers import PortalClient

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
OWNER_ROLE = "portal_owner"
APP_ROLE = os.environ.get("PORTAL_DB_APP_ROLE", "portal_app")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def service_missing(what: str, error: Exception | str) -> None:
    message = f"{what} is not available: {error}"
    if IN_CI:
        pytest.fail(message + " (CI=true: tests that need it must run)", pytrace=False)
    pytest.skip(message)


def _url_for(role: str, database: str) -> str:
    return (
        make_url(PG_ADMIN_URL)
        .set(username=role, password=None, database=database)
        .render_as_string(hide_password=False)
    )


def ensure_roles(admin: Connection) -> None:
    """The owner runs migrations; the app role owns nothing and cannot bypass RLS.

    Roles are cluster-wide and every test worker starts here at once: on a fresh cluster two
    workers would both see a role missing and the second CREATE ROLE would fail, so the check
    and the creation run under one advisory lock (held by this AUTOCOMMIT connection's session).
    """
    admin.execute(text("SELECT pg_advisory_lock(hashtext('portal test roles'))"))
    try:
        for role, options in (
            (OWNER_ROLE, "LOGIN"),
            (APP_ROLE, "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"),
        ):
            exists = admin.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar()
            if not exists:
                admin.execute(text(f'CREATE ROLE "{role}" {options}'))
    finally:
        admin.execute(text("SELECT pg_advisory_unlock(hashtext('portal test roles'))"))


@pytest.fixture(scope="session")
def pg_database(worker_id: str) -> Iterator[dict[str, str]]:
    # Unique per run (xdist workers share their controller's pid), so two runs on one machine never collide.
    run = os.getppid() if worker_id != "master" else os.getpid()
    name = f"portal_test_{run}_{worker_id}"
    try:
        admin_engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin_engine.connect() as admin:
            ensure_roles(admin)
            admin.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.execute(text(f'CREATE DATABASE "{name}" OWNER "{OWNER_ROLE}"'))
    except Exception as exc:
        service_missing("PostgreSQL", exc)
    urls = {"owner": _url_for(OWNER_ROLE, name), "app": _url_for(APP_ROLE, name), "name": name}
    from alembic import command

    from portal.migrate import alembic_config

    os.environ["PORTAL_DB_APP_ROLE"] = APP_ROLE
    command.upgrade(alembic_config(urls["owner"]), "head")
    yield urls
    with admin_engine.connect() as admin:
        admin.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin_engine.dispose()


@pytest.fixture
def scratch_pg_database(pg_database: dict[str, str]) -> Iterator[str]:
    """An empty database of the owner (for migrations run step by step), dropped afterwards: its URL."""
    name = f"{pg_database['name']}_scratch"
    admin_engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as admin:
        admin.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.execute(text(f'CREATE DATABASE "{name}" OWNER "{OWNER_ROLE}"'))
    yield _url_for(OWNER_ROLE, name)
    with admin_engine.connect() as admin:
        admin.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin_engine.dispose()


@pytest.fixture(scope="session")
def app_engine_db(pg_database: dict[str, str]) -> Iterator[Database]:
    database = Database(pg_database["app"])
    yield database
    database.engine.dispose()


@pytest.fixture(scope="session")
def owner_engine(pg_database: dict[str, str]):  # type: ignore[no-untyped-def]
    engine = make_engine(pg_database["owner"])
    yield engine
    engine.dispose()


class SavepointDatabase(Database):
    """A Database whose sessions all join one outer transaction (rolled back after the test).

    SQLAlchemy's "joining a session into an external transaction" recipe: each
    session's commit only releases a savepoint.
    """

    def __init__(self, connection: Connection, url: str) -> None:
        self.url = url
        self.engine = connection.engine
        self.connection = connection
        self.session_factory = sessionmaker(
            bind=connection,
            expire_on_commit=False,
            join_transaction_mode="create_savepoint",
            info={SHARED_CONNECTION: True},
        )
        # In production each transaction starts with empty RLS settings; here all
        # sessions share one outer transaction, so every begin sets them explicitly.
        event.listen(self.session_factory, "after_begin", lambda s, t, c: apply_context(s, c))


@pytest.fixture
def db(app_engine_db: Database) -> Iterator[SavepointDatabase]:
    connection = app_engine_db.engine.connect()
    outer = connection.begin()
    yield SavepointDatabase(connection, app_engine_db.url)
    outer.rollback()
    connection.close()


@pytest.fixture
def session(db: SavepointDatabase) -> Iterator[Session]:
    """A session for arranging and asserting; no tenant set (bind one with ``set_context``)."""
    s = db.session()
    yield s
    s.close()


def _settings(tmp_path: Path, url: str, **extra: str):  # type: ignore[no-untyped-def]
    env = {
        "PORTAL_ENV": "test",
        "SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
        "DATABASE_URL": url,
        "PORTAL_INSTANCE_PATH": str(tmp_path),
        "BASE_URL": "http://localhost",
        "PORTAL_DEMO": "0",
        **extra,
    }
    return load_settings(env)


@pytest.fixture(scope="session")
def base_app(tmp_path_factory: pytest.TempPathFactory, pg_database: dict[str, str]) -> Flask:
    app = create_app(_settings(tmp_path_factory.mktemp("instance"), pg_database["app"]))
    app.config["TESTING"] = True
    return app


@pytest.fixture
def app(base_app: Flask, db: SavepointDatabase) -> Iterator[Flask]:
    """The portal bound to this test's savepoint database; CSRF stays on."""
    previous = base_app.extensions["portal.db"]
    base_app.extensions["portal.db"] = db
    base_app.extensions["portal.ratelimiter"].reset()
    yield base_app
    base_app.extensions["portal.db"] = previous


@pytest.fixture
def client(app: Flask) -> PortalClient:
    return PortalClient(app.test_client())


@contextmanager
def tenant_session(database: Database, tenant_id: int | None) -> Iterator[Session]:
    s = database.session()
    set_context(s, tenant_id=tenant_id)
    try:
        yield s
        s.commit()
    finally:
        s.close()


@pytest.fixture(autouse=True)
def _fresh_erp_caches() -> Iterator[None]:
    """The Odoo adapter remembers field names and user ids per server address for a while; a test's Odoo
    double may get the port an earlier test's double (of another version) had, so every test starts
    without them."""
    from portal.erp import odoo
    from portal.tenancy.services import forget_choices

    odoo._FIELDS_CACHE.clear()
    odoo._UIDS.clear()
    forget_choices()  # likewise the ship-to and buyer choices kept per tenant id
    yield


# --- committed data (concurrency, live server, browser) ------------------------------


@pytest.fixture
def committed_db(app_engine_db: Database, owner_engine) -> Iterator[Database]:  # type: ignore[no-untyped-def]
    """Real commits on the worker's database, emptied afterwards by the owner."""
    yield app_engine_db
    with owner_engine.begin() as conn:
        tables = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'")
        ).scalars()
        conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))


@pytest.fixture
def committed_app(base_app: Flask, committed_db: Database) -> Iterator[Flask]:
    previous = base_app.extensions["portal.db"]
    base_app.extensions["portal.db"] = committed_db
    base_app.extensions["portal.ratelimiter"].reset()
    yield base_app
    base_app.extensions["portal.db"] = previous


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        service_missing("Redis", exc)
    return REDIS_URL


# --- a real Tryton server (ERP sync) ------------------------------------------------------


@pytest.fixture(scope="session")
def tryton(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from tests.tryton_server import start_server

    try:
        server = start_server(tmp_path_factory.mktemp("tryton"))
    except Exception as exc:
        service_missing("Tryton", exc)
    yield server
    server.stop()


def drain(database: Database, tenant_id: int, *, rounds: int = 20) -> list[str]:
    """Run the due outbox events of a tenant, as a worker would, until none is due; the topics done.

    An event backing off after a failure is not due yet and stays open.
    """
    from sqlalchemy import select

    from portal.db import utcnow
    from portal.outbox import OutboxEvent, process_event

    ran: list[str] = []
    for _ in range(rounds):
        with tenant_session(database, tenant_id) as s:
            pending = s.execute(
                select(OutboxEvent.id, OutboxEvent.topic)
                .where(
                    OutboxEvent.done_at.is_(None),
                    OutboxEvent.failed_at.is_(None),
                    OutboxEvent.available_at <= utcnow(),
                )
                .order_by(OutboxEvent.id)
            ).all()
        if not pending:
            return ran
        for event_id, topic in pending:
            if process_event(database, tenant_id, event_id).status == "done":
                ran.append(topic)
    raise AssertionError("the outbox did not drain")


# --- a real SMTP server (aiosmtpd) ------------------------------------------------------------


class Inbox:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list = []  # type: ignore[type-arg]

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        from email import message_from_bytes

        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_inbox():  # type: ignore[no-untyped-def]
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield inbox, controller.port
    controller.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
