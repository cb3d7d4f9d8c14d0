"""Self-service: password, MFA reset, recovery codes, active sessions.

Every change needs the current password (and, for MFA, a valid code or a
recovery code), ends the person's other sessions where it touches a credential,
is audited and notifies the person by e-mail.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from portal import audit
from portal.auth import mfa, sessions
from portal.auth.access import signed_in
from portal.auth.forms import (
    ChangePasswordForm,
    EmptyForm,
    EnrolForm,
    PasswordOnlyForm,
    ReauthenticateForm,
)
from portal.auth.models import User, UserSession
from portal.auth.passwords import hash_password, verify_password
from portal.auth.views import client_ip
from portal.db import utcnow
from portal.mail import send_email
from portal.web import active_memberships, db_session

bp = Blueprint("account", __name__, url_prefix="/account")

REENROL = "mfa_reenrol"


def _notify(subject: str, what: str) -> None:
    send_email(
        db_session(),
        current_user.email,
        subject,
        f"{what}\n\nTime (UTC): {utcnow():%Y-%m-%d %H:%M}\nIP address: {client_ip()}\n\n"
        "If this was not you, reset your password at once and tell your administrator.",
    )


def _audit(action: str, **kwargs: object) -> None:
    audit.record(
        db_session(),
        action,
        tenant_id=None,
        actor_user_id=current_user.id,
        actor=current_user.email,
        ip=client_ip(),
        **kwargs,  # type: ignore[arg-type]
    )


def _end_other_sessions() -> int:
    return sessions.revoke_all(db_session(), current_user.id, except_id=current_user.session_id)


def account_user() -> User:
    """The signed-in person's ``User`` row, for the pages that read or change its password or authenticator
    (``current_user`` carries only their id, e-mail and name)."""
    return db_session().execute(select(User).where(User.id == current_user.id)).scalar_one()


@bp.route("", methods=["GET"])
@signed_in
def overview() -> str:
    db_sess = db_session()
    user = account_user()
    return render_template(
        "account/overview.html",
        user=user,
        sessions=sessions.active_sessions(db_sess, current_user.id),
        current_session_id=current_user.session_id,
        memberships=active_memberships(db_sess, current_user.id),
        recovery_left=mfa.remaining_recovery_codes(db_sess, user),
        end_form=EmptyForm(),
    )


@bp.route("/password", methods=["GET", "POST"])
@signed_in
def change_password() -> Response | str | tuple[str, int]:
    form = ChangePasswordForm()
    form.policy_inputs = (current_user.email, current_user.name)
    if form.validate_on_submit():
        user = account_user()
        if not verify_password(user.password_hash, form.current_password.data or ""):
            form.current_password.errors = ["Your current password is not right."]
        else:
            user.password_hash = hash_password(form.new_password.data or "")
            user.password_changed_at = utcnow()
            ended = _end_other_sessions()
            _audit("user.password_changed", after={"other_sessions_ended": ended})
            _notify("Your password was changed", "The password of your supplier portal account was changed.")
            flash("Your password is changed. Your other sessions were signed out.", "success")
            return redirect(url_for("account.overview"))
    return render_template("account/password.html", form=form), 422 if request.method == "POST" else 200


@bp.route("/mfa/reset", methods=["GET", "POST"])
@signed_in
def reset_mfa() -> Response | str | tuple[str, int]:
    """Step 1 of replacing the authenticator: prove you hold password and a factor."""
    form = ReauthenticateForm()
    if form.validate_on_submit():
        user = account_user()
        if not verify_password(user.password_hash, form.password.data or ""):
            form.password.errors = ["Your password is not right."]
        elif mfa.consume_second_factor(db_session(), user, form.code.data or "") is None:
            form.code.errors = ["That code is not valid, or it has been used already."]
        else:
            session[REENROL] = {"u": current_user.id, "s": mfa.new_secret()}
            return redirect(url_for("account.reenrol"))
    return render_template("account/mfa_reset.html", form=form), 422 if request.method == "POST" else 200


@bp.route("/mfa/enrol", methods=["GET", "POST"])
@signed_in
def reenrol() -> Response | str | tuple[str, int]:
    """Step 2: scan the new secret and confirm it; only then is the old one replaced."""
    pending = session.get(REENROL)
    if not isinstance(pending, dict) or pending.get("u") != current_user.id:
        flash("Start again: confirm your password and a code first.", "info")
        return redirect(url_for("account.reset_mfa"))
    secret = pending["s"]
    form = EnrolForm()
    if form.validate_on_submit():
        step = mfa.matching_step(secret, form.code.data or "")
        if step is None:
            form.code.errors = ["That code does not match the new secret."]
        else:
            db_sess = db_session()
            user = account_user()
            user.totp_secret = secret
            user.totp_last_step = step
            user.mfa_enabled_at = utcnow()
            codes = mfa.regenerate_recovery_codes(db_sess, user)
            ended = _end_other_sessions()
            session.pop(REENROL, None)
            _audit("user.mfa_reset", after={"other_sessions_ended": ended})
            _notify("Your two-factor authentication was reset", "A new authenticator app was set up for your account.")
            return render_template(
                "auth/recovery_codes.html", codes=codes, next_url=url_for("account.overview"), first_time=False
            )
    uri = mfa.provisioning_uri(secret, current_user.email, current_app.config["PORTAL_NAME"])
    return render_template(
        "auth/enrol.html", form=form, secret=secret, qr=mfa.qr_svg(uri), email=current_user.email, reenrol=True
    ), 422 if request.method == "POST" else 200


@bp.route("/recovery-codes", methods=["GET", "POST"])
@signed_in
def recovery_codes() -> str | tuple[str, int]:
    form = PasswordOnlyForm()
    if form.validate_on_submit():
        user = account_user()
        if not verify_password(user.password_hash, form.password.data or ""):
            form.password.errors = ["Your password is not right."]
        else:
            codes = mfa.regenerate_recovery_codes(db_session(), user)
            _audit("user.recovery_codes_regenerated")
            _notify("New recovery codes", "New recovery codes were made for your account; the old ones no longer work.")
            return render_template(
                "auth/recovery_codes.html", codes=codes, next_url=url_for("account.overview"), first_time=False
            )
    return render_template("account/recovery_codes.html", form=form), 422 if request.method == "POST" else 200


@bp.route("/sessions/<int:session_id>/end", methods=["POST"])
@signed_in
def end_session(session_id: int) -> Response:
    form = EmptyForm()
    if not form.validate_on_submit():
        abort(400)
    db_sess = db_session()
    # Through the user: another person's session id answers 404.
    record = db_sess.execute(
        select(UserSession).where(UserSession.id == session_id, UserSession.user_id == current_user.id)
    ).scalar_one_or_none()
    if record is None:
        abort(404)
    sessions.revoke(db_sess, record)
    _audit("user.session_ended", object_type="session", object_id=record.id)
    flash("That session is signed out.", "success")
    if record.id == current_user.session_id:
        session.clear()
        return redirect(url_for("auth.login"))
    return redirect(url_for("account.overview"))


def register(app) -> None:
    app.register_blueprint(bp)
