"""Reading the order forms.

The answer form has a variable number of fields (each line, up to 10 deliveries
per line), so it is parsed here rather than declared with WTForms; CSRF is still
checked for it by the app-wide CSRFProtect. Parsing collects every error per
line and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import DateField, DecimalField, IntegerField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from portal.formatting import quantity
from portal.numbers import whole_number
from portal.orders.models import DelayReason, LineState, PurchaseOrderLine, RejectReason
from portal.orders.services import MAX_DELIVERIES, Delivery, LineAnswer

ANSWER_ACTIONS = ("accept", "change", "reject")
# Delivery rows shown before the supplier asks for more (the rest stay hidden until then, or while empty).
SHOWN_DELIVERIES = 3


def delivery_rows(line: PurchaseOrderLine, values: Mapping[str, str], count: int) -> list[tuple[int, str, str, bool]]:
    """The answer form's delivery inputs of a line: (number, quantity, date, hidden). A fresh form offers the
    requested quantity and date in the first row; a form sent back shows what was typed. Computed here
    rather than in the template: twenty lines of ten rows each made a fifth of the order page's time."""
    if not values:
        first = (1, quantity(line.quantity), str(line.requested_date), False)
        return [first, *((n, "", "", n > SHOWN_DELIVERIES) for n in range(2, count + 1))]
    prefix = f"line-{line.id}"
    rows = []
    for n in range(1, count + 1):
        typed = values.get(f"{prefix}-qty-{n}", "")
        rows.append((n, typed, values.get(f"{prefix}-date-{n}", ""), n > SHOWN_DELIVERIES and not typed))
    return rows


def parse_quantity(raw: str) -> Decimal | None:
    try:
        value = Decimal(raw.strip().replace(",", "."))
    except (InvalidOperation, AttributeError):
        return None
    return value if value.is_finite() and abs(value) < Decimal("1e10") else None


def int_arg(args: Mapping[str, str], name: str) -> int | None:
    """A query argument that must be a whole number (an id, a page): None when absent or anything else."""
    return whole_number(args.get(name, ""))


def parse_date(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        return None


def parse_deliveries(form: Mapping[str, str], prefix: str) -> tuple[tuple[Delivery, ...], list[str]]:
    deliveries, errors = [], []
    for n in range(1, MAX_DELIVERIES + 1):
        raw_qty = form.get(f"{prefix}-qty-{n}", "").strip()
        raw_date = form.get(f"{prefix}-date-{n}", "").strip()
        if not raw_qty and not raw_date:
            continue
        quantity, when = parse_quantity(raw_qty), parse_date(raw_date)
        if quantity is None:
            errors.append(f"Delivery {n}: enter the quantity as a number.")
        if when is None:
            errors.append(f"Delivery {n}: enter the date as YYYY-MM-DD.")
        if quantity is not None and when is not None:
            deliveries.append(Delivery(quantity, when))
    return tuple(deliveries), errors


def deliveries_edited(form: Mapping[str, str], line: PurchaseOrderLine) -> bool:
    """Whether the line's delivery rows say anything but what the fresh form offers: the requested quantity on
    the requested date in the first row, the others empty."""
    prefix = f"line-{line.id}"
    # A field the form did not send (a client posting only its answers) was not edited.
    first_qty, first_date = form.get(f"{prefix}-qty-1"), form.get(f"{prefix}-date-1")
    if first_qty is not None and parse_quantity(first_qty) != line.quantity:
        return True
    if first_date is not None and parse_date(first_date) != line.requested_date:
        return True
    return any(
        form.get(f"{prefix}-qty-{n}", "").strip() or form.get(f"{prefix}-date-{n}", "").strip()
        for n in range(2, MAX_DELIVERIES + 1)
    )


def _filled_in_but_unanswered(form: Mapping[str, str], line: PurchaseOrderLine) -> bool:
    """A line left on "Answer later" with something typed or chosen in it (a person who changed a quantity and
    forgot the choice above it would otherwise lose the change without a word)."""
    prefix = f"line-{line.id}"
    price = form.get(f"{prefix}-price", "").strip()
    return (
        deliveries_edited(form, line)
        or bool(price and parse_quantity(price) != line.unit_price)
        or bool(form.get(f"{prefix}-reason", ""))
        or bool(form.get(f"{prefix}-comment", "").strip())
    )


UNANSWERED_BUT_FILLED_IN = (
    "You filled in this line but left it on “Answer later”: choose Accept, Change or Reject to send it, "
    "or clear what you typed to answer it later."
)
ACCEPTED_BUT_CHANGED = (
    "You changed the deliveries but chose Accept, which confirms the request as it is: choose “Change "
    "quantity, date or split” to send your deliveries."
)


def parse_answers(
    form: Mapping[str, str], lines: list[PurchaseOrderLine]
) -> tuple[list[LineAnswer], dict[int, list[str]]]:
    """The answers chosen on the form, and the problems of each line (by line id). A line left on "Answer later"
    is skipped, unless something was typed in it: then it is a problem too, so that nothing typed is dropped."""
    answers: list[LineAnswer] = []
    errors: dict[int, list[str]] = {}
    for line in lines:
        if line.state != LineState.AWAITING_RESPONSE:
            continue
        prefix = f"line-{line.id}"
        action = form.get(f"{prefix}-action", "")
        if not action:
            if _filled_in_but_unanswered(form, line):
                errors[line.id] = [UNANSWERED_BUT_FILLED_IN]
            continue
        if action not in ANSWER_ACTIONS:
            errors[line.id] = ["Choose accept, change or reject."]
            continue
        problems: list[str] = []
        deliveries: tuple[Delivery, ...] = ()
        if action == "change":
            deliveries, problems = parse_deliveries(form, prefix)
        elif action == "accept" and deliveries_edited(form, line):
            problems.append(ACCEPTED_BUT_CHANGED)
        price = None
        raw_price = form.get(f"{prefix}-price", "").strip()
        if raw_price and action != "reject":
            price = parse_quantity(raw_price)
            if price is None:
                problems.append("Enter the price as a number.")
            elif price == line.unit_price:
                price = None
        reason = form.get(f"{prefix}-reason", "")
        if action == "reject" and reason not in {r.value for r in RejectReason}:
            problems.append("Choose why you reject this line.")
            reason = ""
        comment = form.get(f"{prefix}-comment", "").strip()[:2000]
        if problems:
            errors[line.id] = problems
            continue
        answers.append(LineAnswer(line.id, action, deliveries, price, reason if action == "reject" else "", comment))  # type: ignore[arg-type]
    return answers, errors


def parse_version(form: Mapping[str, str]) -> int | None:
    return whole_number(form.get("version", ""))


def parse_delay_reason(raw: str) -> str:
    return raw if raw in {r.value for r in DelayReason} else ""


class ShipNoticeForm(FlaskForm):
    # Most notices are sent the day the goods leave.
    ship_date = DateField("Ship date", default=date.today, validators=[DataRequired("Enter the ship date.")])
    expected_arrival = DateField("Expected arrival", validators=[DataRequired("Enter the expected arrival.")])
    carrier = StringField("Carrier", validators=[Optional(), Length(max=120)])
    tracking_number = StringField("Tracking number", validators=[Optional(), Length(max=120)])
    packing_slip = StringField("Packing slip", validators=[Optional(), Length(max=120)])


class MessageForm(FlaskForm):
    # Empty when files are attached (the service asks for one or the other).
    body = TextAreaField("Message", validators=[Length(max=4000)])


class ImportForm(FlaskForm):
    file = FileField("CSV file", validators=[FileRequired("Choose a CSV file.")])


class SpreadsheetUploadForm(FlaskForm):
    """The supplier's filled-in open lines: the workbook or the CSV it downloaded (told apart by content)."""

    file = FileField("Spreadsheet (XLSX or CSV)", validators=[FileRequired("Choose the XLSX or CSV file.")])


class ToleranceForm(FlaskForm):
    quantity_under_pct = DecimalField("Quantity under (%)", places=2, validators=[InputRequired(), NumberRange(0, 100)])
    quantity_over_pct = DecimalField("Quantity over (%)", places=2, validators=[InputRequired(), NumberRange(0, 100)])
    days_earlier = IntegerField("Days earlier", validators=[InputRequired(), NumberRange(0, 365)])
    days_later = IntegerField("Days later", validators=[InputRequired(), NumberRange(0, 365)])
    price_pct = DecimalField(
        "Price (%)",
        places=2,
        validators=[InputRequired(), NumberRange(0, 100)],
        description="Shown to buyers; price changes always wait for the buyer.",
    )


class ReceiptForm(FlaskForm):
    quantity = DecimalField("Received quantity", validators=[InputRequired(), NumberRange(min=0.001)])
    received_on = DateField("Received on", validators=[DataRequired()])
    # The notice the goods came with: its number, scanned or typed from the packing slip (optional).
    ship_notice = StringField(
        "Ship notice",
        validators=[Optional(), Length(max=120, message="A ship notice number is at most 120 characters.")],
    )


class ShipmentReceiptForm(FlaskForm):
    """A whole ship notice received (the receiving team, its packing slip in hand)."""

    received_on = DateField("Received on", validators=[InputRequired("Enter the day the goods arrived.")])


class ReasonForm(FlaskForm):
    reason = StringField("Reason", validators=[DataRequired("Give a reason."), Length(max=500)])


class RevisionForm(FlaskForm):
    """The buyer's new terms for a line (a change order); the unit price is the ERP's for a line from the ERP."""

    quantity = DecimalField(
        "Quantity",
        validators=[
            InputRequired("Enter the quantity."),
            NumberRange(min=0.001, message="Enter a quantity above zero."),
        ],
    )
    requested_date = DateField("Requested date", validators=[InputRequired("Enter the requested date.")])
    unit_price = DecimalField(
        "Unit price", validators=[Optional(), NumberRange(min=0.0001, message="Enter a unit price above zero.")]
    )
    comment = StringField("Comment for the supplier", validators=[Length(max=2000)])
