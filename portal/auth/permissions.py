"""Roles and permissions, in one place.

A membership gives a user one role in a tenant (staff roles) or in one supplier
account of a tenant (supplier roles). Every view declares what it needs with one
of the decorators in :mod:`portal.auth.access`; a view without a declaration is
refused (fail closed) and fails the access-matrix test.
"""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    TENANT_ADMIN = "tenant_admin"
    BUYER = "buyer"
    COMPLIANCE_OFFICER = "compliance_officer"
    VIEWER = "viewer"
    SUPPLIER_ADMIN = "supplier_admin"
    SUPPLIER_USER = "supplier_user"

    @property
    def is_supplier_role(self) -> bool:
        return self in SUPPLIER_ROLES

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]


SUPPLIER_ROLES = frozenset({Role.SUPPLIER_ADMIN, Role.SUPPLIER_USER})
STAFF_ROLES = frozenset(set(Role) - SUPPLIER_ROLES)

ROLE_LABELS = {
    Role.TENANT_ADMIN: "Administrator",
    Role.BUYER: "Buyer",
    Role.COMPLIANCE_OFFICER: "Compliance officer",
    Role.VIEWER: "Viewer",
    Role.SUPPLIER_ADMIN: "Supplier administrator",
    Role.SUPPLIER_USER: "Supplier user",
}


class Permission(enum.StrEnum):
    DASHBOARD_VIEW = "dashboard.view"
    # Staff side
    SUPPLIERS_VIEW = "suppliers.view"
    SUPPLIERS_MANAGE = "suppliers.manage"
    USERS_MANAGE = "users.manage"
    TENANT_SETTINGS = "tenant.settings"
    AUDIT_VIEW = "audit.view"
    # Orders (suppliers see only their own supplier account's orders)
    ORDERS_VIEW = "orders.view"
    ORDERS_MANAGE = "orders.manage"  # decide change requests, create, cancel, close, receive
    ORDERS_RESPOND = "orders.respond"  # confirm, re-promise, ship
    ORDERS_MESSAGE = "orders.message"
    ORDERS_SETTINGS = "orders.settings"  # tolerance rules
    # Compliance documents
    DOCUMENTS_UPLOAD = "documents.upload"  # a supplier's own certificates
    DOCUMENTS_REVIEW = "documents.review"  # the review queue, types and requirements
    # Supplier side
    SUPPLIER_TEAM_MANAGE = "supplier_team.manage"


P = Permission

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    # Runs the tenant: people, roles, supplier accounts, settings; reads the audit trail.
    Role.TENANT_ADMIN: frozenset(
        {
            P.DASHBOARD_VIEW,
            P.SUPPLIERS_VIEW,
            P.SUPPLIERS_MANAGE,
            P.USERS_MANAGE,
            P.AUDIT_VIEW,
            P.ORDERS_VIEW,
            P.ORDERS_MANAGE,
            P.ORDERS_MESSAGE,
            P.ORDERS_SETTINGS,
            P.TENANT_SETTINGS,
            P.DOCUMENTS_REVIEW,
        }
    ),
    # Works purchase orders with suppliers; sees every supplier of the tenant.
    Role.BUYER: frozenset({P.DASHBOARD_VIEW, P.SUPPLIERS_VIEW, P.ORDERS_VIEW, P.ORDERS_MANAGE, P.ORDERS_MESSAGE}),
    # Sets document requirements and reviews certificates; reads the audit trail for auditors.
    Role.COMPLIANCE_OFFICER: frozenset(
        {P.DASHBOARD_VIEW, P.SUPPLIERS_VIEW, P.AUDIT_VIEW, P.ORDERS_VIEW, P.DOCUMENTS_REVIEW}
    ),
    # Read-only staff (management, finance): sees, never changes.
    Role.VIEWER: frozenset({P.DASHBOARD_VIEW, P.SUPPLIERS_VIEW, P.ORDERS_VIEW}),
    # Runs one supplier account for one customer: its own people, and all a supplier user does.
    Role.SUPPLIER_ADMIN: frozenset(
        {
            P.DASHBOARD_VIEW,
            P.SUPPLIER_TEAM_MANAGE,
            P.ORDERS_VIEW,
            P.ORDERS_RESPOND,
            P.ORDERS_MESSAGE,
            P.DOCUMENTS_UPLOAD,
        }
    ),
    # Answers orders and uploads documents for its own supplier account only.
    Role.SUPPLIER_USER: frozenset(
        {P.DASHBOARD_VIEW, P.ORDERS_VIEW, P.ORDERS_RESPOND, P.ORDERS_MESSAGE, P.DOCUMENTS_UPLOAD}
    ),
}


def role_has(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]


# Who may invite whom: a tenant admin invites staff and a supplier's first admin;
# a supplier admin invites colleagues into its own supplier account.
INVITABLE_BY: dict[Role, frozenset[Role]] = {
    Role.TENANT_ADMIN: frozenset(set(STAFF_ROLES) | {Role.SUPPLIER_ADMIN}),
    Role.SUPPLIER_ADMIN: frozenset(SUPPLIER_ROLES),
}
