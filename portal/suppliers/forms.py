from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Email, Length, Optional, Regexp


class SupplierForm(FlaskForm):
    code = StringField(
        "Supplier code",
        validators=[
            DataRequired("Enter a code."),
            Length(max=32),
            Regexp(r"^[A-Za-z0-9._-]+$", message="Use letters, digits, dot, dash or underscore."),
        ],
    )
    name = StringField("Name", validators=[DataRequired("Enter the supplier's name."), Length(max=200)])
    category = StringField("Category", validators=[Optional(), Length(max=80)])
    erp_ref = StringField("ERP reference", validators=[Optional(), Length(max=80)])
    admin_email = StringField(
        "First supplier administrator (e-mail)",
        validators=[Optional(), Length(max=254), Email("Enter a valid e-mail address.")],
        description="Optional: they get an invitation to set up the supplier's access.",
    )
