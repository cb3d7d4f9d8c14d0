"""Infrastructure: after-commit side effects, log safety, CLI commands, error pages."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select, text
from sqlalchemy.pool import NullPool

from portal import create_app
from portal.auth.access import public
from portal.auth.models import Membership, User
from portal.db import after_commit, after_rollback, set_context
from portal.logsafe import EscapeNewlines
from portal.suppliers.models import Supplier
from portal.tenancy.models import Tenant
from tests.conftest import _settings
from tests.factories import make_supplier, make_tenant


def test_after_commit_callbacks_run_only_after_a_commit(db):
    ran: list[str] = []
    s = db.session()
    after_commit(s, lambda: ran.append("kept"))
    assert ran == []
    s.commit()
    assert ran == ["kept"]
    s.execute(select(1))  # a transaction is under way, as in a request
    after_commit(s, lambda: ran.append("dropped"))
    s.rollback()
    s.commit()
    assert ran == ["kept"]
    s.close()


def test_after_rollback_callbacks_run_only_on_a_rollback(db):
    ran: list[str] = []
    s = db.session()
    s.execute(select(1))
    after_rollback(s, lambda: ran.append("undone"))
    s.commit()
    assert ran == []  # committed: nothing to undo, and nothing left to undo later
    s.rollback()
    assert ran == []
    s.execute(select(1))
    after_rollback(s, lambda: ran.append("undone"))
    after_commit(s, lambda: ran.append("too early"))
    with s.begin_nested():  # a savepoint's release is not the transaction's end: neither runs
        s.execute(select(1))
    assert ran == []
    s.rollback()
    assert ran == ["undone"]
    s.close()


def test_a_file_stored_in_a_transaction_that_rolls_back_is_deleted(db, tmp_path):
    """A certificate or a file on a message whose row never comes to be leaves no file behind."""
    from portal.documents.storage import LocalStorage, put_in_transaction

    storage = LocalStorage(tmp_path)
    s = db.session()
    s.execute(select(1))
    dropped = put_in_transaction(s, storage, b"dropped")
    s.rollback()
    s.execute(select(1))
    kept = put_in_transaction(s, storage, b"kept")
    s.commit()
    s.rollback()  # after the commit: the kept file stays
    s.close()
    assert storage.read(kept) == b"kept"
    with pytest.raises(FileNotFoundError):
        storage.read(dropped)


def test_a_failing_callback_does_not_undo_the_commit(db, caplog):
    s = db.session()
    after_commit(s, lambda: 1 / 0)
    after_commit(s, lambda: logging.getLogger("t").info("second ran"))
    with caplog.at_level(logging.INFO):
        s.commit()
    assert "after-commit callback" in caplog.text and "second ran" in caplog.text
    s.close()


def _prepared(session, sql_start: str) -> int:
    return session.execute(text("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE :q"),
                           {"q": sql_start + "%"}).scalar_one()  # fmt: skip


def test_repeated_statements_are_prepared_and_marked_ones_planned_for_their_own_values(session):
    """A statement run again and again is prepared on the server (PostgreSQL may then keep one generic plan, its
    default ``plan_cache_mode``); one marked ``planned_per_run`` never is, so each run gets a plan for its own
    values (a generic plan would serve the supplier with 5,000 orders like the one with 5)."""
    from portal.db import planned_per_run

    assert session.execute(text("SHOW plan_cache_mode")).scalar_one() == "auto"
    query = text("SELECT count(*) FROM tenants WHERE id = :id")
    marked = planned_per_run(text("SELECT count(*) FROM suppliers WHERE tenant_id = :id"))
    for _ in range(6):
        session.execute(query, {"id": 0})
        assert session.execute(marked, {"id": 0}).scalar_one() == 0
    assert _prepared(session, "SELECT count(*) FROM tenants WHERE id = $1") == 1
    assert _prepared(session, "SELECT count(*) FROM suppliers WHERE tenant_id") == 0


def test_a_transaction_can_plan_all_its_statements_per_run(session):
    """The scorecards' recompute marks its whole transaction: none of its statements is prepared."""
    from portal.scorecards.services import _settle_for_big_queries

    _settle_for_big_queries(session)
    for _ in range(6):
        session.execute(text("SELECT count(*) FROM tenants WHERE id = :id"), {"id": -1})
    assert _prepared(session, "SELECT count(*) FROM tenants WHERE id = $1") == 0


def test_column_reads_see_what_the_session_has_pending_and_stay_in_its_transaction(session):
    """``read_columns`` skips the ORM's per-statement work but not its autoflush: a row added and not yet
    flushed is counted, and the read is part of the session's transaction (gone with its rollback)."""
    from sqlalchemy import func

    from portal.db import read_columns

    tenant = make_tenant(session)
    set_context(session, tenant_id=tenant.id)
    count = select(func.count(Supplier.id)).where(Supplier.tenant_id == tenant.id)
    before = read_columns(session, count).scalar_one()
    session.add(Supplier(tenant_id=tenant.id, code="PEND", name="Pending GmbH"))
    assert read_columns(session, count).scalar_one() == before + 1
    names = read_columns(session, select(Supplier.name).where(Supplier.tenant_id == tenant.id)).scalars().all()
    assert "Pending GmbH" in names
    session.rollback()
    set_context(session, tenant_id=tenant.id)
    assert read_columns(session, count).scalar_one() == 0


def test_plain_rows_read_as_the_rows_they_replace(session):
    """``plain_rows`` gives a page named tuples with the same values, by name and by position, as the result's
    rows; a column without a usable name gets a positional one instead of breaking the page."""
    from sqlalchemy import func, literal

    from portal.db import plain_rows, read_columns

    tenant = make_tenant(session)
    set_context(session, tenant_id=tenant.id)
    for code in ("B", "A"):
        session.add(Supplier(tenant_id=tenant.id, code=code, name=f"Supplier {code}"))
    statement = (
        select(Supplier.id, Supplier.code, Supplier.name, func.length(Supplier.name), literal(1).label("class"))
        .where(Supplier.tenant_id == tenant.id)
        .order_by(Supplier.code)
    )
    expected = read_columns(session, statement).all()
    rows = plain_rows(read_columns(session, statement))
    assert [tuple(row) for row in rows] == [tuple(row) for row in expected] and len(rows) == 2
    assert [(row.code, row.name) for row in rows] == [("A", "Supplier A"), ("B", "Supplier B")]
    assert rows[0]._fields[3:] == ("length_1", "_4")  # "class" is a keyword: kept by position
    assert plain_rows(read_columns(session, statement.where(Supplier.code == "none"))) == []


def test_server_options_in_the_url_reach_the_server(pg_database):
    from portal.db import make_engine

    engine = make_engine(pg_database["app"] + "?options=-c%20statement_timeout%3D4321")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "4321ms"
    finally:
        engine.dispose()


def test_statements_are_not_prepared_when_the_setting_says_so(pg_database, tmp_path):
    """DATABASE_PREPARE=0 (behind a pooler in transaction mode): nothing is prepared on the server."""
    from portal.config import load_settings
    from portal.db import Database

    settings = load_settings({"PORTAL_INSTANCE_PATH": str(tmp_path), "DATABASE_PREPARE": "0"})
    assert settings.database_prepare is False
    database = Database(pg_database["app"], prepare=settings.database_prepare)
    try:
        with database.engine.connect() as conn:
            for _ in range(6):
                conn.execute(text("SELECT count(*) FROM tenants WHERE id = :id"), {"id": 0})
            assert conn.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar_one() == 0
    finally:
        database.engine.dispose()


def test_a_schema_change_under_a_prepared_statement_costs_one_statement(pg_database, owner_engine):
    """After a migration (another connection) changed what a prepared statement returns, PostgreSQL refuses the
    statement on the connection that prepared it; the pool then replaces its connections, so the next
    statement works."""
    from sqlalchemy.exc import DBAPIError

    from portal.db import make_engine
    from tests.conftest import APP_ROLE

    with owner_engine.begin() as owner:
        owner.execute(text("CREATE TABLE reshaped_probe (value integer)"))
        owner.execute(text(f"GRANT SELECT ON reshaped_probe TO {APP_ROLE}"))
    engine = make_engine(pg_database["app"])
    try:
        with engine.connect() as conn:
            for _ in range(6):  # prepared from the fifth run on
                conn.execute(text("SELECT value FROM reshaped_probe"))
            conn.commit()  # as a request does
            with owner_engine.begin() as owner:  # the migration
                owner.execute(text("ALTER TABLE reshaped_probe ALTER COLUMN value TYPE text"))
            with pytest.raises(DBAPIError, match="cached plan must not change result type") as refused:
                conn.execute(text("SELECT value FROM reshaped_probe"))
            assert refused.value.connection_invalidated
        with engine.connect() as conn:  # a new connection: no stale statement left
            assert conn.execute(text("SELECT value FROM reshaped_probe")).all() == []
    finally:
        engine.dispose()
        with owner_engine.begin() as owner:
            owner.execute(text("DROP TABLE reshaped_probe"))


def _last_statement_of(pid: int, url: str) -> str:
    from sqlalchemy import create_engine

    observer = create_engine(url, poolclass=NullPool)
    try:
        with observer.connect() as conn:
            return conn.execute(text("SELECT query FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}).scalar_one()
    finally:
        observer.dispose()


def test_a_pooled_connection_is_handed_out_again_without_a_round_trip(pg_database):
    """No ping per checkout: the statement a connection last ran is still the one PostgreSQL last saw when the
    pool hands it out again (a ping would have run ``SELECT 1`` on it)."""
    from portal.db import make_engine

    engine = make_engine(pg_database["app"])
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid() /* first use */")).scalar_one()
        last = _last_statement_of(pid, pg_database["app"])
        with engine.connect() as conn:  # checked out again: nothing sent yet
            assert conn.connection.dbapi_connection.info.backend_pid == pid
            assert _last_statement_of(pid, pg_database["app"]) == last
            assert conn.execute(text("SELECT pg_backend_pid() /* second use */")).scalar_one() == pid
    finally:
        engine.dispose()


@pytest.mark.parametrize("pre_ping", [False, True])
def test_a_connection_the_server_ended_while_pooled_is_replaced_before_use(pg_database, pre_ping):
    """A backend terminated while its connection rested in the pool (a restart, an idle timeout): the next
    request gets a fresh connection instead of an error, with or without DATABASE_PRE_PING."""
    import time

    from sqlalchemy import create_engine

    from portal.db import make_engine

    engine = make_engine(pg_database["app"], pre_ping=pre_ping)
    killer = create_engine(pg_database["app"], poolclass=NullPool)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with killer.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
            for _ in range(100):
                if not conn.execute(text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}).all():
                    break
                time.sleep(0.02)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        engine.dispose()
        killer.dispose()


def test_the_socket_look_works_on_descriptors_above_1023():
    """A busy process may hold a pooled connection on a descriptor above 1023, which select() refuses."""
    import os
    import resource
    import socket

    from portal.db import _has_something_to_read

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 1100:
        pytest.skip("this process cannot hold a descriptor above 1023")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    ours, servers = socket.socketpair()
    high = os.dup2(ours.fileno(), 1100)
    try:
        assert _has_something_to_read(high) is False
        servers.send(b"E")  # the server speaks while the connection rests
        assert _has_something_to_read(high) is True
    finally:
        os.close(high)
        ours.close()
        servers.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_newlines_in_log_arguments_cannot_forge_lines():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "user %s", ("eve\nINFO admin signed in",), None)
    EscapeNewlines().filter(record)
    assert "\n" not in record.getMessage() and "\\n" in record.getMessage()


def test_counts_are_written_with_their_noun_in_the_singular_or_the_plural():
    from portal.formatting import counted

    assert counted(1, "delivery", "deliveries") == "1 delivery"
    assert counted(0, "delivery", "deliveries") == "0 deliveries"
    assert counted(1204, "delivery", "deliveries") == "1,204 deliveries"


def test_cli_creates_tenant_user_and_invitation(committed_app, committed_db):
    runner = committed_app.test_cli_runner()
    assert runner.invoke(args=["create-tenant", "Cli Distribution"]).exit_code == 0
    assert "exists already" in runner.invoke(args=["create-tenant", "Cli Distribution"]).output
    weak = runner.invoke(
        args=["create-user", "boss@cli.example", "--tenant", "cli-distribution"], input="password\npassword\n"
    )
    assert weak.exit_code != 0 and "too common" in weak.output
    made = runner.invoke(
        args=["create-user", "boss@cli.example", "--tenant", "cli-distribution"],
        input="lantern-harbour-quiet\nlantern-harbour-quiet\n",
    )
    assert made.exit_code == 0, made.output
    invited = runner.invoke(args=["invite", "buyer@cli.example", "--tenant", "cli-distribution", "--role", "buyer"])
    assert invited.exit_code == 0 and "/invitations/" in invited.output
    s = committed_db.session()
    tenant = s.execute(select(Tenant).where(Tenant.slug == "cli-distribution")).scalar_one()
    set_context(s, tenant_id=tenant.id)
    user = s.execute(select(User).where(User.email == "boss@cli.example")).scalar_one()
    assert not user.mfa_enabled  # enrols at first sign-in
    assert s.execute(select(Membership.role).where(Membership.user_id == user.id)).scalar_one().value == "tenant_admin"
    s.close()


def test_cli_refuses_demo_outside_demo_mode(app):
    result = app.test_cli_runner().invoke(args=["demo"])
    assert result.exit_code != 0 and "only for the embedded or development mode" in result.output


def test_unexpected_errors_get_a_friendly_page_without_internals(tmp_path, db, session):
    app = create_app(_settings(tmp_path, db.url), database=db)

    @app.route("/explode")
    @public
    def explode():  # type: ignore[no-untyped-def]
        raise RuntimeError("secret internals: db password is hunter2")

    response = app.test_client().get("/explode")
    assert response.status_code == 500
    assert "Something went wrong" in response.text and "hunter2" not in response.text
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_an_undeclared_view_is_refused(tmp_path, db):
    app = create_app(_settings(tmp_path, db.url), database=db)

    @app.route("/forgotten")
    def forgotten():  # type: ignore[no-untyped-def]
        return "should never be served"

    assert app.test_client().get("/forgotten").status_code == 404


def test_a_failed_request_changes_nothing(tmp_path, db, session):
    """One transaction per request: a view that flushed and then failed leaves no row."""
    app = create_app(_settings(tmp_path, db.url), database=db)
    tenant = make_tenant(session)
    make_supplier(session, tenant)

    @app.route("/half-done")
    @public
    def half_done():  # type: ignore[no-untyped-def]
        from portal.web import db_session

        s = db_session()
        set_context(s, tenant_id=tenant.id)
        s.add(Supplier(tenant_id=tenant.id, code="HALF", name="Half done"))
        s.flush()
        raise RuntimeError("boom")

    assert app.test_client().get("/half-done").status_code == 500
    set_context(session, tenant_id=tenant.id)
    assert session.execute(select(Supplier).where(Supplier.code == "HALF")).first() is None


def test_production_app_has_no_mailbox(tmp_path, db):
    app = create_app(
        _settings(tmp_path, db.url, PORTAL_DEMO="1", PORTAL_ENV="production", REDIS_URL="redis://x"), database=db
    )
    assert "devmail.mailbox" not in app.view_functions


@pytest.mark.parametrize(
    ("raw", "maximum", "read"),
    [
        ("12", None, 12),
        ("0", None, 0),
        ("9223372036854775807", None, 2**63 - 1),  # the largest BIGINT id
        ("9223372036854775808", None, None),
        ("9" * 5000, None, None),  # more digits than int() reads
        ("\u00b2", None, None),  # a digit to str.isdigit(), refused by int()
        ("\u0663", None, None),  # an Arabic-Indic three: int() reads it, an id is written in ASCII
        ("\uff12", None, None),  # a full-width two
        ("-1", None, None),
        (" 1", None, None),
        ("1e3", None, None),
        ("", None, None),
        (None, None, None),
        ("101", 100, None),
        ("100", 100, 100),
    ],
)
def test_whole_numbers_are_plain_digits_in_range(raw, maximum, read):
    from portal.numbers import whole_number

    assert (whole_number(raw) if maximum is None else whole_number(raw, maximum)) == read


def test_a_page_number_is_from_one_to_the_last_page_any_list_has():
    from portal.numbers import MAX_PAGE, page_number

    assert [page_number({"page": raw}) for raw in ("3", "0", "", "x", str(MAX_PAGE), str(MAX_PAGE + 1))] == [
        3, 1, 1, 1, MAX_PAGE, 1,
    ]  # fmt: skip
    assert page_number({}) == 1


def test_the_layout_links_its_static_files_by_content_and_they_are_served_as_immutable(client, app):
    """The stylesheet, script and icon are linked with their content's digest and kept by the browser for a year
    at that address (no request on the next page); an address with no digest or an old one is still served, to
    be checked again."""
    import hashlib
    import re
    from pathlib import Path

    page = client.get("/login").get_data(as_text=True)
    links = re.findall(r'(?:href|src)="(/static/[^"]+)"', page)
    assert sorted(link.partition("?")[0] for link in links) == ["/static/app.css", "/static/app.js",
                                                                  "/static/favicon.svg"]  # fmt: skip
    for link in links:
        path, _, query = link.partition("?")
        content = (Path(app.static_folder) / path.removeprefix("/static/")).read_bytes()
        assert query == f"v={hashlib.sha256(content).hexdigest()[:12]}"
        kept = client.get(link)
        assert kept.status_code == 200 and kept.data == content
        assert kept.cache_control.public and kept.cache_control.immutable and not kept.cache_control.no_cache
        assert kept.cache_control.max_age == 365 * 24 * 3600
        for unversioned in (path, f"{path}?v=0123456789ab"):
            checked = client.get(unversioned)
            assert checked.status_code == 200 and checked.data == content
            assert checked.cache_control.no_cache and not checked.cache_control.immutable


def test_a_static_file_changed_on_disk_gets_a_new_digest(tmp_path):
    """The digest follows the file (taken again when its size or time changes), so a release that changes a
    file changes its address; a file outside the folder or missing has none."""
    import os

    from portal import PortalFlask

    app = PortalFlask(__name__, static_folder=str(tmp_path))
    style = tmp_path / "app.css"
    style.write_text("body{color:#000}")
    first = app.static_digest("app.css")
    assert first == app.static_digest("app.css") and len(first) == 12
    style.write_text("body{color:#111}")
    os.utime(style, ns=(style.stat().st_mtime_ns + 10**9,) * 2)
    assert app.static_digest("app.css") not in ("", first)
    assert app.static_digest("../app.css") == "" and app.static_digest("missing.css") == ""
