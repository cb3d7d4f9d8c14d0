"""Notifications: the in-app centre, e-mail (immediately or as a daily digest) and webhooks."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from portal.notifications import views

    views.register(app)
