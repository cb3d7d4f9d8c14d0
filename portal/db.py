"""Database core: typed declarative base, engine, the per-request session,
after-commit side effects and the tenant context that PostgreSQL's row-level
security reads.

Rules the rest of the code relies on:

* Services take a ``Session`` and flush; they never commit. The request wrapper
  (``portal.web``) commits once after a successful view and rolls back otherwise.
* Anything that must only happen once data is durable (sending a message to a
  worker, an e-mail) is registered with :func:`after_commit`; it runs after the
  commit succeeded and is dropped on rollback; ``after_rollback`` undoes what a transaction did outside the
  database (a file it stored) if it rolls back.
* The tenant (and the signed-in user) of a session is set with
  :func:`set_context`; on PostgreSQL every transaction starts with
  ``set_config('app.tenant_id', ..., true)`` so row-level security policies see it.
"""

from __future__ import annotations

import logging
import select
from collections import namedtuple
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol, TypeVar

from sqlalchemy import (
    BigInteger,
    DateTime,
    Engine,
    Enum,
    Executable,
    ForeignKey,
    Integer,
    MetaData,
    String,
    bindparam,
    cast,
    create_engine,
    event,
    exc,
    func,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on PostgreSQL and SQLite alike.

    SQLite has no time zones; values are stored naive in UTC and handed back aware.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Integer keys that are BIGINT on PostgreSQL but still SQLite's rowid alias.
BigID = BigInteger().with_variant(Integer(), "sqlite")
# The largest id a BIGINT column holds: ids in addresses and API requests stop there (beyond it: nobody's row).
MAX_ROW_ID = 2**63 - 1


def str_enum(cls: type[Any], length: int = 24) -> Enum:
    """A Python enum stored as its string values (no native database enum: adding a value needs no DDL)."""
    return Enum(cls, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e])


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


class TenantOwned:
    """Mixin for every row that belongs to one tenant.

    Tables with this column get forced row-level security on PostgreSQL (see the
    migrations' ``enable_tenant_rls``); a catalog test fails when one does not.
    """

    tenant_id: Mapped[int] = mapped_column(BigID, ForeignKey("tenants.id", ondelete="CASCADE"), index=True)


# --- after-commit side effects -------------------------------------------------

_PENDING = "portal.after_commit"


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the session's current transaction has committed.

    On rollback the callback is dropped. Callbacks must not raise: a failure is
    logged, because the data is already committed and the caller cannot undo it
    (durable work goes through the outbox, which a relay re-sends).
    """
    session.info.setdefault(_PENDING, []).append(callback)


class _Callback(Protocol):
    def __call__(self) -> None: ...


_Collector = TypeVar("_Collector", bound=_Callback)


def after_commit_collector(session: Session, kind: type[_Collector]) -> _Collector:
    """The after-commit callback of type ``kind`` queued for the current transaction, created and queued on
    first use: many changes of one transaction share one action after the commit (one message to the
    queue for all of a request's events). Dropped with the transaction on rollback, like ``after_commit``."""
    for callback in session.info.get(_PENDING, ()):
        if type(callback) is kind:
            return callback
    collector = kind()
    after_commit(session, collector)
    return collector


_UNDO = "portal.after_rollback"


def after_rollback(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` if the session's current transaction rolls back (undoing what it did outside the
    database: a file it stored); dropped once the transaction commits. Callbacks must not raise."""
    session.info.setdefault(_UNDO, []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint released: the transaction itself goes on
        return
    session.info.pop(_UNDO, None)
    callbacks = session.info.pop(_PENDING, [])
    for callback in callbacks:
        try:
            callback()
        except Exception:
            log.exception("after-commit callback %r failed", callback)


@event.listens_for(Session, "after_soft_rollback")
def _drop_after_rollback(session: Session, previous_transaction: Any) -> None:
    if not session.in_transaction():
        session.info.pop(_PENDING, None)
        for callback in session.info.pop(_UNDO, []):
            try:
                callback()
            except Exception:
                log.exception("after-rollback callback %r failed", callback)


# --- tenant context for row-level security -------------------------------------

TENANT_KEY = "portal.tenant_id"
USER_KEY = "portal.user_id"
SHARED_CONNECTION = "portal.shared_connection"
# Commit without waiting for the WAL to reach disk: only for work that is safe to redo
# (outbox processing: a commit lost in a PostgreSQL crash means the idempotent event runs again).
RELAXED_COMMIT = "portal.relaxed_commit"
# Execution option for statements whose best plan depends on their values: a list or a sum over one supplier's
# or one tenant's orders, where one supplier may have 100x the orders of another. They are never prepared, so
# PostgreSQL plans each run for its own values; everything else is prepared after five runs on a connection and
# may then keep one generic plan (PostgreSQL's default, ``plan_cache_mode = auto``). See ``make_engine``.
CUSTOM_PLAN = "portal_custom_plan"


_Statement = TypeVar("_Statement", bound=Executable)


def planned_per_run(statement: _Statement) -> _Statement:
    """``statement``, marked to be planned for its own values on every run (``CUSTOM_PLAN``)."""
    return statement.execution_options(**{CUSTOM_PLAN: True})


def read_columns(session: Session, statement: Executable, params: dict[str, Any] | None = None) -> Any:
    """Run a statement that selects columns (no mapped objects) on the session's connection, in its
    transaction, after flushing what is pending (as the ORM's autoflush would).

    The ORM's per-statement work (execution context, loading options, result adaptation) buys nothing for plain
    rows; skipping it takes about a fifth off each of the inbox's reads."""
    session.flush()
    return session.connection().execute(statement, params)


@lru_cache(maxsize=512)
def _plain_row_type(fields: tuple[str, ...]) -> Any:
    return namedtuple("PlainRow", fields, rename=True)


def plain_rows(result: Any) -> list[Any]:
    """The rows of ``result`` as named tuples, for a page that shows them.

    A template reads each cell as an attribute, and a SQLAlchemy ``Row`` answers attributes through a Python
    ``__getattr__``: a 50-row inbox spent more time reading its cells than escaping them. Named tuples answer
    from C; making them costs about half a microsecond a row."""
    make = _plain_row_type(tuple(result.keys()))._make
    return [make(row) for row in result.all()]


def _context_statement(relaxed_commit: bool) -> Any:
    settings = ["set_config('app.tenant_id', :t, true)", "set_config('app.user_id', :u, true)"]
    if relaxed_commit:
        settings.append("set_config('synchronous_commit', 'off', true)")
    return text(f"SELECT {', '.join(settings)}")


# Built once: every transaction with a context starts with one of them (one round trip).
_SET_CONTEXT = {relaxed: _context_statement(relaxed) for relaxed in (False, True)}


def apply_context(session: Session, connection: Any) -> None:
    if connection.dialect.name != "postgresql":
        return
    tenant = session.info.get(TENANT_KEY)
    user = session.info.get(USER_KEY)
    # Always set both, also to '', so a pooled connection never carries the
    # previous request's tenant; ``true`` makes the setting transaction-local.
    # Idempotent background work may skip waiting for the WAL flush (same round trip).
    statement = _SET_CONTEXT[bool(session.info.get(RELAXED_COMMIT))]
    connection.execute(statement, {"t": "" if tenant is None else str(tenant), "u": "" if user is None else str(user)})


def context_columns(user_id: Any) -> tuple[Any, Any]:
    """Columns that set the transaction's RLS context (what ``apply_context`` sends as a statement of its own)
    while the statement selecting them runs, so that a request's first statement can carry it instead of a
    round trip of its own: the tenant from the parameter ``context_tenant`` (see :func:`context_parameter`),
    the user from ``user_id`` (a column, such as the user a session record names). Only for statements over
    tables without row-level security: the settings apply to the statements that follow, not to this one.
    Record what was set with :func:`context_was_set`."""
    return (
        func.set_config("app.tenant_id", bindparam("context_tenant", type_=String), true()).label("context_tenant"),
        func.set_config("app.user_id", cast(user_id, String), true()).label("context_user"),
    )


def context_parameter(tenant_id: int | None) -> dict[str, str]:
    """The parameter of :func:`context_columns` for ``tenant_id`` (no tenant: empty, as ``apply_context``)."""
    return {"context_tenant": "" if tenant_id is None else str(tenant_id)}


def context_was_set(session: Session, *, tenant_id: int | None, user_id: int | None) -> None:
    """Record the context that a statement with :func:`context_columns` has set in the session's transaction:
    ``set_context`` with the same values then sends nothing."""
    session.info[TENANT_KEY] = tenant_id
    session.info[USER_KEY] = user_id


@event.listens_for(Session, "after_begin")
def _set_context_on_begin(session: Session, transaction: Any, connection: Any) -> None:
    # A transaction starts with both settings empty (set_config(..., true) ends
    # with the transaction that made it), so there is nothing to send for no context.
    if session.info.get(TENANT_KEY) is not None or session.info.get(USER_KEY) is not None:
        apply_context(session, connection)


def set_context(session: Session, *, tenant_id: int | None, user_id: int | None = None) -> None:
    """Bind a session to a tenant (and user) for row-level security.

    Takes effect at once when a transaction is already open, and at the start of
    every later transaction of this session.
    """
    unchanged = (
        TENANT_KEY in session.info and session.info[TENANT_KEY] == tenant_id and session.info.get(USER_KEY) == user_id
    )
    session.info[TENANT_KEY] = tenant_id
    session.info[USER_KEY] = user_id
    # Unchanged values are in force already: applied at the transaction's start or when
    # set. Sessions that share one connection (the tests' savepoint harness) always re-apply.
    if session.in_transaction() and (not unchanged or session.info.get(SHARED_CONNECTION)):
        apply_context(session, session.connection())


def current_tenant_id(session: Session) -> int | None:
    return session.info.get(TENANT_KEY)


@contextmanager
def tenant_scope(session: Session, tenant_id: int | None) -> Iterator[None]:
    """Temporarily switch the RLS tenant of an open session (workers, CLI)."""
    previous = (session.info.get(TENANT_KEY), session.info.get(USER_KEY))
    set_context(session, tenant_id=tenant_id, user_id=previous[1])
    try:
        yield
    finally:
        set_context(session, tenant_id=previous[0], user_id=previous[1])


# --- engine and sessions --------------------------------------------------------


class Database:
    """Engine and session factory of one application."""

    def __init__(self, url: str, *, echo: bool = False, pre_ping: bool = False, prepare: bool = True) -> None:
        self.url = url
        self.engine: Engine = make_engine(url, echo=echo, pre_ping=pre_ping, prepare=prepare)
        self.session_factory: sessionmaker[Session] = sessionmaker(
            bind=self.engine, expire_on_commit=False, autoflush=True
        )

    def session(self) -> Session:
        return self.session_factory()

    @contextmanager
    def transaction(
        self, *, tenant_id: int | None = None, user_id: int | None = None, relaxed_commit: bool = False
    ) -> Iterator[Session]:
        """A unit of work outside a request (CLI, workers): commit or roll back."""
        session = self.session()
        if relaxed_commit:
            session.info[RELAXED_COMMIT] = True
        set_context(session, tenant_id=tenant_id, user_id=user_id)
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()


def _has_something_to_read(fd: int) -> bool:
    # poll, not select: select refuses descriptors above 1023, which a busy process may hand out.
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def make_engine(url: str, *, echo: bool = False, pre_ping: bool = False, prepare: bool = True) -> Engine:
    if url.startswith("sqlite"):
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        if url in ("sqlite://", "sqlite:///:memory:"):
            kwargs["poolclass"] = StaticPool
        engine = create_engine(url, echo=echo, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    # A statement run five times on a connection is prepared on the server (psycopg's default): PostgreSQL then
    # skips parsing and analysing it, and after five custom plans may keep one generic plan instead of planning
    # each run (``plan_cache_mode = auto``): the session record, memberships, bell and lookups by id every page
    # makes no longer pay for planning (PostgreSQL time per inbox request beyond the minimal page's: about 1 ms ->
    # 0.25 ms; under load, against planning every statement for its values, inbox 156 -> 172 requests/s, order
    # page 89 -> 109). Statements whose plan depends on how big the supplier or tenant is are marked
    # ``CUSTOM_PLAN`` and never prepared: each run is planned for its own values.
    # ``prepare=False`` (DATABASE_PREPARE=0) for a pooler in transaction mode that cannot follow them.
    engine = create_engine(
        url,
        echo=echo,
        pool_pre_ping=pre_ping,
        pool_size=5,
        max_overflow=10,
        connect_args={"prepare_threshold": 5 if prepare else None},
    )

    @event.listens_for(engine, "checkout")
    def _replace_connections_the_server_closed(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        # A pooled connection at rest has nothing to read: the server speaks first only to end it (a restart, a
        # terminated backend, an idle timeout), and then its notice or the closed socket makes it readable. One
        # look at the socket, without a round trip, finds those before the request's first statement would fail
        # on them (as pgx's CheckConn does); the pool then opens a fresh connection. A full ping per checkout
        # (DATABASE_PRE_PING=1) costs a round trip on every request and only adds the connections dropped
        # silently on the way, by a firewall that forgets idle connections without closing them. (The server may
        # also speak to report a changed setting, which is rare: the connection is then replaced needlessly.)
        if dbapi_conn.closed or _has_something_to_read(dbapi_conn.fileno()):
            raise exc.DisconnectionError("the server closed this pooled connection while it rested")

    @event.listens_for(engine, "do_execute")
    def _plan_marked_statements_per_run(cursor: Any, statement: str, parameters: Any, context: Any) -> bool | None:
        if context.execution_options.get(CUSTOM_PLAN):
            # psycopg's unnamed statement: PostgreSQL plans it for these parameters and keeps nothing.
            cursor.execute(statement, parameters, prepare=False)
            return True
        return None

    @event.listens_for(engine, "handle_error")
    def _renew_connections_after_schema_change(context: Any) -> None:
        # A migration that changed the columns a prepared statement returns makes PostgreSQL refuse it on every
        # connection that prepared it: treated as a lost connection, the pool replaces all of them, so only the
        # statement that met the error fails.
        error = context.original_exception
        if getattr(error, "sqlstate", None) == "0A000" and "cached plan must not change result type" in str(error):
            context.is_disconnect = True

    return engine
