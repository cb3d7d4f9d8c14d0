"""Supplier accounts of a tenant and the supplier's own team."""


def register(app):
    from portal.suppliers import views

    app.register_blueprint(views.bp)
