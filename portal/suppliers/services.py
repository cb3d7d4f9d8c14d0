"""Rules for supplier accounts. Take the session and tenant explicitly; flush only."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from portal.auth.services import Actor, ServiceError
from portal.suppliers.models import Supplier


def matching(search: str) -> ColumnElement[bool]:
    """Suppliers whose name or code contains ``search``, whatever its case; ``%`` and ``_`` are characters, not
    wildcards (the supplier list's search and a buyer's supplier filter in the order inbox)."""
    return or_(Supplier.name.icontains(search, autoescape=True), Supplier.code.icontains(search, autoescape=True))


def create_supplier(
    session: Session,
    *,
    tenant_id: int,
    code: str,
    name: str,
    category: str = "",
    erp_ref: str | None = None,
    actor: Actor,
) -> Supplier:
    code = code.strip().upper()
    taken = session.execute(
        select(func.count()).where(Supplier.tenant_id == tenant_id, Supplier.code == code)
    ).scalar_one()
    if taken:
        raise ServiceError(f"Supplier code {code} is in use already.", "code")
    supplier = Supplier(
        tenant_id=tenant_id,
        code=code,
        name=name.strip(),
        category=category.strip(),
        erp_ref=(erp_ref or "").strip() or None,
    )
    session.add(supplier)
    session.flush()
    actor.audit(
        session,
        "supplier.created",
        tenant_id=tenant_id,
        object_type="supplier",
        object_id=supplier.id,
        after={"code": code, "name": supplier.name, "category": supplier.category},
    )
    return supplier
