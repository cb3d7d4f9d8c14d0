"""API keys and the supplier API's reading of answers (business rules; the caller commits).

A key is ``spk_<tenant id>_<secret>``: the secret is 32 random bytes, only its SHA-256 is stored, and the key
is shown once when issued. The tenant in the key lets its lookup run under that tenant's row-level security,
as every other statement of a request does. A key stops working when it is revoked or expires, and when the
membership it was issued for is disabled or no longer a supplier role of that supplier account.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from flask import url_for
from sqlalchemy import and_, delete, select, update
from sqlalchemy.orm import Session
from werkzeug.datastructures import FileStorage, MultiDict

from portal.api.models import ApiKey, IdempotentWrite
from portal.auth.models import Membership, User
from portal.auth.permissions import Role
from portal.auth.services import Actor, ServiceError
from portal.db import set_context, utcnow
from portal.orders.forms import parse_date, parse_quantity
from portal.orders.models import (
    DelayReason,
    DeliverySchedule,
    OrderMessage,
    OrderMessageFile,
    PurchaseOrder,
    PurchaseOrderLine,
    RejectReason,
    ShipNotice,
    ShipNoticeLine,
)
from portal.orders.services import MAX_DELIVERIES, AttachedFile, Delivery, LineAnswer, ShipmentInput, order_lines
from portal.suppliers.models import Supplier
from portal.tenancy.models import Tenant

KEY_PREFIX = "spk"
_KEY = re.compile(rf"^{KEY_PREFIX}_([1-9][0-9]{{0,17}})_([A-Za-z0-9_-]{{43}})$")
# Lifetimes offered when a key is issued (days); a key never lives longer than a year.
LIFETIMES = (30, 90, 365)
DEFAULT_LIFETIME = 90
# Keys a person may hold at once in one supplier account (revoked and expired ones do not count).
MAX_KEYS = 10
# The actor columns of the audit trail and the ledger.
ACTOR_LENGTH = 254
# ``last_used_at`` is written at most this often: most calls write nothing.
TOUCH_EVERY = timedelta(minutes=1)


def _digest(secret_key: str) -> str:
    return hashlib.sha256(secret_key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyOwner:
    """The membership a key is issued for (as ``portal.web.PortalContext`` names it)."""

    membership_id: int
    tenant_id: int
    user_id: int
    role: Role
    supplier_id: int | None


def keys_of(session: Session, owner: KeyOwner) -> list[ApiKey]:
    """The person's keys in this supplier account, newest first (revoked and expired ones too: the list shows
    when each stopped working)."""
    return list(
        session.execute(
            select(ApiKey)
            .where(ApiKey.tenant_id == owner.tenant_id, ApiKey.membership_id == owner.membership_id)
            .order_by(ApiKey.id.desc())
        ).scalars()
    )


@dataclass(frozen=True)
class SupplierKey:
    """A key of one of a supplier account's people, as the tenant's administrators see it."""

    key: ApiKey
    person: str


def supplier_keys(session: Session, tenant_id: int, supplier_id: int) -> list[SupplierKey]:
    """Every key issued in a supplier account, newest first, with the person each acts for."""
    rows = session.execute(
        select(ApiKey, User.email)
        .join(User, User.id == ApiKey.user_id)
        .where(ApiKey.tenant_id == tenant_id, ApiKey.supplier_id == supplier_id)
        .order_by(ApiKey.id.desc())
    ).all()
    return [SupplierKey(key, email) for key, email in rows]


def supplier_key(session: Session, tenant_id: int, supplier_id: int, key_id: int) -> ApiKey | None:
    return session.execute(
        select(ApiKey).where(ApiKey.tenant_id == tenant_id, ApiKey.supplier_id == supplier_id, ApiKey.id == key_id)
    ).scalar_one_or_none()


def key_of(session: Session, owner: KeyOwner, key_id: int) -> ApiKey | None:
    """One of the person's own keys by id, through the tenant and the membership (another's: None)."""
    return session.execute(
        select(ApiKey).where(
            ApiKey.tenant_id == owner.tenant_id, ApiKey.membership_id == owner.membership_id, ApiKey.id == key_id
        )
    ).scalar_one_or_none()


def issue_key(
    session: Session, *, owner: KeyOwner, name: str, days: int, actor: Actor, now: datetime | None = None
) -> tuple[ApiKey, str]:
    """A new key for ``owner``; returns the row and the key itself, which is never shown again."""
    now = now or utcnow()
    name = name.strip()
    if owner.supplier_id is None or not owner.role.is_supplier_role:
        raise ServiceError("API keys are for supplier accounts.")
    if not name:
        raise ServiceError("Name the key after the system that will use it.", "name")
    if len(name) > 100:
        raise ServiceError("Keep the name under 100 characters.", "name")
    if days not in LIFETIMES:
        raise ServiceError("Choose how long the key stays valid.", "days")
    usable = sum(1 for key in keys_of(session, owner) if key.usable(now))
    if usable >= MAX_KEYS:
        raise ServiceError(f"You hold {MAX_KEYS} valid keys already: revoke one you no longer use first.")
    secret_key = f"{KEY_PREFIX}_{owner.tenant_id}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        tenant_id=owner.tenant_id,
        membership_id=owner.membership_id,
        user_id=owner.user_id,
        supplier_id=owner.supplier_id,
        name=name,
        token_hash=_digest(secret_key),
        hint=secret_key[: len(f"{KEY_PREFIX}_{owner.tenant_id}_") + 4],
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    session.add(key)
    session.flush()
    actor.audit(
        session,
        "api_key.issued",
        tenant_id=owner.tenant_id,
        object_type="api_key",
        object_id=key.id,
        after={"name": name, "hint": key.hint, "expires_at": key.expires_at.isoformat()},
    )
    return key, secret_key


def revoke_key(session: Session, *, key: ApiKey, actor: Actor) -> None:
    if key.revoked_at is not None:
        raise ServiceError("This key is revoked already.")
    _revoke(session, key, actor, utcnow())
    session.flush()


def _revoke(session: Session, key: ApiKey, actor: Actor, now: datetime, reason: str = "") -> None:
    key.revoked_at = now
    actor.audit(
        session,
        "api_key.revoked",
        tenant_id=key.tenant_id,
        object_type="api_key",
        object_id=key.id,
        before={"name": key.name, "hint": key.hint},
        **({"reason": reason} if reason else {}),
    )


def revoke_keys_of_person(session: Session, *, tenant_id: int, user_id: int, actor: Actor, reason: str) -> int:
    """Revoke every key a person holds in the tenant, each audited with ``reason``: their access was cut
    (membership disabled) or their sign-in may be in someone else's hands (MFA reset by an administrator). A
    key stays revoked when the access comes back: the person issues a new one. Returns how many were revoked."""
    now = utcnow()
    keys = session.execute(
        select(ApiKey).where(ApiKey.tenant_id == tenant_id, ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
    ).scalars()
    revoked = 0
    for key in keys:
        _revoke(session, key, actor, now, reason)
        revoked += 1
    session.flush()
    return revoked


@dataclass(frozen=True)
class ApiCaller:
    """Who a valid key lets in: the person, in the supplier account of the membership it was issued for."""

    key_id: int
    key_name: str
    user_id: int
    email: str
    membership_id: int
    tenant_id: int
    tenant_name: str
    role: Role
    supplier_id: int
    supplier_name: str

    @property
    def label(self) -> str:
        """As the audit trail and the ledger name the caller: the person, and the key they used (cut to the 254
        characters those columns hold: a long address and a long key name together may be longer)."""
        return f"{self.email} (API key “{self.key_name}”)"[:ACTOR_LENGTH]


def authenticate(session: Session, presented: str, *, now: datetime | None = None) -> ApiCaller | None:
    """The caller a presented key lets in, or None; binds the session's row-level security to the key's tenant
    and person. A key that names no tenant, or the wrong one, finds no row."""
    match = _KEY.match(presented or "")
    if match is None:
        return None
    tenant_id = int(match.group(1))
    now = now or utcnow()
    set_context(session, tenant_id=tenant_id, user_id=None)
    found = session.execute(
        select(
            ApiKey.id,
            ApiKey.name,
            ApiKey.supplier_id,
            ApiKey.expires_at,
            ApiKey.revoked_at,
            ApiKey.last_used_at,
            Membership.id,
            Membership.role,
            Membership.supplier_id,
            Membership.disabled_at,
            User.id,
            User.email,
            Tenant.name,
            Supplier.name,
        )
        .join(Membership, Membership.id == ApiKey.membership_id)
        .join(User, User.id == ApiKey.user_id)
        .join(Tenant, Tenant.id == ApiKey.tenant_id)
        .join(Supplier, Supplier.id == ApiKey.supplier_id)
        .where(ApiKey.tenant_id == tenant_id, ApiKey.token_hash == _digest(presented))
    ).first()
    if found is None:
        set_context(session, tenant_id=None, user_id=None)
        return None
    (key_id, key_name, supplier_id, expires_at, revoked_at, last_used_at, membership_id, role, member_supplier,
     disabled_at, user_id, email, tenant_name, supplier_name) = found  # fmt: skip
    valid = (
        revoked_at is None
        and expires_at > now
        and disabled_at is None
        and Role(role).is_supplier_role
        and member_supplier == supplier_id
    )
    if not valid:
        set_context(session, tenant_id=None, user_id=None)
        return None
    set_context(session, tenant_id=tenant_id, user_id=user_id)
    if last_used_at is None or now - last_used_at > TOUCH_EVERY:
        session.execute(
            update(ApiKey)
            .where(ApiKey.tenant_id == tenant_id, ApiKey.id == key_id)
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
    return ApiCaller(
        key_id, key_name, user_id, email, membership_id, tenant_id, tenant_name, Role(role), supplier_id, supplier_name
    )


# --- answers as JSON ------------------------------------------------------------------


class BadRequest(ServiceError):
    """A request body the API cannot read at all (not JSON, or not the documented shape)."""


ACTIONS = {"accept": "accept", "change": "change", "reject": "reject"}


def _deliveries(raw: Any, problems: list[str], what: str) -> tuple[Delivery, ...]:
    """``[{"quantity": "60", "date": "2026-12-01"}, ...]`` read, its problems added to ``problems``."""
    if not isinstance(raw, list) or not raw:
        problems.append(f"{what} needs deliveries: a list of {{quantity, date}}.")
        return ()
    if len(raw) > MAX_DELIVERIES:
        problems.append(f"Split into at most {MAX_DELIVERIES} deliveries.")
        return ()
    deliveries = []
    for number, delivery in enumerate(raw, start=1):
        delivery = delivery if isinstance(delivery, Mapping) else {}
        amount = parse_quantity(str(delivery.get("quantity", "")))
        when = parse_date(str(delivery.get("date", "")))
        if amount is None:
            problems.append(f"Delivery {number}: give the quantity as a number.")
        if when is None:
            problems.append(f"Delivery {number}: give the date as YYYY-MM-DD.")
        if amount is not None and when is not None:
            deliveries.append(Delivery(amount, when))
    return tuple(deliveries)


def _version(body: Mapping[str, Any]) -> int | None:
    version = body.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
        raise BadRequest("version must be the order's version, a whole number (as GET /orders/<id> gives it).")
    return version


def _text(body: Mapping[str, Any], name: str, limit: int, problems: list[str]) -> str:
    value = str(body.get(name, "") or "").strip()
    if len(value) > limit:
        problems.append(f"Keep {name} under {limit:,} characters.")
    return value


@dataclass(frozen=True)
class NewPromise:
    deliveries: tuple[Delivery, ...]
    reason_code: str
    comment: str


def parse_promise(body: Any) -> tuple[int | None, NewPromise | None, list[str]]:
    """A confirmed line's new deliveries: ``{"version": 4, "deliveries": [...], "reason": "transport",
    "comment": "..."}``; the version, the promise and its problems."""
    if not isinstance(body, Mapping):
        raise BadRequest("Send a JSON object with the order's version, the new deliveries and a reason.")
    version, problems = _version(body), list[str]()
    deliveries = _deliveries(body.get("deliveries"), problems, "A new promise")
    reason = str(body.get("reason", "") or "")
    if reason not in {r.value for r in DelayReason}:
        problems.append(f"Give the reason for the change: one of {', '.join(r.value for r in DelayReason)}.")
    comment = _text(body, "comment", 2000, problems)
    return version, (None if problems else NewPromise(deliveries, reason, comment)), problems


def parse_ship_notice(body: Any) -> tuple[int | None, ShipmentInput | None, dict[int, Decimal], dict[str, list[str]]]:
    """A ship notice: ``{"version": 5, "ship_date": "2026-12-01", "expected_arrival": "2026-12-03",
    "carrier": "...", "tracking_number": "...", "packing_slip": "...", "lines": [{"line_id": 11, "quantity":
    "60"}, ...]}``; the version, the shipment, the quantities by line and the problems (by line id, ``"order"``
    for the notice itself)."""
    if not isinstance(body, Mapping):
        raise BadRequest("Send a JSON object with the order's version, the dates and the lines shipped.")
    version, problems = _version(body), list[str]()
    errors: dict[str, list[str]] = {}
    ship_date = parse_date(str(body.get("ship_date", "")))
    arrival = parse_date(str(body.get("expected_arrival", "")))
    if ship_date is None:
        problems.append("Give the ship_date as YYYY-MM-DD.")
    if arrival is None:
        problems.append("Give the expected_arrival as YYYY-MM-DD.")
    texts = {name: _text(body, name, 120, problems) for name in ("carrier", "tracking_number", "packing_slip")}
    quantities: dict[int, Decimal] = {}
    raw_lines = body.get("lines")
    if not isinstance(raw_lines, list) or not raw_lines:
        problems.append("lines must list what ships: [{line_id, quantity}, ...].")
        raw_lines = []
    for index, raw in enumerate(raw_lines, start=1):
        if not isinstance(raw, Mapping) or not isinstance(raw.get("line_id"), int):
            problems.append(f"Line {index}: give the line_id of the line that ships.")
            continue
        amount = parse_quantity(str(raw.get("quantity", "")))
        if amount is None or amount <= 0:
            errors[str(raw["line_id"])] = ["Give the quantity shipped as a number above zero."]
        elif raw["line_id"] in quantities:
            errors[str(raw["line_id"])] = ["The line is listed twice; give one quantity per line."]
        else:
            quantities[raw["line_id"]] = amount
    if problems:
        errors["order"] = problems
    if errors or ship_date is None or arrival is None:
        return version, None, quantities, errors
    return version, ShipmentInput(ship_date, arrival, **texts), quantities, {}


def parse_answers(body: Any) -> tuple[int | None, list[LineAnswer], dict[str, list[str]]]:
    """The order version and the answers of a JSON body, and the problems found (by line id, ``"order"`` for the
    body itself). Every problem is collected; nothing is saved when there is one.

    ``{"version": 3, "answers": [{"line_id": 11, "action": "accept"},
    {"line_id": 12, "action": "change", "deliveries": [{"quantity": "60", "date": "2026-12-01"}, ...],
    "price": "2.40", "comment": "..."}, {"line_id": 13, "action": "reject", "reason": "discontinued"}]}``"""
    if not isinstance(body, Mapping):
        raise BadRequest("Send a JSON object with the order's version and its answers.")
    version = _version(body)
    raw_answers = body.get("answers")
    if not isinstance(raw_answers, list):
        raise BadRequest("answers must be a list of line answers.")
    errors: dict[str, list[str]] = {}
    answers: list[LineAnswer] = []
    if not raw_answers:
        errors["order"] = ["Answer at least one line."]
    for index, raw in enumerate(raw_answers, start=1):
        if not isinstance(raw, Mapping) or not isinstance(raw.get("line_id"), int):
            errors.setdefault("order", []).append(f"Answer {index}: give the line_id of the line it answers.")
            continue
        line_id, problems = int(raw["line_id"]), list[str]()
        action = ACTIONS.get(str(raw.get("action", "")))
        if action is None:
            errors[str(line_id)] = ["action must be accept, change or reject."]
            continue
        deliveries: tuple[Delivery, ...] = ()
        raw_deliveries = raw.get("deliveries", [])
        if action == "change":
            deliveries = _deliveries(raw_deliveries, problems, "A change")
        elif raw_deliveries:
            problems.append(f"Deliveries go with the action change, not {action}.")
        price: Decimal | None = None
        if raw.get("price") is not None:
            if action == "reject":
                problems.append("A rejection has no price.")
            else:
                price = parse_quantity(str(raw["price"]))
                if price is None:
                    problems.append("Give the price as a number.")
        reason = str(raw.get("reason", "") or "")
        if action == "reject" and reason not in {r.value for r in RejectReason}:
            choices = ", ".join(r.value for r in RejectReason)
            problems.append(f"A rejection needs a reason: one of {choices}.")
        comment = _text(raw, "comment", 2000, problems)
        if problems:
            errors[str(line_id)] = problems
            continue
        answers.append(
            LineAnswer(line_id, action, deliveries, price, reason if action == "reject" else "", comment)  # type: ignore[arg-type]
        )
    return version, answers, errors


def priced_as_ordered(answers: Sequence[LineAnswer], lines: Sequence[PurchaseOrderLine]) -> list[LineAnswer]:
    """The answers with a price equal to the line's dropped (as the answer form does): only a different price is
    a price change for the buyer."""
    prices = {line.id: line.unit_price for line in lines}
    return [
        LineAnswer(a.line_id, a.action, a.deliveries, None, a.reason_code, a.comment)
        if a.price is not None and prices.get(a.line_id) == a.price
        else a
        for a in answers
    ]


# --- orders as JSON -------------------------------------------------------------------


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def day_text(value: date | None) -> str | None:
    """A day as the API writes it (YYYY-MM-DD), or None."""
    return None if value is None else value.isoformat()


def order_document(session: Session, order: PurchaseOrder) -> dict[str, Any]:
    """An order as the API shows it: its header, its lines and each line's current deliveries (two statements
    after the order, whatever the number of lines)."""
    lines = order_lines(session, order)
    schedules: dict[int, list[dict[str, str | None]]] = {line.id: [] for line in lines}
    if lines:
        for line_id, amount, promised in session.execute(
            select(DeliverySchedule.line_id, DeliverySchedule.quantity, DeliverySchedule.promised_date)
            .where(
                DeliverySchedule.tenant_id == order.tenant_id,
                DeliverySchedule.line_id.in_(list(schedules)),
                DeliverySchedule.active.is_(True),
            )
            .order_by(DeliverySchedule.line_id, DeliverySchedule.position)
        ):
            schedules[line_id].append({"quantity": _money(amount), "date": day_text(promised)})
    notices = session.execute(
        select(ShipNotice)
        .where(ShipNotice.tenant_id == order.tenant_id, ShipNotice.order_id == order.id)
        .order_by(ShipNotice.id)
    ).scalars()
    notice_lines: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for notice_id, line_id, shipped, arrived in session.execute(
        select(ShipNoticeLine.notice_id, ShipNoticeLine.line_id, ShipNoticeLine.quantity,
               ShipNoticeLine.received_quantity)
        .join(ShipNotice, and_(ShipNotice.id == ShipNoticeLine.notice_id, ShipNotice.tenant_id == order.tenant_id))
        .where(ShipNoticeLine.tenant_id == order.tenant_id, ShipNotice.order_id == order.id)
        .order_by(ShipNoticeLine.id)
    ):  # fmt: skip
        notice_lines[notice_id].append(
            {"line_id": line_id, "quantity": _money(shipped), "received_quantity": _money(arrived)}
        )
    return {
        "id": order.id,
        "number": order.number,
        "version": order.version,
        "state": order.state.value,
        "order_date": day_text(order.order_date),
        "due_date": day_text(order.due_date),
        "currency": order.currency,
        "total_value": _money(order.total_value),
        "lines": [
            {
                "id": line.id,
                "position": line.position,
                "product_code": line.product_code,
                "product_name": line.product_name,
                "supplier_product_code": line.supplier_product_code,
                "quantity": _money(line.quantity),
                "unit": line.unit,
                "unit_price": _money(line.unit_price),
                "requested_date": day_text(line.requested_date),
                "state": line.state.value,
                "deliveries": schedules[line.id],
                "shipped_quantity": _money(line.shipped_quantity),
                "received_quantity": _money(line.received_quantity),
            }
            for line in lines
        ],
        "ship_notices": [
            {
                "id": notice.id,
                "number": notice.number,
                "state": notice.state.value,
                "ship_date": day_text(notice.ship_date),
                "expected_arrival": day_text(notice.expected_arrival),
                "carrier": notice.carrier,
                "tracking_number": notice.tracking_number,
                "packing_slip_url": url_for("api.packing_slip", order_id=order.id, notice_id=notice.id),
                "lines": notice_lines[notice.id],
            }
            for notice in notices
        ],
    }


def message_document(
    message: OrderMessage, messages_url: str, files: Sequence[OrderMessageFile] = ()
) -> dict[str, Any]:
    """A message as the API gives it; ``messages_url`` is the order's messages' address, under which each file is."""
    return {
        "id": message.id,
        "author": message.author,
        "from_supplier": message.from_supplier,
        "body": message.body,
        "created_at": message.created_at.isoformat(),
        "files": [
            {
                "id": attached.id,
                "name": attached.original_name,
                "size": attached.size,
                "content_type": attached.content_type,
                "url": f"{messages_url}/{message.id}/files/{attached.id}",
            }
            for attached in files
        ],
    }  # fmt: skip


MESSAGE_PARTS = ("body", "files")


def parse_message_parts(
    form: MultiDict[str, str], files: MultiDict[str, FileStorage]
) -> tuple[str, list[AttachedFile]]:
    """A message sent as multipart/form-data: its words (the field ``body``, once, may be empty) and its files
    (the parts ``files``, each with a file name). Raises BadRequest for any other shape."""
    unknown = sorted((set(form) | set(files)) - set(MESSAGE_PARTS))
    if unknown or "files" in form or "body" in files:
        name = unknown[0] if unknown else ("files" if "files" in form else "body")
        raise BadRequest(f"Unknown part {name!r}: a message takes the field 'body' and file parts 'files'.")
    if len(form.getlist("body")) > 1:
        raise BadRequest("Send body once.")
    attached = files.getlist("files")
    if any(not part.filename for part in attached):
        raise BadRequest("Give each file part 'files' its file name.")
    return (form.get("body") or ""), [AttachedFile(part.filename or "", part.read()) for part in attached]


def order_messages(session: Session, order: PurchaseOrder, messages_url: str) -> list[dict[str, Any]]:
    """The order's conversation between the supplier and the buyers, oldest first, each message with its files."""
    messages: dict[int, tuple[OrderMessage, list[OrderMessageFile]]] = {}
    for message, attached in session.execute(
        select(OrderMessage, OrderMessageFile)
        .outerjoin(OrderMessageFile, and_(OrderMessageFile.message_id == OrderMessage.id,
                                          OrderMessageFile.tenant_id == order.tenant_id))
        .where(OrderMessage.tenant_id == order.tenant_id, OrderMessage.order_id == order.id)
        .order_by(OrderMessage.id, OrderMessageFile.id)
    ).all():  # fmt: skip
        files = messages.setdefault(message.id, (message, []))[1]
        if attached is not None:
            files.append(attached)
    return [message_document(message, messages_url, files) for message, files in messages.values()]


# --- idempotent writes ---------------------------------------------------------------------

IDEMPOTENCY_WINDOW = timedelta(hours=24)
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes a retry the same request: its method, its path and its body."""
    return hashlib.sha256(b"\0".join((method.encode(), path.encode(), body))).hexdigest()


def replay_of(
    session: Session, caller: ApiCaller, idempotency_key: str, fingerprint: str, *, now: datetime | None = None
) -> tuple[int, dict[str, Any]] | None:
    """The answer a write made with this key and ``idempotency_key`` got, within the last day (None: not made,
    or longer ago). The same key for another request is refused: it would otherwise answer the wrong call."""
    now = now or utcnow()
    row = session.execute(
        select(IdempotentWrite).where(
            IdempotentWrite.tenant_id == caller.tenant_id,
            IdempotentWrite.api_key_id == caller.key_id,
            IdempotentWrite.idempotency_key == idempotency_key,
        )
    ).scalar_one_or_none()
    if row is None:
        return None
    if row.created_at <= now - IDEMPOTENCY_WINDOW:
        session.delete(row)
        session.flush()
        return None
    if row.request_hash != fingerprint:
        raise ServiceError(
            "This Idempotency-Key was used for another request in the last 24 hours: use a new key for each write."
        )
    return row.status, row.response


def remember_write(
    session: Session,
    caller: ApiCaller,
    idempotency_key: str,
    fingerprint: str,
    status: int,
    response: dict[str, Any],
    *,
    now: datetime | None = None,
) -> None:
    """Keep a write's answer for its retries, in the write's own transaction (both land, or neither); the key's
    answers older than a day go."""
    now = now or utcnow()
    session.execute(
        delete(IdempotentWrite)
        .where(
            IdempotentWrite.tenant_id == caller.tenant_id,
            IdempotentWrite.api_key_id == caller.key_id,
            IdempotentWrite.created_at <= now - IDEMPOTENCY_WINDOW,
        )
        .execution_options(synchronize_session=False)
    )
    session.add(
        IdempotentWrite(
            tenant_id=caller.tenant_id,
            api_key_id=caller.key_id,
            idempotency_key=idempotency_key,
            request_hash=fingerprint,
            status=status,
            response=response,
            created_at=now,
        )
    )
    session.flush()
