"""The landing page after sign-in: what needs attention, per role."""

from __future__ import annotations

from flask import Blueprint, render_template
from sqlalchemy import func, select

from portal.auth.access import public, requires
from portal.auth.admin_views import ctx
from portal.auth.models import Invitation, Membership
from portal.auth.permissions import Permission
from portal.db import utcnow
from portal.suppliers.models import Supplier
from portal.web import db_session

bp = Blueprint("dashboard", __name__)


@bp.route("/")
@requires(Permission.DASHBOARD_VIEW)
def index() -> str:
    context = ctx()
    db_sess = db_session()
    figures: dict[str, int]
    if not context.is_supplier:
        # One statement for all tiles: each figure is a scalar subquery.
        tenant = context.tenant_id
        row = db_sess.execute(
            select(
                select(func.count()).select_from(Supplier).where(Supplier.tenant_id == tenant).scalar_subquery(),
                select(func.count())
                .select_from(Membership)
                .where(Membership.tenant_id == tenant, Membership.disabled_at.is_(None))
                .scalar_subquery(),
                select(func.count())
                .select_from(Invitation)
                .where(
                    Invitation.tenant_id == tenant,
                    Invitation.accepted_at.is_(None),
                    Invitation.revoked_at.is_(None),
                    Invitation.expires_at > utcnow(),
                )
                .scalar_subquery(),
            )
        ).one()
        figures = {"suppliers": row[0], "people": row[1], "open_invitations": row[2]}
    else:
        figures = {
            "colleagues": db_sess.execute(
                select(func.count())
                .select_from(Membership)
                .where(
                    Membership.tenant_id == context.tenant_id,
                    Membership.supplier_id == context.supplier_id,
                    Membership.disabled_at.is_(None),
                )
            ).scalar_one()
        }
    return render_template("dashboard.html", figures=figures)


@bp.route("/healthz")
@public
def healthz() -> tuple[str, int, dict[str, str]]:
    """Liveness for load balancers; also the bare route the benchmark compares against."""
    return "ok", 200, {"Content-Type": "text/plain"}


def register(app):
    app.register_blueprint(bp)
