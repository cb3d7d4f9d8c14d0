"""Access declarations for views, and tenant-scoped loading.

Every view carries exactly one of:

* ``@public``: anyone, signed in or not (sign-in pages, health check);
* ``@signed_in``: any signed-in person, whatever tenant (their own account pages);
* ``@requires(Permission.X)``: a signed-in person working in a tenant whose role
  has the permission.

The decorator records the declaration on the view (``view.access``) so the
access-matrix test can read it, and the app refuses any endpoint without one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import abort, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from portal.auth.permissions import Permission
from portal.web import PortalContext, portal_context

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Access:
    kind: str  # "public", "signed_in" or "permission"
    permission: Permission | None = None


def _mark(view: Callable[..., Any], access: Access) -> None:
    view.access = access  # type: ignore[attr-defined]


def public(view: F) -> F:
    _mark(view, Access("public"))
    return view


def _login_redirect():
    target = request.full_path if request.method == "GET" else None
    return redirect(url_for("auth.login", next=target.rstrip("?") if target else None))


def signed_in(view: F) -> F:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return _login_redirect()
        return view(*args, **kwargs)

    _mark(wrapper, Access("signed_in"))
    return wrapper  # type: ignore[return-value]


def requires(permission: Permission) -> Callable[[F], F]:
    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return _login_redirect()
            context = portal_context()
            if context is None:
                return redirect(url_for("auth.choose_context", next=request.full_path.rstrip("?")))
            if not context.can(permission):
                abort(403)
            return view(*args, **kwargs)

        _mark(wrapper, Access("permission", permission))
        return wrapper  # type: ignore[return-value]

    return decorator


def view_access(view: Callable[..., Any] | None) -> Access | None:
    return getattr(view, "access", None)


# --- tenant-scoped loading -------------------------------------------------------


def require_context() -> PortalContext:
    context = portal_context()
    if context is None:
        abort(404)
    return context


def scoped(model: Any, context: PortalContext) -> Select[Any]:
    """``select(model)`` limited to the context's tenant and, for supplier users,
    to their own supplier account (when the model has a ``supplier_id``)."""
    stmt = select(model).where(model.tenant_id == context.tenant_id)
    if context.supplier_id is not None and hasattr(model, "supplier_id"):
        stmt = stmt.where(model.supplier_id == context.supplier_id)
    return stmt


def get_scoped_or_404(session: Session, model: Any, object_id: int, context: PortalContext) -> Any:
    """Load one tenant-owned row by id *through* the tenant: a foreign id answers 404."""
    row = session.execute(scoped(model, context).where(model.id == object_id)).scalar_one_or_none()
    if row is None:
        abort(404)
    return row
