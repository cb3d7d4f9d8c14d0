"""Supplier accounts (staff side) and a supplier admin's own team."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload
from werkzeug.wrappers import Response

from portal.auth import services as auth_services
from portal.auth.access import get_scoped_or_404, requires, scoped
from portal.auth.admin_views import ctx, invite_from_form, role_choices
from portal.auth.forms import EmptyForm, InviteForm
from portal.auth.models import Invitation, Membership
from portal.auth.permissions import SUPPLIER_ROLES, Permission, Role
from portal.auth.views import actor
from portal.db import planned_per_run, utcnow
from portal.numbers import page_number, whole_number
from portal.suppliers import services
from portal.suppliers.forms import SupplierForm
from portal.suppliers.models import Supplier
from portal.web import db_session

bp = Blueprint("suppliers", __name__, template_folder="templates")


def supplier_filter_args() -> tuple[int | None, str]:
    """A list's supplier filter from the query string: one supplier's id (``supplier``, from a link) and a
    search by code or part of the name (``supplier_q``); see ``services.supplier_filter``."""
    return whole_number(request.args.get("supplier", "")), (request.args.get("supplier_q") or "").strip()[:64]


PAGE_SIZE = 50


def _open_invitations(supplier_id: int) -> list[Invitation]:
    return list(
        db_session()
        .execute(
            scoped(Invitation, ctx())
            .where(
                Invitation.supplier_id == supplier_id,
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
                Invitation.expires_at > utcnow(),
            )
            .order_by(Invitation.created_at.desc())
        )
        .scalars()
        .unique()
    )


def _members(supplier_id: int) -> list[Membership]:
    return list(
        db_session()
        .execute(
            scoped(Membership, ctx())
            .where(Membership.supplier_id == supplier_id)
            .options(joinedload(Membership.user))
            .order_by(Membership.id)
        )
        .scalars()
        .unique()
    )


@bp.route("/suppliers", methods=["GET"])
@requires(Permission.SUPPLIERS_VIEW)
def index() -> str:
    context = ctx()
    db_sess = db_session()
    q = (request.args.get("q") or "").strip()[:100]
    page = page_number(request.args)
    stmt = scoped(Supplier, context)
    if q:
        stmt = stmt.where(services.matching(q))
    # How many suppliers a tenant has, and how many match, decides the plan: planned for each run.
    total = db_sess.execute(planned_per_run(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    listed = stmt.order_by(Supplier.name).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    suppliers = db_sess.execute(planned_per_run(listed)).scalars().all()
    people_counts = dict(
        db_sess.execute(
            select(Membership.supplier_id, func.count())
            .where(Membership.tenant_id == context.tenant_id, Membership.supplier_id.in_([s.id for s in suppliers]))
            .group_by(Membership.supplier_id)
        ).all()
    )
    # What each supplier of the page lacks of the documents required of it (the gap list's rule).
    from collections import Counter
    from datetime import date

    from portal.documents.services import gaps

    lacking = Counter(gap.supplier_id for gap in gaps(db_sess, tenant_id=context.tenant_id, today=date.today(),
                                                      supplier_ids=[s.id for s in suppliers]))  # fmt: skip
    return render_template(
        "suppliers/index.html",
        lacking=lacking,
        can_see_gaps=context.can(Permission.DOCUMENTS_REVIEW),
        suppliers=suppliers,
        q=q,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        total=total,
        people_counts=people_counts,
        can_manage=context.can(Permission.SUPPLIERS_MANAGE),
    )


@bp.route("/suppliers/new", methods=["GET", "POST"])
@requires(Permission.SUPPLIERS_MANAGE)
def create() -> Response | str | tuple[str, int]:
    context = ctx()
    form = SupplierForm()
    if form.validate_on_submit():
        db_sess = db_session()
        try:
            supplier = services.create_supplier(
                db_sess,
                tenant_id=context.tenant_id,
                code=form.code.data or "",
                name=form.name.data or "",
                category=form.category.data or "",
                erp_ref=form.erp_ref.data,
                actor=actor(),
            )
        except auth_services.ServiceError as exc:
            getattr(form, exc.field or "code").errors = [exc.message]
        else:
            if form.admin_email.data:
                invite_form = InviteForm(
                    formdata=None, data={"email": form.admin_email.data, "role": Role.SUPPLIER_ADMIN.value}
                )
                invite_form.role.choices = role_choices(frozenset({Role.SUPPLIER_ADMIN}))
                if invite_from_form(invite_form, supplier_id=supplier.id) is None:
                    form.admin_email.errors = invite_form.email.errors
                    return render_template("suppliers/new.html", form=form), 422
            flash(f"Supplier {supplier.name} created.", "success")
            return redirect(url_for("suppliers.detail", supplier_id=supplier.id))
    return render_template("suppliers/new.html", form=form), 422 if request.method == "POST" else 200


@bp.route("/suppliers/<int:supplier_id>", methods=["GET", "POST"])
@requires(Permission.SUPPLIERS_VIEW)
def detail(supplier_id: int) -> Response | str | tuple[str, int]:
    context = ctx()
    supplier: Supplier = get_scoped_or_404(db_session(), Supplier, supplier_id, context)
    form = InviteForm()
    form.role.choices = role_choices(frozenset({Role.SUPPLIER_ADMIN}))
    if request.method == "POST":
        if not context.can(Permission.SUPPLIERS_MANAGE):
            abort(403)
        if form.validate_on_submit() and invite_from_form(form, supplier_id=supplier.id) is not None:
            flash(f"Invitation sent to {form.email.data}.", "success")
            return redirect(url_for("suppliers.detail", supplier_id=supplier.id))
    return render_template(
        "suppliers/detail.html",
        supplier=supplier,
        form=form,
        **_at_a_glance(supplier),
        members=_members(supplier.id),
        invites=_open_invitations(supplier.id),
        can_manage=context.can(Permission.SUPPLIERS_MANAGE),
        button=EmptyForm(),
        **(_connections(supplier) if context.can(Permission.SUPPLIERS_MANAGE) else {}),
    ), 422 if request.method == "POST" else 200


def _connections(supplier: Supplier) -> dict[str, object]:
    """The supplier's systems connected to the portal (API keys, webhooks), for the tenant's administrators."""
    from portal.api.views import supplier_connections

    return supplier_connections(supplier.tenant_id, supplier.id)


def _at_a_glance(supplier: Supplier) -> dict[str, object]:
    """What a buyer or compliance officer checks first on a supplier's page: its open orders as its own inbox
    counts them (each figure a link to the tenant's inbox filtered to this supplier) and each document the
    tenant requires of it with its state."""
    from datetime import date

    from portal.dashboard import tile
    from portal.documents.services import compliance
    from portal.orders.queries import inbox_counts
    from portal.web import PortalContext

    context, today = ctx(), date.today()
    # Counted as the supplier's own inbox counts them: the same statement, limited to this supplier.
    as_supplier = PortalContext(context.membership_id, context.tenant_id, context.tenant_name, context.role,
                                supplier.id, supplier.name)  # fmt: skip
    counts = inbox_counts(db_session(), as_supplier, today).counts
    return {
        "order_tiles": [
            tile(
                counts[tab],
                one,
                many,
                url_for("orders.inbox", tab=tab, supplier=supplier.id),
                urgent=urgent and counts[tab] > 0,
            )
            for tab, one, many, urgent in (
                ("needs_response", "order waiting for its answer", "orders waiting for its answer", False),
                ("late", "late order", "late orders", True),
                ("changes_pending", "change to decide", "changes to decide", True),
                ("open", "confirmed order to ship", "confirmed orders to ship", False),
            )
        ],
        "documents": compliance(db_session(), tenant_id=context.tenant_id, supplier=supplier, today=today),
    }


@bp.route("/team", methods=["GET", "POST"])
@requires(Permission.SUPPLIER_TEAM_MANAGE)
def team() -> Response | str | tuple[str, int]:
    context = ctx()
    if context.supplier_id is None:
        abort(404)
    form = InviteForm()
    form.role.choices = role_choices(SUPPLIER_ROLES)
    if form.validate_on_submit() and invite_from_form(form, supplier_id=context.supplier_id) is not None:
        flash(f"Invitation sent to {form.email.data}.", "success")
        return redirect(url_for("suppliers.team"))
    return render_template(
        "suppliers/team.html",
        form=form,
        members=_members(context.supplier_id),
        invites=_open_invitations(context.supplier_id),
    ), 422 if request.method == "POST" else 200
