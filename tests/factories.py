"""Factories per domain. Passwords are hashed once per test run (argon2 is slow by design)."""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import pyotp
from sqlalchemy.orm import Session

from portal.auth import mfa
from portal.auth.models import Membership, User
from portal.auth.passwords import hash_password
from portal.auth.permissions import Role
from portal.db import set_context, utcnow
from portal.suppliers.models import Supplier
from portal.tenancy.models import Company, Tenant, Warehouse

PASSWORD = "quiet-harbour-lantern-42"
_seq = itertools.count(1)


@functools.cache
def password_hash() -> str:
    return hash_password(PASSWORD)


def make_tenant(session: Session, name: str | None = None) -> Tenant:
    n = next(_seq)
    tenant = Tenant(name=name or f"Distributor {n}", slug=f"distributor-{n}")
    session.add(tenant)
    session.flush()
    return tenant


def make_company_with_warehouse(session: Session, tenant: Tenant) -> tuple[Company, Warehouse]:
    set_context(session, tenant_id=tenant.id)
    n = next(_seq)
    company = Company(tenant_id=tenant.id, code=f"C{n}", name=f"Company {n}")
    session.add(company)
    session.flush()
    warehouse = Warehouse(tenant_id=tenant.id, company_id=company.id, code=f"W{n}", name=f"Warehouse {n}")
    session.add(warehouse)
    session.flush()
    return company, warehouse


def make_supplier(session: Session, tenant: Tenant, name: str | None = None) -> Supplier:
    set_context(session, tenant_id=tenant.id)
    n = next(_seq)
    supplier = Supplier(tenant_id=tenant.id, code=f"S{n}", name=name or f"Supplier {n}", category="Parts")
    session.add(supplier)
    session.flush()
    return supplier


@dataclass
class Person:
    user: User
    membership: Membership | None
    secret: str
    password: str = PASSWORD

    @property
    def email(self) -> str:
        return self.user.email


def make_user(session: Session, email: str | None = None, *, enrolled: bool = True) -> tuple[User, str]:
    secret = pyotp.random_base32()
    user = User(
        email=email or f"person{next(_seq)}@example.org",
        name="Test Person",
        password_hash=password_hash(),
        password_changed_at=utcnow(),
        totp_secret=secret if enrolled else None,
        mfa_enabled_at=utcnow() if enrolled else None,
    )
    session.add(user)
    session.flush()
    return user, secret


def make_member(
    session: Session,
    tenant: Tenant,
    role: Role,
    *,
    supplier: Supplier | None = None,
    user: User | None = None,
    secret: str = "",
    enrolled: bool = True,
) -> Person:
    if user is None:
        user, secret = make_user(session, enrolled=enrolled)
    set_context(session, tenant_id=tenant.id)
    membership = Membership(
        tenant_id=tenant.id, user_id=user.id, role=role, supplier_id=supplier.id if supplier else None
    )
    session.add(membership)
    session.flush()
    return Person(user, membership, secret)


def give_recovery_codes(session: Session, user: User) -> list[str]:
    return mfa.regenerate_recovery_codes(session, user)


# --- orders -----------------------------------------------------------------------

from datetime import date, timedelta  # noqa: E402
from decimal import Decimal  # noqa: E402

from portal.documents.models import DocumentType, Requirement  # noqa: E402
from portal.orders.models import PurchaseOrder, PurchaseOrderLine, TolerancePolicy  # noqa: E402


def make_order(
    session: Session,
    tenant: Tenant,
    supplier: Supplier,
    lines: list[tuple[str, str, int]] | None = None,
    *,
    number: str | None = None,
    order_date: date | None = None,
) -> PurchaseOrder:
    """An order awaiting the supplier's answer. ``lines``: (quantity, unit price, days from today)."""
    set_context(session, tenant_id=tenant.id)
    company, warehouse = make_company_with_warehouse(session, tenant)
    today = order_date or date.today()
    order = PurchaseOrder(
        tenant_id=tenant.id,
        company_id=company.id,
        warehouse_id=warehouse.id,
        supplier_id=supplier.id,
        number=number or f"PO{next(_seq):06d}",
        currency="EUR",
        order_date=today,
    )
    session.add(order)
    session.flush()
    spec = lines or [("100", "2.50", 14), ("40", "10.00", 21)]
    total = Decimal("0")
    for position, (qty, price, days) in enumerate(spec, start=1):
        session.add(
            PurchaseOrderLine(
                tenant_id=tenant.id,
                order_id=order.id,
                supplier_id=supplier.id,
                position=position,
                product_code=f"P-{position:03d}",
                product_name=f"Product {position}",
                quantity=Decimal(qty),
                unit="pc",
                unit_price=Decimal(price),
                requested_date=today + timedelta(days=days),
            )
        )
        total += Decimal(qty) * Decimal(price)
    order.total_value = total
    order.due_date = today + timedelta(days=min(d for _, _, d in spec))
    session.flush()
    return order


def make_tolerance(session: Session, tenant: Tenant, supplier: Supplier | None = None, **values: object) -> None:
    set_context(session, tenant_id=tenant.id)
    defaults: dict[str, object] = {
        "quantity_under_pct": Decimal("10"),
        "quantity_over_pct": Decimal("5"),
        "days_earlier": 3,
        "days_later": 2,
        "price_pct": Decimal("0"),
    }
    defaults.update(values)
    session.add(TolerancePolicy(tenant_id=tenant.id, supplier_id=supplier.id if supplier else None, **defaults))
    session.flush()


def require_document(
    session: Session, tenant: Tenant, code: str = "ISO9001", name: str = "ISO 9001", **requirement: object
) -> DocumentType:
    """A document type of ``tenant`` that every supplier must hold (a tenant-wide requirement)."""
    set_context(session, tenant_id=tenant.id)
    document_type = DocumentType(tenant_id=tenant.id, code=code, name=name)
    session.add(document_type)
    session.flush()
    session.add(Requirement(tenant_id=tenant.id, document_type_id=document_type.id, **requirement))
    session.flush()
    return document_type


# --- supplier API ----------------------------------------------------------------------


def issue_api_key(session: Session, person: Person, name: str = "ERP link", days: int = 90) -> str:
    """An API key issued for ``person``'s membership (through the service, as the keys page does)."""
    from portal.api import services as api
    from portal.auth.services import Actor

    membership = person.membership
    assert membership is not None
    set_context(session, tenant_id=membership.tenant_id)
    owner = api.KeyOwner(membership.id, membership.tenant_id, person.user.id, membership.role, membership.supplier_id)
    _, secret_key = api.issue_key(session, owner=owner, name=name, days=days, actor=Actor(person.user.id, "t", ""))
    session.flush()
    return secret_key
