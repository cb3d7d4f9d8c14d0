"""Scorecards: a supplier's own, the buyers' ranking and one supplier's, and the definitions."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, Flask, abort, render_template, request

from portal.auth.access import get_scoped_or_404, requires
from portal.auth.admin_views import ctx
from portal.auth.permissions import Permission
from portal.scorecards import services
from portal.scorecards.definitions import DEFINITIONS, VERSION
from portal.suppliers.models import Supplier
from portal.web import db_session

bp = Blueprint("scorecards", __name__, template_folder="templates")

SORTABLE = {"otif": "OTIF", "on_time": "On time", "in_full": "In full", "fill_rate": "Fill rate", "ack_rate": "Ack."}


def _window() -> services.Window:
    try:
        at = date.fromisoformat(request.args.get("at", "")) if request.args.get("at") else date.today()
    except ValueError:
        abort(404)
    if request.args.get("period") == "quarter":
        return services.quarter_window(at)
    return services.month_window(at)


def _scorecard(supplier: Supplier) -> str:
    context = ctx()
    session = db_session()
    window = _window()
    figures = services.figures(session, tenant_id=context.tenant_id, window=window, supplier_id=supplier.id).get(
        supplier.id, services.Figures(supplier_id=supplier.id)
    )
    rows = services.evidence(session, tenant_id=context.tenant_id, window=window, supplier_id=supplier.id)
    return render_template(
        "scorecards/scorecard.html",
        supplier=supplier,
        figures=figures,
        rows=rows,
        window=window,
        period=request.args.get("period", "month"),
        version=VERSION,
    )


@bp.route("/scorecard")
@requires(Permission.ORDERS_VIEW)
def own() -> str:
    """A supplier's own scorecard for the customer it works for."""
    context = ctx()
    if context.supplier_id is None:
        abort(404)
    return _scorecard(get_scoped_or_404(db_session(), Supplier, context.supplier_id, context))


@bp.route("/scorecards")
@requires(Permission.SUPPLIERS_VIEW)
def ranking() -> str:
    context = ctx()
    sort = request.args.get("sort", "otif")
    if sort not in SORTABLE:
        sort = "otif"
    window = _window()
    rows = services.ranking(db_session(), tenant_id=context.tenant_id, window=window, sort=sort)
    category = request.args.get("category", "").strip()
    if category:
        rows = [(s, f) for s, f in rows if s.category == category]
    return render_template(
        "scorecards/ranking.html",
        rows=rows,
        window=window,
        sort=sort,
        sortable=SORTABLE,
        period=request.args.get("period", "month"),
        category=category,
        version=VERSION,
    )


@bp.route("/scorecards/<int:supplier_id>")
@requires(Permission.SUPPLIERS_VIEW)
def supplier(supplier_id: int) -> str:
    return _scorecard(get_scoped_or_404(db_session(), Supplier, supplier_id, ctx()))


@bp.route("/scorecards/definitions")
@requires(Permission.DASHBOARD_VIEW)
def definitions() -> str:
    return render_template("scorecards/definitions.html", definitions=DEFINITIONS, version=VERSION)


def register(app: Flask) -> None:
    app.register_blueprint(bp)


