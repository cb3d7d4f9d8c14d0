"""Whole numbers that people type or send: ids, page numbers, line numbers, days.

``str.isdigit()`` is true of "²" and other digits that ``int()`` refuses, and ``int()`` refuses more than 4,300
digits; an id beyond a BIGINT, or a page far past the last, breaks the statement it goes into. Read through here,
anything that is not a plain number in range is None: a clear "not found" or "not a number", never a server error.
"""

from __future__ import annotations

from collections.abc import Mapping

from portal.db import MAX_ROW_ID

MAX_POSITION = 2**31 - 1  # a line's position: an INTEGER column
MAX_PAGE = 100_000  # pages of 50 rows: far beyond any list, and an offset PostgreSQL takes
MAX_DAYS = 36_500  # a hundred years: day counts beyond that are typing errors (and overflow a date)


def whole_number(raw: object, maximum: int = MAX_ROW_ID) -> int | None:
    """``raw`` as a whole number from 0 to ``maximum`` when it is written with ASCII digits only, else None."""
    if not isinstance(raw, str) or not raw or len(raw) > 19 or not raw.isascii() or not raw.isdigit():
        return None
    value = int(raw)
    return value if value <= maximum else None


def page_number(args: Mapping[str, str]) -> int:
    """The page asked for in ``args`` (from 1; the first page for anything else)."""
    return whole_number(args.get("page", ""), MAX_PAGE) or 1
