from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField
from wtforms.validators import DataRequired

KINDS = {
    "scorecards.ranking_csv": "Supplier ranking (CSV)",
    "scorecards.card_csv": "Scorecard with every delivery (CSV)",
    "scorecards.card_pdf": "Scorecard (PDF)",
}


class ExportForm(FlaskForm):
    kind = SelectField("Export", choices=list(KINDS.items()), validators=[DataRequired()])
    period = HiddenField()
    at = HiddenField()
    sort = HiddenField()
    category = HiddenField()
    company = HiddenField()
    supplier_id = HiddenField()
