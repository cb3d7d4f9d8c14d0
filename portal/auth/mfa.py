"""TOTP second factor and recovery codes.

A TOTP code is accepted for the current time step +-1, and only *once*: the
matched step is stored with an atomic ``UPDATE ... WHERE totp_last_step < step``,
so a replay, an older code after a newer one, or two concurrent submissions of
the same code (exactly one wins) are refused. Codes must be six ASCII digits.
Recovery codes carry 80 random bits each, are stored as SHA-256 and are used up
by an equally atomic update.
"""

from __future__ import annotations

import hashlib
import re
import secrets

import pyotp
import segno
from pyotp.exceptions import OTPVerificationError
from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from portal.auth.models import RecoveryCode, User
from portal.db import utcnow

TOTP_CODE = re.compile(r"[0-9]{6}", re.ASCII)
RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
_RECOVERY_LENGTH = 16  # 16 symbols of 5 bits = 80 bits
MAX_CODE_INPUT = 64


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The enrolment QR code as inline SVG: made here, no external service."""
    return segno.make(uri, error="m").svg_inline(
        scale=5, dark="#111", light="#fff", title="Scan with your authenticator app"
    )


def normalise_code(raw: str) -> str:
    return raw.strip().replace(" ", "").replace("-", "")


def looks_like_totp(raw: str) -> bool:
    return TOTP_CODE.fullmatch(normalise_code(raw)) is not None


def matching_step(secret: str, code: str) -> int | None:
    """The time step a code belongs to (current +-1), or None."""
    code = normalise_code(code)
    if TOTP_CODE.fullmatch(code) is None:
        return None
    try:
        return pyotp.TOTP(secret).verify_and_get_timecode(code, valid_window=1)
    except (OTPVerificationError, ValueError):
        return None


def consume_totp(session: Session, user: User, code: str) -> bool:
    """Accept ``code`` for ``user`` at most once."""
    if not user.totp_secret or not user.mfa_enabled:
        return False
    step = matching_step(user.totp_secret, code)
    if step is None:
        return False
    result = session.execute(
        update(User)
        .where(User.id == user.id, User.totp_last_step < step)
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    user.totp_last_step = step
    return True


def _hash_recovery(code: str) -> str:
    return hashlib.sha256(normalise_code(code).upper().encode()).hexdigest()


def format_recovery(raw: str) -> str:
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def regenerate_recovery_codes(session: Session, user: User) -> list[str]:
    """Replace all of a user's recovery codes; return the new ones (shown once)."""
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [
        "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH)) for _ in range(RECOVERY_CODE_COUNT)
    ]
    session.add_all(RecoveryCode(user_id=user.id, code_hash=_hash_recovery(c)) for c in codes)
    session.flush()
    return [format_recovery(c) for c in codes]


def consume_recovery_code(session: Session, user: User, code: str) -> bool:
    code = normalise_code(code)
    if not code or len(code) > MAX_CODE_INPUT or not code.isascii() or not code.isalnum():
        return False
    result = session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == _hash_recovery(code),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def consume_second_factor(session: Session, user: User, code: str) -> str | None:
    """Accept a TOTP code or a recovery code; return which, or None."""
    if len(code) > MAX_CODE_INPUT:
        return None
    if looks_like_totp(code):
        return "totp" if consume_totp(session, user, code) else None
    return "recovery_code" if consume_recovery_code(session, user, code) else None


def remaining_recovery_codes(session: Session, user: User) -> int:
    from sqlalchemy import func, select

    return session.execute(
        select(func.count()).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    ).scalar_one()
