"""Business rules of identities, memberships and invitations.

Functions take the session (and the tenant where it matters) explicitly, flush,
and never commit; every security-relevant change writes an audit row in the
same transaction.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from portal import audit
from portal.auth import sessions
from portal.auth.models import Invitation, Membership, RecoveryCode, User
from portal.auth.passwords import hash_password
from portal.auth.permissions import INVITABLE_BY, SUPPLIER_ROLES, Role
from portal.db import set_context, utcnow
from portal.suppliers.models import Supplier
from portal.tenancy.models import MfaPolicy, Tenant

INVITATION_LIFETIME = timedelta(days=7)
LOGIN_TOKEN_MAX_AGE = 300  # seconds between the password step and the second factor


class ServiceError(Exception):
    """A rule was broken; the message is meant for the person who asked."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    label: str
    ip: str

    def audit(self, session: Session, action: str, *, tenant_id: int | None, **kwargs: object) -> None:
        """Audit an action of this actor; appended at commit, in the same transaction."""
        audit.defer(
            session, action, tenant_id=tenant_id, actor_user_id=self.user_id, actor=self.label, ip=self.ip, **kwargs
        )


SYSTEM = Actor(None, "system", "")


def normalise_email(email: str) -> str:
    return email.strip().lower()


def find_user_by_email(session: Session, email: str) -> User | None:
    return session.execute(select(User).where(User.email == normalise_email(email))).scalar_one_or_none()


def create_user(session: Session, email: str, *, name: str = "", password: str | None = None) -> User:
    email = normalise_email(email)
    if find_user_by_email(session, email) is not None:
        raise ServiceError("An account with this e-mail address exists already.", "email")
    user = User(email=email, name=name.strip())
    if password is not None:
        user.password_hash = hash_password(password)
        user.password_changed_at = utcnow()
    session.add(user)
    session.flush()
    return user


def user_requires_mfa(session: Session, user: User) -> bool:
    """MFA is required unless *every* membership sits in a tenant whose policy exempts its role."""
    if user.mfa_enabled:
        return True
    rows = session.execute(
        select(Membership.role, Tenant.mfa_policy)
        .join(Tenant, Tenant.id == Membership.tenant_id)
        .where(Membership.user_id == user.id, Membership.disabled_at.is_(None))
    ).all()
    if not rows:
        return True
    exempt_roles = {Role.BUYER, Role.COMPLIANCE_OFFICER, Role.VIEWER}
    return not all(
        policy == MfaPolicy.REQUIRED_FOR_SUPPLIERS_AND_ADMINS and role in exempt_roles for role, policy in rows
    )


# --- signed tokens -------------------------------------------------------------


def _serializer(secret_key: str, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=salt)


def make_login_token(secret_key: str, user: User) -> str:
    """Issued by the password step; names the user for the second-factor step only."""
    return _serializer(secret_key, "login-second-factor").dumps({"u": user.id, "n": secrets.token_hex(8)})


def read_login_token(secret_key: str, token: str | None) -> int | None:
    if not token:
        return None
    try:
        data = _serializer(secret_key, "login-second-factor").loads(token, max_age=LOGIN_TOKEN_MAX_AGE)
    except (BadSignature, SignatureExpired):
        return None
    return int(data["u"]) if isinstance(data, dict) and "u" in data else None


PASSWORD_RESET_MAX_AGE = 3600


def _password_fingerprint(user: User) -> str:
    # Changes whenever the password does, so a reset link works once.
    return hashlib.sha256((user.password_hash or "none").encode()).hexdigest()[:16]


def make_password_reset_token(secret_key: str, user: User) -> str:
    return _serializer(secret_key, "password-reset").dumps({"u": user.id, "p": _password_fingerprint(user)})


def read_password_reset_token(session: Session, secret_key: str, token: str) -> User | None:
    try:
        data = _serializer(secret_key, "password-reset").loads(token, max_age=PASSWORD_RESET_MAX_AGE)
    except (BadSignature, SignatureExpired):
        return None
    if not isinstance(data, dict) or "u" not in data:
        return None
    user = session.get(User, int(data["u"]))
    if user is None or not secrets.compare_digest(_password_fingerprint(user), str(data.get("p", ""))):
        return None
    return user


def invitation_token(secret_key: str, invitation: Invitation) -> str:
    return _serializer(secret_key, "invitation").dumps(
        {"i": invitation.id, "t": invitation.tenant_id, "n": invitation.nonce}
    )


# --- invitations -----------------------------------------------------------------


def create_invitation(
    session: Session,
    *,
    tenant_id: int,
    inviter_role: Role | None,
    email: str,
    role: Role,
    supplier_id: int | None,
    actor: Actor,
    inviter_supplier_id: int | None = None,
) -> Invitation:
    """Invite ``email`` into the tenant (or a supplier account) with ``role``.

    ``inviter_role`` None means the platform itself (CLI). A supplier admin may only
    invite into its own supplier account.
    """
    email = normalise_email(email)
    if inviter_role is not None and role not in INVITABLE_BY.get(inviter_role, frozenset()):
        raise ServiceError("Your role cannot invite people with this role.", "role")
    if role in SUPPLIER_ROLES:
        if supplier_id is None:
            raise ServiceError("Choose the supplier account to invite into.", "supplier_id")
        if inviter_role in SUPPLIER_ROLES and supplier_id != inviter_supplier_id:
            raise ServiceError("You can only invite colleagues into your own supplier account.")
        supplier = session.execute(
            select(Supplier).where(Supplier.id == supplier_id, Supplier.tenant_id == tenant_id)
        ).scalar_one_or_none()
        if supplier is None:
            raise ServiceError("That supplier account does not exist.", "supplier_id")
    else:
        supplier_id = None
    existing_user = find_user_by_email(session, email)
    if existing_user is not None:
        already = session.execute(
            select(func.count()).where(
                Membership.tenant_id == tenant_id,
                Membership.user_id == existing_user.id,
                Membership.supplier_id.is_(supplier_id)
                if supplier_id is None
                else Membership.supplier_id == supplier_id,
            )
        ).scalar_one()
        if already:
            raise ServiceError("This person is a member already.", "email")
    # A new invitation replaces any open one for the same address and place.
    open_invites = session.execute(
        select(Invitation).where(
            Invitation.tenant_id == tenant_id,
            Invitation.email == email,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
    ).scalars()
    for old in open_invites:
        if old.supplier_id == supplier_id:
            old.revoked_at = utcnow()
    invitation = Invitation(
        tenant_id=tenant_id,
        email=email,
        role=role,
        supplier_id=supplier_id,
        invited_by_id=actor.user_id,
        nonce=secrets.token_urlsafe(32)[:43],
        expires_at=utcnow() + INVITATION_LIFETIME,
    )
    session.add(invitation)
    session.flush()
    actor.audit(
        session,
        "invitation.created",
        tenant_id=tenant_id,
        object_type="invitation",
        object_id=invitation.id,
        after={"email": email, "role": role.value, "supplier_id": supplier_id},
    )
    return invitation


class InvitationProblem(ServiceError):
    pass


def load_invitation(session: Session, secret_key: str, token: str) -> Invitation:
    """Resolve a link's token to an open invitation, binding the session to its tenant."""
    try:
        data = _serializer(secret_key, "invitation").loads(token, max_age=int(INVITATION_LIFETIME.total_seconds()))
    except SignatureExpired as exc:
        raise InvitationProblem("This invitation has expired. Ask for a new one.") from exc
    except BadSignature as exc:
        raise InvitationProblem("This invitation link is not valid.") from exc
    if not isinstance(data, dict) or not {"i", "t", "n"} <= data.keys():
        raise InvitationProblem("This invitation link is not valid.")
    set_context(session, tenant_id=int(data["t"]), user_id=None)
    invitation = session.execute(
        select(Invitation).where(Invitation.id == int(data["i"]), Invitation.tenant_id == int(data["t"]))
    ).scalar_one_or_none()
    if invitation is None or not secrets.compare_digest(invitation.nonce, str(data["n"])):
        raise InvitationProblem("This invitation link is not valid.")
    if invitation.revoked_at is not None:
        raise InvitationProblem("This invitation was withdrawn. Ask for a new one.")
    if invitation.accepted_at is not None:
        raise InvitationProblem("This invitation has been used already. Sign in instead.")
    if invitation.expires_at <= utcnow():
        raise InvitationProblem("This invitation has expired. Ask for a new one.")
    return invitation


def accept_invitation(session: Session, invitation: Invitation, user: User, actor: Actor) -> Membership:
    if normalise_email(user.email) != invitation.email:
        raise InvitationProblem("This invitation was sent to another e-mail address.")
    invitation.accepted_at = utcnow()
    membership = Membership(
        tenant_id=invitation.tenant_id,
        user_id=user.id,
        role=invitation.role,
        supplier_id=invitation.supplier_id,
    )
    session.add(membership)
    session.flush()
    actor.audit(
        session,
        "membership.created",
        tenant_id=invitation.tenant_id,
        object_type="membership",
        object_id=membership.id,
        after={"user": user.email, "role": invitation.role.value, "supplier_id": invitation.supplier_id},
        reason=f"invitation {invitation.id}",
    )
    return membership


# --- membership administration ---------------------------------------------------


def change_role(session: Session, membership: Membership, new_role: Role, actor: Actor) -> None:
    if membership.role == new_role:
        return
    if (membership.role in SUPPLIER_ROLES) != (new_role in SUPPLIER_ROLES):
        raise ServiceError("A staff role cannot become a supplier role or the other way round.", "role")
    before = membership.role
    membership.role = new_role
    session.flush()
    actor.audit(
        session,
        "membership.role_changed",
        tenant_id=membership.tenant_id,
        object_type="membership",
        object_id=membership.id,
        before={"role": before.value},
        after={"role": new_role.value},
    )


def set_membership_disabled(
    session: Session, membership: Membership, disabled: bool, actor: Actor, *, reason: str = ""
) -> None:
    if membership.user_id == actor.user_id:
        raise ServiceError("You cannot disable your own access.")
    if disabled == (membership.disabled_at is not None):
        return
    membership.disabled_at = utcnow() if disabled else None
    if disabled:
        from portal.api.services import revoke_keys_of_person

        # End every session of the person, so the change applies at once, and their systems' keys with them.
        sessions.revoke_all(session, membership.user_id)
        revoke_keys_of_person(
            session, tenant_id=membership.tenant_id, user_id=membership.user_id, actor=actor,
            reason="access disabled" + (f": {reason.strip()}" if reason.strip() else ""),
        )  # fmt: skip
    session.flush()
    actor.audit(
        session,
        "membership.disabled" if disabled else "membership.enabled",
        tenant_id=membership.tenant_id,
        object_type="membership",
        object_id=membership.id,
        after={"user_id": membership.user_id},
        reason=reason,
    )


def admin_reset_mfa(session: Session, membership: Membership, actor: Actor, *, reason: str) -> None:
    """A tenant admin clears a member's MFA so they enrol again at next sign-in.

    Only for people who belong to this tenant alone: an identity shared with other
    tenants is not one tenant's to reset.
    """
    if not reason.strip():
        raise ServiceError("Give a reason; it goes into the audit trail.", "reason")
    user = session.get(User, membership.user_id)
    assert user is not None
    other_tenants = session.execute(
        select(func.count()).where(Membership.user_id == user.id, Membership.tenant_id != membership.tenant_id)
    ).scalar_one()
    if other_tenants:
        raise ServiceError("This person also works for other customers; they must reset MFA themselves.")
    clear_mfa(session, user)
    sessions.revoke_all(session, user.id)
    from portal.api.services import revoke_keys_of_person

    # A reset second factor may mean the sign-in is in someone else's hands: what it issued goes too.
    revoke_keys_of_person(
        session, tenant_id=membership.tenant_id, user_id=user.id, actor=actor, reason=f"MFA reset: {reason.strip()}"
    )
    actor.audit(
        session,
        "user.mfa_reset_by_admin",
        tenant_id=membership.tenant_id,
        object_type="user",
        object_id=user.id,
        reason=reason.strip(),
    )


def clear_mfa(session: Session, user: User) -> None:
    """Forget the TOTP secret and every recovery code; the next sign-in enrols again."""
    user.totp_secret = None
    user.mfa_enabled_at = None
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    session.flush()
