"""The landing page after sign-in: what needs attention, per role.

Each figure links to the page that lists what it counts, and says the same number: the orders' figures are the
inbox's own tab counts (one statement), the rest one statement of counts for the staff, or the supplier's own
requirement statuses as its certificates page shows them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

from flask import Blueprint, render_template, url_for
from flask_login import current_user
from sqlalchemy import BigInteger, Date, DateTime, Select, bindparam, func, select

from portal.auth.access import public, requires
from portal.auth.admin_views import ctx
from portal.auth.forms import ChooseContextForm
from portal.auth.models import Invitation, Membership
from portal.auth.permissions import Permission
from portal.db import read_columns, utcnow
from portal.formatting import noun
from portal.suppliers.models import Supplier
from portal.web import PortalContext, db_session

bp = Blueprint("dashboard", __name__)


@dataclass(frozen=True)
class Tile:
    figure: str
    label: str
    href: str
    # Something is waiting on the person looking (drawn as a call to act when the figure is not zero).
    urgent: bool = False


def tile(count: int, one: str, many: str, href: str, *, urgent: bool = False, figure: str | None = None) -> Tile:
    """A figure and its words in the singular or the plural ("1 late order", "0 late orders")."""
    return Tile(f"{count:,}" if figure is None else figure, noun(count, one, many), href, urgent)


def _count(statement: Select[Any]) -> Any:
    return select(func.count()).select_from(statement.subquery()).scalar_subquery()


@lru_cache(maxsize=8)
def _staff_figures(decisions: bool, documents: bool, people: bool) -> Select[Any]:
    """One statement for the staff's figures that their role shows, each a scalar subquery; built once per
    combination (building it cost more than running it), the tenant and the days bound at each run."""
    from portal.documents.models import Document, DocumentStatus
    from portal.orders.models import ChangeRequest, ChangeState

    tenant = bindparam("tenant_id", type_=BigInteger)
    figures = {"suppliers": _count(select(Supplier.id).where(Supplier.tenant_id == tenant))}
    if decisions:
        figures["decisions"] = _count(
            select(ChangeRequest.id).where(ChangeRequest.tenant_id == tenant, ChangeRequest.state == ChangeState.OPEN)
        )
    if documents:
        figures["to_review"] = _count(
            select(Document.id).where(Document.tenant_id == tenant, Document.status == DocumentStatus.PENDING_REVIEW)
        )
        figures["expiring"] = _count(
            select(Document.id).where(
                Document.tenant_id == tenant,
                Document.status == DocumentStatus.APPROVED,
                Document.expiry_date >= bindparam("today", type_=Date),
                Document.expiry_date <= bindparam("soon", type_=Date),
            )
        )
    if people:
        figures["people"] = _count(
            select(Membership.id).where(Membership.tenant_id == tenant, Membership.disabled_at.is_(None))
        )
        figures["invitations"] = _count(
            select(Invitation.id).where(
                Invitation.tenant_id == tenant,
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
                Invitation.expires_at > bindparam("now", type_=DateTime(timezone=True)),
            )
        )
    return select(*(value.label(key) for key, value in figures.items()))


def _staff_tiles(context: PortalContext, today: date) -> tuple[list[Tile], list[Tile], int]:
    """The staff's figures: work waiting (orders, change requests, documents), the tenant at a glance, and its
    number of suppliers."""
    from portal.documents.services import EXPIRING_SOON_DAYS, suppliers_lacking_documents
    from portal.orders.queries import inbox_counts

    db_sess = db_session()
    statement = _staff_figures(context.can(Permission.ORDERS_MANAGE), context.can(Permission.DOCUMENTS_REVIEW),
                               context.can(Permission.USERS_MANAGE))  # fmt: skip
    params = {"tenant_id": context.tenant_id, "today": today, "soon": today + timedelta(days=EXPIRING_SOON_DAYS),
              "now": utcnow()}  # fmt: skip
    found = dict(read_columns(db_sess, statement, params).one()._mapping)
    work: list[Tile] = []
    if context.can(Permission.ORDERS_VIEW):
        orders = inbox_counts(db_sess, context, today)
        work += [
            tile(orders.counts["needs_response"], "order waiting for its supplier to answer",
                  "orders waiting for suppliers to answer", url_for("orders.inbox", tab="needs_response"),
                  figure=orders.count_label("needs_response")),
            tile(orders.counts["late"], "late order", "late orders", url_for("orders.inbox", tab="late"),
                  urgent=orders.counts["late"] > 0, figure=orders.count_label("late")),
        ]  # fmt: skip
    if "decisions" in found:
        work.append(tile(found["decisions"], "supplier change to decide", "supplier changes to decide",
                          url_for("orders.queue"), urgent=found["decisions"] > 0))  # fmt: skip
    if "to_review" in found:
        work += [
            tile(found["to_review"], "document to review", "documents to review", url_for("documents.queue"),
                  urgent=found["to_review"] > 0),
            tile(found["expiring"], f"approved document expiring within {EXPIRING_SOON_DAYS} days",
                  f"approved documents expiring within {EXPIRING_SOON_DAYS} days",
                  url_for("documents.queue", status="approved", expiring=EXPIRING_SOON_DAYS)),
            tile(suppliers_lacking_documents(db_sess, tenant_id=context.tenant_id, today=today),
                  "supplier lacking a required document", "suppliers lacking a required document",
                  url_for("documents.gaps")),
        ]  # fmt: skip
    tenant_tiles = [tile(found["suppliers"], "supplier", "suppliers", url_for("suppliers.index"))]
    if "people" in found:
        tenant_tiles += [
            tile(found["people"], "person with access", "people with access", url_for("people.people")),
            tile(found["invitations"], "open invitation", "open invitations", url_for("people.people")),
        ]
    return work, tenant_tiles, found["suppliers"]


def _supplier_tiles(context: PortalContext, today: date) -> tuple[list[Tile], int, int]:
    """A supplier's figures: its orders for this customer as its inbox counts them, and the certificates the
    customer requires of it that need an upload. Also the number of its orders and of its active colleagues."""
    from portal.orders.queries import inbox_counts

    db_sess = db_session()
    tiles: list[Tile] = []
    orders_total = 0
    if context.can(Permission.ORDERS_VIEW):
        orders = inbox_counts(db_sess, context, today)
        counts, orders_total = orders.counts, orders.counts["all"]
        tiles += [
            tile(counts["needs_response"], "order waiting for your answer", "orders waiting for your answer",
                  url_for("orders.inbox", tab="needs_response"), urgent=counts["needs_response"] > 0),
            tile(counts["late"], "late order", "late orders", url_for("orders.inbox", tab="late"),
                  urgent=counts["late"] > 0),
            tile(counts["changes_pending"], "change waiting for the buyer", "changes waiting for the buyer",
                  url_for("orders.inbox", tab="changes_pending")),
            tile(counts["open"], "confirmed order to ship", "confirmed orders to ship",
                  url_for("orders.inbox", tab="open")),
        ]  # fmt: skip
    if context.can(Permission.DOCUMENTS_UPLOAD) and context.supplier_id is not None:
        from portal.auth.access import get_scoped_or_404
        from portal.documents.services import compliance

        supplier = get_scoped_or_404(db_sess, Supplier, context.supplier_id, context)
        states = [status.state for status in compliance(db_sess, tenant_id=context.tenant_id, supplier=supplier,
                                                        today=today)]  # fmt: skip
        to_fix = sum(state in ("missing", "expired", "rejected") for state in states)
        tiles += [
            tile(to_fix, "required certificate to upload", "required certificates to upload",
                  url_for("documents.compliance"), urgent=to_fix > 0),
            tile(states.count("expiring"), "certificate expiring soon", "certificates expiring soon",
                  url_for("documents.compliance")),
        ]  # fmt: skip
    colleagues = 0
    if context.can(Permission.SUPPLIER_TEAM_MANAGE):
        colleagues = db_sess.execute(
            select(func.count())
            .select_from(Membership)
            .where(
                Membership.tenant_id == context.tenant_id,
                Membership.supplier_id == context.supplier_id,
                Membership.disabled_at.is_(None),
            )
        ).scalar_one()
    return tiles, orders_total, colleagues


def _other_customers(context: PortalContext) -> list[tuple[Any, dict[str, int]]]:
    """The other customers this person supplies, each with its orders waiting for an answer and late ones, so
    that new orders from every customer show wherever the person works (read under each customer's own
    context; nothing more for the many suppliers who serve one customer)."""
    from portal.auth.views import waiting_per_customer
    from portal.web import active_memberships

    db_sess = db_session()
    others = [m for m in active_memberships(db_sess, current_user.id)
              if m.id != context.membership_id and m.supplier_id is not None]  # fmt: skip
    if not others:
        return []
    waiting = waiting_per_customer(db_sess, others)
    return [(m, waiting[m.id]) for m in others if m.id in waiting]


@bp.route("/")
@requires(Permission.DASHBOARD_VIEW)
def index() -> str:
    context = ctx()
    today = date.today()
    if context.is_supplier:
        work, orders_total, colleagues = _supplier_tiles(context, today)
        return render_template("dashboard.html", work=work, tenant_tiles=[], orders_total=orders_total,
                               colleagues=colleagues, other_customers=_other_customers(context),
                               switch_form=ChooseContextForm())  # fmt: skip
    work, tenant_tiles, suppliers = _staff_tiles(context, today)
    return render_template("dashboard.html", work=work, tenant_tiles=tenant_tiles, orders_total=None, colleagues=0,
                           no_suppliers=suppliers == 0)  # fmt: skip


@bp.route("/healthz")
@public
def healthz() -> tuple[str, int, dict[str, str]]:
    """Liveness for load balancers; also the bare route the benchmark compares against."""
    return "ok", 200, {"Content-Type": "text/plain"}


def register(app):
    app.register_blueprint(bp)
