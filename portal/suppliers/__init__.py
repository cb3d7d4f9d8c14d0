"""Supplier accounts of a tenant and the supplier's own team."""


def register(app):  # type: ignore[no-untyped-def]
    from portal.suppliers import views

    app.register_blueprint(views.bp)
