"""Exports that take a while (a ranking of every supplier, a PDF): made by a worker, with progress.

A person asks for an export; the page shows its progress and the download when it is ready, so
nothing blocks the page or times out. Each domain registers what it can export (``EXPORTERS``).
"""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from portal.exports import views

    views.register(app)
