"""Reads of a tenant's own set-up that many pages share."""

from __future__ import annotations

import time
from functools import cache
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from portal.db import read_columns
from portal.tenancy.models import Warehouse

# A warehouse added (by the ERP's sync or an import), or a buyer given access, shows in the filters within
# this many seconds.
SHIP_TO_CHOICES_SECONDS = 60.0
_SHIP_TO = (
    select(Warehouse.id, Warehouse.name)
    .where(Warehouse.tenant_id == bindparam("tenant_id"))
    .order_by(Warehouse.name, Warehouse.id)
)
_kept: dict[tuple[str, int], tuple[float, list[tuple[int, str]]]] = {}


def _kept_choices(kind: str, session: Session, tenant_id: int, statement: Any) -> list[tuple[int, str]]:
    """``statement``'s (id, name) rows for the tenant, kept for a minute in each web process. The inbox, the
    page suppliers open most, read them with statements of its own on every request, though a tenant's
    warehouses and buyers change a few times a year."""
    now = time.monotonic()
    kept = _kept.get((kind, tenant_id))
    if kept is not None and now - kept[0] < SHIP_TO_CHOICES_SECONDS:
        return kept[1]
    choices = [(row[0], row[1]) for row in read_columns(session, statement, {"tenant_id": tenant_id})]
    _kept[(kind, tenant_id)] = (now, choices)
    return choices


def ship_to_choices(session: Session, tenant_id: int) -> list[tuple[int, str]]:
    """The tenant's warehouses as (id, name), by name: the choices of a ship-to filter (inbox, exceptions)."""
    return _kept_choices("ship_to", session, tenant_id, _SHIP_TO)


@cache
def _buyers_statement() -> Any:
    from portal.auth.models import Membership, User
    from portal.auth.permissions import Role

    name = func.coalesce(func.nullif(User.name, ""), User.email)
    return (
        select(User.id, name.label("name"))
        .join(Membership, Membership.user_id == User.id)
        .where(
            Membership.tenant_id == bindparam("tenant_id"),
            Membership.supplier_id.is_(None),
            Membership.role.in_([Role.BUYER, Role.TENANT_ADMIN]),
            Membership.disabled_at.is_(None),
        )
        .distinct()
        .order_by(name, User.id)
    )


def buyer_choices(session: Session, tenant_id: int) -> list[tuple[int, str]]:
    """The tenant's people who place orders (active buyers and administrators) as (user id, name), by name: the
    choices of the inbox's buyer filter."""
    return _kept_choices("buyers", session, tenant_id, _buyers_statement())


def forget_choices() -> None:
    _kept.clear()
