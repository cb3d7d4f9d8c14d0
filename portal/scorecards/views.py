"""Scorecards: a supplier's own, the buyers' ranking and one supplier's, exports, settings, definitions."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import Blueprint, Flask, abort, flash, redirect, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from portal.auth.access import get_scoped_or_404, requires
from portal.auth.admin_views import ctx
from portal.auth.permissions import Permission
from portal.auth.views import actor
from portal.csvfiles import csv_bytes
from portal.numbers import page_number, whole_number
from portal.pdf import ASSET_BASE, html_to_pdf
from portal.scorecards import services
from portal.scorecards.charts import trend_svg
from portal.scorecards.definitions import CHANGES, DEFINITIONS, VERSION
from portal.scorecards.forms import SettingsForm
from portal.suppliers.models import Supplier
from portal.web import db_session

bp = Blueprint("scorecards", __name__, template_folder="templates")

EVIDENCE_ROWS = 50  # a page of the evidence table; the CSV has every delivery
PDF_EVIDENCE_ROWS = 30  # the deliveries that cost points first, on about one printed page; the CSV has all
ORDER_ROWS = 20  # the orders behind the acknowledgement figures on the page, the late or unanswered first
RANKING_PAGE = 50

SORTABLE = {
    "score": "Score",
    "otif": "OTIF",
    "on_time": "On time",
    "in_full": "In full",
    "fill_rate": "Fill rate",
    "ack_rate": "Ack.",
    "promise_kept": "Promises kept",
    "documents": "Documents",
}
FIGURE_COLUMNS = ("deliveries", "on_time", "in_full", "otif", "fill_rate", "orders", "ack_rate", "ack_hours",
                  "promise_kept", "slip_days", "lead_error_days", "documents", "score", "grade")  # fmt: skip


def _kind() -> str:
    return "quarter" if request.args.get("period") == "quarter" else "month"


def _window(at: str | None = None) -> services.Window:
    """The period containing ``at`` (by default the day asked for in the query, else today)."""
    at = request.args.get("at", "") if at is None else at
    try:
        day = date.fromisoformat(at) if at else date.today()
    except ValueError:
        abort(404)
    return services.tenant_window(db_session(), ctx().tenant_id, _kind(), day)


def _ranking_day() -> str:
    """The day whose period the ranking shows: the one asked for, else a day of the last closed period. Buyers
    compare suppliers over whole periods, read from the stored snapshots; computing this period so far for
    every supplier took 0.8 s over a million lines, and is a link away."""
    if request.args.get("at"):
        return request.args["at"]
    current = services.tenant_window(db_session(), ctx().tenant_id, _kind(), date.today())
    return (current.start - timedelta(days=1)).isoformat()


def _card(supplier: Supplier, evidence_rows: int | None = EVIDENCE_ROWS) -> dict[str, Any]:
    page = page_number(request.args) if evidence_rows is not None else 1
    card = build_card(
        db_session(), tenant_id=ctx().tenant_id, supplier=supplier, kind=_kind(), window=_window(),
        today=date.today(), page=page, evidence_rows=evidence_rows, at=request.args.get("at", ""),
    )  # fmt: skip
    if card is None:
        abort(404)  # past the last page
    return card


def build_card(
    session: Session,
    *,
    tenant_id: int,
    supplier: Supplier,
    kind: str,
    window: services.Window,
    today: date,
    page: int = 1,
    evidence_rows: int | None = EVIDENCE_ROWS,
    at: str = "",
) -> dict[str, Any] | None:
    """One supplier's card: figures (a snapshot, or the current period computed once), the trend, and the
    deliveries behind the figures, those that cost points first (pages of ``evidence_rows``; None: all).
    None for a page past the last."""
    offset = (page - 1) * (evidence_rows or 0)
    stored = None
    if window.end <= today:  # a closed period: its snapshot, when there is one
        stored = services.stored_figures(
            session, tenant_id=tenant_id, kind=kind, window=window, supplier_id=supplier.id
        )
    if stored is None:  # the current period (or one never stored): figures and the page in one pass
        figures, rows = services.live_card(
            session, tenant_id=tenant_id, window=window, supplier_id=supplier.id, limit=evidence_rows, offset=offset
        )
    else:
        figures = stored.get(supplier.id, services.Figures(supplier_id=supplier.id))
        rows = services.evidence(
            session, tenant_id=tenant_id, window=window, supplier_id=supplier.id, limit=evidence_rows,
            offset=offset, misses_first=True,
        )  # fmt: skip
    if not rows and page > 1:
        return None
    orders, orders_listed = services.order_evidence(
        session, tenant_id=tenant_id, window=window, supplier_id=supplier.id,
        limit=ORDER_ROWS if evidence_rows is not None else None,
    )  # fmt: skip
    documents = services.document_evidence(session, tenant_id=tenant_id, window=window, supplier_id=supplier.id)
    current = window.start <= today < window.end
    points = services.trend(
        session, tenant_id=tenant_id, supplier_id=supplier.id, kind=kind, today=today,
        current_figures=figures if current else None,
    )  # fmt: skip
    chart = trend_svg(
        [
            (
                f"{w.start:%b %y}" if kind == "month" else f"Q{(w.start.month - 1) // 3 + 1} {w.start:%y}",
                {"otif": f.otif if f else None, "fill_rate": f.fill_rate if f else None},
            )
            for w, f in points
        ],
        last_so_far=True,  # the trend always ends with the period that is not over
    )
    listed = rows[0].listed if rows else 0
    return {
        **neighbours(kind, window, today),
        "shown": rows,
        "hidden": max(0, listed - len(rows)),
        "page": page,
        "pages": max(1, -(-listed // evidence_rows)) if evidence_rows else 1,
        "supplier": supplier,
        "figures": figures,
        "rows": rows,
        "window": window,
        "period": kind,
        "version": VERSION,
        "chart": chart,
        "at": at,
        "today": today,
        "orders": orders,
        "orders_hidden": orders_listed - len(orders),
        "documents": documents,
        "period_end": window.end - timedelta(days=1),
    }


def neighbours(kind: str, window: services.Window, today: date) -> dict[str, Any]:
    """The period's name, whether it is the current one, and the periods before and after it as (a day inside,
    name); the one after only once it has begun."""
    before = services.period_window(kind, window.start - timedelta(days=1))
    after = services.period_window(kind, window.end)
    return {
        "period_name": period_name(kind, window),
        "current": window.start <= today < window.end,
        "previous": (before.start.isoformat(), period_name(kind, before)),
        "next": (after.start.isoformat(), period_name(kind, after)) if after.start <= today else None,
    }


def period_name(kind: str, window: services.Window) -> str:
    """ "November 2026", "Q4 2026"."""
    if kind == "quarter":
        return f"Q{(window.start.month - 1) // 3 + 1} {window.start.year}"
    return f"{window.start:%B %Y}"


def _own_supplier() -> Supplier:
    context = ctx()
    if context.supplier_id is None:
        abort(404)
    return get_scoped_or_404(db_session(), Supplier, context.supplier_id, context)


@bp.route("/scorecard")
@requires(Permission.ORDERS_VIEW)
def own() -> str:
    """A supplier's own scorecard for the customer it works for."""
    return render_template("scorecards/scorecard.html", **_card(_own_supplier()))


@bp.route("/scorecards/<int:supplier_id>")
@requires(Permission.SUPPLIERS_VIEW)
def supplier(supplier_id: int) -> str:
    return render_template(
        "scorecards/scorecard.html", **_card(get_scoped_or_404(db_session(), Supplier, supplier_id, ctx()))
    )


@bp.route("/scorecards")
@requires(Permission.SUPPLIERS_VIEW)
def ranking() -> str:
    page = page_number(request.args)
    at = _ranking_day()
    rows, total, sort, category = _ranking_rows(at, offset=(page - 1) * RANKING_PAGE, limit=RANKING_PAGE)
    pages = max(1, -(-total // RANKING_PAGE))
    if page > pages:  # past the end: the last page
        page = pages
        rows, total, sort, category = _ranking_rows(at, offset=(page - 1) * RANKING_PAGE, limit=RANKING_PAGE)
    window, today = _window(at), date.today()
    return render_template(
        "scorecards/ranking.html",
        rows=rows,
        offset=(page - 1) * RANKING_PAGE,
        page=page,
        pages=pages,
        window=window,
        # The other view: this period so far (live), or back to the last closed one.
        **neighbours(_kind(), window, today),
        today=today.isoformat(),
        sort=sort,
        sortable=SORTABLE,
        period=_kind(),
        category=category,
        categories=_categories(),
        companies=_companies(),
        company=request.args.get("company", ""),
        version=VERSION,
        at=at,
    )  # fmt: skip


def _categories() -> list[str]:
    from sqlalchemy import select

    rows = db_session().execute(
        select(Supplier.category).where(Supplier.tenant_id == ctx().tenant_id, Supplier.category != "").distinct()
    )
    return sorted(rows.scalars())


def _companies() -> list[Any]:
    from sqlalchemy import select

    from portal.tenancy.models import Company

    return list(
        db_session().execute(
            select(Company.id, Company.name).where(Company.tenant_id == ctx().tenant_id).order_by(Company.name)
        )
    )


def _ranking_rows(
    at: str, offset: int = 0, limit: int | None = None
) -> tuple[list[tuple[Supplier, services.Figures]], int, str, str]:
    sort, category, company = ranking_filters(request.args)
    rows, total = services.ranking_page(
        db_session(), tenant_id=ctx().tenant_id, window=_window(at), sort=sort, kind=_kind(), company_id=company,
        category=category, offset=offset, limit=limit,
    )  # fmt: skip
    return rows, total, sort, category


def ranking_filters(args: Any) -> tuple[str, str, int | None]:
    """The ranking's sort, category and company from a query string (or an export's parameters)."""
    sort = args.get("sort", "score")
    company = str(args.get("company", "") or "")
    return (
        (sort if sort in SORTABLE else "score"),
        str(args.get("category", "") or "").strip(),
        whole_number(company),
    )


def _csv(name: str, header: list[str], rows: list[list[Any]]) -> Response:
    response = Response(csv_bytes(header, rows), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _value(value: Any) -> Any:
    return "" if value is None else (round(value, 2) if isinstance(value, float) else value)


@bp.route("/scorecards.csv")
@requires(Permission.SUPPLIERS_VIEW)
def ranking_csv() -> Response:
    at = _ranking_day()
    rows, _, _, _ = _ranking_rows(at)
    window = _window(at)
    return _csv(f"scorecards-{window.start}.csv", RANKING_HEADER, ranking_lines(rows, window))


RANKING_HEADER = ["supplier_code", "supplier", "category", "period_start", "definitions_version", *FIGURE_COLUMNS]


def ranking_lines(rows: list[tuple[Supplier, services.Figures]], window: services.Window) -> list[list[Any]]:
    return [
        [
            s.code,
            s.name,
            s.category,
            window.start.isoformat(),
            VERSION,
            *(_value(getattr(f, c)) for c in FIGURE_COLUMNS),
        ]
        for s, f in rows
    ]


def card_csv(card: dict[str, Any]) -> tuple[str, bytes]:
    """The file name and content of one card's CSV: the figures, then every delivery behind them."""
    figures, window = card["figures"], card["window"]
    lines: list[list[Any]] = [["figure", "value"]]
    # What the figures are of, and when they were read (a current period's change until it closes).
    lines += [["supplier_code", card["supplier"].code], ["supplier", card["supplier"].name],
              ["period_start", window.start], ["period_end", window.end - timedelta(days=1)],
              ["period_closed", "no" if card["current"] else "yes"], ["definitions_version", card["version"]],
              ["as_of", card["today"]]]  # fmt: skip
    lines += [[c, _value(getattr(figures, c))] for c in FIGURE_COLUMNS]
    lines.append([])
    lines.append(["order", "product", "first_promise", "promised", "quantity", "first_goods", "complete", "counted",
                  "on_time", "in_full", "otif", "days_late"])  # fmt: skip
    for r in card["rows"]:
        lines.append([r.order_number, r.product_code, r.first_promised_date, r.promised_date, r.quantity,
                      r.first_arrival or "", r.completed_on or "", r.counted, r.on_time, r.in_full, r.otif,
                      r.days_late if r.days_late is not None else ""])  # fmt: skip
    # The orders behind the acknowledgement figures.
    lines.append([])
    lines.append(["order", "ordered", "arrived", "first_answer", "hours_to_respond", "answered_in_time"])
    for o in card["orders"]:
        lines.append([o.order_number, o.order_date, o.arrived_at.isoformat(timespec="minutes"),
                      o.answered_at.isoformat(timespec="minutes") if o.answered_at else "",
                      "" if o.hours is None else f"{o.hours:.1f}", o.in_time])  # fmt: skip
    # The documents behind document compliance, on the period's last day.
    lines.append([])
    lines.append(["document", "required_since", "held_on_period_end", "valid_until"])
    for d in card["documents"]:
        lines.append([d.document_type, d.required_since, d.held, d.valid_until or ""])
    return f"scorecard-{card['supplier'].code}-{card['window'].start}.csv", csv_bytes(lines[0], lines[1:])


def _card_csv(supplier: Supplier) -> Response:
    name, content = card_csv(_card(supplier, evidence_rows=None))
    response = Response(content, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@bp.route("/scorecard.csv")
@requires(Permission.ORDERS_VIEW)
def own_csv() -> Response:
    return _card_csv(_own_supplier())


@bp.route("/scorecards/<int:supplier_id>.csv")
@requires(Permission.SUPPLIERS_VIEW)
def supplier_csv(supplier_id: int) -> Response:
    return _card_csv(get_scoped_or_404(db_session(), Supplier, supplier_id, ctx()))


# --- PDF -------------------------------------------------------------------------------------


def render_pdf(card: dict[str, Any], tenant_name: str) -> bytes:
    """The card as a PDF (needs an application context, not a request: workers make it too)."""
    html = render_template("scorecards/pdf.html", asset_base=ASSET_BASE, tenant_name=tenant_name, **card)
    return html_to_pdf(html)


def pdf_name(card: dict[str, Any]) -> str:
    return f"scorecard-{card['supplier'].code}-{card['window'].start}.pdf"


def _pdf(supplier: Supplier) -> Response:
    card = _card(supplier, evidence_rows=PDF_EVIDENCE_ROWS)
    response = Response(render_pdf(card, ctx().tenant_name), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{pdf_name(card)}"'
    return response


@bp.route("/scorecard.pdf")
@requires(Permission.ORDERS_VIEW)
def own_pdf() -> Response:
    return _pdf(_own_supplier())


@bp.route("/scorecards/<int:supplier_id>.pdf")
@requires(Permission.SUPPLIERS_VIEW)
def supplier_pdf(supplier_id: int) -> Response:
    return _pdf(get_scoped_or_404(db_session(), Supplier, supplier_id, ctx()))


# --- settings and definitions ---------------------------------------------------------------


@bp.route("/scorecards/settings", methods=["GET", "POST"])
@requires(Permission.TENANT_SETTINGS)
def settings() -> tuple[str, int] | Response:
    context = ctx()
    session = db_session()
    current = services.settings_for(session, context.tenant_id)
    form = SettingsForm()
    if request.method == "GET":
        form.load(current)
    elif form.validate_on_submit():
        services.save_settings(session, tenant_id=context.tenant_id, values=form.values(), actor=actor())
        flash("Scorecard settings saved. Closed periods keep their stored figures until they are recomputed.",
              "success")  # fmt: skip
        return redirect(url_for("scorecards.settings"))
    return render_template("scorecards/settings.html", form=form), 200 if request.method == "GET" else 422


@bp.route("/scorecards/definitions")
@requires(Permission.DASHBOARD_VIEW)
def definitions() -> str:
    """The definitions, with this customer's own on-time window, weights and grade bands filled in."""
    from portal.scorecards.forms import WEIGHTS

    settings = services.settings_for(db_session(), ctx().tenant_id)
    window = {"`early`": str(settings.early_days), "`late`": str(settings.late_days)}
    texts = []
    for definition in DEFINITIONS:
        text = definition.text
        for placeholder, value in window.items():
            text = text.replace(placeholder, value)
        texts.append((definition.name, text))
    weights = [(label, int(settings.weights.get(key, 0))) for key, label in WEIGHTS]
    return render_template(
        "scorecards/definitions.html", definitions=texts, version=VERSION, changes=CHANGES, settings=settings,
        weights=[(label, weight) for label, weight in weights if weight], grades=settings.grades,
    )  # fmt: skip


def register(app: Flask) -> None:
    app.register_blueprint(bp)
