"""People administration for tenant admins, and the tenant's audit trail."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload
from werkzeug.wrappers import Response

from portal import audit
from portal.auth import services
from portal.auth.access import get_scoped_or_404, requires, scoped
from portal.auth.forms import EmptyForm, InviteForm, OptionalReasonForm, ReasonForm, RoleForm, TenantSettingsForm
from portal.auth.models import Invitation, Membership
from portal.auth.permissions import INVITABLE_BY, STAFF_ROLES, Permission, Role
from portal.auth.views import actor
from portal.db import planned_per_run, utcnow
from portal.mail import send_email
from portal.numbers import page_number
from portal.tenancy.models import DocumentGating, MfaPolicy, Tenant
from portal.web import PortalContext, db_session, portal_context, secret_key

bp = Blueprint("people", __name__)

PAGE_SIZE = 50


def ctx() -> PortalContext:
    context = portal_context()
    assert context is not None  # guaranteed by @requires
    return context


def role_choices(roles: frozenset[Role]) -> list[tuple[str, str]]:
    order = list(Role)
    return [(r.value, r.label) for r in sorted(roles, key=order.index)]


def invite_from_form(form: InviteForm, *, supplier_id: int | None) -> Invitation | None:
    """Create the invitation a valid form asks for and e-mail the link; None on a rule error."""
    context = ctx()
    try:
        invite = services.create_invitation(
            db_session(),
            tenant_id=context.tenant_id,
            inviter_role=context.role,
            inviter_supplier_id=context.supplier_id,
            email=form.email.data or "",
            role=Role(form.role.data),
            supplier_id=supplier_id,
            actor=actor(),
        )
    except services.ServiceError as exc:
        getattr(form, exc.field or "email").errors = [exc.message]
        return None
    link = url_for(
        "auth.invitation",
        token=services.invitation_token(secret_key(), invite),
        _external=True,
    )
    where = f"{invite.supplier.name} for {context.tenant_name}" if invite.supplier else context.tenant_name
    send_email(
        db_session(),
        invite.email,
        f"You are invited to the supplier portal of {context.tenant_name}",
        f"{current_user.display_name} invited you to work as {invite.role.label} for {where}.\n\n"
        f"Accept the invitation here (the link works once, for 7 days):\n{link}\n",
    )
    return invite


@bp.route("/people", methods=["GET", "POST"])
@requires(Permission.USERS_MANAGE)
def people() -> Response | str | tuple[str, int]:
    context = ctx()
    db_sess = db_session()
    form = InviteForm()
    form.role.choices = role_choices(STAFF_ROLES)
    if form.validate_on_submit():
        invite = invite_from_form(form, supplier_id=None)
        if invite is not None:
            flash(f"Invitation sent to {invite.email}.", "success")
            return redirect(url_for("people.people"))
    members = (
        db_sess.execute(
            scoped(Membership, context)
            .where(Membership.supplier_id.is_(None))
            .options(joinedload(Membership.user))
            .order_by(Membership.id)
        )
        .scalars()
        .unique()
        .all()
    )
    invites = (
        db_sess.execute(
            scoped(Invitation, context)
            .where(Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None), Invitation.expires_at > utcnow())
            .order_by(Invitation.created_at.desc())
        )
        .scalars()
        .unique()
        .all()
    )
    status = 422 if request.method == "POST" else 200
    return render_template(
        "people/list.html",
        form=form,
        members=members,
        invites=invites,
        button=EmptyForm(),
        role_form_choices=role_choices(STAFF_ROLES),
    ), status


@bp.route("/people/<int:membership_id>", methods=["GET", "POST"])
@requires(Permission.USERS_MANAGE)
def member(membership_id: int) -> Response | str | tuple[str, int]:
    context = ctx()
    db_sess = db_session()
    membership: Membership = get_scoped_or_404(db_sess, Membership, membership_id, context)
    allowed = INVITABLE_BY[Role.SUPPLIER_ADMIN] if membership.supplier_id else STAFF_ROLES
    role_form = RoleForm(prefix="role")
    role_form.role.choices = role_choices(allowed)
    if request.method == "GET":
        role_form.role.data = membership.role.value
    if role_form.validate_on_submit():
        try:
            services.change_role(db_sess, membership, Role(role_form.role.data), actor())
        except services.ServiceError as exc:
            role_form.role.errors = [exc.message]
        else:
            flash("Role changed.", "success")
            return redirect(url_for("people.member", membership_id=membership.id))
    status = 422 if request.method == "POST" else 200
    return render_template(
        "people/member.html",
        m=membership,
        role_form=role_form,
        disable_form=OptionalReasonForm(prefix="disable"),
        reset_form=ReasonForm(prefix="reset"),
    ), status


@bp.route("/people/<int:membership_id>/disable", methods=["POST"])
@requires(Permission.USERS_MANAGE)
def disable(membership_id: int) -> Response:
    return _set_disabled(membership_id, True)


@bp.route("/people/<int:membership_id>/enable", methods=["POST"])
@requires(Permission.USERS_MANAGE)
def enable(membership_id: int) -> Response:
    return _set_disabled(membership_id, False)


def _set_disabled(membership_id: int, disabled: bool) -> Response:
    db_sess = db_session()
    membership: Membership = get_scoped_or_404(db_sess, Membership, membership_id, ctx())
    form = OptionalReasonForm(prefix="disable")
    if not form.validate_on_submit():
        flash("The form expired; try again.", "error")
        return redirect(url_for("people.member", membership_id=membership.id))
    try:
        services.set_membership_disabled(db_sess, membership, disabled, actor(), reason=form.reason.data or "")
    except services.ServiceError as exc:
        flash(exc.message, "error")
        return redirect(url_for("people.member", membership_id=membership.id), code=303)
    flash(
        "Access disabled; their sessions are ended and their API keys revoked."
        if disabled
        else "Access enabled again (API keys revoked with the access stay revoked).",
        "success",
    )
    return redirect(url_for("people.member", membership_id=membership.id))


@bp.route("/people/<int:membership_id>/reset-mfa", methods=["POST"])
@requires(Permission.USERS_MANAGE)
def reset_mfa(membership_id: int) -> Response:
    db_sess = db_session()
    membership: Membership = get_scoped_or_404(db_sess, Membership, membership_id, ctx())
    form = ReasonForm(prefix="reset")
    if not form.validate_on_submit():
        flash("Give a reason for the reset.", "error")
        return redirect(url_for("people.member", membership_id=membership.id))
    try:
        services.admin_reset_mfa(db_sess, membership, actor(), reason=form.reason.data or "")
    except services.ServiceError as exc:
        flash(exc.message, "error")
        return redirect(url_for("people.member", membership_id=membership.id), code=303)
    send_email(
        db_sess,
        membership.user.email,
        "Your two-factor authentication was reset",
        "An administrator reset two-factor authentication for your account. "
        "You will set up your authenticator app again at your next sign-in.",
    )
    flash("MFA reset; they will enrol again at their next sign-in. Their API keys are revoked.", "success")
    return redirect(url_for("people.member", membership_id=membership.id))


@bp.route("/invitations/<int:invitation_id>/revoke", methods=["POST"])
@requires(Permission.USERS_MANAGE)
def revoke_invitation(invitation_id: int) -> Response:
    db_sess = db_session()
    context = ctx()
    invite: Invitation = get_scoped_or_404(db_sess, Invitation, invitation_id, context)
    if EmptyForm().validate_on_submit() and invite.accepted_at is None and invite.revoked_at is None:
        invite.revoked_at = utcnow()
        actor().audit(
            db_sess, "invitation.revoked", tenant_id=context.tenant_id, object_type="invitation", object_id=invite.id
        )
        flash(f"Invitation for {invite.email} withdrawn.", "success")
    return redirect(
        request.referrer
        if request.referrer and request.referrer.startswith(request.host_url)
        else url_for("people.people")
    )


@bp.route("/settings", methods=["GET", "POST"])
@requires(Permission.TENANT_SETTINGS)
def settings():
    context = ctx()
    db_sess = db_session()
    tenant = db_sess.get(Tenant, context.tenant_id)
    assert tenant is not None
    # The stored settings as the fields' values (a choice the form leaves out keeps the stored one). Not
    # ``obj=tenant``: WTForms would take the tenant's attributes first, and a boolean matches no choice.
    form = TenantSettingsForm(
        name=tenant.name,
        mfa_policy=tenant.mfa_policy.value,
        document_gating=tenant.document_gating.value,
        unconfirmed_after_days=tenant.unconfirmed_after_days,
        remind_unconfirmed="on" if tenant.remind_unconfirmed else "off",
        reminder_repeat_days=tenant.reminder_repeat_days,
        reminder_limit=tenant.reminder_limit,
    )
    if form.validate_on_submit():
        before = _settings_shown(tenant)
        tenant.name = (form.name.data or "").strip()
        tenant.mfa_policy = MfaPolicy(form.mfa_policy.data)
        tenant.document_gating = DocumentGating(form.document_gating.data)
        tenant.unconfirmed_after_days = form.unconfirmed_after_days.data or tenant.unconfirmed_after_days
        tenant.remind_unconfirmed = form.remind_unconfirmed.data == "on"
        tenant.reminder_repeat_days = form.reminder_repeat_days.data
        tenant.reminder_limit = form.reminder_limit.data
        after = _settings_shown(tenant)
        if after != before:
            actor().audit(
                db_sess,
                "tenant.settings_changed",
                tenant_id=tenant.id,
                object_type="tenant",
                object_id=tenant.id,
                before=before,
                after=after,
            )
        flash("Settings saved.", "success")
        return redirect(url_for("people.settings"))
    return render_template("people/settings.html", form=form), 422 if request.method == "POST" else 200


def _settings_shown(tenant: Tenant) -> dict[str, object]:
    """The tenant's settings as the settings page edits them, for the audit entry of a change."""
    return {
        "name": tenant.name,
        "mfa_policy": tenant.mfa_policy.value,
        "document_gating": tenant.document_gating.value,
        "unconfirmed_after_days": tenant.unconfirmed_after_days,
        "remind_unconfirmed": tenant.remind_unconfirmed,
        "reminder_repeat_days": tenant.reminder_repeat_days,
        "reminder_limit": tenant.reminder_limit,
    }


AUDIT_FILTERS = ("action", "who", "object", "since", "until")
# The CSV of a filtered trail holds at most this many events (the newest when there are more; the page says so).
AUDIT_CSV_LIMIT = 100_000


def _audit_filters(args: Any) -> tuple[dict[str, str], list[Any], dict[str, str]]:
    """The audit trail's filters from a query string: the values as typed, the conditions they make, and a
    message for each value that makes none (and is left out)."""
    event = audit.AuditEvent
    values = {name: str(args.get(name, "") or "").strip()[:80] for name in AUDIT_FILTERS}
    conditions: list[Any] = []
    problems: dict[str, str] = {}
    if values["action"]:  # "document" or "document.approved"
        conditions.append(event.action.startswith(values["action"], autoescape=True))
    if values["who"]:
        conditions.append(event.actor.icontains(values["who"], autoescape=True))
    if values["object"]:  # "document" or "document 19"
        kind, _, identifier = values["object"].partition(" ")
        conditions.append(event.object_type == kind)
        if identifier.strip():
            conditions.append(event.object_id == identifier.strip())
    for name, edge in (("since", 0), ("until", 1)):
        if not values[name]:
            continue
        try:
            day = date.fromisoformat(values[name])
        except ValueError:
            problems[name] = "Enter the date as YYYY-MM-DD; this filter is left out."
            continue
        moment = datetime.combine(day + timedelta(days=edge), time.min, tzinfo=UTC)
        conditions.append(event.occurred_at >= moment if edge == 0 else event.occurred_at < moment)
    return values, conditions, problems


@bp.route("/audit", methods=["GET"])
@requires(Permission.AUDIT_VIEW)
def audit_trail() -> str:
    context = ctx()
    db_sess = db_session()
    page = page_number(request.args)
    values, conditions, problems = _audit_filters(request.args)
    stmt = select(audit.AuditEvent).where(audit.AuditEvent.tenant_id == context.tenant_id, *conditions)
    # A tenant's trail may hold a handful of events or millions: both statements are planned for this one.
    total = db_sess.execute(planned_per_run(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    listed = stmt.order_by(audit.AuditEvent.seq.desc()).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    events = db_sess.execute(planned_per_run(listed)).scalars().all()
    return render_template(
        "people/audit.html", events=events, page=page, pages=max(1, -(-total // PAGE_SIZE)), total=total,
        filters=values, filtered={k: v for k, v in values.items() if v and k not in problems}, problems=problems,
        csv_limit=AUDIT_CSV_LIMIT,
    )  # fmt: skip


@bp.route("/audit.csv", methods=["GET"])
@requires(Permission.AUDIT_VIEW)
def audit_csv() -> Response:
    """The filtered trail as CSV, oldest first, with each event's hash (``flask audit-verify`` checks the
    chain they belong to)."""
    from portal.csvfiles import csv_bytes

    context = ctx()
    _, conditions, _ = _audit_filters(request.args)
    event = audit.AuditEvent
    newest = (
        select(event)
        .where(event.tenant_id == context.tenant_id, *conditions)
        .order_by(event.seq.desc())
        .limit(AUDIT_CSV_LIMIT)
        .subquery()
    )
    rows = db_session().execute(planned_per_run(select(newest).order_by(newest.c.seq))).all()
    body = csv_bytes(
        ["seq", "occurred_at", "actor", "ip", "action", "object_type", "object_id", "before", "after", "reason",
         "hash"],
        ([r.seq, r.occurred_at.isoformat(), r.actor, r.ip, r.action, r.object_type, r.object_id,
          json.dumps(r.before, sort_keys=True) if r.before else "", json.dumps(r.after, sort_keys=True) if r.after
          else "", r.reason, r.hash] for r in rows),
    )  # fmt: skip
    response = Response(body, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="audit-trail-{date.today().isoformat()}.csv"'
    return response


def register(app) -> None:
    app.register_blueprint(bp)
