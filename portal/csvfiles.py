"""CSV files the portal hands out, safe to open in a spreadsheet.

A cell that starts with ``=``, ``+``, ``-`` or ``@`` is a formula to Excel, LibreOffice and Google Sheets:
a supplier's name or an actor's label such as ``=HYPERLINK(...)`` would run when an auditor opens the file.
Such text cells get a leading apostrophe, which spreadsheets show as text (OWASP's advice on CSV injection).
Numbers are left alone: a negative figure stays a number.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value``, with a leading apostrophe when it is text a spreadsheet would read as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def cell_text(value: str) -> str:
    """The text ``safe_cell`` made safe, as it was: a file the portal handed out comes back (the spreadsheet round
    trip) with its order numbers and names as the portal stores them."""
    if value.startswith("'") and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


def csv_bytes(header: list[str], rows: Iterable[Iterable[Any]]) -> bytes:
    """UTF-8 CSV of ``header`` and ``rows``, every text cell made safe."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow([safe_cell(value) for value in row])
    return out.getvalue().encode()
