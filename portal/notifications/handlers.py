"""Outbox handlers: business events become notifications, e-mails and webhook calls."""

from __future__ import annotations

import time
from typing import Any

import httpx
from flask import current_app, render_template
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.crypto import decrypt
from portal.formatting import counted
from portal.mail import deliver_now
from portal.notifications import services
from portal.notifications.models import EmailState, Notification, Webhook
from portal.orders import services as orders_services
from portal.orders.models import (
    ChangeKind,
    ChangeRequest,
    OrderMessage,
    OrderMessageFile,
    PurchaseOrder,
    PurchaseOrderLine,
)
from portal.outbox import OutboxEvent, Retry, handler
from portal.suppliers.models import Supplier

WEBHOOK_TIMEOUT = 10.0  # seconds; well below the actor's time limit


def _order(session: Session, tenant_id: int, order_id: int) -> tuple[PurchaseOrder, str] | None:
    row = session.execute(
        select(PurchaseOrder, Supplier.name)
        .join(Supplier, Supplier.id == PurchaseOrder.supplier_id)
        .where(PurchaseOrder.tenant_id == tenant_id, PurchaseOrder.id == order_id)
    ).first()
    return (row[0], row[1]) if row else None


def _notify_about_order(session: Session, event: OutboxEvent, audience: str, title: str, body: str = "") -> None:
    """Tell the tenant's buyers (``audience="buyers"``) or the order's supplier people about an order."""
    found = _order(session, event.tenant_id, int(event.payload["order_id"]))
    if found is None:
        return
    order, supplier_name = found
    if audience == "buyers":
        user_ids = services.staff(session, event.tenant_id)
    else:
        user_ids = services.supplier_people(session, event.tenant_id, order.supplier_id)
    services.notify(
        session,
        tenant_id=event.tenant_id,
        user_ids=user_ids,
        topic=event.topic,
        title=title.format(order=order.number, supplier=supplier_name),
        body=body,
        url=f"/orders/{order.id}",
        supplier_name=supplier_name,
        order_number=order.number,
    )


def _for_buyers(session: Session, event: OutboxEvent, title: str, body: str = "") -> None:
    _notify_about_order(session, event, "buyers", title, body)


def _for_supplier(session: Session, event: OutboxEvent, title: str, body: str = "") -> None:
    _notify_about_order(session, event, "supplier", title, body)


@handler("order.created")
def new_order(session: Session, event: OutboxEvent) -> None:
    _for_supplier(session, event, "New purchase order {order}", "A new order waits for your confirmation.")
    services.fan_out_webhooks(session, event)


@handler("order.responded")
def supplier_answered(session: Session, event: OutboxEvent) -> None:
    pending = len(event.payload.get("pending") or [])
    confirmed = len(event.payload.get("confirmed") or [])
    _for_buyers(
        session,
        event,
        "{supplier} answered order {order}",
        f"{counted(confirmed, 'line', 'lines')} confirmed, {pending:,} waiting for your decision.",
    )
    services.fan_out_webhooks(session, event)


def _customer(session: Session, tenant_id: int) -> str:
    from portal.tenancy.models import Tenant

    return session.execute(select(Tenant.name).where(Tenant.id == tenant_id)).scalar_one_or_none() or "Your customer"


def _literal(text: str) -> str:
    """``text`` inside a title that ``_notify_about_order`` formats: its braces stay braces."""
    return text.replace("{", "{{").replace("}", "}}")


def _lines(positions: list[int]) -> str:
    return ("line " if len(positions) == 1 else "lines ") + ", ".join(str(p) for p in sorted(positions))


@handler("order.changed_in_erp")
def order_changed(session: Session, event: OutboxEvent) -> None:
    """The buyer changed an order in the ERP: what changed, for the supplier's people (an answer form they opened
    before is refused, and their next answer is to the order as it is now)."""
    told = [
        f"{what} {_lines(event.payload[key])}"
        for key, what in (("changed", "Changed"), ("added", "Added"), ("cancelled", "Cancelled"))
        if event.payload.get(key)
    ]
    services.fan_out_webhooks(session, event)
    if not told:  # events written before the changes were listed: nothing to tell
        return
    _for_supplier(
        session,
        event,
        f"{_literal(_customer(session, event.tenant_id))} changed order {{order}}",
        ". ".join(told) + ". The order page shows it as it is now.",
    )


@handler("order_line.revised")
def line_revised(session: Session, event: OutboxEvent) -> None:
    """The buyer changed a line's terms: the supplier answers it again."""
    told = orders_services.changes_text(event.payload.get("changes") or {})
    comment = event.payload.get("comment") or ""
    customer = _literal(_customer(session, event.tenant_id))
    _for_supplier(
        session,
        event,
        f"{customer} revised line {event.payload['position']} of order {{order}}",
        " ".join(part for part in (f"{told}." if told else "", f"“{comment}”" if comment else "",
                                   "Please confirm the line again.") if part),
    )  # fmt: skip
    services.fan_out_webhooks(session, event)


@handler("order.revised_in_erp")
def order_revised_in_erp(session: Session, event: OutboxEvent) -> None:
    """A buyer changed answered lines in the ERP: the portal waits for a buyer to choose what counts."""
    positions = event.payload.get("positions") or []
    _for_buyers(
        session,
        event,
        f"{_lines(positions).capitalize()} of order {{order}} changed in the ERP after {{supplier}} answered",
        "Choose on the order page: send the change to the supplier to confirm again, or keep the supplier's "
        "commitment and write it back to the ERP.",
    )


@handler("order_line.cancelled")
def line_cancelled(session: Session, event: OutboxEvent) -> None:
    # Systems hear of every cancelled line, also those told to people with the rest of an ERP change.
    services.fan_out_webhooks(session, event)
    if not event.payload.get("announced") or "position" not in event.payload:
        return  # told with the rest of the ERP's changes to the order (or written before lines were announced)
    reason = event.payload.get("reason") or ""
    customer = _literal(_customer(session, event.tenant_id))
    _for_supplier(
        session,
        event,
        f"{customer} cancelled line {event.payload['position']} of order {{order}}",
        f"Reason: {reason}" if reason else "",
    )


@handler("order.reminded")
def order_reminded(session: Session, event: OutboxEvent) -> None:
    customer = _customer(session, event.tenant_id)
    asked = "has had no answer to it yet" if event.payload.get("automatic") else "asks you to answer it"
    count = int(event.payload.get("reminder", 1))  # events written before the count was kept: the first
    label = "Reminder" if count < 2 else f"Reminder {count}"
    _for_supplier(
        session,
        event,
        label + ": order {order} waits for your answer",
        f"{customer} {asked}: accept its lines, change them or reject them.",
    )


@handler("change_request.created")
def change_requested(session: Session, event: OutboxEvent) -> None:
    found = _request_and_line(session, event)
    what = ""
    if found is not None:
        request, position = found
        # What the buyer decides, in the words the response queue uses ("2026-12-18 is 6 days after the ...").
        asked = "; ".join(request.outside) or {ChangeKind.REJECT: "a rejection", ChangeKind.PRICE: "a new price"}.get(
            request.kind, "a change"
        )
        what = f"Line {position}: {asked}. "
    _for_buyers(
        session, event, "{supplier} asks for a change on order {order}", f"{what}Decide it in the response queue."
    )
    services.fan_out_webhooks(session, event)


def _request_and_line(session: Session, event: OutboxEvent) -> tuple[ChangeRequest, int] | None:
    """The event's change request and its line's position (None when either is gone)."""
    found = session.execute(
        select(ChangeRequest, PurchaseOrderLine.position)
        .join(PurchaseOrderLine, PurchaseOrderLine.id == ChangeRequest.line_id)
        .where(
            ChangeRequest.tenant_id == event.tenant_id,
            PurchaseOrderLine.tenant_id == event.tenant_id,
            ChangeRequest.id == int(event.payload["change_request_id"]),
        )
    ).first()
    return (found[0], found[1]) if found is not None else None


@handler("change_request.decided")
def change_decided(session: Session, event: OutboxEvent) -> None:
    found = _request_and_line(session, event)
    request, position = found if found is not None else (None, None)
    comment = f"Comment: {request.decision_comment}" if request is not None and request.decision_comment else ""
    line = f" line {position}" if position is not None else ""
    _for_supplier(
        session,
        event,
        f"Your change request on order {{order}}{line} was {event.payload.get('decision', 'decided')}",
        comment,
    )
    services.fan_out_webhooks(session, event)


@handler("ship_notice.created")
def shipped(session: Session, event: OutboxEvent) -> None:
    _for_buyers(session, event, "{supplier} sent a ship notice for order {order}")
    services.fan_out_webhooks(session, event)


@handler("ship_notice.received")
def shipment_received(session: Session, event: OutboxEvent) -> None:
    customer = _customer(session, event.tenant_id)
    notice = f"ship notice {event.payload['number']}" if event.payload.get("number") else "this shipment"
    # The title is a template ({order}); what people typed (the number) goes only into the body.
    _for_supplier(session, event, "Your shipment for order {order} was received",
                  f"{customer} has received all the goods of {notice}.")  # fmt: skip
    services.fan_out_webhooks(session, event)


MESSAGE_EXCERPT = 300  # characters of a message in its notification; the order page has it whole


@handler("order.message")
def order_message(session: Session, event: OutboxEvent) -> None:
    """A message on an order reaches the other side. A supplier's message goes to the order's buyer and the
    staff who wrote on the order before, while they are still buyers there; to every buyer when none is left
    (nobody would hear it otherwise). A buyer's message goes to the supplier's people. Its author never."""
    found = _order(session, event.tenant_id, int(event.payload["order_id"]))
    message = session.execute(
        select(OrderMessage).where(
            OrderMessage.tenant_id == event.tenant_id, OrderMessage.id == int(event.payload["message_id"])
        )
    ).scalar_one_or_none()
    if found is None or message is None or message.order_id != found[0].id:
        return
    order, supplier_name = found
    if message.from_supplier:
        buyers = set(services.staff(session, event.tenant_id))
        earlier_writers = session.execute(
            select(OrderMessage.author_id)
            .where(
                OrderMessage.tenant_id == event.tenant_id,
                OrderMessage.order_id == order.id,
                OrderMessage.from_supplier.is_(False),
                OrderMessage.id < message.id,
            )
            .order_by(OrderMessage.id)
        ).scalars()
        involved = [user_id for user_id in (order.buyer_id, *earlier_writers) if user_id in buyers]
        user_ids = involved or sorted(buyers)
        title = f"{supplier_name} wrote about order {order.number}"
    else:
        user_ids = services.supplier_people(session, event.tenant_id, order.supplier_id)
        title = f"{message.author} wrote about order {order.number}"
    excerpt = message.body if len(message.body) <= MESSAGE_EXCERPT else message.body[: MESSAGE_EXCERPT - 1] + "…"
    # The files attached, named (a message may be files alone).
    files = session.execute(
        select(OrderMessageFile.original_name)
        .where(OrderMessageFile.tenant_id == event.tenant_id, OrderMessageFile.message_id == message.id)
        .order_by(OrderMessageFile.id)
    ).scalars()
    if attached := ", ".join(files):
        excerpt = f"{excerpt}\nAttached: {attached}" if excerpt else f"Attached: {attached}"
    services.notify(
        session,
        tenant_id=event.tenant_id,
        user_ids=[user_id for user_id in user_ids if user_id != message.author_id],
        topic=event.topic,
        title=title,
        body=excerpt,
        url=f"/orders/{order.id}#messages",
        supplier_name=supplier_name,
        order_number=order.number,
    )


@handler("alerts.opened")
def alerts_opened(session: Session, event: OutboxEvent) -> None:
    counts: dict[str, int] = event.payload.get("counts") or {}
    summary = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in sorted(counts.items()))
    supplier = session.execute(
        select(Supplier.name).where(Supplier.tenant_id == event.tenant_id, Supplier.id == event.payload["supplier_id"])
    ).scalar_one_or_none()
    orders = event.payload.get("orders") or []
    services.notify(
        session,
        tenant_id=event.tenant_id,
        user_ids=services.staff(session, event.tenant_id),
        topic=event.topic,
        title=f"New exceptions for {supplier or 'a supplier'}: {summary}",
        body="Orders: " + ", ".join(orders[:20]) + (" and more" if len(orders) > 20 else ""),
        url=f"/orders/exceptions?supplier={event.payload['supplier_id']}",
        supplier_name=supplier or "",
        order_number=orders[0] if len(orders) == 1 else "",
    )
    services.fan_out_webhooks(session, event)


def webhooks_only(session: Session, event: OutboxEvent) -> None:
    services.fan_out_webhooks(session, event)


for _topic in ("commitment.changed", "ship_notice.cancelled", "receipt.recorded", "document.uploaded"):
    handler(_topic)(webhooks_only)


@handler("document.reviewed")
def document_reviewed(session: Session, event: OutboxEvent) -> None:
    from portal.documents.models import Document, DocumentReview

    document = session.execute(
        select(Document).where(Document.tenant_id == event.tenant_id, Document.id == event.payload["document_id"])
    ).scalar_one_or_none()
    if document is not None:
        # The reviewer's comment (the reason, for a rejection) travels with the notice: the supplier acts on it.
        comment = session.execute(
            select(DocumentReview.comment)
            .where(DocumentReview.tenant_id == event.tenant_id, DocumentReview.document_id == document.id)
            .order_by(DocumentReview.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        outcome = {"approve": "approved", "reject": "rejected"}.get(event.payload.get("decision", ""), "reviewed")
        services.notify(
            session,
            tenant_id=event.tenant_id,
            user_ids=services.supplier_people(session, event.tenant_id, document.supplier_id),
            topic=event.topic,
            title=f"Your document \u201c{document.title}\u201d was {outcome}",
            body=f"Comment: {comment}" if comment else "",
            url="/compliance",
        )
    services.fan_out_webhooks(session, event)


@handler("document.expiring")
@handler("document.expired")
def document_lapsing(session: Session, event: OutboxEvent) -> None:
    """Systems only: people were told by the expiry run itself (reminders by lead time, in the portal and by
    e-mail as each chose)."""
    services.fan_out_webhooks(session, event)


# --- e-mail -------------------------------------------------------------------------------


def _absolute(url: str) -> str:
    base = current_app.extensions["portal.settings"].base_url
    return base + url if url.startswith("/") else url


# Where a person chooses how they get e-mails (``notifications.preferences``): named in every e-mail.
SETTINGS_PATH = "/notifications/settings"


@handler("email.notification", max_attempts=10, backoff_base=30.0, backoff_cap=3600.0)
def email_one(session: Session, event: OutboxEvent) -> None:
    notification = session.execute(
        select(Notification).where(
            Notification.tenant_id == event.tenant_id, Notification.id == int(event.payload["notification_id"])
        )
    ).scalar_one_or_none()
    if notification is None or notification.email_state != EmailState.QUEUED:
        return
    to = services.user_email(session, notification.user_id)
    if to:
        context: dict[str, Any] = {"notification": notification, "link": _absolute(notification.url),
                                   "settings_link": _absolute(SETTINGS_PATH)}  # fmt: skip
        _send(session, to, notification.title, "notifications/email.txt", "notifications/email.html", context)
    notification.email_state = EmailState.SENT


@handler("email.digest", max_attempts=10, backoff_base=60.0, backoff_cap=3600.0)
def email_digest(session: Session, event: OutboxEvent) -> None:
    user_id, up_to = int(event.payload["user_id"]), int(event.payload["up_to_id"])
    waiting = list(
        session.execute(
            select(Notification)
            .where(
                Notification.tenant_id == event.tenant_id,
                Notification.user_id == user_id,
                Notification.email_state == EmailState.DIGEST,
                Notification.id <= up_to,
            )
            .order_by(Notification.supplier_name, Notification.order_number, Notification.id)
        ).scalars()
    )
    if not waiting:
        return
    to = services.user_email(session, user_id)
    if to:
        context = {
            "groups": services.digest_groups(waiting),
            "count": len(waiting),
            "base_url": current_app.extensions["portal.settings"].base_url,
            "settings_link": _absolute(SETTINGS_PATH),
        }
        subject = f"Your supplier portal digest: {len(waiting)} update{'s' if len(waiting) != 1 else ''}"
        _send(session, to, subject, "notifications/digest.txt", "notifications/digest.html", context)
    for notification in waiting:
        notification.email_state = EmailState.SENT


def _send(session: Session, to: str, subject: str, text_template: str, html_template: str, context: Any) -> None:
    text = render_template(text_template, **context)
    html = render_template(html_template, **context)
    try:
        deliver_now(session, to, subject, text, html)
    except Exception as exc:  # SMTP down or refusing: the outbox retries
        raise Retry(f"e-mail to {to} not accepted: {exc}") from exc


# --- webhooks -------------------------------------------------------------------------------


def _delivery_failed(session: Session, event: OutboxEvent, exc: BaseException) -> None:
    details = getattr(exc, "delivery", None) or {}
    services.record_delivery(
        session,
        tenant_id=event.tenant_id,
        webhook_id=int(event.payload["webhook_id"]),
        payload=event.payload,
        attempt=event.attempts,
        status_code=details.get("status_code"),
        error=str(exc),
        duration_ms=details.get("duration_ms", 0),
    )


class DeliveryFailed(Retry):
    def __init__(self, message: str, **delivery: Any) -> None:
        super().__init__(message)
        self.delivery = delivery


@handler("webhook.deliver", max_attempts=8, backoff_base=10.0, backoff_cap=3600.0, on_failure=_delivery_failed)
def deliver_webhook(session: Session, event: OutboxEvent) -> None:
    webhook = session.execute(
        select(Webhook).where(Webhook.tenant_id == event.tenant_id, Webhook.id == int(event.payload["webhook_id"]))
    ).scalar_one_or_none()
    if webhook is None or not webhook.active:
        return
    try:
        services.check_webhook_url(
            webhook.url, allow_private=current_app.extensions["portal.settings"].webhook_allow_private
        )
    except services.UnsafeWebhookAddress as exc:
        raise DeliveryFailed(str(exc)) from exc
    body = services.webhook_body(event.payload)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "SupplierPortal-Webhook/1",
        "X-Portal-Event": event.payload["topic"],
        "X-Portal-Delivery": event.payload["delivery_key"],
        "X-Portal-Timestamp": timestamp,
        "X-Portal-Signature": services.signature(decrypt(webhook.secret_encrypted), timestamp, body),
    }
    started = time.monotonic()
    try:
        response = httpx.post(webhook.url, content=body, headers=headers, timeout=WEBHOOK_TIMEOUT)
    except httpx.HTTPError as exc:
        duration = int((time.monotonic() - started) * 1000)
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}", duration_ms=duration) from exc
    duration = int((time.monotonic() - started) * 1000)
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(
            f"the receiver answered {response.status_code}", status_code=response.status_code, duration_ms=duration
        )
    services.record_delivery(
        session,
        tenant_id=event.tenant_id,
        webhook_id=webhook.id,
        payload=event.payload,
        attempt=event.attempts,
        status_code=response.status_code,
        error="",
        duration_ms=duration,
    )
