"""Invitations, supplier accounts and people administration, through the real forms."""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
from sqlalchemy import select, update

from portal.audit import AuditEvent
from portal.auth.models import Invitation, Membership
from portal.auth.permissions import Role
from portal.db import set_context, utcnow
from portal.mail import SentEmail
from portal.suppliers.models import Supplier
from tests.factories import PASSWORD, make_member, make_supplier, make_tenant
from tests.helpers import PortalClient

LINK = re.compile(r"http://localhost(/invitations/[A-Za-z0-9._-]+)")


def last_link(session, email: str) -> str:
    body = (
        session.execute(select(SentEmail.body).where(SentEmail.to == email).order_by(SentEmail.id.desc()))
        .scalars()
        .first()
    )
    assert body, f"no e-mail to {email}"
    match = LINK.search(body)
    assert match, body
    return match.group(1)


def signed_in(app, person) -> PortalClient:  # type: ignore[no-untyped-def]
    client = PortalClient(app.test_client())
    client.sign_in(person.email, PASSWORD, person.secret)
    return client


def accept_as_new_person(app, link: str, name: str = "New Person") -> tuple[PortalClient, str]:  # type: ignore[no-untyped-def]
    guest = PortalClient(app.test_client())
    created = guest.submit(
        link, {"name": name, "new_password": "amber-kettle-forest-19", "confirm_password": "amber-kettle-forest-19"}
    )
    assert created.status_code == 302 and created.headers["Location"].endswith("/login/enrol"), created.text[:300]
    page = guest.get("/login/enrol")
    secret = page.text.split('id="totp-secret" data-copy>')[1].split("<")[0].replace(" ", "")
    assert guest.submit("/login/enrol", {"code": pyotp.TOTP(secret).now()}).status_code == 200
    return guest, secret


def test_admin_invites_a_buyer_who_joins_and_enrols(app, session):
    tenant = make_tenant(session, "Invite Co")
    admin = make_member(session, tenant, Role.TENANT_ADMIN)
    client = signed_in(app, admin)
    sent = client.submit("/people", {"email": "New.Buyer@Example.org", "role": "buyer"})
    assert sent.status_code == 302
    link = last_link(session, "new.buyer@example.org")
    guest, _ = accept_as_new_person(app, link)
    home = guest.get("/")
    assert home.status_code == 200 and "Invite Co" in home.text
    set_context(session, tenant_id=tenant.id)
    actions = session.execute(select(AuditEvent.action).where(AuditEvent.tenant_id == tenant.id)).scalars().all()
    assert {"invitation.created", "membership.created"} <= set(actions)
    # The link works once.
    again = PortalClient(app.test_client()).get(link)
    assert again.status_code == 410 and "used already" in again.text


def test_invitation_with_a_weak_password_creates_nothing(app, session):
    tenant = make_tenant(session)
    admin = make_member(session, tenant, Role.TENANT_ADMIN)
    signed_in(app, admin).submit("/people", {"email": "weak@example.org", "role": "viewer"})
    link = last_link(session, "weak@example.org")
    guest = PortalClient(app.test_client())
    response = guest.submit(link, {"name": "W", "new_password": "password1", "confirm_password": "password1"})
    assert response.status_code == 422 and "too common" in response.text
    mismatch = guest.submit(
        link, {"name": "W", "new_password": "amber-kettle-forest-19", "confirm_password": "amber-kettle-forest-91"}
    )
    assert mismatch.status_code == 422 and "The two passwords differ." in mismatch.text
    from portal.auth.models import User

    assert session.execute(select(User).where(User.email == "weak@example.org")).first() is None


def test_expired_and_tampered_links_are_refused(app, session):
    tenant = make_tenant(session)
    admin = make_member(session, tenant, Role.TENANT_ADMIN)
    signed_in(app, admin).submit("/people", {"email": "late@example.org", "role": "viewer"})
    link = last_link(session, "late@example.org")
    guest = PortalClient(app.test_client())
    assert guest.get(link[:-3] + "abc").status_code == 410
    set_context(session, tenant_id=tenant.id)
    session.execute(update(Invitation).values(expires_at=utcnow() - timedelta(minutes=1)))
    expired = guest.get(link)
    assert expired.status_code == 410 and "expired" in expired.text


def test_existing_person_from_another_tenant_just_gains_the_membership(app, session):
    first, second = make_tenant(session, "First"), make_tenant(session, "Second")
    supplier_first = make_supplier(session, first, "Acme")
    supplier_second = make_supplier(session, second, "Acme")
    anna = make_member(session, first, Role.SUPPLIER_ADMIN, supplier=supplier_first)
    admin = make_member(session, second, Role.TENANT_ADMIN)
    admin_client = signed_in(app, admin)
    page = f"/suppliers/{supplier_second.id}"
    assert admin_client.submit(page, {"email": anna.email, "role": "supplier_admin"}).status_code == 302
    link = last_link(session, anna.email)
    anna_client = PortalClient(app.test_client())
    assert anna_client.get(link).headers["Location"].startswith("/login")
    anna_client.sign_in(anna.email, PASSWORD, anna.secret)
    joined = anna_client.submit(link, {})
    assert joined.status_code == 302
    set_context(session, tenant_id=None, user_id=anna.user.id)
    tenants = session.execute(select(Membership.tenant_id).where(Membership.user_id == anna.user.id)).scalars().all()
    assert sorted(tenants) == sorted([first.id, second.id])


def test_invitation_for_someone_else_cannot_be_accepted_by_a_signed_in_person(app, session):
    tenant = make_tenant(session)
    admin = make_member(session, tenant, Role.TENANT_ADMIN)
    other = make_member(session, make_tenant(session), Role.BUYER)
    intruder = signed_in(app, admin)
    intruder.submit("/people", {"email": other.email, "role": "viewer"})
    link = last_link(session, other.email)
    response = intruder.get(link)
    assert response.status_code == 403 and "Sign out and sign in with that address" in response.text


def test_admin_creates_a_supplier_and_its_admin_invites_a_colleague(app, session):
    tenant = make_tenant(session, "Northwind T")
    admin = make_member(session, tenant, Role.TENANT_ADMIN)
    client = signed_in(app, admin)
    created = client.submit(
        "/suppliers/new",
        {"code": "zeta", "name": "Zeta Parts", "category": "Parts", "admin_email": "boss@zeta.example"},
    )
    assert created.status_code == 302
    set_context(session, tenant_id=tenant.id)
    supplier = session.execute(select(Supplier).where(Supplier.code == "ZETA")).scalar_one()
    boss, _ = accept_as_new_person(app, last_link(session, "boss@zeta.example"), "Zeta Boss")
    assert boss.get("/team").status_code == 200
    assert boss.submit("/team", {"email": "clerk@zeta.example", "role": "supplier_user"}).status_code == 302
    clerk, _ = accept_as_new_person(app, last_link(session, "clerk@zeta.example"), "Zeta Clerk")
    set_context(session, tenant_id=tenant.id)
    roles = dict(
        session.execute(
            select(Membership.role, Membership.supplier_id).where(Membership.supplier_id == supplier.id)
        ).all()
    )
    assert roles == {Role.SUPPLIER_ADMIN: supplier.id, Role.SUPPLIER_USER: supplier.id}
    # A supplier user sees neither the supplier list nor the team page.
    assert clerk.get("/suppliers").status_code == 403 and clerk.get("/team").status_code == 403


def test_supplier_admin_cannot_invite_staff_roles(app, session):
    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    boss = make_member(session, tenant, Role.SUPPLIER_ADMIN, supplier=supplier)
    client = signed_in(app, boss)
    response = client.submit("/team", {"email": "sneaky@example.org", "role": "tenant_admin"})
    assert response.status_code == 422 and "Not a valid choice" in response.text
    set_context(session, tenant_id=tenant.id)
    assert session.execute(select(Invitation).where(Invitation.email == "sneaky@example.org")).first() is None


def test_duplicate_supplier_code_gets_a_message_and_stores_nothing(app, session):
    tenant = make_tenant(session)
    admin = make_member(session, tenant, Role.TENANT_ADMIN)
    existing = make_supplier(session, tenant)
    client = signed_in(app, admin)
    response = client.submit("/suppliers/new", {"code": existing.code, "name": "Copy"})
    assert response.status_code == 422 and "in use already" in response.text
    bad = client.submit("/suppliers/new", {"code": "no spaces!", "name": ""})
    assert bad.status_code == 422 and "Use letters, digits" in bad.text and "Enter the supplier" in bad.text
    set_context(session, tenant_id=tenant.id)
    assert session.execute(select(Supplier).where(Supplier.name == "Copy")).first() is None


def test_role_change_is_audited(app, session):
    tenant = make_tenant(session)
    admin = make_member(session, tenant, Role.TENANT_ADMIN)
    viewer = make_member(session, tenant, Role.VIEWER)
    client = signed_in(app, admin)
    page = f"/people/{viewer.membership.id}"
    assert client.submit(page, {"role-role": "compliance_officer"}).status_code == 302
    set_context(session, tenant_id=tenant.id)
    event = session.execute(select(AuditEvent).where(AuditEvent.action == "membership.role_changed")).scalar_one()
    assert event.before == {"role": "viewer"} and event.after == {"role": "compliance_officer"}
    assert event.actor == admin.email


def test_admin_changes_tenant_settings_and_the_mfa_policy_applies(app, session):
    from portal.tenancy.models import DocumentGating, MfaPolicy, Tenant

    tenant = make_tenant(session, "Settings Co")
    admin = make_member(session, tenant, Role.TENANT_ADMIN)
    client = signed_in(app, admin)
    bad = client.submit("/settings", {"name": "", "mfa_policy": "off", "unconfirmed_after_days": "0",
                                      "reminder_repeat_days": "5", "reminder_limit": "4"})  # fmt: skip
    assert bad.status_code == 422
    assert "Enter the name." in bad.text and "Not a valid choice" in bad.text and "Between 1 and 90 days." in bad.text
    shown = re.search(r'<select[^>]*name="reminder_limit".*?</select>\s*(.*?)</div>', bad.text, re.S)
    assert shown is not None and "Not a valid choice" in shown.group(1)  # next to the field that holds it
    done = client.submit(
        "/settings",
        {"name": "Settings Company", "mfa_policy": "required_for_suppliers_and_admins", "document_gating": "block",
         "unconfirmed_after_days": "5", "remind_unconfirmed": "off", "reminder_repeat_days": "3",
         "reminder_limit": "3"},
    )  # fmt: skip
    assert done.status_code == 302
    session.expire_all()
    stored = session.get(Tenant, tenant.id)
    assert stored.name == "Settings Company" and stored.mfa_policy == MfaPolicy.REQUIRED_FOR_SUPPLIERS_AND_ADMINS
    assert stored.unconfirmed_after_days == 5 and stored.document_gating == DocumentGating.BLOCK
    assert stored.remind_unconfirmed is False and stored.reminder_repeat_days == 3 and stored.reminder_limit == 3
    page = client.get("/settings").text  # the page shows what was saved
    for name, options in (("document_gating", ['value="off"', 'value="warn"', 'selected value="block"']),
                          ("remind_unconfirmed", ['value="on"', 'selected value="off"']),
                          ("reminder_repeat_days",
                           ['value="0"', 'value="2"', 'selected value="3"', 'value="7"']),
                          ("reminder_limit",
                           ['value="2"', 'selected value="3"', 'value="5"', 'value="10"'])):  # fmt: skip
        shown = re.search(rf'<select[^>]*name="{name}".*?</select>', page, re.S)
        assert re.findall(r"<option ([^>]*)>", shown.group(0)) == options
    set_context(session, tenant_id=tenant.id)
    event = session.execute(select(AuditEvent).where(AuditEvent.action == "tenant.settings_changed")).scalar_one()
    assert event.before["mfa_policy"] == "required_for_all" and event.after["unconfirmed_after_days"] == 5
    assert (event.before["document_gating"], event.after["document_gating"]) == ("off", "block")
    assert (event.before["remind_unconfirmed"], event.after["remind_unconfirmed"]) == (True, False)
    assert (event.before["reminder_repeat_days"], event.after["reminder_repeat_days"]) == (0, 3)
    assert (event.before["reminder_limit"], event.after["reminder_limit"]) == (5, 3)
    # A form that leaves a choice out keeps what is stored.
    kept = client.submit("/settings", {"name": "Settings Company", "mfa_policy": "required_for_suppliers_and_admins",
                                       "unconfirmed_after_days": "5"})  # fmt: skip
    assert kept.status_code == 302
    session.expire_all()
    stored = session.get(Tenant, tenant.id)
    assert stored.document_gating == DocumentGating.BLOCK and stored.remind_unconfirmed is False
    assert stored.reminder_repeat_days == 3 and stored.reminder_limit == 3
    # Under the relaxed policy a buyer without MFA signs in with the password alone; an admin still enrols.
    from tests.factories import make_user

    buyer_user, _ = make_user(session, enrolled=False)
    make_member(session, tenant, Role.BUYER, user=buyer_user)
    guest = PortalClient(app.test_client())
    assert guest.password_step(buyer_user.email, PASSWORD).headers["Location"] == "/"
    admin_user, _ = make_user(session, enrolled=False)
    make_member(session, tenant, Role.TENANT_ADMIN, user=admin_user)
    other = PortalClient(app.test_client())
    assert other.password_step(admin_user.email, PASSWORD).headers["Location"].endswith("/login/enrol")
