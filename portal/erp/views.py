"""ERP settings for tenant administrators, the failed-sync page, and retries."""

from __future__ import annotations

import contextlib

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from portal.auth.access import get_scoped_or_404, requires
from portal.auth.admin_views import ctx
from portal.auth.permissions import Permission
from portal.auth.services import ServiceError
from portal.auth.views import actor
from portal.crypto import SecretUnreadable
from portal.db import after_commit
from portal.erp import services
from portal.erp.forms import ActionForm, ConnectionForm
from portal.erp.models import ErpKind, ErpLineSync, SyncStatus
from portal.outbox import OutboxEvent
from portal.web import db_session

bp = Blueprint("erp", __name__, template_folder="templates")


@bp.route("/settings/erp", methods=["GET", "POST"])
@requires(Permission.TENANT_SETTINGS)
def settings() -> tuple[str, int] | Response:
    context = ctx()
    session = db_session()
    connection = services.get_connection(session, context.tenant_id)
    form = ConnectionForm(obj=connection if request.method == "GET" else None)
    if request.method == "GET" and connection is not None:
        form.kind.data = connection.kind.value
    status = 200
    if request.method == "POST":
        status = 422
        if form.validate_on_submit():
            try:
                services.save_connection(
                    session,
                    tenant_id=context.tenant_id,
                    kind=ErpKind(form.kind.data),
                    url=form.url.data or "",
                    database=form.database.data or "",
                    login=form.login.data or "",
                    secret=form.secret.data or None,
                    active=bool(form.active.data),
                    actor=actor(),
                )
                flash("ERP connection saved. Test it to see what the portal may do there.", "success")
                return redirect(url_for("erp.settings"))
            except ServiceError as exc:
                form.secret.errors = [str(exc)] if "password" in str(exc).lower() else []
                if not form.secret.errors:
                    form.url.errors = [str(exc)]
    counts = dict(
        session.execute(
            select(ErpLineSync.status, func.count())
            .where(ErpLineSync.tenant_id == context.tenant_id)
            .group_by(ErpLineSync.status)
        ).all()
    )
    return render_template(
        "erp/settings.html", form=form, connection=connection, counts=counts, action=ActionForm(), SyncStatus=SyncStatus
    ), status


@bp.route("/settings/erp/test", methods=["POST"])
@requires(Permission.TENANT_SETTINGS)
def test() -> Response:
    context = ctx()
    session = db_session()
    form = ActionForm()
    connection = services.get_connection(session, context.tenant_id)
    if not form.validate_on_submit() or connection is None:
        flash("Save the connection first.", "error")
        return redirect(url_for("erp.settings"))
    try:
        report = services.test_connection(session, connection, actor=actor())
    except SecretUnreadable as exc:
        flash(str(exc), "error")
        return redirect(url_for("erp.settings"))
    if report.ok:
        flash("Connected: " + "; ".join(report.details), "success")
    else:
        flash(f"The test failed ({report.error_kind.replace('_', ' ')}): {report.error}", "error")
    return redirect(url_for("erp.settings"))


@bp.route("/settings/erp/pull", methods=["POST"])
@requires(Permission.TENANT_SETTINGS)
def pull_now() -> Response:
    context = ctx()
    form = ActionForm()
    if form.validate_on_submit():
        tenant_id = context.tenant_id

        def queue() -> None:
            from workers.actors import pull_erp

            # The queue is down: the schedule pulls in a few minutes anyway.
            with contextlib.suppress(Exception):
                pull_erp.send(tenant_id)

        after_commit(db_session(), queue)
        flash("Intake from the ERP started; new orders appear in a moment.", "success")
    return redirect(url_for("erp.settings"))


@bp.route("/settings/jobs")
@requires(Permission.TENANT_SETTINGS)
def jobs() -> str:
    context = ctx()
    session = db_session()
    failed = list(
        session.execute(
            select(OutboxEvent)
            .where(
                OutboxEvent.tenant_id == context.tenant_id,
                OutboxEvent.failed_at.is_not(None),
                OutboxEvent.done_at.is_(None),  # not answered since by a later push of the same line
            )
            .order_by(OutboxEvent.failed_at.desc())
            .limit(200)
        ).scalars()
    )
    retrying = list(
        session.execute(
            select(OutboxEvent)
            .where(
                OutboxEvent.tenant_id == context.tenant_id,
                OutboxEvent.done_at.is_(None),
                OutboxEvent.failed_at.is_(None),
                OutboxEvent.attempts > 0,
            )
            .order_by(OutboxEvent.id)
            .limit(200)
        ).scalars()
    )
    waiting = session.execute(
        select(func.count(OutboxEvent.id)).where(
            OutboxEvent.tenant_id == context.tenant_id,
            OutboxEvent.done_at.is_(None),
            OutboxEvent.failed_at.is_(None),
        )
    ).scalar_one()
    return render_template("erp/jobs.html", failed=failed, retrying=retrying, waiting=waiting, action=ActionForm())


@bp.route("/settings/jobs/<int:event_id>/retry", methods=["POST"])
@requires(Permission.TENANT_SETTINGS)
def retry_job(event_id: int) -> Response:
    context = ctx()
    session = db_session()
    event = get_scoped_or_404(session, OutboxEvent, event_id, context)
    form = ActionForm()
    if form.validate_on_submit() and event.failed_at is not None:
        services.retry_job(session, event)
        actor().audit(
            session,
            "job.retried",
            tenant_id=context.tenant_id,
            object_type="outbox_event",
            object_id=event.id,
            after={"topic": event.topic},
        )
        flash("Queued again.", "success")
    return redirect(url_for("erp.jobs"))


def register(app):
    app.register_blueprint(bp)
