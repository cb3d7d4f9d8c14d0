"""Forms of sign-in, account self-service and people administration.

Forms list exactly the fields a person may set: never a tenant, a supplier
account the person does not own, or a status.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, IntegerField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import (
    DataRequired,
    Email,
    EqualTo,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)

from portal.auth.passwords import MAX_LENGTH, password_problem

_EMAIL = [DataRequired("Enter your e-mail address."), Length(max=254), Email("Enter a valid e-mail address.")]


class NewPasswordMixin:
    """A new password with confirmation, checked against the policy."""

    new_password = PasswordField(
        "New password",
        validators=[
            DataRequired("Choose a password."),
            Length(max=MAX_LENGTH, message=f"Use at most {MAX_LENGTH} characters."),
        ],
        description="At least 8 characters. A few unrelated words make a strong password.",
    )
    confirm_password = PasswordField(
        "Repeat the new password",
        validators=[DataRequired("Repeat the password."), EqualTo("new_password", "The two passwords differ.")],
    )
    policy_inputs: tuple[str, ...] = ()

    def validate_new_password(self, field: PasswordField) -> None:
        problem = password_problem(field.data or "", user_inputs=self.policy_inputs)
        if problem:
            raise ValidationError(problem)


class LoginForm(FlaskForm):
    email = StringField("E-mail", validators=_EMAIL, render_kw={"autocomplete": "username", "autofocus": True})
    password = PasswordField(
        "Password",
        validators=[DataRequired("Enter your password."), Length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )
    next = HiddenField()


class SecondFactorForm(FlaskForm):
    code = StringField(
        "Authentication code",
        validators=[
            DataRequired("Enter the 6-digit code or a recovery code."),
            Length(max=64, message="That is not a code."),
        ],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True},
        description="The 6-digit code from your authenticator app, or one of your recovery codes.",
    )


class EnrolForm(FlaskForm):
    code = StringField(
        "Code from the app",
        validators=[DataRequired("Enter the 6-digit code your app shows."), Length(max=64)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True},
    )


class ChooseContextForm(FlaskForm):
    membership_id = HiddenField(validators=[DataRequired()])


class EmptyForm(FlaskForm):
    """A form with only the CSRF token, for buttons that post."""


class AcceptNewAccountForm(NewPasswordMixin, FlaskForm):
    name = StringField("Your name", validators=[DataRequired("Enter your name."), Length(max=200)])


class ChangePasswordForm(NewPasswordMixin, FlaskForm):
    current_password = PasswordField(
        "Current password", validators=[DataRequired("Enter your current password."), Length(max=1024)]
    )


class ReauthenticateForm(FlaskForm):
    password = PasswordField("Password", validators=[DataRequired("Enter your password."), Length(max=1024)])
    code = StringField(
        "Authentication code or recovery code",
        validators=[DataRequired("Enter a code."), Length(max=64, message="That is not a code.")],
        render_kw={"autocomplete": "one-time-code"},
    )


class PasswordOnlyForm(FlaskForm):
    password = PasswordField("Password", validators=[DataRequired("Enter your password."), Length(max=1024)])


class InviteForm(FlaskForm):
    email = StringField("E-mail", validators=_EMAIL)
    role = SelectField("Role", choices=[], validate_choice=True)


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=[], validate_choice=True)


class ReasonForm(FlaskForm):
    reason = TextAreaField("Reason", validators=[DataRequired("Give a reason."), Length(max=500)])


class OptionalReasonForm(FlaskForm):
    reason = TextAreaField("Reason", validators=[Optional(), Length(max=500)])


class ForgotPasswordForm(FlaskForm):
    email = StringField("E-mail", validators=_EMAIL, render_kw={"autocomplete": "username", "autofocus": True})


class ResetPasswordForm(NewPasswordMixin, FlaskForm):
    code = StringField(
        "Authentication code or recovery code",
        validators=[Optional(), Length(max=64, message="That is not a code.")],
        render_kw={"autocomplete": "one-time-code"},
        description="A reset never skips two-factor authentication.",
    )


class TenantSettingsForm(FlaskForm):
    name = StringField("Organisation name", validators=[DataRequired("Enter the name."), Length(max=200)])
    mfa_policy = SelectField(
        "Two-factor authentication",
        choices=[
            ("required_for_all", "Required for everybody (recommended)"),
            ("required_for_suppliers_and_admins", "Required for supplier users and administrators only"),
        ],
        validate_choice=True,
    )
    document_gating = SelectField(
        "When a supplier's required documents are missing or expired",
        choices=[
            ("off", "Let them confirm orders"),
            ("warn", "Warn them when they confirm orders"),
            ("block", "Block their order confirmations (a buyer can override)"),
        ],
        validate_choice=True,
    )
    unconfirmed_after_days = IntegerField(
        "Unconfirmed after (days)",
        validators=[InputRequired("Enter a number of days."), NumberRange(1, 90, "Between 1 and 90 days.")],
        description="An order line still unanswered this many days after the order date is an exception.",
    )
    remind_unconfirmed = SelectField(
        "When an order becomes unconfirmed",
        choices=[
            ("on", "Remind the supplier, by e-mail and in the portal"),
            ("off", "Do not remind the supplier (buyers can from the response queue)"),
        ],
        validate_choice=True,
    )
    reminder_repeat_days = SelectField(
        "While the order stays unanswered",
        choices=[
            (0, "Do not repeat the reminder"),
            (2, "Repeat it every 2 days"),
            (3, "Repeat it every 3 days"),
            (7, "Repeat it every week"),
        ],
        coerce=int,
        validate_choice=True,
    )
    reminder_limit = SelectField(
        "Stop repeating it after",
        choices=[(n, f"{n} reminders of the order") for n in (2, 3, 5, 10)],
        coerce=int,
        validate_choice=True,
        description="A buyer's reminders count too; a buyer can still remind the supplier after that.",
    )
