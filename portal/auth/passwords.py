"""Password hashing (argon2id) and the password policy.

Parameters are OWASP ASVS 5.0 level 2's minimum for argon2id (t=2, m=19 MiB,
p=1). Argon2 hashes the whole input, so there is no 72-byte truncation as with
bcrypt. The policy has no composition rules: at least 8 characters, at most 256,
and not a common or easily guessed password (zxcvbn score 2 or more).
"""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

MIN_LENGTH = 8
MAX_LENGTH = 256

HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, salt_len=16, type=Type.ID)

# Verified against when the e-mail is unknown, so both paths cost the same time.
_DUMMY_HASH = HASHER.hash("not a real password, only for timing")


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return HASHER.check_needs_rehash(password_hash)


def password_problem(password: str, *, user_inputs: tuple[str, ...] = ()) -> str | None:
    """Return why ``password`` is not acceptable, or None."""
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    inputs = [part for value in user_inputs for part in value.replace("@", " ").replace(".", " ").split()]
    # zxcvbn is quadratic in length; the first 64 characters decide guessability anyway.
    if zxcvbn(password[:64], user_inputs=inputs)["score"] < 2:
        return "This password is too common or too easy to guess. A few unrelated words make a strong one."
    return None
