"""Real Chromium (Debian's package, driven by Playwright) against a live portal."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator

import pyotp
import pytest
from werkzeug.serving import make_server

from portal.auth import services
from portal.auth.permissions import Role
from portal.db import set_context
from tests.conftest import service_missing, tenant_session
from tests.factories import make_member, make_supplier, make_tenant

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def live_server(committed_app) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, committed_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def browser():  # type: ignore[no-untyped-def]
    if not os.path.exists(CHROMIUM):
        service_missing("Chromium", f"{CHROMIUM} not found")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def code_at(secret: str, steps_ahead: int) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


def test_supplier_accepts_invitation_enrols_signs_in_and_switches_customer(
    live_server, browser, committed_app, committed_db
):
    with tenant_session(committed_db, None) as s:
        first, second = make_tenant(s, "Northwind Browser"), make_tenant(s, "Harbor Browser")
        supplier_first = make_supplier(s, first, "Acme Browser")
        supplier_second = make_supplier(s, second, "Acme Browser")
        admin = make_member(s, first, Role.TENANT_ADMIN)
        set_context(s, tenant_id=first.id)
        invitation = services.create_invitation(
            s,
            tenant_id=first.id,
            inviter_role=Role.TENANT_ADMIN,
            email="anna@acme-browser.example",
            role=Role.SUPPLIER_ADMIN,
            supplier_id=supplier_first.id,
            actor=services.Actor(admin.user.id, admin.email, "127.0.0.1"),
        )
        token = services.invitation_token(committed_app.config["SECRET_KEY"], invitation)

    page = browser.new_page()
    page.goto(f"{live_server}/invitations/{token}")
    assert "Join Northwind Browser" in page.inner_text("h1")
    page.fill("#name", "Anna Acme")
    page.fill("#new_password", "amber-kettle-forest-19")
    page.fill("#confirm_password", "amber-kettle-forest-19")
    page.click("button[type=submit]")
    page.wait_for_url("**/login/enrol")
    assert page.locator(".qr svg").count() == 1
    secret = page.inner_text("#totp-secret").strip()
    page.fill("#code", code_at(secret, 0))
    page.click("button[type=submit]")
    assert page.locator("#recovery-codes li").count() == 10
    page.click("text=I have stored them, continue")
    assert "Acme Browser" in page.inner_text("h1")

    # A second customer for the same person (as if Harbor had invited her too).
    with tenant_session(committed_db, second.id) as s:
        from sqlalchemy import select

        from portal.auth.models import Membership, User

        user = s.execute(select(User).where(User.email == "anna@acme-browser.example")).scalar_one()
        s.add(Membership(tenant_id=second.id, user_id=user.id, role=Role.SUPPLIER_USER, supplier_id=supplier_second.id))

    page.click("text=Sign out")
    page.wait_for_url("**/login")
    page.fill("#email", "anna@acme-browser.example")
    page.fill("#password", "amber-kettle-forest-19")
    page.click("button[type=submit]")
    page.wait_for_url("**/login/verify")
    page.fill("#code", "000000")
    page.click("button[type=submit]")
    assert "That code is not valid" in page.inner_text(".error")
    fresh = code_at(secret, 1)
    page.fill("#code", fresh)
    page.click("button[type=submit]")
    page.wait_for_url("**/choose**")
    page.click("button.choice:has-text('Harbor Browser')")
    page.wait_for_url(f"{live_server}/")
    assert "Harbor Browser" in page.inner_text("main")
    # The header switcher changes customer (it submits itself on change).
    page.select_option("#switch-customer", label="Northwind Browser — as Acme Browser")
    page.wait_for_function("document.querySelector('main').innerText.includes('working for Northwind Browser')")
    assert page.locator("nav.mainnav >> text=Team").count() == 1

    page.click("text=Sign out")
    page.wait_for_url("**/login")
    page.fill("#email", "anna@acme-browser.example")
    page.fill("#password", "amber-kettle-forest-19")
    page.click("button[type=submit]")
    page.fill("#code", fresh)  # the same code again: a replay
    page.click("button[type=submit]")
    assert "used already" in page.inner_text(".error")
    page.screenshot(path=str(committed_app.instance_path) + "/browser-replay.png")
