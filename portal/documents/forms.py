from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    DateField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional


class UploadForm(FlaskForm):
    document_type_id = SelectField("Document type", coerce=int, choices=[], validate_choice=True)
    title = StringField("Title", validators=[DataRequired("Give the document a title."), Length(max=200)])
    issuer = StringField("Issued by", validators=[Optional(), Length(max=200)])
    certificate_number = StringField("Certificate number", validators=[Optional(), Length(max=80)])
    issue_date = DateField("Issue date", validators=[Optional()])
    expiry_date = DateField("Expiry date", validators=[Optional()])
    supersedes_id = HiddenField()
    file = FileField("File (PDF, PNG or JPEG, up to 10 MB)", validators=[FileRequired("Choose the file.")])


class ReviewForm(FlaskForm):
    decision = RadioField(
        "Decision",
        choices=[("approve", "Approve"), ("reject", "Reject")],
        validators=[DataRequired("Choose approve or reject.")],
    )
    valid_until = DateField("Valid until (when the document shows no expiry date)", validators=[Optional()])
    comment = TextAreaField("Comment (the supplier sees it; required to reject)", validators=[Length(max=1000)])


class DocumentTypeForm(FlaskForm):
    code = StringField("Code", validators=[DataRequired("Enter a code."), Length(max=32)])
    name = StringField("Name", validators=[DataRequired("Enter a name."), Length(max=120)])


class RequirementForm(FlaskForm):
    document_type_id = SelectField("Document type", coerce=int, choices=[], validate_choice=True)
    scope = SelectField(
        "Which suppliers",
        choices=[("all", "All suppliers"), ("category", "One supplier category"), ("suppliers", "Named suppliers")],
        validate_choice=True,
    )
    category = StringField("Category", validators=[Optional(), Length(max=80)])
    supplier_ids = SelectMultipleField("Named suppliers", coerce=int, choices=[], validate_choice=True)
    product_codes = StringField(
        "Only suppliers of these products (codes, comma-separated; optional)", validators=[Optional(), Length(max=500)]
    )
    warehouse_ids = SelectMultipleField(
        "Only suppliers shipping to these sites (optional)", coerce=int, choices=[], validate_choice=True
    )
    validity_months = IntegerField(
        "Validity in months (when a document shows no expiry)", validators=[Optional(), NumberRange(1, 120)]
    )
    reminder_days = StringField("Reminders, days before expiry", default="60,30,7", validators=[Length(max=40)])
    grace_days = IntegerField("Grace period (days)", default=0, validators=[Optional(), NumberRange(0, 365)])


class OverrideForm(FlaskForm):
    until = DateField("Allow order confirmations until", validators=[DataRequired("Choose a date.")])
    reason = StringField("Reason", validators=[DataRequired("Give a reason."), Length(max=500)])
