from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import IntegerField, StringField
from wtforms.validators import InputRequired, NumberRange, ValidationError

from portal.numbers import whole_number

WEIGHTS = (("otif", "OTIF"), ("fill_rate", "Fill rate"), ("ack_rate", "Acknowledged in time"),
           ("reliability", "Promises kept"), ("documents", "Document compliance"))  # fmt: skip


class SettingsForm(FlaskForm):
    early_days = IntegerField("On time from this many days early", validators=[InputRequired(), NumberRange(0, 30)])
    late_days = IntegerField("…to this many days late", validators=[InputRequired(), NumberRange(0, 30)])
    weight_otif = IntegerField("Weight of OTIF", validators=[InputRequired(), NumberRange(0, 100)])
    weight_fill_rate = IntegerField("Weight of fill rate", validators=[InputRequired(), NumberRange(0, 100)])
    weight_ack_rate = IntegerField("Weight of acknowledged in time", validators=[InputRequired(), NumberRange(0, 100)])
    weight_reliability = IntegerField("Weight of promises kept", validators=[InputRequired(), NumberRange(0, 100)])
    weight_documents = IntegerField("Weight of document compliance", validators=[InputRequired(), NumberRange(0, 100)])
    grades = StringField(
        "Grade bands (lowest score of each, best first)",
        description="For example A=90, B=80, C=70, D=0",
        validators=[InputRequired()],
    )

    def validate_grades(self, field: Any) -> None:
        try:
            self.parsed_grades()
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc

    def validate_weight_otif(self, field: Any) -> None:
        if sum(getattr(self, f"weight_{key}").data or 0 for key, _ in WEIGHTS) <= 0:
            raise ValidationError("At least one weight must be above zero.")

    def parsed_grades(self) -> list[list[Any]]:
        bands = []
        for part in (self.grades.data or "").split(","):
            name, sep, floor = part.partition("=")
            lowest = whole_number(floor.strip(), 100)
            if not sep or not name.strip() or lowest is None:
                raise ValueError("Write each band as NAME=LOWEST SCORE (0 to 100), separated by commas.")
            bands.append([lowest, name.strip()[:8]])
        if not any(floor == 0 for floor, _ in bands):
            raise ValueError("One band must start at 0, so every score has a grade.")
        return sorted(bands, key=lambda band: -band[0])

    def load(self, settings: Any) -> None:
        self.early_days.data, self.late_days.data = settings.early_days, settings.late_days
        for key, _ in WEIGHTS:
            getattr(self, f"weight_{key}").data = int(settings.weights.get(key, 0))
        self.grades.data = ", ".join(f"{name}={floor}" for floor, name in settings.grades)

    def values(self) -> dict[str, Any]:
        return {
            "early_days": self.early_days.data,
            "late_days": self.late_days.data,
            "weights": {key: int(getattr(self, f"weight_{key}").data or 0) for key, _ in WEIGHTS},
            "grades": self.parsed_grades(),
        }
