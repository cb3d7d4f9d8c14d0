"""The scorecard's definitions, published to suppliers and buyers (the page and the README).

Each change of a definition gets a new version; figures are always shown with the
version they were computed by.
"""

from __future__ import annotations

from dataclasses import dataclass

VERSION = 5
# What each version changed (older snapshots keep the version they were computed by):
CHANGES = {
    1: "First published definitions.",
    2: "Adds the median notice given before a changed promise; closed periods store the median time to respond.",
    3: "Means, medians and the overall score are rounded to one decimal with halves away from zero (0.35 "
    "becomes 0.4 and 0.25 becomes 0.3; version 2 could round such halves down).",
    4: "A document requirement counts from the day it was set: a period that ended before it has no data for "
    "it (version 3 counted it in every period, so a new requirement lowered the months before it).",
    5: "The overall score needs figures with data carrying at least half of the weights: a supplier with no "
    "delivery in the period is no longer scored and graded on its documents alone (version 4 gave one with "
    "its certificates missing 0.0, a D).",
}

# The tenant's window around a promised date in which an arrival is on time (days).
DEFAULT_EARLY_DAYS = 2
DEFAULT_LATE_DAYS = 0


@dataclass(frozen=True)
class Definition:
    key: str
    name: str
    text: str


DEFINITIONS: tuple[Definition, ...] = (
    Definition(
        "deliveries",
        "Deliveries counted",
        "A delivery is one dated promise of a line (a split line has several). Receipts of the line are set "
        "against its deliveries in promise-date order. A delivery counts in the period of its promised date "
        "once it is complete or its on-time window has closed; until then it is open and counts nowhere. Of a "
        "cancelled line only what was received counts: the cancelled remainder is neither late nor short.",
    ),
    Definition(
        "on_time",
        "On time",
        "Share of counted deliveries whose first goods arrived within the window: from `early` days before to "
        "`late` days after the promised date (tenant settings). Goods before the window are early, not on "
        "time; a delivery that has received nothing is not on time.",
    ),
    Definition(
        "in_full",
        "In full",
        "Share of counted deliveries received in full (the committed quantity, at any date). Over-delivery "
        "does not make up for another delivery.",
    ),
    Definition(
        "otif",
        "On time in full (OTIF)",
        "Share of counted deliveries whose whole quantity arrived within the window.",
    ),
    Definition(
        "fill_rate",
        "Fill rate",
        "Quantity received divided by quantity committed over the counted deliveries, each delivery capped at "
        "its committed quantity (over-delivery never lifts the rate above 100%).",
    ),
    Definition(
        "ack_rate",
        "Acknowledged in time",
        "Share of the orders placed in the period that the supplier answered within the tenant's "
        "'unconfirmed after' days. Orders still unanswered count as not acknowledged.",
    ),
    Definition(
        "ack_hours",
        "Median time to respond",
        "Median hours from an order's arrival in the portal to the supplier's first answer, over the orders "
        "placed in the period that were answered.",
    ),
)

DEFINITIONS += (
    Definition(
        "promise_kept",
        "Promises kept",
        "Share of counted deliveries whose promised date never changed after the supplier confirmed it "
        "(the ledger's first promise against the current one).",
    ),
    Definition(
        "slip_days",
        "Mean slip",
        "Over the counted deliveries whose promise changed: the mean number of days between the first "
        "promise and the last (negative when moved earlier).",
    ),
    Definition(
        "notice_days",
        "Median notice",
        "Over the deliveries promised in the period whose date was changed after the first answer (counted "
        "or not yet due alike, since the notice was given either way): the median number of days from the "
        "day of the latest date change to the date it replaced. Negative when the supplier moved a promise "
        "that had already passed.",
    ),
    Definition(
        "lead_error_days",
        "Lead-time error",
        "Over the counted deliveries received in full: the mean number of days, either way, between the "
        "promised date and the day the delivery was complete (the promised against the actual lead time).",
    ),
    Definition(
        "documents",
        "Document compliance",
        "Share of the documents required of the supplier (the tenant's requirements that apply to it and were "
        "set by the period's last day) that were approved and unexpired on that day; with none required, no "
        "data.",
    ),
    Definition(
        "score",
        "Overall score and grade",
        "The weighted mean of OTIF, fill rate, acknowledged in time, promises kept and document compliance, "
        "with the tenant's weights (by default 40, 20, 15, 15 and 10); a figure with no data leaves its "
        "weight out. When the figures with data carry less than half of the weights (a supplier with no "
        "delivery counted in the period, say), the score is no data and there is no grade. The grade is the "
        "first band the score reaches (by default A from 90, B from 80, C from 70, else D).",
    ),
    Definition(
        "rounding",
        "Rounding",
        "Shares are kept as computed and shown rounded. Means, medians and the overall score are rounded to "
        "one decimal, halves away from zero (2.25 days becomes 2.3, -2.25 becomes -2.3); the grade is the band "
        "of the rounded score (89.95 rounds to 90.0, an A).",
    ),
)

NO_DATA = "no data"
