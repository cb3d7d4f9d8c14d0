"""ERP connectors (Odoo, Tryton), intake, the commitment push and its administration."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from portal.erp import views

    views.register(app)
