from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, SelectField, StringField
from wtforms.validators import URL, DataRequired, Length, Optional

from portal.erp.models import ErpKind


class ConnectionForm(FlaskForm):
    kind = SelectField("ERP", choices=[(k.value, k.label) for k in ErpKind], validators=[DataRequired()])
    url = StringField(
        "Address",
        description="For example https://erp.example.com (Odoo) or http://tryton.internal:8000 (Tryton).",
        validators=[
            DataRequired("Enter the ERP's address."),
            URL(require_tld=False, message="Enter a full address."),
            Length(max=500),
        ],
    )
    database = StringField("Database", validators=[DataRequired("Enter the database name."), Length(max=120)])
    login = StringField(
        "User", validators=[DataRequired("Enter the ERP user the portal signs in as."), Length(max=254)]
    )
    secret = PasswordField(
        "Password or API key",
        description="Stored encrypted. Leave empty to keep the one stored.",
        validators=[Optional(), Length(max=500)],
    )
    active = BooleanField("Sync with this ERP", default=True)


class ActionForm(FlaskForm):
    """A CSRF-protected button."""
