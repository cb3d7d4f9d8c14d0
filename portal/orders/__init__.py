"""Purchase-order collaboration: supplier answers, tolerances, buyer review, shipping."""


def register(app):
    from portal.orders import views

    views.register(app)
