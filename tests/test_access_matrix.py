"""The access matrix: every route of the app, the access it must declare, and what
each role, an anonymous visitor and a person holding another tenant's ids get.

A route missing from MATRIX fails ``test_every_route_is_in_the_matrix``: adding a
view means adding its row here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from portal.api import services as api
from portal.api.models import ApiKey
from portal.auth import sessions
from portal.auth.access import Access, view_access
from portal.auth.models import Invitation
from portal.auth.permissions import ROLE_PERMISSIONS, Permission, Role
from portal.auth.services import Actor
from portal.db import set_context, utcnow
from portal.orders import services as svc
from portal.orders.models import ChangeRequest
from portal.orders.services import LineAnswer
from portal.web import CONTEXT_SESSION_KEY
from tests.factories import Person, issue_api_key, make_member, make_order, make_supplier, make_tenant
from tests.helpers import csrf_from

P = Permission
PUBLIC = Access("public")
SIGNED_IN = Access("signed_in")


def perm(p: Permission) -> Access:
    return Access("permission", p)


def key(p: Permission) -> Access:
    """The supplier API's declaration: an API key whose role has ``p``."""
    return Access("api_key", p)


@dataclass
class World:
    people: dict[str, Person]
    own: dict[str, Any]
    foreign: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


Params = Callable[[World, str, str], dict[str, Any]]


def ids(name: str) -> Params:
    """URL parameter ``name`` taken from the world's own or foreign objects."""
    return lambda world, side, who: {name: world.own[name] if side == "own" else world.foreign[name]}


def ids_of(*names: str) -> Params:
    return lambda world, side, who: {n: (world.own if side == "own" else world.foreign)[n] for n in names}


def own_session(world: World, side: str, who: str) -> dict[str, Any]:
    if side == "foreign":
        return {"session_id": world.extra["foreign_session_id"]}
    return {"session_id": world.extra["sessions"].get(who, 0)}


def token(world: World, side: str, who: str) -> dict[str, Any]:
    return {"token": "not-a-valid-token"}


def first_page(world: World, side: str, who: str) -> dict[str, Any]:
    return {**ids("document_id")(world, side, who), "page": 1}


def csv_format(world: World, side: str, who: str) -> dict[str, Any]:
    return {"fmt": "csv"}


NOT_OBJECT_IDS = (None, token, csv_format)


# endpoint -> (declared access, methods, URL parameter builder)
MATRIX: dict[str, tuple[Access, tuple[str, ...], Params | None]] = {
    "static": (PUBLIC, ("GET",), lambda w, s, r: {"filename": "app.css"}),
    "dashboard.healthz": (PUBLIC, ("GET",), None),
    "dashboard.index": (perm(P.DASHBOARD_VIEW), ("GET",), None),
    "auth.login": (PUBLIC, ("GET", "POST"), None),
    "auth.second_factor": (PUBLIC, ("GET", "POST"), None),
    "auth.enrol": (PUBLIC, ("GET", "POST"), None),
    "auth.logout": (SIGNED_IN, ("POST",), None),
    "auth.choose_context": (SIGNED_IN, ("GET",), None),
    "auth.switch_context": (SIGNED_IN, ("POST",), None),
    "auth.invitation": (PUBLIC, ("GET", "POST"), token),
    "auth.forgot_password": (PUBLIC, ("GET", "POST"), None),
    "auth.reset_password": (PUBLIC, ("GET", "POST"), token),
    "account.overview": (SIGNED_IN, ("GET",), None),
    "account.change_password": (SIGNED_IN, ("GET", "POST"), None),
    "account.reset_mfa": (SIGNED_IN, ("GET", "POST"), None),
    "account.reenrol": (SIGNED_IN, ("GET", "POST"), None),
    "account.recovery_codes": (SIGNED_IN, ("GET", "POST"), None),
    "account.end_session": (SIGNED_IN, ("POST",), own_session),
    "people.people": (perm(P.USERS_MANAGE), ("GET", "POST"), None),
    "people.member": (perm(P.USERS_MANAGE), ("GET", "POST"), ids("membership_id")),
    "people.disable": (perm(P.USERS_MANAGE), ("POST",), ids("membership_id")),
    "people.enable": (perm(P.USERS_MANAGE), ("POST",), ids("membership_id")),
    "people.reset_mfa": (perm(P.USERS_MANAGE), ("POST",), ids("membership_id")),
    "people.revoke_invitation": (perm(P.USERS_MANAGE), ("POST",), ids("invitation_id")),
    "people.audit_trail": (perm(P.AUDIT_VIEW), ("GET",), None),
    "people.audit_csv": (perm(P.AUDIT_VIEW), ("GET",), None),
    "people.settings": (perm(P.TENANT_SETTINGS), ("GET", "POST"), None),
    "suppliers.index": (perm(P.SUPPLIERS_VIEW), ("GET",), None),
    "suppliers.create": (perm(P.SUPPLIERS_MANAGE), ("GET", "POST"), None),
    "suppliers.detail": (perm(P.SUPPLIERS_VIEW), ("GET", "POST"), ids("supplier_id")),
    "suppliers.team": (perm(P.SUPPLIER_TEAM_MANAGE), ("GET", "POST"), None),
    "orders.inbox": (perm(P.ORDERS_VIEW), ("GET",), None),
    "orders.arrivals": (perm(P.ORDERS_VIEW), ("GET",), None),
    "orders.queue": (perm(P.ORDERS_MANAGE), ("GET",), None),
    "orders.order_page": (perm(P.ORDERS_VIEW), ("GET",), ids("order_id")),
    "orders.order_pdf": (perm(P.ORDERS_VIEW), ("GET",), ids("order_id")),
    "orders.respond": (perm(P.ORDERS_RESPOND), ("POST",), ids("order_id")),
    "orders.accept_all": (perm(P.ORDERS_RESPOND), ("POST",), ids("order_id")),
    "orders.repromise": (perm(P.ORDERS_RESPOND), ("POST",), ids_of("order_id", "line_id")),
    "orders.ship": (perm(P.ORDERS_RESPOND), ("GET", "POST"), ids("order_id")),
    "orders.cancel_notice": (perm(P.ORDERS_RESPOND), ("POST",), ids_of("order_id", "notice_id")),
    "orders.receive_notice": (perm(P.ORDERS_MANAGE), ("POST",), ids_of("order_id", "notice_id")),
    "orders.message": (perm(P.ORDERS_MESSAGE), ("POST",), ids("order_id")),
    "orders.message_file": (perm(P.ORDERS_VIEW), ("GET",), ids_of("order_id", "message_id", "file_id")),
    "orders.packing_slip": (perm(P.ORDERS_VIEW), ("GET",), ids_of("order_id", "notice_id")),
    "orders.decide": (perm(P.ORDERS_MANAGE), ("POST",), ids("request_id")),
    "orders.bulk_approve": (perm(P.ORDERS_MANAGE), ("POST",), None),
    "orders.import_orders": (perm(P.ORDERS_MANAGE), ("GET", "POST"), None),
    "orders.new_order": (perm(P.ORDERS_MANAGE), ("GET", "POST"), None),
    "orders.import_receipts": (perm(P.ORDERS_MANAGE), ("GET", "POST"), None),
    "orders.exceptions": (perm(P.ORDERS_MANAGE), ("GET",), None),
    "orders.exceptions_csv": (perm(P.ORDERS_MANAGE), ("GET",), None),
    "orders.ask_for_updates": (perm(P.ORDERS_MANAGE), ("POST",), None),
    "orders.tolerances": (perm(P.ORDERS_SETTINGS), ("GET", "POST"), ids("supplier_id")),
    "orders.cancel_line": (perm(P.ORDERS_MANAGE), ("POST",), ids_of("order_id", "line_id")),
    "orders.record_receipt": (perm(P.ORDERS_MANAGE), ("POST",), ids_of("order_id", "line_id")),
    "orders.revise_line": (perm(P.ORDERS_MANAGE), ("POST",), ids_of("order_id", "line_id")),
    "orders.keep_commitment": (perm(P.ORDERS_MANAGE), ("POST",), ids_of("order_id", "line_id")),
    "orders.close": (perm(P.ORDERS_MANAGE), ("POST",), ids("order_id")),
    "orders.remind": (perm(P.ORDERS_MANAGE), ("POST",), ids("order_id")),
    "orders.spreadsheet_download": (perm(P.ORDERS_RESPOND), ("GET",), csv_format),
    "orders.spreadsheet_upload": (perm(P.ORDERS_RESPOND), ("GET", "POST"), None),
    "orders.spreadsheet_apply": (perm(P.ORDERS_RESPOND), ("POST",), None),
    "documents.compliance": (perm(P.DOCUMENTS_UPLOAD), ("GET", "POST"), None),
    "documents.supplier_download": (perm(P.DOCUMENTS_UPLOAD), ("GET",), ids("document_id")),
    "documents.download": (perm(P.DOCUMENTS_REVIEW), ("GET",), ids("document_id")),
    "documents.queue": (perm(P.DOCUMENTS_REVIEW), ("GET",), None),
    "documents.detail": (perm(P.DOCUMENTS_REVIEW), ("GET", "POST"), ids("document_id")),
    "documents.types": (perm(P.DOCUMENTS_REVIEW), ("GET", "POST"), None),
    "documents.override": (perm(P.ORDERS_MANAGE), ("POST",), ids("supplier_id")),
    "documents.dashboard": (perm(P.DOCUMENTS_REVIEW), ("GET",), None),
    "documents.preview": (perm(P.DOCUMENTS_REVIEW), ("GET",), first_page),
    "documents.export": (perm(P.DOCUMENTS_REVIEW), ("GET",), None),
    "documents.gaps": (perm(P.DOCUMENTS_REVIEW), ("GET",), None),
    "documents.gaps_csv": (perm(P.DOCUMENTS_REVIEW), ("GET",), None),
    "documents.request_documents": (perm(P.DOCUMENTS_REVIEW), ("POST",), None),
    "scorecards.own": (perm(P.ORDERS_VIEW), ("GET",), None),
    "scorecards.ranking": (perm(P.SUPPLIERS_VIEW), ("GET",), None),
    "scorecards.supplier": (perm(P.SUPPLIERS_VIEW), ("GET",), ids("supplier_id")),
    "scorecards.definitions": (perm(P.DASHBOARD_VIEW), ("GET",), None),
    "scorecards.own_csv": (perm(P.ORDERS_VIEW), ("GET",), None),
    "scorecards.own_pdf": (perm(P.ORDERS_VIEW), ("GET",), None),
    "scorecards.ranking_csv": (perm(P.SUPPLIERS_VIEW), ("GET",), None),
    "scorecards.supplier_csv": (perm(P.SUPPLIERS_VIEW), ("GET",), ids("supplier_id")),
    "scorecards.supplier_pdf": (perm(P.SUPPLIERS_VIEW), ("GET",), ids("supplier_id")),
    "scorecards.settings": (perm(P.TENANT_SETTINGS), ("GET", "POST"), None),
    "exports.index": (perm(P.DASHBOARD_VIEW), ("GET",), None),
    "exports.start": (perm(P.DASHBOARD_VIEW), ("POST",), None),
    # Exports belong to the person who asked: everyone else (and every other tenant) gets 404.
    "exports.show": (perm(P.DASHBOARD_VIEW), ("GET",), ids("export_id")),
    "exports.download": (perm(P.DASHBOARD_VIEW), ("GET",), ids("export_id")),
    "erp.settings": (perm(P.TENANT_SETTINGS), ("GET", "POST"), None),
    "erp.test": (perm(P.TENANT_SETTINGS), ("POST",), None),
    "erp.pull_now": (perm(P.TENANT_SETTINGS), ("POST",), None),
    "erp.jobs": (perm(P.TENANT_SETTINGS), ("GET",), None),
    "erp.retry_job": (perm(P.TENANT_SETTINGS), ("POST",), ids("event_id")),
    "notifications.index": (perm(P.DASHBOARD_VIEW), ("GET",), None),
    "notifications.mark_read": (perm(P.DASHBOARD_VIEW), ("POST",), ids("notification_id")),
    "notifications.mark_all_read": (perm(P.DASHBOARD_VIEW), ("POST",), None),
    "notifications.preferences": (perm(P.DASHBOARD_VIEW), ("GET", "POST"), None),
    "notifications.webhooks": (perm(P.TENANT_SETTINGS), ("GET", "POST"), None),
    "notifications.webhook_log": (perm(P.TENANT_SETTINGS), ("GET",), ids("webhook_id")),
    "notifications.delete_webhook": (perm(P.TENANT_SETTINGS), ("POST",), ids("webhook_id")),
    "api_keys.keys": (perm(P.ORDERS_RESPOND), ("GET", "POST"), None),
    # Keys belong to the person who issued them: everyone else (and every other tenant) gets 404.
    "api_keys.revoke": (perm(P.ORDERS_RESPOND), ("POST",), ids("key_id")),
    "api_keys.add_webhook": (perm(P.SUPPLIER_TEAM_MANAGE), ("POST",), None),
    "api_keys.webhook_log": (
        perm(P.SUPPLIER_TEAM_MANAGE),
        ("GET",),
        lambda w, s, r: {"webhook_id": (w.own if s == "own" else w.foreign)["supplier_webhook_id"]},
    ),
    # A supplier account's webhooks: another supplier's (or the tenant's own) id answers 404.
    "api_keys.delete_webhook": (
        perm(P.SUPPLIER_TEAM_MANAGE),
        ("POST",),
        lambda w, s, r: {"webhook_id": (w.own if s == "own" else w.foreign)["supplier_webhook_id"]},
    ),
    # A supplier's connected systems, cut off by the tenant's administrators.
    "api_keys.revoke_for_supplier": (perm(P.SUPPLIERS_MANAGE), ("POST",), ids_of("supplier_id", "key_id")),
    "api_keys.remove_supplier_webhook": (
        perm(P.SUPPLIERS_MANAGE),
        ("POST",),
        lambda w, s, r: {
            "supplier_id": (w.own if s == "own" else w.foreign)["supplier_id"],
            "webhook_id": (w.own if s == "own" else w.foreign)["supplier_webhook_id"],
        },
    ),
    "api.openapi": (PUBLIC, ("GET",), None),
    "api.me": (key(P.ORDERS_VIEW), ("GET",), None),
    "api.list_orders": (key(P.ORDERS_VIEW), ("GET",), None),
    "api.get_order": (key(P.ORDERS_VIEW), ("GET",), ids("order_id")),
    "api.answer": (key(P.ORDERS_RESPOND), ("POST",), ids("order_id")),
    "api.accept_all": (key(P.ORDERS_RESPOND), ("POST",), ids("order_id")),
    "api.change_promise": (key(P.ORDERS_RESPOND), ("POST",), ids_of("order_id", "line_id")),
    "api.ship_notice": (key(P.ORDERS_RESPOND), ("POST",), ids("order_id")),
    "api.cancel_ship_notice": (key(P.ORDERS_RESPOND), ("POST",), ids_of("order_id", "notice_id")),
    "api.messages": (key(P.ORDERS_MESSAGE), ("GET", "POST"), ids("order_id")),
    "api.message_file": (key(P.ORDERS_MESSAGE), ("GET",), ids_of("order_id", "message_id", "file_id")),
    "api.packing_slip": (key(P.ORDERS_VIEW), ("GET",), ids_of("order_id", "notice_id")),
    "api.compliance": (key(P.DOCUMENTS_UPLOAD), ("GET",), None),
    "api.list_documents": (key(P.DOCUMENTS_UPLOAD), ("GET",), None),
    "api.upload_document": (key(P.DOCUMENTS_UPLOAD), ("POST",), None),
    "api.get_document": (key(P.DOCUMENTS_UPLOAD), ("GET",), ids("document_id")),
    "api.document_file": (key(P.DOCUMENTS_UPLOAD), ("GET",), ids("document_id")),
    # Registered only in demo mode with the database mail backend (never in production).
    "devmail.mailbox": (PUBLIC, ("GET",), None),
}

# POSTs that need more than their declared permission (checked inside the view).
EXTRA_POST_PERMISSION = {"suppliers.detail": P.SUPPLIERS_MANAGE}

ROLES = [r.value for r in Role]

# Their success is a redirect to the sign-in page (the session ends), so for them
# only a 403 counts as refused once signed in.
SUCCESS_GOES_TO_LOGIN = {"auth.logout", "account.end_session"}


def _order_with_notice_and_request(session, tenant, supplier) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """An order with a confirmed line that has a ship notice, and a line with an open change request."""
    order = make_order(session, tenant, supplier)
    first, second = svc.order_lines(session, order)
    actor = Actor(None, "matrix", "")
    svc.respond(
        session,
        order=order,
        expected_version=None,
        actor=actor,
        answers=[LineAnswer(first.id, "accept"), LineAnswer(second.id, "reject", reason_code="other")],
    )
    notice = svc.create_ship_notice(
        session,
        order=order,
        quantities={first.id: Decimal("1")},
        shipment=svc.ShipmentInput(order.order_date, order.order_date),
        expected_version=None,
        actor=actor,
    )
    request = session.execute(select(ChangeRequest).where(ChangeRequest.line_id == second.id)).scalar_one()
    document = _document(session, tenant, supplier)
    message, attached = _message_with_file(session, order)
    return {
        "order_id": order.id,
        "message_id": message,
        "file_id": attached,
        "line_id": first.id,
        "notice_id": notice.id,
        "request_id": request.id,
        "document_id": document,
        "supplier_webhook_id": _supplier_webhook(session, tenant, supplier),
        **_worker_objects(session, tenant),
    }


def _message_with_file(session, order) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    from portal.orders.models import OrderMessage, OrderMessageFile

    message = OrderMessage(tenant_id=order.tenant_id, order_id=order.id, author="matrix", from_supplier=False,
                           body="See the drawing")  # fmt: skip
    session.add(message)
    session.flush()
    attached = OrderMessageFile(tenant_id=order.tenant_id, order_id=order.id, message_id=message.id,
                                storage_key=f"matrixmessage{message.id}", original_name="drawing.pdf", size=3,
                                content_type="application/pdf", sha256="0" * 64)  # fmt: skip
    session.add(attached)
    session.flush()
    return message.id, attached.id


def _supplier_webhook(session, tenant, supplier) -> int:  # type: ignore[no-untyped-def]
    from portal.notifications.models import Webhook

    url = "https://erp.acme.example/in"
    hook = Webhook(tenant_id=tenant.id, supplier_id=supplier.id, url=url, secret_encrypted="x", topics=[])
    session.add(hook)
    session.flush()
    return int(hook.id)


def _worker_objects(session, tenant) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """A failed background job, a webhook and a notification (of the tenant's first member)."""
    from portal.auth.models import Membership
    from portal.notifications.models import Notification, Webhook
    from portal.outbox import OutboxEvent

    event = OutboxEvent(tenant_id=tenant.id, topic="erp.sync_line", payload={"line_id": 0}, failed_at=utcnow())
    hook = Webhook(tenant_id=tenant.id, url="https://hooks.example.org/in", secret_encrypted="x", topics=[])
    session.add_all([event, hook])
    owner = session.execute(select(Membership.user_id).where(Membership.tenant_id == tenant.id)).scalars().first()
    notification = Notification(tenant_id=tenant.id, user_id=owner, topic="order.created", title="New order")
    from portal.exports.models import Export, ExportState

    export = Export(tenant_id=tenant.id, user_id=owner, kind="scorecards.ranking_csv", title="Ranking", params={},
                    state=ExportState.DONE, content=b"a,b\n", filename="r.csv", content_type="text/csv")  # fmt: skip
    session.add_all([notification, export])
    session.flush()
    return {"event_id": event.id, "webhook_id": hook.id, "notification_id": notification.id, "export_id": export.id}


def _document(session, tenant, supplier) -> int:  # type: ignore[no-untyped-def]
    from portal.documents.models import Document, DocumentType

    doc_type = DocumentType(tenant_id=tenant.id, code=f"T{tenant.id}", name="ISO 9001")
    session.add(doc_type)
    session.flush()
    document = Document(
        tenant_id=tenant.id,
        supplier_id=supplier.id,
        document_type_id=doc_type.id,
        title="Cert",
        storage_key=f"matrix{tenant.id}x{supplier.id}",
        original_name="c.pdf",
        size=3,
        content_type="application/pdf",
        sha256="0" * 64,
    )
    session.add(document)
    session.flush()
    return document.id


def _key_id(session, secret_key: str) -> int:  # type: ignore[no-untyped-def]
    set_context(session, tenant_id=int(secret_key.split("_")[1]))
    return session.execute(select(ApiKey.id).where(ApiKey.token_hash == api._digest(secret_key))).scalar_one()


@pytest.fixture
def world(session) -> World:
    tenant = make_tenant(session, "Own Distributor")
    supplier = make_supplier(session, tenant)
    people = {}
    for role in Role:
        people[role.value] = make_member(session, tenant, role, supplier=supplier if role.is_supplier_role else None)
    target = make_member(session, tenant, Role.VIEWER)  # the object of membership routes
    invite = Invitation(
        tenant_id=tenant.id,
        email="own-invitee@example.org",
        role=Role.BUYER,
        nonce="n" * 43,
        expires_at=utcnow().replace(year=utcnow().year + 1),
    )
    session.add(invite)
    other = make_tenant(session, "Foreign Distributor")
    other_supplier = make_supplier(session, other)
    other_member = make_member(session, other, Role.BUYER)
    other_invite = Invitation(
        tenant_id=other.id,
        email="foreign-invitee@example.org",
        role=Role.BUYER,
        nonce="m" * 43,
        expires_at=utcnow().replace(year=utcnow().year + 1),
    )
    session.add(other_invite)
    session.flush()
    own_order = _order_with_notice_and_request(session, tenant, supplier)
    foreign_order = _order_with_notice_and_request(session, other, other_supplier)
    # A supplier user of another supplier account in the same tenant.
    neighbour = make_member(session, tenant, Role.SUPPLIER_USER, supplier=make_supplier(session, tenant))
    people["neighbour_supplier_user"] = neighbour
    # API keys: one for each supplier person (and the neighbour), one of the foreign tenant's supplier.
    suppliers_people = (Role.SUPPLIER_ADMIN.value, Role.SUPPLIER_USER.value)
    api_keys = {who: issue_api_key(session, people[who]) for who in suppliers_people}
    neighbour_key = issue_api_key(session, neighbour)
    foreign_key = issue_api_key(session, make_member(session, other, Role.SUPPLIER_USER, supplier=other_supplier))
    own_key_id, foreign_key_id = (_key_id(session, secret) for secret in (api_keys["supplier_admin"], foreign_key))
    foreign_session = sessions.start_session(session, other_member.user, ip="", user_agent="", auth_method="totp")
    assert foreign_session
    set_context(session, tenant_id=None)
    return World(
        people=people,
        own={
            "membership_id": target.membership.id,
            "invitation_id": invite.id,
            "supplier_id": supplier.id,
            **own_order,
            "key_id": own_key_id,
        },
        foreign={
            "membership_id": other_member.membership.id,
            "invitation_id": other_invite.id,
            "supplier_id": other_supplier.id,
            **foreign_order,
            "key_id": foreign_key_id,
        },
        extra={
            "sessions": {},
            "foreign_session_id": other_member.user.session_record.id,
            "api_keys": api_keys,
            "neighbour_api_key": neighbour_key,
        },
    )


def sign_in_as(app: Flask, session, world: World, role: str):  # type: ignore[no-untyped-def]
    """A client whose cookie carries a fresh session of ``role``'s person (no form round trip)."""
    person = world.people[role]
    client = app.test_client()
    token_value = sessions.start_session(session, person.user, ip="127.0.0.1", user_agent="test", auth_method="totp")
    session.flush()
    world.extra["sessions"][role] = person.user.session_record.id
    with client.session_transaction() as cookie:
        cookie["_user_id"] = token_value
        cookie["_fresh"] = True
        cookie[CONTEXT_SESSION_KEY] = [person.membership.id, person.membership.tenant_id]
    return client


def csrf_for(client) -> str:  # type: ignore[no-untyped-def]
    page = client.get("/account")
    if page.status_code != 200:
        page = client.get("/login")
    return csrf_from(page.text)


def url(app: Flask, endpoint: str, world: World, side: str, who: str) -> str:
    params = MATRIX[endpoint][2]
    kwargs = params(world, side, who) if params else {}
    with app.test_request_context():
        from flask import url_for

        return url_for(endpoint, **kwargs)


def test_every_route_is_in_the_matrix(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    missing = endpoints - MATRIX.keys()
    assert not missing, f"routes missing from the access matrix: {sorted(missing)}"


@pytest.mark.parametrize("endpoint", sorted(k for k in MATRIX if k != "devmail.mailbox"))
def test_route_declares_the_matrix_access(app, endpoint):
    declared = view_access(app.view_functions[endpoint])
    assert declared == MATRIX[endpoint][0]
    methods = {m for rule in app.url_map.iter_rules() if rule.endpoint == endpoint for m in rule.methods or ()}
    assert methods - {"HEAD", "OPTIONS"} == set(MATRIX[endpoint][1])


def expected_allowed(access: Access, role: str | None, endpoint: str, method: str) -> bool:
    if access.kind == "public":
        return True
    if role is None:
        return False
    if access.kind == "signed_in":
        return True
    needed = {access.permission}
    if method == "POST" and endpoint in EXTRA_POST_PERMISSION:
        needed.add(EXTRA_POST_PERMISSION[endpoint])
    return needed <= ROLE_PERMISSIONS[Role(role)]


# The supplier API's routes: signed in with a key, not a cookie (their own tests below).
API_ROUTES = sorted(k for k, v in MATRIX.items() if v[0].kind == "api_key")
BROWSER_ROUTES = sorted(k for k in MATRIX if k not in API_ROUTES)


@pytest.mark.parametrize("endpoint", sorted(k for k in BROWSER_ROUTES if k not in ("devmail.mailbox", "static")))
def test_each_role_gets_what_the_matrix_says(app, session, world, endpoint):
    access, methods, _ = MATRIX[endpoint]
    for who in [None, *ROLES]:
        for method in methods:
            client = sign_in_as(app, session, world, who) if who else app.test_client()
            target = url(app, endpoint, world, "own", who or "")
            response = request_as(client, method, target)
            location = response.headers.get("Location", "")
            to_login = response.status_code == 302 and location.startswith("/login")
            # A public page may itself send you to sign in (no sign-in under way); only 403 refuses it.
            login_counts = access.kind != "public" and not (who and endpoint in SUCCESS_GOES_TO_LOGIN)
            refused = response.status_code == 403 or (to_login and login_counts)
            allowed = expected_allowed(access, who, endpoint, method)
            assert refused != allowed, f"{method} {target} as {who or 'anonymous'}: {response.status_code} {location}"
            if who is None and not allowed:
                assert location.startswith("/login"), f"anonymous {method} {target} should go to sign-in"


# Routes that take the id of a tenant-owned (or person-owned) object.
OBJECT_ROUTES = sorted(k for k in BROWSER_ROUTES if MATRIX[k][2] not in NOT_OBJECT_IDS and k != "static")


def request_as(client, method: str, target: str):  # type: ignore[no-untyped-def]
    if method == "GET":
        return client.get(target)
    return client.post(target, data={"csrf_token": csrf_for(client)})


def role_allowed(endpoint: str) -> str:
    """A role that passes the route's permission check, so only the ids decide."""
    access = MATRIX[endpoint][0]
    if access.kind != "permission":
        return Role.TENANT_ADMIN.value
    for role in (Role.TENANT_ADMIN, Role.SUPPLIER_ADMIN, Role.BUYER):
        if expected_allowed(access, role.value, endpoint, "POST"):
            return role.value
    raise AssertionError(f"no role may use {endpoint}")


# Order routes a supplier user may use at all: for another supplier's orders they must answer 404.
SUPPLIER_SCOPED = sorted(
    k
    for k in OBJECT_ROUTES
    if k.startswith("orders.") and expected_allowed(MATRIX[k][0], Role.SUPPLIER_USER.value, k, "POST")
)


@pytest.mark.parametrize("endpoint", SUPPLIER_SCOPED)
def test_another_supplier_of_the_same_tenant_gets_404(app, session, world, endpoint):
    for method in MATRIX[endpoint][1]:
        client = sign_in_as(app, session, world, "neighbour_supplier_user")
        target = url(app, endpoint, world, "own", "neighbour_supplier_user")
        response = request_as(client, method, target)
        assert response.status_code == 404, f"{method} {target}: {response.status_code}"


@pytest.mark.parametrize("endpoint", OBJECT_ROUTES)
def test_another_tenants_ids_answer_404(app, session, world, endpoint):
    role = role_allowed(endpoint)
    for method in MATRIX[endpoint][1]:
        client = sign_in_as(app, session, world, role)
        target = url(app, endpoint, world, "foreign", role)
        response = request_as(client, method, target)
        assert response.status_code == 404, f"{method} {target}: {response.status_code}"


@pytest.mark.parametrize("endpoint", sorted(k for k in BROWSER_ROUTES if "POST" in MATRIX[k][1]))
def test_post_without_csrf_token_is_refused(app, session, world, endpoint):
    role = role_allowed(endpoint)
    client = sign_in_as(app, session, world, role)
    response = client.post(url(app, endpoint, world, "own", role), data={})
    assert response.status_code == 400
    assert "The request could not be understood" in response.text


@pytest.mark.parametrize("who", [None, Role.TENANT_ADMIN.value, Role.SUPPLIER_USER.value])
def test_security_headers_on_every_get_route(app, session, world, who):
    for endpoint, (_, methods, _) in MATRIX.items():
        if "GET" not in methods or endpoint == "devmail.mailbox":
            continue
        client = sign_in_as(app, session, world, who) if who else app.test_client()
        response = client.get(url(app, endpoint, world, "own", who or ""))
        headers = response.headers
        assert "default-src 'self'" in headers["Content-Security-Policy"], endpoint
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert "'unsafe-inline'" not in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
        assert headers["Referrer-Policy"]
        if endpoint != "static":
            assert headers["Cache-Control"] == "no-store", endpoint


def test_error_pages_carry_headers_and_no_internals(app, session, world):
    client = sign_in_as(app, session, world, Role.BUYER.value)
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Traceback" not in response.text and "Not found" in response.text


def api_request(client, method: str, target: str, secret_key: str | None = None):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {secret_key}"} if secret_key else {}
    if method == "GET":
        return client.get(target, headers=headers)
    return client.post(target, json={"version": 0, "answers": []}, headers=headers)


@pytest.mark.parametrize("endpoint", API_ROUTES)
def test_api_routes_need_a_key_whose_role_has_the_permission(app, session, world, endpoint):
    access, methods, _ = MATRIX[endpoint]
    for method in methods:
        target = url(app, endpoint, world, "own", "")
        nobody = api_request(app.test_client(), method, target)
        assert nobody.status_code == 401 and nobody.is_json, f"{method} {target} without a key"
        for role in ROLES:
            # A browser's session is no key, whoever is signed in: no cookie ever reaches the API.
            browser = sign_in_as(app, session, world, role)
            assert api_request(browser, method, target).status_code == 401, f"{method} {target} as {role}'s cookie"
        for role, secret_key in world.extra["api_keys"].items():
            response = api_request(app.test_client(), method, target, secret_key)
            allowed = access.permission in ROLE_PERMISSIONS[Role(role)]
            assert response.status_code not in (401, 404), f"{method} {target} with {role}'s key"
            assert (response.status_code == 403) != allowed, f"{method} {target} with {role}'s key"


API_OBJECT_ROUTES = sorted(k for k in API_ROUTES if MATRIX[k][2] not in NOT_OBJECT_IDS)


@pytest.mark.parametrize("endpoint", API_OBJECT_ROUTES)
def test_api_keys_reach_only_their_own_supplier_accounts_ids(app, session, world, endpoint):
    for method in MATRIX[endpoint][1]:
        foreign = url(app, endpoint, world, "foreign", "")
        response = api_request(app.test_client(), method, foreign, world.extra["api_keys"]["supplier_admin"])
        assert response.status_code == 404 and response.is_json, f"{method} {foreign}: {response.status_code}"
        own = url(app, endpoint, world, "own", "")
        response = api_request(app.test_client(), method, own, world.extra["neighbour_api_key"])
        assert response.status_code == 404, f"{method} {own} with another supplier's key: {response.status_code}"


def test_ids_beyond_the_tables_range_are_nobodys(app, session, world):
    """A BIGINT holds ids up to 2**63 - 1: one beyond is no row of anyone's (404), never a database error."""
    too_big = 2**63
    browser = sign_in_as(app, session, world, Role.BUYER.value)
    assert browser.get(f"/orders/{too_big}").status_code == 404
    assert browser.get(f"/orders/{2**63 - 1}").status_code == 404  # the largest id still reaches the view
    response = api_request(
        app.test_client(), "GET", f"/api/v1/orders/{too_big}", world.extra["api_keys"]["supplier_user"]
    )
    assert response.status_code == 404 and response.is_json
