"""Who hears about what, and how: in app always; by e-mail as each person chooses; webhooks per tenant.

Services take the session and tenant and never commit. E-mails and webhook calls
are outbox events of their own (``email.notification``, ``email.digest``,
``webhook.deliver``), so each is retried on its own and never sent twice because
something else failed.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from portal.auth.models import Membership, User
from portal.auth.permissions import Role
from portal.auth.services import Actor, ServiceError
from portal.crypto import encrypt
from portal.db import read_columns, utcnow
from portal.notifications.models import (
    EmailMode,
    EmailState,
    Notification,
    NotificationPreference,
    Webhook,
    WebhookDelivery,
)
from portal.outbox import OutboxEvent, emit

STAFF_BUYERS = (Role.TENANT_ADMIN, Role.BUYER)
SUPPLIER_PEOPLE = (Role.SUPPLIER_ADMIN, Role.SUPPLIER_USER)
# What a webhook can subscribe to (business events; internal delivery topics are not offered).
WEBHOOK_TOPICS = (
    "order.created",
    "order.responded",
    "commitment.changed",
    "order_line.revised",
    "change_request.created",
    "change_request.decided",
    "ship_notice.created",
    "ship_notice.cancelled",
    "ship_notice.received",
    "receipt.recorded",
    "order_line.cancelled",
    "order.changed_in_erp",
    "alerts.opened",
    "document.uploaded",
    "document.reviewed",
    "document.expiring",
    "document.expired",
)
MAX_SUPPLIER_WEBHOOKS = 5
# What a supplier account's own webhook can follow: what happens to its orders and certificates (not the buyers'
# alerts, nor another supplier's uploads); each delivery is about that supplier's own order or document.
SUPPLIER_WEBHOOK_TOPICS = (
    "order.created",
    "order.changed_in_erp",
    "order_line.revised",
    "order_line.cancelled",
    "order.responded",
    "commitment.changed",
    "change_request.decided",
    "ship_notice.created",
    "ship_notice.cancelled",
    "ship_notice.received",
    "receipt.recorded",
    "document.reviewed",
    "document.expiring",
    "document.expired",
)


# --- recipients ---------------------------------------------------------------------


def staff(session: Session, tenant_id: int, roles: Iterable[Role] = STAFF_BUYERS) -> list[int]:
    return list(
        session.execute(
            select(Membership.user_id)
            .where(
                Membership.tenant_id == tenant_id,
                Membership.role.in_(list(roles)),
                Membership.disabled_at.is_(None),
                Membership.supplier_id.is_(None),
            )
            .order_by(Membership.user_id)
        ).scalars()
    )


def supplier_people(session: Session, tenant_id: int, supplier_id: int) -> list[int]:
    return list(
        session.execute(
            select(Membership.user_id)
            .where(
                Membership.tenant_id == tenant_id,
                Membership.supplier_id == supplier_id,
                Membership.role.in_(list(SUPPLIER_PEOPLE)),
                Membership.disabled_at.is_(None),
            )
            .order_by(Membership.user_id)
        ).scalars()
    )


# --- in app and e-mail --------------------------------------------------------------------


def email_mode(session: Session, tenant_id: int, user_id: int) -> EmailMode:
    mode = session.execute(
        select(NotificationPreference.email_mode).where(
            NotificationPreference.tenant_id == tenant_id, NotificationPreference.user_id == user_id
        )
    ).scalar_one_or_none()
    return mode or EmailMode.IMMEDIATE


def set_email_mode(session: Session, *, tenant_id: int, user_id: int, mode: EmailMode) -> None:
    preference = session.execute(
        select(NotificationPreference).where(
            NotificationPreference.tenant_id == tenant_id, NotificationPreference.user_id == user_id
        )
    ).scalar_one_or_none()
    if preference is None:
        session.add(NotificationPreference(tenant_id=tenant_id, user_id=user_id, email_mode=mode))
    else:
        preference.email_mode = mode
    session.flush()


def notify(
    session: Session,
    *,
    tenant_id: int,
    user_ids: Iterable[int],
    topic: str,
    title: str,
    body: str = "",
    url: str = "",
    supplier_name: str = "",
    order_number: str = "",
) -> list[Notification]:
    created = []
    for user_id in dict.fromkeys(user_ids):  # each person once, in order
        mode = email_mode(session, tenant_id, user_id)
        state = {EmailMode.IMMEDIATE: EmailState.QUEUED, EmailMode.DIGEST: EmailState.DIGEST}.get(mode, EmailState.NONE)
        notification = Notification(
            tenant_id=tenant_id,
            user_id=user_id,
            topic=topic,
            title=title[:255],
            body=body,
            url=url,
            supplier_name=supplier_name[:200],
            order_number=order_number[:40],
            email_state=state,
        )
        session.add(notification)
        created.append(notification)
    session.flush()
    for notification in created:
        if notification.email_state == EmailState.QUEUED:
            emit(session, tenant_id, "email.notification", {"notification_id": notification.id})
    return created


# Built once: the bell asks on every page, and building a statement costs about as much as running this one.
# The bell counts unread notifications up to this many and shows "99+" beyond: counting all of them on every
# page cost 3 ms with 20,000 unread (a detection run can notify each buyer of thousands of suppliers).
BELL_CAP = 100


def unread_counted(tenant_id: Any, user_id: Any) -> Any:
    """A scalar subquery: the unread notifications of ``user_id`` in ``tenant_id``, counted up to ``BELL_CAP``
    (both may be columns of an enclosing query, or parameters)."""
    unread = (
        select(Notification.id)
        .where(Notification.tenant_id == tenant_id, Notification.user_id == user_id, Notification.read_at.is_(None))
        .limit(BELL_CAP)
        .correlate_except(Notification)  # the enclosing query's columns stay its own
        .subquery("unread")
    )
    return select(func.count()).select_from(unread).scalar_subquery()


_UNREAD = select(unread_counted(bindparam("tenant_id"), bindparam("user_id")))


def unread_count(session: Session, tenant_id: int, user_id: int) -> int:
    """The bell's count: the unread notifications, up to ``BELL_CAP``."""
    return int(read_columns(session, _UNREAD, {"tenant_id": tenant_id, "user_id": user_id}).scalar_one())


def bell_label(unread: int) -> str:
    """The bell's count as shown: "99+" from ``BELL_CAP`` on."""
    return f"{BELL_CAP - 1}+" if unread >= BELL_CAP else str(unread)


def recent(session: Session, tenant_id: int, user_id: int, *, limit: int = 50) -> list[Notification]:
    return list(
        session.execute(
            select(Notification)
            .where(Notification.tenant_id == tenant_id, Notification.user_id == user_id)
            .order_by(Notification.id.desc())
            .limit(limit)
        ).scalars()
    )


def mark_read(session: Session, *, tenant_id: int, user_id: int, notification_id: int | None = None) -> int:
    """Mark one notification (or all) of this person read; another person's id changes nothing."""
    stmt = (
        update(Notification)
        .where(Notification.tenant_id == tenant_id, Notification.user_id == user_id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if notification_id is not None:
        stmt = stmt.where(Notification.id == notification_id)
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def queue_digests(session: Session, *, tenant_id: int) -> int:
    """One digest e-mail per person with notifications waiting for it."""
    waiting = session.execute(
        select(Notification.user_id, func.max(Notification.id))
        .where(Notification.tenant_id == tenant_id, Notification.email_state == EmailState.DIGEST)
        .group_by(Notification.user_id)
    ).all()
    for user_id, up_to in waiting:
        emit(session, tenant_id, "email.digest", {"user_id": user_id, "up_to_id": up_to})
    return len(waiting)


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str
    html: str


def user_email(session: Session, user_id: int) -> str | None:
    return session.execute(select(User.email).where(User.id == user_id)).scalar_one_or_none()


def digest_groups(notifications: list[Notification]) -> list[tuple[str, list[tuple[str, list[Notification]]]]]:
    """Group by supplier, then by order, keeping the order of first appearance."""
    groups: dict[str, dict[str, list[Notification]]] = {}
    for notification in notifications:
        by_order = groups.setdefault(notification.supplier_name or "General", {})
        by_order.setdefault(notification.order_number or "", []).append(notification)
    return [(supplier, list(orders.items())) for supplier, orders in groups.items()]


# --- webhooks -------------------------------------------------------------------------------


class UnsafeWebhookAddress(ServiceError):
    pass


def check_webhook_url(url: str, *, allow_private: bool) -> None:
    """Refuse what would let a tenant make the portal call into its own network (SSRF).

    Every address the host name resolves to must be public; checked when the webhook is
    saved and again before each delivery (a name can be re-pointed in between).
    """
    parsed = urlsplit(url)
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise UnsafeWebhookAddress("The webhook address must be a full https:// URL.")
    if allow_private:
        return
    if parsed.scheme != "https":
        raise UnsafeWebhookAddress("The webhook address must use https://.")
    try:
        infos = socket.getaddrinfo(parsed.hostname, parsed.port or 443, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise UnsafeWebhookAddress(f"The host {parsed.hostname} cannot be resolved.") from exc
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not address.is_global or address.is_multicast:
            raise UnsafeWebhookAddress(
                f"The webhook address resolves to {address}, which is not a public address; "
                "the portal only calls public endpoints."
            )


def create_webhook(
    session: Session,
    *,
    tenant_id: int,
    url: str,
    topics: list[str],
    description: str,
    actor: Actor,
    allow_private: bool = False,
    supplier_id: int | None = None,
) -> tuple[Webhook, str]:
    """Register an endpoint, the tenant's or (``supplier_id``) a supplier account's; the signing secret is
    returned once, to show to the administrator."""
    url = url.strip()
    if not url.startswith(("https://", "http://")):
        raise ServiceError("The webhook address must start with https:// (or http:// for a local receiver).")
    check_webhook_url(url, allow_private=allow_private)
    if supplier_id is not None and len(supplier_webhooks(session, tenant_id, supplier_id)) >= MAX_SUPPLIER_WEBHOOKS:
        raise ServiceError(f"A supplier account has at most {MAX_SUPPLIER_WEBHOOKS} webhooks: remove one first.")
    unknown = sorted(set(topics) - set(WEBHOOK_TOPICS if supplier_id is None else SUPPLIER_WEBHOOK_TOPICS))
    if unknown:
        raise ServiceError(f"Unknown topics: {', '.join(unknown)}.")
    secret = "whsec_" + secrets.token_urlsafe(32)
    webhook = Webhook(
        tenant_id=tenant_id,
        supplier_id=supplier_id,
        url=url[:500],
        topics=sorted(set(topics)),
        description=description.strip()[:200],
        secret_encrypted=encrypt(secret),
    )
    session.add(webhook)
    session.flush()
    actor.audit(
        session,
        "webhook.created",
        tenant_id=tenant_id,
        object_type="webhook",
        object_id=webhook.id,
        after={"url": webhook.url, "topics": webhook.topics, "supplier_id": supplier_id},
    )
    return webhook, secret


def delete_webhook(session: Session, *, webhook: Webhook, actor: Actor) -> None:
    actor.audit(
        session,
        "webhook.deleted",
        tenant_id=webhook.tenant_id,
        object_type="webhook",
        object_id=webhook.id,
        before={"url": webhook.url},
    )
    session.delete(webhook)
    session.flush()


def _event_supplier(session: Session, event: OutboxEvent) -> int | None:
    """The supplier account an event is about (its order's, or its document's); None when it names neither."""
    from portal.documents.models import Document
    from portal.orders.models import PurchaseOrder

    payload = event.payload
    if isinstance(payload.get("order_id"), int):
        return session.execute(
            select(PurchaseOrder.supplier_id).where(
                PurchaseOrder.tenant_id == event.tenant_id, PurchaseOrder.id == payload["order_id"]
            )
        ).scalar_one_or_none()
    if isinstance(payload.get("document_id"), int):
        return session.execute(
            select(Document.supplier_id).where(
                Document.tenant_id == event.tenant_id, Document.id == payload["document_id"]
            )
        ).scalar_one_or_none()
    return None


def fan_out_webhooks(session: Session, event: OutboxEvent) -> int:
    """One delivery per webhook that follows the event: the tenant's, and the account's of the supplier the
    event is about (never another supplier's: an event naming no order or document reaches no supplier)."""
    hooks = session.execute(
        select(Webhook.id, Webhook.topics, Webhook.supplier_id).where(
            Webhook.tenant_id == event.tenant_id, Webhook.active.is_(True)
        )
    ).all()
    queued = 0
    about: list[int | None] = []  # the event's supplier, looked up once when a supplier's webhook asks
    for hook_id, topics, supplier_id in hooks:
        if topics and event.topic not in topics:
            continue
        if supplier_id is not None:
            if event.topic not in SUPPLIER_WEBHOOK_TOPICS:
                continue
            if not about:
                about.append(_event_supplier(session, event))
            if about[0] != supplier_id:
                continue
        emit(
            session,
            event.tenant_id,
            "webhook.deliver",
            {
                "webhook_id": hook_id,
                "delivery_key": f"evt_{event.id}_{hook_id}",
                "topic": event.topic,
                "occurred_at": event.created_at.isoformat(),
                "data": event.payload,
            },
        )
        queued += 1
    return queued


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``: the timestamp is signed against replays."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def webhook_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "id": payload["delivery_key"],
            "topic": payload["topic"],
            "occurred_at": payload["occurred_at"],
            "data": payload["data"],
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()


def record_delivery(
    session: Session,
    *,
    tenant_id: int,
    webhook_id: int,
    payload: dict[str, Any],
    attempt: int,
    status_code: int | None,
    error: str,
    duration_ms: int,
) -> None:
    session.add(
        WebhookDelivery(
            tenant_id=tenant_id,
            webhook_id=webhook_id,
            delivery_key=payload["delivery_key"],
            topic=payload["topic"],
            attempt=attempt,
            status_code=status_code,
            error=error[:2000],
            duration_ms=duration_ms,
        )
    )


def deliveries(session: Session, tenant_id: int, webhook_id: int, *, limit: int = 50) -> list[WebhookDelivery]:
    return list(
        session.execute(
            select(WebhookDelivery)
            .where(WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.webhook_id == webhook_id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        ).scalars()
    )


def supplier_webhooks(session: Session, tenant_id: int, supplier_id: int) -> list[Webhook]:
    return list(
        session.execute(
            select(Webhook)
            .where(Webhook.tenant_id == tenant_id, Webhook.supplier_id == supplier_id)
            .order_by(Webhook.id)
        ).scalars()
    )
