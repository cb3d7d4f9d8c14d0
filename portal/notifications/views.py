"""The notification centre, each person's e-mail choice, and the tenant's webhooks."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from portal.auth.access import get_scoped_or_404, requires
from portal.auth.admin_views import ctx
from portal.auth.permissions import Permission
from portal.auth.services import ServiceError
from portal.auth.views import actor
from portal.notifications import services
from portal.notifications.forms import ActionForm, EmailModeForm, WebhookForm
from portal.notifications.models import EmailMode, Webhook
from portal.web import db_session

bp = Blueprint("notifications", __name__, template_folder="templates")


@bp.route("/notifications")
@requires(Permission.DASHBOARD_VIEW)
def index() -> str:
    context = ctx()
    items = services.recent(db_session(), context.tenant_id, current_user.id, limit=100)
    return render_template("notifications/index.html", items=items, action=ActionForm())


@bp.route("/notifications/<int:notification_id>/read", methods=["POST"])
@requires(Permission.DASHBOARD_VIEW)
def mark_read(notification_id: int) -> Response:
    context = ctx()
    form = ActionForm()
    if form.validate_on_submit():
        # Scoped to the tenant *and* the person: someone else's id changes nothing.
        changed = services.mark_read(
            db_session(), tenant_id=context.tenant_id, user_id=current_user.id, notification_id=notification_id
        )
        if not changed and not _own(notification_id):
            return Response("Not found", status=404)
    return redirect(request.form.get("next") or url_for("notifications.index"))


def _own(notification_id: int) -> bool:
    from sqlalchemy import select

    from portal.notifications.models import Notification

    return (
        db_session()
        .execute(
            select(Notification.id).where(
                Notification.id == notification_id,
                Notification.tenant_id == ctx().tenant_id,
                Notification.user_id == current_user.id,
            )
        )
        .first()
        is not None
    )


@bp.route("/notifications/read-all", methods=["POST"])
@requires(Permission.DASHBOARD_VIEW)
def mark_all_read() -> Response:
    context = ctx()
    if ActionForm().validate_on_submit():
        count = services.mark_read(db_session(), tenant_id=context.tenant_id, user_id=current_user.id)
        flash(f"{count} notification{'s' if count != 1 else ''} marked read.", "success")
    return redirect(url_for("notifications.index"))


@bp.route("/notifications/settings", methods=["GET", "POST"])
@requires(Permission.DASHBOARD_VIEW)
def preferences() -> tuple[str, int] | Response:
    context = ctx()
    session = db_session()
    form = EmailModeForm()
    if request.method == "GET":
        form.email_mode.data = services.email_mode(session, context.tenant_id, current_user.id).value
    elif form.validate_on_submit():
        services.set_email_mode(
            session, tenant_id=context.tenant_id, user_id=current_user.id, mode=EmailMode(form.email_mode.data)
        )
        flash("Saved.", "success")
        return redirect(url_for("notifications.preferences"))
    return render_template("notifications/settings.html", form=form), 200 if request.method == "GET" else 422


@bp.route("/settings/webhooks", methods=["GET", "POST"])
@requires(Permission.TENANT_SETTINGS)
def webhooks() -> tuple[str, int]:
    from sqlalchemy import select

    context = ctx()
    session = db_session()
    form = WebhookForm()
    created_secret = None
    status = 200
    if request.method == "POST":
        status = 422
        if form.validate_on_submit():
            try:
                _, created_secret = services.create_webhook(
                    session,
                    tenant_id=context.tenant_id,
                    url=form.url.data or "",
                    topics=list(form.topics.data or []),
                    description=form.description.data or "",
                    actor=actor(),
                    allow_private=current_app.extensions["portal.settings"].webhook_allow_private,
                )
                status = 201
                form = WebhookForm(formdata=None)
            except ServiceError as exc:
                form.url.errors = [str(exc)]
    hooks = list(
        session.execute(
            select(Webhook)
            .where(Webhook.tenant_id == context.tenant_id, Webhook.supplier_id.is_(None))
            .order_by(Webhook.id)
        ).scalars()
    )
    return render_template(
        "notifications/webhooks.html", form=form, hooks=hooks, created_secret=created_secret, action=ActionForm()
    ), status


@bp.route("/settings/webhooks/<int:webhook_id>")
@requires(Permission.TENANT_SETTINGS)
def webhook_log(webhook_id: int) -> str:
    context = ctx()
    session = db_session()
    hook = get_scoped_or_404(session, Webhook, webhook_id, context)
    return render_template(
        "notifications/webhook_log.html",
        hook=hook,
        deliveries=services.deliveries(session, context.tenant_id, hook.id),
        action=ActionForm(),
    )


@bp.route("/settings/webhooks/<int:webhook_id>/delete", methods=["POST"])
@requires(Permission.TENANT_SETTINGS)
def delete_webhook(webhook_id: int) -> Response:
    context = ctx()
    session = db_session()
    hook = get_scoped_or_404(session, Webhook, webhook_id, context)
    if ActionForm().validate_on_submit():
        services.delete_webhook(session, webhook=hook, actor=actor())
        flash("Webhook removed.", "success")
    return redirect(url_for("notifications.webhooks"))


def register(app):
    app.register_blueprint(bp)
