"""Compliance documents: requirements, supplier uploads, review, expiry."""


def register(app):
    from portal.documents import views

    views.register(app)
