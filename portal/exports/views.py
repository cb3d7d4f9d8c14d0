"""Asking for an export, following its progress, downloading it."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, Flask, abort, flash, redirect, render_template, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from portal.auth.access import get_scoped_or_404, requires
from portal.auth.admin_views import ctx
from portal.auth.permissions import Permission
from portal.exports import services
from portal.exports.forms import KINDS, ExportForm
from portal.exports.models import Export, ExportState
from portal.numbers import whole_number
from portal.suppliers.models import Supplier
from portal.web import db_session

bp = Blueprint("exports", __name__, template_folder="templates")


@bp.route("/exports")
@requires(Permission.DASHBOARD_VIEW)
def index() -> str:
    context = ctx()
    items = services.recent(db_session(), tenant_id=context.tenant_id, user_id=current_user.id)
    return render_template("exports/index.html", items=items, kinds=KINDS)


@bp.route("/exports", methods=["POST"])
@requires(Permission.DASHBOARD_VIEW)
def start() -> Response:
    context = ctx()
    form = ExportForm()
    if not form.validate_on_submit():
        abort(400)
    kind = form.kind.data or ""
    params = {"period": "quarter" if form.period.data == "quarter" else "month", "at": _day(form.at.data)}
    supplier_id: int | None = None
    if kind == "scorecards.ranking_csv":
        if not context.can(Permission.SUPPLIERS_VIEW):
            abort(403)
        params |= {
            "sort": form.sort.data or "",
            "category": form.category.data or "",
            "company": form.company.data or "",
        }
        title = f"Supplier ranking, {_period_named(params)}"
    else:
        if context.is_supplier:  # a supplier exports its own card, whatever the form says
            if not context.can(Permission.ORDERS_VIEW):
                abort(403)
            supplier = get_scoped_or_404(db_session(), Supplier, int(context.supplier_id or 0), context)
            supplier_id = supplier.id
        else:
            supplier_id = whole_number(form.supplier_id.data or "")
            if not context.can(Permission.SUPPLIERS_VIEW) or supplier_id is None:
                abort(404)
            supplier = get_scoped_or_404(db_session(), Supplier, supplier_id, context)
        params["supplier_id"] = supplier.id
        title = f"{KINDS[kind]}: {supplier.name}, {_period_named(params)}"
    export = services.request_export(
        db_session(), tenant_id=context.tenant_id, user_id=current_user.id, kind=kind, title=title, params=params,
        supplier_id=supplier_id,
    )  # fmt: skip
    flash("Your export is being made; this page follows its progress.", "info")
    return redirect(url_for("exports.show", export_id=export.id))


def _period_named(params: dict[str, str]) -> str:
    """The period an export covers as its pages name it: "October 2026", "Q4 2026"."""
    from portal.scorecards.services import period_window
    from portal.scorecards.views import period_name

    day = date.fromisoformat(params["at"]) if params["at"] else date.today()
    return period_name(params["period"], period_window(params["period"], day))


def _day(value: str | None) -> str:
    try:
        return date.fromisoformat(value).isoformat() if value else ""
    except ValueError:
        abort(400)


@bp.route("/exports/<int:export_id>")
@requires(Permission.DASHBOARD_VIEW)
def show(export_id: int) -> str:
    export = _own(export_id)
    return render_template("exports/show.html", export=export, ExportState=ExportState)


@bp.route("/exports/<int:export_id>/download")
@requires(Permission.DASHBOARD_VIEW)
def download(export_id: int) -> Response:
    export = _own(export_id)
    if export.state != ExportState.DONE or export.content is None:
        abort(404)
    response = Response(export.content, mimetype=export.content_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{export.filename}"'
    return response


def _own(export_id: int) -> Export:
    context = ctx()
    export = services.own_export(
        db_session(), tenant_id=context.tenant_id, user_id=current_user.id, export_id=export_id
    )
    if export is None:
        abort(404)  # another person's export, or another tenant's, is not found
    return export


def register(app: Flask) -> None:
    app.register_blueprint(bp)
