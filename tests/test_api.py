"""The supplier API: keys issued in the browser, orders read and answered as JSON with them, under the same
rules as the order page (tolerances, versions, document gating), and refused cleanly otherwise."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from portal.api import services as api
from portal.api.models import ApiKey, IdempotentWrite
from portal.audit import AuditEvent
from portal.auth.models import Membership
from portal.auth.permissions import Role
from portal.auth.services import Actor, ServiceError
from portal.db import set_context, utcnow
from portal.notifications import services as notification_services
from portal.notifications.services import create_webhook
from portal.orders import services as svc
from portal.orders.models import CommitmentEntry, LineState, OrderState, PurchaseOrder, PurchaseOrderLine, Source
from portal.outbox import OutboxEvent
from portal.suppliers.models import Supplier
from portal.tenancy.models import DocumentGating, Tenant
from tests.factories import (
    PASSWORD,
    Person,
    issue_api_key,
    make_member,
    make_order,
    make_supplier,
    make_tenant,
    make_tolerance,
    require_document,
)
from tests.helpers import PortalClient, csrf_from
from tests.test_orders_views import count_queries


@dataclass
class Trade:
    session: Any
    tenant: Tenant
    order: PurchaseOrder
    lines: list[PurchaseOrderLine]
    seller: Person
    key: str
    http: Any

    def get(self, path: str, key: str | None = None) -> Any:
        return self.http.get(f"/api/v1{path}", headers={"Authorization": f"Bearer {key or self.key}"})

    def post(self, path: str, body: Any, key: str | None = None) -> Any:
        return self.http.post(f"/api/v1{path}", json=body, headers={"Authorization": f"Bearer {key or self.key}"})

    def ledger(self) -> list[CommitmentEntry]:
        set_context(self.session, tenant_id=self.tenant.id)
        self.session.expire_all()
        return list(
            self.session.execute(
                select(CommitmentEntry).where(CommitmentEntry.order_id == self.order.id).order_by(CommitmentEntry.id)
            ).scalars()
        )

    def version(self) -> int:
        set_context(self.session, tenant_id=self.tenant.id)
        self.session.expire_all()
        return self.session.get(PurchaseOrder, self.order.id).version


@pytest.fixture
def trade(app, session) -> Trade:
    tenant = make_tenant(session, "Northwind API")
    supplier = make_supplier(session, tenant, "Acme API")
    make_tolerance(session, tenant)
    order = make_order(session, tenant, supplier, [("100", "2.50", 14), ("40", "10.00", 21), ("12", "4.00", 10)])
    seller = make_member(session, tenant, Role.SUPPLIER_USER, supplier=supplier)
    key = issue_api_key(session, seller)
    lines = svc.order_lines(session, order)
    set_context(session, tenant_id=None)
    return Trade(session, tenant, order, lines, seller, key, app.test_client())


def test_a_supplier_system_reads_its_orders_and_answers_line_by_line(trade):
    order, (first, second, third) = trade.order, trade.lines
    me = trade.get("/me")
    assert me.status_code == 200 and me.json["supplier"] == "Acme API" and me.json["key"] == "ERP link"
    listed = trade.get("/orders?state=needs_response")
    assert listed.status_code == 200
    assert [o["number"] for o in listed.json["orders"]] == [order.number]
    assert listed.json["counts"]["needs_response"] == 1 and listed.json["orders"][0]["total_value"] == "698"
    assert trade.get("/orders?state=open").json["orders"] == []
    document = trade.get(f"/orders/{order.id}").json
    assert document["version"] == 1 and [line["id"] for line in document["lines"]] == [first.id, second.id, third.id]
    assert document["lines"][0]["quantity"] == "100" and document["lines"][0]["deliveries"] == []
    split = [
        {"quantity": "60", "date": first.requested_date.isoformat()},
        {"quantity": "40", "date": (first.requested_date + timedelta(days=2)).isoformat()},
    ]
    answered = trade.post(
        f"/orders/{order.id}/answers",
        {
            "version": document["version"],
            "answers": [
                {"line_id": first.id, "action": "change", "deliveries": split, "comment": "two trucks"},
                {"line_id": second.id, "action": "accept", "price": "10.00"},  # the ordered price: no price change
                {"line_id": third.id, "action": "reject", "reason": "discontinued", "comment": "use P-004"},
            ],
        },
    )
    assert answered.status_code == 200, answered.json
    assert answered.json["confirmed"] == [first.id, second.id] and answered.json["pending"] == [third.id]
    lines = {line["id"]: line for line in answered.json["order"]["lines"]}
    assert lines[first.id]["deliveries"] == split and lines[first.id]["state"] == LineState.CONFIRMED.value
    assert lines[third.id]["state"] == LineState.CHANGES_PENDING.value
    assert answered.json["order"]["version"] == 2
    # The ledger says where the answers came from, and who, with which key.
    entries = trade.ledger()
    assert [(e.line_id, e.kind, e.source) for e in entries] == [
        (first.id, "promised", Source.API),
        (second.id, "accepted", Source.API),
    ]
    assert entries[0].actor_user_id == trade.seller.user.id and "API key “ERP link”" in entries[0].actor
    audit = trade.session.execute(
        select(AuditEvent.actor, AuditEvent.action).where(AuditEvent.action == "change_request.created")
    ).all()
    assert audit == [(entries[0].actor, "change_request.created")]
    assert trade.session.execute(select(ApiKey.last_used_at)).scalar_one() is not None


def test_accept_all_by_api(trade):
    response = trade.post(f"/orders/{trade.order.id}/accept-all", {"version": 1})
    assert response.status_code == 200
    assert sorted(response.json["confirmed"]) == sorted(line.id for line in trade.lines)
    assert response.json["order"]["state"] == OrderState.CONFIRMED.value
    assert {e.source for e in trade.ledger()} == {Source.API}
    again = trade.post(f"/orders/{trade.order.id}/accept-all", {"version": 2})
    assert again.status_code == 422 and again.json["error"]["lines"] == {"order": ["No line is waiting for an answer."]}


def changing(deliveries: list[dict[str, str]]) -> dict[str, Any]:
    """A body that changes the order's first line (line_id 0) to ``deliveries``."""
    return {"version": 1, "answers": [{"line_id": 0, "action": "change", "deliveries": deliveries}]}


@pytest.mark.parametrize(
    ("body", "status", "where", "says"),
    [
        ("not json", 400, None, "Send a JSON object"),
        ({"version": 1}, 400, None, "answers must be a list"),
        ({"version": "1", "answers": []}, 400, None, "version must be the order's version"),
        ({"answers": [{"line_id": "L1", "action": "accept"}]}, 422, "order", "give the line_id"),
        ({"version": 1, "answers": [{"line_id": 0, "action": "maybe"}]}, 422, "0", "action must be accept"),
        ({"version": 1, "answers": [{"line_id": 0, "action": "change"}]}, 422, "0", "A change needs deliveries"),
        (changing([{"quantity": "ten", "date": "31.12.2026"}]), 422, "0", "give the date as YYYY-MM-DD"),
        (changing([{"quantity": "ten", "date": "2099-01-01"}]), 422, "0", "give the quantity as a number"),
        ({"version": 1, "answers": [{"line_id": 0, "action": "reject"}]}, 422, "0", "A rejection needs a reason"),
        ({"version": 1, "answers": [{"line_id": 0, "action": "accept", "price": "cheap"}]}, 422, "0", "price as a"),
        (changing([{"quantity": "500", "date": "2099-01-01"}]), 422, "0", "You can commit at most 105 pc"),
        (changing([{"quantity": "1", "date": "2099-01-01"}] * 11), 422, "0", "at most 10 deliveries"),
        ({"version": 1, "answers": [{"line_id": 999999999, "action": "accept"}]}, 422, "order", "not on this order"),
        ({"answers": [{"line_id": 0, "action": "accept"}]}, 422, None, "Give the order's version"),
        ({"version": 1, "answers": []}, 422, "order", "Answer at least one line"),
    ],
)
def test_bad_answers_are_refused_with_their_reasons_and_change_nothing(trade, body, status, where, says):
    def with_line(value: Any) -> Any:  # line_id 0 stands for the order's first line
        if isinstance(value, dict):
            return {k: (trade.lines[0].id if k == "line_id" and v == 0 else with_line(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [with_line(v) for v in value]
        return value

    path = f"/api/v1/orders/{trade.order.id}/answers"
    headers = {"Authorization": f"Bearer {trade.key}"}
    if body == "not json":
        response = trade.http.post(path, data="line 1: yes", headers=headers)
    else:
        response = trade.http.post(path, json=with_line(body), headers=headers)
    assert response.status_code == status, response.json
    error = response.json["error"]
    if where is None:
        assert says in error["message"]
    else:
        key = str(trade.lines[0].id) if where == "0" else where
        assert any(says in problem for problem in error["lines"][key]), error
    assert trade.version() == 1 and trade.ledger() == []


def test_a_stale_version_is_a_conflict_and_a_retry_does_nothing_twice(trade):
    body = {"version": 1, "answers": [{"line_id": trade.lines[0].id, "action": "accept"}]}
    assert trade.post(f"/orders/{trade.order.id}/answers", body).status_code == 200
    retried = trade.post(f"/orders/{trade.order.id}/answers", body)
    assert retried.status_code == 409
    assert retried.json["error"]["current_version"] == 2 and "changed since" in retried.json["error"]["message"]
    assert retried.json["order"]["lines"][0]["state"] == LineState.CONFIRMED.value  # with the current values
    assert len(trade.ledger()) == 1 and trade.version() == 2


def test_document_gating_applies_to_api_answers(trade):
    session = trade.session
    require_document(session, trade.tenant)
    set_context(session, tenant_id=trade.tenant.id)
    session.execute(update(Tenant).where(Tenant.id == trade.tenant.id).values(document_gating=DocumentGating.BLOCK))
    body = {"version": 1, "answers": [{"line_id": trade.lines[0].id, "action": "accept"}]}
    blocked = trade.post(f"/orders/{trade.order.id}/answers", body)
    assert blocked.status_code == 422 and "ISO 9001 (missing)" in blocked.json["error"]["message"]
    assert trade.ledger() == []
    session.execute(update(Tenant).where(Tenant.id == trade.tenant.id).values(document_gating=DocumentGating.WARN))
    warned = trade.post(f"/orders/{trade.order.id}/answers", body)
    assert warned.status_code == 200 and "ISO 9001 (missing)" in warned.json["warnings"][0]


def test_keys_that_do_not_let_anyone_in(trade, app):
    session, path = trade.session, f"/orders/{trade.order.id}"
    no_key = trade.http.get(f"/api/v1{path}")
    assert no_key.status_code == 401 and no_key.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Set-Cookie" not in no_key.headers
    assert trade.get(path, key="not-a-key").status_code == 401
    # The right secret under another tenant's number finds nothing (the lookup runs under that tenant's RLS).
    other = make_tenant(session, "Other API")
    _, _, secret = trade.key.split("_", 2)
    assert trade.get(path, key=f"spk_{other.id}_{secret}").status_code == 401
    assert trade.get(path).status_code == 200
    # A browser signed in as the same person, without a key: the API reads no cookie.
    browser = PortalClient(app.test_client())
    browser.sign_in(trade.seller.email, PASSWORD, trade.seller.secret)
    assert browser.get(f"/api/v1{path}").status_code == 401
    assert browser.client.post(f"/api/v1{path}/accept-all", json={"version": 1}).status_code == 401
    set_context(session, tenant_id=trade.tenant.id)
    expired = issue_api_key(session, trade.seller, "old")
    session.execute(update(ApiKey).where(ApiKey.name == "old").values(expires_at=utcnow() - timedelta(seconds=1)))
    assert trade.get(path, key=expired).status_code == 401
    session.execute(update(ApiKey).where(ApiKey.name == "ERP link").values(revoked_at=utcnow()))
    assert trade.get(path).status_code == 401
    other_key = issue_api_key(session, trade.seller, "second")
    assert trade.get(path, key=other_key).status_code == 200
    set_context(session, tenant_id=trade.tenant.id)
    session.execute(update(Membership).where(Membership.id == trade.seller.membership.id).values(disabled_at=utcnow()))
    assert trade.get(path, key=other_key).status_code == 401
    assert trade.ledger() == []


def test_a_key_reaches_only_its_own_supplier_account(trade):
    session = trade.session
    neighbour = make_supplier(session, trade.tenant, "Neighbour API")
    theirs = make_order(session, trade.tenant, neighbour)
    foreign_tenant = make_tenant(session, "Foreign API")
    foreign = make_order(session, foreign_tenant, make_supplier(session, foreign_tenant))
    for order in (theirs, foreign):
        assert trade.get(f"/orders/{order.id}").status_code == 404
        refused = trade.post(f"/orders/{order.id}/accept-all", {"version": 1})
        assert refused.status_code == 404 and "no access" in refused.json["error"]["message"]
    assert trade.order.number in str(trade.get("/orders?state=all").json)
    assert theirs.number not in str(trade.get("/orders?state=all").json)
    set_context(session, tenant_id=trade.tenant.id)
    assert session.get(PurchaseOrder, theirs.id).version == 1


def test_invalid_keys_are_rate_limited_per_address(trade):
    for _ in range(30):
        assert trade.get("/me", key="spk_1_" + "x" * 43).status_code == 401
    limited = trade.get("/me", key="not-a-key")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert "invalid key" in limited.json["error"]["message"]
    assert trade.get("/me").status_code == 200  # a valid key is not held up by the address's failures


def test_keys_are_for_supplier_people_only_and_limited(session):
    tenant = make_tenant(session)
    buyer = make_member(session, tenant, Role.BUYER)
    with pytest.raises(ServiceError, match="for supplier accounts"):
        issue_api_key(session, buyer)
    seller = make_member(session, tenant, Role.SUPPLIER_ADMIN, supplier=make_supplier(session, tenant))
    with pytest.raises(ServiceError, match="how long"):
        issue_api_key(session, seller, days=3650)
    keys = [issue_api_key(session, seller, f"key {n}") for n in range(api.MAX_KEYS)]
    assert len(set(keys)) == api.MAX_KEYS and all(k.startswith(f"spk_{tenant.id}_") for k in keys)
    with pytest.raises(ServiceError, match="revoke one"):
        issue_api_key(session, seller, "one too many")
    # Only the digest is stored.
    stored = session.execute(select(ApiKey.token_hash, ApiKey.hint)).all()
    assert all(key not in {h for h, _ in stored} for key in keys) and all(len(h) == 64 for h, _ in stored)


def _post_form(client: PortalClient, page: str, action: str, data: dict[str, str]) -> Any:
    return client.post(action, {"csrf_token": csrf_from(client.get(page).text), **data})


def test_a_supplier_issues_and_revokes_a_key_in_the_browser(app, session):
    tenant = make_tenant(session, "Northwind Keys")
    supplier = make_supplier(session, tenant, "Acme Keys")
    seller = make_member(session, tenant, Role.SUPPLIER_ADMIN, supplier=supplier)
    browser = PortalClient(app.test_client())
    browser.sign_in(seller.email, PASSWORD, seller.secret)
    assert 'href="/api-keys"' in browser.get("/orders").text
    empty = _post_form(browser, "/api-keys", "/api-keys", {"name": "  ", "days": "90"})
    assert empty.status_code == 422 and "Name the key after the system" in empty.text
    issued = _post_form(browser, "/api-keys", "/api-keys", {"name": "Warehouse system", "days": "30"})
    assert issued.status_code == 201
    secret_key = issued.text.split('data-testid="api-key">')[1].split("<")[0]
    assert secret_key.startswith(f"spk_{tenant.id}_")
    page = browser.get("/api-keys").text
    hint = secret_key[: len(f"spk_{tenant.id}_") + 4]
    assert "Warehouse system" in page and secret_key not in page and f"{hint}…" in page  # shown once
    http = app.test_client()
    me = http.get("/api/v1/me", headers={"Authorization": f"Bearer {secret_key}"})
    assert me.status_code == 200 and me.json["user"] == seller.email and me.json["role"] == "supplier_admin"
    set_context(session, tenant_id=tenant.id)
    key_id = session.execute(select(ApiKey.id).where(ApiKey.name == "Warehouse system")).scalar_one()
    revoked = _post_form(browser, "/api-keys", f"/api-keys/{key_id}/revoke", {})
    assert revoked.status_code == 302 and "revoked" in browser.get("/api-keys").text
    assert http.get("/api/v1/me", headers={"Authorization": f"Bearer {secret_key}"}).status_code == 401
    assert _post_form(browser, "/api-keys", f"/api-keys/{key_id}/revoke", {}).status_code == 302
    actions = session.execute(
        select(AuditEvent.action, func.count()).where(AuditEvent.object_type == "api_key").group_by(AuditEvent.action)
    ).all()
    assert sorted(actions) == [("api_key.issued", 1), ("api_key.revoked", 1)]
    # A colleague in the same supplier account cannot revoke (or see) someone else's key.
    colleague = make_member(session, tenant, Role.SUPPLIER_USER, supplier=supplier)
    other = PortalClient(app.test_client())
    other.sign_in(colleague.email, PASSWORD, colleague.secret)
    assert "Warehouse system" not in other.get("/api-keys").text
    assert _post_form(other, "/api-keys", f"/api-keys/{key_id}/revoke", {}).status_code == 404


def test_reading_orders_issues_a_fixed_number_of_queries(trade):
    session = trade.session
    engine = trade.http.application.extensions["portal.db"].engine
    assert trade.get("/me").status_code == 200  # the key's first use is written (then once a minute at most)
    with count_queries(engine) as few_list:
        assert trade.get("/orders?state=all").status_code == 200
    with count_queries(engine) as few_lines:
        assert trade.get(f"/orders/{trade.order.id}").status_code == 200
    set_context(session, tenant_id=trade.tenant.id)
    acme = session.get(Supplier, trade.order.supplier_id)
    big = make_order(session, trade.tenant, acme, [(str(n + 1), "1", 5 + n) for n in range(20)])
    svc.accept_all(session, order=big, expected_version=None, actor=Actor(None, "t", ""))
    for _ in range(30):
        make_order(session, trade.tenant, acme, [("1", "1", 3)])
    set_context(session, tenant_id=None)
    with count_queries(engine) as many_list:
        listed = trade.get("/orders?state=all")
    with count_queries(engine) as many_lines:
        document = trade.get(f"/orders/{big.id}")
    assert len(listed.json["orders"]) == 32 and len(document.json["lines"]) == 20
    assert all(line["deliveries"] for line in document.json["lines"])
    assert len(many_list) == len(few_list) and len(many_lines) == len(few_lines)


def test_a_ship_notice_tells_what_of_each_line_has_arrived(trade):
    """Goods arrive in part: the notice's line tells how much, and the notice is received once all has."""
    from decimal import Decimal

    from portal.auth.services import Actor

    order, (first, second, _) = trade.order, trade.lines
    assert trade.post(f"/orders/{order.id}/accept-all", {"version": 1}).status_code == 200
    today = date.today().isoformat()
    lines = [{"line_id": first.id, "quantity": "100"}, {"line_id": second.id, "quantity": "40"}]
    shipment = {"version": 2, "ship_date": today, "expected_arrival": today, "lines": lines}
    assert trade.post(f"/orders/{order.id}/ship-notices", shipment).status_code == 200
    set_context(trade.session, tenant_id=trade.tenant.id)
    trade.session.expire_all()
    buyer = Actor(None, "buyer@example.org", "")
    for line, quantity in ((first, "30"), (second, "40")):
        svc.record_receipt(trade.session, order=order, line=line, quantity=Decimal(quantity),
                           received_on=date.today(), actor=buyer)  # fmt: skip
    (notice,) = trade.get(f"/orders/{order.id}").json["ship_notices"]
    assert notice["state"] == "sent" and notice["lines"] == [
        {"line_id": first.id, "quantity": "100", "received_quantity": "30"},
        {"line_id": second.id, "quantity": "40", "received_quantity": "40"},
    ]


def test_after_confirmation_a_system_moves_dates_and_sends_ship_notices(trade):
    import io

    from pypdf import PdfReader

    order, (first, second, _) = trade.order, trade.lines
    assert trade.post(f"/orders/{order.id}/accept-all", {"version": 1}).status_code == 200
    later = (first.requested_date + timedelta(days=2)).isoformat()  # inside the 2 days' tolerance
    promise = {"version": 2, "deliveries": [{"quantity": "100", "date": later}], "reason": "transport"}
    no_reason = trade.post(f"/orders/{order.id}/lines/{first.id}/promise", {**promise, "reason": ""})
    assert no_reason.status_code == 422 and "Give the reason" in no_reason.json["error"]["lines"][str(first.id)][0]
    moved = trade.post(f"/orders/{order.id}/lines/{first.id}/promise", promise)
    assert moved.status_code == 200 and moved.json["confirmed"] == [first.id]
    assert moved.json["order"]["lines"][0]["deliveries"] == [{"quantity": "100", "date": later}]
    much_later = (first.requested_date + timedelta(days=20)).isoformat()
    asked = trade.post(
        f"/orders/{order.id}/lines/{first.id}/promise",
        {"version": 3, "deliveries": [{"quantity": "100", "date": much_later}], "reason": "production_delay"},
    )
    assert asked.status_code == 200 and asked.json["pending"] == [first.id]
    assert [(e.kind, e.source, e.reason_code) for e in trade.ledger()][-1] == ("repromised", Source.API, "transport")
    notice = {
        "version": 4,
        "ship_date": date.today().isoformat(),
        "expected_arrival": (date.today() + timedelta(days=2)).isoformat(),
        "carrier": "DHL",
        "tracking_number": "JD0001",
        "lines": [{"line_id": second.id, "quantity": "40"}],
    }
    over = [{"line_id": second.id, "quantity": "41"}]
    too_much = trade.post(f"/orders/{order.id}/ship-notices", {**notice, "lines": over})
    assert too_much.status_code == 422
    assert "At most 40 pc can ship" in too_much.json["error"]["lines"][str(second.id)][0]
    backwards = trade.post(f"/orders/{order.id}/ship-notices", {**notice, "expected_arrival": "2000-01-01"})
    assert backwards.status_code == 422 and "cannot be before the ship date" in str(backwards.json["error"]["lines"])
    undated = trade.post(f"/orders/{order.id}/ship-notices", {**notice, "ship_date": "soon"})
    assert undated.status_code == 422 and "ship_date as YYYY-MM-DD" in undated.json["error"]["lines"]["order"][0]
    assert trade.version() == 4
    sent = trade.post(f"/orders/{order.id}/ship-notices", notice)
    assert sent.status_code == 200 and sent.json["ship_notice"]["number"] == f"{order.number}-ASN1"
    shipped = {line["id"]: line for line in sent.json["order"]["lines"]}[second.id]
    assert shipped["shipped_quantity"] == "40" and shipped["state"] == LineState.SHIPPED.value
    assert trade.post(f"/orders/{order.id}/ship-notices", notice).status_code == 409  # the retry: nothing twice
    notice_id = sent.json["ship_notice"]["id"]
    assert [(n["id"], n["state"]) for n in sent.json["order"]["ship_notices"]] == [(notice_id, "sent")]
    assert sent.json["order"]["ship_notices"][0]["lines"] == [
        {"line_id": second.id, "quantity": "40", "received_quantity": "0"}
    ]
    # Its packing slip, to print and put in the shipment, as the order page gives it.
    slip_url = sent.json["order"]["ship_notices"][0]["packing_slip_url"]
    assert slip_url == f"/api/v1/orders/{order.id}/ship-notices/{notice_id}/packing-slip"
    slip = trade.http.get(slip_url, headers={"Authorization": f"Bearer {trade.key}"})
    assert slip.status_code == 200 and slip.mimetype == "application/pdf"
    assert f"Ship notice {order.number}-ASN1" in PdfReader(io.BytesIO(slip.data)).pages[0].extract_text()
    assert trade.get(f"/orders/{order.id}/ship-notices/{notice_id + 1}/packing-slip").status_code == 404
    cancelled = trade.post(f"/orders/{order.id}/ship-notices/{notice_id}/cancel", {"version": 5})
    assert cancelled.status_code == 200 and cancelled.json["order"]["ship_notices"][0]["state"] == "cancelled"
    back = {line["id"]: line for line in cancelled.json["order"]["lines"]}[second.id]
    assert back["shipped_quantity"] == "0" and back["state"] == LineState.CONFIRMED.value
    again = trade.post(f"/orders/{order.id}/ship-notices/{notice_id}/cancel", {"version": 6})
    assert again.status_code == 422 and "not been received" in again.json["error"]["message"]
    assert trade.post(f"/orders/{order.id}/ship-notices/999999999/cancel", {"version": 6}).status_code == 404
    assert trade.get(f"/orders/{order.id}/lines/999999999/promise").status_code == 405
    foreign_line = trade.post(f"/orders/{order.id}/lines/999999999/promise", {**promise, "version": 5})
    assert foreign_line.status_code == 404


def test_a_key_is_slowed_down_beyond_its_calls_a_minute(trade, app):
    settings = app.extensions["portal.settings"]
    app.extensions["portal.settings"] = dataclasses.replace(settings, api_calls_per_minute=3)
    try:
        assert [trade.get("/me").status_code for _ in range(3)] == [200, 200, 200]
        limited = trade.get("/me")
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
        assert "with this key" in limited.json["error"]["message"]
    finally:
        app.extensions["portal.settings"] = settings


def test_a_retry_with_its_idempotency_key_gets_the_first_answer_and_writes_nothing_twice(trade):
    first, second = trade.lines[0], trade.lines[1]
    path = f"/api/v1/orders/{trade.order.id}/answers"
    body = {"version": 1, "answers": [{"line_id": first.id, "action": "accept"}]}

    def post(payload: dict[str, Any], key: str) -> Any:
        headers = {"Authorization": f"Bearer {trade.key}", "Idempotency-Key": key}
        return trade.http.post(path, json=payload, headers=headers)

    answered = post(body, "3f1c-answer-1")
    assert answered.status_code == 200 and "Idempotent-Replayed" not in answered.headers
    retried = post(body, "3f1c-answer-1")  # the answer was lost on the way: the client sends it again
    assert retried.status_code == 200 and retried.headers["Idempotent-Replayed"] == "true"
    assert retried.json == answered.json and len(trade.ledger()) == 1 and trade.version() == 2
    # The same key for another request is refused; a new key is a new write (here: a stale version, 409).
    other = {"version": 2, "answers": [{"line_id": second.id, "action": "accept"}]}
    reused = post(other, "3f1c-answer-1")
    assert reused.status_code == 422 and "used for another request" in reused.json["error"]["message"]
    assert post(body, "3f1c-answer-2").status_code == 409
    assert post(other, "3f1c-answer-3").status_code == 200 and len(trade.ledger()) == 2
    assert post(other, "not a key!").status_code == 400
    # A day later the key is free again (its answer is gone): the retry is a new write, refused as stale.
    set_context(trade.session, tenant_id=trade.tenant.id)
    trade.session.execute(update(IdempotentWrite).values(created_at=utcnow() - api.IDEMPOTENCY_WINDOW))
    assert post(body, "3f1c-answer-1").status_code == 409
    # The key's next write takes its expired answers away.
    last = {"version": 3, "answers": [{"line_id": trade.lines[2].id, "action": "accept"}]}
    assert post(last, "3f1c-answer-4").status_code == 200
    set_context(trade.session, tenant_id=trade.tenant.id)
    kept = trade.session.execute(select(IdempotentWrite.idempotency_key)).scalars().all()
    assert kept == ["3f1c-answer-4"]


def test_tenant_administrators_see_and_cut_off_a_suppliers_connected_systems(trade, app):
    session, tenant = trade.session, trade.tenant
    set_context(session, tenant_id=tenant.id)
    supplier_id = trade.order.supplier_id
    with app.app_context():  # the signing secret is encrypted with the app's key
        hook, _ = create_webhook(
            session, tenant_id=tenant.id, supplier_id=supplier_id, url="https://erp.acme.example/in", topics=[],
            description="", actor=Actor(None, "t", ""), allow_private=True,
        )  # fmt: skip
    neighbour = make_supplier(session, tenant, "Neighbour Keys")
    neighbours_key_id = session.execute(
        select(ApiKey.id).where(ApiKey.token_hash == api._digest(issue_api_key(session, make_member(
            session, tenant, Role.SUPPLIER_USER, supplier=neighbour), "Neighbour's ERP")))
    ).scalar_one()  # fmt: skip
    key_id = session.execute(select(ApiKey.id).where(ApiKey.name == "ERP link")).scalar_one()
    admin, buyer = make_member(session, tenant, Role.TENANT_ADMIN), make_member(session, tenant, Role.BUYER)
    set_context(session, tenant_id=None)
    staff = PortalClient(app.test_client())
    staff.sign_in(buyer.email, PASSWORD, buyer.secret)
    assert 'id="connected-systems"' not in staff.get(f"/suppliers/{supplier_id}").text
    staff = PortalClient(app.test_client())
    staff.sign_in(admin.email, PASSWORD, admin.secret)
    page = f"/suppliers/{supplier_id}"
    shown = staff.get(page).text
    assert 'id="connected-systems"' in shown and "ERP link" in shown and trade.seller.email in shown
    assert "erp.acme.example/in" in shown and "Neighbour" not in shown.split('id="connected-systems"')[1]
    # Another supplier's key through this supplier's address: 404, and it still works.
    assert staff.submit(f"{page}/api-keys/{neighbours_key_id}/revoke", {}, page=page).status_code == 404
    assert trade.get("/me").status_code == 200
    assert staff.submit(f"{page}/api-keys/{key_id}/revoke", {}, page=page).status_code == 302
    assert trade.get("/me").status_code == 401
    assert staff.submit(f"{page}/webhooks/{hook.id}/remove", {}, page=page).status_code == 302
    set_context(session, tenant_id=tenant.id)
    assert notification_services.supplier_webhooks(session, tenant.id, supplier_id) == []
    revoked = session.execute(
        select(AuditEvent.actor).where(AuditEvent.action == "api_key.revoked", AuditEvent.object_id == str(key_id))
    ).scalar_one()
    assert revoked == admin.email


def test_a_supplier_system_reads_and_writes_the_orders_messages(trade):
    path = f"/orders/{trade.order.id}/messages"
    assert trade.get(path).json == {"messages": []}
    sent = trade.post(path, {"body": "  Can we ship line 2 a week early?  "})
    assert sent.status_code == 201 and sent.json["message"]["body"] == "Can we ship line 2 a week early?"
    assert sent.json["message"]["from_supplier"] is True and sent.json["message"]["author"] == trade.seller.email
    assert trade.post(path, {"body": "   "}).status_code == 422
    assert trade.post(path, {"body": "x" * 4001}).status_code == 422
    assert trade.post(path, {"text": "hello"}).status_code == 400
    listed = trade.get(path).json["messages"]
    assert [m["body"] for m in listed] == ["Can we ship line 2 a week early?"]
    set_context(trade.session, tenant_id=trade.tenant.id)
    events = trade.session.execute(select(OutboxEvent.payload).where(OutboxEvent.topic == "order.message")).all()
    assert [payload["message_id"] for (payload,) in events] == [listed[0]["id"]]  # the buyers hear of it


def test_a_supplier_system_reads_the_files_a_buyer_attached_to_a_message(trade, app, tmp_path):
    """A buyer's message with a drawing: the API lists the file with the message (name, size, type, address)
    and gives it as sent; another order's path, another message's or another supplier account's key: 404."""
    from pathlib import Path

    from portal.documents.storage import LocalStorage
    from tests.pdfs import CLEAN_PDF, PNG

    app.config["DOCUMENT_ROOT"] = str(tmp_path / "files")
    set_context(trade.session, tenant_id=trade.tenant.id)
    buyer = make_member(trade.session, trade.tenant, Role.BUYER)
    svc.post_message(
        trade.session, order=trade.order, author_id=buyer.user.id, author="Ben", from_supplier=False,
        body="The drawing for line 2", storage=LocalStorage(Path(app.config["DOCUMENT_ROOT"])),
        files=(svc.AttachedFile("drawing-C.pdf", CLEAN_PDF), svc.AttachedFile("detail.png", PNG)),
    )  # fmt: skip
    set_context(trade.session, tenant_id=None)
    path = f"/orders/{trade.order.id}/messages"
    (message,) = trade.get(path).json["messages"]
    files = message["files"]
    assert [(f["name"], f["size"], f["content_type"]) for f in files] == [
        ("drawing-C.pdf", len(CLEAN_PDF), "application/pdf"), ("detail.png", len(PNG), "image/png")
    ]  # fmt: skip
    assert files[0]["url"] == f"/api/v1{path}/{message['id']}/files/{files[0]['id']}"
    got = trade.http.get(files[0]["url"], headers={"Authorization": f"Bearer {trade.key}"})
    assert got.status_code == 200 and got.data == CLEAN_PDF and got.mimetype == "application/pdf"
    assert trade.get(f"{path}/{message['id'] + 1}/files/{files[0]['id']}").status_code == 404
    set_context(trade.session, tenant_id=trade.tenant.id)
    other = make_order(trade.session, trade.tenant, trade.session.get(Supplier, trade.order.supplier_id))
    rival = make_member(trade.session, trade.tenant, Role.SUPPLIER_USER,
                        supplier=make_supplier(trade.session, trade.tenant, "Rival API"))  # fmt: skip
    rival_key = issue_api_key(trade.session, rival)
    set_context(trade.session, tenant_id=None)
    assert trade.get(f"/orders/{other.id}/messages/{message['id']}/files/{files[0]['id']}").status_code == 404
    assert trade.get(f"{path}/{message['id']}/files/{files[0]['id']}", key=rival_key).status_code == 404
    # A message sent as JSON has no files (and says so).
    assert trade.post(path, {"body": "Thanks, received."}).json["message"]["files"] == []


def test_a_supplier_system_sends_files_with_a_message(trade, app, tmp_path):
    """multipart/form-data: the words in 'body' (may be empty) and up to five file parts 'files', under the
    attachments' policy. Any other shape is 400; a refused file is 422 with the file named; nothing of a
    refused message is kept."""
    import io

    from portal.orders.models import OrderMessage
    from tests.office import MACRO_XLSX, XLSX
    from tests.pdfs import CLEAN_PDF, JAVASCRIPT_PDF, PNG

    app.config["DOCUMENT_ROOT"] = str(tmp_path / "files")
    path = f"/api/v1/orders/{trade.order.id}/messages"
    auth = {"Authorization": f"Bearer {trade.key}"}

    def send(data):  # type: ignore[no-untyped-def]
        return trade.http.post(path, data=data, headers=auth, content_type="multipart/form-data")

    def pdf(name: str, content: bytes = CLEAN_PDF):  # type: ignore[no-untyped-def]
        return (io.BytesIO(content), name)

    for data, status, words in (
        ({"body": "x", "note": "y"}, 400, "Unknown part 'note'"),
        ({"body": ["a", "b"]}, 400, "Send body once."),
        ({"body": pdf("body.pdf")}, 400, "Unknown part 'body'"),
        ({"files": pdf("")}, 400, "its file name"),
        ({"body": "Both", "files": [pdf("plan.pdf"), pdf("macro.pdf", JAVASCRIPT_PDF)]}, 422, "macro.pdf: "),
        ({"body": "Six", "files": [pdf(f"p{n}.pdf") for n in range(6)]}, 422, "at most 5 files"),
        ({"body": "  "}, 422, "Write a message or attach a file."),
    ):
        refused = send(data)
        assert refused.status_code == status and words in refused.json["error"]["message"], (data, refused.json)
    assert send({"body": "Both", "files": [pdf("macro.pdf", JAVASCRIPT_PDF)]}).json["error"]["fields"]["files"]
    set_context(trade.session, tenant_id=trade.tenant.id)
    assert trade.session.execute(select(OrderMessage)).first() is None
    assert not (tmp_path / "files").exists() or not any(p.is_file() for p in (tmp_path / "files").rglob("*"))
    set_context(trade.session, tenant_id=None)

    sent = send({"body": "Packing list and a photo", "files": [pdf("packing.pdf"), (io.BytesIO(PNG), "box.png")]})
    assert sent.status_code == 201
    message = sent.json["message"]
    assert message["body"] == "Packing list and a photo" and message["from_supplier"] is True
    assert [(f["name"], f["content_type"]) for f in message["files"]] == [
        ("packing.pdf", "application/pdf"), ("box.png", "image/png")
    ]  # fmt: skip
    assert trade.http.get(message["files"][1]["url"], headers=auth).data == PNG
    alone = send({"files": [pdf("coa.pdf")]})
    assert alone.status_code == 201 and alone.json["message"]["body"] == ""
    # A delivery plan as a spreadsheet, as a supplier's ERP exports it; a macro-enabled one is refused, named.
    macro = send({"files": [(io.BytesIO(MACRO_XLSX), "tools.xlsx")]})
    assert macro.status_code == 422 and "tools.xlsx: The XLSX file contains macros" in macro.json["error"]["message"]
    plan = send({"body": "Delivery plan", "files": [(io.BytesIO(XLSX), "plan.xlsx")]})
    assert plan.status_code == 201 and plan.json["message"]["files"][0]["content_type"] == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert trade.http.get(plan.json["message"]["files"][0]["url"], headers=auth).data == XLSX
    listed = trade.get(f"/orders/{trade.order.id}/messages").json["messages"]
    assert [[f["name"] for f in m["files"]] for m in listed] == [["packing.pdf", "box.png"], ["coa.pdf"], ["plan.xlsx"]]


def test_a_long_address_and_a_long_key_name_still_fit_the_ledger(app, session):
    tenant = make_tenant(session)
    supplier = make_supplier(session, tenant)
    seller = make_member(session, tenant, Role.SUPPLIER_USER, supplier=supplier)
    seller.user.email = f"{'a' * 200}@{'b' * 40}.example"
    order = make_order(session, tenant, supplier)
    key = issue_api_key(session, seller, "K" * 100)
    set_context(session, tenant_id=None)
    answered = app.test_client().post(
        f"/api/v1/orders/{order.id}/accept-all", json={"version": 1}, headers={"Authorization": f"Bearer {key}"}
    )
    assert answered.status_code == 200
    set_context(session, tenant_id=tenant.id)
    actors = session.execute(select(CommitmentEntry.actor).where(CommitmentEntry.order_id == order.id)).scalars()
    assert {len(actor) for actor in actors} == {api.ACTOR_LENGTH}


def test_a_nul_character_in_json_is_refused_and_saves_nothing(trade):
    """Anywhere in the body, a key too: PostgreSQL's text cannot hold it, and no database error may answer."""
    third = trade.lines[2]
    rejected = {"line_id": third.id, "action": "reject", "reason": "other", "comment": "no\x00stock"}
    for path, body in (
        (f"/orders/{trade.order.id}/messages", {"body": "hello\x00there"}),
        (f"/orders/{trade.order.id}/answers", {"version": 1, "answers": [rejected]}),
        (f"/orders/{trade.order.id}/accept-all", {"version": 1, "note\x00": "x"}),
    ):
        response = trade.post(path, body)
        assert response.status_code == 400 and "NUL character" in response.json["error"]["message"], path
    assert trade.get("/orders?q=PO%00").status_code == 400
    assert trade.ledger() == [] and trade.version() == 1


@pytest.mark.parametrize("cut", ["disable", "reset-mfa"])
def test_cutting_a_persons_access_revokes_their_keys_for_good(trade, app, cut):
    """Disabling a person, or resetting their second factor (their sign-in may be someone else's), revokes the
    keys they issued, audited with the reason; enabling them again brings no key back. A colleague's stay."""
    session, tenant = trade.session, trade.tenant
    set_context(session, tenant_id=tenant.id)
    colleague = make_member(
        session, tenant, Role.SUPPLIER_USER, supplier=session.get(Supplier, trade.order.supplier_id)
    )
    colleagues_key = issue_api_key(session, colleague, "Warehouse scanner")
    admin = make_member(session, tenant, Role.TENANT_ADMIN)
    set_context(session, tenant_id=None)
    staff = PortalClient(app.test_client())
    staff.sign_in(admin.email, PASSWORD, admin.secret)
    page = f"/people/{trade.seller.membership.id}"
    prefix = "disable" if cut == "disable" else "reset"
    done = staff.submit(f"{page}/{cut}", {f"{prefix}-reason": "laptop stolen"}, page=page)
    assert done.status_code == 302 and "API keys" in staff.get(page).text
    assert trade.get("/me").status_code == 401
    assert trade.get("/me", key=colleagues_key).status_code == 200
    if cut == "disable":
        assert staff.submit(f"{page}/enable", {"disable-reason": ""}, page=page).status_code == 302
        assert trade.get("/me").status_code == 401  # the access is back, the key is not
    set_context(session, tenant_id=tenant.id)
    reasons = (
        session.execute(
            select(AuditEvent.reason).where(AuditEvent.action == "api_key.revoked", AuditEvent.actor == admin.email)
        )
        .scalars()
        .all()
    )
    expected = "access disabled: laptop stolen" if cut == "disable" else "MFA reset: laptop stolen"
    assert reasons == [expected]
