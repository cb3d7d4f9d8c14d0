"""Purchase-order collaboration: supplier answers, tolerances, buyer review, shipping."""

# Registers the session hooks that keep each delivery's outcome current (see ``outcomes``).
from portal.orders import outcomes as outcomes


def register(app):
    from portal.orders import views

    views.register(app)
