"""Compliance documents: the supplier's compliance page and uploads, the review
queue, types and requirements, and downloads."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, send_file, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from portal.auth.access import get_scoped_or_404, requires, scoped
from portal.auth.admin_views import ctx
from portal.auth.permissions import Permission
from portal.auth.services import ServiceError
from portal.auth.views import actor
from portal.db import planned_per_run
from portal.documents import services
from portal.documents.antivirus import scanner_for
from portal.documents.forms import DocumentTypeForm, OverrideForm, RequirementForm, ReviewForm, UploadForm
from portal.documents.models import Document, DocumentStatus, DocumentType, Requirement, RequirementScope
from portal.documents.storage import LocalStorage
from portal.documents.validation import UploadRejected
from portal.numbers import MAX_DAYS, page_number, whole_number
from portal.suppliers.models import Supplier
from portal.suppliers.services import supplier_filter, supplier_name
from portal.suppliers.views import supplier_filter_args
from portal.tenancy.models import Warehouse
from portal.web import db_session

bp = Blueprint("documents", __name__, template_folder="templates")

PAGE_SIZE = 50


def storage() -> LocalStorage:
    return LocalStorage(Path(current_app.config["DOCUMENT_ROOT"]))


def _types() -> list[DocumentType]:
    return list(
        db_session()
        .execute(select(DocumentType).where(DocumentType.tenant_id == ctx().tenant_id).order_by(DocumentType.name))
        .scalars()
    )


@bp.route("/compliance", methods=["GET", "POST"])
@requires(Permission.DOCUMENTS_UPLOAD)
def compliance():
    context = ctx()
    if context.supplier_id is None:
        abort(404)
    db_sess = db_session()
    supplier: Supplier = get_scoped_or_404(db_sess, Supplier, context.supplier_id, context)
    form = UploadForm()
    form.document_type_id.choices = [(t.id, t.name) for t in _types()]
    replacing = None
    replace_id = request.args.get("replace", "") if request.method == "GET" else form.supersedes_id.data or ""
    if replace_id:
        # Only one's own supplier account's documents can be replaced: another id answers 404.
        replacing = get_scoped_or_404(db_sess, Document, whole_number(replace_id) or 0, context)
        if request.method == "GET":
            form.supersedes_id.data = str(replacing.id)
            form.document_type_id.data = replacing.document_type_id
            form.title.data = replacing.title
            form.issuer.data = replacing.issuer
    status = 200
    if request.method == "POST":
        status = 422
        if form.validate_on_submit():
            upload = form.file.data
            try:
                document = services.upload(
                    db_sess,
                    storage(),
                    tenant_id=context.tenant_id,
                    supplier_id=supplier.id,
                    actor=actor(),
                    scan=scanner_for(current_app.extensions["portal.settings"].clamd_address),
                    data=services.UploadInput(
                        document_type_id=form.document_type_id.data or 0,
                        title=form.title.data or "",
                        issuer=form.issuer.data or "",
                        certificate_number=form.certificate_number.data or "",
                        issue_date=form.issue_date.data,
                        expiry_date=form.expiry_date.data,
                        filename=upload.filename or "",
                        data=upload.read(),
                        supersedes_id=whole_number(form.supersedes_id.data or ""),
                    ),
                )
            except UploadRejected as exc:
                form.file.errors = [exc.message]
                status = exc.status
            except ServiceError as exc:
                getattr(form, exc.field or "file").errors = [exc.message]
            else:
                flash(f"“{document.title}” uploaded; the compliance team will review it.", "success")
                return redirect(url_for("documents.compliance"))
    statuses = services.compliance(db_sess, tenant_id=context.tenant_id, supplier=supplier, today=date.today())
    documents = (
        db_sess.execute(scoped(Document, context).order_by(Document.created_at.desc()).limit(100)).scalars().all()
    )
    return render_template(
        "documents/compliance.html",
        form=form,
        statuses=statuses,
        documents=documents,
        types={t.id: t for t in _types()},
        replacing=replacing,
    ), status


PREVIEW_PAGES = 5


@bp.route("/documents/<int:document_id>/preview/<int:page>")
@requires(Permission.DOCUMENTS_REVIEW)
def preview(document_id: int, page: int) -> Response:
    """A page of the document as a picture: the reviewer never opens the file itself in our origin.

    PDFs are rendered to PNG on the server (PDFium; active content was refused at upload);
    images are sent as they are. Either way with ``Content-Security-Policy: sandbox`` and ``nosniff``.
    """
    context = ctx()
    document = get_scoped_or_404(db_session(), Document, document_id, context)
    data = storage().read(document.storage_key)
    if document.content_type == "application/pdf":
        png = render_pdf_page(data, page)
        if png is None:
            abort(404)
        response = Response(png, mimetype="image/png")
    else:
        if page != 1:
            abort(404)
        response = Response(data, mimetype=document.content_type)
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Disposition"] = "inline"
    return response


def render_pdf_page(data: bytes, page: int) -> bytes | None:
    import pypdfium2

    pdf = pypdfium2.PdfDocument(data)
    try:
        if not 1 <= page <= min(len(pdf), PREVIEW_PAGES):
            return None
        bitmap = pdf[page - 1].render(scale=1.5)
        out = io.BytesIO()
        bitmap.to_pil().save(out, format="PNG")
        return out.getvalue()
    finally:
        pdf.close()


def preview_pages(document: Document) -> int:
    if document.content_type != "application/pdf":
        return 1
    import pypdfium2

    pdf = pypdfium2.PdfDocument(storage().read(document.storage_key))
    try:
        return min(len(pdf), PREVIEW_PAGES)
    finally:
        pdf.close()


def send_document(document: Document) -> Response:
    """The document's file, as an attachment (the page, the review queue and the API)."""
    return send_stored(document.storage_key, document.content_type, document.original_name)


def send_stored(key: str, content_type: str, name: str) -> Response:
    """An uploaded file (a document, a file attached to an order message) as an attachment."""
    data = storage().read(key)
    response = send_file(io.BytesIO(data), mimetype=content_type, as_attachment=True, download_name=name)
    # Never rendered by the browser in our origin.
    response.headers["Content-Security-Policy"] = "sandbox"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.route("/compliance/documents/<int:document_id>/download")
@requires(Permission.DOCUMENTS_UPLOAD)
def supplier_download(document_id: int) -> Response:
    return send_document(get_scoped_or_404(db_session(), Document, document_id, ctx()))


@bp.route("/documents/<int:document_id>/download")
@requires(Permission.DOCUMENTS_REVIEW)
def download(document_id: int) -> Response:
    return send_document(get_scoped_or_404(db_session(), Document, document_id, ctx()))


@bp.route("/documents/review")
@requires(Permission.DOCUMENTS_REVIEW)
def queue() -> str:
    context = ctx()
    db_sess = db_session()
    status = request.args.get("status", "pending_review")
    stmt = (
        select(Document, Supplier.name, DocumentType.name)
        .join(Supplier, Supplier.id == Document.supplier_id)
        .join(DocumentType, DocumentType.id == Document.document_type_id)
        .where(Document.tenant_id == context.tenant_id)
    )
    if status in {s.value for s in DocumentStatus}:
        stmt = stmt.where(Document.status == status)
    if (type_id := whole_number(request.args.get("type", ""))) is not None:
        stmt = stmt.where(Document.document_type_id == type_id)
    supplier_id, search = supplier_filter_args()
    stmt = stmt.where(
        *supplier_filter(
            Document.supplier_id, tenant_id=context.tenant_id, supplier_id=supplier_id, search=search, session=db_sess
        )
    )
    if (days := whole_number(request.args.get("expiring", ""), MAX_DAYS)) is not None:
        stmt = stmt.where(Document.expiry_date <= date.today() + timedelta(days=days))
    page = page_number(request.args)
    # Oldest first while reviewing (fairness); newest first when browsing every status.
    order = Document.created_at if status == "pending_review" else Document.created_at.desc()
    listed = stmt.order_by(order, Document.id).limit(PAGE_SIZE + 1).offset((page - 1) * PAGE_SIZE)
    rows = db_sess.execute(planned_per_run(listed)).all()  # filters decide how many match, and so the plan
    has_next = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return render_template(
        "documents/queue.html",
        rows=rows,
        status=status,
        types=_types(),
        supplier_id=supplier_id,
        supplier_search=search,
        chosen_supplier=supplier_name(db_sess, context.tenant_id, supplier_id),
        statuses=list(DocumentStatus),
        args=request.args,
        page=page,
        has_next=has_next,
    )


@bp.route("/documents/<int:document_id>", methods=["GET", "POST"])
@requires(Permission.DOCUMENTS_REVIEW)
def detail(document_id: int):
    context = ctx()
    db_sess = db_session()
    document: Document = get_scoped_or_404(db_sess, Document, document_id, context)
    form = ReviewForm()
    status = 200
    if request.method == "POST":
        status = 422
        if form.validate_on_submit():
            try:
                services.review(
                    db_sess,
                    document=document,
                    decision=form.decision.data or "",
                    comment=form.comment.data or "",
                    valid_until=form.valid_until.data,
                    actor=actor(),
                )
            except ServiceError as exc:
                getattr(form, exc.field or "decision").errors = [exc.message]
            else:
                flash(f"“{document.title}” {document.status.label}.", "success")
                return redirect(url_for("documents.queue"))
    supplier, doc_type = db_sess.execute(
        select(Supplier, DocumentType)
        .select_from(Document)
        .join(Supplier, Supplier.id == Document.supplier_id)
        .join(DocumentType, DocumentType.id == Document.document_type_id)
        .where(Document.id == document.id, Document.tenant_id == context.tenant_id)
    ).one()
    return render_template(
        "documents/detail.html",
        document=document,
        form=form,
        supplier=supplier,
        doc_type=doc_type,
        pages=preview_pages(document),
    ), status


@bp.route("/documents/types", methods=["GET", "POST"])
@requires(Permission.DOCUMENTS_REVIEW)
def types():
    context = ctx()
    db_sess = db_session()
    type_form = DocumentTypeForm(prefix="type")
    requirement_form = RequirementForm(prefix="req")
    requirement_form.document_type_id.choices = [(t.id, t.name) for t in _types()]
    requirement_form.supplier_ids.choices = [
        (row.id, row.name)
        for row in db_sess.execute(
            select(Supplier.id, Supplier.name).where(Supplier.tenant_id == context.tenant_id).order_by(Supplier.name)
        )
    ]
    requirement_form.warehouse_ids.choices = [
        (row.id, row.name)
        for row in db_sess.execute(
            select(Warehouse.id, Warehouse.name)
            .where(Warehouse.tenant_id == context.tenant_id)
            .order_by(Warehouse.name)
        )
    ]
    status = 200
    if request.method == "POST":
        status = 422
        if "type-submit" in request.form and type_form.validate_on_submit():
            code = (type_form.code.data or "").strip().upper()
            if db_sess.execute(
                select(DocumentType).where(DocumentType.tenant_id == context.tenant_id, DocumentType.code == code)
            ).first():
                type_form.code.errors = [f"Code {code} is in use already."]
            else:
                db_sess.add(
                    DocumentType(tenant_id=context.tenant_id, code=code, name=(type_form.name.data or "").strip())
                )
                db_sess.flush()
                actor().audit(
                    db_sess,
                    "document_type.created",
                    tenant_id=context.tenant_id,
                    object_type="document_type",
                    after={"code": code},
                )
                flash("Document type added.", "success")
                return redirect(url_for("documents.types"))
        elif "req-submit" in request.form and requirement_form.validate_on_submit():
            requirement = Requirement(
                tenant_id=context.tenant_id,
                document_type_id=requirement_form.document_type_id.data,
                scope=RequirementScope(requirement_form.scope.data),
                category=(requirement_form.category.data or "").strip(),
                validity_months=requirement_form.validity_months.data,
                reminder_days=sorted(
                    {
                        day
                        for d in (requirement_form.reminder_days.data or "").split(",")
                        if (day := whole_number(d.strip(), MAX_DAYS)) is not None
                    },
                    reverse=True,
                )
                or [60, 30, 7],
                grace_days=requirement_form.grace_days.data or 0,
                supplier_ids=sorted(requirement_form.supplier_ids.data or []),
                product_codes=sorted(
                    {c.strip()[:64] for c in (requirement_form.product_codes.data or "").split(",") if c.strip()}
                ),
                warehouse_ids=sorted(requirement_form.warehouse_ids.data or []),
            )
            if requirement.scope == RequirementScope.CATEGORY and not requirement.category:
                requirement_form.category.errors = ["Name the supplier category this applies to."]
            elif requirement.scope == RequirementScope.SUPPLIERS and not requirement.supplier_ids:
                requirement_form.supplier_ids.errors = ["Choose at least one supplier."]
            else:
                db_sess.add(requirement)
                db_sess.flush()
                actor().audit(
                    db_sess,
                    "document_requirement.created",
                    tenant_id=context.tenant_id,
                    object_type="document_requirement",
                    object_id=requirement.id,
                    after={
                        "type_id": requirement.document_type_id,
                        "scope": requirement.scope.value,
                        "category": requirement.category,
                        "supplier_ids": requirement.supplier_ids,
                        "product_codes": requirement.product_codes,
                        "warehouse_ids": requirement.warehouse_ids,
                    },
                )
                flash("Requirement added.", "success")
                return redirect(url_for("documents.types"))
    requirements = db_sess.execute(
        select(Requirement, DocumentType.name)
        .join(DocumentType, DocumentType.id == Requirement.document_type_id)
        .where(Requirement.tenant_id == context.tenant_id)
    ).all()
    return render_template(
        "documents/types.html",
        type_form=type_form,
        requirement_form=requirement_form,
        types=_types(),
        requirements=requirements,
    ), status


@bp.route("/documents/dashboard")
@requires(Permission.DOCUMENTS_REVIEW)
def dashboard() -> str:
    context = ctx()
    data = services.dashboard(db_session(), tenant_id=context.tenant_id, today=date.today())
    return render_template("documents/dashboard.html", d=data)


@dataclass(frozen=True)
class GapFilters:
    """The gap list's filters from the query: document type, state, suppliers (a link's id or a search)."""

    document_type_id: int | None
    state: str | None
    supplier_ids: list[int] | None  # None: every supplier
    supplier_id: int | None
    search: str


def _gap_filters() -> GapFilters:
    context = ctx()
    db_sess = db_session()
    type_arg, state_arg = request.args.get("type", ""), request.args.get("state", "")
    supplier_id, search = supplier_filter_args()
    supplier_ids = None
    if supplier_id or search:
        conditions = supplier_filter(Supplier.id, tenant_id=context.tenant_id, supplier_id=supplier_id,
                                     search=search, session=db_sess)  # fmt: skip
        supplier_ids = list(
            db_sess.execute(select(Supplier.id).where(Supplier.tenant_id == context.tenant_id, *conditions)).scalars()
        )
    return GapFilters(
        document_type_id=whole_number(type_arg),
        state=state_arg if state_arg in services.GAP_STATES else None,
        supplier_ids=supplier_ids,
        supplier_id=supplier_id,
        search=search,
    )


def _gaps(filters: GapFilters) -> list[services.Gap]:
    return services.gaps(
        db_session(), tenant_id=ctx().tenant_id, today=date.today(), document_type_id=filters.document_type_id,
        state=filters.state, supplier_ids=filters.supplier_ids,
    )  # fmt: skip


@bp.route("/documents/gaps")
@requires(Permission.DOCUMENTS_REVIEW)
def gaps() -> str:
    """Who lacks which required document today: missing, waiting for review, rejected or expired; by supplier."""
    from portal.auth.forms import EmptyForm

    filters = _gap_filters()
    found = _gaps(filters)
    page = page_number(request.args)
    shown = found[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    return render_template(
        "documents/gaps.html",
        gaps=shown,
        total=len(found),
        suppliers=len({gap.supplier_id for gap in found}),
        page=page,
        pages=max(1, -(-len(found) // PAGE_SIZE)),
        types=_types(),
        states=services.GAP_STATES,
        filters=filters,
        chosen_supplier=supplier_name(db_session(), ctx().tenant_id, filters.supplier_id),
        ask_form=EmptyForm(),
    )


def _some_names(names: list[str], shown: int = 10) -> str:
    """Names for a message: the first ``shown``, then how many more (a tenant may have thousands)."""
    listed = ", ".join(names[:shown])
    return listed if len(names) <= shown else f"{listed} and {len(names) - shown} more"


@bp.route("/documents/gaps/request", methods=["POST"])
@requires(Permission.DOCUMENTS_REVIEW)
def request_documents() -> Response:
    """Ask the suppliers of the listed gaps (the filters ride in the query, as on the list) for their documents."""
    from portal.auth.forms import EmptyForm
    from portal.db import utcnow
    from portal.formatting import counted

    filters: dict[str, Any] = request.args.to_dict()
    back = redirect(url_for("documents.gaps", **filters), code=303)
    if not EmptyForm().validate_on_submit():
        flash("The form expired: nothing was sent. Try again.", "error")
        return back
    run = services.ask_for_documents(db_session(), tenant_id=ctx().tenant_id, gaps=_gaps(_gap_filters()),
                                     actor=actor(), now=utcnow())  # fmt: skip
    if run.asked:
        flash(f"Asked {counted(len(run.asked), 'supplier', 'suppliers')} ({counted(run.people, 'person', 'people')}) "
              "for their documents.", "success")  # fmt: skip
    if run.asked_today_already:
        flash(f"Already asked today, not asked again: {_some_names(run.asked_today_already)}.", "info")
    if run.nobody_to_ask:
        flash(f"Nobody to ask at {_some_names(run.nobody_to_ask)}: invite an administrator from the supplier's "
              "page.", "error")  # fmt: skip
    if not (run.asked or run.asked_today_already or run.nobody_to_ask):
        flash("Nothing to ask for: the documents listed wait for review.", "info")
    return back


@bp.route("/documents/gaps.csv")
@requires(Permission.DOCUMENTS_REVIEW)
def gaps_csv() -> Response:
    """The gap list with the same filters, every row, for a spreadsheet or a reminder campaign."""
    from portal.csvfiles import csv_bytes

    body = csv_bytes(
        ["supplier_code", "supplier", "document_type", "state", "detail"],
        ([gap.supplier_code, gap.supplier_name, gap.document_type, services.GAP_STATES[gap.state], gap.detail]
         for gap in _gaps(_gap_filters())),
    )  # fmt: skip
    response = Response(body, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="compliance-gaps-{date.today().isoformat()}.csv"'
    return response


@bp.route("/documents/export")
@requires(Permission.DOCUMENTS_REVIEW)
def export() -> Response:
    context = ctx()
    supplier_id = request.args.get("supplier", "")
    supplier = None
    if (chosen := whole_number(supplier_id)) is not None:
        supplier = get_scoped_or_404(db_session(), Supplier, chosen, context)
    elif code := (request.args.get("supplier_code") or "").strip():
        # The form asks for a code rather than listing every supplier (a tenant may have thousands).
        supplier = (
            db_session()
            .execute(select(Supplier).where(Supplier.tenant_id == context.tenant_id, Supplier.code == code))
            .scalar_one_or_none()
        )
        if supplier is None:
            flash(f"No supplier has the code “{code}”: nothing was exported.", "error")
            return redirect(url_for("documents.dashboard"))
    dates = {}
    for key in ("from", "to"):
        raw = request.args.get(key, "")
        try:
            dates[key] = date.fromisoformat(raw) if raw else None
        except ValueError:
            abort(400)
    data = services.export(
        db_session(),
        storage(),
        tenant_id=context.tenant_id,
        supplier_id=supplier.id if supplier else None,
        date_from=dates["from"],
        date_to=dates["to"],
    )
    actor().audit(
        db_session(),
        "documents.exported",
        tenant_id=context.tenant_id,
        object_type="export",
        after={
            "supplier_id": supplier.id if supplier else None,
            "from": request.args.get("from"),
            "to": request.args.get("to"),
        },
    )
    name = f"compliance-export-{date.today().isoformat()}.zip"
    return send_file(io.BytesIO(data), mimetype="application/zip", as_attachment=True, download_name=name)


@bp.route("/suppliers/<int:supplier_id>/document-override", methods=["POST"])
@requires(Permission.ORDERS_MANAGE)
def override(supplier_id: int) -> Response:
    """A buyer lets a supplier confirm orders despite missing documents, until a date."""
    db_sess = db_session()
    supplier: Supplier = get_scoped_or_404(db_sess, Supplier, supplier_id, ctx())
    form = OverrideForm()
    if not form.validate_on_submit() or form.until.data is None:
        flash("Give the date and a reason for the override.", "error")
        return redirect(url_for("suppliers.detail", supplier_id=supplier.id), code=303)
    try:
        services.override_gate(
            db_sess, supplier=supplier, until=form.until.data, reason=form.reason.data or "", actor=actor()
        )
    except ServiceError as exc:
        flash(exc.message, "error")
        return redirect(url_for("suppliers.detail", supplier_id=supplier.id), code=303)
    flash(f"{supplier.name} may confirm orders until {form.until.data}.", "success")
    return redirect(url_for("suppliers.detail", supplier_id=supplier.id))


def register(app):
    app.config.setdefault("DOCUMENT_ROOT", str(Path(app.instance_path) / "documents"))
    app.register_blueprint(bp)
