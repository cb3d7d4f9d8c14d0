"""Row-level security backs up the application's tenant scoping."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, ProgrammingError

from portal.auth.permissions import Role
from portal.db import set_context
from portal.suppliers.models import Supplier
from tests.conftest import APP_ROLE
from tests.factories import make_member, make_supplier, make_tenant


def test_every_tenant_table_has_forced_rls_with_a_policy(owner_engine):
    with owner_engine.connect() as conn:
        tenant_tables = set(
            conn.execute(
                text(
                    "SELECT table_name FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND column_name = 'tenant_id'"
                )
            ).scalars()
        )
        assert {"suppliers", "memberships", "invitations", "companies", "warehouses", "audit_events"} <= tenant_tables
        rows = conn.execute(
            text(
                "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, "
                "(SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind = 'r'"
            )
        ).all()
    by_table = {name: (enabled, forced, policies) for name, enabled, forced, policies in rows}
    uncovered = [t for t in tenant_tables if by_table.get(t) is None or not all(by_table[t][:2]) or not by_table[t][2]]
    assert not uncovered, f"tenant tables without forced RLS and a policy: {uncovered}"


def test_application_role_owns_nothing_and_cannot_bypass_rls(owner_engine):
    with owner_engine.connect() as conn:
        superuser, bypass = conn.execute(
            text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = :r"), {"r": APP_ROLE}
        ).one()
        owned = conn.execute(
            text("SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = :r"),
            {"r": APP_ROLE},
        ).scalar_one()
    assert not superuser and not bypass and owned == 0


def test_without_tenant_context_no_tenant_rows_are_visible(session):
    tenant = make_tenant(session)
    make_supplier(session, tenant)
    set_context(session, tenant_id=tenant.id)
    assert session.execute(text("SELECT count(*) FROM suppliers")).scalar_one() == 1
    set_context(session, tenant_id=None)
    assert session.execute(text("SELECT count(*) FROM suppliers")).scalar_one() == 0


def test_rls_hides_other_tenants_even_from_unscoped_queries(session):
    mine, theirs = make_tenant(session), make_tenant(session)
    make_supplier(session, mine, "Mine")
    make_supplier(session, theirs, "Theirs")
    set_context(session, tenant_id=mine.id)
    # A query that forgot its tenant filter still sees one tenant only.
    names = session.execute(text("SELECT name FROM suppliers")).scalars().all()
    assert names == ["Mine"]


def test_rls_refuses_writing_a_row_into_another_tenant(session):
    mine, theirs = make_tenant(session), make_tenant(session)
    set_context(session, tenant_id=mine.id)
    nested = session.begin_nested()
    session.add(Supplier(tenant_id=theirs.id, code="X1", name="Smuggled"))
    with pytest.raises(ProgrammingError, match="row-level security"):
        session.flush()
    nested.rollback()


def test_memberships_of_the_signed_in_person_are_visible_across_tenants_but_nobody_elses(session):
    first, second = make_tenant(session), make_tenant(session)
    me = make_member(session, first, Role.BUYER)
    make_member(session, second, Role.VIEWER, user=me.user, secret=me.secret)
    make_member(session, second, Role.BUYER)  # somebody else
    set_context(session, tenant_id=None, user_id=me.user.id)
    assert session.execute(text("SELECT count(*) FROM memberships")).scalar_one() == 2


def test_application_role_cannot_change_or_delete_audit_rows(session):
    tenant = make_tenant(session)
    set_context(session, tenant_id=tenant.id)
    from portal import audit

    audit.record(session, "test.event", tenant_id=tenant.id, actor="test")
    for statement in ("UPDATE audit_events SET action = 'forged'", "DELETE FROM audit_events"):
        nested = session.begin_nested()
        with pytest.raises(DBAPIError, match="permission denied"):
            session.execute(text(statement))
        nested.rollback()


def test_a_supplier_user_sees_their_own_supplier_accounts_elsewhere_and_nothing_else(session):
    first, second = make_tenant(session), make_tenant(session)
    mine_elsewhere = make_supplier(session, second, "Mine in second")
    make_supplier(session, second, "Not mine in second")
    me = make_member(session, first, Role.SUPPLIER_USER, supplier=make_supplier(session, first, "Mine in first"))
    make_member(session, second, Role.SUPPLIER_USER, supplier=mine_elsewhere, user=me.user, secret=me.secret)
    set_context(session, tenant_id=first.id, user_id=me.user.id)
    names = sorted(session.execute(text("SELECT name FROM suppliers")).scalars())
    assert names == ["Mine in first", "Mine in second"]


def test_the_demo_seeds_both_distributors_under_row_level_security(session, tmp_path):
    """``flask demo`` on PostgreSQL (development mode): each distributor's rows, the alerts' outbox events
    and the certificates included, are written under its own tenant's context (they were flushed under the next
    one's, and refused)."""
    from sqlalchemy import func, select

    from portal.demo import seed_demo
    from portal.documents.models import Document
    from portal.documents.storage import LocalStorage
    from portal.outbox import OutboxEvent
    from portal.tenancy.models import Tenant

    seed_demo(session, LocalStorage(tmp_path))
    tenants = {t.slug: t.id for t in session.execute(select(Tenant).where(Tenant.slug.in_(["northwind", "harbor"])))
               .scalars()}  # fmt: skip
    assert set(tenants) == {"northwind", "harbor"}
    for tenant_id in tenants.values():
        set_context(session, tenant_id=tenant_id)
        events = session.execute(select(func.count()).select_from(OutboxEvent)).scalar_one()
        assert events > 0  # its alerts opened, visible under its own context only
        foreign = session.execute(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.tenant_id != tenant_id)
        ).scalar_one()
        assert foreign == 0
    set_context(session, tenant_id=tenants["northwind"])
    assert session.execute(select(func.count()).select_from(Document)).scalar_one() > 0


@pytest.mark.parametrize(
    "email",
    # The administrator's role has every staff page; the other tenant's administrator sees its own side.
    ["admin@northwind.example", "sam@acme.example", "admin@harbor.example"],
)  # fmt: skip
def test_every_page_a_demo_person_reaches_answers_under_row_level_security(app, session, email):
    """The demo data on PostgreSQL, the portal connected as the role row-level security applies to: following
    every link from the home page, as each kind of person, no page fails, and none leads nowhere or to a page
    that person may not see (a page reading a table outside its tenant's context would show here)."""
    from pathlib import Path

    from portal.demo import DEMO_PASSWORD, demo_secret, seed_demo
    from portal.documents.storage import LocalStorage
    from tests.helpers import PortalClient, crawl

    seed_demo(session, LocalStorage(Path(app.config["DOCUMENT_ROOT"])))
    session.flush()
    client = PortalClient(app.test_client())
    client.sign_in(email, DEMO_PASSWORD, demo_secret(email))
    seen, broken = crawl(client, 80)
    assert len(seen) > 15 and broken == []
