"""Supplier scorecards: published definitions, figures computed in SQL, the lines behind them."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from portal.scorecards import exports, views

    views.register(app)
    del exports  # imported for its exporters (the ranking and a card, as CSV or PDF)
