"""Small value formatters shared by templates and views."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def quantity(value: Any) -> str:
    """90 rather than 90.000, 95.5 rather than 95.500, without exponent notation (the ``qty`` filter)."""
    number = Decimal(str(value)).normalize()
    return f"{number:f}"


def money(value: Any) -> str:
    """An amount with thousands separators and two decimals: 12,543.00 (the ``money`` filter)."""
    return f"{value:,.2f}"


def noun(count: int, one: str, many: str) -> str:
    """The words for ``count`` things: ``one`` for exactly one, ``many`` otherwise (0 included)."""
    return one if count == 1 else many


def counted(count: int, one: str, many: str) -> str:
    """A count and its noun in the singular or the plural: "1 delivery", "0 deliveries", "1,204 deliveries"
    (the ``counted`` filter: ``{{ n | counted("delivery", "deliveries") }}``)."""
    return f"{count:,} {noun(count, one, many)}"
