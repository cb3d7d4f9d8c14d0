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


def price(value: Any, grouping: bool = True) -> str:
    """A unit price with thousands separators and at least two decimals, more when it has them: 14.50, 0.0125,
    1,234.50 (the ``price`` filter; a price per piece of a small part often needs four decimals). Without
    ``grouping`` (a form's example value), no thousands separators: 1234.50, as the field reads it."""
    number = Decimal(str(value)).normalize()
    exponent = number.as_tuple().exponent  # an int for every finite number: -4 for 0.0125
    decimals = max(2, -exponent) if isinstance(exponent, int) else 2
    return f"{number:{',' if grouping else ''}.{decimals}f}"


def noun(count: int, one: str, many: str) -> str:
    """The words for ``count`` things: ``one`` for exactly one, ``many`` otherwise (0 included)."""
    return one if count == 1 else many


def counted(count: int, one: str, many: str) -> str:
    """A count and its noun in the singular or the plural: "1 delivery", "0 deliveries", "1,204 deliveries"
    (the ``counted`` filter: ``{{ n | counted("delivery", "deliveries") }}``)."""
    return f"{count:,} {noun(count, one, many)}"
