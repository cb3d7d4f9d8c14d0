"""Notifications: the in-app centre, e-mail to a real SMTP server (immediately and as a
digest grouped by supplier and order), and signed webhooks to a real HTTP receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from flask import url_for
from sqlalchemy import select
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from portal import create_app
from portal.audit import AuditEvent
from portal.auth.permissions import Role
from portal.auth.services import Actor, ServiceError
from portal.db import set_context
from portal.documents.storage import LocalStorage
from portal.formatting import quantity
from portal.notifications import services
from portal.notifications.models import EmailMode, EmailState, Notification, WebhookDelivery
from portal.orders import services as orders
from portal.orders.models import PurchaseOrder
from portal.orders.services import LineAnswer
from portal.outbox import OutboxEvent, emit
from portal.suppliers.models import Supplier
from portal.tenancy.models import Tenant
from tests.conftest import _free_port as free_port
from tests.conftest import _settings, drain, tenant_session
from tests.factories import PASSWORD, make_member, make_order, make_supplier, make_tenant
from tests.helpers import PortalClient
from tests.pdfs import CLEAN_PDF, PNG

ACTOR = Actor(None, "test", "")


@pytest.fixture
def mail_app(tmp_path, committed_db, smtp_inbox):  # type: ignore[no-untyped-def]
    _, port = smtp_inbox
    app = create_app(
        _settings(tmp_path, committed_db.url, MAIL_BACKEND="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=str(port)),
        database=committed_db,
    )
    app.config["TESTING"] = True
    return app


@pytest.fixture
def world(committed_db):  # type: ignore[no-untyped-def]
    """A tenant with two buyers, a supplier with two people, and an order to that supplier."""
    with tenant_session(committed_db, None) as s:
        tenant = make_tenant(s, "Northwind")
        supplier = make_supplier(s, tenant, "Acme Fasteners")
        buyers = [make_member(s, tenant, Role.BUYER) for _ in range(2)]
        viewer = make_member(s, tenant, Role.VIEWER)
        supplier_people = [make_member(s, tenant, Role.SUPPLIER_ADMIN, supplier=supplier)]
        supplier_people.append(make_member(s, tenant, Role.SUPPLIER_USER, supplier=supplier))
        other_supplier = make_supplier(s, tenant, "Bolt & Co")
        outsider = make_member(s, tenant, Role.SUPPLIER_USER, supplier=other_supplier)
        order = make_order(s, tenant, supplier, number="PO-7001")
        return {
            "tenant_id": tenant.id,
            "supplier_id": supplier.id,
            "buyers": buyers,
            "viewer": viewer,
            "supplier_people": supplier_people,
            "outsider": outsider,
            "order_id": order.id,
        }


def _notifications(database, tenant_id: int) -> list[Notification]:  # type: ignore[no-untyped-def]
    with tenant_session(database, tenant_id) as s:
        return list(s.execute(select(Notification).order_by(Notification.id)).scalars())


def test_a_new_order_tells_the_suppliers_people_and_an_answer_tells_the_buyers(
    mail_app, committed_db, world, smtp_inbox
):
    inbox, _ = smtp_inbox
    tenant_id = world["tenant_id"]
    with tenant_session(committed_db, tenant_id) as s:
        emit(s, tenant_id, "order.created", {"order_id": world["order_id"]})
    with mail_app.app_context():
        drain(committed_db, tenant_id)
    supplier_ids = {p.user.id for p in world["supplier_people"]}
    created = _notifications(committed_db, tenant_id)
    assert {n.user_id for n in created} == supplier_ids
    assert all(n.title == "New purchase order PO-7001" and n.url == f"/orders/{world['order_id']}" for n in created)
    # One e-mail each (HTML and text), to real SMTP.
    recipients = sorted(m["To"] for m in inbox.messages)
    assert recipients == sorted(p.email for p in world["supplier_people"])
    message = inbox.messages[0]
    assert message["Subject"] == "New purchase order PO-7001"
    parts = {part.get_content_type(): part.get_payload(decode=True).decode() for part in message.walk()
             if not part.is_multipart()}  # fmt: skip
    assert "http://localhost/orders/" in parts["text/plain"] and "<a href=" in parts["text/html"]
    # Every e-mail says where to change how they come, with a link that leads there.
    with mail_app.test_request_context():
        settings = "http://localhost" + url_for("notifications.preferences")
    assert settings in parts["text/plain"] and f'href="{settings}"' in parts["text/html"]
    assert {n.email_state for n in _notifications(committed_db, tenant_id)} == {EmailState.SENT}

    with mail_app.app_context(), tenant_session(committed_db, tenant_id) as s:
        order = s.execute(select(PurchaseOrder).where(PurchaseOrder.id == world["order_id"])).scalar_one()
        lines = orders.order_lines(s, order)
        orders.respond(s, order=order, expected_version=None, actor=ACTOR,
                       answers=[LineAnswer(line.id, "accept") for line in lines])  # fmt: skip
    with mail_app.app_context():
        drain(committed_db, tenant_id)
    answered = [n for n in _notifications(committed_db, tenant_id) if n.topic == "order.responded"]
    # Buyers hear it; viewers and the supplier's own people do not.
    assert {n.user_id for n in answered} == {b.user.id for b in world["buyers"]}
    assert answered[0].title == "Acme Fasteners answered order PO-7001"
    assert answered[0].body == "2 lines confirmed, 0 waiting for your decision."


def test_email_modes_off_and_digest(mail_app, committed_db, world, smtp_inbox):
    inbox, _ = smtp_inbox
    tenant_id = world["tenant_id"]
    first, second = world["supplier_people"]
    with tenant_session(committed_db, tenant_id) as s:
        services.set_email_mode(s, tenant_id=tenant_id, user_id=first.user.id, mode=EmailMode.OFF)
        services.set_email_mode(s, tenant_id=tenant_id, user_id=second.user.id, mode=EmailMode.DIGEST)
        from portal.tenancy.models import Tenant

        tenant = s.execute(select(Tenant).where(Tenant.id == tenant_id)).scalar_one()
        other = make_order(s, tenant, _supplier(s, world), number="PO-7002")
        emit(s, tenant_id, "order.created", {"order_id": world["order_id"]})
        emit(s, tenant_id, "order.created", {"order_id": other.id})
    with mail_app.app_context():
        drain(committed_db, tenant_id)
    assert inbox.messages == []  # off: nothing; digest: not yet
    states = {(n.user_id, n.email_state) for n in _notifications(committed_db, tenant_id)}
    assert states == {(first.user.id, EmailState.NONE), (second.user.id, EmailState.DIGEST)}

    with mail_app.app_context(), tenant_session(committed_db, tenant_id) as s:
        assert services.queue_digests(s, tenant_id=tenant_id) == 1
    with mail_app.app_context():
        drain(committed_db, tenant_id)
    (digest,) = inbox.messages
    assert digest["To"] == second.email
    assert digest["Subject"] == "Your supplier portal digest: 2 updates"
    text = next(p for p in digest.walk() if p.get_content_type() == "text/plain").get_payload(decode=True).decode()
    assert "== Acme Fasteners" in text
    assert "Order PO-7001" in text and text.count("New purchase order") == 2
    assert "http://localhost/notifications/settings" in text  # where to change it
    # Sent once: a second digest run finds nothing.
    with mail_app.app_context(), tenant_session(committed_db, tenant_id) as s:
        assert services.queue_digests(s, tenant_id=tenant_id) == 0


def _supplier(s, world):  # type: ignore[no-untyped-def]
    from portal.suppliers.models import Supplier

    return s.execute(select(Supplier).where(Supplier.id == world["supplier_id"])).scalar_one()


def test_a_reviewed_document_tells_the_suppliers_people_the_outcome_and_why(mail_app, committed_db, world, tmp_path):
    from portal.documents import services as documents
    from portal.documents.models import DocumentType
    from portal.documents.storage import LocalStorage
    from tests.pdfs import CLEAN_PDF

    tenant_id = world["tenant_id"]
    reviewer = Actor(world["buyers"][0].user.id, "reviewer", "")
    with mail_app.app_context(), tenant_session(committed_db, tenant_id) as s:
        doc_type = DocumentType(tenant_id=tenant_id, code="ISO", name="ISO 9001 certificate")
        s.add(doc_type)
        s.flush()
        storage, supplier_id = LocalStorage(tmp_path), world["supplier_id"]
        uploaded = [
            documents.upload(s, storage, tenant_id=tenant_id, supplier_id=supplier_id, actor=ACTOR,
                             data=documents.UploadInput(doc_type.id, title, "", "", None, None, "iso.pdf", CLEAN_PDF))
            for title in ("ISO 2025", "ISO 2026")
        ]  # fmt: skip
        documents.review(s, document=uploaded[0], decision="approve", comment="", actor=reviewer,
                         valid_until=date.today() + timedelta(days=365))  # fmt: skip
        documents.review(s, document=uploaded[1], decision="reject", comment="The scan is unreadable.",
                         valid_until=None, actor=reviewer)  # fmt: skip
    with mail_app.app_context():
        drain(committed_db, tenant_id)
    reviewed = [n for n in _notifications(committed_db, tenant_id) if n.topic == "document.reviewed"]
    assert {n.user_id for n in reviewed} == {p.user.id for p in world["supplier_people"]}
    told = {(n.title, n.body) for n in reviewed}
    assert told == {
        ("Your document \u201cISO 2025\u201d was approved", ""),
        ("Your document \u201cISO 2026\u201d was rejected", "Comment: The scan is unreadable."),
    }


def test_a_change_request_tells_buyers_what_to_decide_and_its_decision_tells_suppliers(mail_app, committed_db, world):
    from decimal import Decimal

    from portal.orders.models import ChangeRequest

    tenant_id = world["tenant_id"]
    with mail_app.app_context(), tenant_session(committed_db, tenant_id) as s:
        order = s.execute(select(PurchaseOrder).where(PurchaseOrder.id == world["order_id"])).scalar_one()
        second = orders.order_lines(s, order)[1]
        later = orders.Delivery(Decimal(second.quantity), second.requested_date + timedelta(days=20))
        orders.respond(s, order=order, expected_version=None, actor=ACTOR,
                       answers=[LineAnswer(second.id, "change", (later,))])  # fmt: skip
        request = s.execute(select(ChangeRequest).where(ChangeRequest.line_id == second.id)).scalar_one()
        orders.decide(s, request=request, order=order, decision="counter", comment="The 10th at the latest.",
                      expected_version=None, actor=Actor(world["buyers"][0].user.id, "buyer", ""))  # fmt: skip
    with mail_app.app_context():
        drain(committed_db, tenant_id)
    asked = [n for n in _notifications(committed_db, tenant_id) if n.topic == "change_request.created"]
    # The buyers hear what they are asked to decide, in the response queue's words.
    assert {n.user_id for n in asked} == {b.user.id for b in world["buyers"]}
    assert {(n.title, n.body) for n in asked} == {
        (
            "Acme Fasteners asks for a change on order PO-7001",
            f"Line 2: {later.date} is 20 days after the requested date. Decide it in the response queue.",
        )
    }
    decided = [n for n in _notifications(committed_db, tenant_id) if n.topic == "change_request.decided"]
    assert {n.user_id for n in decided} == {p.user.id for p in world["supplier_people"]}
    assert {(n.title, n.body) for n in decided} == {
        ("Your change request on order PO-7001 line 2 was countered", "Comment: The 10th at the latest."),
    }


def test_the_buyers_changes_to_an_order_reach_the_suppliers_people(mail_app, committed_db, world):
    """A line the buyer cancels in the portal, and what the ERP's intake changed, added or cancelled (once per
    order, not per line); a customer's name is shown as written, braces and all."""
    tenant_id = world["tenant_id"]
    buyer = Actor(world["buyers"][0].user.id, "buyer", "")
    with mail_app.app_context(), tenant_session(committed_db, tenant_id) as s:
        s.execute(select(Tenant).where(Tenant.id == tenant_id)).scalar_one().name = "Northwind {EU}"
        order = s.execute(select(PurchaseOrder).where(PurchaseOrder.id == world["order_id"])).scalar_one()
        second = orders.order_lines(s, order)[1]
        orders.cancel_line(s, order=order, line=second, reason="bought elsewhere", expected_version=None, actor=buyer)
        payload = {"order_id": order.id}
        emit(s, tenant_id, "order.changed_in_erp", payload | {"changed": [1], "added": [3, 4], "cancelled": []})
        emit(s, tenant_id, "order.changed_in_erp", payload | {"changed": [], "added": [], "cancelled": [5]})
        emit(s, tenant_id, "order_line.cancelled", payload | {"line_id": 0, "position": 5, "announced": False})
    with mail_app.app_context():
        drain(committed_db, tenant_id)
    told = [n for n in _notifications(committed_db, tenant_id) if n.topic.startswith(("order.changed", "order_line"))]
    assert {n.user_id for n in told} == {p.user.id for p in world["supplier_people"]}  # not the buyers
    assert sorted({(n.topic, n.title, n.body) for n in told}) == [
        ("order.changed_in_erp", "Northwind {EU} changed order PO-7001", "Cancelled line 5. The order page shows it as "
         "it is now."),
        ("order.changed_in_erp", "Northwind {EU} changed order PO-7001", "Changed line 1. Added lines 3, 4. The order "
         "page shows it as it is now."),
        ("order_line.cancelled", "Northwind {EU} cancelled line 2 of order PO-7001", "Reason: bought elsewhere"),
    ]  # fmt: skip


def test_a_received_shipment_tells_the_suppliers_people_and_systems(mail_app, committed_db, world, receiver):
    """Once the goods of a ship notice have all arrived, the notice is received: the supplier's people are told,
    and its systems through a webhook on ``ship_notice.received``; an order number with braces is shown as
    typed."""
    from decimal import Decimal

    tenant_id = world["tenant_id"]
    with mail_app.app_context(), tenant_session(committed_db, tenant_id) as s:
        order = s.execute(select(PurchaseOrder).where(PurchaseOrder.id == world["order_id"])).scalar_one()
        order.number = "PO-{7001}"
        services.create_webhook(
            s, tenant_id=tenant_id, supplier_id=world["supplier_id"], url=receiver.url,
            topics=["ship_notice.received"], description="ERP", actor=ACTOR, allow_private=True,
        )  # fmt: skip
        orders.accept_all(s, order=order, expected_version=None, actor=ACTOR)
        first = orders.order_lines(s, order)[0]
        notice = orders.create_ship_notice(
            s, order=order, quantities={first.id: first.quantity}, expected_version=None, actor=ACTOR,
            shipment=orders.ShipmentInput(date.today(), date.today()),
        )  # fmt: skip
        short = first.quantity - Decimal(1)
        orders.record_receipt(s, order=order, line=first, quantity=short, received_on=date.today(), actor=ACTOR)
    with mail_app.app_context():
        drain(committed_db, tenant_id)
    assert not [n for n in _notifications(committed_db, tenant_id) if n.topic == "ship_notice.received"]  # 1 short
    with mail_app.app_context(), tenant_session(committed_db, tenant_id) as s:
        order = s.execute(select(PurchaseOrder).where(PurchaseOrder.id == world["order_id"])).scalar_one()
        first = orders.order_lines(s, order)[0]
        orders.record_receipt(s, order=order, line=first, quantity=Decimal(1), received_on=date.today(), actor=ACTOR)
    with mail_app.app_context():
        drain(committed_db, tenant_id)
    told = [n for n in _notifications(committed_db, tenant_id) if n.topic == "ship_notice.received"]
    assert {n.user_id for n in told} == {p.user.id for p in world["supplier_people"]}  # not the buyers
    assert {(n.title, n.body) for n in told} == {
        ("Your shipment for order PO-{7001} was received",
         f"Northwind has received all the goods of ship notice {notice.number}.")
    }  # fmt: skip
    delivered = [json.loads(call["body"]) for call in receiver.calls]
    assert [(body["topic"], body["data"]["ship_notice_id"]) for body in delivered] == [
        ("ship_notice.received", notice.id)
    ]


def test_a_revised_line_asks_the_supplier_again_and_an_erp_change_asks_the_buyers_to_choose(
    mail_app, committed_db, world
):
    tenant_id = world["tenant_id"]
    buyer = Actor(world["buyers"][0].user.id, "buyer", "")
    with mail_app.app_context(), tenant_session(committed_db, tenant_id) as s:
        s.execute(select(Tenant).where(Tenant.id == tenant_id)).scalar_one().name = "Northwind"
        order = s.execute(select(PurchaseOrder).where(PurchaseOrder.id == world["order_id"])).scalar_one()
        first = orders.order_lines(s, order)[0]
        was, now = quantity(first.quantity), quantity(first.quantity + 5)
        terms = orders.LineTerms(first.quantity + 5, first.requested_date, first.unit_price)
        orders.revise_line(s, order=order, line=first, terms=terms, comment="more needed", expected_version=None,
                           actor=buyer)  # fmt: skip
        emit(s, tenant_id, "order.revised_in_erp", {"order_id": order.id, "positions": [2, 3]})
    with mail_app.app_context():
        drain(committed_db, tenant_id)
    told = {n.topic: n for n in _notifications(committed_db, tenant_id)}
    revised = [n for n in _notifications(committed_db, tenant_id) if n.topic == "order_line.revised"]
    assert {n.user_id for n in revised} == {p.user.id for p in world["supplier_people"]}
    assert (told["order_line.revised"].title, told["order_line.revised"].body) == (
        "Northwind revised line 1 of order PO-7001",
        f"quantity {was} → {now}. “more needed” Please confirm the line again.",
    )
    in_erp = [n for n in _notifications(committed_db, tenant_id) if n.topic == "order.revised_in_erp"]
    assert {n.user_id for n in in_erp} == {b.user.id for b in world["buyers"]}
    assert in_erp[0].title.startswith("Lines 2, 3 of order PO-7001 changed in the ERP after ")


def test_a_message_on_an_order_reaches_the_other_side(mail_app, committed_db, world, smtp_inbox, tmp_path):
    """A buyer's message reaches the supplier's people (in the portal and by e-mail, an excerpt and a link to the
    conversation); the supplier's answer reaches the buyers involved in the order, not every buyer; with nobody
    involved, every buyer. Never viewers, never another supplier, never the author."""
    inbox, _ = smtp_inbox
    tenant_id = world["tenant_id"]
    first_buyer, second_buyer = world["buyers"]
    supplier_ids = {p.user.id for p in world["supplier_people"]}

    def write(person, body: str, *, order_id: int = world["order_id"], files=()) -> list[Notification]:  # type: ignore[no-untyped-def]
        known = {n.id for n in _notifications(committed_db, tenant_id)}
        with tenant_session(committed_db, tenant_id) as s:
            order = s.execute(select(PurchaseOrder).where(PurchaseOrder.id == order_id)).scalar_one()
            orders.post_message(s, order=order, author_id=person.user.id, author=person.user.name,
                                from_supplier=person.membership.supplier_id is not None, body=body,
                                files=files, storage=LocalStorage(tmp_path))  # fmt: skip
        with mail_app.app_context():
            drain(committed_db, tenant_id)
        return [n for n in _notifications(committed_db, tenant_id) if n.id not in known]

    first_buyer_name = first_buyer.user.name
    asked = write(first_buyer, "  Can you ship line 2 a week earlier?  ")
    assert {n.user_id for n in asked} == supplier_ids
    assert {(n.topic, n.title, n.body, n.url) for n in asked} == {(
        "order.message", f"{first_buyer_name} wrote about order PO-7001", "Can you ship line 2 a week earlier?",
        f"/orders/{world['order_id']}#messages",
    )}  # fmt: skip
    assert sorted(m["To"] for m in inbox.messages) == sorted(p.email for p in world["supplier_people"])
    assert {m["Subject"] for m in inbox.messages} == {f"{first_buyer_name} wrote about order PO-7001"}

    # The supplier answers: the buyer who wrote hears it; the other buyer, not involved, does not.
    long_answer = "We can. " + "x" * 400
    answered = write(world["supplier_people"][1], long_answer)
    assert [n.user_id for n in answered] == [first_buyer.user.id]
    assert answered[0].title == "Acme Fasteners wrote about order PO-7001"
    assert len(answered[0].body) == 300 and answered[0].body.startswith("We can. x") and answered[0].body[-1] == "…"

    # The order's own buyer is involved too.
    with tenant_session(committed_db, tenant_id) as s:
        s.execute(
            select(PurchaseOrder).where(PurchaseOrder.id == world["order_id"])
        ).scalar_one().buyer_id = second_buyer.user.id
    answered = write(world["supplier_people"][0], "Confirmed.")
    assert sorted(n.user_id for n in answered) == sorted([first_buyer.user.id, second_buyer.user.id])

    # An order nobody on the staff is involved in: every buyer hears the supplier, no viewer does.
    with tenant_session(committed_db, tenant_id) as s:
        tenant = s.get(Tenant, tenant_id)
        supplier = s.get(Supplier, world["supplier_id"])
        other_order = make_order(s, tenant, supplier, number="PO-7002").id
    answered = write(world["supplier_people"][0], "A question on this one.", order_id=other_order)
    assert sorted(n.user_id for n in answered) == sorted([first_buyer.user.id, second_buyer.user.id])
    everyone = {n.user_id for n in _notifications(committed_db, tenant_id)}
    assert world["viewer"].user.id not in everyone and world["outsider"].user.id not in everyone

    # Files attached are named after the words, or alone when the message is only files.
    drawing, photo = orders.AttachedFile("drawing-C.pdf", CLEAN_PDF), orders.AttachedFile("sample.png", PNG)
    answered = write(world["supplier_people"][0], "The new drawing.", files=(drawing, photo))
    assert {n.body for n in answered} == {"The new drawing.\nAttached: drawing-C.pdf, sample.png"}
    answered = write(world["supplier_people"][0], "", files=(drawing,))
    assert {n.body for n in answered} == {"Attached: drawing-C.pdf"}


def test_a_reminder_tells_the_suppliers_people_that_the_order_waits(mail_app, committed_db, world, smtp_inbox):
    inbox, _ = smtp_inbox
    tenant_id = world["tenant_id"]
    with tenant_session(committed_db, tenant_id) as s:
        order = s.execute(select(PurchaseOrder).where(PurchaseOrder.id == world["order_id"])).scalar_one()
        orders.remind_supplier(s, order=order, actor=Actor(world["buyers"][0].user.id, "buyer", ""))
    with mail_app.app_context():
        drain(committed_db, tenant_id)
    reminded = _notifications(committed_db, tenant_id)
    assert {n.user_id for n in reminded} == {p.user.id for p in world["supplier_people"]}
    assert {(n.topic, n.title, n.body, n.url) for n in reminded} == {(
        "order.reminded", "Reminder: order PO-7001 waits for your answer",
        "Northwind asks you to answer it: accept its lines, change them or reject them.",
        f"/orders/{world['order_id']}",
    )}  # fmt: skip
    assert sorted(m["To"] for m in inbox.messages) == sorted(p.email for p in world["supplier_people"])

    # The reminder exception detection sends on its own says that nobody asked in person.
    with tenant_session(committed_db, tenant_id) as s:
        emit(s, tenant_id, "order.reminded", {"order_id": world["order_id"], "automatic": True})
    with mail_app.app_context():
        drain(committed_db, tenant_id)
    automatic = [n for n in _notifications(committed_db, tenant_id) if n.id not in {r.id for r in reminded}]
    assert {n.body for n in automatic} == {
        "Northwind has had no answer to it yet: accept its lines, change them or reject them."
    }

    # A repeated reminder says which one it is.
    with tenant_session(committed_db, tenant_id) as s:
        emit(s, tenant_id, "order.reminded", {"order_id": world["order_id"], "automatic": True, "reminder": 3})
    with mail_app.app_context():
        drain(committed_db, tenant_id)
    seen = {r.id for r in reminded} | {n.id for n in automatic}
    third = [n for n in _notifications(committed_db, tenant_id) if n.id not in seen]
    assert {n.title for n in third} == {"Reminder 3: order PO-7001 waits for your answer"}


def test_a_message_must_have_words_and_a_limit(committed_db, world):
    with tenant_session(committed_db, world["tenant_id"]) as s:
        order = s.execute(select(PurchaseOrder).where(PurchaseOrder.id == world["order_id"])).scalar_one()
        person = world["buyers"][0]
        for body, refusal in (("   ", "Write a message or attach a file."), ("x" * 4001, "at most 4,000 characters")):
            with pytest.raises(ServiceError, match=refusal):
                orders.post_message(s, order=order, author_id=person.user.id, author="B", from_supplier=False,
                                    body=body)  # fmt: skip
        assert s.execute(select(OutboxEvent).where(OutboxEvent.topic == "order.message")).first() is None


def test_smtp_down_is_retried_and_nothing_is_lost(tmp_path, committed_db, world):
    app = create_app(
        _settings(tmp_path, committed_db.url, MAIL_BACKEND="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=str(free_port())),
        database=committed_db,
    )
    tenant_id = world["tenant_id"]
    with tenant_session(committed_db, tenant_id) as s:
        emit(s, tenant_id, "order.created", {"order_id": world["order_id"]})
    with app.app_context():
        drain(committed_db, tenant_id)  # the fan-out succeeds; each e-mail fails and waits
    with tenant_session(committed_db, tenant_id) as s:
        emails = s.execute(select(OutboxEvent).where(OutboxEvent.topic == "email.notification")).scalars().all()
    assert len(emails) == 2 and all(e.done_at is None and e.attempts == 1 for e in emails)
    assert all("not accepted" in e.last_error for e in emails)
    assert {n.email_state for n in _notifications(committed_db, tenant_id)} == {EmailState.QUEUED}


def test_bell_list_and_mark_read_are_per_person(mail_app, committed_db, world):
    tenant_id = world["tenant_id"]
    with tenant_session(committed_db, tenant_id) as s:
        emit(s, tenant_id, "order.created", {"order_id": world["order_id"]})
    with mail_app.app_context():
        drain(committed_db, tenant_id)
    first, second = world["supplier_people"]
    client = PortalClient(mail_app.test_client())
    client.sign_in(first.email, PASSWORD, first.secret)
    page = client.get("/notifications")
    assert "New purchase order PO-7001" in page.text
    assert 'aria-label="Notifications, 1 unread"' in page.text
    mine = next(n for n in _notifications(committed_db, tenant_id) if n.user_id == first.user.id)
    theirs = next(n for n in _notifications(committed_db, tenant_id) if n.user_id == second.user.id)
    # Someone else's notification: 404, and it stays unread.
    assert client.submit(f"/notifications/{theirs.id}/read", {}, page="/notifications").status_code == 404
    assert client.submit(f"/notifications/{mine.id}/read", {}, page="/notifications").status_code == 302
    assert 'aria-label="Notifications, 0 unread"' in client.get("/notifications").text
    read = {n.id: n.read_at for n in _notifications(committed_db, tenant_id)}
    assert read[mine.id] is not None and read[theirs.id] is None


def test_email_preference_form(mail_app, committed_db, world):
    person = world["buyers"][0]
    client = PortalClient(mail_app.test_client())
    client.sign_in(person.email, PASSWORD, person.secret)
    assert client.submit("/notifications/settings", {"email_mode": "sideways"}).status_code == 422
    assert client.submit("/notifications/settings", {"email_mode": "digest"}).status_code == 302
    with tenant_session(committed_db, world["tenant_id"]) as s:
        assert services.email_mode(s, world["tenant_id"], person.user.id) == EmailMode.DIGEST


# --- webhooks ------------------------------------------------------------------------------


class Receiver:
    """A real HTTP endpoint: records each call, answers the statuses it is told to."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.calls.append({"headers": dict(request.headers), "body": request.get_data()})
        status = self.statuses.pop(0) if self.statuses else 200
        return Response("ok", status=status)(environ, start_response)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def test_webhook_is_signed_retried_and_logged(mail_app, committed_db, world, receiver):
    tenant_id = world["tenant_id"]
    with mail_app.app_context(), tenant_session(committed_db, tenant_id) as s:
        hook, secret = services.create_webhook(
            s, tenant_id=tenant_id, url=receiver.url, topics=["order.created"], description="ERP bridge", actor=ACTOR,
            allow_private=True,  # the receiver listens on 127.0.0.1
        )  # fmt: skip
        hook_id = hook.id
        emit(s, tenant_id, "order.created", {"order_id": world["order_id"]})
        emit(s, tenant_id, "ship_notice.cancelled", {"order_id": world["order_id"]})  # not subscribed
    receiver.statuses = [503]
    with mail_app.app_context():
        drain(committed_db, tenant_id)  # the first call gets 503 and backs off
        assert len(receiver.calls) == 1
        with tenant_session(committed_db, tenant_id) as s:
            waiting = s.execute(select(OutboxEvent).where(OutboxEvent.topic == "webhook.deliver")).scalar_one()
            assert waiting.done_at is None and waiting.attempts == 1
            waiting.available_at = waiting.created_at  # the back-off has passed
        drain(committed_db, tenant_id)
    assert len(receiver.calls) == 2
    first, last = receiver.calls[0], receiver.calls[-1]
    assert first["headers"]["X-Portal-Delivery"] == last["headers"]["X-Portal-Delivery"]  # one event, one key
    body = last["body"]
    timestamp = last["headers"]["X-Portal-Timestamp"]
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert last["headers"]["X-Portal-Signature"] == f"sha256={expected}"
    payload = json.loads(body)
    assert payload["topic"] == "order.created" and payload["data"]["order_id"] == world["order_id"]
    assert all(call["headers"]["X-Portal-Event"] == "order.created" for call in receiver.calls)
    with tenant_session(committed_db, tenant_id) as s:
        log = s.execute(select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook_id).order_by("id")).scalars()
        codes = [(d.attempt, d.status_code) for d in log]
    assert codes == [(1, 503), (2, 200)]


def test_webhook_form_shows_the_secret_once_and_refuses_bad_urls(mail_app, committed_db, world):
    with tenant_session(committed_db, world["tenant_id"]) as s:
        from portal.tenancy.models import Tenant

        tenant = s.execute(select(Tenant).where(Tenant.id == world["tenant_id"])).scalar_one()
        admin = make_member(s, tenant, Role.TENANT_ADMIN)
    client = PortalClient(mail_app.test_client())
    client.sign_in(admin.email, PASSWORD, admin.secret)
    bad = client.submit("/settings/webhooks", {"url": "ftp://nowhere", "description": ""})
    assert bad.status_code == 422 and "Enter a full URL." in bad.text
    with tenant_session(committed_db, world["tenant_id"]) as s:
        from portal.notifications.models import Webhook

        assert s.execute(select(Webhook)).first() is None  # refused input stores nothing
    created = client.submit(
        "/settings/webhooks", {"url": "https://hooks.example.org/portal", "topics": "order.created"}
    )
    assert created.status_code == 201 and "whsec_" in created.text
    assert "whsec_" not in client.get("/settings/webhooks").text


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://100.64.0.1/hook",
        "https://[::1]/hook",
        "https://localhost/hook",
        "http://93.184.216.34/hook",
        "ftp://93.184.216.34/hook",
    ],
)
def test_webhooks_may_not_point_into_private_networks(url):
    """SSRF: outside the embedded and test modes only public https endpoints are called."""
    with pytest.raises(services.UnsafeWebhookAddress):
        services.check_webhook_url(url, allow_private=False)


def test_a_public_https_endpoint_is_accepted_and_private_ones_when_allowed():
    services.check_webhook_url("https://93.184.216.34/hook", allow_private=False)  # an IP literal: no DNS needed
    services.check_webhook_url("http://127.0.0.1:8080/hook", allow_private=True)


def test_a_delivery_to_an_address_no_longer_allowed_is_refused_and_logged(mail_app, committed_db, world, receiver):
    from dataclasses import replace

    tenant_id = world["tenant_id"]
    with mail_app.app_context(), tenant_session(committed_db, tenant_id) as s:
        hook, _ = services.create_webhook(
            s, tenant_id=tenant_id, url=receiver.url, topics=[], description="", actor=ACTOR, allow_private=True
        )
        hook_id = hook.id
        emit(s, tenant_id, "order.created", {"order_id": world["order_id"]})
    settings = mail_app.extensions["portal.settings"]
    mail_app.extensions["portal.settings"] = replace(settings, webhook_allow_private=False)
    try:
        with mail_app.app_context():
            drain(committed_db, tenant_id)
    finally:
        mail_app.extensions["portal.settings"] = settings
    assert receiver.calls == []
    with tenant_session(committed_db, tenant_id) as s:
        (attempt,) = s.execute(select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook_id)).scalars()
    assert attempt.status_code is None and attempt.error == "The webhook address must use https://."


def test_the_bell_counts_the_current_customers_unread_notifications(client, session):
    """The bell's count comes with the memberships read at the start of a page (no statement of its own) and
    is the count in the customer being worked for; a page answering a POST counts afresh."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    first, second = make_tenant(session, "First Distributor"), make_tenant(session, "Second Distributor")
    person = make_member(session, first, Role.SUPPLIER_ADMIN, supplier=make_supplier(session, first, "Shared"))
    other = make_member(session, second, Role.SUPPLIER_ADMIN, supplier=make_supplier(session, second, "Shared"),
                        user=person.user, secret=person.secret)  # fmt: skip
    for tenant, titles in ((first, ["one"]), (second, ["two", "three"])):
        set_context(session, tenant_id=tenant.id)
        for title in titles:
            services.notify(session, tenant_id=tenant.id, user_ids=[person.user.id], topic="test", title=title)
        session.flush()  # under this tenant's context (the e-mails' outbox rows too)
    client.sign_in(person.email, PASSWORD, person.secret)
    client.submit("/context", {"membership_id": person.membership.id}, page="/choose")

    statements: list[str] = []

    def record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    def counted_alone() -> list[str]:  # the bell's count as a statement of its own (not in the memberships')
        return [s for s in statements if s.lstrip().startswith("SELECT (SELECT count(*)") and "notifications" in s]

    event.listen(Engine, "before_cursor_execute", record)
    try:
        assert 'aria-label="Notifications, 1 unread"' in client.get("/").text
        assert statements and not counted_alone()
        client.submit("/context", {"membership_id": other.membership.id}, page="/choose")
        assert 'aria-label="Notifications, 2 unread"' in client.get("/").text
        statements.clear()
        refused = client.submit("/notifications/settings", {"email_mode": "sideways"})
        assert refused.status_code == 422 and 'aria-label="Notifications, 2 unread"' in refused.text
        assert counted_alone()
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def test_the_bell_shows_99_plus_beyond_a_hundred_unread(client, session):
    """The bell counts up to 100 unread notifications (a detection run may notify a buyer thousands of times;
    counting them all slowed every page) and shows "99+" from there, on a page read and after a POST alike."""
    tenant = make_tenant(session)
    buyer = make_member(session, tenant, Role.BUYER)
    set_context(session, tenant_id=tenant.id)
    services.notify(session, tenant_id=tenant.id, user_ids=[buyer.user.id], topic="test", title="first")
    session.flush()
    client.sign_in(buyer.email, PASSWORD, buyer.secret)
    assert 'aria-label="Notifications, 1 unread"' in client.get("/").text
    for n in range(98):
        services.notify(session, tenant_id=tenant.id, user_ids=[buyer.user.id], topic="test", title=f"more {n}")
    session.flush()
    assert 'aria-label="Notifications, 99 unread"' in client.get("/").text
    services.notify(session, tenant_id=tenant.id, user_ids=[buyer.user.id], topic="test", title="the hundredth")
    session.flush()
    page = client.get("/").text
    assert 'aria-label="Notifications, 99+ unread"' in page and '<span class="count">99+</span>' in page
    refused = client.submit("/notifications/settings", {"email_mode": "sideways"})
    assert refused.status_code == 422 and 'aria-label="Notifications, 99+ unread"' in refused.text
    assert services.unread_count(session, tenant.id, buyer.user.id) == services.BELL_CAP


# --- a supplier account's own webhooks -------------------------------------------------------


def test_a_suppliers_webhook_hears_only_of_its_own_orders(mail_app, committed_db, world):
    tenant_id = world["tenant_id"]
    receivers = {name: Receiver() for name in ("tenant", "acme", "bolt")}
    try:
        with mail_app.app_context(), tenant_session(committed_db, tenant_id) as s:
            bolt_id = s.execute(select(Supplier.id).where(Supplier.name == "Bolt & Co")).scalar_one()
            for name, supplier_id in (("tenant", None), ("acme", world["supplier_id"]), ("bolt", bolt_id)):
                services.create_webhook(
                    s, tenant_id=tenant_id, supplier_id=supplier_id, url=receivers[name].url, topics=[],
                    description=name, actor=ACTOR, allow_private=True,
                )  # fmt: skip
            tenant = s.execute(select(Tenant).where(Tenant.id == tenant_id)).scalar_one()
            bolts = make_order(s, tenant, s.get(Supplier, bolt_id), number="PO-7002")
            emit(s, tenant_id, "order.created", {"order_id": world["order_id"]})
            emit(s, tenant_id, "order.created", {"order_id": bolts.id})
            emit(s, tenant_id, "order_line.cancelled", {"order_id": world["order_id"], "line_id": 0})
            emit(s, tenant_id, "document.uploaded", {"document_id": 0})  # a buyers' topic: the tenant's only
        with mail_app.app_context():
            drain(committed_db, tenant_id)
    finally:
        for receiver in receivers.values():
            receiver.server.shutdown()
    heard = {
        name: sorted((json.loads(c["body"])["topic"], json.loads(c["body"])["data"].get("order_id")) for c in r.calls)
        for name, r in receivers.items()
    }
    own, other = world["order_id"], bolts.id
    assert heard["acme"] == [("order.created", own), ("order_line.cancelled", own)]
    assert heard["bolt"] == [("order.created", other)]
    assert heard["tenant"] == sorted(
        [("order.created", own), ("order.created", other), ("order_line.cancelled", own), ("document.uploaded", None)]
    )


def test_a_suppliers_systems_hear_when_its_certificates_near_expiry_and_expire(mail_app, committed_db, world):
    """The expiry run's reminders and expiries reach the webhooks of the document's supplier (and the tenant's),
    once per reminder: a second run the same day sends nothing."""
    from portal.documents import services as documents
    from portal.documents.models import Document, DocumentStatus, DocumentType, Requirement

    tenant_id, today = world["tenant_id"], date.today()
    receivers = {name: Receiver() for name in ("tenant", "acme", "bolt")}
    try:
        with mail_app.app_context(), tenant_session(committed_db, tenant_id) as s:
            bolt_id = s.execute(select(Supplier.id).where(Supplier.name == "Bolt & Co")).scalar_one()
            for name, supplier_id in (("tenant", None), ("acme", world["supplier_id"]), ("bolt", bolt_id)):
                services.create_webhook(
                    s, tenant_id=tenant_id, supplier_id=supplier_id, url=receivers[name].url, description=name,
                    topics=["document.expiring", "document.expired"], actor=ACTOR, allow_private=True,
                )  # fmt: skip
            iso = DocumentType(tenant_id=tenant_id, code="ISO9001", name="ISO 9001")
            s.add(iso)
            s.flush()
            s.add(Requirement(tenant_id=tenant_id, document_type_id=iso.id, reminder_days=[30]))
            ids = {}
            for name, days in (("expiring", 20), ("lapsed", -1)):
                document = Document(
                    tenant_id=tenant_id, supplier_id=world["supplier_id"], document_type_id=iso.id, title=name,
                    storage_key=f"lapse{name}", original_name="c.pdf", size=3, content_type="application/pdf",
                    sha256="0" * 64, status=DocumentStatus.APPROVED, expiry_date=today + timedelta(days=days),
                )  # fmt: skip
                s.add(document)
                s.flush()
                ids[name] = document.id
            run = documents.run_expiry(s, tenant_id=tenant_id, today=today)
            assert (run.expired, run.reminders) == (1, 1)
            assert documents.run_expiry(s, tenant_id=tenant_id, today=today).reminders == 0
        with mail_app.app_context():
            drain(committed_db, tenant_id)
    finally:
        for receiver in receivers.values():
            receiver.server.shutdown()
    heard = {name: sorted(json.loads(c["body"])["topic"] for c in r.calls) for name, r in receivers.items()}
    assert heard == {"tenant": ["document.expired", "document.expiring"],
                     "acme": ["document.expired", "document.expiring"], "bolt": []}  # fmt: skip
    data = {json.loads(c["body"])["topic"]: json.loads(c["body"])["data"] for c in receivers["acme"].calls}
    expiring_on = (today + timedelta(days=20)).isoformat()
    assert data["document.expiring"] == {"document_id": ids["expiring"], "days_left": 20, "expiry_date": expiring_on}
    assert data["document.expired"] == {"document_id": ids["lapsed"],
                                        "expiry_date": (today - timedelta(days=1)).isoformat()}  # fmt: skip


def test_supplier_admins_add_and_remove_their_accounts_webhooks(mail_app, committed_db, world):
    admin, user = world["supplier_people"]
    client = PortalClient(mail_app.test_client())
    client.sign_in(admin.email, PASSWORD, admin.secret)
    page = client.get("/api-keys")
    assert 'id="webhooks"' in page.text and "alerts.opened" not in page.text  # a supplier's topics only
    bad = client.submit("/api-keys/webhooks", {"url": "ftp://nowhere"}, page="/api-keys")
    assert bad.status_code == 422 and "Enter a full URL." in bad.text
    buyers_topic = client.submit(
        "/api-keys/webhooks", {"url": "https://erp.acme.example/po", "topics": "alerts.opened"}, page="/api-keys"
    )
    assert buyers_topic.status_code == 422
    added = client.submit(
        "/api-keys/webhooks", {"url": "https://erp.acme.example/po", "topics": "order.created"}, page="/api-keys"
    )
    assert added.status_code == 201 and "whsec_" in added.text and "whsec_" not in client.get("/api-keys").text
    with mail_app.app_context(), tenant_session(committed_db, world["tenant_id"]) as s:
        hooks = services.supplier_webhooks(s, world["tenant_id"], world["supplier_id"])
        assert [(h.url, h.topics) for h in hooks] == [("https://erp.acme.example/po", ["order.created"])]
        hook_id = hooks[0].id
        tenant_hook, _ = services.create_webhook(
            s, tenant_id=world["tenant_id"], url="https://hooks.example.org/in", topics=[], description="",
            actor=ACTOR, allow_private=True,
        )  # fmt: skip
        tenant_hook_id = tenant_hook.id
    # Neither a supplier user, nor another supplier's administrator, nor the tenant's own webhook through here.
    member = PortalClient(mail_app.test_client())
    member.sign_in(user.email, PASSWORD, user.secret)
    assert 'id="webhooks"' not in member.get("/api-keys").text
    assert member.submit(f"/api-keys/webhooks/{hook_id}/delete", {}, page="/api-keys").status_code == 403
    with tenant_session(committed_db, world["tenant_id"]) as s:
        tenant = s.execute(select(Tenant).where(Tenant.id == world["tenant_id"])).scalar_one()
        bolt = s.execute(select(Supplier).where(Supplier.name == "Bolt & Co")).scalar_one()
        bolt_admin = make_member(s, tenant, Role.SUPPLIER_ADMIN, supplier=bolt)
    neighbour = PortalClient(mail_app.test_client())
    neighbour.sign_in(bolt_admin.email, PASSWORD, bolt_admin.secret)
    assert neighbour.submit(f"/api-keys/webhooks/{hook_id}/delete", {}, page="/api-keys").status_code == 404
    assert neighbour.get(f"/api-keys/webhooks/{hook_id}").status_code == 404
    log = client.get(f"/api-keys/webhooks/{hook_id}")
    assert log.status_code == 200 and "Nothing delivered yet." in log.text and 'href="/api-keys#webhooks"' in log.text
    assert client.get(f"/api-keys/webhooks/{tenant_hook_id}").status_code == 404
    assert client.submit(f"/api-keys/webhooks/{tenant_hook_id}/delete", {}, page="/api-keys").status_code == 404
    assert client.submit(f"/api-keys/webhooks/{hook_id}/delete", {}, page="/api-keys").status_code == 302
    with tenant_session(committed_db, world["tenant_id"]) as s:
        assert services.supplier_webhooks(s, world["tenant_id"], world["supplier_id"]) == []
        actions = s.execute(select(AuditEvent.action).where(AuditEvent.object_type == "webhook")).scalars().all()
    assert sorted(actions) == ["webhook.created", "webhook.created", "webhook.deleted"]
    # The tenant's settings list the tenant's webhooks, not the suppliers'.
    assert "erp.acme.example" not in _tenant_admin(mail_app, committed_db, world).get("/settings/webhooks").text


def _tenant_admin(app, database, world) -> PortalClient:  # type: ignore[no-untyped-def]
    with tenant_session(database, world["tenant_id"]) as s:
        admin = make_member(s, s.execute(select(Tenant).where(Tenant.id == world["tenant_id"])).scalar_one(),
                            Role.TENANT_ADMIN)  # fmt: skip
    client = PortalClient(app.test_client())
    client.sign_in(admin.email, PASSWORD, admin.secret)
    return client
