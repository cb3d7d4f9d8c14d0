from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import RadioField, SelectMultipleField, StringField, widgets
from wtforms.validators import URL, DataRequired, Length

from portal.notifications.models import EmailMode
from portal.notifications.services import WEBHOOK_TOPICS


class EmailModeForm(FlaskForm):
    email_mode = RadioField(
        "Notification e-mails",
        choices=[(m.value, m.label) for m in EmailMode],
        validators=[DataRequired("Choose how you want to be told.")],
    )


class WebhookForm(FlaskForm):
    url = StringField(
        "Endpoint URL",
        validators=[
            DataRequired("Enter the URL to call."),
            URL(require_tld=False, message="Enter a full URL."),
            Length(max=500),
        ],
    )
    description = StringField("Description", validators=[Length(max=200)])
    topics = SelectMultipleField(
        "Events (none ticked: all)",
        choices=[(t, t) for t in WEBHOOK_TOPICS],
        option_widget=widgets.CheckboxInput(),
        widget=widgets.ListWidget(prefix_label=False),
    )


class ActionForm(FlaskForm):
    """A CSRF-protected button."""
