"""Scorecard figures against hand-computed fixtures, on PostgreSQL and on SQLite.

January 2026, on-time window 2 days early to 0 days late, measured on 15 February:

| line | committed | promised | receipts | on time | in full | OTIF | delivered |
|---|---|---|---|---|---|---|---|
| A | 100 | 10 Jan | 100 on 10 Jan | yes | yes | yes | 100 |
| B, first of a split | 60 | 12 Jan | 60 on 13 Jan | no (1 day late) | yes | no | 60 |
| B, second | 40 | 20 Jan | 40 on 19 Jan | yes (1 day early) | yes | yes | 40 |
| C (first promised 12 Jan) | 50 | 15 Jan | 30 on 15 Jan | yes | no | no | 30 |
| D, cancelled after 10 | 10 of 40 | 25 Jan | 10 on 25 Jan | yes | yes | yes | 10 |
| E, over-delivered early | 20 | 5 Jan | 25 on 1 Jan | no (4 days early) | yes | no | 20 (capped) |
| F | 10 | 20 Feb | — | outside the period | | | |
| G, cancelled, nothing received | 0 of 10 | 8 Jan | — | not counted | | | |

Six deliveries counted: on time 4/6, in full 5/6, OTIF 3/6, fill rate 260/280; promises kept 5/6
(C slipped 3 days); lead-time error over the five complete deliveries (0 + 1 + 1 + 0 + 4) / 5 = 1.2
days; no documents required (no data). Overall score with the default weights, leaving out documents:
(50 x 40 + 92.86 x 20 + 33.33 x 15 + 83.33 x 15) / 90 = 62.3, grade D.
Orders placed in January: answered after 1 day, after 5 days, never: 1 of 3 in time (3 days);
median time to respond 72 h.
"""

from __future__ import annotations

import re
import statistics
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import ARRAY, Numeric, cast, event, func, select, text
from sqlalchemy.orm import Session

from portal.db import set_context
from portal.orders.models import DeliverySchedule, LineState, PurchaseOrder, PurchaseOrderLine, Receipt, Source
from portal.scorecards import services
from portal.scorecards.services import Window, month_window, quarter_window
from portal.suppliers.models import Supplier
from portal.tenancy.models import Company, Tenant, Warehouse
from tests.conftest import tenant_session
from tests.factories import make_order

JAN = Window(date(2026, 1, 1), date(2026, 2, 1), early_days=2, late_days=0, today=date(2026, 2, 15))
D = Decimal


def build(session: Session) -> dict[str, int]:
    tenant = Tenant(name="Scorecard Co", slug=f"scorecard-{uuid.uuid4().hex[:12]}")
    session.add(tenant)
    session.flush()
    set_context(session, tenant_id=tenant.id)
    company = Company(tenant_id=tenant.id, code="C", name="C")
    session.add(company)
    session.flush()
    warehouse = Warehouse(tenant_id=tenant.id, company_id=company.id, code="W", name="W")
    acme = Supplier(tenant_id=tenant.id, code="ACME", name="Acme")
    quiet = Supplier(tenant_id=tenant.id, code="QUIET", name="Quiet Ltd")
    session.add_all([warehouse, acme, quiet])
    session.flush()

    def order(number: str, answered_after_days: int | None) -> PurchaseOrder:
        created = datetime(2026, 1, 2, tzinfo=UTC)
        po = PurchaseOrder(
            tenant_id=tenant.id, company_id=company.id, warehouse_id=warehouse.id, supplier_id=acme.id,
            number=number, order_date=date(2026, 1, 2), created_at=created,
            responded_at=None if answered_after_days is None else created.replace(day=2 + answered_after_days),
        )  # fmt: skip
        session.add(po)
        session.flush()
        return po

    def line(po: PurchaseOrder, position: int, qty: str, state: LineState, deliveries, receipts):  # type: ignore[no-untyped-def]
        item = PurchaseOrderLine(
            tenant_id=tenant.id, order_id=po.id, supplier_id=acme.id, position=position, product_code=f"P{position}",
            product_name="p", quantity=D(qty), unit_price=D("1"), requested_date=date(2026, 1, 10), state=state,
            received_quantity=sum((D(q) for q, _ in receipts), D("0")),
        )  # fmt: skip
        session.add(item)
        session.flush()
        for index, (q, day, *first) in enumerate(deliveries, start=1):
            session.add(
                DeliverySchedule(tenant_id=tenant.id, line_id=item.id, supplier_id=acme.id, position=index,
                                 quantity=D(q), promised_date=day, first_promised_date=first[0] if first else day,
                                 notice_days=first[1] if len(first) > 1 else None)
            )  # fmt: skip
        for q, day in receipts:
            session.add(Receipt(tenant_id=tenant.id, line_id=item.id, quantity=D(q), received_on=day,
                                source=Source.ERP))  # fmt: skip
        session.flush()

    j = lambda day: date(2026, 1, day)  # noqa: E731
    first, second, third = order("PO-1", 1), order("PO-2", 5), order("PO-3", None)
    line(first, 1, "100", LineState.RECEIVED, [("100", j(10))], [("100", j(10))])
    line(first, 2, "100", LineState.RECEIVED, [("60", j(12)), ("40", j(20))], [("60", j(13)), ("40", j(19))])
    # C moved from 12 to 15 Jan, announced 5 days before the 12th.
    line(first, 3, "50", LineState.PARTIALLY_RECEIVED, [("50", j(15), j(12), 5)], [("30", j(15))])
    line(second, 1, "40", LineState.CANCELLED, [("40", j(25))], [("10", j(25))])
    line(second, 2, "20", LineState.RECEIVED, [("20", j(5))], [("25", j(1))])
    line(third, 1, "10", LineState.CONFIRMED, [("10", date(2026, 2, 20))], [])
    line(third, 2, "10", LineState.CANCELLED, [("10", j(8))], [])
    return {"tenant_id": tenant.id, "acme": acme.id, "quiet": quiet.id}


def check(session: Session, ids: dict[str, int]) -> None:
    figures = services.figures(session, tenant_id=ids["tenant_id"], window=JAN, supplier_id=ids["acme"])[ids["acme"]]
    assert figures.deliveries == 6
    assert figures.on_time == pytest.approx(400 / 6)
    assert figures.in_full == pytest.approx(500 / 6)
    assert figures.otif == pytest.approx(50.0)
    assert figures.fill_rate == pytest.approx(26000 / 280)
    assert figures.orders == 3 and figures.ack_rate == pytest.approx(100 / 3)
    assert figures.ack_hours == 72.0
    assert figures.promise_kept == pytest.approx(500 / 6) and figures.slip_days == 3.0
    assert figures.notice_days == 5.0
    assert figures.lead_error_days == 1.2
    assert figures.documents is None  # the tenant requires no documents: no data
    assert figures.score == 62.3 and figures.grade == "D"
    # The page's single pass (figures as window totals over a page of evidence) gives the same figures.
    live, page = services.live_card(session, tenant_id=ids["tenant_id"], window=JAN, supplier_id=ids["acme"], limit=2)
    assert live.as_dict() == pytest.approx(figures.as_dict())
    assert len(page) == 2 and page[0].listed == 7 and not page[0].otif and page[0].counted  # misses lead
    everyone = services.figures(session, tenant_id=ids["tenant_id"], window=JAN)
    assert everyone[ids["acme"]].otif == figures.otif  # the same figure from the all-supplier GROUP BY
    assert ids["quiet"] not in everyone  # nothing at all: no row, shown as "no data"
    ranking = services.ranking_page(session, tenant_id=ids["tenant_id"], window=JAN, sort="otif")[0]
    assert [(s.name, f.otif) for s, f in ranking] == [("Acme", pytest.approx(50.0)), ("Quiet Ltd", None)]

    rows = services.evidence(session, tenant_id=ids["tenant_id"], window=JAN, supplier_id=ids["acme"])
    judged = [(r.quantity, r.promised_date.day, r.counted, r.on_time, r.in_full, r.otif) for r in rows]
    assert judged == [
        (D("20"), 5, True, False, True, False),
        (D("0"), 8, False, False, False, False),
        (D("100"), 10, True, True, True, True),
        (D("60"), 12, True, False, True, False),
        (D("50"), 15, True, True, False, False),
        (D("40"), 20, True, True, True, True),
        (D("10"), 25, True, True, True, True),
    ]
    assert [r.days_late for r in rows if r.promised_date.day == 12] == [1]
    assert [r.days_late for r in rows if r.promised_date.day == 8] == [None]  # G, cancelled: nothing to receive
    # The orders behind the acknowledgement figures, those not answered in time first (a page of two of three).
    orders, listed = services.order_evidence(session, tenant_id=ids["tenant_id"], window=JAN, supplier_id=ids["acme"],
                                             limit=2)  # fmt: skip
    assert listed == 3
    assert [(o.order_number, o.in_time, o.hours) for o in orders] == [("PO-2", False, 120.0), ("PO-3", False, None)]


def test_a_delivery_that_received_nothing_is_late_by_the_days_since_its_promise(session):
    check_nothing_received_is_late_so_far(session, build(session))


def check_nothing_received_is_late_so_far(session: Session, ids: dict[str, int]) -> None:
    """F, 10 promised on 20 February, has received nothing: on 1 March it is counted and 9 days late so far,
    on 25 February 5 (the evidence's days late; it was blank, so nothing told how late such a delivery was)."""
    for today, late in ((date(2026, 3, 1), 9), (date(2026, 2, 25), 5)):
        window = month_window(date(2026, 2, 1), early_days=2, late_days=0, today=today)
        rows = services.evidence(session, tenant_id=ids["tenant_id"], window=window, supplier_id=ids["acme"])
        judged = [(r.product_code, r.counted, r.on_time, r.first_arrival, r.days_late) for r in rows]
        assert judged == [("P1", True, False, None, late)]


def test_figures_on_postgresql(session):
    check(session, build(session))


def test_each_suppliers_evidence_is_prepared_with_its_own_plan(session):
    """The scorecard page's one pass over a supplier's deliveries names the tenant and the supplier in its text,
    so a connection prepares it per supplier (planned for that supplier's size) rather than planning it on
    every request: after PostgreSQL's five custom plans, the two suppliers have a prepared statement each."""
    ids = build(session)
    for supplier in ("acme", "quiet"):
        for _ in range(6):
            services.live_card(session, tenant_id=ids["tenant_id"], window=JAN, supplier_id=ids[supplier], limit=2)
    prepared = (
        session.execute(text("SELECT statement FROM pg_prepared_statements WHERE statement LIKE '%miss_first%'"))
        .scalars()
        .all()
    )
    named = {supplier for supplier in ("acme", "quiet") for statement in prepared
             if f"supplier_id = {ids[supplier]}" in statement}  # fmt: skip
    assert named == {"acme", "quiet"}


@pytest.mark.embedded
def test_the_same_figures_on_sqlite(tmp_path):
    from portal.config import load_settings
    from portal.db import Database
    from portal.migrate import upgrade

    settings = load_settings({"PORTAL_INSTANCE_PATH": str(tmp_path), "PORTAL_WORKERS": "external"})
    upgrade(settings)
    database = Database(settings.database_url)
    with database.transaction() as s:
        ids = build(s)
    with database.transaction(tenant_id=ids["tenant_id"]) as s:
        check(s, ids)
        check_snapshot_matches_live(s, ids)
        check_rebuild_rewrites_only_what_changed(s, ids)
        check_a_score_needs_half_the_weights(s, ids)
        check_nothing_received_is_late_so_far(s, ids)


def check_snapshot_matches_live(session: Session, ids: dict[str, int]) -> None:
    """The one-pass recompute stores, for January and its quarter, what the live per-window query computes."""
    tenant_id, today = ids["tenant_id"], date(2026, 4, 15)
    services.recompute(session, tenant_id=tenant_id, months=3, today=today)
    for kind, window in (
        ("month", month_window(JAN.start, early_days=2, late_days=0, today=today)),
        ("month", month_window(date(2026, 2, 1), early_days=2, late_days=0, today=today)),
        ("quarter", quarter_window(JAN.start, early_days=2, late_days=0, today=today)),
    ):
        stored = services.stored_figures(session, tenant_id=tenant_id, kind=kind, window=window)
        live = services.figures(session, tenant_id=tenant_id, window=window)
        assert stored is not None and set(stored) == set(live)
        for supplier, figure in live.items():
            assert stored[supplier].as_dict() == figure.as_dict(), (kind, supplier)  # exactly the same floats


def check_a_score_needs_half_the_weights(session: Session, ids: dict[str, int]) -> None:
    """Acme's January has data for OTIF, fill rate, acknowledged and promises kept, none for documents (none
    required). Weighted 20, 20, 10, 10 and 60, those four carry 60 of 120, exactly half: a score,
    (50 x 20 + 92.86 x 20 + 33.33 x 10 + 83.33 x 10) / 60 = 67.1, a D. With documents weighted 61 they carry
    60 of 121, less than half: no score, live and stored alike."""
    from portal.auth.services import Actor

    tenant_id, today = ids["tenant_id"], date(2026, 4, 15)
    for documents_weight, expected in ((60, (67.1, "D")), (61, (None, None))):
        services.save_settings(session, tenant_id=tenant_id, actor=Actor(None, "test", ""), values={
            "early_days": 2, "late_days": 0, "grades": [[90, "A"], [80, "B"], [70, "C"], [0, "D"]],
            "weights": {"otif": 20, "fill_rate": 20, "ack_rate": 10, "reliability": 10, "documents": documents_weight},
        })  # fmt: skip
        session.flush()
        window = services.tenant_window(session, tenant_id, "month", JAN.start, today)
        live = services.figures(session, tenant_id=tenant_id, window=window)[ids["acme"]]
        services.recompute(session, tenant_id=tenant_id, months=3, today=today)
        stored = services.stored_figures(session, tenant_id=tenant_id, kind="month", window=window)
        assert stored is not None
        assert (live.score, live.grade) == (stored[ids["acme"]].score, stored[ids["acme"]].grade) == expected


def test_a_score_needs_half_the_weights_on_postgresql(session):
    check_a_score_needs_half_the_weights(session, build(session))


def test_snapshot_matches_live_on_postgresql(session):
    ids = build(session)
    check_snapshot_matches_live(session, ids)


def test_the_job_reading_on_a_second_connection_stores_the_same_rows(committed_db, monkeypatch):
    """The monthly job passes a ``reader``: the medians and documents are read on another connection while the
    grouped pass runs, and that connection then computes the figures of part of the suppliers. It stores exactly
    what the single-session recompute stores (a rebuild over unchanged history rewrites nothing, and any different
    figure would be rewritten)."""
    from portal.scorecards.models import ScorecardSnapshot

    with tenant_session(committed_db, None) as s:
        ids = build(s)
        # Orders of a second supplier in each month, so that both connections compute the figures of some.
        tenant, quiet = s.get(Tenant, ids["tenant_id"]), s.get(Supplier, ids["quiet"])
        for month in (1, 2, 3):
            make_order(s, tenant, quiet, order_date=date(2026, month, 3))
    tenant_id, today = ids["tenant_id"], date(2026, 4, 15)

    def stored() -> dict[tuple[int, str, date], tuple[dict, datetime]]:
        with tenant_session(committed_db, tenant_id) as s:
            rows = s.scalars(select(ScorecardSnapshot).where(ScorecardSnapshot.tenant_id == tenant_id))
            return {(r.supplier_id, r.period, r.period_start): (r.figures, r.computed_at) for r in rows}

    with tenant_session(committed_db, tenant_id) as s:
        services.recompute(s, tenant_id=tenant_id, months=3, today=today)
    alone = stored()
    january = alone[(ids["acme"], "month", date(2026, 1, 1))][0]
    assert january["ack_hours"] == 72.0 and january["notice_days"] == 5.0 and january["otif"] == 50.0

    opened = []

    def reader():  # type: ignore[no-untyped-def]
        opened.append(True)
        return tenant_session(committed_db, tenant_id)

    splits = []
    halving = services._supplier_split

    def recorded_split(session, sums):  # type: ignore[no-untyped-def]
        splits.append(halving(session, sums))
        return splits[-1]

    monkeypatch.setattr(services, "_supplier_split", recorded_split)

    with tenant_session(committed_db, tenant_id) as s:
        services.recompute(s, tenant_id=tenant_id, months=3, today=today, reader=reader)
    # Opened twice: for the medians and documents, then for the upper half of the figures,
    # which here holds the second supplier while the main connection computes Acme's.
    assert opened == [True, True]
    assert ids["acme"] < splits[0] <= ids["quiet"]
    assert alone[(ids["quiet"], "month", date(2026, 3, 1))][0]["orders"] == 1
    assert stored() == alone  # same figures, and not one row rewritten (computed_at unchanged)


def test_the_daily_job_recomputes_only_the_tenants_missing_their_last_closed_month(
    committed_app, committed_db, monkeypatch
):
    """The monthly run can be missed (the scheduler does not catch up) and a new definition version can be
    deployed mid-month: the daily job recomputes a tenant whose last closed month has no snapshot of the current
    version, and leaves a tenant that has one alone."""
    from portal.scorecards.models import ScorecardSnapshot
    from workers import actors, context

    monkeypatch.setattr(context, "_app", committed_app)  # the actors run in this app, on the committed database
    with tenant_session(committed_db, None) as s:
        ids = build(s)
    tenant_id = ids["tenant_id"]
    recomputed: list[int] = []
    real = services.recompute

    def counted(session, **kwargs):  # type: ignore[no-untyped-def]
        recomputed.append(kwargs["tenant_id"])
        return real(session, **kwargs)

    monkeypatch.setattr(services, "recompute", counted)

    def january_rows() -> int:
        with tenant_session(committed_db, tenant_id) as s:
            return s.execute(
                select(func.count()).select_from(ScorecardSnapshot).where(
                    ScorecardSnapshot.tenant_id == tenant_id, ScorecardSnapshot.version == services.VERSION,
                    ScorecardSnapshot.period == "month", ScorecardSnapshot.period_start == date(2026, 1, 1))
            ).scalar_one()  # fmt: skip

    actors.fill_missing_scorecards.fn("2026-02-15")  # January is the last closed month: never computed yet
    assert tenant_id in recomputed and january_rows() > 0
    recomputed.clear()
    actors.fill_missing_scorecards.fn("2026-02-16")
    assert tenant_id not in recomputed  # January's snapshots are there: nothing to do
    with tenant_session(committed_db, tenant_id) as s:  # as if they were of another definition version
        s.execute(ScorecardSnapshot.__table__.update().where(ScorecardSnapshot.tenant_id == tenant_id)
                  .values(version=services.VERSION - 1))  # fmt: skip
    actors.fill_missing_scorecards.fn("2026-02-17")
    assert tenant_id in recomputed and january_rows() > 0


def test_a_delivery_still_in_its_window_is_not_counted_yet(session):
    ids = build(session)
    early = Window(JAN.start, JAN.end, early_days=2, late_days=0, today=date(2026, 1, 16))
    rows = services.evidence(session, tenant_id=ids["tenant_id"], window=early, supplier_id=ids["acme"])
    counted = {r.promised_date.day: r.counted for r in rows}
    # Promised on 20 and 25 January, both complete already: counted; 15 January has passed: counted.
    assert counted == {5: True, 8: False, 10: True, 12: True, 15: True, 20: True, 25: True}
    partial = Window(JAN.start, JAN.end, early_days=2, late_days=0, today=date(2026, 1, 15))
    rows = services.evidence(session, tenant_id=ids["tenant_id"], window=partial, supplier_id=ids["acme"])
    assert {r.promised_date.day: r.counted for r in rows}[15] is False  # incomplete and its window still open


def test_periods():
    assert month_window(date(2026, 2, 14)).start == date(2026, 2, 1)
    assert month_window(date(2026, 12, 31)).end == date(2027, 1, 1)
    assert (quarter_window(date(2026, 5, 3)).start, quarter_window(date(2026, 5, 3)).end) == (
        date(2026, 4, 1),
        date(2026, 7, 1),
    )
    assert quarter_window(date(2026, 11, 30)).end == date(2027, 1, 1)


def test_supplier_and_buyer_pages(app, session):
    from portal.auth.permissions import Role
    from portal.tenancy.models import Tenant
    from tests.factories import PASSWORD, make_member
    from tests.helpers import PortalClient

    ids = build(session)
    tenant = session.get(Tenant, ids["tenant_id"])
    acme = session.get(Supplier, ids["acme"])
    seller = make_member(session, tenant, Role.SUPPLIER_USER, supplier=acme)
    buyer = make_member(session, tenant, Role.BUYER)
    supplier_client, buyer_client = PortalClient(app.test_client()), PortalClient(app.test_client())
    supplier_client.sign_in(seller.email, PASSWORD, seller.secret)
    buyer_client.sign_in(buyer.email, PASSWORD, buyer.secret)

    page = supplier_client.get("/scorecard?period=month&at=2026-01-20")
    assert page.status_code == 200
    assert "January 2026 (01 Jan 2026 to 31 Jan 2026)" in page.text
    deliveries, orders = page.text.split('<h2 id="orders">')
    assert "No document was required by the end of this period." in orders.split('<h2 id="documents">')[1]
    assert len(re.findall(r'href="/orders/\d+', deliveries)) == 7  # every delivery of January, with its order
    # The orders behind the acknowledgement figures (answered after 1 day, after 5 days, never; 3 days allowed):
    # those not answered in time first, each with its hours to respond.
    rows = [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in orders.split("<tbody>")[1].split("</tr>")[:3]]
    assert rows == [
        "PO-2 2026-01-02 2026-01-02 00:00 2026-01-07 00:00 120.0 no",
        "PO-3 2026-01-02 2026-01-02 00:00 — not answered",
        "PO-1 2026-01-02 2026-01-02 00:00 2026-01-03 00:00 24.0 yes",
    ]
    # A closed month links to the month before and the month after, each by a day inside it.
    assert 'href="/scorecard?period=month&amp;at=2025-12-01" rel="prev">&larr; December 2025</a>' in page.text
    assert 'href="/scorecard?period=month&amp;at=2026-02-01" rel="next">February 2026 &rarr;</a>' in page.text
    this_month = supplier_client.get("/scorecard").text
    assert "so far" in this_month and 'rel="prev"' in this_month and 'rel="next"' not in this_month  # no future
    assert "/scorecards" not in page.text.split("</nav>")[0].split('class="mainnav"')[-1]  # no ranking for suppliers
    assert supplier_client.get("/scorecards").status_code == 403

    ranking = buyer_client.get("/scorecards?period=month&at=2026-01-20&sort=fill_rate")
    assert ranking.status_code == 200
    assert ranking.text.index("Acme") < ranking.text.index("Quiet Ltd")
    assert "no data" in ranking.text
    one = buyer_client.get(f"/scorecards/{ids['acme']}?period=quarter&at=2026-01-20")
    assert one.status_code == 200 and "Q1 2026 (01 Jan 2026 to 31 Mar 2026)" in one.text
    assert 'rel="prev">&larr; Q4 2025</a>' in one.text and 'rel="next">Q2 2026 &rarr;</a>' in one.text
    why = "overall score (its figures with data carry less than half of the weights)"
    assert why not in one.text  # Acme is scored
    assert why in buyer_client.get(f"/scorecards/{ids['quiet']}?period=quarter&at=2026-01-20").text
    assert buyer_client.get("/scorecards/definitions").status_code == 200
    definitions_page = buyer_client.get("/scorecards/definitions").text
    assert "never as 0 % or 100 %" in definitions_page and "Median notice" in definitions_page
    assert "Version 1: First published definitions." in definitions_page


def test_the_ranking_opens_on_the_last_closed_period_with_this_one_a_link_away(app, session):
    """Buyers compare suppliers over whole periods: the ranking opens on the last closed month (or quarter),
    links to this one so far, and from there back; its CSV follows the same period."""
    from datetime import timedelta

    from portal.auth.permissions import Role
    from tests.factories import PASSWORD, make_member, make_tenant
    from tests.helpers import PortalClient

    tenant = make_tenant(session)
    buyer = make_member(session, tenant, Role.BUYER)
    client = PortalClient(app.test_client())
    client.sign_in(buyer.email, PASSWORD, buyer.secret)
    today = date.today()
    this_month = month_window(today)
    last_month = month_window(this_month.start - timedelta(days=1))

    opened = client.get("/scorecards").text
    assert f"({last_month.label})</small>" in opened and "A closed month." in opened
    assert f'rel="prev">&larr; {month_window(last_month.start - timedelta(days=1)).start:%B %Y}</a>' in opened
    assert f'rel="next">{this_month.start:%B %Y} &rarr;</a>' in opened
    so_far = f"/scorecards?period=month&amp;at={today.isoformat()}&amp;sort=score"
    assert f'href="{so_far}">This month so far</a>' in opened
    assert f"scorecards-{last_month.start}.csv" in client.get("/scorecards.csv").headers["Content-Disposition"]
    live = client.get(so_far.replace("&amp;", "&")).text
    assert f"so far ({this_month.label})</small>" in live and 'rel="next"' not in live
    assert 'href="/scorecards?period=month&amp;sort=score">The last closed month</a>' in live
    quarter = client.get("/scorecards?period=quarter").text
    assert quarter_window(quarter_window(today).start - timedelta(days=1)).label in quarter


def test_snapshots_rebuild_identical_figures_and_feed_ranking_and_trend(session):
    from portal.scorecards.models import ScorecardSnapshot

    ids = build(session)
    today = date(2026, 2, 15)
    stored = services.recompute(session, tenant_id=ids["tenant_id"], months=3, today=today)
    rows = session.query(ScorecardSnapshot).filter_by(tenant_id=ids["tenant_id"], period="month").all()
    january = {r.supplier_id: r.figures for r in rows if r.period_start == date(2026, 1, 1)}
    live = services.figures(
        session, tenant_id=ids["tenant_id"], window=services.tenant_window(session, ids["tenant_id"], "month",
                                                                           date(2026, 1, 1), today),
    )[ids["acme"]]  # fmt: skip
    assert january[ids["acme"]]["otif"] == live.otif == 50.0
    assert january[ids["acme"]]["score"] == live.score
    again = services.recompute(session, tenant_id=ids["tenant_id"], months=3, today=today)
    assert again == stored  # replaced, not added
    assert session.query(ScorecardSnapshot).filter_by(tenant_id=ids["tenant_id"]).count() == stored
    # A snapshot is what a closed period shows (here altered to prove it is read, not recomputed).
    snapshot = (
        session.query(ScorecardSnapshot)
        .filter_by(tenant_id=ids["tenant_id"], period="month", period_start=date(2026, 1, 1), supplier_id=ids["acme"])
        .one()
    )
    snapshot.figures = {**snapshot.figures, "otif": 12.5}
    session.flush()
    window = services.tenant_window(session, ids["tenant_id"], "month", date(2026, 1, 10), today)
    ranking = services.ranking_page(session, tenant_id=ids["tenant_id"], window=window, kind="month", today=today)[0]
    assert ranking[0][1].otif == 12.5
    points = services.trend(session, tenant_id=ids["tenant_id"], supplier_id=ids["acme"], kind="month", today=today)
    assert len(points) == 12 and points[-1][0].start == date(2026, 2, 1)
    by_start = {w.start: f for w, f in points}
    assert by_start[date(2026, 1, 1)].otif == 12.5  # from the snapshot
    assert by_start[date(2025, 12, 1)] is None or by_start[date(2025, 12, 1)].otif is None  # no data, not 0


def test_a_rebuild_rewrites_only_what_changed(session):
    check_rebuild_rewrites_only_what_changed(session, build(session))


def check_rebuild_rewrites_only_what_changed(session: Session, ids: dict[str, int]) -> None:
    """The recompute makes this version's rows equal to what it computed: a changed row is restored, a row no
    longer computed is deleted, identical rows are not written (their computed_at stays), rows of another
    definition version and of periods outside the span are left alone."""
    from portal.scorecards.models import ScorecardSnapshot

    tenant_id, today = ids["tenant_id"], date(2026, 4, 15)  # January to March and their quarter are closed
    services.recompute(session, tenant_id=tenant_id, months=3, today=today)

    def rows() -> dict[tuple[int, str, date, int], ScorecardSnapshot]:
        found = session.scalars(select(ScorecardSnapshot).where(ScorecardSnapshot.tenant_id == tenant_id)).all()
        return {(r.supplier_id, r.period, r.period_start, r.version): r for r in found}

    first = {key: (row.figures, row.computed_at) for key, row in rows().items()}
    january = (ids["acme"], "month", date(2026, 1, 1), services.VERSION)
    altered = rows()[january]
    altered.figures = {**altered.figures, "otif": 1.0}
    stale_at = datetime(2020, 1, 1, tzinfo=UTC)
    session.add_all([
        # No delivery, no document: the recompute finds nothing for Quiet Ltd in January.
        ScorecardSnapshot(tenant_id=tenant_id, supplier_id=ids["quiet"], period="month",
                          period_start=date(2026, 1, 1), version=services.VERSION, figures={"otif": 5.0},
                          computed_at=stale_at),
        ScorecardSnapshot(tenant_id=tenant_id, supplier_id=ids["acme"], period="month",
                          period_start=date(2026, 1, 1), version=services.VERSION - 1, figures={"otif": 7.0},
                          computed_at=stale_at),
        ScorecardSnapshot(tenant_id=tenant_id, supplier_id=ids["acme"], period="month",
                          period_start=date(2023, 1, 1), version=services.VERSION, figures={"otif": 9.0},
                          computed_at=stale_at),
    ])  # fmt: skip
    session.flush()

    services.recompute(session, tenant_id=tenant_id, months=3, today=today)
    session.expire_all()
    after = rows()
    assert (ids["quiet"], "month", date(2026, 1, 1), services.VERSION) not in after
    assert after[(ids["acme"], "month", date(2026, 1, 1), services.VERSION - 1)].otif == 7.0
    assert after[(ids["acme"], "month", date(2023, 1, 1), services.VERSION)].otif == 9.0
    assert after[january].figures == first[january][0] and after[january].figures["otif"] == 50.0
    assert after[january].computed_at > first[january][1]
    untouched = [key for key in first if key != january]
    assert untouched and all(after[key].computed_at == first[key][1] for key in untouched)
    assert all(after[key].figures == first[key][0] for key in untouched)


def test_rounding_in_python_is_postgresqls(session):
    """Live pages round in Python (``tenths``), the recompute in PostgreSQL (``round(numeric, 1)``): the same
    result for halves (away from zero), for floats just below or above a half, and for exact quotients."""
    import random

    from sqlalchemy import Float, bindparam

    rng = random.Random(7)
    floats = [0.25, 0.35, -0.25, -0.35, 0.05, 2.675, 89.95, 89.94999999999999, 100.0, 0.0, 1 / 3 * 100, 66.65,
              *(rng.uniform(-100, 100) for _ in range(500)), *(k / 20 for k in range(-40, 41))]  # fmt: skip
    rounded = session.execute(
        select(func.round(cast(func.unnest(bindparam("v", type_=ARRAY(Float))), Numeric), 1)), {"v": floats}
    ).scalars()
    assert [services.tenths(v) for v in floats] == [float(r) for r in rounded]
    assert (services.tenths(0.35), services.tenths(0.25), services.tenths(-0.25)) == (0.4, 0.3, -0.3)
    quotients = [(total, count) for total in range(-30, 31) for count in (1, 2, 3, 4, 8, 20, 40, 7)]
    in_sql = session.execute(
        text("SELECT round(t::numeric / c, 1) FROM unnest(CAST(:t AS int[]), CAST(:c AS int[])) AS q(t, c)"),
        {"t": [t for t, _ in quotients], "c": [c for _, c in quotients]},
    ).scalars()
    assert [services._mean(t, c) for t, c in quotients] == [float(r) for r in in_sql]


def test_trend_chart_leaves_gaps_for_no_data():
    from portal.scorecards.charts import trend_svg

    points = [
        ("Jan", {"otif": 50.0, "fill_rate": 90.0}),
        ("Feb", {"otif": None, "fill_rate": None}),
        ("Mar", {"otif": 75.0, "fill_rate": 95.0}),
        ("<b>", {"otif": 80.0, "fill_rate": None}),
    ]
    svg = str(trend_svg(points))
    assert svg.startswith("<svg") and svg.count("<circle") == 5  # one per value, none for "no data"
    assert "&lt;b&gt;" in svg and "<b>" not in svg
    # OTIF: Jan alone, then Mar and the last joined; fill rate: two lone points. No line crosses February.
    assert svg.count("<polyline") == 1 and "so far" not in svg and "stroke-dasharray" not in svg
    # The last period not over: its points hollow, the line into them dashed, "so far" under its label.
    open_last = str(trend_svg(points, last_so_far=True))
    assert open_last.count("<circle") == 5 and open_last.count('fill="#fff"') == 1
    assert open_last.count("<polyline") == 1 and open_last.count("stroke-dasharray") == 1
    assert ">so far</text>" in open_last and "OTIF &lt;b&gt; so far: 80.0%" in open_last


def test_settings_change_the_window_and_the_score(app, session):
    from portal.auth.permissions import Role
    from portal.tenancy.models import Tenant
    from tests.factories import PASSWORD, make_member
    from tests.helpers import PortalClient

    ids = build(session)
    admin = make_member(session, session.get(Tenant, ids["tenant_id"]), Role.TENANT_ADMIN)
    client = PortalClient(app.test_client())
    client.sign_in(admin.email, PASSWORD, admin.secret)
    form = {
        "early_days": "2", "late_days": "1", "weight_otif": "100", "weight_fill_rate": "0", "weight_ack_rate": "0",
        "weight_reliability": "0", "weight_documents": "0", "grades": "A=90, B=40",
    }  # fmt: skip
    assert "less than half of the weights has no score" in client.get("/scorecards/settings").text
    refused = client.submit("/scorecards/settings", form)
    assert refused.status_code == 422 and "One band must start at 0" in refused.text
    assert client.submit("/scorecards/settings", {**form, "grades": "A=90, B=40, C=0"}).status_code == 302
    window = services.tenant_window(session, ids["tenant_id"], "month", date(2026, 1, 10), date(2026, 2, 15))
    assert (window.early_days, window.late_days) == (2, 1)
    figures = services.figures(session, tenant_id=ids["tenant_id"], window=window)[ids["acme"]]
    # With one day of grace B1 (1 day late) is on time and OTIF: 4/6; the score is OTIF alone.
    assert figures.otif == pytest.approx(400 / 6) and figures.score == round(400 / 6, 1) and figures.grade == "B"


def test_document_compliance_counts_required_documents_valid_at_period_end(session):
    from portal.documents.models import Document, DocumentStatus, DocumentType, Requirement

    ids = build(session)
    tenant_id = ids["tenant_id"]
    iso, insurance = (DocumentType(tenant_id=tenant_id, code=c, name=c) for c in ("ISO", "INS"))
    session.add_all([iso, insurance])
    session.flush()
    set_on = datetime(2025, 11, 1, tzinfo=UTC)
    session.add_all([Requirement(tenant_id=tenant_id, document_type_id=t.id, created_at=set_on)
                     for t in (iso, insurance)])  # fmt: skip
    session.add(
        Document(tenant_id=tenant_id, supplier_id=ids["acme"], document_type_id=iso.id, title="ISO",
                 status=DocumentStatus.APPROVED, expiry_date=date(2026, 6, 30), storage_key="k", original_name="a.pdf",
                 size=1, content_type="application/pdf", sha256="0" * 64,
                 created_at=datetime(2025, 12, 1, tzinfo=UTC))
    )  # fmt: skip
    session.flush()
    figures = services.figures(session, tenant_id=tenant_id, window=JAN)
    assert figures[ids["acme"]].documents == 50.0
    # The documents behind that figure on 31 January: the missing one first. The figure of one supplier and its
    # evidence (as a scorecard page asks for them) read the requirements and documents once.
    read: list[str] = []

    def note(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        read.append(statement)

    event.listen(session.connection(), "before_cursor_execute", note)
    one = services.document_compliance(session, tenant_id, JAN, ids["acme"])
    behind = services.document_evidence(session, tenant_id=tenant_id, window=JAN, supplier_id=ids["acme"])
    event.remove(session.connection(), "before_cursor_execute", note)
    assert one == {ids["acme"]: 50.0} and sum("FROM document_requirements" in statement for statement in read) == 1
    assert [(d.document_type, d.required_since, d.held, d.valid_until) for d in behind] == [
        ("INS", date(2025, 11, 1), False, None),
        ("ISO", date(2025, 11, 1), True, date(2026, 6, 30)),
    ]
    # A write forgets what was read: a new approved insurance certificate counts at once.
    session.add(
        Document(tenant_id=tenant_id, supplier_id=ids["acme"], document_type_id=insurance.id, title="INS",
                 status=DocumentStatus.APPROVED, expiry_date=None, storage_key="k2", original_name="b.pdf",
                 size=1, content_type="application/pdf", sha256="1" * 64, created_at=datetime(2026, 1, 5, tzinfo=UTC))
    )  # fmt: skip
    session.flush()
    assert services.document_compliance(session, tenant_id, JAN, ids["acme"]) == {ids["acme"]: 100.0}
    assert figures[ids["quiet"]].documents == 0.0  # required and missing: 0 %, not "no data"
    # Its documents alone (10 of the 100 weights) make no score: not a "0.0, D" beside suppliers that delivered.
    assert figures[ids["quiet"]].otif is None and figures[ids["quiet"]].documents == 0.0
    assert (figures[ids["quiet"]].score, figures[ids["quiet"]].grade) == (None, None)
    # The recompute stores the same: Acme's sums, medians and documents, and the documents alone for a supplier
    # with nothing else in the period.
    check_snapshot_matches_live(session, ids)
    january = services.stored_figures(session, tenant_id=tenant_id, kind="month", window=JAN)
    assert january is not None and january[ids["acme"]].documents == 100.0 and january[ids["quiet"]].documents == 0.0


def test_a_requirement_counts_from_the_day_it_was_set(session):
    """A requirement set on 15 January 2026 counts in January (it was in force on the period's last day), not
    in December 2025: a new requirement does not lower the months before it."""
    from portal.documents.models import DocumentType, Requirement

    ids = build(session)
    tenant_id = ids["tenant_id"]
    iso = DocumentType(tenant_id=tenant_id, code="ISO", name="ISO")
    session.add(iso)
    session.flush()
    session.add(Requirement(tenant_id=tenant_id, document_type_id=iso.id,
                            created_at=datetime(2026, 1, 15, 9, 0, tzinfo=UTC)))  # fmt: skip
    session.flush()
    december = services.month_window(date(2025, 12, 1), today=date(2026, 11, 1))
    before = services.figures(session, tenant_id=tenant_id, window=december)
    assert all(figure.documents is None for figure in before.values())  # no data: nothing was required yet
    shares = services.compliance_on_days(session, tenant_id, [date(2026, 1, 14), date(2026, 1, 15), JAN.end])
    assert shares[date(2026, 1, 14)][ids["acme"]] is None
    assert shares[date(2026, 1, 15)][ids["acme"]] == 0.0 and shares[JAN.end][ids["quiet"]] == 0.0
    assert services.figures(session, tenant_id=tenant_id, window=JAN)[ids["acme"]].documents == 0.0


def test_csv_exports_and_the_pdf(app, session):
    import csv
    import io

    from pypdf import PdfReader

    from portal.auth.permissions import Role
    from portal.pdf import safe_fetcher
    from portal.tenancy.models import Tenant
    from tests.factories import PASSWORD, make_member
    from tests.helpers import PortalClient

    ids = build(session)
    acme = session.get(Supplier, ids["acme"])
    acme.name = '=HYPERLINK("http://evil.example") <img src="file:///etc/passwd"> <b>Acme</b>'
    quiet = session.get(Supplier, ids["quiet"])
    quiet.name = 'Quiet <link rel="stylesheet" href="http://evil.example/x.css">'
    session.flush()
    buyer = make_member(session, session.get(Tenant, ids["tenant_id"]), Role.BUYER)
    client = PortalClient(app.test_client())
    client.sign_in(buyer.email, PASSWORD, buyer.secret)

    ranking = client.get("/scorecards.csv?period=month&at=2026-01-20&sort=otif")
    assert ranking.status_code == 200 and ranking.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(ranking.text)))
    assert rows[0][:5] == ["supplier_code", "supplier", "category", "period_start", "definitions_version"]
    acme_row = next(r for r in rows[1:] if r[0] == "ACME")
    assert acme_row[1].startswith("'=HYPERLINK")  # a formula becomes text
    assert acme_row[rows[0].index("otif")] == "50.0" and acme_row[rows[0].index("grade")] == "D"
    quiet_row = next(r for r in rows[1:] if r[0] == "QUIET")
    assert quiet_row[rows[0].index("otif")] == ""  # no data, not 0

    card = client.get(f"/scorecards/{ids['acme']}.csv?period=month&at=2026-01-20")
    deliveries, orders = card.text.split("order,ordered,arrived,first_answer,hours_to_respond,answered_in_time\r\n")
    assert card.status_code == 200 and "order,product,first_promise" in deliveries and deliveries.count("PO-") == 7
    orders, documents = orders.split("document,required_since,held_on_period_end,valid_until\r\n")
    assert [row.split(",")[0::4] for row in orders.split()] == [["PO-2", "120.0"], ["PO-3", ""], ["PO-1", "24.0"]]
    assert documents == ""  # the tenant requires none
    head = dict(row for row in csv.reader(io.StringIO(card.text.split("\r\n\r\n")[0])) if len(row) == 2)
    assert (head["supplier_code"], head["period_start"], head["period_end"]) == ("ACME", "2026-01-01", "2026-01-31")
    assert (head["period_closed"], head["as_of"], head["otif"]) == ("yes", date.today().isoformat(), "50.0")

    pdf = client.get(f"/scorecards/{ids['acme']}.pdf?period=month&at=2026-01-20")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.data)).pages)
    assert '<img src="file:///etc/passwd">' in text  # shown as text, never loaded
    assert "50.0 %" in text and "PO-1" in text
    # What period, and when the document was made: a printed card outlives the page.
    assert "January 2026 (01 Jan 2026 to 31 Jan 2026)" in text and f"as of {date.today()}" in text
    assert "not over" not in text
    assert "late 1 d, in full" in text and "on time, short" in text  # B's first delivery, C
    # The orders and documents behind the other figures, as on the page.
    assert "120.0 no" in text and "not answered" in text and "No document was required" in text
    current = client.get(f"/scorecards/{ids['quiet']}.pdf")
    assert current.status_code == 200
    current_text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(current.data)).pages)
    assert f"{date.today():%B %Y} so far" in current_text and "This month is not over" in current_text

    with app.test_request_context():
        assert b"font-family" in safe_fetcher("https://portal.invalid/static/print.css")["string"]
        for url in ("file:///etc/passwd", "http://evil.example/x.css", "https://portal.invalid/static/../../wsgi.py",
                    "data:text/css,body{}", "https://portal.invalid/other/x.css"):  # fmt: skip
            with pytest.raises(ValueError, match="refused"):
                safe_fetcher(url)


def test_the_ranking_filtered_to_one_company(session):
    from sqlalchemy import select as sa_select

    ids = build(session)
    company_id = session.execute(sa_select(PurchaseOrder.company_id)).scalars().first()
    other = Company(tenant_id=ids["tenant_id"], code="OTHER", name="Other company")
    session.add(other)
    session.flush()
    mine = services.ranking_page(session, tenant_id=ids["tenant_id"], window=JAN, company_id=company_id)[0]
    assert dict((s.id, f.otif) for s, f in mine)[ids["acme"]] == 50.0
    theirs = services.ranking_page(session, tenant_id=ids["tenant_id"], window=JAN, company_id=other.id)[0]
    assert all(f.otif is None and f.orders == 0 for _, f in theirs)


@pytest.mark.parametrize(("notices", "expected"), [([10, -2, 3], 3.0), ([1, 4], 2.5), ([7], 7.0)])
def test_median_notice_over_the_changed_promises_of_the_period(session, notices, expected):
    ids = build(session)
    tenant_id, acme = ids["tenant_id"], ids["acme"]
    order = session.get(PurchaseOrder, session.execute(
        select(PurchaseOrder.id).where(PurchaseOrder.tenant_id == tenant_id)).scalars().first())  # fmt: skip
    march = Window(date(2026, 3, 1), date(2026, 4, 1), early_days=2, late_days=0, today=date(2026, 4, 15))
    for position, notice in enumerate(notices, start=10):
        item = PurchaseOrderLine(
            tenant_id=tenant_id, order_id=order.id, supplier_id=acme, position=position, product_code="M",
            product_name="m", quantity=D("5"), unit_price=D("1"), requested_date=date(2026, 3, 2),
            state=LineState.CONFIRMED,
        )  # fmt: skip
        session.add(item)
        session.flush()
        session.add(DeliverySchedule(tenant_id=tenant_id, line_id=item.id, supplier_id=acme, position=1,
                                     quantity=D("5"), promised_date=date(2026, 3, 9),
                                     first_promised_date=date(2026, 3, 2), notice_days=notice))  # fmt: skip
    session.flush()
    figures = services.figures(session, tenant_id=tenant_id, window=march, supplier_id=acme)[acme]
    assert figures.notice_days == expected
    assert services.figures(session, tenant_id=tenant_id, window=march)[acme].notice_days == expected
    stored = services.recompute(session, tenant_id=tenant_id, months=3, today=date(2026, 4, 15))
    assert stored > 0
    snapshot = services.stored_figures(session, tenant_id=tenant_id, kind="month", window=march)
    assert snapshot is not None and snapshot[acme].notice_days == expected
    quarter = services.stored_figures(
        session, tenant_id=tenant_id, kind="quarter", window=quarter_window(date(2026, 1, 1))
    )
    # The first quarter holds January's change too (C: 5 days' notice).
    assert quarter is not None and quarter[acme].notice_days == statistics.median([5, *notices])


def test_the_definitions_show_this_customers_window_weights_and_grades(app, session):
    """The formula as this customer computes it: its on-time window, its weights (a weight of 0 drops out) and
    its grade bands, not only the defaults."""
    import re

    from portal.auth.permissions import Role
    from portal.auth.services import Actor
    from tests.factories import PASSWORD, make_member, make_supplier, make_tenant
    from tests.helpers import PortalClient

    x = "\u00d7"  # the multiplication sign the page writes
    tenant = make_tenant(session)
    seller = make_member(session, tenant, Role.SUPPLIER_USER, supplier=make_supplier(session, tenant))
    client = PortalClient(app.test_client())
    client.sign_in(seller.email, PASSWORD, seller.secret)

    def shown() -> dict[str, str]:
        page = client.get("/scorecards/definitions").text
        found = re.findall(r'<p data-testid="(\w+)">(.*?)</p>', page, re.S)
        return {key: " ".join(text.split()) for key, text in found}

    assert shown() == {
        "window": "On time: the first goods from 2 days before to 0 days after the promised date.",
        "formula": f"Overall score = (40 {x} OTIF + 20 {x} Fill rate + 15 {x} Acknowledged in time + 15 {x} Promises "
                   f"kept + 10 {x} Document compliance) \u00f7 the sum of the weights of the figures that have data; "
                   "no score when that sum is less than half of 100.",
        "grades": "Grades: A from 90, B from 80, C from 70, D from 0.",
    }  # fmt: skip
    set_context(session, tenant_id=tenant.id)
    services.save_settings(session, tenant_id=tenant.id, actor=Actor(None, "test", ""), values={
        "early_days": 1, "late_days": 3, "grades": [[85, "A"], [0, "B"]],
        "weights": {"otif": 50, "fill_rate": 50, "ack_rate": 0, "reliability": 0, "documents": 0},
    })  # fmt: skip
    session.flush()
    assert shown() == {
        "window": "On time: the first goods from 1 day before to 3 days after the promised date.",
        "formula": f"Overall score = (50 {x} OTIF + 50 {x} Fill rate) \u00f7 the sum of the weights of the figures "
                   "that have data; no score when that sum is less than half of 100.",
        "grades": "Grades: A from 85, B from 0.",
    }  # fmt: skip
    assert "`early`" not in client.get("/scorecards/definitions").text
