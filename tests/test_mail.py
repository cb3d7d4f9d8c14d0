"""E-mail goes to a real SMTP server (aiosmtpd), and only after the change committed."""

from __future__ import annotations

import time

import pytest

from portal import create_app
from portal.auth.permissions import Role
from tests.conftest import _settings
from tests.factories import PASSWORD, make_member, make_tenant
from tests.helpers import PortalClient


@pytest.fixture
def smtp_app(tmp_path, db, smtp_inbox):
    _, port = smtp_inbox
    app = create_app(
        _settings(tmp_path, db.url, MAIL_BACKEND="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=str(port)), database=db
    )
    app.config["TESTING"] = True
    return app


def wait_for(predicate, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_invitation_is_delivered_over_smtp_after_commit(smtp_app, smtp_inbox, session):
    inbox, _ = smtp_inbox
    tenant = make_tenant(session, "Mail Co")
    admin = make_member(session, tenant, Role.TENANT_ADMIN)
    client = PortalClient(smtp_app.test_client())
    client.sign_in(admin.email, PASSWORD, admin.secret)
    assert client.submit("/people", {"email": "colleague@example.org", "role": "buyer"}).status_code == 302
    assert wait_for(lambda: any(m["To"] == "colleague@example.org" for m in inbox.messages))
    message = next(m for m in inbox.messages if m["To"] == "colleague@example.org")
    assert message["Subject"] == "You are invited to the supplier portal of Mail Co"
    assert "/invitations/" in message.get_payload(decode=True).decode()


def test_a_rolled_back_change_sends_nothing(smtp_app, smtp_inbox, session):
    inbox, _ = smtp_inbox
    tenant = make_tenant(session)
    admin = make_member(session, tenant, Role.TENANT_ADMIN)
    client = PortalClient(smtp_app.test_client())
    client.sign_in(admin.email, PASSWORD, admin.secret)
    # An invalid role: the form fails, the transaction rolls back, no mail leaves.
    assert client.submit("/people", {"email": "nobody@example.org", "role": "supplier_admin"}).status_code == 422
    changed = client.submit(
        "/account/password",
        {
            "current_password": "wrong-one-here",
            "new_password": "violet-anchor-meadow-77",
            "confirm_password": "violet-anchor-meadow-77",
        },
    )
    assert changed.status_code == 422
    time.sleep(0.3)
    assert not [m for m in inbox.messages if m["To"] in ("nobody@example.org", admin.email)]
