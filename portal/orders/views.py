"""Order screens: the inbox, the order page with the supplier's answers and the
buyer's decisions, ship notices, messages and the buyer's response queue."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from portal.auth.access import get_scoped_or_404, requires
from portal.auth.admin_views import ctx
from portal.auth.permissions import Permission
from portal.auth.services import ServiceError
from portal.auth.views import actor
from portal.db import utcnow
from portal.documents.validation import ATTACHMENT_EXTENSIONS, ATTACHMENT_KINDS, ATTACHMENT_TYPES
from portal.erp import services as erp_services
from portal.erp.base import parse_terms
from portal.formatting import counted, quantity
from portal.numbers import page_number, whole_number
from portal.orders import intake, queries, spreadsheet
from portal.orders import services as svc
from portal.orders.forms import (
    ImportForm,
    MessageForm,
    ReasonForm,
    ReceiptForm,
    RevisionForm,
    ShipmentReceiptForm,
    ShipNoticeForm,
    SpreadsheetUploadForm,
    ToleranceForm,
    int_arg,
    parse_answers,
    parse_date,
    parse_delay_reason,
    parse_deliveries,
    parse_quantity,
    parse_version,
)
from portal.orders.models import (
    ChangeKind,
    ChangeRequest,
    ChangeState,
    DelayReason,
    LineState,
    PurchaseOrder,
    PurchaseOrderLine,
    RejectReason,
    Source,
    TolerancePolicy,
)
from portal.orders.rows import inbox_rows
from portal.suppliers.models import Supplier
from portal.suppliers.services import supplier_name
from portal.suppliers.views import supplier_filter_args
from portal.tenancy.models import Company, Tenant, Warehouse
from portal.tenancy.services import buyer_choices, ship_to_choices
from portal.web import PortalContext, db_session, secret_key

if TYPE_CHECKING:
    from portal.documents.services import Gate

bp = Blueprint("orders", __name__, template_folder="templates")

TOLERANCE_FIELDS = ("quantity_under_pct", "quantity_over_pct", "days_earlier", "days_later", "price_pct")


def _order(order_id: int) -> PurchaseOrder:
    """Through the tenant and, for supplier users, their supplier account: else 404."""
    context = ctx()
    order: PurchaseOrder = get_scoped_or_404(db_session(), PurchaseOrder, order_id, context)
    return order


def _line(order: PurchaseOrder, line_id: int) -> PurchaseOrderLine:
    line = svc.order_line(db_session(), order, line_id)
    if line is None:
        abort(404)
    return line


def _posted() -> dict[str, str]:
    """The posted fields as a plain dict, for the forms read field by field: most fields asked for are absent,
    and a MultiDict answers each absent one by raising and catching an exception (about 60 on an order page)."""
    return request.form.to_dict()


def _int_arg(name: str) -> int | None:
    return int_arg(request.args, name)


@bp.route("/orders")
@requires(Permission.ORDERS_VIEW)
def inbox() -> str:
    context = ctx()
    db_sess = db_session()
    supplier_id, supplier_q = supplier_filter_args()
    filters = queries.InboxFilters(
        tab=request.args.get("tab", "needs_response" if context.is_supplier else "all"),
        q=(request.args.get("q") or "").strip()[:64],
        warehouse_id=_int_arg("warehouse"),
        buyer_id=_int_arg("buyer"),
        supplier_id=supplier_id,
        supplier_q=supplier_q,
        due_from=parse_date(request.args.get("due_from", "")),
        due_to=parse_date(request.args.get("due_to", "")),
        sort=request.args.get("sort", "due") if request.args.get("sort") in queries.SORTS else "due",
        page=page_number(request.args),
    )
    if filters.tab not in queries.TAB_LABELS:
        filters.tab = "all"
    page = queries.inbox(db_sess, context, filters, date.today())
    warehouses = ship_to_choices(db_sess, context.tenant_id)
    # A buyer filters by supplier with a search field (a tenant may have thousands of suppliers: a list of
    # 5,000 options made the page 130 ms); a link to one supplier's orders shows its name.
    chosen_supplier = None if context.is_supplier else supplier_name(db_sess, context.tenant_id, filters.supplier_id)
    return render_template(
        "orders/inbox.html",
        page=page,
        filters=filters,
        tabs=queries.TAB_LABELS,
        warehouses=warehouses,
        buyers=buyer_choices(db_sess, context.tenant_id),
        chosen_supplier=chosen_supplier,
        args={k: v for k, v in request.args.items() if k not in ("tab", "page")},
        inbox_rows=inbox_rows,
    )


@bp.route("/orders/<int:order_id>.pdf")
@requires(Permission.ORDERS_VIEW)
def order_pdf(order_id: int) -> Response:
    """The order as a PDF, to file or print: the parties, the lines with their current promises, the total."""
    from portal.orders import printing

    order = _order(order_id)
    return printing.pdf_response(printing.order_pdf(db_session(), order, ctx().tenant_name), "purchase-order",
                                 order.number)  # fmt: skip


def _render_order(order: PurchaseOrder, *, errors: dict[int, list[str]] | None = None, preview=None, status=200):
    view = queries.order_view(db_session(), order)
    context = ctx()
    tolerance = svc.tolerance_for(db_session(), order.tenant_id, order.supplier_id)
    return render_template(
        "orders/order.html",
        v=view,
        errors=errors or {},
        preview=preview or {},
        values=_posted(),
        tolerance=tolerance,
        reject_reasons=list(RejectReason),
        delay_reasons=list(DelayReason),
        can_respond=context.can(Permission.ORDERS_RESPOND),
        can_manage=context.can(Permission.ORDERS_MANAGE),
        can_message=context.can(Permission.ORDERS_MESSAGE),
        message_files=svc.MESSAGE_FILES,
        attachment_kinds=ATTACHMENT_KINDS,
        attachment_accept=",".join([*ATTACHMENT_EXTENSIONS, *ATTACHMENT_TYPES]),
        message_form=MessageForm(),
        LineState=LineState,
        max_deliveries=svc.MAX_DELIVERIES,
        ChangeState=ChangeState,
        CHANGE_KIND_LABELS=CHANGE_KIND_LABELS,
        ANSWER_NOUNS=queries.ANSWER_NOUNS,
        TURNED_DOWN=queries.TURNED_DOWN,
        revisable=svc.revisable,
        gone_quantity=svc.gone_quantity,
        revision_of=erp_services.revision_of,
        today=date.today(),
    ), status


# What a change request asks the buyer to decide, as the order page names it.
CHANGE_KIND_LABELS = {
    ChangeKind.COMMITMENT: "quantity or date outside the tolerance",
    ChangeKind.REJECT: "rejection",
    ChangeKind.PRICE: "price change",
}


def _conflict(order: PurchaseOrder, exc: svc.Conflict):
    flash(exc.message, "error")
    return _render_order(order, status=409)


def _write(order: PurchaseOrder, line_id: int, write):
    """Run a service write; a refusal becomes the order page with its reason (and a rollback)."""
    try:
        return write(), None
    except svc.Conflict as exc:
        return None, _conflict(order, exc)
    except svc.InvalidAnswers as exc:
        return None, _render_order(order, errors=exc.errors, status=422)
    except ServiceError as exc:
        return None, _render_order(order, errors={line_id: [exc.message]}, status=422)


def _document_gate(tenant_id: int, supplier_id: int) -> Gate:
    """Document gating before a supplier's answers are saved (the answer form, "accept all", a spreadsheet):
    whether they are blocked, and the warning to show if not; an answer warned about is saved."""
    from portal.documents.services import supplier_gate

    gate = supplier_gate(db_session(), tenant_id=tenant_id, supplier_id=supplier_id, today=date.today())
    if gate.warns:
        advice = "A buyer allowed confirmations for now." if gate.overridden else "Please upload them under Compliance."
        flash(f"{gate.message} {advice}", "warning")
    return gate


GATE_BLOCKS = " Upload them under Compliance; until then confirmations are blocked."


def _gate(order: PurchaseOrder):
    """Document gating on the order page: block (422, naming the documents) or warn before a confirmation."""
    gate = _document_gate(order.tenant_id, order.supplier_id)
    if gate.blocks:
        return _render_order(order, errors={0: [gate.message + GATE_BLOCKS]}, status=422)
    return None


def _stale(order: PurchaseOrder):
    """A form opened before someone else's change: say so first, with the current values."""
    posted = parse_version(request.form)
    if posted is not None and posted != order.version:
        return _conflict(order, svc.Conflict(order.version))
    return None


@bp.route("/orders/<int:order_id>")
@requires(Permission.ORDERS_VIEW)
def order_page(order_id: int):
    return _render_order(_order(order_id))


@bp.route("/orders/<int:order_id>/respond", methods=["POST"])
@requires(Permission.ORDERS_RESPOND)
def respond(order_id: int):
    order = _order(order_id)
    if (stale := _stale(order)) is not None:
        return stale
    db_sess = db_session()
    lines = svc.order_lines(db_sess, order)
    answers, errors = parse_answers(_posted(), lines)
    if not answers and not errors:
        errors = {0: ["Choose an answer for at least one line."]}
    if errors:
        return _render_order(order, errors=errors, status=422)
    if request.form.get("preview"):
        # Show which answers would wait for the buyer; nothing is saved.
        tolerance = svc.tolerance_for(db_sess, order.tenant_id, order.supplier_id)
        by_id = {line.id: line for line in lines}
        preview = {}
        for answer in answers:
            line = by_id[answer.line_id]
            deliveries = answer.deliveries or (svc.Delivery(line.quantity, line.requested_date),)
            outside = (
                ["rejections always go to the buyer"]
                if answer.action == "reject"
                else svc.outside_tolerance(line, deliveries, answer.price, tolerance)
            )
            preview[line.id] = outside
        return _render_order(order, preview=preview)
    if (blocked := _gate(order)) is not None:
        return blocked
    result, failed = _write(
        order,
        0,
        lambda: svc.respond(
            db_sess, order=order, answers=answers, expected_version=parse_version(request.form), actor=actor()
        ),
    )
    if failed is not None:
        return failed
    parts = []
    if result.confirmed:
        parts.append(f"{counted(len(result.confirmed), 'line', 'lines')} confirmed")
    if result.pending:
        parts.append(f"{counted(len(result.pending), 'line', 'lines')} sent to the buyer for approval")
    flash("; ".join(parts) + ".", "success")
    return redirect(url_for("orders.order_page", order_id=order.id))


@bp.route("/orders/<int:order_id>/accept-all", methods=["POST"])
@requires(Permission.ORDERS_RESPOND)
def accept_all(order_id: int):
    order = _order(order_id)
    if (stale := _stale(order)) is not None:
        return stale
    if (blocked := _gate(order)) is not None:
        return blocked
    result, failed = _write(
        order,
        0,
        lambda: svc.accept_all(db_session(), order=order, expected_version=parse_version(request.form), actor=actor()),
    )
    if failed is not None:
        return failed
    accepted = len(result.confirmed)
    message = f"All {accepted} open lines accepted as requested." if accepted != 1 else "The open line accepted."
    flash(message, "success")
    return redirect(url_for("orders.order_page", order_id=order.id))


@bp.route("/orders/<int:order_id>/lines/<int:line_id>/promise", methods=["POST"])
@requires(Permission.ORDERS_RESPOND)
def repromise(order_id: int, line_id: int):
    order = _order(order_id)
    if (stale := _stale(order)) is not None:
        return stale
    line = _line(order, line_id)
    prefix = f"promise-{line.id}"
    deliveries, problems = parse_deliveries(_posted(), prefix)
    reason = parse_delay_reason(request.form.get(f"{prefix}-reason", ""))
    if problems:
        return _render_order(order, errors={line.id: problems}, status=422)
    result, failed = _write(
        order,
        line.id,
        lambda: svc.change_promise(
            db_session(),
            order=order,
            line=line,
            deliveries=deliveries,
            reason_code=reason,
            comment=request.form.get(f"{prefix}-comment", "").strip()[:2000],
            expected_version=parse_version(request.form),
            actor=actor(),
        ),
    )
    if failed is not None:
        return failed
    if isinstance(result, ChangeRequest):
        flash(f"Line {line.position}: the new promise is outside the tolerance and waits for the buyer.", "warning")
    else:
        flash(f"Line {line.position}: new promise saved.", "success")
    return redirect(url_for("orders.order_page", order_id=order.id))


@bp.route("/orders/<int:order_id>/ship", methods=["GET", "POST"])
@requires(Permission.ORDERS_RESPOND)
def ship(order_id: int):
    order = _order(order_id)
    db_sess = db_session()
    form = ShipNoticeForm()
    lines = svc.order_lines(db_sess, order)
    available = svc.shippable_quantities(db_sess, order, lines)
    errors: dict[int, list[str]] = {}
    if form.validate_on_submit():
        quantities: dict[int, Decimal] = {}
        for line in lines:
            raw = request.form.get(f"ship-{line.id}", "").strip()
            if raw:
                qty = parse_quantity(raw)
                if qty is None:
                    errors[line.id] = ["Enter the quantity as a number."]
                else:
                    quantities[line.id] = qty
        if not errors:
            try:
                notice = svc.create_ship_notice(
                    db_sess,
                    order=order,
                    quantities=quantities,
                    shipment=svc.ShipmentInput(
                        form.ship_date.data,
                        form.expected_arrival.data,
                        form.carrier.data or "",
                        form.tracking_number.data or "",
                        form.packing_slip.data or "",
                    ),
                    expected_version=parse_version(request.form),
                    actor=actor(),
                )
            except svc.Conflict as exc:
                flash(exc.message, "error")
                return redirect(url_for("orders.ship", order_id=order.id))
            except svc.InvalidAnswers as exc:
                errors = exc.errors
            else:
                flash(f"Ship notice {notice.number} sent.", "success")
                return redirect(url_for("orders.order_page", order_id=order.id))
    status = 422 if request.method == "POST" else 200
    return render_template(
        "orders/ship.html",
        order=order,
        lines=lines,
        available=available,
        form=form,
        errors=errors,
        values=_ship_values(available),
    ), status


def _ship_values(available: dict[int, Decimal]) -> Mapping[str, str]:
    """The ship form's quantities: as posted, or, asked for with ``?fill=all``, everything each line can ship."""
    if request.method == "GET" and request.args.get("fill") == "all":
        return {f"ship-{line_id}": quantity(qty) for line_id, qty in available.items() if qty > 0}
    return _posted()


@bp.route("/orders/<int:order_id>/ship-notices/<int:notice_id>/cancel", methods=["POST"])
@requires(Permission.ORDERS_RESPOND)
def cancel_notice(order_id: int, notice_id: int):
    order = _order(order_id)
    if (stale := _stale(order)) is not None:
        return stale
    notice = svc.order_ship_notice(db_session(), order, notice_id)
    if notice is None:
        abort(404)
    try:
        svc.cancel_ship_notice(
            db_session(), order=order, notice=notice, expected_version=parse_version(request.form), actor=actor()
        )
    except svc.Conflict as exc:
        return _conflict(order, exc)
    except ServiceError as exc:
        flash(exc.message, "error")
        return redirect(url_for("orders.order_page", order_id=order.id), code=303)
    flash(f"Ship notice {notice.number} cancelled.", "success")
    return redirect(url_for("orders.order_page", order_id=order.id))


@bp.route("/orders/<int:order_id>/ship-notices/<int:notice_id>/receive", methods=["POST"])
@requires(Permission.ORDERS_MANAGE)
def receive_notice(order_id: int, notice_id: int):
    """Goods receipt against a whole ship notice, from the order page or the shipments on their way: each line
    receives what of it has not arrived yet (``services.receive_ship_notice``)."""
    order = _order(order_id)
    notice = svc.order_ship_notice(db_session(), order, notice_id)
    if notice is None:
        abort(404)
    # Back to the shipments list as it was filtered, or to the order; never anywhere else.
    arrivals = url_for("orders.arrivals")
    back = request.form.get("back", "")
    back = (
        back if back == arrivals or back.startswith(arrivals + "?") else url_for("orders.order_page", order_id=order.id)
    )
    form = ShipmentReceiptForm()
    if not form.validate_on_submit() or form.received_on.data is None:
        flash(" ".join(form.received_on.errors) or "Enter the day the goods arrived.", "error")
        return redirect(back, code=303)
    if (future := svc.future_receipt_day(form.received_on.data, date.today())) is not None:
        flash(future, "error")
        return redirect(back, code=303)
    try:
        done = svc.receive_ship_notice(
            db_session(), order=order, notice=notice, received_on=form.received_on.data, actor=actor()
        )
    except ServiceError as exc:
        g.rollback_only = True  # a redirect commits: nothing of a refused receipt is kept
        flash(exc.message, "error")
        return redirect(back, code=303)
    received = ", ".join(f"line {line.position}: {quantity(rest)} {line.unit}" for line, rest in done.receipts)
    message = f"Ship notice {notice.number} received ({received})."
    if done.left_out:
        message += (
            " Left out, as closed or cancelled: " + ", ".join(f"line {line.position}" for line in done.left_out) + "."
        )
    flash(message, "success")
    return redirect(back, code=303)


@bp.route("/orders/<int:order_id>/messages", methods=["POST"])
@requires(Permission.ORDERS_MESSAGE)
def message(order_id: int):
    from portal.documents.antivirus import scanner_for
    from portal.documents.validation import UploadRejected
    from portal.documents.views import storage

    order = _order(order_id)
    form = MessageForm()
    # A file input left empty still posts one part, with no name.
    files = [svc.AttachedFile(f.filename or "", f.read()) for f in request.files.getlist("files") if f.filename]
    if not form.validate_on_submit():
        flash("Write a message (at most 4,000 characters) or attach a file.", "error")
        return _render_order(order, status=422)
    try:
        svc.post_message(
            db_session(), order=order, author_id=current_user.id, author=current_user.display_name,
            from_supplier=ctx().is_supplier, body=form.body.data or "", files=files, storage=storage(),
            scan=scanner_for(current_app.extensions["portal.settings"].clamd_address),
        )  # fmt: skip
    except (ServiceError, UploadRejected) as exc:
        flash(exc.message, "error")
        return _render_order(order, status=exc.status if isinstance(exc, UploadRejected) else 422)
    return redirect(url_for("orders.order_page", order_id=order.id) + "#messages")


@bp.route("/orders/<int:order_id>/messages/<int:message_id>/files/<int:file_id>")
@requires(Permission.ORDERS_VIEW)
def message_file(order_id: int, message_id: int, file_id: int) -> Response:
    """A file attached to a message on the order, for whoever sees the order (through the order: another
    supplier's or tenant's order answers 404 before the file is looked for)."""
    from portal.orders import printing

    return printing.message_file_download(db_session(), _order(order_id), message_id, file_id)


@bp.route("/orders/<int:order_id>/ship-notices/<int:notice_id>.pdf")
@requires(Permission.ORDERS_VIEW)
def packing_slip(order_id: int, notice_id: int) -> Response:
    """A ship notice's packing slip (``printing.packing_slip_pdf``), for the supplier and the buyers."""
    from portal.orders import printing

    return printing.packing_slip_download(db_session(), _order(order_id), notice_id, ctx().tenant_name)


# --- buyer side ---------------------------------------------------------------------


def _request(request_id: int) -> ChangeRequest:
    change: ChangeRequest = get_scoped_or_404(db_session(), ChangeRequest, request_id, ctx())
    return change


@bp.route("/change-requests/<int:request_id>/decide", methods=["POST"])
@requires(Permission.ORDERS_MANAGE)
def decide(request_id: int):
    change = _request(request_id)
    order = _order(change.order_id)
    if (stale := _stale(order)) is not None:
        return stale
    decision = request.form.get("decision", "")
    if decision not in ("approve", "reject", "counter"):
        return _render_order(order, errors={change.line_id: ["Choose approve, reject or counter."]}, status=422)
    _, failed = _write(
        order,
        change.line_id,
        lambda: svc.decide(
            db_session(),
            request=change,
            order=order,
            decision=decision,  # type: ignore[arg-type]
            comment=request.form.get("comment", "")[:2000],
            expected_version=parse_version(request.form),
            actor=actor(),
        ),
    )
    if failed is not None:
        return failed
    flash(
        {"approve": "Change approved.", "reject": "Change rejected.", "counter": "Counter-proposal sent."}[decision],
        "success",
    )
    target = request.form.get("back")
    if target == "queue":
        return redirect(_queue_url())
    return redirect(url_for("orders.order_page", order_id=order.id))


def _queue_url() -> str:
    """The response queue as the buyer had it filtered (its forms post the filter back)."""
    buyer_id = int_arg(request.form, "buyer")
    return url_for("orders.queue", buyer=buyer_id) if buyer_id else url_for("orders.queue")


@bp.route("/change-requests/approve", methods=["POST"])
@requires(Permission.ORDERS_MANAGE)
def bulk_approve():
    ids = [number for v in request.form.getlist("request_id") if (number := whole_number(v)) is not None]
    if not ids:
        flash("Tick the change requests to approve.", "error")
        return redirect(_queue_url(), code=303)
    db_sess = db_session()
    context = ctx()
    changes = (
        db_sess.execute(
            select(ChangeRequest).where(ChangeRequest.tenant_id == context.tenant_id, ChangeRequest.id.in_(ids))
        )
        .scalars()
        .all()
    )
    if len(changes) != len(set(ids)):
        abort(404)
    for change in changes:
        order = _order(change.order_id)
        try:
            svc.decide(
                db_sess,
                request=change,
                order=order,
                decision="approve",
                comment="",
                expected_version=None,
                actor=actor(),
            )
        except ServiceError as exc:
            db_sess.rollback()
            flash(f"Nothing approved: {order.number} line {_line(order, change.line_id).position}: {exc.message}",
                  "error")  # fmt: skip
            return redirect(_queue_url(), code=303)
    flash(f"{counted(len(changes), 'change request', 'change requests')} approved.", "success")
    return redirect(_queue_url())


@bp.route("/orders/queue")
@requires(Permission.ORDERS_MANAGE)
def queue() -> str:
    db_sess = db_session()
    buyer_id = _int_arg("buyer")
    changes, revisions, awaiting = queries.response_queue(db_sess, ctx().tenant_id, buyer_id)
    return render_template("orders/queue.html", changes=changes, revisions=revisions, awaiting=awaiting,
                           buyer_id=buyer_id, buyers=buyer_choices(db_sess, ctx().tenant_id),
                           parse_terms=parse_terms, today=date.today(),
                           overdue_after=_unconfirmed_after_days(db_sess),
                           remind_again_after=utcnow() - svc.REMINDER_INTERVAL)  # fmt: skip


def _unconfirmed_after_days(db_sess: Session) -> int:
    """The tenant's "unconfirmed after" days: an order unanswered that long after its date is overdue."""
    tenant = db_sess.get(Tenant, ctx().tenant_id)
    assert tenant is not None
    return tenant.unconfirmed_after_days


def _supplier_context():
    context = ctx()
    if context.supplier_id is None:
        abort(404)
    return context


@bp.route("/orders/spreadsheet.<any(csv, xlsx):fmt>")
@requires(Permission.ORDERS_RESPOND)
def spreadsheet_download(fmt: str) -> Response:
    context = _supplier_context()
    rows = spreadsheet.export_rows(db_session(), context)
    body = spreadsheet.to_csv(rows) if fmt == "csv" else spreadsheet.to_xlsx(rows)
    mimetype = "text/csv" if fmt == "csv" else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    name = f"open-lines-{date.today().isoformat()}.{fmt}"
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _rows_serializer() -> URLSafeSerializer:
    return URLSafeSerializer(secret_key(), salt=f"spreadsheet:{current_user.id}:{ctx().membership_id}")


@bp.route("/orders/spreadsheet", methods=["GET", "POST"])
@requires(Permission.ORDERS_RESPOND)
def spreadsheet_upload():
    context = _supplier_context()
    form = SpreadsheetUploadForm()
    preview = None
    payload = ""
    if form.validate_on_submit():
        rows, problems = spreadsheet.read_upload(form.file.data.read())
        if problems:
            form.file.errors = problems
        else:
            preview = spreadsheet.plan(db_session(), context, rows)
            _gate_answers(context, preview)
            # The rows travel back signed; applying re-checks them against the data as it is then.
            payload = _rows_serializer().dumps(rows)
    status = 422 if request.method == "POST" and (preview is None or preview.errors) else 200
    return render_template(
        "orders/spreadsheet.html", form=form, preview=preview, payload=payload, columns=spreadsheet.COLUMNS
    ), status


def _gate_answers(context: PortalContext, preview: spreadsheet.Plan) -> None:
    """Document gating for a spreadsheet's answers to orders, as for the answer form: blocked, they are an error
    of the whole upload (nothing is saved); new dates for lines confirmed already are not confirmations."""
    if not any(change.kind == "answer" for change in preview.changes):
        return
    assert context.supplier_id is not None
    gate = _document_gate(context.tenant_id, context.supplier_id)
    if gate.blocks:
        preview.errors.append(
            gate.message + GATE_BLOCKS + " New dates for lines confirmed already can still be sent without the answers."
        )


@bp.route("/orders/spreadsheet/apply", methods=["POST"])
@requires(Permission.ORDERS_RESPOND)
def spreadsheet_apply():
    context = _supplier_context()
    try:
        rows = _rows_serializer().loads(request.form.get("payload", ""))
    except BadSignature:
        abort(400)
    db_sess = db_session()
    preview = spreadsheet.plan(db_sess, context, rows)
    _gate_answers(context, preview)
    errors = preview.errors or spreadsheet.apply(db_sess, context, preview.changes, actor())
    if errors:
        # All or nothing: the request's transaction rolls back with the 422.
        preview.errors = errors
        return render_template(
            "orders/spreadsheet.html",
            form=SpreadsheetUploadForm(),
            preview=preview,
            payload="",
            columns=spreadsheet.COLUMNS,
            applied_failed=True,
        ), 422
    flash(f"{counted(len(preview.changes), 'change', 'changes')} from the spreadsheet applied.", "success")
    return redirect(url_for("orders.inbox", tab="all"))


def _exception_filters() -> queries.ExceptionFilters:
    supplier_id, supplier_q = supplier_filter_args()
    return queries.ExceptionFilters(
        kind=request.args.get("kind", "") if request.args.get("kind") in queries.EXCEPTION_KINDS else "",
        supplier_id=supplier_id,
        supplier_q=supplier_q,
        company_id=_int_arg("company"),
        warehouse_id=_int_arg("warehouse"),
        buyer_id=_int_arg("buyer"),
    )


def _exception_rows(filters: queries.ExceptionFilters, limit: int) -> tuple[list[Any], int]:
    """The exceptions for ``filters`` (the first ``limit``) and the tenant's "unconfirmed after" days."""
    db_sess = db_session()
    days = _unconfirmed_after_days(db_sess)
    return queries.exceptions(db_sess, ctx(), filters, date.today(), days, limit=limit), days


@bp.route("/orders/arrivals")
@requires(Permission.ORDERS_VIEW)
def arrivals() -> str:
    """Shipments on their way (ship notices sent, their goods not yet all arrived), the soonest expected first:
    the receiving team's day, and a supplier's own shipments in transit."""
    context = ctx()
    db_sess = db_session()
    supplier_id, supplier_q = supplier_filter_args()
    filters = queries.ArrivalFilters(
        warehouse_id=_int_arg("warehouse"),
        supplier_id=None if context.is_supplier else supplier_id,
        supplier_q="" if context.is_supplier else supplier_q,
        arriving_from=parse_date(request.args.get("from", "")),
        arriving_to=parse_date(request.args.get("to", "")),
        page=page_number(request.args),
    )
    today = date.today()
    return render_template(
        "orders/arrivals.html",
        can_receive=context.can(Permission.ORDERS_MANAGE),
        here=request.full_path.rstrip("?"),
        page=queries.arrivals(db_sess, context, filters, today),
        filters=filters,
        today=today,
        warehouses=ship_to_choices(db_sess, context.tenant_id),
        chosen_supplier=None if context.is_supplier else supplier_name(db_sess, context.tenant_id, filters.supplier_id),
        args={k: v for k, v in request.args.items() if k != "page"},
    )


@bp.route("/orders/exceptions")
@requires(Permission.ORDERS_MANAGE)
def exceptions() -> str:
    context = ctx()
    db_sess = db_session()
    filters = _exception_filters()
    rows, unconfirmed_after_days = _exception_rows(filters, queries.EXCEPTIONS_SHOWN)
    companies = db_sess.execute(
        select(Company.id, Company.name).where(Company.tenant_id == context.tenant_id).order_by(Company.name)
    ).all()
    return render_template(
        "orders/exceptions.html",
        rows=rows,
        filters=filters,
        kinds=queries.EXCEPTION_KINDS,
        days=unconfirmed_after_days,
        today=date.today(),
        chosen_supplier=supplier_name(db_sess, context.tenant_id, filters.supplier_id),
        companies=companies,
        warehouses=ship_to_choices(db_sess, context.tenant_id),
        buyers=buyer_choices(db_sess, context.tenant_id),
    )


@bp.route("/orders/exceptions.csv")
@requires(Permission.ORDERS_MANAGE)
def exceptions_csv() -> Response:
    """The exceptions the page lists with the same filters, as CSV for a spreadsheet (up to 20,000 lines, the
    largest value at risk first)."""
    from portal.csvfiles import csv_bytes

    rows, _ = _exception_rows(_exception_filters(), queries.EXCEPTIONS_EXPORTED)
    today = date.today()
    body = csv_bytes(
        ["order", "line", "product_code", "product", "supplier", "ship_to", "buyer", "requested_date", "promised_from",
         "promised_to", "days_late", "ordered", "received", "open", "why", "value_at_risk", "currency",
         "update_asked_at"],
        ([r.number, r.position, r.product_code, r.product_name, r.supplier, r.warehouse, r.buyer or "",
          r.requested_date.isoformat(),
          r.promised_from.isoformat() if r.promised_from else "", r.promised_to.isoformat() if r.promised_to else "",
          (today - r.open_from).days if r.late else "",
          quantity(r.quantity), quantity(r.received_quantity), quantity(r.quantity - r.received_quantity),
          "; ".join(label for kind, label in queries.EXCEPTION_KINDS.items() if getattr(r, kind)),
          f"{r.value_at_risk:.2f}", r.currency,
          f"{r.update_asked_at:%Y-%m-%d %H:%M}" if r.update_asked_at else ""] for r in rows),
    )  # fmt: skip
    response = Response(body, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="exceptions-{date.today().isoformat()}.csv"'
    return response


@bp.route("/orders/exceptions/ask", methods=["POST"])
@requires(Permission.ORDERS_MANAGE)
def ask_for_updates():
    """The exceptions' ticked lines: a message on each of their orders asking the supplier for an update."""
    back = request.form.get("back", "")
    # Back to the exceptions as they were filtered (a path of this page only, never elsewhere).
    back = (
        back if back.startswith("/orders/exceptions?") or back == "/orders/exceptions" else url_for("orders.exceptions")
    )
    ids = [number for v in request.form.getlist("line_id") if (number := whole_number(v)) is not None]
    try:
        asked = svc.ask_for_updates(
            db_session(), tenant_id=ctx().tenant_id, line_ids=ids, author_id=current_user.id,
            author=current_user.display_name, comment=request.form.get("comment", "")[:2000],
        )  # fmt: skip
    except LookupError:
        abort(404)
    except ServiceError as exc:
        flash(exc.message, "error")
        return redirect(back, code=303)
    left_out = (
        f" {counted(asked.left_out, 'line was', 'lines were')} left out: asked about within the last day."
        if asked.left_out
        else ""
    )
    flash(
        f"Asked {counted(asked.suppliers, 'supplier', 'suppliers')} for an update on "
        f"{counted(asked.lines, 'line', 'lines')} ({counted(asked.orders, 'order', 'orders')}): a message on each "
        f"order.{left_out}",
        "success",
    )
    return redirect(back, code=303)


NEW_ORDER_LINES = 10
NEW_ORDER_SHOWN = 3  # line rows shown at first; "Add a line" shows the others (without scripts all show)
NEW_ORDER_HEADER = ("order_number", "supplier_code", "warehouse_code", "order_date", "currency")
NEW_ORDER_LINE = ("product_code", "product_name", "supplier_product_code", "quantity", "unit", "unit_price",
                  "requested_date")  # fmt: skip
# The intake's problems in the form's words (the CSV's name its columns), by column.
NEW_ORDER_WORDS = {
    "supplier_code": "Choose the supplier.",
    "warehouse_code": "Choose where the order ships to.",
    "order_date": "Enter the order date.",
    "currency": "A three-letter code, such as EUR.",
    "requested_date": "Enter the requested date.",
    "quantity": "Enter a quantity above zero.",
    "unit_price": "Enter a unit price, zero or more.",
    "product": "Enter the product code and the product.",
}


# The intake's columns in the form's order, for a line's problems to read left to right.
_NEW_ORDER_COLUMNS = [*NEW_ORDER_HEADER, "line", "product", "quantity", "unit_price", "requested_date"]


def _in_form_words(column: str, problem: str) -> str:
    if column == "order_number":  # empty, or an order that exists already
        return "Enter the order number." if problem.endswith("is empty") else problem[0].upper() + problem[1:] + "."
    return NEW_ORDER_WORDS.get(column, problem)


@bp.route("/orders/new", methods=["GET", "POST"])
@requires(Permission.ORDERS_MANAGE)
def new_order():
    """Create one order by form, through the CSV intake's rules; each problem is shown next to its field (the
    order's next to the order's fields, once, not on every line) and nothing is saved until there is none."""
    context = ctx()
    db_sess = db_session()
    suppliers = db_sess.execute(
        select(Supplier.code, Supplier.name).where(Supplier.tenant_id == context.tenant_id).order_by(Supplier.name)
    ).all()
    warehouses = db_sess.execute(
        select(Warehouse.code, Warehouse.name).where(Warehouse.tenant_id == context.tenant_id).order_by(Warehouse.name)
    ).all()
    header_errors: dict[str, str] = {}
    line_errors: dict[int, list[str]] = {}
    general_errors: list[str] = []
    no_line = False
    values = _posted()
    if request.method == "POST":
        header = {k: values.get(k, "").strip() for k in NEW_ORDER_HEADER}
        filled = {}
        for n in range(1, NEW_ORDER_LINES + 1):
            line = {k: values.get(f"{k}-{n}", "").strip() for k in NEW_ORDER_LINE}
            if any(value for key, value in line.items() if key != "unit"):  # the unit is filled in for every row
                filled[n] = line
        no_line = not filled
        # Without a line, a row of the order's fields alone still has them checked (its line problems are dropped).
        rows = [{**header, "line": str(n), **line} for n, line in filled.items()] or [{**header, "line": "1"}]
        result = intake.import_orders(
            db_sess, tenant_id=context.tenant_id, rows=rows, actor=actor(), buyer_id=current_user.id
        )
        for index, problems in result.problems.items():
            position = int(rows[index - 2]["line"])  # row 1 of a CSV holds the column names
            for column, problem in sorted(problems.items(), key=lambda item: _NEW_ORDER_COLUMNS.index(item[0])):
                if column in NEW_ORDER_HEADER:
                    header_errors.setdefault(column, _in_form_words(column, problem))
                elif filled:
                    line_errors.setdefault(position, []).append(_in_form_words(column, problem))
        if not (header_errors or line_errors or no_line):
            general_errors = result.errors  # none the form can place (an order's rows disagreeing, say)
        if not (result.errors or no_line):
            order = db_sess.execute(
                select(PurchaseOrder).where(
                    PurchaseOrder.tenant_id == context.tenant_id, PurchaseOrder.number == result.orders[0]
                )
            ).scalar_one()
            flash(
                f"Order {order.number} created; {suppliers_name(suppliers, header['supplier_code'])} sees it now.",
                "success",
            )
            return redirect(url_for("orders.order_page", order_id=order.id))
        shown = max([NEW_ORDER_SHOWN, *filled])
    else:
        shown = NEW_ORDER_SHOWN
    failed = bool(header_errors or line_errors or general_errors or no_line)
    return render_template(
        "orders/new.html",
        suppliers=suppliers,
        warehouses=warehouses,
        failed=failed,
        header_errors=header_errors,
        line_errors=line_errors,
        general_errors=general_errors,
        no_line=no_line,
        values=values,
        lines=NEW_ORDER_LINES,
        shown=shown,
        today=date.today(),
    ), 422 if failed else 200


def suppliers_name(suppliers: Sequence[Any], code: str) -> str:
    return next((name for c, name in suppliers if c == code.upper()), code)


@bp.route("/orders/receipts/import", methods=["GET", "POST"])
@requires(Permission.ORDERS_MANAGE)
def import_receipts():
    form = ImportForm()
    result = None
    if form.validate_on_submit():
        rows, problems = intake.read_csv(
            form.file.data.read(), required=("order_number", "line", "quantity", "received_on")
        )
        if problems:
            form.file.errors = problems
        else:
            result = intake.import_receipts(db_session(), tenant_id=ctx().tenant_id, rows=rows, actor=actor())
            if not result.errors:
                message = f"{counted(result.lines, 'receipt', 'receipts')} recorded."
                if result.already_recorded:
                    known = counted(result.already_recorded, "receipt was", "receipts were")
                    message += f" {known} recorded already (by their reference) and left out."
                flash(message, "success")
                return redirect(url_for("orders.exceptions"))
    status = 422 if request.method == "POST" else 200
    return render_template(
        "orders/import.html",
        form=form,
        result=result,
        columns=intake.RECEIPT_COLUMNS,
        title="Import receipts",
        what="receipt",
    ), status


@bp.route("/orders/import", methods=["GET", "POST"])
@requires(Permission.ORDERS_MANAGE)
def import_orders():
    form = ImportForm()
    result = None
    if form.validate_on_submit():
        rows, problems = intake.read_csv(form.file.data.read())
        if problems:
            form.file.errors = problems
        else:
            result = intake.import_orders(
                db_session(), tenant_id=ctx().tenant_id, rows=rows, actor=actor(), buyer_id=current_user.id
            )
            if not result.errors:
                orders = counted(len(result.orders), "order", "orders")
                flash(f"{orders} with {counted(result.lines, 'line', 'lines')} imported.", "success")
                return redirect(url_for("orders.inbox", tab="needs_response"))
    status = 422 if request.method == "POST" else 200
    return render_template(
        "orders/import.html",
        form=form,
        result=result,
        columns=intake.COLUMNS,
        title="Import purchase orders",
        what="order line",
    ), status


@bp.route("/orders/tolerances", methods=["GET", "POST"])
@bp.route("/orders/tolerances/<int:supplier_id>", methods=["GET", "POST"])
@requires(Permission.ORDERS_SETTINGS)
def tolerances(supplier_id: int | None = None):
    """The tenant's default tolerances, or one supplier's override."""
    context = ctx()
    db_sess = db_session()
    supplier = get_scoped_or_404(db_sess, Supplier, supplier_id, context) if supplier_id else None
    policy = db_sess.execute(
        select(TolerancePolicy).where(
            TolerancePolicy.tenant_id == context.tenant_id,
            TolerancePolicy.supplier_id == supplier_id if supplier_id else TolerancePolicy.supplier_id.is_(None),
        )
    ).scalar_one_or_none()
    form = ToleranceForm(obj=policy)
    if form.validate_on_submit():
        before = None
        if policy is None:
            policy = TolerancePolicy(tenant_id=context.tenant_id, supplier_id=supplier_id)
            db_sess.add(policy)
        else:
            before = {f: str(getattr(policy, f)) for f in TOLERANCE_FIELDS}
        for name in TOLERANCE_FIELDS:
            setattr(policy, name, getattr(form, name).data)
        db_sess.flush()
        actor().audit(
            db_sess,
            "tolerance.changed",
            tenant_id=context.tenant_id,
            object_type="tolerance",
            object_id=policy.id,
            before=before,
            after={f: str(getattr(policy, f)) for f in TOLERANCE_FIELDS},
        )
        flash("Tolerances saved.", "success")
        return redirect(url_for("orders.tolerances", supplier_id=supplier_id))
    overrides = db_sess.execute(
        select(TolerancePolicy, Supplier.name)
        .join(Supplier, Supplier.id == TolerancePolicy.supplier_id)
        .where(TolerancePolicy.tenant_id == context.tenant_id)
        .order_by(Supplier.name)
    ).all()
    status = 422 if request.method == "POST" else 200
    return render_template("orders/tolerances.html", form=form, supplier=supplier, overrides=overrides), status


def _buyer_line_action(order_id: int, line_id: int, action: str):
    order = _order(order_id)
    if (stale := _stale(order)) is not None:
        return stale
    line = _line(order, line_id)
    db_sess = db_session()

    def cancel() -> str:
        form = ReasonForm()
        if not form.validate_on_submit():
            raise svc.InvalidAnswers({line.id: ["Give a reason for the cancellation."]})
        svc.cancel_line(
            db_sess,
            order=order,
            line=line,
            reason=form.reason.data or "",
            expected_version=parse_version(request.form),
            actor=actor(),
        )
        return f"Line {line.position} cancelled."

    def receive() -> str:
        form = ReceiptForm()
        if not form.validate_on_submit() or form.quantity.data is None or form.received_on.data is None:
            messages = list(form.ship_notice.errors)
            if not messages or form.quantity.errors or form.received_on.errors or form.quantity.data is None:
                messages.insert(0, "Enter a received quantity above zero and the date.")
            raise svc.InvalidAnswers({line.id: messages})
        if (future := svc.future_receipt_day(form.received_on.data, date.today())) is not None:
            raise svc.InvalidAnswers({line.id: [future]})
        reference = (form.ship_notice.data or "").strip()
        notice = svc.receipt_notice(db_sess, order=order, line=line, reference=reference) if reference else None
        svc.record_receipt(
            db_sess,
            order=order,
            line=line,
            quantity=form.quantity.data,
            received_on=form.received_on.data,
            actor=actor(),
            source=Source.PORTAL,
            ship_notice=notice,
        )
        against = f" against ship notice {notice.number}" if notice else ""
        return f"Receipt recorded for line {line.position}{against}."

    return _line_write(order, line, cancel if action == "cancel" else receive)


@bp.route("/orders/<int:order_id>/lines/<int:line_id>/cancel", methods=["POST"])
@requires(Permission.ORDERS_MANAGE)
def cancel_line(order_id: int, line_id: int):
    return _buyer_line_action(order_id, line_id, "cancel")


@bp.route("/orders/<int:order_id>/lines/<int:line_id>/receipts", methods=["POST"])
@requires(Permission.ORDERS_MANAGE)
def record_receipt(order_id: int, line_id: int):
    return _buyer_line_action(order_id, line_id, "receive")


@bp.route("/orders/<int:order_id>/lines/<int:line_id>/revise", methods=["POST"])
@requires(Permission.ORDERS_MANAGE)
def revise_line(order_id: int, line_id: int):
    """The buyer's change order: new terms for a line, which the supplier answers again. A line from the ERP is
    changed there; here the buyer sends that change on to the supplier (the ERP's unit price, the quantity and
    date as the buyer confirms them)."""
    order = _order(order_id)
    if (stale := _stale(order)) is not None:
        return stale
    line = _line(order, line_id)
    db_sess = db_session()
    form = RevisionForm()

    def revise() -> str:
        if not form.validate_on_submit() or form.quantity.data is None or form.requested_date.data is None:
            raise svc.InvalidAnswers({line.id: [error for errors in form.errors.values() for error in errors]})
        comment, version = form.comment.data or "", parse_version(request.form)
        if line.erp_ref:
            erp_services.take_revision(
                db_sess, order=order, line=line, quantity=form.quantity.data, requested_date=form.requested_date.data,
                comment=comment, expected_version=version, actor=actor(),
            )  # fmt: skip
        else:
            if form.unit_price.data is None:
                raise svc.InvalidAnswers({line.id: ["Enter the unit price."]})
            terms = svc.LineTerms(form.quantity.data, form.requested_date.data, form.unit_price.data)
            svc.revise_line(
                db_sess, order=order, line=line, terms=terms, comment=comment, expected_version=version, actor=actor()
            )
        return f"Line {line.position} revised: it waits for the supplier to confirm it again."

    return _line_write(order, line, revise)


@bp.route("/orders/<int:order_id>/lines/<int:line_id>/keep-commitment", methods=["POST"])
@requires(Permission.ORDERS_MANAGE)
def keep_commitment(order_id: int, line_id: int):
    """The buyer keeps the supplier's commitment over a change made in the ERP: it is written back there."""
    order = _order(order_id)
    line = _line(order, line_id)
    form = FlaskForm()  # the CSRF token alone

    def keep() -> str:
        if not form.validate_on_submit():
            raise ServiceError("The form expired; please try again.")
        erp_services.keep_commitment(db_session(), order=order, line=line, actor=actor())
        return f"The supplier's commitment for line {line.position} will be written back to the ERP."

    return _line_write(order, line, keep)


def _line_write(order: PurchaseOrder, line: PurchaseOrderLine, write):
    """A buyer's write to one line: its message on the order page, back at the line; a refusal as ``_write``."""
    message, failed = _write(order, line.id, write)
    if failed is not None:
        return failed
    flash(message, "success")
    return redirect(url_for("orders.order_page", order_id=order.id, _anchor=f"line-{line.id}"))


@bp.route("/orders/<int:order_id>/remind", methods=["POST"])
@requires(Permission.ORDERS_MANAGE)
def remind(order_id: int):
    """Remind the supplier to answer an order still waiting for it (from the response queue or the order)."""
    order = _order(order_id)
    from_queue = request.form.get("back") == "queue"
    back = _queue_url() if from_queue else url_for("orders.order_page", order_id=order.id)
    try:
        svc.remind_supplier(db_session(), order=order, actor=actor())
    except ServiceError as exc:
        flash(exc.message, "error")
        return redirect(back, code=303)
    flash(f"The supplier was reminded to answer order {order.number}.", "success")
    return redirect(back, code=303)


@bp.route("/orders/<int:order_id>/close", methods=["POST"])
@requires(Permission.ORDERS_MANAGE)
def close(order_id: int):
    order = _order(order_id)
    if (stale := _stale(order)) is not None:
        return stale
    try:
        svc.close_order(db_session(), order=order, expected_version=parse_version(request.form), actor=actor())
    except svc.Conflict as exc:
        return _conflict(order, exc)
    except ServiceError as exc:
        return _render_order(order, errors={0: [exc.message]}, status=422)
    flash(f"Order {order.number} closed.", "success")
    return redirect(url_for("orders.order_page", order_id=order.id))


def register(app):
    app.register_blueprint(bp)
