"""Orders: this domain adds its models, services and views here."""


def register(app):
    """Nothing to register yet."""
