"""Security promises: one-time codes under concurrency, rate limits, session
invalidation, password hashing and policy."""

from __future__ import annotations

import threading
from datetime import timedelta

import pyotp
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

from portal import create_app
from portal.auth import mfa, ratelimit
from portal.auth.models import Membership, UserSession
from portal.auth.passwords import HASHER, hash_password, password_problem, verify_password
from portal.auth.permissions import Role
from portal.db import set_context, utcnow
from tests.conftest import _settings, tenant_session
from tests.factories import PASSWORD, give_recovery_codes, make_member, make_tenant
from tests.helpers import PortalClient, csrf_from

# --- one-time codes --------------------------------------------------------------


def _committed_person(committed_db, role=Role.BUYER):  # type: ignore[no-untyped-def]
    with tenant_session(committed_db, None) as s:
        tenant = make_tenant(s)
        person = make_member(s, tenant, role)
        return person.email, person.secret, person.user.id, person.membership.id, tenant.id


def _race(clients: list[PortalClient], url: str, data_for) -> list[int]:  # type: ignore[no-untyped-def]
    """POST to ``url`` from every client at the same moment; return the status codes."""
    tokens = [csrf_from(c.get(url).text) for c in clients]
    barrier = threading.Barrier(len(clients))
    results: list[int] = [0] * len(clients)

    def go(i: int) -> None:
        barrier.wait()
        results[i] = clients[i].post(url, {"csrf_token": tokens[i], **data_for(i)}).status_code

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_double_submit_of_one_totp_code_lets_exactly_one_in(committed_app, committed_db):
    email, secret, *_ = _committed_person(committed_db)
    clients = [PortalClient(committed_app.test_client()) for _ in range(4)]
    for c in clients:
        assert c.password_step(email, PASSWORD).status_code == 302
    code = pyotp.TOTP(secret).now()
    results = _race(clients, "/login/verify", lambda i: {"code": code})
    assert sorted(results) == [302, 401, 401, 401]


def test_concurrent_use_of_one_recovery_code_lets_exactly_one_in(committed_app, committed_db):
    email, _, user_id, *_ = _committed_person(committed_db)
    with tenant_session(committed_db, None) as s:
        from portal.auth.models import User

        codes = give_recovery_codes(s, s.get(User, user_id))
    clients = [PortalClient(committed_app.test_client()) for _ in range(3)]
    for c in clients:
        c.password_step(email, PASSWORD)
    results = _race(clients, "/login/verify", lambda i: {"code": codes[3]})
    assert sorted(results) == [302, 401, 401]


def test_regenerating_recovery_codes_replaces_all(session):
    tenant = make_tenant(session)
    person = make_member(session, tenant, Role.BUYER)
    old = give_recovery_codes(session, person.user)
    new = mfa.regenerate_recovery_codes(session, person.user)
    assert not set(old) & set(new)
    assert not mfa.consume_recovery_code(session, person.user, old[0])
    assert mfa.consume_recovery_code(session, person.user, new[0])


def test_recovery_codes_carry_at_least_64_bits():
    # 16 symbols from a 32-letter alphabet.
    assert mfa._RECOVERY_LENGTH * 5 >= 64 and len(mfa._RECOVERY_ALPHABET) == 32


# --- rate limits -----------------------------------------------------------------


def test_ten_password_attempts_per_account_then_a_clear_wait(client, session):
    person = make_member(session, make_tenant(session), Role.BUYER)
    for _ in range(10):
        assert client.password_step(person.email, "wrong-password").status_code == 401
    limited = client.password_step(person.email, PASSWORD)  # even the right password now waits
    assert limited.status_code == 429
    assert "Too many attempts. Please wait" in limited.text
    assert 0 < int(limited.headers["Retry-After"]) <= 300


def test_ten_attempts_per_ip_across_accounts(client, session):
    for i in range(10):
        assert client.password_step(f"guess{i}@example.org", "whatever-it-is").status_code == 401
    assert client.password_step("another@example.org", "whatever-it-is").status_code == 429


def test_forged_forwarded_for_does_not_change_the_client_address(client, session):
    for i in range(10):
        client.password_step(f"guess{i}@example.org", "whatever-it-is")
    page = client.get("/login")
    forged = client.client.post(
        "/login",
        data={"csrf_token": csrf_from(page.text), "email": "x@example.org", "password": "whatever-it-is"},
        headers={"X-Forwarded-For": "203.0.113.9"},
    )
    assert forged.status_code == 429


def test_a_trusted_proxy_hop_supplies_the_client_address(tmp_path, db):
    app = create_app(_settings(tmp_path, db.url, TRUSTED_PROXY_HOPS="1"), database=db)
    client = PortalClient(app.test_client())
    for i in range(10):
        page = client.get("/login")
        client.client.post(
            "/login",
            data={"csrf_token": csrf_from(page.text), "email": f"g{i}@example.org", "password": "whatever-it-is"},
            headers={"X-Forwarded-For": "198.51.100.1"},
        )
    page = client.get("/login")
    other_ip = client.client.post(
        "/login",
        data={"csrf_token": csrf_from(page.text), "email": "h@example.org", "password": "whatever-it-is"},
        headers={"X-Forwarded-For": "198.51.100.2"},
    )
    assert other_ip.status_code == 401  # a different client behind the proxy is not throttled


def test_five_second_factor_attempts_then_a_wait(client, session):
    person = make_member(session, make_tenant(session), Role.BUYER)
    client.password_step(person.email, PASSWORD)
    for _ in range(5):
        assert client.submit("/login/verify", {"code": "000000"}).status_code == 401
    limited = client.submit("/login/verify", {"code": pyotp.TOTP(person.secret).now()})
    assert limited.status_code == 429 and "Please wait" in limited.text


def test_redis_limits_are_shared_between_processes(redis_url):
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    first, second = ratelimit.RateLimiter(redis_url), ratelimit.RateLimiter(redis_url)
    key = (ratelimit.LOGIN_PER_ACCOUNT, "shared@example.org")
    for _ in range(5):
        first.attempt(key)
    for _ in range(5):
        second.attempt(key)
    assert not first.using_fallback
    with pytest.raises(ratelimit.Limited) as raised:
        first.attempt(key)
    assert 0 < raised.value.retry_after <= 300


def test_unreachable_limit_store_falls_back_to_a_local_limit_not_to_none():
    limiter = ratelimit.RateLimiter("redis://127.0.0.1:1/0")
    key = (ratelimit.LOGIN_PER_ACCOUNT, "fallback@example.org")
    for _ in range(10):
        limiter.attempt(key)
    assert limiter.using_fallback
    with pytest.raises(ratelimit.Limited):
        limiter.attempt(key)


# --- sessions --------------------------------------------------------------------


def _cookie(client: PortalClient, app) -> str:  # type: ignore[no-untyped-def]
    return client.client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value


def test_login_starts_a_new_session(client, app, session):
    person = make_member(session, make_tenant(session), Role.BUYER)
    client.password_step(person.email, PASSWORD)
    before = _cookie(client, app)
    client.submit("/login/verify", {"code": client.totp.code(person.secret)})
    with client.client.session_transaction() as cookie:
        assert "login_token" not in cookie and "_user_id" in cookie
    assert _cookie(client, app) != before


def test_pages_do_not_resend_an_unchanged_session_cookie(client, app, session):
    """The cookie keeps the expiry it got at sign-in (12 h, the session record's absolute limit); a page that
    changes nothing in it does not re-sign it, a page that does change it sends it again."""
    person = make_member(session, make_tenant(session), Role.BUYER)
    client.sign_in(person.email, PASSWORD, person.secret)
    signed_in = client.client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert signed_in.expires is not None
    client.get("/account")  # the first page after sign-in may still bind the person's membership
    for _ in range(2):
        page = client.get("/account")
        assert page.status_code == 200 and "Set-Cookie" not in page.headers
    client.sign_out()
    assert _cookie(client, app) != signed_in.value


def test_old_cookie_stops_working_after_logout(client, app, session):
    person = make_member(session, make_tenant(session), Role.BUYER)
    client.sign_in(person.email, PASSWORD, person.secret)
    stolen = _cookie(client, app)
    client.sign_out()
    thief = app.test_client()
    thief.set_cookie(app.config["SESSION_COOKIE_NAME"], stolen)
    assert thief.get("/account").headers["Location"].startswith("/login")


def test_password_change_ends_other_sessions_and_notifies(app, session):
    person = make_member(session, make_tenant(session), Role.BUYER)
    laptop, phone = PortalClient(app.test_client()), PortalClient(app.test_client())
    phone.totp = laptop.totp  # one authenticator app: each sign-in takes the next code
    laptop.sign_in(person.email, PASSWORD, person.secret)
    phone.sign_in(person.email, PASSWORD, person.secret)
    changed = laptop.submit(
        "/account/password",
        {
            "current_password": PASSWORD,
            "new_password": "violet-anchor-meadow-77",
            "confirm_password": "violet-anchor-meadow-77",
        },
    )
    assert changed.status_code == 302
    assert laptop.get("/account").status_code == 200
    assert phone.get("/account").headers["Location"].startswith("/login")
    from portal.mail import SentEmail

    subjects = session.execute(select(SentEmail.subject).where(SentEmail.to == person.email)).scalars().all()
    assert "Your password was changed" in subjects


def test_password_change_with_wrong_current_password_changes_nothing(client, session):
    person = make_member(session, make_tenant(session), Role.BUYER)
    client.sign_in(person.email, PASSWORD, person.secret)
    before = person.user.password_hash
    response = client.submit(
        "/account/password",
        {
            "current_password": "not-it-at-all",
            "new_password": "violet-anchor-meadow-77",
            "confirm_password": "violet-anchor-meadow-77",
        },
    )
    assert response.status_code == 422 and "current password is not right" in response.text
    session.expire_all()
    assert session.get(type(person.user), person.user.id).password_hash == before


def test_disabling_a_member_ends_their_sessions(app, session):
    tenant = make_tenant(session)
    admin = make_member(session, tenant, Role.TENANT_ADMIN)
    buyer = make_member(session, tenant, Role.BUYER)
    admin_client, buyer_client = PortalClient(app.test_client()), PortalClient(app.test_client())
    admin_client.sign_in(admin.email, PASSWORD, admin.secret)
    buyer_client.sign_in(buyer.email, PASSWORD, buyer.secret)
    url = f"/people/{buyer.membership.id}/disable"
    response = admin_client.submit(url, {"disable-reason": "left the company"}, page=f"/people/{buyer.membership.id}")
    assert response.status_code == 302
    assert buyer_client.get("/").headers["Location"].startswith("/login")
    set_context(session, tenant_id=tenant.id)
    session.expire_all()
    assert session.get(Membership, buyer.membership.id).disabled_at is not None
    # Signing in again gives no access to that tenant any more.
    buyer_client.sign_in(buyer.email, PASSWORD, buyer.secret)
    assert buyer_client.get("/").headers["Location"].startswith("/choose")
    assert "no access to any customer" in buyer_client.get("/choose").text


def test_admin_cannot_disable_themselves(client, session):
    tenant = make_tenant(session)
    admin = make_member(session, tenant, Role.TENANT_ADMIN)
    client.sign_in(admin.email, PASSWORD, admin.secret)
    page = f"/people/{admin.membership.id}"
    response = client.submit(f"{page}/disable", {}, page=page)
    assert response.status_code == 303
    assert "cannot disable your own access" in client.get(page).text


@pytest.mark.parametrize(
    ("column", "age"), [("last_seen_at", timedelta(minutes=31)), ("created_at", timedelta(hours=12, minutes=1))]
)
def test_idle_and_absolute_timeouts(client, session, column, age):
    person = make_member(session, make_tenant(session), Role.BUYER)
    client.sign_in(person.email, PASSWORD, person.secret)
    assert client.get("/account").status_code == 200
    session.execute(update(UserSession).where(UserSession.user_id == person.user.id).values({column: utcnow() - age}))
    assert client.get("/account").headers["Location"].startswith("/login")
    record = session.execute(select(UserSession).where(UserSession.user_id == person.user.id)).scalar_one()
    session.refresh(record)
    assert record.revoked_at is not None  # revoked for good, not only refused this time


def test_a_session_record_is_touched_at_most_every_minute(client, session):
    person = make_member(session, make_tenant(session), Role.BUYER)
    client.sign_in(person.email, PASSWORD, person.secret)
    record = session.execute(select(UserSession).where(UserSession.user_id == person.user.id)).scalar_one()
    for age, touched in ((timedelta(seconds=30), False), (timedelta(minutes=5), True)):
        seen = utcnow() - age
        session.execute(update(UserSession).where(UserSession.id == record.id).values(last_seen_at=seen))
        assert client.get("/account").status_code == 200
        session.refresh(record)
        assert (record.last_seen_at > seen + timedelta(minutes=4)) is touched, age
        assert record.revoked_at is None


def test_end_another_session_from_the_account_page(app, session):
    person = make_member(session, make_tenant(session), Role.BUYER)
    laptop, phone = PortalClient(app.test_client()), PortalClient(app.test_client())
    phone.totp = laptop.totp  # one authenticator app: each sign-in takes the next code
    laptop.sign_in(person.email, PASSWORD, person.secret)
    phone.sign_in(person.email, PASSWORD, person.secret)
    records = (
        session.execute(select(UserSession).where(UserSession.user_id == person.user.id).order_by(UserSession.id))
        .scalars()
        .all()
    )
    phone_session = records[-1]
    response = laptop.submit(f"/account/sessions/{phone_session.id}/end", {}, page="/account")
    assert response.status_code == 302
    assert phone.get("/account").headers["Location"].startswith("/login")
    assert laptop.get("/account").status_code == 200


def test_mfa_reset_needs_password_and_code_then_replaces_the_secret(client, session):
    person = make_member(session, make_tenant(session), Role.BUYER)
    client.sign_in(person.email, PASSWORD, person.secret)
    wrong = client.submit("/account/mfa/reset", {"password": PASSWORD, "code": "000000"})
    assert wrong.status_code == 422
    ok = client.submit("/account/mfa/reset", {"password": PASSWORD, "code": client.totp.code(person.secret)})
    assert ok.headers["Location"].endswith("/account/mfa/enrol")
    page = client.get("/account/mfa/enrol")
    new_secret = page.text.split('id="totp-secret" data-copy>')[1].split("<")[0].replace(" ", "")
    assert new_secret != person.secret
    done = client.submit("/account/mfa/enrol", {"code": pyotp.TOTP(new_secret).now()})
    assert done.status_code == 200 and done.text.count("<li><code>") == 10
    session.expire_all()
    assert session.get(type(person.user), person.user.id).totp_secret == new_secret


def test_admin_mfa_reset_makes_the_person_enrol_again(app, session):
    tenant = make_tenant(session)
    admin = make_member(session, tenant, Role.TENANT_ADMIN)
    buyer = make_member(session, tenant, Role.BUYER)
    admin_client = PortalClient(app.test_client())
    admin_client.sign_in(admin.email, PASSWORD, admin.secret)
    page = f"/people/{buyer.membership.id}"
    assert admin_client.submit(f"{page}/reset-mfa", {"reset-reason": ""}, page=page).status_code == 302
    assert "Give a reason" in admin_client.get(page).text
    assert admin_client.submit(f"{page}/reset-mfa", {"reset-reason": "lost phone"}, page=page).status_code == 302
    buyer_client = PortalClient(app.test_client())
    assert buyer_client.password_step(buyer.email, PASSWORD).headers["Location"].endswith("/login/enrol")


# --- passwords -------------------------------------------------------------------


def test_argon2id_at_least_asvs_parameters():
    assert HASHER.time_cost >= 2 and HASHER.memory_cost >= 19 * 1024 and HASHER.parallelism >= 1
    assert hash_password("anything-at-all").startswith("$argon2id$")
    assert isinstance(HASHER, PasswordHasher)


def test_no_truncation_after_72_bytes():
    base = "a" * 72
    stored = hash_password(base + "first-ending")
    assert verify_password(stored, base + "first-ending")
    assert not verify_password(stored, base + "other-ending")


@pytest.mark.parametrize("password", ["short", "password", "password123", "12345678", "qwertyuiop", "a" * 300])
def test_weak_or_overlong_passwords_are_refused(password):
    assert password_problem(password) is not None


def test_a_passphrase_without_composition_rules_is_accepted():
    assert password_problem("quiet harbour lantern") is None
    assert password_problem("x" * 20 + "harbour lantern " * 3) is None  # 64+ characters are fine


def test_password_containing_the_email_is_refused():
    assert password_problem("northwind2026", user_inputs=("buyer@northwind.example",)) is not None


def test_a_nul_character_anywhere_is_refused_with_a_message_and_saves_nothing(app, session):
    """PostgreSQL's text cannot hold NUL: such a request is refused before any view, never a database error."""
    from portal.orders.models import OrderMessage
    from tests.factories import make_order, make_supplier

    tenant = make_tenant(session, "Nul Distribution")
    order = make_order(session, tenant, make_supplier(session, tenant))
    buyer = make_member(session, tenant, Role.BUYER)
    anonymous = PortalClient(app.test_client())
    token = csrf_from(anonymous.get("/login").text)
    login = anonymous.post("/login", {"csrf_token": token, "email": "ann\x00@example.org", "password": "x"})
    assert login.status_code == 400 and "NUL character" in login.text
    client = PortalClient(app.test_client())
    client.sign_in(buyer.email, PASSWORD, buyer.secret)
    message = client.submit(f"/orders/{order.id}/messages", {"body": "ship\x00now"}, page=f"/orders/{order.id}")
    assert message.status_code == 400 and "NUL character" in message.text
    search = client.get("/orders?q=PO%00")
    assert search.status_code == 400 and "NUL character" in search.text
    set_context(session, tenant_id=tenant.id)
    assert session.execute(select(OrderMessage).where(OrderMessage.order_id == order.id)).first() is None
