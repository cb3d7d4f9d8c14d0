"""Two-step sign-in, enrolment, recovery codes and the customer switcher, through the real forms."""

from __future__ import annotations

import json
import re
import time
from datetime import date, timedelta

import pyotp
from sqlalchemy import select

from portal.audit import AuditEvent
from portal.auth.models import User, UserSession
from portal.auth.permissions import Role
from portal.db import set_context
from tests.factories import (
    PASSWORD,
    give_recovery_codes,
    make_member,
    make_order,
    make_supplier,
    make_tenant,
    make_user,
)


def test_password_step_alone_does_not_sign_in(client, session):
    tenant = make_tenant(session)
    person = make_member(session, tenant, Role.BUYER)
    response = client.password_step(person.email, PASSWORD)
    assert response.status_code == 302 and response.headers["Location"].endswith("/login/verify")
    # Not signed in yet: the portal still sends us to the sign-in page.
    assert client.get("/").headers["Location"].startswith("/login")
    assert session.execute(select(UserSession).where(UserSession.user_id == person.user.id)).first() is None


def test_full_sign_in_lands_on_dashboard_with_tenant(client, session):
    tenant = make_tenant(session, "Northwind Test")
    person = make_member(session, tenant, Role.BUYER)
    response = client.sign_in(person.email, PASSWORD, person.secret)
    assert response.headers["Location"] == "/"
    page = client.get("/")
    assert page.status_code == 200
    assert "Northwind Test" in page.text
    set_context(session, tenant_id=None)
    actions = (
        session.execute(select(AuditEvent.action).where(AuditEvent.actor_user_id == person.user.id)).scalars().all()
    )
    assert "auth.signed_in" in actions


def test_wrong_password_is_refused_and_the_attempt_stays_audited(committed_app, committed_db):
    """The request rolls back, but the record of the failed attempt is committed on its own."""
    from tests.conftest import tenant_session
    from tests.helpers import PortalClient

    with tenant_session(committed_db, None) as s:
        tenant = make_tenant(s)
        person = make_member(s, tenant, Role.BUYER)
        email = person.email
    client = PortalClient(committed_app.test_client())
    response = client.password_step(email, "not-the-password")
    assert response.status_code == 401
    assert "E-mail or password is not right." in response.text
    with tenant_session(committed_db, None) as s:  # identity events live in the global chain
        failures = (
            s.execute(select(AuditEvent).where(AuditEvent.action == "auth.sign_in_failed", AuditEvent.actor == email))
            .scalars()
            .all()
        )
        assert len(failures) == 1
        assert "not-the-password" not in (failures[0].reason + str(failures[0].after))


def test_unknown_email_gets_the_same_message(client):
    response = client.password_step("nobody@example.org", PASSWORD)
    assert response.status_code == 401
    assert "E-mail or password is not right." in response.text


def test_wrong_code_then_replayed_code_are_refused(client, session):
    tenant = make_tenant(session)
    person = make_member(session, tenant, Role.BUYER)
    client.password_step(person.email, PASSWORD)
    totp = pyotp.TOTP(person.secret)
    wrong = str((int(totp.now()) + 1) % 1_000_000).zfill(6)
    assert client.submit("/login/verify", {"code": wrong}).status_code == 401
    code = totp.now()
    assert client.submit("/login/verify", {"code": code}).status_code == 302
    client.sign_out()
    client.password_step(person.email, PASSWORD)
    replay = client.submit("/login/verify", {"code": code})
    assert replay.status_code == 401
    assert "used already" in replay.text


def test_codes_outside_one_step_and_non_ascii_digits_are_refused(client, session):
    tenant = make_tenant(session)
    person = make_member(session, tenant, Role.BUYER)
    totp = pyotp.TOTP(person.secret)
    client.password_step(person.email, PASSWORD)
    # Two steps away stays two steps away only if no step boundary passes before the code is checked: a code
    # two steps ahead made just before a boundary is one step ahead, and valid, just after it.
    left_in_step = totp.interval - time.time() % totp.interval
    if left_in_step < 5:
        time.sleep(left_in_step + 0.1)
    for code in (totp.at(time.time() - 60), totp.at(time.time() + 60)):
        assert client.submit("/login/verify", {"code": code}).status_code == 401
    fullwidth = "".join(chr(0xFF10 + int(d)) for d in totp.now())  # FULLWIDTH DIGIT ZERO + d
    assert client.submit("/login/verify", {"code": fullwidth}).status_code == 401
    # The genuine code still works afterwards.
    assert client.submit("/login/verify", {"code": totp.now()}).status_code == 302


def test_older_step_after_newer_step_is_refused(client, session):
    tenant = make_tenant(session)
    person = make_member(session, tenant, Role.BUYER)
    totp = pyotp.TOTP(person.secret)
    client.password_step(person.email, PASSWORD)
    assert client.submit("/login/verify", {"code": totp.at(time.time() + 30)}).status_code == 302
    client.sign_out()
    client.password_step(person.email, PASSWORD)
    assert client.submit("/login/verify", {"code": totp.now()}).status_code == 401


def test_recovery_code_signs_in_once(client, session):
    tenant = make_tenant(session)
    person = make_member(session, tenant, Role.BUYER)
    codes = give_recovery_codes(session, person.user)
    assert len(codes) == 10 and len(set(codes)) == 10
    client.password_step(person.email, PASSWORD)
    assert client.submit("/login/verify", {"code": codes[0].lower()}).status_code == 302
    client.sign_out()
    client.password_step(person.email, PASSWORD)
    assert client.submit("/login/verify", {"code": codes[0]}).status_code == 401
    assert client.submit("/login/verify", {"code": "x" * 5000}).status_code == 422


def test_first_sign_in_walks_through_enrolment(client, session):
    tenant = make_tenant(session)
    user, _ = make_user(session, enrolled=False)
    make_member(session, tenant, Role.TENANT_ADMIN, user=user)
    first = client.password_step(user.email, PASSWORD)
    assert first.headers["Location"].endswith("/login/enrol")
    page = client.get("/login/enrol")
    assert "<svg" in page.text
    shown = page.text.split('id="totp-secret" data-copy>')[1].split("<")[0]
    assert re.fullmatch(r"([A-Z2-7]{4} )+[A-Z2-7]{1,4}", shown)  # in groups of four, easier to type
    secret = shown.replace(" ", "")
    bad = client.submit("/login/enrol", {"code": "000000"})
    assert bad.status_code == 422
    done = client.submit("/login/enrol", {"code": pyotp.TOTP(secret).now()})
    assert done.status_code == 200
    assert done.text.count("<li><code>") == 10
    session.expire_all()
    stored = session.get(User, user.id)
    assert stored.mfa_enabled and stored.totp_secret == secret
    assert client.get("/").status_code == 200


def test_supplier_of_two_customers_chooses_and_switches(client, session):
    first, second = make_tenant(session, "First Distributor"), make_tenant(session, "Second Distributor")
    supplier_a = make_supplier(session, first, "Shared Supplier")
    supplier_b = make_supplier(session, second, "Shared Supplier")
    person = make_member(session, first, Role.SUPPLIER_ADMIN, supplier=supplier_a)
    other = make_member(
        session, second, Role.SUPPLIER_USER, supplier=supplier_b, user=person.user, secret=person.secret
    )
    # Two orders wait for the supplier's answer at the first customer, one of them late; none at the second.
    make_order(session, first, supplier_a)
    make_order(session, first, supplier_a, order_date=date.today() - timedelta(days=15))
    response = client.sign_in(person.email, PASSWORD, person.secret)
    assert response.headers["Location"].startswith("/choose")
    choose = client.get("/choose")
    assert "First Distributor" in choose.text and "Second Distributor" in choose.text
    waiting = re.findall(r'data-testid="waiting">(.*?)</span>', choose.text, re.S)
    assert [" ".join(re.sub(r"<[^>]+>", " ", w).split()) for w in waiting] == [
        "2 orders wait for your answer · 1 late order",
        "no order waits for your answer",
    ]
    switched = client.submit("/context", {"membership_id": other.membership.id}, page="/choose")
    assert switched.status_code == 302
    home = client.get("/")
    assert "Second Distributor" in home.text
    # The header's switcher offers both customers, each with the supplier account worked for there.
    for tenant in ("First Distributor", "Second Distributor"):
        assert f"{tenant} — as Shared Supplier</option>" in home.text
    assert "Supplier administrator · Shared Supplier" in choose.text
    # The supplier-user role in the second tenant has no team page.
    assert client.get("/team").status_code == 403
    client.submit("/context", {"membership_id": person.membership.id}, page="/choose")
    assert client.get("/team").status_code == 200


def test_a_supplier_sees_its_other_customers_waiting_orders_from_home_and_switches(client, session):
    """New orders from every customer show wherever the supplier works: its home page lists the other customers
    it supplies, with their orders waiting for an answer, each a button that switches to it."""
    first, second = make_tenant(session, "First Customer"), make_tenant(session, "Second Customer")
    supplier_a, supplier_b = make_supplier(session, first, "Shared"), make_supplier(session, second, "Shared")
    person = make_member(session, first, Role.SUPPLIER_USER, supplier=supplier_a)
    other = make_member(session, second, Role.SUPPLIER_USER, supplier=supplier_b, user=person.user,
                        secret=person.secret)  # fmt: skip
    make_order(session, second, supplier_b)
    make_order(session, second, supplier_b, order_date=date.today() - timedelta(days=15))
    client.sign_in(person.email, PASSWORD, person.secret)
    client.submit("/context", {"membership_id": person.membership.id}, page="/choose")
    home = client.get("/").text
    assert "You are working for <strong>First Customer</strong>" in home
    shown = re.findall(r'data-testid="other-customer">(.*?)</span>', home, re.S)
    assert [" ".join(re.sub(r"<[^>]+>", " ", w).split()) for w in shown] == [
        "2 orders wait for your answer · 1 late order"
    ]
    assert f'name="membership_id" value="{other.membership.id}"' in home
    assert client.submit("/context", {"membership_id": other.membership.id}, page="/").status_code == 302
    assert "You are working for <strong>Second Customer</strong>" in client.get("/").text
    # A supplier of one customer has no such list.
    alone = make_member(session, first, Role.SUPPLIER_USER, supplier=supplier_a)
    single = type(client)(client.client.application.test_client())
    single.sign_in(alone.email, PASSWORD, alone.secret)
    assert "Your other customers" not in single.get("/").text


def test_switching_to_someone_elses_membership_is_refused(client, session):
    tenant = make_tenant(session)
    me = make_member(session, tenant, Role.BUYER)
    stranger = make_member(session, make_tenant(session), Role.TENANT_ADMIN)
    client.sign_in(me.email, PASSWORD, me.secret)
    response = client.submit("/context", {"membership_id": stranger.membership.id}, page="/choose")
    assert response.status_code == 302 and response.headers["Location"].endswith("/choose")
    assert client.get("/people").status_code == 403


def test_next_parameter_only_leads_to_our_own_paths(client, session):
    tenant = make_tenant(session)
    person = make_member(session, tenant, Role.BUYER)
    for evil in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        client.client.get(f"/login?next={evil}")
        form = client.client.get(f"/login?next={evil}")
        assert evil not in form.text
    client.client.get("/logout")
    client.submit("/login", {"email": person.email, "password": PASSWORD, "next": "//evil.example/"})
    done = client.submit("/login/verify", {"code": client.totp.code(person.secret)})
    assert done.headers["Location"] == "/"


def _reset_link(session, email: str) -> str:
    import re

    from portal.mail import SentEmail

    body = (
        session.execute(select(SentEmail.body).where(SentEmail.to == email).order_by(SentEmail.id.desc()))
        .scalars()
        .first()
    )
    return re.search(r"http://localhost(/login/reset/\S+)", body).group(1)


def test_password_reset_needs_the_second_factor_and_works_once(client, session):
    person = make_member(session, make_tenant(session), Role.BUYER)
    done = client.submit("/login/forgot", {"email": person.email})
    assert done.status_code == 302
    unknown = client.submit("/login/forgot", {"email": "nobody-here@example.org"})
    assert unknown.status_code == 302  # same answer: no account enumeration
    link = _reset_link(session, person.email)
    new = "copper-meadow-violin-58"
    no_code = client.submit(link, {"new_password": new, "confirm_password": new, "code": ""})
    assert no_code.status_code == 422 and "valid code" in no_code.text
    ok = client.submit(link, {"new_password": new, "confirm_password": new, "code": client.totp.code(person.secret)})
    assert ok.status_code == 302 and ok.headers["Location"].endswith("/login")
    assert client.get(link).status_code == 410  # used
    assert client.password_step(person.email, PASSWORD).status_code == 401
    assert client.password_step(person.email, new).status_code == 302


def test_the_main_navigation_follows_the_role_and_the_page(app, session):
    """The navigation is rendered once per role and page and reused: each person still gets their role's links,
    with the current page marked, whoever asked for that combination first."""
    import re

    from tests.helpers import PortalClient

    tenant = make_tenant(session)
    buyer = make_member(session, tenant, Role.BUYER)
    supplier = make_member(session, tenant, Role.SUPPLIER_ADMIN, supplier=make_supplier(session, tenant))

    def nav(client, path: str) -> tuple[list[str], list[str]]:
        html = re.search(r'<nav class="mainnav".*?</nav>', client.get(path).text, re.S).group(0)
        links = re.findall(r">([^<>]+)</a>", html)
        return links, re.findall(r'aria-current="page">([^<>]+)</a>', html)

    for person, expected in ((buyer, ("Response queue", "Exceptions", "Scorecards", "Suppliers")),
                             (supplier, ("Scorecard", "Compliance", "Team"))):  # fmt: skip
        client = PortalClient(app.test_client())
        client.sign_in(person.email, PASSWORD, person.secret)
        links, current = nav(client, "/orders")
        assert set(expected) <= set(links) and current == ["Orders"]
        assert ("Response queue" in links) == (person is buyer) and ("Team" in links) == (person is supplier)
        assert nav(client, "/")[1] == ["Home"]


def test_an_administrators_settings_are_one_main_entry_with_a_tab_each(app, session):
    import re

    from tests.helpers import PortalClient

    admin = make_member(session, make_tenant(session), Role.TENANT_ADMIN)
    client = PortalClient(app.test_client())
    client.sign_in(admin.email, PASSWORD, admin.secret)
    tabs = {
        "/settings": "General",
        "/orders/tolerances": "Tolerances",
        "/scorecards/settings": "Scorecard weights",
        "/settings/erp": "ERP connection",
        "/settings/jobs": "Background jobs",
        "/settings/webhooks": "Webhooks",
    }
    for path, tab in tabs.items():
        html = client.get(path).text
        main = re.search(r'<nav class="mainnav".*?</nav>', html, re.S).group(0)
        assert re.findall(r'aria-current="page">([^<>]+)</a>', main) == ["Settings"], path
        assert not {"Tolerances", "ERP", "Webhooks"} & set(re.findall(r">([^<>]+)</a>", main))
        settings = re.search(r'<nav class="tabs" aria-label="Settings">.*?</nav>', html, re.S).group(0)
        assert re.findall(r">([^<>]+)</a>", settings) == list(tabs.values())
        assert re.findall(r'aria-current="page">([^<>]+)</a>', settings) == [tab], path


def test_session_lookup_sets_the_rls_context_and_a_dead_record_takes_it_back(committed_db):
    """The session record's lookup carries the request's RLS context (the cookie's tenant, the record's user):
    the context step that follows sends nothing. A revoked record leaves no context behind."""
    from sqlalchemy import event, text

    from portal.auth import sessions
    from portal.db import TENANT_KEY, USER_KEY
    from tests.conftest import tenant_session

    with tenant_session(committed_db, None) as s:
        tenant = make_tenant(s)
        user, _ = make_user(s)
        token = sessions.start_session(s, user, ip="127.0.0.1", user_agent="test", auth_method="totp")
        tenant_id, user_id = tenant.id, user.id
    settings = text("SELECT current_setting('app.tenant_id', true), current_setting('app.user_id', true)")
    statements: list[str] = []

    def seen(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(committed_db.engine, "before_cursor_execute", seen)
    try:
        with committed_db.transaction() as s:
            loaded, no_rows = sessions.load_session_user(s, token, tenant_id=tenant_id)
            assert loaded is not None and loaded.id == user_id and loaded.get_id() == token and no_rows is None
            assert (s.info[TENANT_KEY], s.info[USER_KEY]) == (tenant_id, user_id)
            set_context(s, tenant_id=tenant_id, user_id=user_id)  # as the request's context step does
            assert s.execute(settings).one() == (str(tenant_id), str(user_id))
    finally:
        event.remove(committed_db.engine, "before_cursor_execute", seen)
    assert "set_config" in statements[0] and "user_sessions" in statements[0]
    assert not any("set_config" in statement for statement in statements[1:])

    with tenant_session(committed_db, None) as s:
        sessions.revoke_all(s, user_id)
    with committed_db.transaction() as s:
        assert sessions.load_session_user(s, token, tenant_id=tenant_id) == (None, None)
        assert s.execute(settings).one() == ("", "")
        assert (s.info[TENANT_KEY], s.info[USER_KEY]) == (None, None)


def test_the_memberships_come_with_the_session_record_under_row_level_security(committed_db):
    """On PostgreSQL the person's memberships are read in the session record's statement, under the context
    that statement sets: every membership of theirs in any tenant (the bell's count only in the cookie's
    tenant), none of anybody else's; a revoked record brings none."""
    from sqlalchemy import text

    from portal.auth import sessions
    from portal.auth.permissions import Role
    from portal.web import _SESSION_WITH_MEMBERSHIPS
    from tests.conftest import tenant_session
    from tests.factories import make_member

    with tenant_session(committed_db, None) as s:
        here, elsewhere = make_tenant(s), make_tenant(s)
        person = make_member(s, here, Role.BUYER)
        make_member(s, elsewhere, Role.COMPLIANCE_OFFICER, user=person.user)
        make_member(s, here, Role.BUYER)  # somebody else, in the same tenant
        token = sessions.start_session(s, person.user, ip="127.0.0.1", user_agent="test", auth_method="totp")
        user_id = person.user.id
        ids = {here.id: here.name, elsewhere.id: elsewhere.name}
    with committed_db.transaction() as s:
        loaded, rows = sessions.load_session_user(s, token, tenant_id=here.id, with_rows=_SESSION_WITH_MEMBERSHIPS)
        assert loaded is not None and loaded.id == user_id and rows is not None
        assert {(row[1], row[2], row[5]) for row in rows} == {(tenant, user_id, name) for tenant, name in ids.items()}
        assert (person.membership.id, here.id, here.name) in {(row[0], row[1], row[5]) for row in rows}
    with committed_db.transaction() as s:
        # Why the context is set before the memberships are read: the lookup is the outer side of a nested loop,
        # the memberships (under RLS) its inner side, run for the lookup's row; even with nested loops made
        # the planner's last resort (a merged lateral subquery then became a hash join, its rows read first).
        s.execute(text("SET LOCAL enable_nestloop = off"))
        loaded, rows = sessions.load_session_user(s, token, tenant_id=here.id, with_rows=_SESSION_WITH_MEMBERSHIPS)
        assert rows is not None and len(rows) == 2
        compiled = _SESSION_WITH_MEMBERSHIPS.compile(dialect=s.get_bind().dialect)
        params = {**compiled.params, "token_hash": sessions._digest(token), "context_tenant": str(here.id)}
        plan = s.connection().exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", params).scalar_one()
        top = (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]

        def relations(node: dict) -> set[str]:
            return {node.get("Relation Name", ""), *(r for child in node.get("Plans", []) for r in relations(child))}

        assert top["Node Type"] == "Nested Loop" and top["Join Type"] == "Left"
        outer, inner = (
            next(c for c in top["Plans"] if c["Parent Relationship"] == side) for side in ("Outer", "Inner")
        )
        assert "user_sessions" in relations(outer) and "memberships" not in relations(outer)
        assert "memberships" in relations(inner)
    with tenant_session(committed_db, None) as s:
        sessions.revoke_all(s, user_id)
    with committed_db.transaction() as s:
        assert sessions.load_session_user(s, token, tenant_id=here.id, with_rows=_SESSION_WITH_MEMBERSHIPS) == (
            None,
            None,
        )
