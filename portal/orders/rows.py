"""The inbox's table rows and the answer form's delivery inputs, made in Python rather than in Jinja.

The inbox is the page people open most. Made in Jinja, each of its 50 rows cost ten escaped expressions, ten
attribute reads and a call: about half a millisecond of the page's CPU, as much as the two queries behind it.
Made here, the same markup takes less than half of that (``bench/orders.py`` measures the page under load).
The order page's answer form offers each line awaiting an answer ten delivery rows (quantity and date): for
twenty lines, 200 rows and about 2,000 escaped expressions, the largest part of that page's rendering.

Every text that comes from the database (order number, names, currency) goes through ``markupsafe.escape``,
the function Jinja's autoescaping calls, as does every value a supplier typed into a form sent back; dates and
amounts are formatted here and contain no markup. ``tests/test_orders_views.py`` renders rows with markup in
every text field and compares this output with the same rows written as a Jinja template.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from markupsafe import Markup, escape

from portal.formatting import money
from portal.orders.models import OrderState

_NONE = "—"
# One badge per state, escaped once.
_STATE_BADGES = {
    state: Markup('<span class="state {}">{}</span>').format(state.value, state.label) for state in OrderState
}
_ID_MARKER = 987_654_321_012_345


def inbox_rows(rows: Iterable[Any], order_url: Callable[[int], str], *, show_supplier: bool) -> Markup:
    """The ``<tr>`` elements of the inbox table for ``rows`` (as ``queries.inbox`` reads them)."""
    # The link differs only by the order id (an integer): its two ends are escaped once.
    link_head, _, link_tail = str(escape(order_url(_ID_MARKER))).partition(str(_ID_MARKER))
    badges = _STATE_BADGES
    # Names repeat from row to row (a handful of warehouses, buyers, currencies): each is escaped once.
    names: dict[str | None, str] = {None: _NONE}
    made = []
    for o in rows:
        warehouse = names.get(o.warehouse) or names.setdefault(o.warehouse, str(escape(o.warehouse)))
        buyer = names.get(o.buyer) or names.setdefault(o.buyer, str(escape(o.buyer)))
        currency = names.get(o.currency) or names.setdefault(o.currency, str(escape(o.currency)))
        if show_supplier:
            supplier = f"<td>{names.get(o.supplier) or names.setdefault(o.supplier, str(escape(o.supplier)))}</td>"
        else:
            supplier = ""
        made.append(
            f'<tr><td><a href="{link_head}{int(o.id)}{link_tail}">{escape(o.number)}</a></td>{supplier}'
            f"<td>{o.order_date}</td><td>{o.due_date or _NONE}</td><td>{warehouse}</td>"
            f"<td>{buyer}</td><td>{badges[o.state]}</td>"
            f'<td class="num">{money(o.total_value)} {currency}</td></tr>'
        )
    # Safe: every text above went through escape(); the rest is markup written here, numbers and dates.
    return Markup("\n".join(made))  # noqa: S704


def delivery_inputs(line_id: int, rows: Iterable[tuple[int, str, str, bool]]) -> Markup:
    """The ``<tr>`` elements of one line's delivery inputs in the answer form, for ``rows`` as
    ``forms.delivery_rows`` gives them: (number, quantity, date, hidden until "Add a delivery")."""
    prefix = f"line-{int(line_id)}"
    made = []
    for number, quantity, day, hidden in rows:
        n = int(number)
        more = ' class="more"' if hidden else ""
        made.append(
            f"<tr{more}><td>{n}</td>"
            f'<td><input name="{prefix}-qty-{n}" inputmode="decimal" aria-label="Delivery {n} quantity" '
            f'value="{escape(quantity)}"></td>'
            f'<td><input type="date" name="{prefix}-date-{n}" aria-label="Delivery {n} date" '
            f'value="{escape(day)}"></td></tr>'
        )
    # Safe: the typed values went through escape(); the rest is markup written here and integers.
    return Markup("\n".join(made))  # noqa: S704
