"""Reads of a tenant's own set-up that many pages share."""

from __future__ import annotations

import time

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from portal.db import read_columns
from portal.tenancy.models import Warehouse

# A warehouse added (by the ERP's sync or an import) shows in the ship-to filters within this many seconds.
SHIP_TO_CHOICES_SECONDS = 60.0
_SHIP_TO = (
    select(Warehouse.id, Warehouse.name)
    .where(Warehouse.tenant_id == bindparam("tenant_id"))
    .order_by(Warehouse.name, Warehouse.id)
)
_ship_to_choices: dict[int, tuple[float, list[tuple[int, str]]]] = {}


def ship_to_choices(session: Session, tenant_id: int) -> list[tuple[int, str]]:
    """The tenant's warehouses as (id, name), by name: the choices of a ship-to filter (inbox, exceptions).

    Kept for a minute in each web process, per tenant. The inbox, the page suppliers open most, read them with
    a statement of its own on every request, though a tenant's warehouses change a few times a year."""
    now = time.monotonic()
    kept = _ship_to_choices.get(tenant_id)
    if kept is not None and now - kept[0] < SHIP_TO_CHOICES_SECONDS:
        return kept[1]
    choices = [(row.id, row.name) for row in read_columns(session, _SHIP_TO, {"tenant_id": tenant_id})]
    _ship_to_choices[tenant_id] = (now, choices)
    return choices


def forget_ship_to_choices() -> None:
    _ship_to_choices.clear()
