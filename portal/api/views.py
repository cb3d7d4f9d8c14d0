"""The supplier API (JSON under ``/api/v1``, with API keys) and the page where suppliers issue and revoke keys.

API requests carry ``Authorization: Bearer <key>`` and nothing else: no cookie is read and none is set, so a
browser's session can never call the API for someone (and CSRF tokens have no part in it). The request
wrapper is the same as for pages: one transaction, committed below 400; a key binds the request to its tenant
and supplier account exactly as a chosen membership does, and every order is loaded through them (a foreign
id answers 404).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar

from flask import Blueprint, Flask, abort, current_app, g, jsonify, render_template, request, url_for
from limits import parse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from portal.api import certificates, services
from portal.api.forms import ActionForm, ApiKeyForm, SupplierWebhookForm
from portal.auth.access import Access, _mark, get_scoped_or_404, public, requires
from portal.auth.admin_views import ctx
from portal.auth.permissions import Permission
from portal.auth.ratelimit import Limited, RateLimiter, Rule
from portal.auth.services import Actor, ServiceError
from portal.auth.views import actor, client_ip
from portal.db import utcnow
from portal.documents.antivirus import scanner_for
from portal.documents.models import Document, DocumentType
from portal.documents.validation import UploadRejected
from portal.notifications import services as notifications
from portal.notifications.models import Webhook, WebhookDelivery
from portal.numbers import MAX_PAGE, whole_number
from portal.orders import queries
from portal.orders import services as orders
from portal.orders.forms import parse_date
from portal.orders.models import PurchaseOrder, PurchaseOrderLine, Source
from portal.suppliers.models import Supplier
from portal.web import PortalContext, db_session

bp = Blueprint("api", __name__, url_prefix="/api/v1")
keys_bp = Blueprint("api_keys", __name__, template_folder="templates")

F = TypeVar("F", bound=Callable[..., Any])

# A system calling in a loop is slowed down, not the portal (``API_CALLS_PER_MINUTE`` per key); a scanner trying
# keys is stopped.
FAILURES_PER_IP = Rule("api-fail-ip", parse("30 per 5 minutes"))


@functools.cache
def _calls_per_key(per_minute: int) -> Rule:
    return Rule("api-key", parse(f"{per_minute} per minute"))


def _limiter() -> RateLimiter:
    return current_app.extensions["portal.ratelimiter"]


def _error(status: int, message: str, **extra: Any) -> Response:
    response = jsonify({"error": {"status": status, "message": message, **extra}})
    response.status_code = status
    return response


def _unauthorised(message: str) -> Response:
    response = _error(401, message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="supplier-api"'
    return response


def caller() -> services.ApiCaller:
    return g.api_caller


def api_actor() -> Actor:
    who = caller()
    return Actor(who.user_id, who.label, client_ip())


def requires_key(permission: Permission, *, query: frozenset[str] = frozenset()) -> Callable[[F], F]:
    """The API's access declaration: a valid key whose role has ``permission`` (401 without one, 403 without
    the permission); the request is bound to the key's tenant and supplier account. A query argument not in
    ``query`` is refused (400): a misspelt filter must not quietly list everything."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            limiter = _limiter()
            scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
            found = None
            if scheme.lower() == "bearer":
                found = services.authenticate(db_session(), presented.strip())
            if found is None:
                # Counted only when a key fails: a valid key costs no look at the address's window.
                try:
                    limiter.take(FAILURES_PER_IP, client_ip())
                except Limited as exc:
                    response = _error(429, "Too many requests with an invalid key: wait before trying again.")
                    response.headers["Retry-After"] = str(exc.retry_after)
                    return response
                return _unauthorised("Send a valid API key: Authorization: Bearer <key>.")
            try:
                per_minute = current_app.extensions["portal.settings"].api_calls_per_minute
                limiter.take(_calls_per_key(per_minute), str(found.key_id))
            except Limited as exc:
                response = _error(429, "Too many requests with this key: wait before trying again.")
                response.headers["Retry-After"] = str(exc.retry_after)
                return response
            g.api_caller = found
            context = PortalContext(
                membership_id=found.membership_id,
                tenant_id=found.tenant_id,
                tenant_name=found.tenant_name,
                role=found.role,
                supplier_id=found.supplier_id,
                supplier_name=found.supplier_name,
            )
            g.portal_context = context
            if not context.can(permission):
                return _error(403, "This key's role may not do this.")
            unknown = sorted(set(request.args) - query)
            if unknown:
                known = f"; it takes {', '.join(sorted(query))}" if query else ""
                return _error(400, f"Unknown query argument {unknown[0]!r}{known}.")
            return view(*args, **kwargs)

        _mark(wrapper, Access("api_key", permission))
        return wrapper  # type: ignore[return-value]

    return decorator


API_PREFIX = "/api/v1/"


def is_api_request() -> bool:
    """Whether this request is the API's, matched or not (an unknown address or method under it too)."""
    return request.path.startswith(API_PREFIX)


def http_error(exc: HTTPException) -> Response:
    """An HTTP error as the API answers it (``portal.web`` hands over every error of an API request)."""
    code = exc.code or 500
    messages = {404: "There is nothing here, or this key has no access to it.", 405: "Not allowed this way."}
    response = _error(code, messages.get(code, exc.description or exc.name))
    if code == 405 and getattr(exc, "valid_methods", None):
        response.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
    return response


def unexpected_error() -> Response:
    return _error(500, "Something went wrong; the error has been logged. Nothing was saved.")


def _order(order_id: int) -> PurchaseOrder:
    order: PurchaseOrder = get_scoped_or_404(db_session(), PurchaseOrder, order_id, ctx())
    return order


def _line(order: PurchaseOrder, line_id: int) -> PurchaseOrderLine:
    """A line of ``order`` (loaded through the tenant and the supplier account already): else 404."""
    line = orders.order_line(db_session(), order, line_id)
    if line is None:
        abort(404)
    return line


def _page_arg() -> int | None:
    """The ``page`` query argument, 1 when absent; None when it is not a whole number from 1 to 100,000."""
    if "page" not in request.args:
        return 1
    return whole_number(request.args["page"], MAX_PAGE) or None


@bp.get("/openapi.json")
@public
def openapi() -> Response:
    """The API's description (OpenAPI 3.0), for client generators and people: no key needed."""
    from portal.api.openapi import document

    return jsonify(document())


@bp.get("/me")
@requires_key(Permission.ORDERS_VIEW)
def me() -> Response:
    """Who the key acts for: to check a key before using it."""
    who = caller()
    return jsonify(
        {
            "user": who.email,
            "key": who.key_name,
            "customer": who.tenant_name,
            "supplier": who.supplier_name,
            "role": who.role.value,
        }
    )


@bp.get("/orders")
@requires_key(Permission.ORDERS_VIEW, query=frozenset({"state", "q", "due_from", "due_to", "sort", "page"}))
def list_orders() -> Response:
    """The supplier's orders, as the inbox lists them: by state (the inbox's tabs), search, due dates, sort."""
    context = ctx()
    state = request.args.get("state", "needs_response")
    if state not in queries.TAB_LABELS:
        return _error(400, f"state must be one of {', '.join(queries.TAB_LABELS)}.")
    sort = request.args.get("sort", "due")
    if sort not in queries.SORTS:
        return _error(400, f"sort must be one of {', '.join(queries.SORTS)}.")
    # A system's query is read strictly (a page or a date it did not mean would be answered quietly otherwise).
    page_number = _page_arg()
    if page_number is None:
        return _error(400, "page must be a whole number from 1.")
    due = {name: request.args.get(name) for name in ("due_from", "due_to")}
    dates = {name: parse_date(raw) for name, raw in due.items() if raw is not None}
    if any(day is None for day in dates.values()):
        return _error(400, "due_from and due_to must be dates: YYYY-MM-DD.")
    search = request.args.get("q", "").strip()
    if len(search) > 64:
        return _error(400, "q must be at most 64 characters: an order number's start or a product code.")
    filters = queries.InboxFilters(
        tab=state,
        q=search,
        due_from=dates.get("due_from"),
        due_to=dates.get("due_to"),
        sort=sort,
        page=page_number,
    )
    page = queries.inbox(db_session(), context, filters, date.today())
    order_url = url_for("api.get_order", order_id=1).removesuffix("1")  # made once, not per row
    return jsonify(
        {
            "orders": [
                {
                    "id": row.id,
                    "number": row.number,
                    "state": row.state.value,
                    "order_date": row.order_date.isoformat(),
                    "due_date": row.due_date.isoformat() if row.due_date else None,
                    "ship_to": row.warehouse,
                    "buyer": row.buyer,
                    "total_value": format(row.total_value.normalize(), "f"),
                    "currency": row.currency,
                    "url": f"{order_url}{row.id}",
                }
                for row in page.rows
            ],
            "page": filters.page,
            "pages": page.pages,
            "total": page.total,
            "counts": page.counts,
        }
    )


@bp.get("/orders/<int:order_id>")
@requires_key(Permission.ORDERS_VIEW)
def get_order(order_id: int) -> Response:
    return jsonify(services.order_document(db_session(), _order(order_id)))


def _gate_problem(order: PurchaseOrder) -> tuple[Response | None, list[str]]:
    """Document gating, as on the order page: a refusal (422) when it blocks, else the warnings to pass on."""
    from portal.documents.services import supplier_gate

    gate = supplier_gate(db_session(), tenant_id=order.tenant_id, supplier_id=order.supplier_id, today=date.today())
    if gate.blocks:
        return _error(422, gate.message + " Upload them in the portal; until then confirmations are blocked."), []
    return None, [gate.message] if gate.warns else []


def _conflict(order: PurchaseOrder, exc: orders.Conflict) -> Response:
    """The order changed since the caller read it: the current order comes with the refusal."""
    response = jsonify(
        {
            "error": {"status": 409, "message": exc.message, "current_version": exc.current_version},
            "order": services.order_document(db_session(), order),
        }
    )
    response.status_code = 409
    return response


def _idempotency(fingerprint_of: Callable[[], str]) -> tuple[str | None, str, Response | None]:
    """The write's ``Idempotency-Key`` (None without one), the request's fingerprint, and the answer to give at
    once: a refusal of a malformed key or of one used for another request, or the first answer again when
    this retries a write that went through (nothing is written twice)."""
    idempotency_key = request.headers.get("Idempotency-Key")
    if idempotency_key is None:
        return None, "", None
    if not services.IDEMPOTENCY_KEY.match(idempotency_key):
        return None, "", _error(400, "An Idempotency-Key is 1 to 100 letters, digits and . _ : - (a UUID will do).")
    fingerprint = fingerprint_of()
    try:
        replay = services.replay_of(db_session(), caller(), idempotency_key, fingerprint)
    except ServiceError as exc:
        return None, "", _error(422, exc.message)
    if replay is None:
        return idempotency_key, fingerprint, None
    response = jsonify(replay[1])
    response.status_code = replay[0]
    response.headers["Idempotent-Replayed"] = "true"
    return idempotency_key, fingerprint, response


def _remembered(idempotency_key: str | None, fingerprint: str, status: int, answer: dict[str, Any]) -> Response | None:
    """Keep a write's answer for its retries, in its own transaction (None: kept, or no key was sent). A
    refusal when the same key is, at the same moment, used for another write: this one is undone (the request
    rolls back), the other stands."""
    if idempotency_key is None:
        return None
    try:
        services.remember_write(db_session(), caller(), idempotency_key, fingerprint, status, answer)
    except IntegrityError:
        return _error(409, "Another request with this Idempotency-Key is under way: retry it to see its answer.")
    return None


def _write(
    order: PurchaseOrder, version: int | None, write: Callable[[], dict[str, Any]], *, gated: bool = True
) -> Response:
    """Run a service on the order as of ``version``; its result (the fields ``write`` returns) comes with the
    order as it now is. A refusal is its reasons, by line, and nothing is saved (the request rolls back on any
    status from 400). A stale version is said first, as on the order page: a retry of a write that went
    through gets 409, never a second write. Answers pass the document gate (``gated``), as on the order page."""
    idempotency_key, fingerprint, replayed = _idempotency(
        lambda: services.request_fingerprint(request.method, request.path, request.get_data())
    )
    if replayed is not None:
        return replayed
    if version is None:
        return _error(422, "Give the order's version (as GET /orders/<id> gives it), so that no change is missed.")
    if version != order.version:
        return _conflict(order, orders.Conflict(order.version))
    refused, warnings = _gate_problem(order) if gated else (None, [])
    if refused is not None:
        return refused
    try:
        result = write()
    except orders.Conflict as exc:
        return _conflict(order, exc)
    except orders.InvalidAnswers as exc:
        lines = {("order" if line_id == 0 else str(line_id)): problems for line_id, problems in exc.errors.items()}
        return _error(422, exc.message, lines=lines)
    except ServiceError as exc:
        return _error(422, exc.message)
    answer = {**result, "warnings": warnings, "order": services.order_document(db_session(), order)}
    return _remembered(idempotency_key, fingerprint, 200, answer) or jsonify(answer)


def _answered(result: orders.RespondResult) -> dict[str, Any]:
    return {"confirmed": result.confirmed, "pending": result.pending}


@bp.post("/orders/<int:order_id>/answers")
@requires_key(Permission.ORDERS_RESPOND)
def answer(order_id: int) -> Response:
    """Answers to lines awaiting a response; the tolerances decide which are confirmed at once and which wait
    for the buyer (rejections and price changes always do)."""
    order = _order(order_id)
    try:
        version, answers, errors = services.parse_answers(request.get_json(silent=True))
    except services.BadRequest as exc:
        return _error(400, exc.message)
    if errors:
        return _error(422, "Some answers need attention; nothing was saved.", lines=errors)
    session = db_session()
    lines = orders.order_lines(session, order)
    answers = services.priced_as_ordered(answers, lines)
    return _write(
        order,
        version,
        lambda: _answered(
            orders.respond(
                session,
                order=order,
                answers=answers,
                expected_version=version,
                actor=api_actor(),
                source=Source.API,
                lines=lines,
            )
        ),
    )


@bp.post("/orders/<int:order_id>/accept-all")
@requires_key(Permission.ORDERS_RESPOND)
def accept_all(order_id: int) -> Response:
    order = _order(order_id)
    version = _body_version()
    return _write(
        order,
        version,
        lambda: _answered(
            orders.accept_all(db_session(), order=order, expected_version=version, actor=api_actor(), source=Source.API)
        ),
    )


@bp.post("/orders/<int:order_id>/lines/<int:line_id>/promise")
@requires_key(Permission.ORDERS_RESPOND)
def change_promise(order_id: int, line_id: int) -> Response:
    """A confirmed line's new deliveries, with a reason: inside the tolerance they stand at once, outside they
    wait for the buyer."""
    order = _order(order_id)
    line = _line(order, line_id)
    try:
        version, promise, problems = services.parse_promise(request.get_json(silent=True))
    except services.BadRequest as exc:
        return _error(400, exc.message)
    if promise is None:
        return _error(422, "The new promise needs attention; nothing was saved.", lines={str(line.id): problems})

    def write() -> dict[str, Any]:
        request_left = orders.change_promise(
            db_session(),
            order=order,
            line=line,
            deliveries=promise.deliveries,
            reason_code=promise.reason_code,
            comment=promise.comment,
            expected_version=version,
            actor=api_actor(),
            source=Source.API,
        )
        return {"confirmed": [] if request_left else [line.id], "pending": [line.id] if request_left else []}

    return _write(order, version, write, gated=False)


@bp.post("/orders/<int:order_id>/ship-notices")
@requires_key(Permission.ORDERS_RESPOND)
def ship_notice(order_id: int) -> Response:
    """A ship notice for what is committed and not yet shipped (an advance shipping notice)."""
    order = _order(order_id)
    try:
        version, shipment, quantities, errors = services.parse_ship_notice(request.get_json(silent=True))
    except services.BadRequest as exc:
        return _error(400, exc.message)
    if shipment is None:
        return _error(422, "The ship notice needs attention; nothing was saved.", lines=errors)

    def write() -> dict[str, Any]:
        notice = orders.create_ship_notice(
            db_session(),
            order=order,
            quantities=quantities,
            shipment=shipment,
            expected_version=version,
            actor=api_actor(),
        )
        return {"ship_notice": {"id": notice.id, "number": notice.number}}

    return _write(order, version, write, gated=False)


def _body_version() -> int | None:
    """The order's version a body of ``{"version": n}`` gives (None: missing or not a whole number)."""
    body = request.get_json(silent=True)
    version = body.get("version") if isinstance(body, dict) else None
    return version if isinstance(version, int) and not isinstance(version, bool) else None


@bp.post("/orders/<int:order_id>/ship-notices/<int:notice_id>/cancel")
@requires_key(Permission.ORDERS_RESPOND)
def cancel_ship_notice(order_id: int, notice_id: int) -> Response:
    """Withdraw a ship notice nothing was received against: what it shipped can ship again."""
    order = _order(order_id)
    notice = orders.order_ship_notice(db_session(), order, notice_id)
    if notice is None:
        abort(404)

    def write() -> dict[str, Any]:
        orders.cancel_ship_notice(
            db_session(), order=order, notice=notice, expected_version=_body_version(), actor=api_actor()
        )
        return {"ship_notice": {"id": notice.id, "number": notice.number}}

    return _write(order, _body_version(), write, gated=False)


# One rule for both methods: with a rule each, an id out of range for the one asked matched the other's path and
# answered 405 instead of 404.
@bp.route("/orders/<int:order_id>/messages", methods=["GET", "POST"])
@requires_key(Permission.ORDERS_MESSAGE)
def messages(order_id: int) -> Response:
    """GET: the order's conversation with the buyers, oldest first. POST: a message to the order's buyers, who
    hear of it as of one written in the portal."""
    order = _order(order_id)
    messages_url = url_for("api.messages", order_id=order.id)
    if request.method == "GET":
        return jsonify({"messages": services.order_messages(db_session(), order, messages_url)})
    from portal.documents.antivirus import scanner_for
    from portal.documents.validation import UploadRejected
    from portal.documents.views import storage

    files: list[orders.AttachedFile] = []
    if request.mimetype == "multipart/form-data":  # words and files
        try:
            words, files = services.parse_message_parts(request.form, request.files)
        except services.BadRequest as exc:
            return _error(400, exc.message)
    else:
        body = request.get_json(silent=True)
        sent = body.get("body") if isinstance(body, dict) else None
        if not isinstance(sent, str):
            return _error(400, 'Send a JSON object with the message: {"body": "..."} (or multipart/form-data).')
        words = sent
    who = caller()
    try:
        message = orders.post_message(
            db_session(), order=order, author_id=who.user_id, author=who.email, from_supplier=True, body=words,
            files=files, storage=storage(), scan=scanner_for(current_app.extensions["portal.settings"].clamd_address),
        )  # fmt: skip
    except UploadRejected as exc:
        return _error(exc.status, exc.message, fields={"files": [exc.message]})
    except ServiceError as exc:
        return _error(422, exc.message)
    response = jsonify({"message": services.message_document(message, messages_url, message.files)})
    response.status_code = 201
    return response


@bp.get("/orders/<int:order_id>/messages/<int:message_id>/files/<int:file_id>")
@requires_key(Permission.ORDERS_MESSAGE)
def message_file(order_id: int, message_id: int, file_id: int) -> Response:
    """A file attached to a message on the order (a drawing, a specification), as sent."""
    from portal.orders import printing

    return printing.message_file_download(db_session(), _order(order_id), message_id, file_id)


@bp.get("/orders/<int:order_id>/ship-notices/<int:notice_id>/packing-slip")
@requires_key(Permission.ORDERS_VIEW)
def packing_slip(order_id: int, notice_id: int) -> Response:
    """A ship notice's packing slip as a PDF, the one the order page prints: to put in the shipment."""
    from portal.orders import printing

    return printing.packing_slip_download(db_session(), _order(order_id), notice_id, ctx().tenant_name)


# --- certificates ----------------------------------------------------------------------


def _document_url(document_id: int) -> str:
    return url_for("api.get_document", document_id=document_id)


def _document_types(tenant_id: int) -> list[DocumentType]:
    return list(
        db_session()
        .execute(select(DocumentType).where(DocumentType.tenant_id == tenant_id).order_by(DocumentType.code))
        .scalars()
    )


@bp.get("/compliance")
@requires_key(Permission.DOCUMENTS_UPLOAD)
def compliance() -> Response:
    """What the customer requires of the supplier account, each requirement's state and the document behind it,
    the document types an upload may name, and whether missing documents block confirmations."""
    from portal.documents import services as documents

    context = ctx()
    session = db_session()
    supplier: Supplier = get_scoped_or_404(session, Supplier, context.supplier_id or 0, context)
    today = date.today()
    statuses = documents.compliance(session, tenant_id=context.tenant_id, supplier=supplier, today=today)
    gate = documents.confirmation_gate(
        session, tenant_id=context.tenant_id, supplier=supplier, today=today, statuses=statuses
    )
    urls = {status.document.id: _document_url(status.document.id) for status in statuses if status.document}
    return jsonify(
        {
            "requirements": [certificates.requirement_document(status, urls) for status in statuses],
            "document_types": [certificates.type_document(t) for t in _document_types(context.tenant_id)],
            "confirmations": {
                "gating": gate.mode,
                "blocked": gate.blocks,
                "message": gate.message if gate.blocks or gate.warns else None,
            },
        }
    )


@bp.get("/documents")
@requires_key(Permission.DOCUMENTS_UPLOAD, query=frozenset({"page"}))
def list_documents() -> Response:
    """The supplier account's certificates, newest first, 50 a page, whoever uploaded them."""
    context = ctx()
    page_number = _page_arg()
    if page_number is None:
        return _error(400, "page must be a whole number from 1.")
    rows, total = certificates.documents_page(
        db_session(), tenant_id=context.tenant_id, supplier_id=context.supplier_id or 0, page=page_number
    )
    return jsonify(
        {
            "documents": [
                certificates.document_document(document, doc_type, _document_url(document.id))
                for document, doc_type in rows
            ],
            "page": page_number,
            "pages": max(1, -(-total // certificates.PAGE_SIZE)),
            "total": total,
        }
    )


def _document(document_id: int) -> tuple[Document, DocumentType]:
    """One of the supplier account's documents, with its type (another's, or another tenant's: 404)."""
    document: Document = get_scoped_or_404(db_session(), Document, document_id, ctx())
    doc_type = (
        db_session()
        .execute(
            select(DocumentType).where(
                DocumentType.tenant_id == document.tenant_id, DocumentType.id == document.document_type_id
            )
        )
        .scalar_one()
    )
    return document, doc_type


@bp.get("/documents/<int:document_id>")
@requires_key(Permission.DOCUMENTS_UPLOAD)
def get_document(document_id: int) -> Response:
    """One certificate: its status, validity and reviews (a rejection's reason comes with its review)."""
    document, doc_type = _document(document_id)
    return jsonify(
        {
            "document": certificates.document_document(document, doc_type, _document_url(document.id)),
            "reviews": certificates.reviews_of(db_session(), document),
        }
    )


@bp.get("/documents/<int:document_id>/file")
@requires_key(Permission.DOCUMENTS_UPLOAD)
def document_file(document_id: int) -> Response:
    from portal.documents.views import send_document

    document, _ = _document(document_id)
    return send_document(document)


@bp.post("/documents")
@requires_key(Permission.DOCUMENTS_UPLOAD)
def upload_document() -> Response:
    """A certificate for the compliance team to review (multipart/form-data), under the compliance page's rules:
    the file's checks, the virus scan, the type, the dates, replacing one of the account's own documents."""
    from portal.documents import services as documents
    from portal.documents.views import storage

    context = ctx()
    if request.mimetype != "multipart/form-data":
        return _error(400, "Send multipart/form-data: the certificate in the part 'file', its details in fields.")
    try:
        upload, problems = certificates.parse_upload(request.form, request.files)
    except services.BadRequest as exc:
        return _error(400, exc.message)
    if upload is None:
        return _error(422, "The upload needs attention; nothing was saved.", fields=problems)
    idempotency_key, fingerprint, replayed = _idempotency(
        lambda: certificates.upload_fingerprint(request.path, request.form, upload.filename, upload.data)
    )
    if replayed is not None:
        return replayed
    types = _document_types(context.tenant_id)
    doc_type = certificates.type_by_code(types, upload.document_type)
    if doc_type is None:
        known = ", ".join(t.code for t in types) or "none yet: ask your customer"
        message = f"Unknown document type {upload.document_type!r}; the types are: {known}."
        return _error(422, message, fields={"document_type": [message]})
    try:
        document = documents.upload(
            db_session(),
            storage(),
            tenant_id=context.tenant_id,
            supplier_id=context.supplier_id or 0,
            actor=api_actor(),
            scan=scanner_for(current_app.extensions["portal.settings"].clamd_address),
            data=documents.UploadInput(
                document_type_id=doc_type.id,
                title=upload.title,
                issuer=upload.issuer,
                certificate_number=upload.certificate_number,
                issue_date=upload.issue_date,
                expiry_date=upload.expiry_date,
                filename=upload.filename,
                data=upload.data,
                supersedes_id=upload.replaces,
            ),
        )
    except UploadRejected as exc:
        return _error(exc.status, exc.message, fields={"file": [exc.message]})
    except ServiceError as exc:
        named = {"document_type_id": "document_type", "supersedes_id": "replaces"}
        field = named.get(exc.field or "", exc.field or "file")
        return _error(422, exc.message, fields={field: [exc.message]})
    url = _document_url(document.id)
    answer = {"document": certificates.document_document(document, doc_type, url)}
    refused = _remembered(idempotency_key, fingerprint, 201, answer)
    if refused is not None:
        return refused
    response = jsonify(answer)
    response.status_code = 201
    response.headers["Location"] = url
    return response


# --- the supplier's keys, in the browser ---------------------------------------------


def _owner(context: PortalContext) -> services.KeyOwner:
    from flask_login import current_user

    return services.KeyOwner(
        context.membership_id, context.tenant_id, current_user.id, context.role, context.supplier_id
    )


def _keys_page(
    form: ApiKeyForm | None,
    status: int,
    issued: tuple[str, str] | None = None,
    *,
    hook_form: SupplierWebhookForm | None = None,
    hook_secret: str | None = None,
) -> tuple[str, int]:
    """The page: the person's keys and, for a supplier administrator, the supplier account's webhooks (each
    with its latest delivery)."""
    context = ctx()
    session = db_session()
    hooks: list[tuple[Webhook, WebhookDelivery | None]] = []
    manages = context.can(Permission.SUPPLIER_TEAM_MANAGE) and context.supplier_id is not None
    if manages:
        for hook in notifications.supplier_webhooks(session, context.tenant_id, context.supplier_id or 0):
            latest = notifications.deliveries(session, context.tenant_id, hook.id, limit=1)
            hooks.append((hook, latest[0] if latest else None))
    return render_template(
        "api/keys.html",
        form=form or ApiKeyForm(formdata=None),
        action=ActionForm(),
        keys=services.keys_of(session, _owner(context)),
        now=utcnow(),
        api_root=url_for("api.me", _external=True).removesuffix("/me"),
        issued_name=issued[0] if issued else None,
        issued_key=issued[1] if issued else None,
        manages_webhooks=manages,
        hooks=hooks,
        hook_form=hook_form or SupplierWebhookForm(formdata=None),
        hook_secret=hook_secret,
    ), status


@keys_bp.route("/api-keys", methods=["GET", "POST"])
@requires(Permission.ORDERS_RESPOND)
def keys() -> tuple[str, int]:
    form = ApiKeyForm()
    if request.method == "GET":
        return _keys_page(form, 200)
    if not form.validate_on_submit():
        return _keys_page(form, 422)
    try:
        key, secret_key = services.issue_key(
            db_session(), owner=_owner(ctx()), name=form.name.data or "", days=int(form.days.data), actor=actor()
        )
    except ServiceError as exc:
        (form.days if exc.field == "days" else form.name).errors = [exc.message]
        return _keys_page(form, 422)
    return _keys_page(None, 201, (key.name, secret_key))


@keys_bp.post("/api-keys/<int:key_id>/revoke")
@requires(Permission.ORDERS_RESPOND)
def revoke(key_id: int) -> Response | tuple[str, int]:
    from flask import flash, redirect

    key = services.key_of(db_session(), _owner(ctx()), key_id)
    if key is None:
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        services.revoke_key(db_session(), key=key, actor=actor())
    except ServiceError as exc:
        flash(exc.message, "error")
        return redirect(url_for("api_keys.keys"))
    flash(f"Key “{key.name}” revoked: systems using it can no longer sign in.", "success")
    return redirect(url_for("api_keys.keys"))


@keys_bp.post("/api-keys/webhooks")
@requires(Permission.SUPPLIER_TEAM_MANAGE)
def add_webhook() -> tuple[str, int]:
    """A supplier administrator's webhook: the supplier account's own orders and certificates, pushed."""
    context = ctx()
    form = SupplierWebhookForm()
    if not form.validate_on_submit():
        return _keys_page(None, 422, hook_form=form)
    try:
        _, secret = notifications.create_webhook(
            db_session(),
            tenant_id=context.tenant_id,
            supplier_id=context.supplier_id,
            url=form.url.data or "",
            topics=list(form.topics.data or []),
            description=form.description.data or "",
            actor=actor(),
            allow_private=current_app.extensions["portal.settings"].webhook_allow_private,
        )
    except ServiceError as exc:
        form.url.errors = [exc.message]
        return _keys_page(None, 422, hook_form=form)
    return _keys_page(None, 201, hook_secret=secret)


@keys_bp.post("/api-keys/webhooks/<int:webhook_id>/delete")
@requires(Permission.SUPPLIER_TEAM_MANAGE)
def delete_webhook(webhook_id: int) -> Response:
    from flask import flash, redirect

    context = ctx()
    _delete_supplier_webhook(context.tenant_id, context.supplier_id or 0, webhook_id)
    flash("Webhook removed: it is called no more.", "success")
    return redirect(url_for("api_keys.keys"))


@keys_bp.get("/api-keys/webhooks/<int:webhook_id>")
@requires(Permission.SUPPLIER_TEAM_MANAGE)
def webhook_log(webhook_id: int) -> str:
    """Every delivery to one of the supplier account's webhooks: what its system answered, and when."""
    context = ctx()
    hook = _supplier_webhook(context.tenant_id, context.supplier_id or 0, webhook_id)
    return render_template(
        "notifications/webhook_log.html",
        hook=hook,
        deliveries=notifications.deliveries(db_session(), context.tenant_id, hook.id),
        back_url=url_for("api_keys.keys", _anchor="webhooks"),
    )


def _supplier_webhook(tenant_id: int, supplier_id: int, webhook_id: int) -> Webhook:
    """One of a supplier account's webhooks (another's, or the tenant's own: 404)."""
    hook = (
        db_session()
        .execute(
            select(Webhook).where(
                Webhook.tenant_id == tenant_id, Webhook.supplier_id == supplier_id, Webhook.id == webhook_id
            )
        )
        .scalar_one_or_none()
    )
    if hook is None:
        abort(404)
    return hook


def _delete_supplier_webhook(tenant_id: int, supplier_id: int, webhook_id: int) -> None:
    """Remove one of a supplier account's webhooks (another's, or the tenant's own: 404)."""
    hook = _supplier_webhook(tenant_id, supplier_id, webhook_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    notifications.delete_webhook(db_session(), webhook=hook, actor=actor())


# --- a supplier's connected systems, for the tenant's administrators ---------------------


def supplier_connections(tenant_id: int, supplier_id: int) -> dict[str, Any]:
    """What a supplier's page shows its administrators: the supplier's keys and webhooks."""
    session = db_session()
    return {
        "supplier_keys": services.supplier_keys(session, tenant_id, supplier_id),
        "supplier_hooks": notifications.supplier_webhooks(session, tenant_id, supplier_id),
        "now": utcnow(),
    }


def _back_to_supplier(supplier_id: int, message: str) -> Response:
    from flask import flash, redirect

    flash(message, "success")
    return redirect(url_for("suppliers.detail", supplier_id=supplier_id, _anchor="connected-systems"))


def _supplier(supplier_id: int) -> Supplier:
    supplier: Supplier = get_scoped_or_404(db_session(), Supplier, supplier_id, ctx())
    return supplier


@keys_bp.post("/suppliers/<int:supplier_id>/api-keys/<int:key_id>/revoke")
@requires(Permission.SUPPLIERS_MANAGE)
def revoke_for_supplier(supplier_id: int, key_id: int) -> Response:
    """A tenant administrator cuts a supplier's system off (a leaked key, a system retired)."""
    supplier = _supplier(supplier_id)
    key = services.supplier_key(db_session(), supplier.tenant_id, supplier.id, key_id)
    if key is None:
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    if key.revoked_at is None:
        services.revoke_key(db_session(), key=key, actor=actor())
    return _back_to_supplier(supplier.id, f"Key “{key.name}” revoked: the system using it can no longer sign in.")


@keys_bp.post("/suppliers/<int:supplier_id>/webhooks/<int:webhook_id>/remove")
@requires(Permission.SUPPLIERS_MANAGE)
def remove_supplier_webhook(supplier_id: int, webhook_id: int) -> Response:
    supplier = _supplier(supplier_id)
    _delete_supplier_webhook(supplier.tenant_id, supplier.id, webhook_id)
    return _back_to_supplier(supplier.id, "The supplier's webhook was removed: it is called no more.")


def register(app: Flask) -> None:
    from portal import csrf

    # API calls carry a key, never a cookie: there is no session for a forged request to ride on.
    csrf.exempt(bp)
    app.register_blueprint(bp)
    app.register_blueprint(keys_bp)
