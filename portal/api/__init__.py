"""The supplier API: a supplier's systems read their orders and answer them line by line, with API keys."""


def register(app):
    from portal.api import views

    views.register(app)
