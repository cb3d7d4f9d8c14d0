"""Row-level security and grants, for use in migrations.

Every tenant-owned table gets ``ENABLE`` and ``FORCE ROW LEVEL SECURITY`` (FORCE
so that even the owner is subject to it) and a policy that compares its
``tenant_id`` with the transaction's ``app.tenant_id`` setting (set by
portal.db on every transaction). Without a tenant set, ``NULLIF(..)`` yields
NULL and the policy matches no row: missing context means zero rows.

The application connects as ``PORTAL_DB_APP_ROLE`` (default ``portal_app``): a
role that owns nothing, is no superuser and has NOBYPASSRLS. Migrations run as
the owner and grant it table rights; the audit table gets INSERT and SELECT only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

from alembic import op
from sqlalchemy import text

CURRENT_TENANT = "NULLIF(current_setting('app.tenant_id', true), '')::bigint"
CURRENT_USER = "NULLIF(current_setting('app.user_id', true), '')::bigint"
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def _is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def app_role() -> str:
    role = os.environ.get("PORTAL_DB_APP_ROLE", "portal_app")
    if not _IDENT.match(role):
        raise ValueError(f"PORTAL_DB_APP_ROLE {role!r} is not a plain identifier")
    return role


@contextmanager
def owner_sees_every_row(*tables: str) -> Iterator[None]:
    """For a migration's data step: FORCE RLS would hide every row of ``tables`` from the owner (no tenant is
    set here), so it is lifted inside the migration's transaction and forced again after."""
    postgres = _is_postgres()
    if postgres:
        for table in tables:
            op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    yield
    if postgres:
        for table in tables:
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")


def enable_tenant_rls(table: str, *, using: str | None = None, check: str | None = None) -> None:
    """Force RLS on ``table`` with the tenant policy (or the given expressions)."""
    if not _is_postgres():
        return
    using = using or f"tenant_id = {CURRENT_TENANT}"
    check = check or f"tenant_id = {CURRENT_TENANT}"
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({using}) WITH CHECK ({check})")


def grant_app_role(*, insert_only: tuple[str, ...] = ()) -> None:
    """Grant the application role DML on every table (and future ones);
    ``insert_only`` tables (append-only) get SELECT and INSERT alone."""
    if not _is_postgres():
        return
    role = app_role()
    exists = op.get_bind().execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar()
    if not exists:
        # A single-role installation: nothing to grant. Documented in the README.
        return
    op.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {role}")
    op.execute(f"REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {role}")
    for table in insert_only:
        op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {role}")
