"""Secrets the portal must give back (ERP passwords, webhook signing keys), encrypted at rest.

Fernet (AES-128-CBC with HMAC-SHA256) from ``cryptography``. The key is
``CREDENTIALS_KEY`` (a Fernet key; several separated by commas to rotate, newest
first) or, when unset, derived from ``SECRET_KEY`` with HKDF, so rotating the
secret key without setting ``CREDENTIALS_KEY`` means entering the ERP password again.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app


class SecretUnreadable(Exception):
    """The stored secret was encrypted with another key."""


def _fernet(credentials_key: str, secret_key: str) -> MultiFernet:
    if credentials_key:
        return MultiFernet([Fernet(k.strip().encode()) for k in credentials_key.split(",") if k.strip()])
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"portal-credentials", info=b"fernet").derive(
        secret_key.encode()
    )
    return MultiFernet([Fernet(base64.urlsafe_b64encode(derived))])


def _current() -> MultiFernet:
    settings = current_app.extensions["portal.settings"]
    return _fernet(settings.credentials_key, settings.secret_key)


def encrypt(plain: str) -> str:
    return _current().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _current().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable("the stored secret cannot be read with the current key; enter it again") from exc
