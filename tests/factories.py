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
