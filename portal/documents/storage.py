"""Where document files live: a local folder outside the web root, under generated names.

The interface (put / read / delete by key) is what an S3-compatible backend would
implement later.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy.orm import Session

from portal.db import after_rollback


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not key.isalnum():  # keys are ours; anything else is a bug or an attack
            raise ValueError("invalid storage key")
        return self.root / key[:2] / key

    def put(self, data: bytes) -> str:
        key = secrets.token_hex(20)
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
        return key

    def read(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


def put_in_transaction(session: Session, storage: LocalStorage, data: bytes) -> str:
    """Store ``data`` as part of the session's transaction: the file is deleted again if the transaction rolls
    back, so a row that never came to be leaves no file behind."""
    key = storage.put(data)
    after_rollback(session, lambda: storage.delete(key))
    return key
