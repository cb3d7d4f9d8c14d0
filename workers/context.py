"""The application the actors run in.

The web process binds itself (in-process workers, tests); a worker process
builds the portal from its environment on the first message. Actors use the
app's database and settings, inside an application context.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask

from portal.db import Database

_app: Flask | None = None
_lock = threading.Lock()


def bind(app: Flask | None) -> None:
    global _app
    _app = app


def app() -> Flask:
    global _app
    with _lock:
        if _app is None:
            from portal import create_app

            _app = create_app()
        return _app


def database() -> Database:
    return app().extensions["portal.db"]


@contextmanager
def app_context() -> Iterator[Flask]:
    flask_app = app()
    with flask_app.app_context():
        yield flask_app


def tenant_ids() -> list[int]:
    """Every tenant (the tenants table is not tenant-owned); per-tenant work sets its own context."""
    from sqlalchemy import select

    from portal.tenancy.models import Tenant

    with database().transaction() as session:
        return list(session.execute(select(Tenant.id).order_by(Tenant.id)).scalars())
