"""Sign-in in two steps, MFA enrolment, the customer switcher, invitations.

The password step only issues a short-lived signed token (kept in the session
cookie); ``login_user`` happens after the second factor. The sign-in path is
written around :func:`sign_in`, which any later first factor (OIDC for buyer
staff) can call once it has identified the user.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from portal import audit
from portal.auth import mfa, ratelimit, services, sessions
from portal.auth.access import public, signed_in
from portal.auth.forms import (
    AcceptNewAccountForm,
    ChooseContextForm,
    EmptyForm,
    EnrolForm,
    ForgotPasswordForm,
    LoginForm,
    ResetPasswordForm,
    SecondFactorForm,
)
from portal.auth.models import Membership, User
from portal.auth.passwords import hash_password, needs_rehash, verify_password
from portal.auth.permissions import ROLE_PERMISSIONS, Permission
from portal.db import TENANT_KEY, USER_KEY, set_context, utcnow
from portal.mail import send_email
from portal.numbers import whole_number
from portal.web import (
    ActiveMembership,
    PortalContext,
    active_memberships,
    bind_membership,
    db,
    db_session,
    secret_key,
)

bp = Blueprint("auth", __name__)

LOGIN_TOKEN = "login_token"  # noqa: S105 (a session key name)
LOGIN_NEXT = "login_next"
ENROL_SECRET = "enrol_secret"  # noqa: S105 (a session key name)


def client_ip() -> str:
    # ProxyFix (configured with TRUSTED_PROXY_HOPS) has already set remote_addr
    # from the trusted hop; a forged X-Forwarded-For changes nothing.
    return request.remote_addr or ""


def actor() -> services.Actor:
    if current_user.is_authenticated:
        return services.Actor(current_user.id, current_user.email, client_ip())
    return services.Actor(None, "anonymous", client_ip())


def limiter() -> ratelimit.RateLimiter:
    return current_app.extensions["portal.ratelimiter"]


def safe_next(target: str | None) -> str | None:
    """Only our own paths: no scheme, no host, no protocol-relative or backslash tricks."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def record_security_event(action: str, *, email: str = "", user_id: int | None = None, reason: str = "") -> None:
    """Audit a failed security event in its own transaction: the request's own
    transaction is rolled back on failure, the record of the attempt must stay.

    The request's transaction ends here first, as it would at the end of the request. On SQLite a write locks the
    whole database, even one that changed nothing (a replayed code's update of the last time step): left open, it
    kept this write waiting for the lock until the timeout, and the sign-in page failed."""
    request_session = g.get("db_session")
    if request_session is not None:
        request_session.rollback()
    with db().transaction() as own:
        audit.record(own, action, tenant_id=None, actor_user_id=user_id, actor=email, ip=client_ip(), reason=reason)


def limited_response(template: str, form: object, exc: ratelimit.Limited, **context: object) -> Response:
    minutes, seconds = divmod(exc.retry_after, 60)
    wait = f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
    flash(f"Too many attempts. Please wait {wait} before trying again.", "error")
    response = current_app.make_response((render_template(template, form=form, **context), 429))
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def sign_in(user: User, method: str) -> str:
    """Start an authenticated session for ``user``; return where to go next."""
    target = safe_next(session.get(LOGIN_NEXT))
    db_sess = db_session()
    # A new session at login: nothing from before sign-in is carried over.
    session.clear()
    session.permanent = True
    sessions.start_session(db_sess, user, ip=client_ip(), user_agent=request.user_agent.string, auth_method=method)
    login_user(user)
    # From here on row-level security may show this person's own memberships.
    set_context(db_sess, tenant_id=None, user_id=user.id)
    audit.record(
        db_sess,
        "auth.signed_in",
        tenant_id=None,
        actor_user_id=user.id,
        actor=user.email,
        ip=client_ip(),
        after={"method": method},
    )
    memberships = active_memberships(db_sess, user.id)
    if len(memberships) == 1:
        bind_membership(db_sess, memberships[0])
    elif len(memberships) > 1:
        return url_for("auth.choose_context", next=target) if target else url_for("auth.choose_context")
    return target or url_for("dashboard.index")


def _pending_user() -> User | None:
    user_id = services.read_login_token(secret_key(), session.get(LOGIN_TOKEN))
    if user_id is None:
        return None
    return db_session().get(User, user_id)


@bp.route("/login", methods=["GET", "POST"])
@public
def login() -> Response | str | tuple[str, int]:
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.index"))
    form = LoginForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next")) or ""
    if not form.validate_on_submit():
        return render_template("auth/login.html", form=form), 422 if request.method == "POST" else 200
    email = services.normalise_email(form.email.data or "")
    ip = client_ip()
    try:
        limiter().check((ratelimit.FAILURES_PER_ACCOUNT_HOURLY, email))
        limiter().attempt((ratelimit.LOGIN_PER_ACCOUNT, email), (ratelimit.LOGIN_PER_IP, ip))
    except ratelimit.Limited as exc:
        record_security_event("auth.sign_in_throttled", email=email)
        return limited_response("auth/login.html", form, exc)
    db_sess = db_session()
    user = services.find_user_by_email(db_sess, email)
    if user is None or not verify_password(user.password_hash, form.password.data or ""):
        limiter().hit((ratelimit.FAILURES_PER_ACCOUNT_HOURLY, email))
        record_security_event("auth.sign_in_failed", email=email, user_id=user.id if user else None)
        form.password.errors = ["E-mail or password is not right."]
        return render_template("auth/login.html", form=form), 401
    set_context(db_sess, tenant_id=None, user_id=user.id)
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = hash_password(form.password.data or "")
    session[LOGIN_TOKEN] = services.make_login_token(secret_key(), user)
    session[LOGIN_NEXT] = safe_next(form.next.data) or ""
    if user.mfa_enabled:
        return redirect(url_for("auth.second_factor"))
    if services.user_requires_mfa(db_sess, user):
        return redirect(url_for("auth.enrol"))
    return redirect(sign_in(user, "password"))


@bp.route("/login/verify", methods=["GET", "POST"])
@public
def second_factor() -> Response | str | tuple[str, int]:
    user = _pending_user()
    if user is None or not user.mfa_enabled:
        flash("Please sign in again.", "info")
        return redirect(url_for("auth.login"))
    form = SecondFactorForm()
    if not form.validate_on_submit():
        return render_template("auth/second_factor.html", form=form), 422 if request.method == "POST" else 200
    key = str(user.id)
    try:
        limiter().attempt((ratelimit.MFA_PER_ACCOUNT, key), (ratelimit.MFA_PER_ACCOUNT_HOURLY, key))
    except ratelimit.Limited as exc:
        record_security_event("auth.second_factor_throttled", email=user.email, user_id=user.id)
        return limited_response("auth/second_factor.html", form, exc)
    method = mfa.consume_second_factor(db_session(), user, form.code.data or "")
    if method is None:
        record_security_event("auth.second_factor_failed", email=user.email, user_id=user.id)
        form.code.errors = ["That code is not valid, or it has been used already. Wait for the next code."]
        return render_template("auth/second_factor.html", form=form), 401
    if method == "recovery_code":
        left = mfa.remaining_recovery_codes(db_session(), user)
        flash(f"You signed in with a recovery code. {left} remain; you can make new ones under Account.", "warning")
    return redirect(sign_in(user, method))


@bp.route("/login/enrol", methods=["GET", "POST"])
@public
def enrol() -> Response | str | tuple[str, int]:
    user = _pending_user()
    if user is None:
        flash("Please sign in again.", "info")
        return redirect(url_for("auth.login"))
    if user.mfa_enabled:
        return redirect(url_for("auth.second_factor"))
    pending = session.get(ENROL_SECRET)
    if not isinstance(pending, dict) or pending.get("u") != user.id:
        # The secret waits in the signed session cookie until confirmed: a GET stores nothing.
        pending = {"u": user.id, "s": mfa.new_secret()}
        session[ENROL_SECRET] = pending
    secret = pending["s"]
    form = EnrolForm()
    if form.validate_on_submit():
        step = mfa.matching_step(secret, form.code.data or "")
        if step is None:
            form.code.errors = ["That code does not match. Check the time on your phone and try the next code."]
        else:
            db_sess = db_session()
            user.totp_secret = secret
            user.totp_last_step = step
            user.mfa_enabled_at = utcnow()
            codes = mfa.regenerate_recovery_codes(db_sess, user)
            audit.record(
                db_sess, "user.mfa_enrolled", tenant_id=None, actor_user_id=user.id, actor=user.email, ip=client_ip()
            )
            send_email(
                db_sess,
                user.email,
                "Two-factor authentication is on",
                "Two-factor authentication was turned on for your supplier portal account.\n"
                "If this was not you, contact your administrator at once.",
            )
            target = sign_in(user, "totp")
            return render_template("auth/recovery_codes.html", codes=codes, next_url=target, first_time=True)
    uri = mfa.provisioning_uri(secret, user.email, current_app.config["PORTAL_NAME"])
    status = 422 if request.method == "POST" else 200
    return render_template("auth/enrol.html", form=form, secret=secret, qr=mfa.qr_svg(uri), email=user.email), status


@bp.route("/login/forgot", methods=["GET", "POST"])
@public
def forgot_password() -> Response | str | tuple[str, int]:
    """Send a reset link. The answer is the same whether or not the address has an account."""
    form = ForgotPasswordForm()
    if not form.validate_on_submit():
        return render_template("auth/forgot.html", form=form), 422 if request.method == "POST" else 200
    email = services.normalise_email(form.email.data or "")
    try:
        limiter().attempt((ratelimit.LOGIN_PER_ACCOUNT, email), (ratelimit.LOGIN_PER_IP, client_ip()))
    except ratelimit.Limited as exc:
        return limited_response("auth/forgot.html", form, exc)
    db_sess = db_session()
    user = services.find_user_by_email(db_sess, email)
    if user is not None and user.password_hash:
        link = url_for(
            "auth.reset_password", token=services.make_password_reset_token(secret_key(), user), _external=True
        )
        send_email(
            db_sess,
            user.email,
            "Reset your supplier portal password",
            f"Someone asked to reset the password of this account.\n\nChoose a new password here "
            f"(the link works once, for one hour):\n{link}\n\nIf this was not you, ignore this e-mail.",
        )
        audit.record(
            db_sess,
            "user.password_reset_requested",
            tenant_id=None,
            actor_user_id=user.id,
            actor=user.email,
            ip=client_ip(),
        )
    flash("If an account exists for that address, we have sent it a link to choose a new password.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/login/reset/<token>", methods=["GET", "POST"])
@public
def reset_password(token: str) -> Response | str | tuple[str, int]:
    db_sess = db_session()
    user = services.read_password_reset_token(db_sess, secret_key(), token)
    if user is None:
        return render_template(
            "auth/invitation_problem.html",
            title="Password reset",
            message="This reset link is not valid any more (used, expired or replaced). Ask for a new one.",
        ), 410
    set_context(db_sess, tenant_id=None, user_id=user.id)
    form = ResetPasswordForm()
    form.policy_inputs = (user.email, user.name)
    if form.validate_on_submit():
        try:
            limiter().attempt(
                (ratelimit.MFA_PER_ACCOUNT, str(user.id)), (ratelimit.MFA_PER_ACCOUNT_HOURLY, str(user.id))
            )
        except ratelimit.Limited as exc:
            return limited_response("auth/reset.html", form, exc, needs_code=user.mfa_enabled)
        if user.mfa_enabled and mfa.consume_second_factor(db_sess, user, form.code.data or "") is None:
            form.code.errors = ["Enter a valid code from your authenticator app, or a recovery code."]
        else:
            user.password_hash = hash_password(form.new_password.data or "")
            user.password_changed_at = utcnow()
            sessions.revoke_all(db_sess, user.id)
            audit.record(
                db_sess, "user.password_reset", tenant_id=None, actor_user_id=user.id, actor=user.email, ip=client_ip()
            )
            send_email(
                db_sess,
                user.email,
                "Your password was changed",
                "The password of your supplier portal account was reset. All sessions were signed out.",
            )
            flash("Your password is changed. Sign in with it now.", "success")
            return redirect(url_for("auth.login"))
    status = 422 if request.method == "POST" else 200
    return render_template("auth/reset.html", form=form, needs_code=user.mfa_enabled), status


@bp.route("/logout", methods=["POST"])
@signed_in
def logout() -> Response:
    form = EmptyForm()
    if form.validate_on_submit():
        db_sess = db_session()
        sessions.revoke_by_id(db_sess, current_user.session_id)
        audit.record(
            db_sess,
            "auth.signed_out",
            tenant_id=None,
            actor_user_id=current_user.id,
            actor=current_user.email,
            ip=client_ip(),
        )
        logout_user()
        session.clear()
        flash("You have signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/choose", methods=["GET"])
@signed_in
def choose_context() -> str:
    db_sess = db_session()
    memberships = active_memberships(db_sess, current_user.id)
    return render_template(
        "auth/choose_context.html",
        memberships=memberships,
        waiting=waiting_per_customer(db_sess, memberships),
        form=ChooseContextForm(),
        next_url=safe_next(request.args.get("next")) or "",
    )


def waiting_per_customer(db_sess: Session, memberships: Sequence[ActiveMembership]) -> dict[int, dict[str, int]]:
    """For each supplier membership, its orders as that customer's inbox counts them: a supplier serving several
    customers sees, before choosing one, where new orders wait for an answer and where some are late. Read under
    each customer's own tenant context (row-level security shows one tenant at a time)."""
    from datetime import date

    from portal.orders.queries import inbox_counts

    waiting: dict[int, dict[str, int]] = {}
    restore = (db_sess.info.get(TENANT_KEY), db_sess.info.get(USER_KEY))
    for m in memberships:
        if m.supplier_id is None or Permission.ORDERS_VIEW not in ROLE_PERMISSIONS[m.role]:
            continue
        set_context(db_sess, tenant_id=m.tenant_id, user_id=m.user_id)
        context = PortalContext(m.id, m.tenant_id, m.tenant_name, m.role, m.supplier_id, m.supplier_name)
        waiting[m.id] = inbox_counts(db_sess, context, date.today()).counts
    if waiting:
        set_context(db_sess, tenant_id=restore[0], user_id=restore[1])
    return waiting


@bp.route("/context", methods=["POST"])
@signed_in
def switch_context() -> Response:
    form = ChooseContextForm()
    membership_id = form.membership_id.data
    if not form.validate_on_submit() or whole_number(str(membership_id)) is None:
        flash("Choose a customer from the list.", "error")
        return redirect(url_for("auth.choose_context"))
    db_sess = db_session()
    membership = db_sess.execute(
        select(Membership).where(
            Membership.id == int(membership_id),
            Membership.user_id == current_user.id,
            Membership.disabled_at.is_(None),
        )
    ).scalar_one_or_none()
    if membership is None:
        flash("You do not have access to that customer.", "error")
        return redirect(url_for("auth.choose_context"))
    bind_membership(db_sess, membership)
    target = safe_next(request.args.get("next"))
    return redirect(target or url_for("dashboard.index"))


@bp.route("/invitations/<token>", methods=["GET", "POST"])
@public
def invitation(token: str) -> Response | str | tuple[str, int]:
    db_sess = db_session()
    try:
        invite = services.load_invitation(db_sess, secret_key(), token)
    except services.InvitationProblem as exc:
        return render_template("auth/invitation_problem.html", message=exc.message), 410
    existing = services.find_user_by_email(db_sess, invite.email)
    context = {"invite": invite, "token": token}
    if existing is not None:
        # Someone who already has an account (for another customer) just joins.
        if not current_user.is_authenticated:
            flash("You already have an account: sign in to accept the invitation.", "info")
            return redirect(url_for("auth.login", next=url_for("auth.invitation", token=token)))
        if current_user.id != existing.id:
            return render_template(
                "auth/invitation_problem.html",
                message=f"This invitation is for {invite.email}. Sign out and sign in with that address to accept it.",
            ), 403
        form = EmptyForm()
        if form.validate_on_submit():
            membership = services.accept_invitation(db_sess, invite, existing, actor())
            bind_membership(db_sess, membership)
            flash(f"You now work with {invite.tenant.name}.", "success")
            return redirect(url_for("dashboard.index"))
        return render_template("auth/invitation_join.html", form=form, **context)
    if current_user.is_authenticated:
        return render_template(
            "auth/invitation_problem.html",
            message=f"This invitation is for {invite.email}. Sign out first to create that account.",
        ), 403
    form = AcceptNewAccountForm()
    form.policy_inputs = (invite.email,)
    if form.validate_on_submit():
        user = services.create_user(db_sess, invite.email, name=form.name.data or "", password=form.new_password.data)
        services.accept_invitation(db_sess, invite, user, services.Actor(user.id, user.email, client_ip()))
        audit.record(
            db_sess,
            "user.created",
            tenant_id=None,
            actor_user_id=user.id,
            actor=user.email,
            ip=client_ip(),
            reason=f"invitation {invite.id}",
        )
        session[LOGIN_TOKEN] = services.make_login_token(secret_key(), user)
        session[LOGIN_NEXT] = ""
        flash("Your account is ready. Now protect it with two-factor authentication.", "success")
        return redirect(url_for("auth.enrol"))
    status = 422 if request.method == "POST" else 200
    return render_template("auth/invitation_new.html", form=form, **context), status


def register(app) -> None:
    app.register_blueprint(bp)
