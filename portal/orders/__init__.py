"""Orders: this domain adds its models, services and views here."""


def register(app):  # type: ignore[no-untyped-def]
    """Nothing to register yet."""
