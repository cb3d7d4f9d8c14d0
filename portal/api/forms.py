from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectField, SelectMultipleField, StringField, widgets
from wtforms.validators import DataRequired, Length

from portal.api.services import DEFAULT_LIFETIME, LIFETIMES
from portal.notifications.forms import WebhookForm
from portal.notifications.services import SUPPLIER_WEBHOOK_TOPICS


class ApiKeyForm(FlaskForm):
    name = StringField(
        "Name",
        description="The system that will use the key, e.g. “ERP order confirmations”.",
        validators=[DataRequired("Name the key after the system that will use it."), Length(max=100)],
    )
    days = SelectField(
        "Valid for",
        choices=[(str(days), f"{days} days") for days in LIFETIMES],
        default=str(DEFAULT_LIFETIME),
    )


class ActionForm(FlaskForm):
    """A button's form: only its CSRF token."""


class SupplierWebhookForm(WebhookForm):
    """A supplier account's webhook: the topics about its own orders and certificates."""

    topics = SelectMultipleField(
        "Events (none ticked: all)",
        choices=[(t, t) for t in SUPPLIER_WEBHOOK_TOPICS],
        option_widget=widgets.CheckboxInput(),
        widget=widgets.ListWidget(prefix_label=False),
    )
